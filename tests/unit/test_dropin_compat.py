"""Code written for aioprometheus 18.x-23.12 and for extending it: MetricDict,
mypy_types, the formatters' per-collector methods, collectors whose values
come from Python (get_all overrides, stored estimators), Service.register."""

import math
import typing
from collections import deque

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aioprometheus import Collector, Counter, Gauge, Histogram, Registry, Summary, _core
from aioprometheus.formats import text as text_module
from aioprometheus.formats.binary import BinaryFormatter, decode
from aioprometheus.formats.text import TextFormatter
from aioprometheus.metricdict import MetricDict, SeriesView
from aioprometheus.service import Service


def families(registry):
    body = TextFormatter().marshall(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(body)}


def samples(family):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


# ---------------------------------------------------------------- MetricDict


def test_metric_dict_is_a_dict_keyed_by_label_dicts():
    metrics = MetricDict()
    metrics[{"b": 2, "a": 1}] = "x"
    metrics[{"a": 1, "b": 2}] = "y"
    metrics[None] = "empty"
    assert len(metrics) == 2
    assert metrics[{"b": 2, "a": 1}] == "y"
    assert metrics[{}] == metrics[""] == metrics[MetricDict.EMPTY_KEY] == "empty"
    # iteration yields the stored keys, which can be used as keys again
    assert set(metrics) == {b'{"a":1,"b":2}', "__EMPTY__"}
    assert metrics[b'{"a":1,"b":2}'] == "y"
    del metrics[{"a": 1, "b": 2}]
    assert list(metrics) == ["__EMPTY__"]
    with pytest.raises(TypeError, match="^Only accepts dicts as keys$"):
        metrics["not a dict"] = 1


def test_collector_values_is_a_live_series_view():
    registry = Registry()
    c = Counter("c_total", "doc", registry=registry)
    assert isinstance(c.values, SeriesView)
    c.values[{"a": "1"}] = 5
    assert c.get({"a": "1"}) == 5
    assert list(c.values) == [{"a": "1"}]
    del c.values[{"a": "1"}]
    assert len(c.values) == 0 and {"a": "1"} not in c.values
    with pytest.raises(TypeError, match="^Only accepts dicts as keys$"):
        c.values["a"]


def test_mypy_types_has_the_names_23_12_had():
    from aioprometheus import mypy_types

    for name in (
        "LabelsType",
        "NumericValueType",
        "ValueType",
        "SummaryDictKeyType",
        "SummaryDictType",
        "HistogramDictKeyType",
        "HistogramDictType",
        "MetricValueType",
        "MetricTupleType",
    ):
        assert hasattr(mypy_types, name), name
    assert {int, float} <= set(typing.get_args(mypy_types.NumericValueType))


# ------------------------------------------------- per-collector marshalling


def make_registry(wrap=lambda cls: cls):
    """One metric of each kind; `wrap` may swap in subclasses."""
    registry = Registry()
    c = wrap(Counter)("a_total", "Counts \\ and\nlines.", {"k": "v"}, registry=registry)
    c.inc({"path": "/x"})
    c.add({"path": "/y", "k": "mine"}, 2.5)
    g = wrap(Gauge)("b_gauge", "A gauge.", registry=registry)
    g.set({}, -3)
    h = wrap(Histogram)("c_hist", "A histogram.", registry=registry, buckets=[1, 2])
    h.observe({"z": 'q"uote'}, 1.5)
    s = wrap(Summary)("d_sum", "A summary.", {"env": "t"}, registry=registry)
    for v in (3, 5.5, 13):
        s.observe({"handler": "/s"}, v)
    return registry


def through_get_all(cls):
    """A subclass that overrides get_all (returning what the base returns)."""
    return type(f"Custom{cls.__name__}", (cls,), {"get_all": lambda s: cls.get_all(s)})


@pytest.mark.parametrize("wrap", [lambda cls: cls, through_get_all])
def test_marshall_collector_is_the_block_marshall_writes(wrap):
    registry = make_registry(wrap)
    formatter = TextFormatter()
    blocks = [formatter.marshall_collector(c) for c in registry.sorted_collectors()]
    assert "".join(b + "\n" for b in blocks).encode() == formatter.marshall(registry)
    for c in registry.get_all():
        assert formatter.marshall_lines(c) == formatter.marshall_collector(c).split(
            "\n"
        )


