"""The dbt project ``lakehouse_models`` as Dagster assets.

Every dbt model is an asset (group ``lakehouse_models``) and every dbt test an asset check.
The dbt sources map onto the lake's observed assets (``bronze_events``, ``quarantine``,
``silver_alerts`` of ``orchestration.assets``; see ``meta.dagster.asset_key`` in
``lakehouse_models/models/staging/_sources.yml``), so the models sit downstream of them.

Two ``@dbt_assets`` definitions:

- ``lakehouse_models_daily``: the day-grained facts (dbt ``incremental``, insert_overwrite by
  their date column, Delta), partitioned by UTC day (``DAILY_PARTITIONS``, from ``DAY_START``,
  today's partition included). A run of a partition range passes the range to dbt as
  ``--vars {"min_date": <first day>, "max_date": <day after the last>}`` and dbt rewrites only
  those days' partitions (single-run backfills: a range is one ``dbt build``);
- ``lakehouse_models``: the staging views and ``dim_entity_risk`` (a table, rebuilt in full).

Before each build the union views are synced (``catalog.lakehouse_tables.register_all``,
cheap when nothing changed). ``lakehouse_tables_sync`` does the same every minute so SQL
clients see new pipelines without waiting for a build. The job ``build_lakehouse_models``
(every model; the unpartitioned ones are rebuilt in every run) is launched

- on a schedule: ``lakehouse_models_hourly``, at minute 25 of every hour, for today's partition
  (and yesterday's too in the first hour of a day, for the events of its last minutes);
- when the lake changes: the sensor ``lakehouse_models_on_lake_change`` compares the latest
  Delta version of every pipeline's bronze, quarantine and alerts tables with those of the last
  build it launched and, when any moved, reads the new commits' files to find the days they
  touched (``event_date``/``quarantine_date`` partition values, else the ``event_time`` range of
  their statistics); it launches one run for the partitions from the first touched day to the
  last (today included; every day since ``DAY_START`` when a commit is unreadable), at most
  every ``LAKE_CHANGE_INTERVAL`` seconds, never while a build is queued or running nor while
  the SQL endpoint is down; run key = the versions, so a given state of the lake is built once.

A ``dbt build`` whose only errors are a dropped connection to the SQL endpoint (the Thrift
Server closed one session's socket: ``TSocket read 0 bytes``, a reset, a refused connect) is
retried as a whole step, up to ``TRANSIENT_RETRIES`` times after ``TRANSIENT_RETRY_WAIT``
seconds (Dagster ``RetryRequested``); a failing data test or a SQL error fails the run at once.

The manifest is built at load time with ``dbt parse`` when it is missing or older than the
project's files (``dagster dev`` re-parses through ``prepare_if_dev``).
"""

import hashlib
import json
import re
import shutil
import sys
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    BackfillPolicy,
    DagsterRunStatus,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RetryRequested,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from orchestration.resources import CatalogResource, LakeResource, ObjectStoreResource

PROJECT_DIR = Path(__file__).resolve().parent.parent / "lakehouse_models"
GROUP = "lakehouse_models"



def _find_dbt() -> str:
    """The venv's dbt even when the venv is not activated (dagster started by path, or a code
    server whose interpreter path points outside the venv)."""
    candidates = [
        Path(sys.executable).with_name("dbt"),
        Path(sys.prefix) / "bin" / "dbt",
        PROJECT_DIR.parent / ".venv" / "bin" / "dbt",
    ]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    return shutil.which("dbt") or "dbt"


DBT_EXECUTABLE = _find_dbt()

lakehouse_project = DbtProject(project_dir=PROJECT_DIR, profiles_dir=PROJECT_DIR)


def _manifest_is_stale() -> bool:
    manifest = lakehouse_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [p for ext in ("*.sql", "*.yml") for p in PROJECT_DIR.rglob(ext)
               if "target" not in p.parts]
    return any(p.stat().st_mtime > built for p in sources)


def ensure_manifest() -> Path:
    """``target/manifest.json`` of the project, parsed again when stale.

    (Not ``prepare_if_dev()``: it runs a bare ``dbt`` from PATH, which a venv that is not
    activated does not have.)"""
    if _manifest_is_stale():
        DbtCliResource(project_dir=lakehouse_project, dbt_executable=DBT_EXECUTABLE).cli(
            ["parse", "--quiet"], target_path=lakehouse_project.target_path,
        ).wait()
    return lakehouse_project.manifest_path


