"""Sentinel's streaming engine: Kafka → detect → alerts topic → fan-out; archive → Delta.

See docs/architecture.md, Data flow.
"""
