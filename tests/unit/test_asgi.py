"""Unit tests of the ASGI middleware and the Starlette/FastAPI/Quart metrics
handlers. The framework tests skip when the optional framework is absent."""

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families
from registry_views import label_key as key  # noqa: E402
from registry_views import series_values as values  # noqa: E402

from aioprometheus.asgi.middleware import EXCLUDE_PATHS, MetricsMiddleware
from aioprometheus.collectors import Counter, Registry

NAMES = (
    "requests_total_counter",
    "responses_total_counter",
    "exceptions_total_counter",
    "status_codes_counter",
)


# ------------------------------------------------------------ raw ASGI app


def make_app(status=200, fail_before=False, fail_after=False):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            return
        if fail_before:
            raise RuntimeError("boom before")
        await send({"type": "http.response.start", "status": status, "headers": []})
        if fail_after:
            raise RuntimeError("boom after")
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def call(asgi, path="/a", method="GET", scope_type="http", root_path=""):
    sent = []

    async def receive():
        if scope_type == "lifespan":
            return {"type": "lifespan.startup"}
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": scope_type, "path": path, "root_path": root_path}
    if scope_type == "http":
        scope["method"] = method
    await asgi(scope, receive, send)
    return sent


def test_counts_request_response_status():
    registry = Registry()
    mw = MetricsMiddleware(make_app(201), registry=registry)
    sent = asyncio.run(call(mw, "/a"))
    asyncio.run(call(mw, "/a"))
    asyncio.run(call(mw, "/b", method="POST"))
    assert sent[0]["status"] == 201 and sent[1]["body"] == b"ok"
    assert values(registry, "requests_total_counter") == {
        key(method="GET", path="/a"): 2,
        key(method="POST", path="/b"): 1,
    }
    assert values(registry, "responses_total_counter") == {
        key(method="GET", path="/a"): 2,
        key(method="POST", path="/b"): 1,
    }
    assert values(registry, "status_codes_counter") == {
        key(method="GET", path="/a", status_code="201"): 2,
        key(method="POST", path="/b", status_code="201"): 1,
    }
    assert values(registry, "exceptions_total_counter") == {}
    assert {c.name for c in registry.get_all()} == set(NAMES)


def test_group_status_codes_and_const_labels():
    registry = Registry()
    mw = MetricsMiddleware(
        make_app(404),
        registry=registry,
        group_status_codes=True,
        const_labels={"service": "api"},
    )
    asyncio.run(call(mw, "/x"))
    assert values(registry, "status_codes_counter") == {
        key(method="GET", path="/x", status_code="4xx"): 1
    }
    for name in NAMES:
        assert registry.get(name).const_labels == {"service": "api"}


def test_exception_before_response():
    registry = Registry()
    mw = MetricsMiddleware(make_app(fail_before=True), registry=registry)
    with pytest.raises(RuntimeError, match="boom before"):
        asyncio.run(call(mw, "/e"))
    labels = key(method="GET", path="/e")
    assert values(registry, "exceptions_total_counter") == {labels: 1}
    assert values(registry, "responses_total_counter") == {labels: 1}
    assert values(registry, "status_codes_counter") == {
        key(method="GET", path="/e", status_code="500"): 1
    }


def test_exception_after_response_started_counts_once():
    registry = Registry()
    mw = MetricsMiddleware(make_app(200, fail_after=True), registry=registry)
    with pytest.raises(RuntimeError):
        asyncio.run(call(mw, "/e"))
    labels = key(method="GET", path="/e")
    assert values(registry, "exceptions_total_counter") == {labels: 1}
    assert values(registry, "responses_total_counter") == {labels: 1}
    assert values(registry, "status_codes_counter") == {
        key(method="GET", path="/e", status_code="200"): 1
    }