class SentinelDbtTranslator(DagsterDbtTranslator):
    """Models in one group; tests as asset checks (the default in dagster-dbt 0.29)."""

    def get_group_name(self, dbt_resource_props):  # type: ignore[override]
        if dbt_resource_props.get("resource_type") == "source":
            return super().get_group_name(dbt_resource_props)
        return GROUP


DAY_START = "2020-01-01"  # first day partition; older days are built by a full refresh only
DAILY_PARTITIONS = DailyPartitionsDefinition(start_date=DAY_START, end_offset=1)
DAILY_SELECT = "config.materialized:incremental"  # the day-grained facts
_TRANSLATOR = SentinelDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def partition_vars(start: datetime, end: datetime) -> dict[str, str]:
    """dbt ``--vars`` of a day partition (range): ``min_date`` its first day, ``max_date`` the
    day after its last (exclusive), as ISO dates."""
    return {"min_date": start.date().isoformat(), "max_date": end.date().isoformat()}


TRANSIENT_RETRIES = 2
TRANSIENT_RETRY_WAIT = 20  # seconds
# what dbt-spark reports when the SQL endpoint dropped or refused the connection of a node
TRANSIENT_ERROR = re.compile(
    r"TSocket read 0 bytes|TTransportException|Connection reset|Broken pipe|Connection refused"
    r"|Could not connect|Connection aborted|EOF occurred", re.IGNORECASE)


def _node_log_text(log_lines: Iterable[str], nodes: set[str]) -> dict[str, str]:
    """What dbt's JSON debug log (``dbt.log``) says of each of ``nodes``: adapter messages and
    stack traces, which keep the cause a node's one-line result message may have lost."""
    text: dict[str, list[str]] = {n: [] for n in nodes}
    for line in log_lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict):
            continue
        node = (data.get("node_info") or {}).get("unique_id") or data.get("unique_id")
        if node in text:
            text[node] += [str(data.get(k)) for k in ("exc_info", "base_msg", "exc") if data.get(k)]
    return {n: "\n".join(t) for n, t in text.items()}


def transient_failure(run_results: dict, log_lines: Iterable[str] = ()) -> list[str]:
    """The nodes of a failed ``dbt build`` (its ``run_results.json`` and ``dbt.log`` lines) when
    every one of them errored on a dropped SQL-endpoint connection, else ``[]`` (a failing
    test, a SQL error, or no error at all: nothing a retry would fix)."""
    failed = [r for r in run_results.get("results", []) if r.get("status") in ("error", "fail")]
    if not failed or any(r.get("status") != "error" for r in failed):
        return []
    ids = [r.get("unique_id", "?") for r in failed]
    logged = _node_log_text(log_lines, set(ids))
    if all(TRANSIENT_ERROR.search(f"{r.get('message') or ''}\n{logged.get(n, '')}")
           for r, n in zip(failed, ids, strict=True)):
        return ids
    return []


def _dbt_build(context: AssetExecutionContext, dbt: DbtCliResource, args: list[str]):
    """``dbt build`` with the run's events streamed; a build that failed only on dropped
    SQL-endpoint connections asks Dagster for a retry of the step."""
    invocation = dbt.cli(args, context=context, raise_on_error=False)
    yield from invocation.stream()
    error = invocation.get_error()
    if error is None:
        return
    try:
        log = invocation.target_path / "dbt.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        nodes = transient_failure(invocation.get_artifact("run_results.json"), lines)
    except (OSError, ValueError):  # no run_results.json: dbt died before running a node
        nodes = []
    if nodes:
        context.log.warning("dbt build lost its SQL-endpoint connection in %s; retrying the step "
                            "in %ss (attempt %s of %s)", ", ".join(nodes), TRANSIENT_RETRY_WAIT,
                            context.retry_number + 1, TRANSIENT_RETRIES)
        raise RetryRequested(max_retries=TRANSIENT_RETRIES,
                             seconds_to_wait=TRANSIENT_RETRY_WAIT) from error
    raise error


