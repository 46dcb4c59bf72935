"""The one settings object of Sentinel Lakehouse (env prefix ``SENTINEL_``).

Every part of the platform (API, streaming, orchestration, scripts) reads its configuration
from here. In ``production`` mode secrets have no defaults; in ``development`` mode (the local
stack) they default to the loopback services the stack scripts start.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_DATABASE_URL = "postgresql+psycopg2://sentinel:sentinel@127.0.0.1:5432/sentinel"


class Settings(BaseSettings):
    """Platform configuration; see `.env.example` for every variable."""

    model_config = SettingsConfigDict(
        env_prefix="SENTINEL_", env_file=".env", extra="ignore", case_sensitive=False
    )

    mode: Literal["development", "production"] = "development"
    home: Path = Field(default=PROJECT_ROOT / ".sentinel", description="runtime state directory")

    # Catalog (Postgres)
    database_url: SecretStr | None = None

    # Redis
    redis_url: SecretStr | None = None
    redis_alert_ttl_seconds: int = 7 * 24 * 3600
    redis_stream_maxlen: int = 100_000

    # Kafka
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_default_partitions: int = 3
    kafka_replication_factor: int = 1

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_max_page_size: int = 1000
    api_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="largest request body the API reads; larger "
        "ones get 413 before the caller's key is even checked")

    # Object store: local warehouse unless S3/R2 credentials are set
    warehouse: str | None = None
    s3_endpoint: str | None = None
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_bucket: str = "sentinel"
    s3_path_style: bool = True

    # Spark
    spark_master: str = "local[*]"
    spark_class_archive: bool = Field(
        default=True, description="Spark drivers map the JVM class-data archive built by "
        "`python -m streaming.class_archive` (faster stream starts)")
    spark_compile_huge_methods: bool = Field(
        default=True, description="Spark drivers let the JIT compile methods over 8,000 bytes "
        "of bytecode (-XX:-DontCompileHugeMethods): Spark's generated code for a wide stage "
        "otherwise runs interpreted")
    spark_driver_memory: str = Field(
        default="3g", pattern=r"^[0-9]+[kmgt]$", description="heap of a Spark driver JVM, "
        "which in local mode runs the tasks too: an archive batch of a 2,000,000-record cap "
        "at 20,000 events/s ran out of Spark's 1g default")
    trigger_interval_seconds: float = Field(
        default=60.0, ge=0, description="the archive's micro-batch trigger (bronze, quarantine, "
        "silver alerts): how fresh the lake is; alerts reach Postgres and Redis through the "
        "detect path regardless. Each batch has a fixed cost of a few CPU seconds")
    max_offsets_per_trigger: int = Field(
        default=2_000_000, ge=1, description="the most Kafka records one archive "
        "micro-batch takes: with the 60 s trigger it caps what the archive sustains at this / "
        "60 events/s (33,000/s; 200,000 held it to 3,300/s). It bounds a backlog's batches")
    detect_checkpoint_seconds: float = Field(
        default=30.0, gt=0, description="the detect query's real-time batch length: how often "
        "it checkpoints its Kafka offsets (records are processed as they arrive)")
    rule_poll_seconds: float = Field(
        default=1.0, gt=0, description="how often a stream checks the catalog for rule changes "
        "it was not told of (the API announces each change; this poll is the fallback)")
    alerts_topic_prefix: str = Field(
        default="sentinel-alerts.", description="a pipeline's alerts topic is this + the name "
        "of its events topic")
    archive_small_batch_rows: int = Field(
        default=1_000_000, ge=0, description="an archive batch after one of fewer rows (and "
        "fewer new records since) runs in one task with its Delta writes one after another: "
        "about one core (600,000 records in 20-35 s), the other left to detect; wide, at "
        "10,000 events/s the archive's batches took detect's alert p99 from 1.4 to 4.3 s. "
        "Larger batches (a backlog, over 16,000 events/s at the 60 s trigger) run wide "
        "(0: always wide)")
    archive_task_slots: int = Field(
        default=2, ge=1, description="local task slots beside the detect queries' (one per "
        "Kafka partition) for the archive's micro-batches")
    stream_host_task_slots: int = Field(
        default=48, ge=2, description="local task slots of the shared stream host (each "
        "pipeline's detect query holds one per partition of its topic)")

    # Orchestration (Dagster): stream supervision and maintenance
    stream_max_attempts: int = 5
    stream_backoff_seconds: float = 30
    stream_backoff_max_seconds: float = 600
    stream_heartbeat_seconds: float = 60
    stream_stop_grace_seconds: float = Field(
        default=90, ge=0, description="a paused or stopped pipeline's stream (or one on an old "
        "schema version) stops itself after its batch; the watcher terminates its run only when "
        "it is still live this long after the change")
    stream_shared_app: bool = Field(
        default=False, description="run every pipeline's query in one shared Spark application "
        "(python -m streaming.host) instead of one streaming.job process per pipeline")
    stream_host_port: int = Field(default=8791, description="the stream host's local JSON API")
    stream_host_idle_seconds: float = Field(
        default=60, ge=0, description="the stream host exits after this long without a query")
    stream_host_start_timeout_seconds: float = 300
    watcher_interval_seconds: int = Field(
        default=15, ge=1, description="pipeline_watcher's minimum interval between ticks"
    )
    watch_pipelines_like: str | None = Field(
        default=None, description="SQL LIKE pattern: the watcher only manages matching pipelines"
    )
    compaction_spark_master: str = "local[2]"
    superset_url: str | None = Field(
        default=None, description="Superset that Dagster provisions again after each dbt build "
        "(set by `make up` when it starts Superset; unset: Dagster leaves Superset alone)"
    )

    # Rule language limits
    rule_max_length: int = 4000
    rule_max_depth: int = 40
    rule_budget_seconds: float = Field(
        default=5.0, gt=0, description="a new or edited rule evaluated alone on a sample of "
        "recent events must finish within this time, else it is set to state=error")
    rule_budget_sample_rows: int = Field(
        default=1000, ge=1, description="how many events the rule budget check evaluates on")
    rule_budget_sample_refresh_seconds: float = Field(
        default=300.0, gt=0, description="a stream re-reads its budget sample of recent events "
        "after this long (after a minute while it holds fewer than rule_budget_sample_rows)")
    velocity_max_window_seconds: int = Field(
        default=86400, gt=0, description="the longest window a velocity rule may use "
        "(RANGE BETWEEN INTERVAL n unit PRECEDING AND CURRENT ROW)")
    velocity_allowed_lateness_seconds: int = Field(
        default=300, ge=0, description="an event whose time is more than this behind the "
        "latest event time already seen in its Kafka partition is too late for velocity rules "
        "(quarantined with reason 'late')")
    velocity_trigger_seconds: float = Field(
        default=0.5, ge=0, description="the velocity query's micro-batch trigger: a velocity "
        "alert waits up to this long plus one batch (a batch without new records does not run)")
    velocity_max_offsets_per_trigger: int = Field(
        default=50_000, ge=1, description="the most Kafka records one velocity micro-batch "
        "takes: bounds a backlog's batches, so the alerts behind it keep coming")
    velocity_state_partitions: int = Field(
        default=2, ge=1, description="partitions of the velocity query's state, each a RocksDB "
        "store loaded and committed by every batch: more spread a large state over more cores, "
        "fewer cost a small batch less. A query's checkpoint keeps the number it started with")
    velocity_state_cache_mb: int = Field(
        default=128, ge=8, description="RocksDB block cache of each velocity state partition, "
        "off the JVM heap: a batch reads the logs of every entity it sees, and at Spark's 8 MB "
        "most of those reads missed the cache")
    velocity_engine: Literal["auto", "jvm", "python"] = Field(
        default="auto", description="where the velocity query's stateful steps run: 'jvm' "
        "(compiled processors, the built velocity jar; `python -m streaming.velocity_jar`), "
        "'python' (the reference processors, far slower) or 'auto' (jvm when the jar is "
        "built, else python with a warning)")

    @model_validator(mode="after")
    def _require_secrets_in_production(self) -> Settings:
        if self.mode == "production":
            missing = [
                name for name in ("database_url", "redis_url") if getattr(self, name) is None
            ]
            if missing:
                names = ", ".join(f"SENTINEL_{m.upper()}" for m in missing)
                raise ValueError(f"production mode requires {names} to be set")
        return self

    @property
    def database_dsn(self) -> str:
        """SQLAlchemy URL of the catalog database."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return DEV_DATABASE_URL

    @property
    def redis_dsn(self) -> str:
        """redis-py URL."""
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        return "redis://127.0.0.1:6379/0"

    @property
    def uses_object_store(self) -> bool:
        """True when the warehouse lives on S3/R2 rather than the local disk."""
        return self.s3_access_key_id is not None and self.s3_secret_access_key is not None

    @property
    def warehouse_root(self) -> str:
        """Root URI of the Delta warehouse (`s3a://bucket` or a local path)."""
        if self.warehouse:
            return self.warehouse.rstrip("/")
        if self.uses_object_store:
            return f"s3a://{self.s3_bucket}"
        return str(self.home / "warehouse")

    @property
    def admin_key_file(self) -> Path:
        """Where `make up` writes the first admin API key (mode 0600)."""
        return self.home / "admin-api-key"

    @property
    def jars_dir(self) -> Path:
        return self.home / "jars"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()
