"""The catalog's tables: the control plane every other part of Sentinel reads
(docs/architecture.md, Contracts).

Alembic migrations in `catalog/migrations` create exactly these; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

PIPELINE_STATUSES = ("active", "paused", "stopped")
SEVERITIES = ("critical", "warning", "info")
RULE_STATES = ("ok", "error")
ROLES = ("admin", "analyst", "viewer")


def _now() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


pipelines = Table(
    "pipelines",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("kafka_topic", String(249), nullable=False, unique=True),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("key_field", String(128), nullable=True),
    Column("partitions", Integer, nullable=False, server_default="3"),
    Column("schema", JSONB, nullable=False),
    Column("schema_version", Integer, nullable=False, server_default="1"),
    Column("rules_version", BigInteger, nullable=False, server_default="0"),
    _now(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("status in ('active','paused','stopped')", name="status"),
)

pipeline_schema_versions = Table(
    "pipeline_schema_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pipeline_id", Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("schema", JSONB, nullable=False),
    Column("key_field", String(128), nullable=True),
    Column("created_by", String(200), nullable=True),
    _now(),
    UniqueConstraint("pipeline_id", "schema_version", name="pipeline_version"),
)

rules = Table(
    "rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pipeline_id", Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False),
    Column("rule_expression", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("score", Float, nullable=True),
    Column("description", Text, nullable=True),
    Column("is_active", Boolean, nullable=False, server_default="true"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("state", String(8), nullable=False, server_default="ok"),
    Column("error_message", Text, nullable=True),
    _now(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("severity in ('critical','warning','info')", name="severity"),
    CheckConstraint("state in ('ok','error')", name="state"),
    Index("ix_rules_pipeline_active", "pipeline_id", "is_active"),
)

rule_versions = Table(
    "rule_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("rule_id", Integer, nullable=False, index=True),
    Column("pipeline_id", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("rule_expression", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("score", Float, nullable=True),
    Column("description", Text, nullable=True),
    Column("is_active", Boolean, nullable=False),
    Column("changed_by", String(200), nullable=True),
    _now(),
    UniqueConstraint("rule_id", "version", name="rule_version"),
)

fraud_alerts = Table(
    "fraud_alerts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("alert_id", String(64), nullable=False, unique=True),
    Column("pipeline_id", Integer, nullable=False),
    Column("rule_id", Integer, nullable=False),
    Column("rule_version", Integer, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("score", Float, nullable=True),
    Column("rule_description", Text, nullable=True),
    Column("event_id", String(512), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=True),
    Column("alert_timestamp", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("transaction_data", JSONB, nullable=False),
    Column("kafka_partition", Integer, nullable=True),
    Column("kafka_offset", BigInteger, nullable=True),
    Index("ix_fraud_alerts_pipeline_ts", "pipeline_id", "alert_timestamp", "id"),
    Index("ix_fraud_alerts_rule_ts", "rule_id", "alert_timestamp"),
    Index("ix_fraud_alerts_severity_ts", "severity", "alert_timestamp"),
    Index("ix_fraud_alerts_event", "event_id"),
)

stream_runs = Table(
    "stream_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pipeline_id", Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False),
    Column("dagster_run_id", String(64), nullable=True),
    Column("query_id", String(64), nullable=True),
    Column("schema_version", Integer, nullable=True),
    Column("status", String(16), nullable=False, server_default="starting"),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("last_batch_id", BigInteger, nullable=True),
    Column("last_batch_at", DateTime(timezone=True), nullable=True),
    Column("input_rows", BigInteger, nullable=False, server_default="0"),
    Column("last_batch_rows", BigInteger, nullable=True),
    Column("rows_per_second", Float, nullable=True),
    Column("batch_duration_ms", BigInteger, nullable=True),
    Column("alerts", BigInteger, nullable=False, server_default="0"),
    Column("quarantined", BigInteger, nullable=False, server_default="0"),
    Column("kafka_lag", BigInteger, nullable=True),
    Column("rules_version", BigInteger, nullable=True),
    Column("restarts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Index("ix_stream_runs_pipeline_started", "pipeline_id", "started_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("entity_id", Integer, nullable=True),
    Column("before", JSONB, nullable=True),
    Column("after", JSONB, nullable=True),
    Index("ix_audit_log_entity", "entity", "entity_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("key_hash", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("is_active", Boolean, nullable=False, server_default="true"),
    _now(),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("role in ('admin','analyst','viewer')", name="role"),
)

BACKTEST_KINDS = ("backtest", "lookback")
BACKTEST_STATUSES = ("queued", "running", "succeeded", "failed")

# Rule backtests (a candidate expression over the archive, results only) and look-backs (a new
# rule alerting on the archive of its last N days); both are queued here by the API and run by
# ``streaming.backtest`` (CLI or the Dagster job ``rule_backtest``).
backtests = Table(
    "backtests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pipeline_id", Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False, server_default="backtest"),
    Column("rule_id", Integer, nullable=True),
    Column("rule_version", Integer, nullable=True),
    Column("rule_expression", Text, nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("until", DateTime(timezone=True), nullable=False),
    Column("sample_size", Integer, nullable=False, server_default="20"),
    Column("status", String(16), nullable=False, server_default="queued"),
    Column("delta_version", BigInteger, nullable=True),
    Column("results", JSONB, nullable=True),
    Column("error", Text, nullable=True),
    Column("requested_by", String(200), nullable=True),
    _now(),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("kind in ('backtest','lookback')", name="kind"),
    CheckConstraint("status in ('queued','running','succeeded','failed')", name="status"),
    CheckConstraint("since < until", name="range"),
    Index("ix_backtests_status", "status", "id"),
    Index("ix_backtests_pipeline", "pipeline_id", "id"),
)
