"""Windowed Summary: quantiles over about the last ``max_age_seconds``.

A ManualClock stands in for the system clock, so each test decides when the
window rotates. The rank bound itself is checked against a model in
tests/property/test_window.py; here: what a user sees (shift, expiry,
cumulative count and sum, every read path), bad arguments, and the core's
rule under re-entrant numbers and threads.
"""

import copy
import math
import pickle
import random

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_threads import run_scenario

from aioprometheus import Summary, _core
from aioprometheus._core import ManualClock
from aioprometheus.formats.binary import BinaryFormatter, decode
from aioprometheus.formats.text import TextFormatter

PHIS = (0.5, 0.9, 0.99)


def windowed(registry, clock, max_age=60.0, buckets=5, name="w"):
    s = Summary(
        name, "doc", registry=registry, max_age_seconds=max_age, age_buckets=buckets
    )
    s._set_window(max_age, buckets, clock)
    return s


def quantiles(s, labels=None):
    got = s.get(labels or {})
    return [got[phi] for phi in PHIS]


def test_quantiles_follow_a_shift_within_max_age(registry):
    clock = ManualClock(1000.0)
    s = windowed(registry, clock)  # 60 s, periods of 12 s
    rng = random.Random(3)
    for _ in range(120):  # two minutes of latencies around 0.1 s
        for _ in range(50):
            s.observe({}, rng.uniform(0.05, 0.15))
        clock.advance(1.0)
    assert all(0.05 <= q <= 0.15 for q in quantiles(s))
    shifted_at = clock.seconds
    p99_moved_at = None
    while clock.seconds < shifted_at + 60.0:  # latency doubles, then some
        for _ in range(50):
            s.observe({}, rng.uniform(1.0, 1.5))
        clock.advance(1.0)
        if p99_moved_at is None and quantiles(s)[2] >= 1.0:
            p99_moved_at = clock.seconds
    # within one max_age every quantile reflects the new distribution only
    assert all(1.0 <= q <= 1.5 for q in quantiles(s))
    assert p99_moved_at is not None and p99_moved_at - shifted_at <= 3.0

    all_time = Summary("all_time", "doc", registry=registry)
    for v in [0.1] * 6000 + [1.2] * 3000:
        all_time.observe({}, v)
    assert quantiles(all_time)[0] == 0.1  # what the window is for


def test_old_observations_stop_counting_after_the_window(registry):
    clock = ManualClock(0.0)
    s = windowed(registry, clock, max_age=10.0, buckets=5)  # periods of 2 s
    for v in (1.0, 2.0, 3.0):
        s.observe({}, v)
    clock.advance(7.9)  # period 3: the window still starts at period 0
    assert quantiles(s) == [2.0, 3.0, 3.0]
    s.observe({}, 50.0)
    clock.advance(0.1)  # period 4: still in
    assert quantiles(s)[0] == 2.0
    clock.advance(2.0)  # period 5: the window starts at period 1
    assert quantiles(s) == [50.0, 50.0, 50.0]
    clock.advance(10.0)
    assert all(math.isnan(q) for q in quantiles(s))
    assert s.get({})["count"] == 4 and s.get({})["sum"] == 56.0


def test_count_and_sum_stay_cumulative(registry):
    clock = ManualClock(5.0)
    s = windowed(registry, clock, max_age=3.0, buckets=3)
    total = 0
    for step in range(40):
        s.observe({"k": "v"}, step)
        total += step
        clock.advance(0.7 * (step % 4))
        got = s.get({"k": "v"})
        assert (got["count"], got["sum"]) == (step + 1, float(total))


def test_encoders_and_snapshots_serve_the_window(registry):
    clock = ManualClock(0.0)
    s = windowed(registry, clock, max_age=10.0, buckets=2)
    bound = s.labels(path="/a")
    for v in range(1, 101):
        bound.observe(v)
    snap = _core.snapshot([s])
    clock.advance(10.0)
    s.observe({"path": "/b"}, 7.0)
    text = TextFormatter().marshall(registry).decode()
    samples = {
        (x.name, x.labels.get("path"), x.labels.get("quantile")): x.value
        for f in text_string_to_metric_families(text)
        for x in f.samples
    }
    assert math.isnan(samples[("w", "/a", "0.5")])
    assert samples[("w_count", "/a", None)] == 100  # cumulative
    assert samples[("w", "/b", "0.99")] == 7.0
    [family] = decode(BinaryFormatter().marshall(registry))
    by_path = {m.label[0].value: m.summary for m in family.metric}
    assert math.isnan(by_path["/a"].quantile[0].value)
    assert by_path["/a"].sample_count == 100
    assert by_path["/b"].quantile[2].value == 7.0
    # the snapshot answers as of when it was taken, however late it is encoded
    [frozen] = decode(_core.encode_protobuf(snap))
    assert [q.value for q in frozen.metric[0].summary.quantile] == [50.0, 90.0, 99.0]


