"""A Starlette / FastAPI route handler serving Prometheus metrics.

.. code-block:: python

    app = Starlette()
    app.add_middleware(MetricsMiddleware)
    app.add_route("/metrics", metrics)

The registry served is ``app.state.registry`` if the application sets one,
else the default registry.
"""

try:
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    raise ImportError(
        "aioprometheus.asgi.starlette needs starlette (pip install starlette)"
    ) from exc

from ..collectors import REGISTRY
from ..renderer import scrape


async def metrics(request: Request) -> Response:
    """Render the metrics in the format negotiated from the Accept headers,
    gzip-compressed if ``Accept-Encoding`` allows it (as ``Service`` does)."""
    registry = getattr(request.app.state, "registry", REGISTRY)
    content, headers = await scrape(
        registry,
        request.headers.getlist("accept"),
        request.headers.getlist("accept-encoding"),
    )
    return Response(content=content, headers=headers)
