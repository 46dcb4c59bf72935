"""Dashboard layout (position_json) and metadata (native filters) built from the chart list.

Native filters on every dashboard: "Pipeline" (a select over ``pipeline_name`` whose options
Superset queries from the data each time, so new pipelines appear without provisioning again)
and "Time range" (applies to each chart's temporal column); "Live Alerts" adds "Severity" and
refreshes itself every ``LIVE_REFRESH_SECONDS``. Charts fill rows of the 12-column grid in
order, each ``spec.width`` wide.
"""

from __future__ import annotations

from typing import Any

GRID_WIDTH = 12
LIVE_REFRESH_SECONDS = 5
# per dashboard: the select filters beyond "Pipeline" (name, column) and the auto-refresh (s)
EXTRA_SELECTS: dict[str, list[tuple[str, str]]] = {"Live Alerts": [("Severity", "severity")]}
REFRESH: dict[str, int] = {"Live Alerts": LIVE_REFRESH_SECONDS}


def rows_of(specs: list[Any]) -> list[list[int]]:
    """Indexes of ``specs`` per grid row: left to right while the widths fit in 12."""
    rows: list[list[int]] = []
    used = GRID_WIDTH
    for i, spec in enumerate(specs):
        width = getattr(spec, "width", GRID_WIDTH // 2)
        if used + width > GRID_WIDTH:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += width
    return rows


def position_json(title: str, specs: list[Any], chart_ids: list[int]) -> dict[str, Any]:
    pos: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [],
                    "parents": ["ROOT_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": title}},
    }
    for n, row in enumerate(rows_of(specs)):
        row_id = f"ROW-{n}"
        pos["GRID_ID"]["children"].append(row_id)
        pos[row_id] = {"type": "ROW", "id": row_id, "children": [],
                       "parents": ["ROOT_ID", "GRID_ID"],
                       "meta": {"background": "BACKGROUND_TRANSPARENT"}}
        for i in row:
            spec, cid = specs[i], chart_ids[i]
            key = f"CHART-{cid}"
            pos[row_id]["children"].append(key)
            pos[key] = {"type": "CHART", "id": key, "children": [],
                        "parents": ["ROOT_ID", "GRID_ID", row_id],
                        "meta": {"chartId": cid, "width": getattr(spec, "width", 6),
                                 "height": getattr(spec, "height", 50),
                                 "sliceName": spec.name}}
    return pos


def dashboard_metadata(title: str, chart_ids: list[int], filter_dataset_id: int | None,
                       positions: dict[str, Any]) -> dict:
    """json_metadata; ``positions`` (the layout) also sets the dashboard's charts."""
    slug = title.lower().replace(" ", "_")
    scope = {"rootPath": ["ROOT_ID"], "excluded": []}
    selects = [("Pipeline", "pipeline_name"), *EXTRA_SELECTS.get(title, [])]
    pipeline = [
        {"id": f"NATIVE_FILTER-{slug}-{column.replace('_name', '')}", "name": name,
         "filterType": "filter_select", "type": "NATIVE_FILTER", "description": "",
         "targets": [{"datasetId": filter_dataset_id, "column": {"name": column}}],
         "controlValues": {"enableEmptyFilter": False, "defaultToFirstItem": False,
                           "multiSelect": True, "searchAllOptions": False,
                           "inverseSelection": False},
         "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
         "cascadeParentIds": [], "scope": scope, "chartsInScope": chart_ids,
         "tabsInScope": []}
        for name, column in selects
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
            "color_scheme": "supersetColors",
            "refresh_frequency": REFRESH.get(title, 0),
            "timed_refresh_immune_slices": [], "expanded_slices": {}, "label_colors": {},
            "shared_label_colors": [], "cross_filters_enabled": True,
            "positions": positions, "default_filters": "{}"}
