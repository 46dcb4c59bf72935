"""Dashboard layout (position_json) and metadata (native filters) built from the chart list.

Two native filters on every dashboard: "Pipeline" (a select over ``pipeline_name`` whose
options Superset queries from the data each time, so new pipelines appear without
provisioning again) and "Time range" (applies to each chart's temporal column).
"""

from __future__ import annotations

from typing import Any

CHARTS_PER_ROW = 2


def position_json(title: str, specs: list[Any], chart_ids: list[int]) -> dict[str, Any]:
    pos: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [],
                    "parents": ["ROOT_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": title}},
    }
    for start in range(0, len(specs), CHARTS_PER_ROW):
        row_id = f"ROW-{start // CHARTS_PER_ROW}"
        pos["GRID_ID"]["children"].append(row_id)
        pos[row_id] = {"type": "ROW", "id": row_id, "children": [],
                       "parents": ["ROOT_ID", "GRID_ID"],
                       "meta": {"background": "BACKGROUND_TRANSPARENT"}}
        for spec, cid in zip(specs[start:start + CHARTS_PER_ROW],
                             chart_ids[start:start + CHARTS_PER_ROW], strict=True):
            key = f"CHART-{cid}"
            pos[row_id]["children"].append(key)
            pos[key] = {"type": "CHART", "id": key, "children": [],
                        "parents": ["ROOT_ID", "GRID_ID", row_id],
                        "meta": {"chartId": cid, "width": 12 // CHARTS_PER_ROW, "height": 50,
                                 "sliceName": spec.name}}
    return pos


def dashboard_metadata(title: str, chart_ids: list[int], filter_dataset_id: int | None,
                       positions: dict[str, Any]) -> dict:
    """json_metadata; ``positions`` (the layout) also sets the dashboard's charts."""
    slug = title.lower().replace(" ", "_")
    scope = {"rootPath": ["ROOT_ID"], "excluded": []}
    pipeline = [
        {"id": f"NATIVE_FILTER-{slug}-pipeline", "name": "Pipeline",
         "filterType": "filter_select", "type": "NATIVE_FILTER", "description": "",
         "targets": [{"datasetId": filter_dataset_id, "column": {"name": "pipeline_name"}}],
         "controlValues": {"enableEmptyFilter": False, "defaultToFirstItem": False,
                           "multiSelect": True, "searchAllOptions": False,
                           "inverseSelection": False},
         "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
         "cascadeParentIds": [], "scope": scope, "chartsInScope": chart_ids,
         "tabsInScope": []},
    ] if filter_dataset_id is not None else []
    filters = pipeline + [
        {"id": f"NATIVE_FILTER-{slug}-time", "name": "Time range",
         "filterType": "filter_time", "type": "NATIVE_FILTER", "description": "",
         "targets": [{}], "controlValues": {"enableEmptyFilter": False},
         "defaultDataMask": {"extraFormData": {}, "filterState": {}},
         "cascadeParentIds": [], "scope": scope, "chartsInScope": chart_ids,
         "tabsInScope": []},
    ]
    return {"native_filter_configuration": filters, "chart_configuration": {},
            "global_chart_configuration": {"scope": scope, "chartsInScope": chart_ids},
            "color_scheme": "supersetColors", "refresh_frequency": 0,
            "timed_refresh_immune_slices": [], "expanded_slices": {}, "label_colors": {},
            "shared_label_colors": [], "cross_filters_enabled": True,
            "positions": positions, "default_filters": "{}"}
