"""Pick the exposition format for a scrape from its Accept header(s).

Three formats are served:

- text exposition format 0.0.4 (``text/plain; version=0.0.4``), the default;
- OpenMetrics 1.0 text (``application/openmetrics-text; version=1.0.0``),
  which Prometheus asks for first by default;
- Prometheus' protobuf format, a delimited stream of
  ``io.prometheus.client.MetricFamily`` messages
  (``application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
  encoding=delimited``), which Prometheus asks for first when native
  histograms are enabled.

Selection follows RFC 9110 section 12.5.1: every media range in the Accept
field(s) carries a weight (``q``, default 1, ``q=0`` meaning "not
acceptable"); for each format the most specific range that matches it decides
its weight; the format with the highest weight wins, ties go to the format
whose deciding range was listed first, and a tie on the very same range goes
to text, then protobuf (so ``*/*`` gets text and ``application/*`` protobuf,
as before OpenMetrics was served). If no header is given, nothing matches or the
header cannot be parsed, the text format is used.
"""

import logging
from typing import (
    Callable,
    Dict,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Tuple,
    Type,
)

from .formats.base import IFormatter
from .formats.binary import BINARY_CONTENT_TYPE, BinaryFormatter
from .formats.openmetrics import OpenMetricsFormatter
from .formats.text import TextFormatter

logger = logging.getLogger(__name__)

# type aliases
FormatterType = Type[IFormatter]

PROTOBUF_MEDIA_TYPE = ("application", "vnd.google.protobuf")
PROTOBUF_PARAMS = {
    "proto": "io.prometheus.client.MetricFamily",
    "encoding": "delimited",
}
TEXT_MEDIA_TYPE = ("text", "plain")
TEXT_VERSIONS = ("0.0.4",)
OPENMETRICS_MEDIA_TYPE = ("application", "openmetrics-text")
OPENMETRICS_VERSIONS = ("1.0.0",)

__all__ = [
    "BINARY_CONTENT_TYPE",
    "MediaRange",
    "negotiate",
    "parse_accepts",
    "parse_accept_ranges",
]


class MediaRange(NamedTuple):
    """One element of an Accept field, lower-cased type/subtype."""

    type: str
    subtype: str
    params: Dict[str, str]
    q: float
    position: int


def _split_quoted(text: str, sep: str) -> List[str]:
    """Split on sep outside double-quoted strings."""
    parts: List[str] = []
    current: List[str] = []
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        out: List[str] = []
        escaped = False
        for ch in value[1:-1]:
            if escaped:
                out.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            else:
                out.append(ch)
        return "".join(out)
    return value


def _parse_q(value: str) -> Optional[float]:
    # RFC 9110 qvalue: "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ]
    try:
        q = float(value)
    except ValueError:
        return None
    if not 0.0 <= q <= 1.0 or q != q:
        return None
    return q


def parse_accept_ranges(accept_headers: Sequence[str]) -> List[MediaRange]:
    """Parse Accept field values into media ranges, in the order given.

    Several header values are treated as one comma-separated list. Elements
    that are not ``type/subtype`` or carry an invalid ``q`` are skipped.
    """
    ranges: List[MediaRange] = []
    position = 0
    for header in accept_headers:
        if not isinstance(header, str):
            continue
        for element in _split_quoted(header, ","):
            pieces = _split_quoted(element, ";")
            media = pieces[0].strip().lower()
            if media.count("/") != 1:
                continue
            mtype, msubtype = (p.strip() for p in media.split("/"))
            if not mtype or not msubtype or (mtype == "*" and msubtype != "*"):
                continue
            params: Dict[str, str] = {}
            q: Optional[float] = 1.0
            for piece in pieces[1:]:
                if not piece.strip():
                    continue
                name, eq, value = piece.partition("=")
                name = name.strip().lower()
                if not eq or not name:
                    continue
                value = _unquote(value.strip())
                if name == "q":
                    # parameters after q are accept-extensions (RFC 7231);
                    # RFC 9110 drops them, they never affect matching here.
                    q = _parse_q(value)
                    break
                params[name] = value
            if q is None:
                continue
            ranges.append(MediaRange(mtype, msubtype, params, q, position))
            position += 1
    return ranges


