"""Archive batches of pipelines sharing a Spark application run one at a time (their triggers
fall on the same instants), whatever thread each query's batch arrives on."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from streaming import archive

pytestmark = pytest.mark.unit


def test_batches_arriving_together_run_one_after_another(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    running, overlaps, done = [0], [0], []
    guard = threading.Lock()

    def fake_batch(df: Any, batch_id: int, *, ctx: Any) -> dict[str, Any]:
        with guard:
            running[0] += 1
            overlaps[0] = max(overlaps[0], running[0])
        time.sleep(0.05)
        with guard:
            running[0] -= 1
            done.append(batch_id)
        return {"batch_id": batch_id}

    monkeypatch.setattr(archive, "_process_batch", fake_batch)
    start = threading.Barrier(6)

    def pipeline(n: int) -> None:
        start.wait()
        assert archive.process_batch(None, n, ctx=None) == {"batch_id": n}

    threads = [threading.Thread(target=pipeline, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(done) == list(range(6))
    assert overlaps[0] == 1


def test_a_failed_batch_lets_the_next_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(df: Any, batch_id: int, *, ctx: Any) -> dict[str, Any]:
        raise RuntimeError("Delta write failed")

    monkeypatch.setattr(archive, "_process_batch", failing)
    with pytest.raises(RuntimeError):
        archive.process_batch(None, 0, ctx=None)
    assert not archive._TURN.locked()
