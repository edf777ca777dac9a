"""render(): a registry and a scrape's Accept headers in, body and headers out.

:func:`scrape` is what every HTTP front end (``Service``, the Starlette and
Quart handlers) does with a request: the negotiated format, gzip when the
scraper accepts it, and the work kept off the event loop. Scrapes that arrive
while one of the same kind is being prepared share its result (as
client_golang's promhttp does), so a burst of scrapers costs one render.
"""

import asyncio
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Sequence, Tuple

from .negotiator import accepts_gzip, negotiate

try:  # ISA-L's deflate: about 20x zlib level 6's speed at a similar size
    from isal.igzip import compress as _fast_gzip
except ImportError:  # pragma: no cover - platforms without isal wheels
    from gzip import compress as _fast_gzip  # type: ignore[assignment]
_GZIP_LEVEL = 1

if TYPE_CHECKING:
    from .collectors import Registry

__all__ = ["accepts_gzip", "render", "scrape"]

# Scrapes being prepared, per event loop: (registry, format, gzip) -> task
_IN_FLIGHT: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Dict[Any, Any]]"
_IN_FLIGHT = weakref.WeakKeyDictionary()


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


async def scrape(
    registry: "Registry",
    accept_headers: Sequence[str],
    accept_encoding_headers: Iterable[str],
) -> Tuple[bytes, Dict[str, str]]:
    """Body and headers answering a scrape with these Accept and
    Accept-Encoding header values.

    The registry is read on the calling loop, in one go (collectors that
    compute values in Python run here, between the application's callbacks);
    encoding and compression run in a worker thread that lets the loop run
    meanwhile. A scrape arriving while another with the same registry,
    format and encoding is under way gets that one's bytes.
    """
    formatter_class = negotiate(accept_headers)
    compress = accepts_gzip(accept_encoding_headers)
    loop = asyncio.get_running_loop()
    in_flight = _IN_FLIGHT.setdefault(loop, {})
    key = (registry, formatter_class, compress)
    task = in_flight.get(key)
    if task is None:
        formatter = formatter_class()
        task = loop.create_task(_render_off_loop(formatter.prepare(registry), compress))
        in_flight[key] = task
        task.add_done_callback(lambda _: in_flight.pop(key, None))
    body = await asyncio.shield(task)
    headers = dict(formatter_class().get_headers())
    headers["Vary"] = "Accept, Accept-Encoding"
    if compress and body:
        headers["Content-Encoding"] = "gzip"
    return body, headers


async def _render_off_loop(encode: Callable[[], bytes], compress: bool) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(
        None, _encode_and_compress, encode, compress
    )


def _encode_and_compress(encode: Callable[[], bytes], compress: bool) -> bytes:
    body = encode()
    if compress and body:
        return gzip_body(body)
    return body


async def negotiate_encoding(
    body: bytes, headers: Dict[str, str], accept_encoding_headers: Iterable[str]
) -> bytes:
    """`body` gzip-compressed (in a worker thread) if the scraper accepts it.

    Sets ``Vary`` in `headers`, and ``Content-Encoding`` when compressing."""
    headers["Vary"] = "Accept, Accept-Encoding"
    if not body or not accepts_gzip(accept_encoding_headers):
        return body
    headers["Content-Encoding"] = "gzip"
    return await asyncio.get_running_loop().run_in_executor(None, gzip_body, body)


def gzip_body(body: bytes) -> bytes:
    """`body` as gzip (readable by any gzip client; fixed mtime, so equal
    bodies compress to equal bytes)."""
    return _fast_gzip(body, _GZIP_LEVEL, mtime=0)
