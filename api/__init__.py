"""The REST API: pipelines, rules, alerts, risk look-ups, health."""
