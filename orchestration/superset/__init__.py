"""Superset follows the marts: provisioned again, by itself, after the dbt models are built."""
