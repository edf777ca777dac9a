"""render(): a registry and a scrape's Accept headers in, body and headers out."""

from typing import TYPE_CHECKING, Dict, Sequence, Tuple

from .negotiator import negotiate

if TYPE_CHECKING:
    from .collectors import Registry


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
