"""The compiled series table against a plain-Python model.

The model keys series by the label text they expose (``str`` of each
value), independent of key order. The table must agree with it after any
sequence of inserts, updates, deletes and iterations.
"""

import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from aioprometheus import Gauge, Histogram, Registry

names = st.sampled_from(["a", "b", "method", "path", "codigo", "x_1"])
values = st.one_of(
    st.text(max_size=6),
    st.integers(-3, 3),
    st.sampled_from(["GET", "POST", "ü", "漢字", ""]),
)
label_sets = st.dictionaries(names, values, max_size=4)


def exposed(labels: dict) -> frozenset:
    """What identifies a series: its label names and value texts."""
    return frozenset((k, str(v)) for k, v in labels.items())


def reordered(labels: dict, data) -> dict:
    """The same labels, inserted in a random key order."""
    keys = data.draw(st.permutations(list(labels)))
    return {k: labels[k] for k in keys}


class SeriesTableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        registry = Registry()
        self.gauge = Gauge("g", "doc", registry=registry)
        self.hist = Histogram("h", "doc", buckets=[0], registry=registry)
        self.model: dict = {}
        self.hist_model: dict = {}
        self.reused: dict = {}  # one dict object, mutated between calls

    @rule(labels=label_sets, value=st.floats(-1e9, 1e9), data=st.data())
    def set_value(self, labels, value, data):
        self.gauge.set(reordered(labels, data), value)
        self.model[exposed(labels)] = value

    @rule(labels=label_sets, data=st.data())
    def increment(self, labels, data):
        self.gauge.inc(reordered(labels, data))
        key = exposed(labels)
        self.model[key] = self.model.get(key, 0) + 1

    @rule(labels=label_sets, value=st.floats(-5, 5), data=st.data())
    def observe(self, labels, value, data):
        self.hist.observe(reordered(labels, data), value)
        key = exposed(labels)
        count, total, low = self.hist_model.get(key, (0, 0.0, 0))
        self.hist_model[key] = (count + 1, total + value, low + (value <= 0))

    @rule(labels=label_sets)
    def increment_through_reused_dict(self, labels):
        self.reused.clear()
        self.reused.update(labels)
        self.gauge.inc(self.reused)
        key = exposed(labels)
        self.model[key] = self.model.get(key, 0) + 1

    @rule(labels=label_sets, data=st.data())
    def delete(self, labels, data):
        key = exposed(labels)
        try:
            del self.gauge.values[reordered(labels, data)]
        except KeyError:
            assert key not in self.model
        else:
            del self.model[key]

    @rule(data=st.data())
    def delete_existing_histogram(self, data):
        if self.hist_model:
            key = data.draw(st.sampled_from(sorted(self.hist_model, key=repr)))
            del self.hist.values[dict(key)]
            del self.hist_model[key]

    @rule(labels=label_sets, data=st.data())
    def get(self, labels, data):
        key = exposed(labels)
        try:
            got = self.gauge.get(reordered(labels, data))
        except KeyError:
            assert key not in self.model
        else:
            assert math.isclose(got, self.model[key], rel_tol=1e-12, abs_tol=1e-6)

    @invariant()
    def iteration_matches_model(self):
        assert len(self.gauge.values) == len(self.model)
        seen = {}
        for labels, value in self.gauge.get_all():
            seen[exposed(labels)] = value
        assert seen.keys() == self.model.keys()
        for key, value in seen.items():
            assert math.isclose(value, self.model[key], rel_tol=1e-12, abs_tol=1e-6)

    @invariant()
    def histograms_match_model(self):
        got = {exposed(labels): v for labels, v in self.hist.get_all()}
        assert got.keys() == self.hist_model.keys()
        for key, (count, total, low) in self.hist_model.items():
            assert got[key]["count"] == count
            assert got[key][0.0] == low
            assert math.isclose(got[key]["sum"], total, abs_tol=1e-6)


SeriesTableMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestSeriesTable = SeriesTableMachine.TestCase


def test_many_series_survive_growth_and_removal():
    g = Gauge("g", "doc", registry=Registry())
    for i in range(5000):
        g.set({"i": str(i), "j": i % 7}, i)
    for i in range(0, 5000, 3):
        del g.values[{"j": i % 7, "i": str(i)}]
    for i in range(5000):
        labels = {"j": i % 7, "i": str(i)}
        if i % 3 == 0:
            assert labels not in g.values
        else:
            assert g.get(labels) == i
    assert len(g.values) == 5000 - len(range(0, 5000, 3))
