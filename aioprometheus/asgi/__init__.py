"""ASGI support: :class:`MetricsMiddleware` (framework independent) plus
``metrics`` route handlers in :mod:`aioprometheus.asgi.starlette` (Starlette,
FastAPI) and :mod:`aioprometheus.asgi.quart` (Quart). The frameworks are
optional; only the handler module of the one you use imports it."""

from .middleware import EXCLUDE_PATHS, MetricsMiddleware

__all__ = ["EXCLUDE_PATHS", "MetricsMiddleware"]
