"""A Quart route handler serving Prometheus metrics.

.. code-block:: python

    app = Quart(__name__)
    app.asgi_app = MetricsMiddleware(app.asgi_app)
    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])

The registry served is ``app.registry`` if the application sets one, else the
default registry.
"""

from typing import Dict, Tuple

try:
    from quart import current_app, request
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    raise ImportError(
        "aioprometheus.asgi.quart needs quart (pip install quart)"
    ) from exc

from ..collectors import REGISTRY
from ..renderer import scrape


async def metrics() -> Tuple[bytes, Dict[str, str]]:
    """Render the metrics in the format negotiated from the Accept headers,
    gzip-compressed if ``Accept-Encoding`` allows it (as ``Service`` does)."""
    registry = getattr(current_app, "registry", REGISTRY)
    return await scrape(
        registry,
        request.headers.getlist("accept"),
        request.headers.getlist("accept-encoding"),
    )
