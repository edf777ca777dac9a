"""aioprometheus: Prometheus metrics for asyncio applications, with a compiled core."""

try:
    from . import _core  # noqa: F401  (fails here when the core is not built)
except ImportError as error:  # the source tree, before its core is built
    raise ImportError(
        "aioprometheus' compiled core (aioprometheus._core) is not built in "
        f"{__path__[0]}. Build it in place with `python -m pip install -e .` "
        "(or `python setup.py build_ext --inplace`), or run from outside this "
        "source tree to use an installed aioprometheus."
    ) from error

from . import formats  # noqa: E402
from .collectors import (
    REGISTRY,
    Collector,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Registry,
    Summary,
)
from .decorators import count_exceptions, inprogress, timer
from .negotiator import negotiate
from .renderer import render

from .asgi.middleware import MetricsMiddleware  # isort: skip
from .pusher import Pusher, PushError  # isort: skip
from .service import Service  # isort: skip

__version__ = "23.12.0.post1"

__all__ = [
    "REGISTRY",
    "Collector",
    "Counter",
    "Enum",
    "Gauge",
    "Histogram",
    "Info",
    "MetricsMiddleware",
    "PushError",
    "Pusher",
    "Registry",
    "Service",
    "Summary",
    "count_exceptions",
    "formats",
    "inprogress",
    "negotiate",
    "render",
    "timer",
]
