"""Sentinel's streaming engine: Kafka → parse/quarantine → bronze → rules → alerts (DESIGN §6)."""
