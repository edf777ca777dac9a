"""metric.labels(...): a series looked up once, then updated without a lookup.

A bound series must always update its own series: after other series are
removed (which renumbers series) or the metric is cleared (then it creates
its series again), checked here against a plain-Python model.
"""

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from aioprometheus import Counter, Gauge, Histogram, Registry, Summary


def test_each_kind_updates_its_series_through_a_bound_series(registry):
    c = Counter("c_total", "doc", registry=registry)
    get = c.labels(method="GET", code=200)
    assert c.get({"method": "GET", "code": "200"}) == 0  # created at once
    get.inc()
    get.add(2)
    assert get.get() == 3 == c.get({"code": 200, "method": "GET"})
    with pytest.raises(ValueError, match="Counters can't decrease"):
        get.add(-1)
    assert get.label_values == {"method": "GET", "code": "200"}

    g = Gauge("g", "doc", registry=registry)
    room = g.labels({"room": "a"})
    room.set(10)
    room.inc()
    room.dec()
    room.add(2.5)
    room.sub(0.5)
    assert g.get({"room": "a"}) == 12.0

    h = Histogram("h", "doc", buckets=[1, 2], registry=registry)
    h.labels(path="/").observe(1.5)
    assert h.get({"path": "/"}) == {
        1.0: 0,
        2.0: 1,
        float("inf"): 1,
        "count": 1,
        "sum": 1.5,
    }

    s = Summary("s", "doc", registry=registry)
    fast = s.labels(path="/")
    for value in (1, 2, 3):
        fast.observe(value)
    assert s.get({"path": "/"})["count"] == 3


def test_bad_labels_fail_at_labels_and_create_nothing(registry):
    c = Counter("c_total", "doc", registry=registry)
    with pytest.raises(ValueError, match="Invalid label name: job"):
        c.labels(job="x")
    with pytest.raises(ValueError):
        Histogram("h", "doc", registry=registry).labels(le="1")
    with pytest.raises(TypeError):
        c.labels(["not", "a", "dict"])
    assert len(c.values) == 0


def test_a_bound_series_survives_renumbering_and_clear(registry):
    g = Gauge("g", "doc", registry=registry)
    first = g.labels(n="first")
    last = g.labels(n="last")
    first.set(1)
    last.set(2)
    del g.values[{"n": "first"}]  # "last" moves into series number 0
    last.inc()
    assert g.get({"n": "last"}) == 3
    assert {"n": "first"} not in g.values
    g.values.clear()
    first.inc()  # recreated, not written into another series
    assert g.get_all() == [({"n": "first"}, 1)]


names = st.sampled_from(["a", "b", "c", "d"])


class BoundSeriesMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.gauge = Gauge("g", "doc", registry=Registry())
        self.bound = {}
        self.model = {}

    @rule(name=names)
    def bind(self, name):
        self.bound[name] = self.gauge.labels(n=name)
        self.model.setdefault(name, 0)

    @rule(name=names, value=st.integers(-5, 5))
    def add_through_bound(self, name, value):
        if name in self.bound:
            self.bound[name].add(value)
            self.model[name] = self.model.get(name, 0) + value

    @rule(name=names, value=st.integers(-5, 5))
    def add_through_labels(self, name, value):
        self.gauge.add({"n": name}, value)
        self.model[name] = self.model.get(name, 0) + value

    @rule(name=names)
    def remove(self, name):
        if name in self.model:
            del self.gauge.values[{"n": name}]
            del self.model[name]

    @rule()
    def clear(self):
        self.gauge.values.clear()
        self.model.clear()

    @invariant()
    def matches_model(self):
        got = {labels["n"]: value for labels, value in self.gauge.get_all()}
        assert got == self.model


BoundSeriesMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None
)
TestBoundSeries = BoundSeriesMachine.TestCase
