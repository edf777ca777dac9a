"""Rank-error tests for the windowed Summary, against a plain-Python model.

The model keeps every observation with the time it was made. A windowed
Summary reports, at time ``now``, the observations made since the start of
period ``floor(now / P) - age_buckets + 1``, where ``P = max_age_seconds /
age_buckets`` (periods count from the clock's zero). Every reported quantile
must be an observation of that window whose rank in it is within
``eps * n`` of ``phi * n`` (``n`` the window's size), as the all-time
estimator promises over all observations (test_quantiles.py); ``_count`` and
``_sum`` are all-time.
"""

from __future__ import annotations

import math
import os
import random
from typing import List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from test_quantiles import allowed_ranks, rank_range

from aioprometheus import Registry, Summary
from aioprometheus._core import ManualClock

EXAMPLES = int(os.environ.get("AIOPROMETHEUS_HOSTILE_EXAMPLES", "150"))

# Coarse enough that hypothesis' small streams get compressed summaries.
INVARIANTS = (
    (0.0, 0.05),
    (0.1, 0.05),
    (0.5, 0.02),
    (0.9, 0.05),
    (0.99, 0.01),
    (1.0, 0.05),
)


class WindowModel:
    """What the window should hold: the observations of the last periods."""

    def __init__(self, max_age: float, buckets: int, clock: ManualClock) -> None:
        self.period = max_age / buckets
        self.buckets = buckets
        self.clock = clock
        self.seen: List[Tuple[float, float]] = []  # (time, value)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.seen.append((self.clock.seconds, value))
        self.count += 1
        self.total += value

    def window(self) -> List[float]:
        first = math.floor(self.clock.seconds / self.period) - self.buckets + 1
        return sorted(
            v
            for t, v in self.seen
            if math.floor(t / self.period) >= first and not math.isnan(v)
        )


def check_window(summary: Summary, model: WindowModel) -> None:
    got = summary.get({})
    assert got["count"] == model.count
    assert got["sum"] == model.total or (
        math.isnan(got["sum"]) and math.isnan(model.total)
    )
    window = model.window()
    n = len(window)
    for phi, eps in INVARIANTS:
        v = got[phi]
        if n == 0:
            assert math.isnan(v), (phi, v)
            continue
        lo, hi = rank_range(window, v)  # also: v is an observation of the window
        a, b = allowed_ranks(n, phi, eps)
        assert lo <= b and a <= hi, (
            f"phi={phi} n={n}: {v!r} has ranks [{lo}, {hi}], allowed [{a}, {b}]"
        )


def windowed(max_age: float, buckets: int, clock: ManualClock) -> Summary:
    s = Summary("w", "doc", registry=Registry(), invariants=INVARIANTS)
    s._set_window(max_age, buckets, clock)
    return s


values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1.0, 2.0, math.inf, -math.inf]),
    st.integers(-5, 5).map(float),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("observe"), st.lists(values, min_size=1, max_size=80)),
        # advances around the period: none, within it, across one or several
        st.tuples(
            st.just("advance"),
            st.sampled_from([0.0, 0.3, 0.5, 1.0, 1.7, 2.0, 3.5, 9.0]),
        ),
        st.tuples(st.just("check"), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    buckets=st.integers(1, 6),
    start=st.sampled_from([0.0, 0.25, 1e6 + 0.5]),
    steps=steps,
)
def test_rank_bound_holds_inside_the_window(buckets, start, steps):
    clock = ManualClock(start)
    s = windowed(2.0 * buckets, buckets, clock)  # period 2 s
    model = WindowModel(2.0 * buckets, buckets, clock)
    bound = s.labels()
    for op, arg in steps:
        if op == "observe":
            for v in arg:
                bound.observe(v)
                model.observe(v)
        elif op == "advance":
            clock.advance(arg)
        else:
            check_window(s, model)
    check_window(s, model)


def test_rank_bound_on_long_streams_across_many_rotations():
    """100k observations over 50 periods, several stream shapes: checked at
    every period boundary and between, with summaries that compress."""
    rng = random.Random(5)
    clock = ManualClock(100.0)
    s = windowed(60.0, 5, clock)
    model = WindowModel(60.0, 5, clock)
    shapes = [
        lambda i: rng.random(),
        lambda i: float(i),  # ascending
        lambda i: float(-i),  # descending
        lambda i: float(i // 2 if i % 2 else 10**6 - i // 2),  # converging
        lambda i: rng.paretovariate(1.0),
        lambda i: float(rng.randrange(7)),  # duplicates
    ]
    for step in range(150):
        shape = shapes[(step // 13) % len(shapes)]
        for i in range(rng.randrange(200, 1200)):
            v = shape(i)
            s.observe({}, v)
            model.observe(v)
        clock.advance(rng.choice([0.5, 2.0, 4.0, 7.0, 12.0]))
        check_window(s, model)


def test_nan_is_counted_but_has_no_rank():
    clock = ManualClock()
    s = windowed(10.0, 2, clock)
    model = WindowModel(10.0, 2, clock)
    for v in [1.0, math.nan, 3.0, 2.0]:
        s.observe({}, v)
        model.observe(v)
    check_window(s, model)
    assert math.isnan(s.get({})["sum"])
