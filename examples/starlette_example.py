"""
A Starlette application: the middleware counts requests by route template,
a counter of our own, and the metrics route (needs starlette and uvicorn).

    uvicorn examples.starlette_example:app --port 8000
    curl -s http://127.0.0.1:8000/items/42
    curl -s http://127.0.0.1:8000/metrics
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aioprometheus import Counter, MetricsMiddleware
from aioprometheus.asgi.starlette import metrics

lookups = Counter("item_lookups_total", "Item lookups, by outcome.")


async def item(request: Request) -> JSONResponse:
    found = request.path_params["item_id"] % 2 == 0
    lookups.inc({"outcome": "found" if found else "missing"})
    return JSONResponse({"found": found}, status_code=200 if found else 404)


app = Starlette(
    routes=[
        Route("/items/{item_id:int}", item),
        Route("/metrics", metrics),
    ]
)
app.add_middleware(MetricsMiddleware)
