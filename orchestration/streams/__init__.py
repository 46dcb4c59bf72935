"""The streams in Dagster: the watcher that keeps one stream run per active pipeline."""
