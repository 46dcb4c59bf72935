"""Superset is provisioned again after marts are materialized, and only then."""

from __future__ import annotations

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    RunRequest,
    SkipReason,
    build_sensor_context,
)

from orchestration.superset.resources import SupersetResource
from orchestration.superset.sensors import superset_after_marts

pytestmark = pytest.mark.unit


class _Up(SupersetResource):
    def reachable(self) -> bool:
        return True


def _built(instance: DagsterInstance, key: list[str]) -> None:
    instance.report_runless_asset_event(AssetMaterialization(AssetKey(key)))


def _tick(instance: DagsterInstance, superset: SupersetResource, cursor: str | None = None):
    context = build_sensor_context(instance=instance, cursor=cursor,
                                   resources={"superset": superset})
    return superset_after_marts(context), context.cursor


def test_no_superset_configured_never_touches_it():
    with DagsterInstance.ephemeral() as instance:
        _built(instance, ["gold", "dim_entity_risk"])
        result, _ = _tick(instance, SupersetResource(url=None))
        assert isinstance(result, SkipReason) and "unset" in result.skip_message


def test_one_provisioning_per_new_mart_materialization():
    with DagsterInstance.ephemeral() as instance:
        up = _Up(url="http://127.0.0.1:1")
        result, cursor = _tick(instance, up)
        assert isinstance(result, SkipReason)  # no mart built yet: nothing to swap in

        _built(instance, ["gold", "fct_alerts_daily"])
        _built(instance, ["staging", "stg_events"])
        result, cursor = _tick(instance, up, cursor)
        assert isinstance(result, RunRequest) and result.run_key == f"marts-{cursor}"

        again, same = _tick(instance, up, cursor)  # nothing new: no second run
        assert isinstance(again, SkipReason) and same == cursor

        _built(instance, ["stg", "other"])
        assert isinstance(_tick(instance, up, cursor)[0], SkipReason)  # not a mart

        _built(instance, ["gold", "dim_entity_risk"])
        result, newer = _tick(instance, up, cursor)
        assert isinstance(result, RunRequest) and int(newer) > int(cursor)


def test_superset_down_keeps_the_cursor_for_a_later_tick():
    with DagsterInstance.ephemeral() as instance:
        _built(instance, ["gold", "fct_alerts_hourly"])
        result, cursor = _tick(instance, SupersetResource(url="http://127.0.0.1:1"))
        assert isinstance(result, SkipReason) and "not answering" in result.skip_message
        assert cursor is None
