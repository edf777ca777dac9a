"""
A FastAPI application instrumented with aioprometheus: requests counted and
timed by route template, an exemplar linking each order to its trace, and
the process, GC and event-loop collectors (needs fastapi and uvicorn).

    uvicorn examples.fastapi_example:app --port 8000
    curl -s -X POST http://127.0.0.1:8000/orders/books \
        -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    curl -s -H 'Accept: application/openmetrics-text' http://127.0.0.1:8000/metrics
"""

from fastapi import FastAPI, Request

from aioprometheus import Counter, MetricsMiddleware
from aioprometheus.asgi.starlette import metrics
from aioprometheus.collectors import register_default_collectors

app = FastAPI()
# requests_total_counter & co. and http_request_duration_seconds, labelled
# with the route template ('/orders/{shop}'), never the raw path
app.add_middleware(MetricsMiddleware, duration_histogram=True)
app.add_route("/metrics", metrics)
register_default_collectors()  # process_*, python_info, python_gc_*, python_asyncio_*

orders = Counter("shop_orders_total", "Orders placed.")


@app.post("/orders/{shop}")
async def place_order(shop: str, request: Request):
    # W3C trace context: version-traceid-spanid-flags
    trace_id = request.headers.get("traceparent", "00-unknown").split("-")[1]
    orders.inc({"shop": shop}, exemplar={"trace_id": trace_id})
    return {"shop": shop, "trace_id": trace_id}
