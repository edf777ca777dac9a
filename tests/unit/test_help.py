"""help() shows the library's API, not Cython's plumbing: no class a user
meets (the metric classes, their compiled bases and the bound series that
``labels()`` returns) lists ``__pyx_vtable__``, ``__reduce_cython__`` or
``__setstate_cython__``, in pydoc's text or in ``dir()``."""

import pickle
import pydoc

import pytest

import aioprometheus
from aioprometheus import _core

INTERNALS = ("__pyx_vtable__", "__reduce_cython__", "__setstate_cython__", "__pyx_")

PUBLIC = [
    getattr(aioprometheus, name)
    for name in aioprometheus.__all__
    if isinstance(getattr(aioprometheus, name), type)
]
COMPILED = [value for value in vars(_core).values() if isinstance(value, type)]


def test_the_public_classes_include_every_metric_kind():
    names = {cls.__name__ for cls in PUBLIC}
    assert {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"} <= names


@pytest.mark.parametrize("cls", PUBLIC + COMPILED, ids=lambda cls: cls.__qualname__)
def test_help_shows_no_cython_internals(cls):
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    shown = [name for name in INTERNALS if name in text]
    assert not shown, f"help({cls.__qualname__}) shows {shown}"
    assert not [name for name in dir(cls) if "pyx" in name or "cython" in name]


def test_help_of_a_bound_series_shows_no_cython_internals():
    registry = aioprometheus.Registry()
    counter = aioprometheus.Counter("help_total", "h", registry=registry)
    series = counter.labels(path="/")
    text = pydoc.render_doc(type(series), renderer=pydoc.plaintext)
    assert not [name for name in INTERNALS if name in text]


def test_metrics_still_pickle_and_keep_their_c_methods():
    registry = aioprometheus.Registry()
    counter = aioprometheus.Counter("help_pickle_total", "h", registry=registry)
    counter.inc({"path": "/"})
    histogram = aioprometheus.Histogram(
        "help_seconds", "h", registry=registry, buckets=[1.0]
    )
    histogram.observe({}, 0.5)
    for metric in (counter, histogram):
        copy = pickle.loads(pickle.dumps(metric))
        assert copy.get_all() == metric.get_all()
    copy = pickle.loads(pickle.dumps(counter))
    copy.inc({"path": "/"})  # the C method table survived the capsules' removal
    copy.labels(path="/").add(2)
    assert copy.get({"path": "/"}) == 4
