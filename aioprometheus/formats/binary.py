"""Prometheus protobuf exposition: a delimited stream of MetricFamily messages.

:class:`BinaryFormatter` renders a registry with the compiled encoder in
``aioprometheus._core`` (which writes the wire format straight from the
series tables); :func:`decode` and :func:`iter_decode` read such a stream back
into ``io.prometheus.client.MetricFamily`` messages
(:mod:`aioprometheus.metrics_pb2`), for anyone who fetches metrics and wants
to inspect them.
"""

import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

from .. import _core
from ._python_path import observation_parts, runs
from .base import RunFormatter

if TYPE_CHECKING:  # pragma: no cover
    from ..collectors import Collector

BINARY_CONTENT_TYPE = (
    "application/vnd.google.protobuf; "
    "proto=io.prometheus.client.MetricFamily; "
    "encoding=delimited"
)
BINARY_ACCEPTS = set(BINARY_CONTENT_TYPE.split("; "))

__all__ = [
    "BINARY_ACCEPTS",
    "BINARY_CONTENT_TYPE",
    "BinaryFormatter",
    "DecodeError",
    "decode",
    "iter_decode",
]


class DecodeError(ValueError):
    """A delimited MetricFamily stream is truncated or malformed."""


class BinaryFormatter(RunFormatter):
    """Encodes a registry into Prometheus' protobuf (delimited) format."""

    def __init__(self, timestamp: bool = False) -> None:
        """
        :param timestamp: when True every metric carries the render time as
          its ``timestamp_ms``.
        """
        self.timestamp = timestamp

    def get_headers(self) -> Dict[str, str]:
        """Returns a dict of HTTP headers for this response format"""
        return {"Content-Type": BINARY_CONTENT_TYPE}

    def marshall_collector(self, collector: "Collector") -> Any:
        """One collector as the ``MetricFamily`` message :meth:`marshall`
        writes for it (aioprometheus' binary formatter returned this too)."""
        timestamp_ms = self._timestamp_ms()
        if any(python for python, _ in runs([collector])):
            return _family_message(collector, timestamp_ms)
        return decode(_core.encode_protobuf([collector], timestamp_ms))[0]

    def _timestamp_ms(self) -> Optional[int]:
        return int(time.time() * 1000) if self.timestamp else None

    def _compiled(self, metrics: List[Any], timestamp_ms: Optional[int]) -> bytes:
        return _core.encode_protobuf(metrics, timestamp_ms)

    def _python_block(
        self, collector: "Collector", timestamp_ms: Optional[int]
    ) -> bytes:
        """A built message, which serializes to the bytes the compiled
        encoder would write."""
        body = _family_message(collector, timestamp_ms).SerializeToString()
        return _varint(len(body)) + body


_FAMILY_TYPES = {"counter": 0, "gauge": 1, "summary": 2, "histogram": 4}


def _family_message(collector: "Collector", timestamp_ms: Optional[int]) -> Any:
    """`collector`'s MetricFamily built from its ``get_all()``, laid out as
    the compiled encoder lays it out (labels sorted, a series label
    overriding a const one; quantiles and buckets in increasing order)."""
    from ..metrics_pb2 import MetricFamily

    kind = collector.kind.name
    family = MetricFamily(name=collector.name, help=str(collector.doc))
    family.type = _FAMILY_TYPES[kind]
    for labels, value in collector.get_all():
        metric = family.metric.add()
        merged = {
            **collector.const_labels,
            **{str(k): str(v) for k, v in (labels or {}).items()},
        }
        for name in sorted(merged):
            metric.label.add(name=name, value=merged[name])
        if timestamp_ms is not None:
            metric.timestamp_ms = timestamp_ms
        if kind in ("counter", "gauge"):
            getattr(metric, kind).value = float(value)
            continue
        points, count, total = observation_parts(value)
        body = getattr(metric, kind)
        body.sample_count = int(count)
        body.sample_sum = float(total)
        for point, number in points:
            if kind == "summary":
                body.quantile.add(quantile=point, value=float(number))
            else:
                body.bucket.add(cumulative_count=int(number), upper_bound=point)
    return family


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(data: Any, pos: int, end: int) -> Tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise DecodeError("truncated length prefix")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise DecodeError("length prefix is longer than 10 bytes")


def iter_decode(data: bytes) -> Iterator[Any]:
    """Yield the MetricFamily messages of a varint-delimited stream.

    :raises DecodeError: if the stream is truncated or a message does not
      parse.
    """
    from ..metrics_pb2 import MetricFamily  # protobuf only when decoding

    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    end = len(view)
    pos = 0
    while pos < end:
        size, pos = _read_varint(view, pos, end)
        if size > end - pos:
            raise DecodeError(
                f"message of {size} bytes at offset {pos} exceeds the "
                f"{end - pos} bytes left"
            )
        family = MetricFamily()
        try:
            family.ParseFromString(view[pos : pos + size].tobytes())
        except Exception as exc:  # protobuf's DecodeError differs by backend
            raise DecodeError(f"bad MetricFamily at offset {pos}: {exc}") from exc
        pos += size
        yield family


def decode(data: bytes) -> List[Any]:
    """Decode a varint-delimited stream into a list of MetricFamily messages.

    >>> from aioprometheus.formats.binary import decode
    >>> families = decode(body)   # body of a protobuf scrape
    >>> {f.name: f.type for f in families}

    :raises DecodeError: if the stream is truncated or a message does not
      parse.
    """
    return list(iter_decode(data))
