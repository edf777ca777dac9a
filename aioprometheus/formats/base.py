"""The interface every exposition formatter offers."""

import abc
from typing import TYPE_CHECKING, Dict

if TYPE_CHECKING:
    from ..collectors import Registry


class IFormatter(abc.ABC):
    """Turns a registry into one exposition format's bytes."""

    @abc.abstractmethod
    def get_headers(self) -> Dict[str, str]:
        """HTTP headers (Content-Type) for a response in this format."""

    @abc.abstractmethod
    def marshall(self, registry: "Registry") -> bytes:
        """Every collector of `registry`, encoded."""
