"""Text exposition format 0.0.4; the encoding itself is compiled (_core.encode_text)."""

import time
from typing import TYPE_CHECKING, Dict

from .. import _core
from .base import IFormatter

if TYPE_CHECKING:
    from ..collectors import Registry

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TEXT_ACCEPTS = set(TEXT_CONTENT_TYPE.split("; "))


class TextFormatter(IFormatter):
    """Encodes a registry in the text format, collectors sorted by name."""

    def __init__(self, timestamp: bool = False) -> None:
        """
        :param timestamp: append the current time (ms since the epoch) to
          every sample when True.
        """
        self.timestamp = timestamp

    def get_headers(self) -> Dict[str, str]:
        return {"Content-Type": TEXT_CONTENT_TYPE}

    def marshall(self, registry: "Registry") -> bytes:
        timestamp_ms = int(time.time() * 1000) if self.timestamp else -1
        return _core.encode_text(registry.sorted_collectors(), timestamp_ms)
