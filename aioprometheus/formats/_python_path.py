"""Which collectors the compiled encoders write, and what the rest expose.

The compiled encoders read a metric's series tables directly. A collector
whose class overrides ``get_all()`` or ``get()`` computes its values in
Python, and a Summary/Histogram holding a subclass's estimator objects has
values only those objects know: aioprometheus 23.12 rendered exactly what
``get_all()`` returns, so these are rendered from it. Both formatters split
the (name-sorted) collectors into runs, so output order never depends on the
path taken.
"""

import math
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, List, Optional, Tuple

from ..collectors import _CORE_GETS, Collector, MetricsTypes, Registry

_BASE_GET_ALL = Collector.get_all

# consecutive (through_python, [collector, ...]) runs, as `runs` yields them
Runs = List[Tuple[bool, List[Collector]]]


def renders_through_python(collector: Collector) -> bool:
    """True if `collector`'s values must be read through ``get_all()``."""
    cls = type(collector)
    return (
        cls.get_all is not _BASE_GET_ALL
        or cls.get not in _CORE_GETS
        # objects stored by a Summary/Histogram subclass (a plain Collector's
        # objects never get here: it has no exposition type)
        or collector._holds_objects()
    )


def compiled_runs(registry: Registry) -> Optional[Runs]:
    """`registry`'s collectors split into runs (see `runs`) if reading it
    runs none of the application's code (refresh hooks, collectors read
    through ``get_all()``, a subclass's own ``sorted_collectors``), so that
    it is a copy of compiled series tables, the same from any thread; else
    None. The runs are what a formatter's ``prepare_stream`` would split the
    collectors into, so the decision is taken once per scrape."""
    if (
        type(registry).sorted_collectors is not Registry.sorted_collectors
        or registry._refresh_hooks
    ):
        return None
    planned = list(runs(registry.sorted_collectors()))
    if any(through_python for through_python, _ in planned):
        return None
    return planned


def runs(
    collectors: Iterable[Collector],
) -> Iterator[Tuple[bool, List[Collector]]]:
    """Consecutive ``(through_python, [collector, ...])`` runs, in order.

    :raises TypeError: for a collector of no exposition type (a plain
      ``Collector``), as 23.12 did.
    """
    current: List[Collector] = []
    current_python = False
    for collector in collectors:
        if collector.kind is MetricsTypes.untyped:
            raise TypeError("Not a valid object format")
        python = renders_through_python(collector)
        if current and python != current_python:
            yield current_python, current
            current = []
        current_python = python
        current.append(collector)
    if current:
        yield current_python, current


def bound_text(bound: float) -> str:
    """A bucket bound or quantile as the ``le``/``quantile`` label spells it."""
    if math.isinf(bound):
        return "+Inf" if bound > 0 else "-Inf"
    return str(float(bound))


def observation_parts(value: Any) -> Tuple[List[Tuple[float, Any]], Any, Any]:
    """A summary's or histogram's value dict as ``(sorted [(quantile or
    bound, value)], count, sum)``, the order the format requires."""
    points = sorted(
        (float(key), number)
        for key, number in value.items()
        if not isinstance(key, str)
    )
    return points, value["count"], value["sum"]


@contextmanager
def exposing(collector: Collector) -> Iterator[None]:
    """Name `collector` in errors its Python-computed values cause."""
    try:
        yield
    except (TypeError, ValueError) as exc:
        error = ValueError if isinstance(exc, ValueError) else TypeError
        raise error(
            f"Cannot expose {collector.kind.name} {collector.name!r}: {exc}"
        ) from exc