def _sync_views(context: AssetExecutionContext) -> None:
    from catalog.lakehouse_tables import register_all

    report = register_all()
    context.log.info("lakehouse tables: %s", report.summary())


@dbt_assets(
    manifest=ensure_manifest(),
    project=lakehouse_project,
    select=DAILY_SELECT,
    partitions_def=DAILY_PARTITIONS,
    backfill_policy=BackfillPolicy.single_run(),
    dagster_dbt_translator=_TRANSLATOR,
    name="lakehouse_models_daily",
    op_tags={"sentinel/kind": "dbt"},
)
def lakehouse_models_daily(context: AssetExecutionContext, dbt: DbtCliResource):
    """Sync the union views, then ``dbt build`` the day-grained facts for the run's days."""
    _sync_views(context)
    window = context.partition_time_window
    dbt_vars = partition_vars(window.start, window.end)
    context.log.info("rebuilding days %s", dbt_vars)
    yield from _dbt_build(context, dbt, ["build", "--vars", json.dumps(dbt_vars)])


@dbt_assets(
    manifest=ensure_manifest(),
    project=lakehouse_project,
    exclude=DAILY_SELECT,
    backfill_policy=BackfillPolicy.single_run(),
    dagster_dbt_translator=_TRANSLATOR,
    name="lakehouse_models",
    op_tags={"sentinel/kind": "dbt"},
)
def lakehouse_models(context: AssetExecutionContext, dbt: DbtCliResource):
    """Sync the union views, then ``dbt build`` the staging views and the other marts."""
    _sync_views(context)
    yield from _dbt_build(context, dbt, ["build"])


BUILD_JOB = define_asset_job(
    "build_lakehouse_models",
    selection=AssetSelection.assets(lakehouse_models, lakehouse_models_daily),
    tags={"sentinel/kind": "dbt"},
    description="Rebuilds every dbt model: the day-grained facts for the run's day partitions, "
                "the staging views and dim_entity_risk in full.",
)


def day_key(day: date) -> str:
    return day.isoformat()


def run_request_for_days(first: date, last: date, *, run_key: str | None,
                         tags: dict[str, str]) -> RunRequest:
    """One run of ``build_lakehouse_models`` over the day partitions ``first``..``last``."""
    if first == last:
        return RunRequest(run_key=run_key, partition_key=day_key(first), tags=tags)
    return RunRequest(run_key=run_key, tags={
        **tags, ASSET_PARTITION_RANGE_START_TAG: day_key(first),
        ASSET_PARTITION_RANGE_END_TAG: day_key(last)})


NEAR_MIDNIGHT = timedelta(hours=1)


def utc_now() -> datetime:
    """The sensor's clock (a function, so that tests can fix it)."""
    return datetime.now(UTC)


def recent_days(now: datetime) -> set[date]:
    """Today (UTC), and yesterday while ``now`` is within ``NEAR_MIDNIGHT`` of its end (events
    of its last minutes may still be arriving or unbuilt)."""
    now = now.astimezone(UTC)
    return {now.date(), (now - NEAR_MIDNIGHT).date()}


def days_to_build(touched: Iterable[date] | None, now: datetime) -> tuple[date, date]:
    """The partitions (first, last, inclusive) a build after a lake change covers: every day
    the new commits touched plus ``recent_days``; ``touched=None`` (unknown) = every day
    since ``DAY_START``. Clamped to the partitions that exist (``DAY_START``..today)."""
    today = now.astimezone(UTC).date()
    start = date.fromisoformat(DAY_START)
    days = recent_days(now) | (set(touched) if touched is not None else {start})
    first, last = max(min(days), start), min(max(days), today)
    return first, max(first, last)


@schedule(job=BUILD_JOB, cron_schedule="25 * * * *", name="lakehouse_models_hourly",
          execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING,
          description="Rebuilds today's day partition of the marts (and yesterday's in the "
                      "first hour of a day) with the staging views and dim_entity_risk.")
def lakehouse_models_hourly(context: ScheduleEvaluationContext):
    now = context.scheduled_execution_time or datetime.now(UTC)
    days = recent_days(now)
    return run_request_for_days(min(days), max(days), run_key=None,
                                tags={"sentinel/kind": "dbt", "sentinel/trigger": "schedule"})


