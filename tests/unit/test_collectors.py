"""The aioprometheus 23.12 metric API: values, registry rules and error cases."""

import math

import pytest

from aioprometheus import (
    REGISTRY,
    Collector,
    Counter,
    Gauge,
    Histogram,
    Registry,
    Summary,
)
from aioprometheus.collectors import MetricsTypes


def test_counter_inc_add_get_and_label_order(registry):
    c = Counter("hits_total", "Hits", registry=registry)
    c.inc({"a": "1", "b": "2"})
    c.inc({"b": "2", "a": "1"})
    c.add({"a": "1", "b": "2"}, 3)
    assert c.get({"b": "2", "a": "1"}) == 5
    assert isinstance(c.get({"a": "1", "b": "2"}), int)
    assert len(c.values) == 1


def test_none_and_empty_labels_are_one_series(registry):
    c = Counter("c", "doc", registry=registry)
    c.inc(None)
    c.inc({})
    assert c.get({}) == 2
    assert c.get_all() == [({}, 2)]


def test_counter_float_values_read_back_as_float(registry):
    c = Counter("c", "doc", registry=registry)
    c.add({}, 1.5)
    c.inc({})
    assert c.get({}) == 2.5
    c.set({"x": "y"}, 7.0)
    assert isinstance(c.get({"x": "y"}), float)


def test_counter_rejects_decrease_and_nan_without_creating_series(registry):
    c = Counter("c", "doc", registry=registry)
    with pytest.raises(ValueError, match="Counters can't decrease"):
        c.add({"k": "v"}, -1)
    with pytest.raises(ValueError, match="NaN"):
        c.add({"k": "v"}, float("nan"))
    with pytest.raises(TypeError):
        c.add({"k": "v"}, "3")
    assert len(c.values) == 0
    with pytest.raises(KeyError):
        c.get({"k": "v"})


def test_gauge_operations(registry):
    g = Gauge("g", "doc", registry=registry)
    labels = {"q": "in"}
    g.set(labels, 10)
    g.inc(labels)
    g.dec(labels)
    g.add(labels, 5)
    g.sub(labels, 2)
    assert g.get(labels) == 13
    g.sub(labels, -0.5)
    assert g.get(labels) == 13.5
    with pytest.raises(TypeError, match="^Gauge only works with digits"):
        g.set(labels, "fourteen")
    assert g.get(labels) == 13.5
    g.set(labels, "14")  # a numeric str is the number, as 23.12 exposed it
    assert g.get(labels) == 14 and isinstance(g.get(labels), int)
    g.set(labels, "1.5")
    assert g.get(labels) == 1.5


def test_label_values_of_any_type_are_their_text(registry):
    c = Counter("c", "doc", registry=registry)
    c.inc({"code": 200, "ok": True, "name": "é"})
    assert c.get({"ok": "True", "name": "é", "code": "200"}) == 1
    c.inc({"list": ["unhashable"]})
    assert c.get({"list": "['unhashable']"}) == 1
    assert len(c.values) == 2


@pytest.mark.parametrize(
    "labels, message",
    [
        ({"job": "x"}, "Invalid label name: job"),
        ({"__x": "x"}, "Invalid label prefix: __x"),
        ({"1abc": "x"}, "Invalid label name: 1abc"),
        ({"a-b": "x"}, "Invalid label name: a-b"),
        ({"": "x"}, "Invalid label name: "),
        ({"código": "x"}, "Invalid label name: código"),
    ],
)
def test_invalid_label_names(registry, labels, message):
    c = Counter("c", "doc", registry=registry)
    with pytest.raises(ValueError, match=f"^{message}$"):
        c.inc(labels)
    assert len(c.values) == 0


def test_non_str_label_name_and_non_dict_labels(registry):
    c = Counter("c", "doc", registry=registry)
    with pytest.raises(TypeError):
        c.inc({1: "x"})
    with pytest.raises(TypeError):
        c.inc([("a", "b")])
    assert len(c.values) == 0


def test_reserved_labels_per_kind(registry):
    h = Histogram("h", "doc", registry=registry)
    with pytest.raises(ValueError, match="Invalid label name: le"):
        h.observe({"le": "1"}, 1)
    s = Summary("s", "doc", registry=registry)
    with pytest.raises(ValueError, match="Invalid label name: quantile"):
        s.observe({"quantile": "1"}, 1)
    c = Counter("c", "doc", registry=registry)
    c.inc({"le": "1", "quantile": "2"})
    assert c.get({"le": "1", "quantile": "2"}) == 1
    with pytest.raises(ValueError, match="Invalid label name: le"):
        Histogram("h2", "doc", const_labels={"le": "x"}, registry=registry)
    assert "h2" not in registry.collectors