def test_default_summary_keeps_all_time_quantiles(registry):
    s = Summary("s", "doc", registry=registry)
    assert (s.max_age_seconds, s.age_buckets) == (None, None)
    est = _core.QuantileEstimator(Summary.DEFAULT_INVARIANTS)
    for v in range(1000):
        s.observe({}, v)
        est.observe(v)
    assert quantiles(s) == [est.query(phi) for phi in PHIS]
    w = Summary("w", "doc", registry=registry, max_age_seconds=600)
    assert (w.max_age_seconds, w.age_buckets) == (600.0, 5)
    w.observe({}, 3.0)  # the system clock: the observation is in the window
    assert quantiles(w) == [3.0, 3.0, 3.0]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"max_age_seconds": 0}, ValueError, "finite and > 0"),
        ({"max_age_seconds": -1.0}, ValueError, "finite and > 0"),
        ({"max_age_seconds": math.nan}, ValueError, "finite and > 0"),
        ({"max_age_seconds": math.inf}, ValueError, "finite and > 0"),
        ({"max_age_seconds": "60"}, TypeError, "must be a number"),
        ({"max_age_seconds": True}, TypeError, "must be a number"),
        ({"max_age_seconds": [60]}, TypeError, "must be a number"),
        (
            {"max_age_seconds": 60, "age_buckets": 0},
            ValueError,
            "age_buckets must be >= 1",
        ),
        (
            {"max_age_seconds": 60, "age_buckets": -2},
            ValueError,
            "age_buckets must be >= 1",
        ),
        ({"max_age_seconds": 60, "age_buckets": 2.0}, TypeError, "must be an int"),
        ({"max_age_seconds": 60, "age_buckets": True}, TypeError, "must be an int"),
        ({"max_age_seconds": 5e-324, "age_buckets": 2}, ValueError, "positive number"),
        ({"age_buckets": 5}, ValueError, "needs max_age_seconds"),
    ],
)
def test_bad_window_arguments_raise_and_register_nothing(
    registry, kwargs, error, message
):
    with pytest.raises(error, match=message):
        Summary("bad", "doc", registry=registry, **kwargs)
    assert registry.get_all() == []


def test_window_and_clock_are_set_before_the_first_observation(registry):
    s = Summary("s", "doc", registry=registry)
    with pytest.raises(TypeError, match="ManualClock"):
        s._set_window(60, 5, clock=lambda: 1.0)
    s.observe({}, 1.0)
    with pytest.raises(ValueError, match="before the first observation"):
        s._set_window(60, 5)
    assert s.max_age_seconds is None and s.get({})["count"] == 1


def test_manual_clock_only_moves_forward():
    clock = ManualClock(2.5)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="only moves forward"):
            clock.advance(bad)
    with pytest.raises(ValueError, match="finite"):
        ManualClock(math.nan)
    clock.advance(0.5)
    assert clock.seconds == 3.0


def test_pickle_and_copy_keep_the_window(registry):
    clock = ManualClock(0.0)
    s = windowed(registry, clock, max_age=10.0, buckets=2)
    for v in range(50):
        s.observe({"k": "v"}, v)
    clock.advance(5.0)
    s.observe({"k": "v"}, 1000.0)
    for twin in (pickle.loads(pickle.dumps(s)), copy.copy(s), copy.deepcopy(s)):
        assert twin.get({"k": "v"}) == s.get({"k": "v"})
        assert (twin.max_age_seconds, twin.age_buckets) == (10.0, 2)
    deep, before = copy.deepcopy(s), s.get({"k": "v"})
    clock.advance(5.0)  # the live one (and a shallow copy, same clock) rotate
    assert quantiles(s, {"k": "v"}) == [1000.0] * 3
    assert deep.get({"k": "v"}) == before  # its own clock stayed
    with pytest.raises(TypeError):
        _core.SlidingWindow(())
    with pytest.raises(ValueError, match="not a ring position"):
        _core.restore_window((_core.QuantileEstimator(),), 3, 0.0, [])


