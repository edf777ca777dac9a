"""render(): a registry and a scrape's Accept headers in, body and headers out.

:func:`negotiate_encoding` adds what every HTTP front end (``Service``, the
Starlette and Quart handlers) does on top: gzip when the scraper accepts it.
"""

import asyncio
import gzip
from typing import TYPE_CHECKING, Dict, Iterable, Optional, Sequence, Tuple

from .negotiator import negotiate

if TYPE_CHECKING:
    from .collectors import Registry

# Bodies at least this large are gzip-compressed in a worker thread so that a
# scrape of a big registry does not hold the event loop while zlib runs.
_GZIP_IN_EXECUTOR_THRESHOLD = 64 * 1024
_GZIP_LEVEL = 6


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


def accepts_gzip(accept_encoding_headers: Iterable[str]) -> bool:
    """Return True if the ``Accept-Encoding`` header values allow gzip.

    ``gzip`` (or ``x-gzip``) with a non-zero quality, or ``*`` with a non-zero
    quality when gzip is not explicitly refused, allows it.
    """
    gzip_q: Optional[float] = None
    star_q: Optional[float] = None
    for header in accept_encoding_headers:
        for item in header.split(","):
            parts = [p.strip() for p in item.split(";")]
            coding = parts[0].lower()
            if not coding:
                continue
            q = 1.0
            for param in parts[1:]:
                key, _, value = param.partition("=")
                if key.strip().lower() == "q":
                    try:
                        q = float(value.strip())
                    except ValueError:
                        q = 0.0
            if coding in ("gzip", "x-gzip"):
                gzip_q = q if gzip_q is None else max(gzip_q, q)
            elif coding == "*":
                star_q = q if star_q is None else max(star_q, q)
    if gzip_q is not None:
        return gzip_q > 0.0
    return star_q is not None and star_q > 0.0


async def negotiate_encoding(
    body: bytes, headers: Dict[str, str], accept_encoding_headers: Iterable[str]
) -> bytes:
    """`body` gzip-compressed if the scraper accepts it, else unchanged.

    Sets ``Vary`` in `headers`, and ``Content-Encoding`` when compressing.
    Large bodies are compressed in a worker thread, so the event loop keeps
    serving other tasks meanwhile.
    """
    headers["Vary"] = "Accept, Accept-Encoding"
    if not body or not accepts_gzip(accept_encoding_headers):
        return body
    headers["Content-Encoding"] = "gzip"
    if len(body) < _GZIP_IN_EXECUTOR_THRESHOLD:
        return _gzip(body)
    return await asyncio.get_running_loop().run_in_executor(None, _gzip, body)


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
