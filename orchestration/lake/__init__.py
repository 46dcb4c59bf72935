"""The lake in Dagster: Delta tables observed, compacted, checked and registered for SQL."""