def test_invalid_metric_name(registry):
    with pytest.raises(ValueError, match="Invalid metric name"):
        Counter("1bad", "doc", registry=registry)
    assert registry.get_all() == []


def test_histogram_buckets_and_get(registry):
    h = Histogram("h", "doc", buckets=[1, 2, 5], registry=registry)
    for v in (0.5, 1, 1.5, 2, 3, 100):
        h.observe({}, v)
    assert h.get({}) == {1.0: 2, 2.0: 4, 5.0: 5, math.inf: 6, "count": 6, "sum": 108.0}
    assert h.upper_bounds == [1.0, 2.0, 5.0, math.inf]


def test_histogram_default_buckets_and_validation(registry):
    h = Histogram("h", "doc", registry=registry)
    assert h.upper_bounds == list(Histogram.DEFAULT_BUCKETS)
    with pytest.raises(ValueError, match="sorted"):
        Histogram("h1", "doc", buckets=[2, 1], registry=registry)
    with pytest.raises(ValueError):
        Histogram("h2", "doc", buckets=[], registry=registry)
    with pytest.raises(ValueError):
        Histogram("h3", "doc", buckets=[1, float("nan")], registry=registry)
    assert sorted(registry.collectors) == ["h"]


def test_histogram_rejects_non_numbers_and_counts_nan_in_inf(registry):
    h = Histogram("h", "doc", buckets=[1], registry=registry)
    with pytest.raises(TypeError, match="Histogram only works with digits"):
        h.observe({"a": "b"}, "1")
    with pytest.raises(TypeError):
        h.observe({"a": "b"}, None)
    assert len(h.values) == 0
    h.observe({}, float("nan"))
    got = h.get({})
    assert got[math.inf] == got["count"] == 1


def test_summary_get_shape(registry):
    s = Summary("s", "doc", registry=registry)
    for v in range(1, 101):
        s.observe({"x": "y"}, v)
    got = s.get({"x": "y"})
    assert list(got) == [0.5, 0.9, 0.99, "count", "sum"]
    assert got["count"] == 100 and got["sum"] == 5050
    assert abs(got[0.5] - 50) <= 5
    with pytest.raises(TypeError, match="Summary only works with digits"):
        s.observe({}, "x")


def test_summary_custom_invariants_and_validation(registry):
    s = Summary("s", "doc", invariants=((0.25, 0.01), (0.75, 0.01)), registry=registry)
    s.add({}, 1.0)
    assert list(s.get({})) == [0.25, 0.75, "count", "sum"]
    with pytest.raises(ValueError):
        Summary("s2", "doc", invariants=((1.5, 0.01),), registry=registry)
    assert "s2" not in registry.collectors


def test_registry_rules(registry):
    c = Counter("c", "doc", registry=registry)
    registry.register(c)  # the same object again: no-op (17.x README does this)
    with pytest.raises(ValueError, match="^A collector for c is already registered$"):
        Counter("c", "other", registry=registry)
    with pytest.raises(TypeError):
        registry.register("not a collector")  # type: ignore[arg-type]
    assert registry.get("c") is c
    assert registry.get_all() == [c]
    registry.deregister("c")
    with pytest.raises(KeyError):
        registry.get("c")
    Gauge("g", "doc", registry=registry)
    registry.clear()
    assert registry.get_all() == []


def test_default_registry():
    c = Counter("test_default_registry_total", "doc")
    try:
        assert REGISTRY.get("test_default_registry_total") is c
    finally:
        REGISTRY.deregister("test_default_registry_total")


def test_values_mapping(registry):
    g = Gauge("g", "doc", registry=registry)
    g.values[{"a": "1"}] = 3
    g.values[{"a": "2"}] = 4
    assert g.values[{"a": "1"}] == 3
    assert sorted(d["a"] for d in g.values) == ["1", "2"]
    del g.values[{"a": "1"}]
    assert len(g.values) == 1 and g.get({"a": "2"}) == 4
    with pytest.raises(KeyError):
        del g.values[{"a": "1"}]
    with pytest.raises(TypeError):
        g.values["nope"]
    assert g.get_value({"a": "2"}) == 4
    g.set_value({"a": "3"}, 1)
    assert dict((k["a"], v) for k, v in g.get_all()) == {"2": 4, "3": 1}


