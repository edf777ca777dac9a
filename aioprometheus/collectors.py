"""Metric collectors and the registry that holds them.

Each metric class is a thin Python layer over a compiled base from
``aioprometheus._core``: the hot methods (``inc``, ``add``, ``set``,
``observe``...) are the compiled class's own methods, bound directly, so one
call from user code is one call into C. This module adds construction,
validation and the aioprometheus 23.12 compatibility surface.
"""

import contextlib
import enum
import re
import threading
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _core, multiprocess
from .metricdict import SeriesView
from .mypy_types import LabelsType

METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
UNIT_RE = re.compile(r"^[a-zA-Z0-9_:]+$")
# aioprometheus' names for the label rules the compiled core enforces
RESTRICTED_LABELS_NAMES = tuple(sorted(_core.RESERVED_LABEL_NAMES))
RESTRICTED_LABELS_PREFIXES = (_core.RESERVED_LABEL_PREFIX,)

POS_INF = float("inf")
NEG_INF = float("-inf")


class MetricsTypes(enum.Enum):
    counter = 0
    gauge = 1
    summary = 2
    untyped = 3
    histogram = 4


class Collector(_core.Metric):
    """Base class of all metrics: a name, a help text, const labels and series.

    Every series is identified by the metric name and a dict of labels; the
    dict's content is the key (its order does not matter). Label names must
    match ``[a-zA-Z_][a-zA-Z0-9_]*``; ``job`` and names starting with ``__``
    are reserved, as are ``le`` for histograms and ``quantile`` for summaries.
    """

    kind = MetricsTypes.untyped
    # how the workers' values of a series combine in multi-process mode
    _multiprocess_mode = "all"

    def __init__(
        self,
        name: str,
        doc: str,
        const_labels: Optional[LabelsType] = None,
        registry: Optional["Registry"] = None,
        unit: str = "",
    ) -> None:
        """
        :param name: the metric name, matching ``[a-zA-Z_:][a-zA-Z0-9_:]*``.
        :param doc: a short description, exposed as the metric's HELP.
        :param const_labels: labels added to every series of this metric.
        :param registry: where to register; the default ``REGISTRY`` if None.
        :param unit: the values' unit (``"seconds"``, ``"bytes"``), exposed
          as OpenMetrics' ``# UNIT``; the name (less a counter's ``_total``)
          must end with ``_<unit>``.
        """
        if not isinstance(name, str) or not METRIC_NAME_RE.match(name):
            raise ValueError(f"Invalid metric name: {name}")
        checked = dict(const_labels) if const_labels else {}
        _core.check_labels(checked, self.reserved_label)
        self.name = name
        self.doc = doc
        self.const_labels = checked
        if unit:
            self._check_unit(unit)
        self.unit = unit
        if self.kind is MetricsTypes.untyped:
            self._hold_objects()
        elif multiprocess.directory():
            multiprocess.share(self, self._multiprocess_mode)
        if registry is None:
            registry = get_registry()
        registry.register(self)

    def _check_unit(self, unit: Any) -> None:
        if not isinstance(unit, str) or not UNIT_RE.match(unit):
            raise ValueError(f"Invalid unit: {unit!r}")
        if self.kind is MetricsTypes.untyped:
            raise ValueError("A plain Collector has no exposition, so no unit")
        family, _ = _core.openmetrics_family(self)
        if not family.endswith("_" + unit):
            raise ValueError(
                f"The name of a metric in {unit!r} must end with '_{unit}' "
                f"(before a counter's '_total'), got {self.name!r}"
            )

    @property
    def values(self) -> SeriesView:
        """A live mapping of label dicts to this metric's values."""
        return SeriesView(self)

    def get(self, labels: Optional[LabelsType]) -> Any:
        """The value for `labels`; KeyError if that series does not exist."""
        if not self._holds_objects():
            raise KeyError(labels)
        return self._get_object(labels)

    def set(self, labels: Optional[LabelsType], value: Any) -> None:
        """Store `value` for `labels` (a plain Collector keeps any object)."""
        if not self._holds_objects():
            _core.check_labels(labels or {}, self.reserved_label)
            raise TypeError(f"{type(self).__name__} values cannot be set directly")
        self._set_object(labels, value)

    def set_value(self, labels: Optional[LabelsType], value: Any) -> None:
        """Set the value for `labels` (counters and gauges)."""
        self.set(labels, value)

    def get_value(self, labels: Optional[LabelsType]) -> Any:
        """The value for `labels`; KeyError if that series does not exist."""
        return self.get(labels)

    def get_all(self) -> List[Tuple[LabelsType, Any]]:
        """``[(labels, value), ...]`` for every series.

        Read in one go from the core (so a series removed meanwhile by another
        thread cannot make it fail), unless a subclass overrides ``get`` or
        stores its own objects: then through ``get``, as aioprometheus 23.12 did.
        """
        if type(self).get in _CORE_GETS and self._core_holds_values():
            return self._items()
        return [(labels, self.get(labels)) for labels in self._label_sets()]

    def _core_holds_values(self) -> bool:
        """False when the series' values are objects a subclass stored."""
        return True

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, self.__class__)
            and self.name == other.name
            and self.doc == other.doc
            and self.get_all() == other.get_all()
        )

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} series={self._series_count()}>"


