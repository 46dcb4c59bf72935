"""Kafka positions as the Spark Kafka source reads them: a named position passes through, an
offset per partition becomes the source's JSON (topic → partition as text → offset)."""

from __future__ import annotations

import json

import pytest

from streaming.kafka_io import _offsets

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("named", ["earliest", "latest"])
def test_a_named_position_passes_through(named: str) -> None:
    assert _offsets("payments", named) == named


def test_offsets_per_partition_become_the_sources_json() -> None:
    text = _offsets("payments", {0: 12, 2: 0, 1: 7})
    assert json.loads(text) == {"payments": {"0": 12, "1": 7, "2": 0}}
