"""The interface every exposition formatter offers."""

import abc
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Tuple,
    Union,
)

from .. import _core
from ._python_path import Runs, runs

if TYPE_CHECKING:
    from ..collectors import Collector, Registry

Emit = Callable[[bytes], object]  # takes the next part of an encoding


class IFormatter(abc.ABC):
    """Turns a registry into one exposition format's bytes."""

    @abc.abstractmethod
    def get_headers(self) -> Dict[str, str]:
        """HTTP headers (Content-Type) for a response in this format."""

    @abc.abstractmethod
    def marshall(self, registry: "Registry") -> bytes:
        """Every collector of `registry`, encoded."""

    def prepare(self, registry: "Registry") -> Callable[[], bytes]:
        """Read `registry` now; the returned function gives the encoding of
        what was read, and may be called on any thread. (This default encodes
        at once; RunFormatter defers the encoding itself.)"""
        body = self.marshall(registry)
        return lambda: body

    def prepare_stream(
        self, registry: "Registry", planned: Optional[Runs] = None
    ) -> Callable[[Emit], None]:
        """:meth:`prepare`, whose function hands the encoding to ``emit``
        in consecutive parts (which a compressor in another thread can take
        as they come, with no copy of the whole body). `planned`: the
        registry's collectors already split into runs (``compiled_runs``),
        if they were; a formatter may ignore it."""
        encode = self.prepare(registry)

        def stream(emit: Emit) -> None:
            emit(encode())

        return stream


class RunFormatter(IFormatter):
    """A formatter writing the compiled metrics with a compiled encoder and
    the collectors only Python can read (see :mod:`._python_path`) one by
    one, in the registry's order.

    :meth:`prepare` splits a scrape in two: what must happen on the caller's
    thread now (reading Python-computed collectors, copying the compiled ones
    in one consistent snapshot) and the encoding, which may then run anywhere,
    such as a worker thread, while the live metrics move on.
    """

    # bytes ending every exposition (OpenMetrics' "# EOF")
    trailer = b""
    # whether the encoding reads when each series was created
    _created = False

    def marshall(self, registry: "Registry") -> bytes:
        self._configure(registry)
        return self._encoded(registry.sorted_collectors())

    def _encoded(self, collectors: Iterable["Collector"]) -> bytes:
        """The bytes of these collectors, read and encoded right here."""
        return whole(self._plan(runs(collectors), detach=False))

    def prepare(self, registry: "Registry") -> Callable[[], bytes]:
        """Read `registry` now; the returned function encodes what was read."""
        encode = self.prepare_stream(registry)
        return lambda: whole(encode)

    def prepare_stream(
        self, registry: "Registry", planned: Optional[Runs] = None
    ) -> Callable[[Emit], None]:
        self._configure(registry)
        if planned is None:
            return self._plan(runs(registry.sorted_collectors()), detach=True)
        return self._plan(planned, detach=True)

    def _configure(self, registry: "Registry") -> None:
        """Take what this format needs from `registry`'s settings."""

    def _plan(
        self, planned: Iterable[Tuple[bool, List["Collector"]]], detach: bool
    ) -> Callable[[Emit], None]:
        timestamp_ms = self._timestamp_ms()
        parts: List[Union[bytes, List[Any]]] = []
        for through_python, run in planned:
            if through_python:
                parts.extend(self._python_block(c, timestamp_ms) for c in run)
            else:
                parts.append(_core.snapshot(run, self._created) if detach else run)
        if self.trailer:
            parts.append(self.trailer)

        def encode(emit: Emit) -> None:
            for part in parts:
                if isinstance(part, bytes):
                    emit(part)
                else:
                    self._compiled(part, timestamp_ms, emit)

        return encode

    @abc.abstractmethod
    def _timestamp_ms(self) -> Any:
        """The timestamp every sample gets (the format's "none" when off)."""

    @abc.abstractmethod
    def _compiled(self, metrics: List[Any], timestamp_ms: Any, emit: Emit) -> None:
        """The compiled encoder's bytes for a run of compiled metrics, to `emit`."""

    @abc.abstractmethod
    def _python_block(self, collector: "Collector", timestamp_ms: Any) -> bytes:
        """One collector's bytes, from what its Python methods return."""


def whole(encode: Callable[[Emit], None]) -> bytes:
    """What `encode` hands over, in one piece."""
    parts: List[bytes] = []
    encode(parts.append)
    return _core.join_parts(parts)
