"""Native histograms: options, exposition, the bucket-limit strategies, and the
core's storage hooks (snapshot, pickle, removal, hostile numbers).

The property tests (tests/property/test_native_histogram_model.py) check every
native field against a plain-Python model; here each behaviour gets a small
named case, and the memory-safety ones run under the sanitizers (.ci/run).
"""

import math
import pickle

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aioprometheus import Histogram, Registry, _core
from aioprometheus import metrics_pb2 as pb
from aioprometheus.formats.binary import decode

INF = math.inf


def native(registry=None, **options):
    options.setdefault("native_histogram_bucket_factor", 1.1)
    return Histogram(
        "lat_seconds", "Latency.", registry=registry or Registry(), **options
    )


def only_histogram(h):
    family = decode(_core.encode_protobuf([h]))[0]
    assert family.type == pb.HISTOGRAM
    return [m.histogram for m in family.metric]


# -- options --------------------------------------------------------------------


def test_factor_alone_makes_a_native_only_histogram():
    h = native()
    assert h.upper_bounds == [INF]
    h.observe({}, 0.3)
    assert h.get({}) == {INF: 1, "count": 1, "sum": 0.3}
    assert h.get_native({}) == {
        "schema": 3,  # 2^(1/8) = 1.09 <= 1.1
        "zero_threshold": 2.0**-128,
        "zero_count": 0,
        "positive": {-13: 1},  # 2^(-14/8) = 0.297 < 0.3 <= 2^(-13/8) = 0.324
        "negative": {},
    }


def test_buckets_and_factor_expose_both():
    h = native(buckets=[0.1, 1.0])
    assert h.upper_bounds == [0.1, 1.0, INF]
    h.observe({}, 0.5)
    (hist,) = only_histogram(h)
    assert [(b.upper_bound, b.cumulative_count) for b in hist.bucket] == [
        (0.1, 0),
        (1.0, 1),
        (INF, 1),
    ]
    assert hist.schema == 3 and list(hist.positive_delta) == [1]


def test_without_factor_nothing_changes():
    h = Histogram("classic", "", registry=Registry())
    assert h.upper_bounds == list(Histogram.DEFAULT_BUCKETS)
    with pytest.raises(ValueError, match="no native buckets"):
        h.get_native({})
    h.observe({}, 1)
    (hist,) = only_histogram(h)
    assert not hist.HasField("schema") and not hist.HasField("zero_threshold")


@pytest.mark.parametrize(
    "options, error",
    [
        (
            {"native_histogram_zero_threshold": 1e-3},
            "need native_histogram_bucket_factor",
        ),
        (
            {"native_histogram_max_bucket_number": 10},
            "need native_histogram_bucket_factor",
        ),
        ({"native_histogram_bucket_factor": 1.0}, "must be a number > 1"),
        ({"native_histogram_bucket_factor": math.nan}, "must be a number > 1"),
        (
            {
                "native_histogram_bucket_factor": 1.1,
                "native_histogram_zero_threshold": -1,
            },
            "finite and >= 0",
        ),
        (
            {
                "native_histogram_bucket_factor": 1.1,
                "native_histogram_max_bucket_number": -1,
            },
            "int >= 0",
        ),
        (
            {
                "native_histogram_bucket_factor": 1.1,
                "native_histogram_min_reset_duration": INF,
            },
            "finite and >= 0",
        ),
    ],
)
def test_bad_options_raise_and_register_nothing(options, error):
    r = Registry()
    with pytest.raises(ValueError, match=error):
        Histogram("h", "", registry=r, **options)
    assert r.get_all() == []


# -- exposition -----------------------------------------------------------------


def test_text_of_a_native_only_histogram_is_what_client_golang_writes():
    """client_golang's text format has no native buckets: a native-only
    histogram shows its +Inf bucket, count and sum."""
    h = native(const_labels={"app": "x"})
    for v in (0.5, -2.0, 0.0, 3.0):
        h.observe({"path": "/"}, v)
    text = _core.encode_text([h]).decode()
    (family,) = text_string_to_metric_families(text)
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples == {
        ("lat_seconds_bucket", "+Inf"): 4.0,
        ("lat_seconds_count", None): 4.0,
        ("lat_seconds_sum", None): 1.5,
    }


def test_a_native_histogram_without_observations_reads_as_native():
    h = native(native_histogram_zero_threshold=0)
    h.labels(path="/")
    (hist,) = only_histogram(h)
    assert hist.HasField("schema") and hist.HasField("zero_threshold")
    assert [(s.offset, s.length) for s in hist.positive_span] == [(0, 0)]
    assert not hist.bucket  # no classic buckets, as client_golang


def test_empty_native_with_default_threshold_has_no_span():
    """The non-zero zero threshold marks it native already."""
    h = native()
    h.labels()
    (hist,) = only_histogram(h)
    assert hist.zero_threshold == 2.0**-128 and not hist.positive_span


def test_negative_zero_and_positive_observations():
    h = native(native_histogram_zero_threshold=0.01)
    for v in (-4.0, -4.0, -0.005, 0.0, 0.01, 1.0, 8.0, 8.0, 8.0):
        h.observe({}, v)
    state = h.get_native({})
    assert state["zero_count"] == 3
    assert state["negative"] == {16: 2}  # 4 = 2^(16/8)
    assert state["positive"] == {0: 1, 24: 3}
    (hist,) = only_histogram(h)
    assert [(s.offset, s.length) for s in hist.negative_span] == [(16, 1)]
    assert list(hist.negative_delta) == [2]
    assert [(s.offset, s.length) for s in hist.positive_span] == [(0, 1), (23, 1)]
    assert list(hist.positive_delta) == [1, 2]