def test_marshall_lines_layout():
    registry = Registry()
    c = Counter("hits_total", "Hits.", {"app": "x"}, registry=registry)
    c.inc({"path": "/a"})
    assert TextFormatter().marshall_lines(c) == [
        "# HELP hits_total Hits.",
        "# TYPE hits_total counter",
        'hits_total{app="x",path="/a"} 1',
    ]


def test_binary_marshall_collector_is_the_family_marshall_writes():
    registry = make_registry()
    formatter = BinaryFormatter()
    decoded = decode(formatter.marshall(registry))
    assert [formatter.marshall_collector(c) for c in registry.sorted_collectors()] == (
        decoded
    )


def test_a_plain_collector_cannot_be_rendered():
    registry = Registry()
    Collector("raw", "doc", registry=registry).set({}, 1)
    for formatter in (TextFormatter(), BinaryFormatter()):
        with pytest.raises(TypeError, match="^Not a valid object format$"):
            formatter.marshall(registry)


# ---------------------------------------- values computed in Python at scrape


@pytest.mark.parametrize("timestamp", [False, True])
def test_python_path_writes_the_compiled_bytes(monkeypatch, timestamp):
    monkeypatch.setattr(text_module.time, "time", lambda: 1700000000.25)
    for formatter in (TextFormatter(timestamp), BinaryFormatter(timestamp)):
        compiled = formatter.marshall(make_registry())
        through_python = formatter.marshall(make_registry(through_get_all))
        assert through_python == compiled


def test_get_all_override_is_rendered_at_scrape_time():
    queues = {"fast": deque([1, 2]), "slow": deque()}

    class QueueDepth(Gauge):
        def get_all(self):
            return [({"queue": name}, len(q)) for name, q in sorted(queues.items())]

    registry = Registry()
    QueueDepth("queue_depth", "Items waiting.", registry=registry)
    Counter("z_total", "After it.", registry=registry).inc({})
    Counter("a_total", "Before it.", registry=registry).inc({})
    body = TextFormatter().marshall(registry).decode()
    assert 'queue_depth{queue="fast"} 2\nqueue_depth{queue="slow"} 0\n' in body
    assert body.index("a_total") < body.index("queue_depth") < body.index("z_total")
    queues["slow"].append(3)
    assert (
        samples(families(registry)["queue_depth"])[
            ("queue_depth", (("queue", "slow"),))
        ]
        == 1
    )
    (family,) = [
        f
        for f in decode(BinaryFormatter().marshall(registry))
        if f.name == "queue_depth"
    ]
    assert [m.gauge.value for m in family.metric] == [2.0, 1.0]


# ------------------------------------------------ time-window Summary subclass


class _Target:
    """One quantile target, spelled as 23.12's estimators spelled it."""

    def __init__(self, phi):
        self._quantile = phi


class WindowEstimator:
    """Exact quantiles of the observations of the last `window` seconds;
    count and sum over all time (as a Prometheus summary has them)."""

    def __init__(self, invariants, window, clock):
        self._invariants = [_Target(phi) for phi, _ in invariants]
        self._window = window
        self._clock = clock
        self._recent = deque()
        self._observations = 0
        self._sum = 0.0

    def observe(self, value):
        self._recent.append((self._clock(), value))
        self._observations += 1
        self._sum += value

    def query(self, phi):
        while self._recent and self._recent[0][0] <= self._clock() - self._window:
            self._recent.popleft()
        ordered = sorted(v for _, v in self._recent)
        if not ordered:
            return math.nan
        return ordered[max(0, math.ceil(phi * len(ordered)) - 1)]


class WindowedSummary(Summary):
    """Extends Summary as the time-window packages for 23.12 do."""

    def __init__(self, name, doc, registry, invariants, window, clock):
        super().__init__(name, doc, registry=registry)
        self.invariants = invariants
        self.window = window
        self.clock = clock

    def add(self, labels, value):
        try:
            estimator = self.get_value(labels)
        except KeyError:
            estimator = WindowEstimator(self.invariants, self.window, self.clock)
            self.set_value(labels, estimator)
        estimator.observe(float(value))

    observe = add


