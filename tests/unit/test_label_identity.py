"""A series is the label text it exposes.

Each label name is exposed as ``str(name)`` (names must be ``str``), each
value as ``str(value)`` (an exact ``str`` as-is). Label dicts that render the
same are one series, ones that render differently are different series.
Any dict subclass is a dict; ``None``, ``{}`` and other falsy non-dicts mean
no labels. Text that is not valid UTF-8 is refused at the call that brings
it in, and leaves every metric (and every later scrape) as it was.
"""

import enum
import math
from collections import OrderedDict, defaultdict

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aioprometheus import Counter, Gauge, Histogram, Registry, Summary, render
from aioprometheus.formats.binary import BINARY_CONTENT_TYPE, decode


class Color(enum.Enum):
    RED = "red"


class Shouting(str):
    """A str subclass: not an exact str, so its ``__str__`` names the series."""

    def __str__(self) -> str:
        return self.upper()


class Labels(dict):
    """A user dict subclass."""


def exposed_samples(registry: Registry) -> list:
    """``(sample name, labels, value)`` of every sample a text scrape shows."""
    body, _ = render(registry, [])
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(body.decode("utf-8"))
        for s in family.samples
    ]


def series_texts(metric) -> list:
    return sorted(sorted(labels.items()) for labels, _ in metric.get_all())


@pytest.fixture
def counter(registry):
    return Counter("requests", "Requests.", registry=registry)


def test_int_and_its_text_are_one_series(counter, registry):
    counter.inc({"code": 200})
    counter.inc({"code": "200"})
    counter.add({"code": 200}, 2)
    assert counter.get({"code": "200"}) == 4
    assert counter.get({"code": 200}) == 4
    assert exposed_samples(registry) == [("requests_total", {"code": "200"}, 4.0)]


def test_values_that_render_differently_are_different_series(counter, registry):
    for value in (1, True, 1.0, 1, "True"):
        counter.inc({"w": value})
    assert counter.get({"w": "1"}) == 2
    assert counter.get({"w": True}) == 2
    assert counter.get({"w": "1.0"}) == 1
    assert series_texts(counter) == [[("w", "1")], [("w", "1.0")], [("w", "True")]]
    assert len(exposed_samples(registry)) == 3


def test_nan_label_is_one_series_however_often_used(registry):
    gauge = Gauge("ratio_seen", "doc", registry=registry)
    for _ in range(1000):
        gauge.inc({"ratio": float("nan")})
    assert gauge.get_all() == [({"ratio": "nan"}, 1000)]
    del gauge.values[{"ratio": math.nan}]
    assert len(gauge.values) == 0


def test_enum_and_str_subclass_values_expose_their_str(counter):
    counter.inc({"color": Color.RED})
    counter.inc({"color": "Color.RED"})
    counter.inc({"name": Shouting("abc")})
    counter.inc({"name": "ABC"})
    assert counter.get({"color": Color.RED}) == 2
    assert counter.get({"name": "ABC"}) == 2
    assert {"name": "abc"} not in counter.values


def test_label_names_are_exposed_as_str_and_must_be_str(counter):
    counter.inc({Shouting("path"): "/"})
    assert counter.get({"PATH": "/"}) == 1
    for bad_name in (1, b"path", None):
        with pytest.raises(TypeError):
            counter.inc({bad_name: "x"})
    assert counter.get_all() == [({"PATH": "/"}, 1)]


def test_get_all_and_iteration_yield_exact_str_texts(counter):
    counter.inc({"a": 1, Shouting("b"): Color.RED})
    ((labels, value),) = counter.get_all()
    assert labels == {"a": "1", "B": "Color.RED"} and value == 1
    assert all(type(k) is str and type(v) is str for k, v in labels.items())
    (iterated,) = list(counter.values)
    assert iterated == labels
    assert all(type(k) is str and type(v) is str for k, v in iterated.items())


def test_const_label_values_expose_their_str(registry):
    gauge = Gauge(
        "g",
        "doc",
        registry=registry,
        const_labels={"color": Color.RED, "name": Shouting("v"), "code": 200},
    )
    gauge.set({"a": 1}, 1)
    assert exposed_samples(registry) == [
        ("g", {"a": "1", "code": "200", "color": "Color.RED", "name": "V"}, 1.0)
    ]