def test_excluded_paths_and_lifespan_not_counted():
    registry = Registry()
    mw = MetricsMiddleware(make_app(), registry=registry)
    for path in EXCLUDE_PATHS:
        asyncio.run(call(mw, path))
    sent = asyncio.run(call(mw, "/", scope_type="lifespan"))
    assert sent == [{"type": "lifespan.startup.complete"}]
    for name in NAMES:
        assert values(registry, name) == {}

    custom = Registry()
    mw = MetricsMiddleware(make_app(), registry=custom, exclude_paths=["/health"])
    asyncio.run(call(mw, "/health"))
    asyncio.run(call(mw, "/metrics"))
    assert values(custom, "requests_total_counter") == {
        key(method="GET", path="/metrics"): 1
    }


def test_root_path_is_part_of_the_path():
    registry = Registry()
    mw = MetricsMiddleware(make_app(), registry=registry)
    asyncio.run(call(mw, "/a", root_path="/prefix"))
    assert values(registry, "requests_total_counter") == {
        key(method="GET", path="/prefix/a"): 1
    }


def test_second_instance_reuses_counters():
    registry = Registry()
    first = MetricsMiddleware(make_app(), registry=registry)
    second = MetricsMiddleware(make_app(), registry=registry)
    asyncio.run(call(first, "/a"))
    asyncio.run(call(second, "/a"))
    assert second.requests_counter is first.requests_counter
    assert values(registry, "requests_total_counter") == {
        key(method="GET", path="/a"): 2
    }


def test_clashing_non_counter_is_an_error():
    registry = Registry()
    from aioprometheus.collectors import Gauge

    Gauge("requests_total_counter", "Not a counter.", registry=registry)
    mw = MetricsMiddleware(make_app(), registry=registry)
    with pytest.raises(ValueError):
        asyncio.run(call(mw, "/a"))


def test_registry_type_checked():
    with pytest.raises(TypeError):
        MetricsMiddleware(make_app(), registry="nope")


def test_websocket_scope_counted():
    registry = Registry()

    async def ws_app(scope, receive, send):
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    mw = MetricsMiddleware(ws_app, registry=registry)
    asyncio.run(call(mw, "/ws", scope_type="websocket"))
    assert values(registry, "status_codes_counter") == {
        key(method="WEBSOCKET", path="/ws", status_code="101"): 1
    }


# ------------------------------------------------------------ Starlette / FastAPI


