"""Sensor ``pipeline_watcher``: makes Dagster's stream runs match the ``pipelines`` table.

Every tick it (1) adds a ``pipelines`` partition for every new pipeline, (2) gathers the facts
(desired state, this pipeline's ``stream_pipeline`` runs by tag, open ``stream_runs`` rows),
(3) lets ``reconcile`` decide and (4) carries the decision out: RunRequests with idempotent
run keys, terminations through the run coordinator, ``failing`` marks in the catalog. When
nothing is launched the skip reason lists what each pipeline is waiting for.
"""


from datetime import UTC, datetime

from dagster import (
    AddDynamicPartitionsRequest,
    AssetObservation,
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from catalog.settings import get_settings
from orchestration.lake.assets import PIPELINES_PARTITIONS
from orchestration.lib.catalog import CatalogResource
from orchestration.lib.tags import KIND_TAG
from orchestration.streams import queries as q
from orchestration.streams.jobs import (
    PIPELINE_TAG,
    SCHEMA_TAG,
    stream_pipeline,
    stream_run_config,
)
from orchestration.streams.reconcile import (
    LIVE_STATUSES,
    Launch,
    MarkFailing,
    ObservedRun,
    Terminate,
    Wait,
    error_summary,
    reconcile,
)
from orchestration.streams.resources import StreamPolicyResource

SENSOR_INTERVAL_SECONDS = get_settings().watcher_interval_seconds  # default 15
LIVE = [DagsterRunStatus(s) for s in sorted(LIVE_STATUSES)]


def _observed(record, error: str | None = None) -> ObservedRun | None:
    run = record.dagster_run
    try:
        pid = int(run.tags[PIPELINE_TAG])
    except (KeyError, ValueError):
        return None
    version = run.tags.get(SCHEMA_TAG)
    ended = datetime.fromtimestamp(record.end_time, UTC) if record.end_time else None
    return ObservedRun(run.run_id, pid, int(version) if version else None, run.status.value,
                       record.create_timestamp, ended, error)


def dagster_error(instance, run_id: str) -> str | None:
    """Why Dagster failed a run the stream recorded nothing for (e.g. it never launched)."""
    events = instance.all_logs(run_id, of_type={DagsterEventType.ENGINE_EVENT,
                                                DagsterEventType.STEP_FAILURE,
                                                DagsterEventType.RUN_FAILURE})
    failure = None
    for entry in reversed(events):
        event = entry.dagster_event
        if event is None:
            continue
        data = event.step_failure_data if event.is_step_failure else (
            event.engine_event_data if event.event_type == DagsterEventType.ENGINE_EVENT
            else None)
        error = getattr(data, "error", None)
        if error is not None:
            return f"{error.message.strip()} ({event.message})"
        if event.event_type == DagsterEventType.RUN_FAILURE and failure is None:
            failure = event.message
    return failure


def observe_runs(instance, pipeline_ids: list[int], history: int) -> list:
    """Live runs of every pipeline plus the last ``history`` runs of each (for backoff)."""
    job = stream_pipeline.name
    records = {r.dagster_run.run_id: r for r in instance.get_run_records(
        RunsFilter(job_name=job, statuses=LIVE))}
    for pid in pipeline_ids:
        for r in instance.get_run_records(
                RunsFilter(job_name=job, tags={PIPELINE_TAG: str(pid)}), limit=history):
            records[r.dagster_run.run_id] = r
    return list(records.values())


def _terminate(context: SensorEvaluationContext, action: Terminate) -> bool:
    """Cancel the run unless it ended on its own since the runs were read (False then)."""
    run = context.instance.get_run_by_id(action.run_id)
    if run is None or run.is_finished:
        return False
    context.log.info("terminating run %s of pipeline %s: %s", action.run_id, action.pipeline_id,
                     action.reason)
    try:
        context.instance.run_coordinator.cancel_run(action.run_id)
    except Exception as exc:  # a run already gone must not stop the other decisions
        context.log.warning("could not terminate run %s: %s", action.run_id, exc)
    return True


@sensor(
    job=stream_pipeline,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Launch, stop and restart stream_pipeline runs to match the pipelines table.",
)
def pipeline_watcher(
    context: SensorEvaluationContext, catalog: CatalogResource, stream_policy: StreamPolicyResource
) -> SensorResult | SkipReason:
    policy = stream_policy.policy()
    desired = catalog.call(q.desired, stream_policy.only_names_like)
    mine = {p.id for p in desired}
    existing = catalog.call(q.pipeline_ids) if stream_policy.only_names_like else mine
    known = set(context.instance.get_dynamic_partitions(PIPELINES_PARTITIONS.name))
    new_keys = [str(p.id) for p in desired if str(p.id) not in known]
    records = observe_runs(context.instance, [p.id for p in desired], policy.max_attempts + 2)
    failed = [r.dagster_run.run_id for r in records
              if r.dagster_run.status == DagsterRunStatus.FAILURE]
    errors = catalog.call(q.errors_by_dagster_run, failed)
    for run_id in failed:
        if run_id not in errors and (error := dagster_error(context.instance, run_id)):
            errors[run_id] = error
    runs = [o for r in records if (o := _observed(r, errors.get(r.dagster_run.run_id)))
            and (o.pipeline_id in mine or o.pipeline_id not in existing)]
    actions = reconcile(desired, runs, catalog.call(q.open_streams), datetime.now(UTC), policy)

    requests, waits, events = [], [], []
    for a in actions:
        if isinstance(a, Launch):
            context.log.info("launching pipeline %s (attempt %s): %s", a.pipeline_id, a.attempt,
                             a.reason)
            requests.append(RunRequest(
                run_key=a.run_key, run_config=stream_run_config(a.pipeline_id),
                tags={PIPELINE_TAG: str(a.pipeline_id), SCHEMA_TAG: str(a.schema_version),
                      KIND_TAG: "stream", "sentinel/attempt": str(a.attempt)}))
        elif isinstance(a, Terminate):
            what = "terminating run" if _terminate(context, a) else "run ended by itself:"
            waits.append(f"pipeline {a.pipeline_id}: {what} {a.run_id[:8]} ({a.reason})")
        elif isinstance(a, MarkFailing):
            waits.append(f"pipeline {a.pipeline_id}: FAILING after {a.attempts} attempts, "
                         f"not relaunched: {error_summary(a.error)}")
            if catalog.call(q.mark_failing, a.pipeline_id, a.attempts, a.error):
                context.log.error(waits[-1])
                events.append(AssetObservation(
                    asset_key="bronze_events", partition=str(a.pipeline_id),
                    metadata={"stream_state": "failing", "attempts": a.attempts,
                              "last_error": a.error[:2000]}))
        elif isinstance(a, Wait):
            waits.append(a.reason)
    partitions = [AddDynamicPartitionsRequest(
        partitions_def_name=PIPELINES_PARTITIONS.name, partition_keys=new_keys)] if new_keys else []
    if not requests and not partitions and not events:
        return SkipReason("; ".join(waits) or "no pipelines in the catalog")
    return SensorResult(
        run_requests=requests, dynamic_partitions_requests=partitions, asset_events=events,
        skip_reason=None if requests else ("; ".join(waits) or "partitions updated"),
    )