class Counter(_core.CounterCore, Collector):
    """A cumulative value that only goes up: requests served, errors seen.

    ``inc(labels)``, ``add(labels, value)`` (``value >= 0``),
    ``set(labels, value)`` and ``get(labels)``.
    """

    kind = MetricsTypes.counter


class Gauge(_core.GaugeCore, Collector):
    """A value that goes up and down: queue length, temperature, in-flight requests.

    ``set``, ``inc``, ``dec``, ``add``, ``sub`` and ``get``, each taking labels first.
    """

    kind = MetricsTypes.gauge

    def __init__(
        self,
        name: str,
        doc: str,
        const_labels: Optional[LabelsType] = None,
        registry: Optional["Registry"] = None,
        unit: str = "",
        multiprocess_mode: Optional[str] = None,
    ) -> None:
        """See :class:`Collector`; `multiprocess_mode` says how the workers'
        values of a series combine in multi-process mode (see
        :mod:`aioprometheus.multiprocess`): ``all`` (a series per worker, with
        a ``pid`` label), ``sum``, ``min``, ``max`` or ``mostrecent``, or
        each with a ``live`` prefix to leave out the values of dead workers
        (default: ``all``; ``max`` for Info, ``mostrecent`` for Enum).
        """
        if multiprocess_mode is not None:
            self._multiprocess_mode = multiprocess_mode
        super().__init__(name, doc, const_labels, registry, unit)


class _ObservationCollector(Collector):
    """What Summary and Histogram share: compiled per-series state, or, as
    aioprometheus 23.12 allowed, objects a subclass stores per series.

    A subclass written for 23.12 overrides ``add``/``observe`` to keep its
    own estimator per series through ``get_value``/``set_value``. The first
    ``set_value`` switches the metric to holding such objects; ``get`` then
    reads each one as 23.12 did (:meth:`_read_stored`) and scrapes render
    through ``get_all``. A metric never given an object keeps the compiled
    path.
    """

    def set_value(self, labels: Optional[LabelsType], value: Any) -> None:
        """Store `value` (a subclass's estimator object) for `labels`.

        :raises TypeError: if `value` lacks what :meth:`get` reads from it.
        """
        _core.check_labels(labels or {}, self.reserved_label)
        missing = [a for a in self._STORED_ATTRIBUTES if not hasattr(value, a)]
        if missing:
            raise TypeError(
                f"{type(self).__name__} values cannot be set directly; an object "
                f"stored with set_value needs {', '.join(self._STORED_ATTRIBUTES)}"
            )
        if not self._holds_objects():
            if self._series_count():
                raise ValueError(
                    f"{type(self).__name__} {self.name!r} already has observed "
                    "series; objects can only be stored in a fresh metric"
                )
            self._hold_objects()
        self._set_object(labels, value)

    def get_value(self, labels: Optional[LabelsType]) -> Any:
        """The object stored for `labels` if any, else ``get(labels)``."""
        if self._holds_objects():
            stored = self._get_object(labels)
            if stored is not None:
                return stored
        return self.get(labels)

    def _value(
        self, labels: Optional[Mapping[str, Any]], core_get: Callable[..., Any]
    ) -> Dict[Union[float, str], Any]:
        """What ``get`` returns: read from the stored object if there is one,
        else by the kind's compiled `core_get`; KeyError if absent."""
        stored = self._get_object(labels) if self._holds_objects() else None
        if stored is None:
            return core_get(self, labels)  # type: ignore[no-any-return]
        return self._read_stored(stored)

    def _core_holds_values(self) -> bool:
        return not self._holds_objects()

    # each kind: what a stored object must have, and how 23.12 read it
    _STORED_ATTRIBUTES: Tuple[str, ...] = ()

    def _read_stored(self, stored: Any) -> Dict[Union[float, str], Any]:
        raise NotImplementedError