@sensor(minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Registers new/changed pipelines' Delta tables in the SQL endpoint and "
                    "rebuilds the union views (a no-op when nothing changed).")
def lakehouse_tables_sync(context: SensorEvaluationContext):
    from catalog.lakehouse_tables import LakehouseUnavailable, register_all

    try:
        report = register_all()
    except LakehouseUnavailable as exc:
        return SkipReason(f"SQL endpoint down: {exc}")
    return SkipReason(report.summary())


LAKE_CHANGE_INTERVAL = 600
MAX_COMMITS_READ = 500  # more new commits than this in one table: treat every day as touched
_ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
           DagsterRunStatus.STARTED]
_LOG_ENTRY = re.compile(r"^(\d{20})\.(json|checkpoint\..*)$")


def _log_location(path: str) -> tuple[str | None, str]:
    """(bucket, key prefix) of a table's ``_delta_log`` on S3, or (None, local directory)."""
    if path.startswith(("s3a://", "s3://")):
        bucket, _, key = path.split("://", 1)[1].partition("/")
        return bucket, f"{key.rstrip('/')}/_delta_log/"
    return None, str(Path(path.removeprefix("file://").removeprefix("file:")) / "_delta_log")


def latest_delta_version(path: str, s3_client=None) -> int | None:
    """The newest version in a Delta table's ``_delta_log`` listing (None: no table there).

    Only the file names are read (no state replay): cheap on disk and on S3/R2."""
    names: list[str] = []
    bucket, prefix = _log_location(path)
    if bucket is not None:
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                         Prefix=prefix):
            names += [o["Key"][len(prefix):] for o in page.get("Contents", [])]
    else:
        log_dir = Path(prefix)
        names = [p.name for p in log_dir.iterdir()] if log_dir.is_dir() else []
    versions = [int(m[1]) for n in names if (m := _LOG_ENTRY.match(n))]
    return max(versions) if versions else None


def _read_commit(path: str, version: int, s3_client=None) -> str | None:
    """The text of commit ``version`` of a Delta table (None: not there any more)."""
    bucket, prefix = _log_location(path)
    name = f"{version:020d}.json"
    if bucket is not None:
        try:
            return s3_client.get_object(Bucket=bucket, Key=prefix + name)["Body"].read().decode()
        except s3_client.exceptions.NoSuchKey:
            return None
    file = Path(prefix) / name
    return file.read_text() if file.is_file() else None


_DAY_COLUMNS = ("event_date", "quarantine_date")


def _days_between(low: str, high: str) -> set[date]:
    first = datetime.fromisoformat(low.replace("Z", "+00:00")).astimezone(UTC).date()
    last = datetime.fromisoformat(high.replace("Z", "+00:00")).astimezone(UTC).date()
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}


def commit_days(commit: str) -> set[date] | None:
    """The UTC days whose rows a Delta commit (its JSON lines) added or removed: the files'
    ``event_date``/``quarantine_date`` partition values, else the ``event_time`` range of their
    statistics. Files rewritten without a data change (OPTIMIZE) touch no day; None when a
    changed file tells neither (its days are unknown)."""
    days: set[date] = set()
    for line in commit.splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        file = action.get("add") or action.get("remove")
        if not file or file.get("dataChange") is False:
            continue
        values = file.get("partitionValues") or {}
        found = [values[c] for c in _DAY_COLUMNS if values.get(c)]
        if found:
            days |= {date.fromisoformat(v) for v in found}
            continue
        stats = json.loads(file["stats"]) if file.get("stats") else {}
        low = (stats.get("minValues") or {}).get("event_time")
        high = (stats.get("maxValues") or {}).get("event_time")
        if stats.get("numRecords") == 0:
            continue
        if not (low and high):
            return None
        days |= _days_between(low, high)
    return days


def touched_days(path: str, since: int | None, latest: int, s3_client=None) -> set[date] | None:
    """The days the commits ``since`` (exclusive; None: from the first) .. ``latest`` of a
    Delta table touched; None when unknown (a commit no longer in the log, or too many)."""
    first = 0 if since is None else since + 1
    if latest - first + 1 > MAX_COMMITS_READ:
        return None
    days: set[date] = set()
    for version in range(first, latest + 1):
        commit = _read_commit(path, version, s3_client)
        found = commit_days(commit) if commit is not None else None
        if found is None:
            return None
        days |= found
    return days