def test_key_order_does_not_matter(counter):
    counter.inc({"a": 1, "b": 2})
    counter.inc({"b": "2", "a": "1"})
    assert counter.get({"b": 2, "a": 1}) == 2
    assert len(counter.values) == 1


@pytest.mark.parametrize(
    "make",
    [
        OrderedDict,
        lambda items: defaultdict(list, items),
        Labels,
    ],
    ids=["OrderedDict", "defaultdict", "user subclass"],
)
def test_dict_subclasses_work_wherever_a_dict_does(make, registry):
    counter = Counter("c", "doc", registry=registry)
    gauge = Gauge("g", "doc", registry=registry, const_labels=make({"env": "t"}))
    hist = Histogram("h", "doc", registry=registry, buckets=[1])
    summ = Summary("s", "doc", registry=registry)
    labels = make({"path": "/", "code": 200})
    counter.inc(labels)
    counter.add(labels, 2)
    gauge.set(labels, 5)
    hist.observe(labels, 0.5)
    summ.observe(labels, 3)
    assert counter.get(make({"code": "200", "path": "/"})) == 3
    assert counter.values[labels] == 3 and labels in counter.values
    assert gauge.get(labels) == 5
    assert hist.get(labels)["count"] == summ.get(labels)["count"] == 1
    assert {"env": "t", "path": "/", "code": "200"} in [
        s[1] for s in exposed_samples(registry) if s[0] == "g"
    ]
    del counter.values[labels]
    summ._remove(labels)
    assert len(counter.values) == len(summ.values) == 0


@pytest.mark.parametrize("no_labels", [None, {}, "", OrderedDict(), Labels()])
def test_falsy_labels_mean_no_labels(no_labels, counter):
    counter.inc(None)
    counter.inc(no_labels)
    counter.add(no_labels, 3)
    assert counter.get({}) == counter.get(no_labels) == 5
    assert counter.get_all() == [({}, 5)]


@pytest.mark.parametrize("not_a_dict", ["x", [("a", "b")], 1, ("a",)])
def test_truthy_non_dicts_are_refused(not_a_dict, counter):
    counter.inc({"a": "b"})
    for call in (counter.inc, counter.get, counter._remove):
        with pytest.raises(TypeError):
            call(not_a_dict)
    with pytest.raises(TypeError):
        counter.set(not_a_dict, 1)
    assert counter.get_all() == [({"a": "b"}, 1)]


class Surrogate:
    """A label value whose text cannot be encoded as UTF-8."""

    def __str__(self) -> str:
        return "bad\ud800"


def assert_scrapes_work(registry: Registry) -> list:
    """Text and protobuf scrapes of ``registry`` still succeed."""
    body, _ = render(registry, [BINARY_CONTENT_TYPE])
    decode(body)
    return exposed_samples(registry)


def test_help_with_lone_surrogate_is_refused_at_construction(registry):
    Counter("fine", "doc", registry=registry).inc({"a": "b"})
    with pytest.raises(ValueError):
        Counter("broken", "help \ud800", registry=registry)
    with pytest.raises(ValueError):
        Gauge("broken", "doc", registry=registry, const_labels={"env": "\udfff"})
    assert "broken" not in registry.collectors
    assert assert_scrapes_work(registry) == [("fine_total", {"a": "b"}, 1.0)]


@pytest.mark.parametrize(
    "bad_labels",
    [
        {"a": "ok", "b": "\ud800"},
        {"a": Surrogate()},
        {Shouting("a\ud800"): "x"},
        {"a\udc80": "x"},
    ],
    ids=["str value", "__str__ value", "str subclass name", "name"],
)
@pytest.mark.parametrize("kind", [Counter, Gauge, Histogram, Summary])
def test_non_utf8_label_text_is_refused_and_changes_nothing(kind, bad_labels, registry):
    metric = kind("m", "doc", registry=registry)
    metric.add({"a": "ok"}, 1)
    before = metric.get_all()
    with pytest.raises(ValueError):
        metric.add(bad_labels, 1)
    with pytest.raises((ValueError, KeyError)):
        metric.get(bad_labels)
    assert metric.get_all() == before
    assert len(assert_scrapes_work(registry)) > 0


def test_metric_name_with_lone_surrogate_is_refused(registry):
    with pytest.raises(ValueError):
        Counter("name\ud800", "doc", registry=registry)
    assert registry.collectors == {}