class Summary(_core.SummaryCore, _ObservationCollector):
    """Observations summarised by count, sum and streaming quantile estimates.

    ``invariants`` are ``(quantile, allowed rank error)`` pairs; each reported
    quantile's rank is within ``error * count`` of ``quantile * count``.

    Quantiles are all-time by default, as in aioprometheus 23.12. With
    ``max_age_seconds``, they cover about the last ``max_age_seconds`` only
    (``age_buckets`` estimators rotate, 5 unless given, as in client_golang):
    the window holds the observations of the last ``max_age_seconds`` less
    up to one ``max_age_seconds / age_buckets``, and the rank bound holds
    with ``count`` taken as the observations in the window. ``_count`` and
    ``_sum`` stay cumulative.
    """

    kind = MetricsTypes.summary

    REPR_STR = "summary"
    DEFAULT_INVARIANTS = ((0.50, 0.05), (0.90, 0.01), (0.99, 0.001))
    DEFAULT_AGE_BUCKETS = 5
    SUM_KEY = "sum"
    COUNT_KEY = "count"

    def __init__(
        self,
        name: str,
        doc: str,
        const_labels: Optional[LabelsType] = None,
        registry: Optional["Registry"] = None,
        invariants: Sequence[Tuple[float, float]] = DEFAULT_INVARIANTS,
        max_age_seconds: Optional[float] = None,
        age_buckets: Optional[int] = None,
        unit: str = "",
    ) -> None:
        self._set_invariants(invariants)
        if max_age_seconds is not None:
            self._set_window(
                max_age_seconds,
                self.DEFAULT_AGE_BUCKETS if age_buckets is None else age_buckets,
            )
        elif age_buckets is not None:
            raise ValueError("age_buckets needs max_age_seconds (the window's length)")
        super().__init__(
            name, doc, const_labels=const_labels, registry=registry, unit=unit
        )

    add = _core.SummaryCore.observe

    def get(self, labels: Optional[Mapping[str, Any]]) -> Dict[Union[float, str], Any]:
        """``{quantile: estimate, ..., "count": n, "sum": s}`` for `labels`."""
        return self._value(labels, _core.SummaryCore.get)

    _STORED_ATTRIBUTES = ("_invariants", "query", "_observations", "_sum")

    def _read_stored(self, stored: Any) -> Dict[Union[float, str], Any]:
        """A stored estimator read as 23.12's Summary.get read its own: its
        ``_invariants`` (each with a ``_quantile``), ``query(q)``,
        ``_observations`` and ``_sum``."""
        result: Dict[Union[float, str], Any] = {}
        for invariant in stored._invariants:
            phi = invariant._quantile
            result[phi] = stored.query(phi)
        result["count"] = stored._observations
        result["sum"] = stored._sum
        return result


