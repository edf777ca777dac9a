"""The FastAPI application that test_multiprocess_servers.py serves with real
pre-fork servers (gunicorn with uvicorn workers, ``uvicorn --workers``), with
PROMETHEUS_MULTIPROC_DIR set. Every worker imports it, so every worker has
its own metrics, which multi-process mode keeps in that directory.

- ``GET /hit``: increments ``mp_app_hits_total``; answers the worker's pid.
- ``GET /metrics``: aioprometheus' Starlette handler (the aggregate of all
  workers), with the answering worker's pid in ``X-Worker-Pid``.
- ``GET /render``: ``aioprometheus.renderer.render()`` of the default
  registry, as text, with ``X-Worker-Pid`` too.

``mp_app_worker_up`` (``multiprocess_mode="livesum"``) is 1 in each worker
from its start, so the aggregate is the number of live workers.
"""

import os

from fastapi import FastAPI, Request
from fastapi.responses import Response

from aioprometheus import Counter, Gauge, MetricsMiddleware
from aioprometheus.asgi.starlette import metrics
from aioprometheus.collectors import REGISTRY
from aioprometheus.renderer import render

app = FastAPI()
app.add_middleware(MetricsMiddleware)

hits = Counter("mp_app_hits_total", "Requests to /hit.")
worker_up = Gauge(
    "mp_app_worker_up", "1 in each live worker.", multiprocess_mode="livesum"
)
worker_up.set({}, 1)


@app.get("/hit")
async def hit():
    hits.inc({})
    return {"pid": os.getpid()}


@app.get("/metrics")
async def scrape(request: Request) -> Response:
    response = await metrics(request)
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


@app.get("/render")
async def rendered() -> Response:
    body, headers = render(REGISTRY, [])
    return Response(body, headers={**headers, "X-Worker-Pid": str(os.getpid())})