def _parse(text):
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            # The parser appends _total to counter samples: use the family name.
            name = family.name if family.type == "counter" else s.name
            out[(name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_starlette_templates_mounts_and_metrics_route():
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route
    from starlette.testclient import TestClient

    from aioprometheus.asgi.starlette import metrics

    registry = Registry()

    async def user(request):
        return PlainTextResponse(request.path_params["user_id"])

    async def item(request):
        return PlainTextResponse("item")

    async def boom(request):
        raise RuntimeError("boom")

    app = Starlette(
        routes=[
            Route("/users/{user_id}", user),
            Route("/boom", boom),
            Mount("/api", routes=[Route("/items/{item_id:int}", item)]),
            Route("/metrics", metrics),
        ],
        middleware=[Middleware(MetricsMiddleware, registry=registry)],
    )
    app.state.registry = registry
    Counter("app_specific_events", "x", registry=registry).inc({})

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/users/bob").text == "bob"
        client.get("/users/alice")
        client.get("/api/items/3")
        client.get("/nowhere")
        assert client.get("/boom").status_code == 500
        resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    samples = _parse(resp.text)
    assert (
        samples[("requests_total_counter", key(method="GET", path="/users/{user_id}"))]
        == 2
    )
    assert (
        samples[
            (
                "requests_total_counter",
                key(method="GET", path="/api/items/{item_id:int}"),
            )
        ]
        == 1
    )
    assert (
        samples[
            (
                "status_codes_counter",
                key(method="GET", path="/nowhere", status_code="404"),
            )
        ]
        == 1
    )
    assert samples[("exceptions_total_counter", key(method="GET", path="/boom"))] == 1
    assert (
        samples[
            ("status_codes_counter", key(method="GET", path="/boom", status_code="500"))
        ]
        == 1
    )
    assert samples[("app_specific_events", ())] == 1
    # /metrics is excluded by default.
    assert not any(k[1] and dict(k[1]).get("path") == "/metrics" for k in samples)


def test_starlette_without_templates():
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    registry = Registry()

    async def user(request):
        return PlainTextResponse("x")

    app = Starlette(routes=[Route("/users/{user_id}", user)])
    app.add_middleware(MetricsMiddleware, registry=registry, use_template_urls=False)
    with TestClient(app) as client:
        client.get("/users/bob")
    assert values(registry, "requests_total_counter") == {
        key(method="GET", path="/users/bob"): 1
    }


def test_starlette_metrics_negotiates_protobuf_when_available():
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from aioprometheus import _core
    from aioprometheus.asgi.starlette import metrics
    from aioprometheus.renderer import render

    if not hasattr(_core, "encode_protobuf"):
        pytest.skip("the protobuf encoder is not wired in yet")
    registry = Registry()
    Counter("pb_total", "x", registry=registry).inc({})
    app = Starlette(routes=[Route("/metrics", metrics)])
    app.state.registry = registry
    accept = (
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
        "encoding=delimited"
    )
    with TestClient(app) as client:
        resp = client.get("/metrics", headers={"Accept": accept})
    body, headers = render(registry, [accept])
    assert resp.headers["content-type"] == headers["Content-Type"]
    assert resp.content == body


def test_fastapi_app():
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from aioprometheus.asgi.starlette import metrics

    registry = Registry()
    app = FastAPI()
    app.state.registry = registry
    app.add_middleware(MetricsMiddleware, registry=registry, group_status_codes=True)
    app.add_route("/metrics", metrics)

    @app.get("/items/{item_id}")
    async def read_item(item_id: int):
        return {"item_id": item_id}

    with TestClient(app) as client:
        assert client.get("/items/1").json() == {"item_id": 1}
        assert client.get("/items/notanint").status_code == 422
        client.get("/docs")
        resp = client.get("/metrics")
    samples = _parse(resp.text)
    assert (
        samples[("requests_total_counter", key(method="GET", path="/items/{item_id}"))]
        == 2
    )
    assert (
        samples[
            (
                "status_codes_counter",
                key(method="GET", path="/items/{item_id}", status_code="2xx"),
            )
        ]
        == 1
    )
    assert (
        samples[
            (
                "status_codes_counter",
                key(method="GET", path="/items/{item_id}", status_code="4xx"),
            )
        ]
        == 1
    )
    assert not any(dict(k[1]).get("path") == "/docs" for k in samples)


# ------------------------------------------------------------ Quart


def test_quart_app():
    pytest.importorskip("quart")
    from quart import Quart

    from aioprometheus.asgi.quart import metrics

    registry = Registry()
    app = Quart(__name__)
    app.registry = registry
    app.asgi_app = MetricsMiddleware(app.asgi_app, registry=registry)
    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])

    @app.route("/hello/<name>")
    async def hello(name):
        return f"hello {name}"

    async def scenario():
        client = app.test_client()
        r1 = await client.get("/hello/bob")
        r2 = await client.get("/metrics")
        return (
            await r1.get_data(as_text=True),
            r2.status_code,
            r2.headers,
            await r2.get_data(as_text=True),
        )

    hello_text, status, headers, text = asyncio.run(scenario())
    assert hello_text == "hello bob"
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    samples = _parse(text)
    assert (
        samples[("requests_total_counter", key(method="GET", path="/hello/bob"))] == 1
    )
    assert (
        samples[
            (
                "status_codes_counter",
                key(method="GET", path="/hello/bob", status_code="200"),
            )
        ]
        == 1
    )