class Histogram(_core.HistogramCore, _ObservationCollector):
    """Observations counted into cumulative buckets, plus their count and sum.

    Exposed as ``<name>_bucket{le="<bound>"}``, ``<name>_count`` and
    ``<name>_sum``; a ``+Inf`` bucket is always present.

    With ``native_histogram_bucket_factor`` (> 1) the histogram also keeps
    native (sparse, exponential) buckets, as client_golang's options of the
    same names describe; Prometheus ingests them from the protobuf format.
    Then ``buckets`` default to none (native only); give them to expose both.
    The other ``native_histogram_*`` options: ``zero_threshold`` (default
    2**-128), ``max_bucket_number`` (0: no limit), ``min_reset_duration``
    (seconds, 0: never reset) and ``max_zero_threshold`` (default 0).
    """

    kind = MetricsTypes.histogram

    REPR_STR = "histogram"
    DEFAULT_BUCKETS = (
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
        10.0,
        POS_INF,
    )
    SUM_KEY = "sum"
    COUNT_KEY = "count"

    def __init__(
        self,
        name: str,
        doc: str,
        const_labels: Optional[LabelsType] = None,
        registry: Optional["Registry"] = None,
        buckets: Optional[Sequence[float]] = None,
        unit: str = "",
        *,
        native_histogram_bucket_factor: Optional[float] = None,
        native_histogram_zero_threshold: Optional[float] = None,
        native_histogram_max_bucket_number: int = 0,
        native_histogram_min_reset_duration: float = 0.0,
        native_histogram_max_zero_threshold: float = 0.0,
    ) -> None:
        if native_histogram_bucket_factor is None:
            if (
                native_histogram_zero_threshold is not None
                or native_histogram_max_bucket_number
                or native_histogram_min_reset_duration
                or native_histogram_max_zero_threshold
            ):
                raise ValueError(
                    "native_histogram_* options need native_histogram_bucket_factor"
                )
            self._set_buckets(self.DEFAULT_BUCKETS if buckets is None else buckets)
        else:
            if buckets is not None:
                self._set_buckets(buckets)
            self._set_native(
                native_histogram_bucket_factor,
                _native_option(
                    "zero_threshold",
                    _core.DEFAULT_ZERO_THRESHOLD
                    if native_histogram_zero_threshold is None
                    else native_histogram_zero_threshold,
                ),
                _native_count(native_histogram_max_bucket_number),
                _native_option(
                    "min_reset_duration", native_histogram_min_reset_duration
                ),
                _native_option(
                    "max_zero_threshold", native_histogram_max_zero_threshold
                ),
                buckets is not None,
            )
        super().__init__(
            name, doc, const_labels=const_labels, registry=registry, unit=unit
        )

    add = _core.HistogramCore.observe

    def get(self, labels: Optional[Mapping[str, Any]]) -> Dict[Union[float, str], Any]:
        """``{upper bound: cumulative count, ..., "count": n, "sum": s}``."""
        return self._value(labels, _core.HistogramCore.get)

    _STORED_ATTRIBUTES = ("buckets", "observations", "sum")

    def _read_stored(self, stored: Any) -> Dict[Union[float, str], Any]:
        """A stored bucket counter read as 23.12's Histogram.get read its own
        (:class:`aioprometheus.histogram.Histogram`): ``buckets``,
        ``observations`` and ``sum``."""
        result: Dict[Union[float, str], Any] = dict(stored.buckets)
        result["count"] = stored.observations
        result["sum"] = stored.sum
        return result


def _label_text_key(labels: Mapping[Any, Any]) -> Tuple[Tuple[str, str], ...]:
    """A label set's identity as the core sees it: its exposed texts."""
    return tuple(sorted((str(name), str(value)) for name, value in labels.items()))


# Info and Enum write several series per set(), rarely: one lock for all (a
# lock per metric would not pickle)
_LABELLED_GAUGE_WRITES = threading.Lock()


class _LabelledGaugeSet(Gauge):
    """A gauge whose series for one label set are written together, under a
    lock: Info and Enum, whose extra label marks what the series says."""

    def _label_dict(self, labels: Optional[LabelsType]) -> Dict[str, str]:
        """A copy of `labels` to add to (the core checks what is set)."""
        if labels is not None and not isinstance(labels, Mapping):
            raise TypeError(f"labels must be a dict, got {type(labels).__name__}")
        return dict(labels or {})

    def _refuse(self, *args: Any) -> None:
        raise TypeError(f"{type(self).__name__} values are set with set(labels, ...)")

    inc = dec = add = sub = _refuse  # type: ignore[assignment]