def test_nan_counts_only_in_count_and_sum():
    h = native()
    h.observe({}, math.nan)
    assert h.get({})["count"] == 1 and math.isnan(h.get({})["sum"])
    assert h.get_native({})["positive"] == {} and h.get_native({})["zero_count"] == 0


# -- the bucket limit -------------------------------------------------------------


def test_limit_widens_the_zero_bucket_first():
    h = native(
        native_histogram_max_bucket_number=2, native_histogram_max_zero_threshold=1
    )
    for v in (0.01, 0.1, 10.0):
        h.observe({}, v)
    state = h.get_native({})
    assert state["zero_count"] == 1 and state["zero_threshold"] > 0.01
    assert len(state["positive"]) == 2 and state["schema"] == 3
    assert h.get({})["count"] == 3 and h.get({})["sum"] == 10.11


def test_limit_then_halves_the_resolution_keeping_count_and_sum():
    h = native(native_histogram_max_bucket_number=4)
    values = [1.0 + i / 10 for i in range(40)]
    for v in values:
        h.observe({}, v)
    state = h.get_native({})
    assert state["schema"] < 3
    assert len(state["positive"]) <= 4
    assert sum(state["positive"].values()) == 40
    assert h.get({})["count"] == 40 and h.get({})["sum"] == sum(values)


def test_limit_resets_after_min_reset_duration_with_a_manual_clock():
    clock = _core.ManualClock()
    h = native(
        native_histogram_max_bucket_number=2, native_histogram_min_reset_duration=10
    )
    h._set_native_clock(clock)
    for v in (1.0, 2.0, 4.0):  # third bucket at t=0: too soon; schedule, halve
        h.observe({}, v)
    assert h.get_native({})["schema"] == 2 and h.get({})["count"] == 3
    clock.advance(9.9)
    h.observe({}, 1.0)
    assert h.get({})["count"] == 4  # not due yet
    clock.advance(0.1)
    h.observe({}, 8.0)  # the scheduled reset happens first
    assert h.get({}) == {INF: 1, "count": 1, "sum": 8.0}
    assert h.get_native({}) == {
        "schema": 3,
        "zero_threshold": 2.0**-128,
        "zero_count": 0,
        "positive": {24: 1},
        "negative": {},
    }


def test_limit_reset_keeps_the_observation_that_overflowed():
    clock = _core.ManualClock()
    h = native(
        buckets=[1.0],
        native_histogram_max_bucket_number=1,
        native_histogram_min_reset_duration=5,
    )
    h._set_native_clock(clock)
    h.observe({}, 0.5)
    clock.advance(6.0)
    h.observe({}, 3.0)  # over the limit, last reset 6 s ago: reset, keep 3.0
    assert h.get({}) == {1.0: 0, INF: 1, "count": 1, "sum": 3.0}
    assert h.get_native({})["positive"] == {13: 1}


# -- storage hooks ----------------------------------------------------------------


def filled(n=3):
    h = native(native_histogram_zero_threshold=0)
    for i in range(n):
        for v in (0.001 * (i + 1), -(i + 2.0), 0.0, 1e6 * (i + 1)):
            h.observe({"i": str(i)}, v)
    return h


def test_snapshot_carries_native_state_and_is_private():
    h = filled()
    before = _core.encode_protobuf([h])
    (copy,) = _core.snapshot([h])
    h.observe({"i": "0"}, 123.0)
    assert _core.encode_protobuf([copy]) == before != _core.encode_protobuf([h])


def test_pickle_round_trip():
    h = filled()
    copy = pickle.loads(pickle.dumps(h))
    assert _core.encode_protobuf([copy]) == _core.encode_protobuf([h])
    copy.observe({"i": "1"}, 2.5)
    assert copy.get_native({"i": "1"}) != h.get_native({"i": "1"})


def test_removing_and_clearing_series_keeps_each_series_state():
    h = filled(5)
    expected = {str(i): h.get_native({"i": str(i)}) for i in range(5)}
    del h.values[{"i": "1"}]
    for i in ("0", "2", "3", "4"):
        assert h.get_native({"i": i}) == expected[i]
    h.values.clear()
    h.observe({"i": "9"}, 1.0)
    assert h.get_native({"i": "9"})["positive"] == {0: 1}
    assert h.get({"i": "9"})["count"] == 1


class Sneaky:
    """A number whose __float__ changes the histogram it is observed into."""

    def __init__(self, value, action):
        self.value = value
        self.action = action

    def __float__(self):
        self.action()
        return self.value


@pytest.mark.parametrize("how", ["observe", "bound"])
def test_hostile_float_that_removes_clears_and_grows(how):
    h = native(native_histogram_max_bucket_number=6)
    bound = h.labels(k="a")
    for i in range(4):
        h.observe({"k": "a"}, 2.0**i)

    def meddle():
        del h.values[{"k": "a"}]
        for j in range(40):  # grow the series table and bucket arrays meanwhile
            h.observe({"k": str(j)}, 3.0**j)
        h.values.clear()
        h.observe({"k": "a"}, 0.25)

    value = Sneaky(1e9, meddle)
    if how == "observe":
        h.observe({"k": "a"}, value)
    else:
        bound.observe(value)
    state = h.get_native({"k": "a"})
    assert state["positive"] == {-16: 1, 240: 1}
    assert h.get({"k": "a"})["count"] == 2 and h._series_count() == 1


def test_the_clock_must_be_a_manual_clock_or_none():
    h = native()
    with pytest.raises(TypeError):
        h._set_native_clock(lambda: 0.0)
    h._set_native_clock(None)
    with pytest.raises(ValueError, match="no native buckets"):
        Histogram("c", "", registry=Registry())._set_native_clock(None)
