"""Rule backtests and look-backs, queued by the API and run by Dagster."""