class Info(_LabelledGaugeSet):
    """Key-value facts about a target, such as its version: exposed as a
    gauge named ``<name>_info`` with the facts as labels and the value 1, as
    prometheus_client does (OpenMetrics calls this kind ``info``).

    ``Info("build", "Build facts").set({"host": "a"}, {"version": "1.2.3"})``;
    setting again for the same labels replaces the facts.
    """

    _multiprocess_mode = "max"  # every worker sets the same facts

    def __init__(
        self,
        name: str,
        doc: str,
        const_labels: Optional[LabelsType] = None,
        registry: Optional["Registry"] = None,
    ) -> None:
        self.info_name = name
        self._facts_of: Dict[Tuple[Tuple[str, str], ...], Dict[str, str]] = {}
        self._set_openmetrics_kind("info")
        super().__init__(
            f"{name}_info", doc, const_labels=const_labels, registry=registry
        )

    def set(self, labels: Optional[LabelsType], value: Any) -> None:  # type: ignore[override]
        """Expose the facts `value` (a dict of str to str) for `labels`."""
        merged = self._label_dict(labels)
        if not isinstance(value, Mapping):
            raise TypeError(f"Info facts must be a dict of str to str, got {value!r}")
        for fact, text in value.items():
            if not isinstance(fact, str) or not isinstance(text, str):
                raise TypeError(
                    f"Info facts must be str to str, got {fact!r}: {text!r}"
                )
            if fact in merged or fact in self.const_labels:
                raise ValueError(
                    f"Info fact {fact!r} is also one of the metric's labels"
                )
            merged[fact] = text
        _core.check_labels(dict(merged), self.reserved_label)
        key = _label_text_key(labels or {})
        with _LABELLED_GAUGE_WRITES:
            previous = self._facts_of.get(key)
            if previous is not None and _label_text_key(previous) != _label_text_key(
                merged
            ):
                with contextlib.suppress(KeyError):  # unless removed meanwhile
                    self._remove(previous)
            Gauge.set(self, merged, 1)
            self._facts_of[key] = merged


class Enum(_LabelledGaugeSet):
    """Which one of a fixed set of states something is in: exposed as a gauge
    with one series per state, a label named after the metric holding the
    state, 1 for the current state and 0 for the others, as prometheus_client
    does (OpenMetrics calls this kind ``stateset``).

    ``Enum("task_state", "Task state", states=["starting", "running"])``, then
    ``.set({"task": "a"}, "running")``.
    """

    _multiprocess_mode = "mostrecent"  # the state the latest worker set

    def __init__(
        self,
        name: str,
        doc: str,
        states: Sequence[str],
        const_labels: Optional[LabelsType] = None,
        registry: Optional["Registry"] = None,
    ) -> None:
        if isinstance(states, str) or not isinstance(states, Sequence) or not states:
            raise ValueError(
                f"Enum states must be a non-empty list of str, got {states!r}"
            )
        if not all(isinstance(state, str) for state in states):
            raise TypeError(f"Enum states must be str, got {states!r}")
        if len(set(states)) != len(states):
            raise ValueError(f"Enum states must be unique, got {states!r}")
        if const_labels and name in const_labels:
            raise ValueError(f"Enum {name!r} uses its own name as the state label")
        self.states = tuple(states)
        self._set_openmetrics_kind("stateset")
        super().__init__(name, doc, const_labels=const_labels, registry=registry)

    def set(self, labels: Optional[LabelsType], value: Any) -> None:  # type: ignore[override]
        """Make `value`, one of the states, the current state for `labels`."""
        merged = self._label_dict(labels)
        if self.name in merged:
            raise ValueError(f"Enum {self.name!r} uses its own name as the state label")
        if value not in self.states:
            raise ValueError(
                f"{value!r} is not one of {self.name}'s states {self.states}"
            )
        with _LABELLED_GAUGE_WRITES:
            for state in self.states:
                Gauge.set(
                    self, {**merged, self.name: state}, 1 if state == value else 0
                )


