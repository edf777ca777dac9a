"""render(): a registry and a scrape's Accept headers in, body and headers out.

:func:`scrape` is what every HTTP front end (``Service``, the Starlette and
Quart handlers) does with a request: the negotiated format, gzip when the
scraper accepts it, and the work kept off the event loop. Scrapes that arrive
while one of the same kind is being prepared share its result (as
client_golang's promhttp does), so a burst of scrapers costs one render.
"""

import asyncio
import concurrent.futures
import contextlib
import os
import queue
import sys
import threading
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
)

from . import _core
from .formats._python_path import Runs
from .formats.base import Emit
from .negotiator import accepts_gzip, negotiate

try:  # ISA-L's deflate: about 20x zlib level 6's speed at a similar size
    from isal.isal_zlib import DEFLATED
    from isal.isal_zlib import compressobj as _gzip_stream
except ImportError:  # pragma: no cover - platforms without isal wheels
    from zlib import DEFLATED
    from zlib import compressobj as _gzip_stream  # type: ignore[assignment]
_GZIP_LEVEL = 1
_GZIP_WBITS = 31  # a gzip stream (header with mtime 0, CRC-32 trailer)

if TYPE_CHECKING:
    from .collectors import Registry

__all__ = ["accepts_gzip", "render", "scrape"]

# Scrapes being prepared, per event loop: (registry, format, gzip) -> task
_IN_FLIGHT: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Dict[Any, Any]]"
_IN_FLIGHT = weakref.WeakKeyDictionary()

