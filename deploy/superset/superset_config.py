"""Superset configuration of the local Sentinel stack (SUPERSET_CONFIG_PATH points here).

Loaded by every `superset` command and the gunicorn workers that deploy/local/superset.sh
starts. Nothing secret is written in this file:

- SECRET_KEY is read from $SENTINEL_HOME/superset-secret-key (generated once, mode 0600, by
  superset.sh; SUPERSET_SECRET_KEY in the environment wins). Without either Superset refuses
  to start: there is no fixed default;
- the metadata database is SENTINEL_SUPERSET_DATABASE_URL, by default the `superset` database
  of the local catalog server (role `sentinel`, development mode only);
- caches go to Redis db 7 (SENTINEL_SUPERSET_CACHE_REDIS_URL; `none` = no cache).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

_HOME = Path(os.environ.get("SENTINEL_HOME") or Path(__file__).resolve().parents[2] / ".sentinel")


def _secret_key() -> str:
    key = os.environ.get("SUPERSET_SECRET_KEY", "")
    if not key:
        path = _HOME / "superset-secret-key"
        if path.is_file():
            key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"no Superset secret key: run deploy/local/superset.sh (writes "
                           f"{_HOME / 'superset-secret-key'}) or set SUPERSET_SECRET_KEY")
    return key


SECRET_KEY = _secret_key()

_PG_PORT = os.environ.get("SENTINEL_PG_PORT", "5432")
SQLALCHEMY_DATABASE_URI = os.environ.get(
    "SENTINEL_SUPERSET_DATABASE_URL",
    f"postgresql+psycopg2://sentinel:sentinel@127.0.0.1:{_PG_PORT}/superset",
)
SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}

_REDIS = os.environ.get("SENTINEL_SUPERSET_CACHE_REDIS_URL", "redis://127.0.0.1:6379/7")
if _REDIS.lower() not in ("", "none"):
    CACHE_CONFIG = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": _REDIS,
                    "CACHE_KEY_PREFIX": "superset_meta_",
                    "CACHE_DEFAULT_TIMEOUT": int(timedelta(hours=1).total_seconds())}
    # chart data: short-lived, so a dashboard shows new micro-batches within minutes
    DATA_CACHE_CONFIG = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": _REDIS,
                         "CACHE_KEY_PREFIX": "superset_data_",
                         "CACHE_DEFAULT_TIMEOUT": int(timedelta(minutes=5).total_seconds())}

# Spark SQL over Delta answers in seconds, not milliseconds: generous timeouts, sync SQL Lab.
SUPERSET_WEBSERVER_TIMEOUT = 300
SQLLAB_TIMEOUT = 300
SQLLAB_VALIDATION_TIMEOUT = 60
ROW_LIMIT = 50000
# the time columns of the marts and tables are real TIMESTAMP/DATE columns: no sampling
# queries on every dataset refresh to guess string formats
DATASET_AUTO_DETECT_DATETIME_FORMATS = False

# loopback-only, no outside network: no telemetry, no external assets
SCARF_ANALYTICS = False
FEATURE_FLAGS = {"DASHBOARD_NATIVE_FILTERS": True, "DASHBOARD_CROSS_FILTERS": True}
# "Live Alerts" refreshes itself every 5 s: offer that interval in the dashboard's menu too
DASHBOARD_AUTO_REFRESH_INTERVALS = [
    [0, "Don't refresh"], [5, "5 seconds"], [10, "10 seconds"], [30, "30 seconds"],
    [60, "1 minute"], [300, "5 minutes"], [1800, "30 minutes"], [3600, "1 hour"],
    [21600, "6 hours"], [43200, "12 hours"], [86400, "24 hours"],
]