def test_hostile_float_reentering_the_summary(registry):
    """A number's __float__ runs before the summary looks its series up: what
    it does (advance the clock, observe, clear, even set the window of a
    cleared summary) is all in place before the outer observation commits."""
    clock = ManualClock(0.0)
    s = windowed(registry, clock, max_age=10.0, buckets=5)
    s.observe({}, 1.0)

    class Expiring:
        def __float__(self):
            clock.advance(10.0)
            s.observe({}, 5.0)
            return 7.0

    s.observe({}, Expiring())
    assert s.get({}) == {0.5: 5.0, 0.9: 7.0, 0.99: 7.0, "count": 3, "sum": 13.0}

    class Clearing:
        def __float__(self):
            s.values.clear()
            s.labels(other="x").observe(2.0)
            return 3.0

    s.labels().observe(Clearing())
    assert s.get({}) == {0.5: 3.0, 0.9: 3.0, 0.99: 3.0, "count": 1, "sum": 3.0}
    assert s.get({"other": "x"})["count"] == 1

    class Failing:
        def __float__(self):
            clock.advance(1.0)
            raise RuntimeError("no number")

    before = s.get({})
    with pytest.raises(RuntimeError):
        s.observe({}, Failing())
    assert s.get({}) == before

    all_time = Summary("late", "doc", registry=registry)
    all_time.observe({}, 1.0)

    class Reconfiguring:
        def __float__(self):
            all_time.values.clear()
            all_time._set_window(10.0, 2, clock)
            return 4.0

    all_time.observe({}, Reconfiguring())
    assert quantiles(all_time) == [4.0] * 3
    clock.advance(10.0)
    assert all(math.isnan(q) for q in quantiles(all_time))


THREADS = """
from aioprometheus._core import ManualClock

registry = Registry()
clock = ManualClock(0.0)
s = Summary("lat", "doc", registry=registry, max_age_seconds=2.0, age_buckets=4)
s._set_window(2.0, 4, clock)
owned = {{}}

def owner(name):  # only this thread touches its series
    def body():
        n = 0
        bound = s.labels(owner=name, via="bound")
        while time.monotonic() < DEADLINE:
            s.observe({{"owner": Tag(name)}}, One())
            bound.observe(1.0)
            n += 1
        owned[name] = n
    return body

def churn():
    i = 0
    while time.monotonic() < DEADLINE:
        s.observe({{"churn": Tag(str(i % 31))}}, i % 1000)
        if i % 5 == 0:
            try:
                del s.values[{{"churn": str((i // 5) % 31)}}]
            except KeyError:
                pass
        i += 1

def ticker():  # the window rotates all the while
    while time.monotonic() < DEADLINE:
        clock.advance(0.1)
        time.sleep(0.0005)

def scrapes():  # snapshots encoded as they are taken
    formatter = BinaryFormatter()
    while time.monotonic() < DEADLINE:
        decode(formatter.prepare(registry)())

threads = [worker(owner("a")), worker(owner("b")), worker(churn), worker(churn),
           worker(ticker), worker(scrapes)]
renders = 0
while time.monotonic() < DEADLINE:
    TextFormatter().marshall(registry)
    renders += 1
for thread in threads:
    thread.join()
owner_quantiles = {{
    str(x.value)
    for f in parsed(registry)
    for x in f.samples
    if "owner" in x.labels and "quantile" in x.labels
}}
print(json.dumps({{
    "errors": errors,
    "renders": renders,
    "owned": owned,
    "read": {{
        name: [s.get(labels)["count"] for labels in ({{"owner": name}},
                                                    {{"owner": name, "via": "bound"}})]
        for name in owned
    }},
    "owner_quantiles": sorted(owner_quantiles),
}}))
"""


def test_threads_observe_rotate_and_scrape_at_once():
    report = run_scenario(THREADS)  # no errors, some renders
    assert set(report["owned"]) == {"a", "b"}
    for name, n in report["owned"].items():
        assert n > 0
        assert report["read"][name] == [n, n]  # no observation lost or doubled
    assert set(report["owner_quantiles"]) <= {"1.0", "nan"}  # owners observe 1 only