# The threads that encode scrapes, and those that compress them meanwhile:
# their own, so a scrape never queues behind the application's blocking jobs
# in a loop's default executor. Two pools: an encoding waits for its
# compression, which never waits for anything but its encoding's parts, so
# neither can starve.
_RENDER_THREADS = 2
# How much nicer (Linux) these threads are than the thread that imported
# this module: on a busy machine the application's threads, its event loop
# first, get the CPU before a scrape does.
RENDER_NICENESS = 5
_pools: Dict[str, concurrent.futures.ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(name: str) -> concurrent.futures.ThreadPoolExecutor:
    with _pools_lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = concurrent.futures.ThreadPoolExecutor(
                _RENDER_THREADS,
                thread_name_prefix=f"aioprometheus-{name}",
                initializer=lower_priority,
            )
        return pool


def _niceness() -> Optional[int]:
    """The calling thread's niceness, where a thread has its own (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except OSError:  # pragma: no cover - a sandbox refusing it
        return None


_APPLICATION_NICENESS = _niceness()


def lower_priority() -> None:
    """Make the calling thread (one that encodes scrapes) RENDER_NICENESS
    nicer than the application."""
    if _APPLICATION_NICENESS is not None:
        with contextlib.suppress(OSError):  # a sandbox refusing it: run as is
            os.setpriority(
                os.PRIO_PROCESS,
                threading.get_native_id(),
                min(19, _APPLICATION_NICENESS + RENDER_NICENESS),
            )


def _forget_pools_after_fork() -> None:
    """A forked child has none of the parent's threads: it starts its own."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_pools_after_fork)


def render(
    registry: "Registry", accepts_headers: Sequence[str]
) -> Tuple[bytes, Dict[str, str]]:
    """Encode `registry` in the format the Accept headers prefer (text by default).

    :param accepts_headers: the request's Accept header values (a list,
      tuple or set of strings; empty for "no preference").
    :returns: ``(body, {"Content-Type": ...})``.
    """
    from .collectors import Registry

    if not isinstance(registry, Registry):
        raise TypeError(f"registry must be a Registry, got: {type(registry)}")
    if not isinstance(accepts_headers, (set, list, tuple)):
        raise TypeError(
            f"accepts_headers must be a sequence, got: {type(accepts_headers)}"
        )
    formatter = negotiate(accepts_headers)()
    return formatter.marshall(registry), formatter.get_headers()


Encode = Callable[[Emit], None]
# a formatter's prepare_stream(registry, planned runs or None)
Prepare = Callable[["Registry", Optional[Runs]], Encode]
Reader = Callable[[Prepare, "Registry"], Awaitable[Encode]]


async def scrape(
    registry: "Registry",
    accept_headers: Sequence[str],
    accept_encoding_headers: Iterable[str],
    read: Optional[Reader] = None,
) -> Tuple[bytes, Dict[str, str]]:
    """Body and headers answering a scrape with these Accept and
    Accept-Encoding header values.

    The registry is read in one go (collectors that compute values in Python
    run then): on the calling loop, then encoded and compressed in worker
    threads while the loop runs on. A caller on a server thread of its own
    (``Service``) passes ``read``: ``await read(prepare, registry)`` calls
    ``prepare(registry)`` wherever the registry must be read and returns
    the encoding it prepared, which then runs right here, on that thread. A
    scrape arriving while another with the same registry, format and
    encoding is under way gets that one's bytes.
    """
    formatter_class = negotiate(accept_headers)
    compress = accepts_gzip(accept_encoding_headers)
    loop = asyncio.get_running_loop()
    in_flight = _IN_FLIGHT.setdefault(loop, {})
    key = (registry, formatter_class, compress)
    task = in_flight.get(key)
    if task is None:
        task = loop.create_task(
            _render(formatter_class().prepare_stream, registry, compress, read)
        )
        in_flight[key] = task
        task.add_done_callback(lambda _: in_flight.pop(key, None))
    body = await asyncio.shield(task)
    headers = dict(formatter_class().get_headers())
    headers["Vary"] = "Accept, Accept-Encoding"
    if compress and body:
        headers["Content-Encoding"] = "gzip"
    return body, headers


async def _render(
    prepare: Prepare,
    registry: "Registry",
    compress: bool,
    read: Optional[Reader],
) -> bytes:
    if read is not None:  # a server thread of its own: encode here
        return _encode_and_compress(await read(prepare, registry), compress)
    encode = prepare(registry, None)
    rendering = _pool("render").submit(_encode_and_compress, encode, compress)
    return await asyncio.wrap_future(rendering)


# A gzip body shorter than this is compressed by the encoding's thread once
# the encoding is done: waking a compressing thread costs more than that.
_COMPRESS_ALONGSIDE = 64 * 1024


def _encode_and_compress(encode: Encode, compress: bool) -> bytes:
    """The encoding's bytes, gzip-compressed if `compress` (see _GzipSink)."""
    if not compress:
        parts: List[bytes] = []
        encode(parts.append)
        return _core.join_parts(parts)
    sink = _GzipSink()
    try:
        encode(sink)
    finally:
        sink.end()  # also of an encoding that failed: the compressor stops
    return sink.body()


class _GzipSink:
    """Where an encoding hands its parts to be gzipped: kept until they reach
    _COMPRESS_ALONGSIDE bytes, then passed to a compressing thread as they
    come, so that compressing overlaps encoding."""

    def __init__(self) -> None:
        self.kept: List[bytes] = []
        self.kept_bytes = 0
        self.stream: queue.SimpleQueue[Optional[bytes]] = queue.SimpleQueue()
        self.compressing: Optional[concurrent.futures.Future[bytes]] = None

    def __call__(self, part: bytes) -> None:
        if self.compressing is not None:
            self.stream.put(part)
            return
        self.kept.append(part)
        self.kept_bytes += len(part)
        if self.kept_bytes >= _COMPRESS_ALONGSIDE:
            self.compressing = _pool("gzip").submit(
                gzip_parts, iter(self.stream.get, None)
            )
            for kept in self.kept:
                self.stream.put(kept)
            self.kept.clear()

    def end(self) -> None:
        """No more parts."""
        self.stream.put(None)

    def body(self) -> bytes:
        """The gzip body of every part (once ``end`` was called)."""
        if self.compressing is None:
            return gzip_parts(self.kept)
        return self.compressing.result()


def gzip_body(body: bytes) -> bytes:
    """`body` as gzip (readable by any gzip client; fixed mtime, so equal
    bodies compress to equal bytes)."""
    return gzip_parts([body])


def gzip_parts(parts: Iterable[bytes]) -> bytes:
    """The concatenation of `parts` as one gzip stream, compressed part by
    part (no copy of the whole body, and the GIL released while compressing)."""
    stream = _gzip_stream(_GZIP_LEVEL, DEFLATED, _GZIP_WBITS)
    try:
        out = [stream.compress(part) for part in parts]
        out.append(stream.flush())
    finally:
        _core.clear_vector_state()  # ISA-L leaves AVX state that slows later code
    return b"".join(out)
