"""The Starlette and Quart metrics handlers compress as Service does."""

import asyncio
import gzip

import pytest

from aioprometheus.collectors import Counter, Registry
from aioprometheus.renderer import render


def make_registry():
    registry = Registry()
    counter = Counter("gz_total", "Compressed.", registry=registry)
    for i in range(50):
        counter.add({"path": f"/p{i}"}, i)
    return registry


@pytest.mark.parametrize(
    "accept_encoding, compressed",
    [("gzip", True), ("gzip;q=0, identity", False), ("identity", False)],
)
def test_starlette_metrics_gzip(accept_encoding, compressed):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from aioprometheus.asgi.starlette import metrics

    registry = make_registry()
    app = Starlette(routes=[Route("/metrics", metrics)])
    app.state.registry = registry
    with TestClient(app) as client:
        resp = client.get("/metrics", headers={"Accept-Encoding": accept_encoding})
    plain, _ = render(registry, [])
    # httpx decodes a gzip body itself: compare what it decoded, and the header
    assert resp.content == plain
    assert ("gzip" == resp.headers.get("content-encoding")) is compressed
    assert resp.headers["vary"] == "Accept, Accept-Encoding"


@pytest.mark.parametrize("accept_encoding, compressed", [("gzip", True), ("", False)])
def test_quart_metrics_gzip(accept_encoding, compressed):
    pytest.importorskip("quart")
    from quart import Quart

    from aioprometheus.asgi.quart import metrics

    registry = make_registry()
    app = Quart(__name__)
    app.registry = registry
    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])

    async def scenario():
        response = await app.test_client().get(
            "/metrics", headers={"Accept-Encoding": accept_encoding}
        )
        return response.headers, await response.get_data()

    headers, body = asyncio.run(scenario())
    plain, _ = render(registry, [])
    assert (headers.get("Content-Encoding") == "gzip") is compressed
    assert (gzip.decompress(body) if compressed else body) == plain
