"""Where a micro-batch's results go: Delta (archive), Postgres (API), Redis (live look-ups).

Every sink is idempotent under replay of the same batch and retries with bounded backoff.
"""
