"""Prometheus protobuf exposition: a delimited stream of MetricFamily messages.

:class:`BinaryFormatter` renders a registry with the compiled encoder in
``aioprometheus._core`` (which writes the wire format straight from the
series tables); :func:`decode` and :func:`iter_decode` read such a stream back
into ``io.prometheus.client.MetricFamily`` messages
(:mod:`aioprometheus.metrics_pb2`), for anyone who fetches metrics and wants
to inspect them.
"""

import functools
import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple, Union

from .. import _core
from ._python_path import exposing, observation_parts
from .base import Emit, RunFormatter

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
        return decode(self._encoded([collector]))[0]

    def _timestamp_ms(self) -> Optional[int]:
        return int(time.time() * 1000) if self.timestamp else None

    def _compiled(
        self, metrics: List[Any], timestamp_ms: Optional[int], emit: Emit
    ) -> None:
        emit(_core.encode_protobuf(metrics, timestamp_ms))

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
    with exposing(collector):
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


# The smallest MetricFamily with a name: the name's tag, its length, one byte.
# Shorter messages are refused before anything is parsed, so that a stream of
# zero bytes (one empty family each) costs nothing to reject.
_MIN_NAMED_FAMILY = 3
# Field 1, length-delimited: the tag of the repeated family field of the
# stream message built by _stream_class.
_FAMILY_FIELD_TAG = b"\x0a"


_Bytes = Union[bytes, bytearray, memoryview]


def _byte_view(data: _Bytes) -> memoryview:
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view


def _frames(view: memoryview) -> Iterator[Tuple[int, int, int]]:
    """``(start, body_start, end)`` of each length-prefixed message, its
    length checked against the bytes left before the caller parses it."""
    end = len(view)
    pos = 0
    while pos < end:
        start = pos
        size, pos = _read_varint(view, pos, end)
        if size > end - pos:
            raise DecodeError(
                f"message of {size} bytes at offset {start} exceeds the "
                f"{end - pos} bytes left"
            )
        if size < _MIN_NAMED_FAMILY:
            raise DecodeError(f"MetricFamily at offset {start} has no name")
        yield start, pos, pos + size
        pos += size


def _named(family: Any, offset: int) -> Any:
    if not family.name:
        raise DecodeError(f"MetricFamily at offset {offset} has no name")
    return family


@functools.cache
def _stream_class() -> Any:
    """A message whose field 1 is ``repeated MetricFamily``.

    Its wire form is the delimited stream with a tag byte before each length
    prefix, so a whole stream parses in one call into one arena. Parsed one
    by one, each family gets its own arena, about 600 bytes however small
    the family: 150 times the size of a 4-byte family.
    """
    from google.protobuf import descriptor_pb2

    from ..metrics_pb2 import MetricFamily, message_class

    family_file = MetricFamily.DESCRIPTOR.file
    pool = family_file.pool
    full_name = "aioprometheus.decode.Stream"
    try:
        descriptor = pool.FindMessageTypeByName(full_name)
    except KeyError:
        field = descriptor_pb2.FieldDescriptorProto
        proto = descriptor_pb2.FileDescriptorProto(
            name="aioprometheus/decode_stream.proto",
            package="aioprometheus.decode",
            dependency=[family_file.name],
        )
        proto.message_type.add(name="Stream").field.add(
            name="family",
            number=1,
            label=field.LABEL_REPEATED,
            type=field.TYPE_MESSAGE,
            type_name="." + MetricFamily.DESCRIPTOR.full_name,
        )
        pool.Add(proto)
        descriptor = pool.FindMessageTypeByName(full_name)
    return message_class(descriptor)


def iter_decode(data: _Bytes) -> Iterator[Any]:
    """Yield the MetricFamily messages of a varint-delimited stream, one
    parsed at a time (memory stays flat when each is dropped after use).

    :raises DecodeError: if the stream is truncated, a message does not
      parse or a family has no name.
    """
    from ..metrics_pb2 import MetricFamily  # protobuf only when decoding

    view = _byte_view(data)
    for start, body_start, end in _frames(view):
        family = MetricFamily()
        try:
            family.ParseFromString(view[body_start:end])
        except Exception as exc:  # protobuf's DecodeError differs by backend
            raise DecodeError(f"bad MetricFamily at offset {start}: {exc}") from exc
        yield _named(family, start)


def decode(data: _Bytes) -> List[Any]:
    """Decode a varint-delimited stream into a list of MetricFamily messages.

    Every length is checked before anything is parsed, and the families
    share one protobuf arena, so memory stays within a small multiple of the
    input size whatever the input.

    >>> from aioprometheus.formats.binary import decode
    >>> families = decode(body)   # body of a protobuf scrape
    >>> {f.name: f.type for f in families}

    :raises DecodeError: if the stream is truncated, a message does not
      parse or a family has no name.
    """
    view = _byte_view(data)
    stream = bytearray()
    for start, _, end in _frames(view):
        stream += _FAMILY_FIELD_TAG
        stream += view[start:end]
    container = _stream_class()()
    try:
        # bytes: protobuf before 4.22 parses nothing else
        container.ParseFromString(bytes(stream))
    except Exception as exc:
        # Parse the families one by one (each dropped at once) to report the
        # first bad one with its offset.
        for _ in iter_decode(view):
            pass
        raise DecodeError(f"bad MetricFamily stream: {exc}") from exc
    del stream  # freed before the message objects are made: a lower peak
    return [
        _named(family, start)
        for (start, _, _), family in zip(_frames(view), container.family)
    ]
