"""Text exposition format 0.0.4; the encoding itself is compiled (_core.encode_text).

Collectors whose values only Python code can give (see
:mod:`._python_path`) are written sample by sample through throwaway compiled
gauges, so every byte (escaping, number spelling) comes from the one encoder.
"""

import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Tuple

from .. import _core
from ._python_path import bound_text, exposing, observation_parts
from .base import Emit, RunFormatter

if TYPE_CHECKING:
    from ..collectors import Collector
    from ..mypy_types import LabelsType

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TEXT_ACCEPTS = set(TEXT_CONTENT_TYPE.split("; "))


class TextFormatter(RunFormatter):
    """Encodes a registry in the text format, collectors sorted by name."""

    def __init__(self, timestamp: bool = False) -> None:
        """
        :param timestamp: append the current time (ms since the epoch) to
          every sample when True.
        """
        self.timestamp = timestamp

    def get_headers(self) -> Dict[str, str]:
        return {"Content-Type": TEXT_CONTENT_TYPE}

    def marshall_collector(self, collector: "Collector") -> str:
        """One collector's text (HELP, TYPE and sample lines, no final
        newline): the block :meth:`marshall` writes for it."""
        return self._encoded([collector]).decode()[:-1]

    def marshall_lines(self, collector: "Collector") -> List[str]:
        """One collector's text as a list of lines (see :meth:`marshall_collector`)."""
        return self.marshall_collector(collector).split("\n")

    def _timestamp_ms(self) -> int:
        return int(time.time() * 1000) if self.timestamp else -1

    def _compiled(self, metrics: List[Any], timestamp_ms: int, emit: Emit) -> None:
        _core.encode_text(metrics, timestamp_ms, emit)

    def _python_block(self, collector: "Collector", timestamp_ms: int) -> bytes:
        return _python_block(collector, timestamp_ms)


def _python_block(collector: "Collector", timestamp_ms: int) -> bytes:
    """`collector`'s text block from its ``get_all()``, in the compiled layout."""
    name = collector.name
    help_line = _GaugeLines(name, collector.const_labels, collector.doc)
    header = b"".join(
        [
            _core.encode_text([help_line]).split(b"\n", 1)[0],
            f"\n# TYPE {name} {collector.kind.name}\n".encode(),
        ]
    )
    return python_block(
        collector, header, lambda lines: _core.encode_text(lines, timestamp_ms)
    )


def python_block(
    collector: "Collector", header: bytes, encode: Callable[[List[Any]], bytes]
) -> bytes:
    """`header`, then the sample lines of `collector`'s ``get_all()`` as the
    compiled encoder `encode` writes them (for gauges under any name)."""
    parts = [header]
    with exposing(collector):
        for labels, value in collector.get_all():
            for sample_name, series in _series_samples(collector, labels, value):
                parts.append(_samples(sample_name, collector, series, encode))
    return b"".join(parts)


def _series_samples(
    collector: "Collector", labels: Any, value: Any
) -> List[Tuple[str, List[Tuple[Any, Any]]]]:
    """One series' samples as ``[(sample name, [(labels, number), ...])]``:
    the value itself, or the quantiles (buckets), then ``_count`` and
    ``_sum``, numbers typed as the compiled encoder writes them (summary
    quantiles floats and count an integer; every histogram sample a float)."""
    name = collector.name
    kind = collector.kind.name
    if kind in ("counter", "gauge"):
        return [(name, [(labels, value)])]
    points, count, total = observation_parts(value)
    extra, suffix = ("quantile", "") if kind == "summary" else ("le", "_bucket")
    as_count = float if kind == "histogram" else int
    return [
        (
            name + suffix,
            [({**(labels or {}), extra: bound_text(p)}, float(v)) for p, v in points],
        ),
        (name + "_count", [(labels, as_count(count))]),
        (name + "_sum", [(labels, float(total))]),
    ]


class _GaugeLines(_core.GaugeCore):
    """A throwaway compiled gauge: sample lines under any name and labels."""

    def __init__(self, name: str, const_labels: "LabelsType", doc: Any = "") -> None:
        self.name = name
        self.doc = doc
        self.const_labels = const_labels


def _samples(
    name: str,
    collector: "Collector",
    series: List[Any],
    encode: Callable[[List[Any]], bytes],
) -> bytes:
    """Sample lines ``name{labels} value`` for each ``(labels, value)``, with
    `collector`'s const labels merged in (HELP/TYPE lines cut off)."""
    lines = _GaugeLines(name, collector.const_labels)
    for labels, value in series:
        lines.set(labels, value)
    return encode([lines]).split(b"\n", 2)[2]
