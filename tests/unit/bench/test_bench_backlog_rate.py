"""The backlog bench's steady pace: events/s between 10 % and 90 % of a path's final count."""

import pytest

from bench.backlog import steady_rate

pytestmark = pytest.mark.unit


def test_steady_rate_leaves_out_the_start_and_the_tail():
    # A slow start (nothing for 10 s), then 100 alerts/s, then a slow tail.
    samples = [(0.0, 0), (10.0, 0)] + [(10.0 + s, 100 * s) for s in range(1, 11)] \
        + [(30.0, 1000)]
    # 1,000 alerts for 10,000 events: 10 % of the alerts at t=11, 90 % at t=19.
    assert steady_rate(samples, 1000, 10_000) == pytest.approx(0.8 * 10_000 / 8)


def test_a_single_jump_has_no_pace():
    # An archive that commits the whole backlog in one batch: 10 % and 90 % at one instant.
    assert steady_rate([(0.0, 0), (0.25, 0), (0.5, 50)], 50, 500) is None