def test_removal_keeps_other_series_intact(registry):
    h = Histogram("h", "doc", buckets=[1], registry=registry)
    for i in range(10):
        for _ in range(i + 1):
            h.observe({"i": str(i)}, 0.5)
    for i in (0, 9, 4):
        del h.values[{"i": str(i)}]
    for i in (1, 2, 3, 5, 6, 7, 8):
        assert h.get({"i": str(i)})["count"] == i + 1
    s = Summary("s", "doc", registry=registry)
    for i in range(5):
        s.observe({"i": str(i)}, float(i))
    del s.values[{"i": "1"}]
    assert {k["i"]: v[0.5] for k, v in s.get_all()} == {
        "0": 0.0,
        "2": 2.0,
        "3": 3.0,
        "4": 4.0,
    }


def test_kinds_and_equality(registry):
    assert Counter.kind is MetricsTypes.counter
    assert Gauge.kind is MetricsTypes.gauge
    assert Summary.kind is MetricsTypes.summary
    assert Histogram.kind is MetricsTypes.histogram
    other = Registry()
    a = Counter("c", "doc", registry=registry)
    b = Counter("c", "doc", registry=other)
    assert a == b
    a.inc({})
    assert a != b
    assert isinstance(a, Collector)
    assert len({a, b}) == 2


def test_const_labels_are_kept(registry):
    c = Counter("c", "doc", const_labels={"app": "x"}, registry=registry)
    assert c.const_labels == {"app": "x"}
    with pytest.raises(ValueError, match="Invalid label name: job"):
        Counter("c2", "doc", const_labels={"job": "x"}, registry=registry)


def test_reusing_and_mutating_one_labels_dict(registry):
    """The table remembers the last dict object it saw; a changed dict must
    still find (or create) the series its current content names."""
    c = Counter("c", "doc", registry=registry)
    labels = {"a": "1"}
    c.inc(labels)
    c.inc(labels)
    labels["a"] = "2"
    c.inc(labels)
    labels["b"] = "x"
    c.inc(labels)
    del labels["b"]
    c.inc(labels)
    assert sorted((tuple(sorted(k.items())), v) for k, v in c.get_all()) == [
        ((("a", "1"),), 2),
        ((("a", "2"),), 2),
        ((("a", "2"), ("b", "x")), 1),
    ]
    del c.values[{"a": "1"}]
    c.inc(labels)
    assert c.get({"a": "2"}) == 3
    with pytest.raises(KeyError):
        c.get({"a": "1"})


def test_plain_collector_keeps_any_value(registry):
    """aioprometheus' base Collector stored a value per label set."""
    c = Collector("plain", "doc", registry=registry)
    c.set_value({"a": "1"}, 3)
    c.set_value({"a": "1"}, 4)
    c.set_value({}, "text")
    assert c.get_value({"a": "1"}) == 4
    assert sorted(map(repr, c.get_all())) == sorted(
        map(repr, [({"a": "1"}, 4), ({}, "text")])
    )
    with pytest.raises(ValueError, match="Invalid label name: job"):
        c.set_value({"job": "x"}, 1)
    del c.values[{"a": "1"}]
    assert c.get_all() == [({}, "text")]
    with pytest.raises(KeyError):
        c.get({"a": "1"})


def test_histogram_and_summary_values_cannot_be_set_but_labels_are_checked_first(
    registry,
):
    h = Histogram("h", "doc", registry=registry)
    with pytest.raises(ValueError, match="Invalid label name: le"):
        h.set_value({"le": 2}, 1)
    with pytest.raises(TypeError):
        h.set_value({"x": 2}, 1)
    assert len(h.values) == 0


@pytest.mark.parametrize("kind", [Histogram, Summary])
def test_observations_reject_bools(registry, kind):
    m = kind("m", "doc", registry=registry)
    with pytest.raises(TypeError, match="only works with digits"):
        m.observe({}, True)
    assert len(m.values) == 0


def test_sorted_collectors_while_another_thread_registers_and_drops():
    """Service reads a registry of compiled metrics in its server thread
    while the application registers and drops metrics in its own: every
    read is a list of registered collectors, never a KeyError."""
    import sys
    import threading

    registry = Registry()
    names = [f"race_{i}_total" for i in range(50)]
    for name in names:
        Counter(name, "Races.", registry=registry)
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            i += 1
            name = names[i % len(names)]
            if name in registry.collectors:
                registry.deregister(name)
            else:
                Counter(name, "Races.", registry=registry)

    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can
    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(20000):
            read = registry.sorted_collectors()
            assert [c.name for c in read] == sorted(c.name for c in read)
    finally:
        stop.set()
        worker.join(10)
        sys.setswitchinterval(switching)
