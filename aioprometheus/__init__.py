"""aioprometheus: Prometheus metrics for asyncio applications, with a compiled core."""

from . import formats
from .collectors import (
    REGISTRY,
    Collector,
    Counter,
    Gauge,
    Histogram,
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
    "Gauge",
    "Histogram",
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
