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
from .base import IFormatter

if TYPE_CHECKING:  # pragma: no cover
    from ..collectors import Registry

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


class BinaryFormatter(IFormatter):
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

    def marshall(self, registry: "Registry") -> bytes:
        """Every collector of `registry` (sorted by name), one delimited stream."""
        timestamp_ms: Optional[int] = None
        if self.timestamp:
            timestamp_ms = int(time.time() * 1000)
        return _core.encode_protobuf(registry.sorted_collectors(), timestamp_ms)


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