def _match_protobuf(r: MediaRange) -> int:
    """Specificity of r for the protobuf format (0: no match)."""
    if r.type == "*":
        return 1
    if r.type != PROTOBUF_MEDIA_TYPE[0]:
        return 0
    if r.subtype == "*":
        return 2
    if r.subtype != PROTOBUF_MEDIA_TYPE[1]:
        return 0
    for name, value in r.params.items():
        if name in PROTOBUF_PARAMS:
            if value != PROTOBUF_PARAMS[name]:
                return 0
        # other parameters (e.g. charset) are not meaningful for this type
    return 4 if r.params else 3


def _text_matcher(
    media_type: Tuple[str, str], versions: Tuple[str, ...]
) -> Callable[[MediaRange], int]:
    """The specificity function of a text format: its media type, one of its
    versions if a version is named, and UTF-8 if a charset is."""

    def match(r: MediaRange) -> int:
        """Specificity of r for this format (0: no match)."""
        if r.type == "*":
            return 1
        if r.type != media_type[0]:
            return 0
        if r.subtype == "*":
            return 2
        if r.subtype != media_type[1]:
            return 0
        version = r.params.get("version")
        if version is not None and version not in versions:
            return 0
        charset = r.params.get("charset")
        if charset is not None and charset.lower() != "utf-8":
            return 0
        return 4 if r.params else 3

    return match


_match_text = _text_matcher(TEXT_MEDIA_TYPE, TEXT_VERSIONS)
_match_openmetrics = _text_matcher(OPENMETRICS_MEDIA_TYPE, OPENMETRICS_VERSIONS)


def _weigh(
    ranges: Sequence[MediaRange], match: Callable[[MediaRange], int]
) -> Tuple[float, int]:
    """(q, position) of the most specific range matching a format."""
    best_spec = 0
    best: Tuple[float, int] = (0.0, -1)
    for r in ranges:
        spec = match(r)
        if spec > best_spec:
            best_spec = spec
            best = (r.q, r.position)
    return best


def negotiate(accepts_headers: Sequence[str]) -> FormatterType:
    """Negotiate a response format from a request's Accept header values.

    :param accepts_headers: a list of Accept header field values extracted
      from a request (several values are joined as one list).

    :returns: a formatter class (TextFormatter, BinaryFormatter or
      OpenMetricsFormatter) used to render the response.
    """
    ranges = parse_accept_ranges(accepts_headers or ())
    best: Tuple[float, int] = (0.0, -1)
    formatter: FormatterType = TextFormatter
    # in the order that wins a tie on the very same range (such as */*)
    for candidate, match in _FORMATS:
        q, position = _weigh(ranges, match)
        if q > best[0] or (q == best[0] and q > 0.0 and position < best[1]):
            best, formatter = (q, position), candidate
    logger.debug(
        "negotiating %r resulted in choosing %s", accepts_headers, formatter.__name__
    )
    return formatter


_FORMATS: Tuple[Tuple[FormatterType, Callable[[MediaRange], int]], ...] = (
    (TextFormatter, _match_text),
    (BinaryFormatter, _match_protobuf),
    (OpenMetricsFormatter, _match_openmetrics),
)


def parse_accepts(accept_headers: Sequence[str]) -> Set[str]:
    """Return the set of ';'-separated items of the Accept headers.

    Kept for compatibility with aioprometheus 23.12; negotiation itself uses
    :func:`parse_accept_ranges`.
    """
    accepts: Set[str] = set()
    for accept_header in accept_headers:
        if ";" in accept_header:
            accepts.update(i.strip() for i in accept_header.split(";"))
        else:
            accepts.add(accept_header)
    return accepts


def accepts_gzip(accept_encoding_headers: Iterable[str]) -> bool:
    """Return True if the ``Accept-Encoding`` header values allow gzip.

    ``gzip`` (or ``x-gzip``) with a non-zero quality, or ``*`` with a non-zero
    quality when gzip is not named, allows it (RFC 9110, 12.5.3); an invalid
    quality counts as 0.
    """
    named: Optional[float] = None
    star: Optional[float] = None
    for header in accept_encoding_headers:
        if not isinstance(header, str):
            continue
        for element in header.split(","):
            coding, *params = (part.strip() for part in element.split(";"))
            q: Optional[float] = 1.0
            for param in params:
                name, _, value = param.partition("=")
                if name.strip().lower() == "q":
                    q = _parse_q(value.strip())
                    break
            weight = q or 0.0
            coding = coding.lower()
            if coding in ("gzip", "x-gzip"):
                named = weight if named is None else max(named, weight)
            elif coding == "*":
                star = weight if star is None else max(star, weight)
    if named is not None:
        return named > 0.0
    return star is not None and star > 0.0