def test_windowed_summary_subclass_renders_through_its_estimators():
    now = [0.0]
    registry = Registry()
    s = WindowedSummary(
        "latency_seconds",
        "Latency.",
        registry,
        invariants=((0.5, 0.05), (0.75, 0.01)),
        window=60.0,
        clock=lambda: now[0],
    )
    assert s.invariants == ((0.5, 0.05), (0.75, 0.01))
    for v in range(1, 11):
        s.observe({"route": "/a"}, v)
    assert isinstance(s.get_value({"route": "/a"}), WindowEstimator)
    assert isinstance(s.values[{"route": "/a"}], WindowEstimator)
    now[0] = 100.0  # the first ten leave the window
    s.observe({"route": "/a"}, 50)
    expected = {0.5: 50.0, 0.75: 50.0, "count": 11, "sum": 105.0}
    assert s.get({"route": "/a"}) == expected
    assert s.get_all() == [({"route": "/a"}, expected)]
    assert samples(families(registry)["latency_seconds"]) == {
        ("latency_seconds", (("quantile", "0.5"), ("route", "/a"))): 50.0,
        ("latency_seconds", (("quantile", "0.75"), ("route", "/a"))): 50.0,
        ("latency_seconds_count", (("route", "/a"),)): 11.0,
        ("latency_seconds_sum", (("route", "/a"),)): 105.0,
    }
    (family,) = decode(BinaryFormatter().marshall(registry))
    (metric,) = family.metric
    assert [(q.quantile, q.value) for q in metric.summary.quantile] == [
        (0.5, 50.0),
        (0.75, 50.0),
    ]
    assert (metric.summary.sample_count, metric.summary.sample_sum) == (11, 105.0)


def test_plain_summary_keeps_the_compiled_path():
    from aioprometheus.formats._python_path import renders_through_python

    registry = Registry()
    s = Summary("s", "doc", registry=registry)
    s.observe({}, 1)
    assert Summary.observe is _core.SummaryCore.observe
    assert Summary.add is _core.SummaryCore.observe
    assert not renders_through_python(s)
    windowed = WindowedSummary("w", "doc", registry, ((0.5, 0.05),), 1.0, lambda: 0)
    assert not renders_through_python(windowed)  # nothing stored yet
    windowed.observe({}, 1)
    assert renders_through_python(windowed)


def test_stored_objects_are_checked_and_only_in_a_fresh_metric():
    registry = Registry()
    s = Summary("s", "doc", registry=registry)
    with pytest.raises(TypeError, match="cannot be set directly"):
        s.set_value({}, 3)
    assert len(s.values) == 0
    s.observe({"a": "1"}, 1)
    with pytest.raises(ValueError, match="already has observed series"):
        s.set_value({"a": "2"}, WindowEstimator((), 1.0, lambda: 0.0))
    assert s.get_all() == [({"a": "1"}, s.get({"a": "1"}))]


# ------------------------------------------------------------------- Service


def test_service_register_and_deregister_are_deprecated_aliases():
    registry = Registry()
    svc = Service(registry=registry)
    counter = Counter("legacy_total", "doc", registry=Registry())
    with pytest.warns(DeprecationWarning, match="registry.register"):
        svc.register(counter)
    assert registry.get("legacy_total") is counter
    with pytest.warns(DeprecationWarning, match="registry.deregister"):
        svc.deregister("legacy_total")
    with pytest.raises(KeyError):
        registry.get("legacy_total")


def test_a_value_get_all_cannot_expose_names_its_collector():
    class Broken(Counter):
        def get_all(self):
            return [({"a": "1"}, "many")]

    registry = Registry()
    Broken("broken_total", "doc", registry=registry)
    for formatter in (TextFormatter(), BinaryFormatter()):
        with pytest.raises((TypeError, ValueError), match="counter 'broken_total'"):
            formatter.marshall(registry)


def test_histogram_subclass_storing_23_12_bucket_counters():
    from aioprometheus import histogram

    class ObjectHistogram(Histogram):
        """Keeps 23.12's stand-alone bucket counter per series."""

        def observe(self, labels, value):
            try:
                counter = self.get_value(labels)
            except KeyError:
                counter = histogram.Histogram(*self.upper_bounds)
                self.set_value(labels, counter)
            counter.observe(float(value))

    compiled, through_objects = Registry(), Registry()
    plain = Histogram("h", "doc", {"k": "v"}, registry=compiled, buckets=[1, 5])
    stored = ObjectHistogram(
        "h", "doc", {"k": "v"}, registry=through_objects, buckets=[1, 5]
    )
    for labels, value in (({"a": "1"}, 0.5), ({"a": "1"}, 3), ({"a": "2"}, 9)):
        plain.observe(labels, value)
        stored.observe(labels, value)
    assert isinstance(stored.values[{"a": "1"}], histogram.Histogram)
    assert stored.get({"a": "1"}) == plain.get({"a": "1"})
    for formatter in (TextFormatter(), BinaryFormatter()):
        assert formatter.marshall(through_objects) == formatter.marshall(compiled)
