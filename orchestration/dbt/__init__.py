"""The dbt project ``lakehouse_models`` in Dagster: project and manifest, day partitions, assets
with a retry on dropped SQL-endpoint connections, the hourly schedule and the lake triggers.

Every dbt model is an asset (group ``lakehouse_models``) and every dbt test an asset check. The
dbt sources map onto the lake's observed assets (``bronze_events``, ``quarantine``,
``silver_alerts``; see ``meta.dagster.asset_key`` in
``lakehouse_models/models/staging/_sources.yml``), so the models sit downstream of them.
"""