def _native_option(name: str, value: float) -> float:
    """A native histogram threshold or duration: a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"native_histogram_{name} must be a number, got {value!r}")
    if not 0 <= value < POS_INF:
        raise ValueError(
            f"native_histogram_{name} must be finite and >= 0, got {value!r}"
        )
    return float(value)


def _native_count(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"native_histogram_max_bucket_number must be an int >= 0, got {value!r}"
        )
    return value


class Registry:
    """The set of collectors a scrape exposes, keyed by metric name."""

    def __init__(self, created_samples: bool = False) -> None:
        """
        :param created_samples: give every counter, histogram and summary
          series its ``_created`` sample (when it was created) in
          OpenMetrics. Off by default: Prometheus 2.x stores each one as a
          series of its own, one more per series.
        """
        self.collectors: Dict[str, Collector] = {}
        self._refresh_hooks: List[Callable[[], None]] = []
        self.created_samples = bool(created_samples)

    def register(self, collector: Collector) -> None:
        """Add `collector`.

        Registering the very same collector again does nothing; another
        collector with a taken name raises ValueError.
        """
        if not isinstance(collector, Collector):
            raise TypeError(f"Invalid collector type: {collector}")
        existing = self.collectors.get(collector.name)
        if existing is collector:
            return
        if existing is not None:
            raise ValueError(f"A collector for {collector.name} is already registered")
        self.collectors[collector.name] = collector

    def deregister(self, name: str) -> None:
        """Stop exposing the collector called `name`; KeyError if unknown."""
        del self.collectors[name]

    def get(self, name: str) -> Collector:
        """The collector called `name`; KeyError if unknown."""
        return self.collectors[name]

    def get_all(self) -> List[Collector]:
        """Every registered collector."""
        return list(self.collectors.values())

    def add_refresh(self, hook: Callable[[], None]) -> None:
        """Call `hook` before every scrape reads this registry.

        For values that are read at scrape time rather than kept up to date
        (the runtime collectors of :mod:`aioprometheus.runtime`): the hook
        sets them on its metrics. It runs on the thread that scrapes, the
        application's event loop for ``Service`` and the ASGI handlers.
        """
        if not callable(hook):
            raise TypeError(f"refresh hook must be callable, got {hook!r}")
        self._refresh_hooks.append(hook)

    def remove_refresh(self, hook: Callable[[], None]) -> None:
        """Stop calling `hook`; ValueError if it was not added."""
        self._refresh_hooks.remove(hook)

    def sorted_collectors(self) -> Iterable[Collector]:
        """Every registered collector, by name: the order scrapes expose them in.

        Runs the refresh hooks first (see :meth:`add_refresh`).
        """
        for hook in list(self._refresh_hooks):
            hook()
        # (name, collector) pairs sorted in one call: no Python code runs
        # in it, so a thread registering meanwhile cannot break the read
        collectors = [c for _, c in sorted(self.collectors.items())]
        if multiprocess.directory():
            return multiprocess.merged_collectors(collectors)
        return collectors

    def clear(self) -> None:
        """Deregister everything, refresh hooks too (handy between tests)."""
        self.collectors.clear()
        self._refresh_hooks.clear()


# get() as the core and this module define it: get_all() may bypass these
_CORE_GETS = (
    Collector.get,
    _core.ScalarMetric.get,
    Histogram.get,
    Summary.get,
)

REGISTRY = Registry()


def get_registry() -> Registry:
    """The default registry."""
    return REGISTRY


def register_default_collectors(
    registry: Optional[Registry] = None, **options: Any
) -> List[Any]:
    """Expose the process, platform, GC and event-loop metrics (opt-in).

    See :func:`aioprometheus.runtime.register_default_collectors`, which
    takes the same arguments.
    """
    from .runtime import register_default_collectors as register

    return register(registry, **options)