def lake_tables(catalog: CatalogResource, lake: LakeResource,
                object_store: ObjectStoreResource) -> tuple[dict[str, tuple[str, int]], object]:
    """``{"<pipeline id>/<asset>": (path, latest Delta version)}`` of every existing lake table
    and the S3 client used (None on a local warehouse)."""
    found: dict[str, tuple[str, int]] = {}
    s3 = None
    for p in catalog.pipelines():
        for key, path in lake.tables(p["id"]).items():
            if s3 is None and path.startswith(("s3a://", "s3://")):
                s3 = object_store._s3()
            version = latest_delta_version(path, s3)
            if version is not None:
                found[f"{p['id']}/{key}"] = (path, version)
    return found, s3


def lake_versions(catalog: CatalogResource, lake: LakeResource,
                  object_store: ObjectStoreResource) -> dict[str, int]:
    """``{"<pipeline id>/<asset>": latest Delta version}`` of every existing lake table."""
    return {k: v for k, (_, v) in lake_tables(catalog, lake, object_store)[0].items()}


def endpoint_up() -> bool:
    """True when the Spark SQL endpoint accepts a session (a build would fail without it)."""
    from catalog.lakehouse_tables import LakehouseUnavailable, connect

    try:
        connect().close()
    except LakehouseUnavailable:
        return False
    return True


@sensor(job=BUILD_JOB, minimum_interval_seconds=LAKE_CHANGE_INTERVAL,
        default_status=DefaultSensorStatus.RUNNING,
        description="Rebuilds the dbt models, for the days touched, when a pipeline's "
                    "bronze/quarantine/alerts Delta tables have new commits since the last "
                    "build this sensor launched.")
def lakehouse_models_on_lake_change(context: SensorEvaluationContext, catalog: CatalogResource,
                                    lake: LakeResource, object_store: ObjectStoreResource):
    tables, s3 = lake_tables(catalog, lake, object_store)
    versions = {k: v for k, (_, v) in tables.items()}
    if not versions:
        return SkipReason("no lake tables yet")
    previous = json.loads(context.cursor) if context.cursor else {}
    changed = sorted(k for k, v in versions.items() if previous.get(k) != v)
    if not changed:
        return SkipReason(f"no new commits in {len(versions)} lake tables")
    if not endpoint_up():  # the cursor stays: the first tick with the endpoint up builds
        return SkipReason(f"{len(changed)} tables changed; the SQL endpoint is down")
    active = context.instance.get_runs(
        RunsFilter(job_name=BUILD_JOB.name, statuses=_ACTIVE), limit=1)
    if active:  # the cursor stays: the next tick sees the same change
        return SkipReason(f"{len(changed)} tables changed; build run {active[0].run_id} "
                          "is still in progress")
    touched: set[date] | None = set()
    for key in changed:
        path, latest = tables[key]
        since = previous.get(key)
        if since is not None and since >= latest:  # the table was recreated: read it all
            since = None
        days = touched_days(path, since, latest, s3)
        touched = None if days is None or touched is None else touched | days
    first, last = days_to_build(touched, utc_now())
    context.update_cursor(json.dumps(versions, sort_keys=True))
    state = hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:16]
    return run_request_for_days(first, last, run_key=f"lake-{state}", tags={
        "sentinel/kind": "dbt", "sentinel/trigger": "lake_change",
        "sentinel/changed_tables": ",".join(changed)[:200],
        "sentinel/days": f"{first.isoformat()}..{last.isoformat()}"})


def dbt_resource() -> DbtCliResource:
    """The ``dbt`` resource the assets need (add under ``resources={"dbt": ...}``)."""
    return DbtCliResource(project_dir=lakehouse_project, profiles_dir=str(PROJECT_DIR),
                          dbt_executable=DBT_EXECUTABLE)


DBT_ASSETS = [lakehouse_models, lakehouse_models_daily]
DBT_SCHEDULES = [lakehouse_models_hourly]
DBT_SENSORS = [lakehouse_tables_sync, lakehouse_models_on_lake_change]
