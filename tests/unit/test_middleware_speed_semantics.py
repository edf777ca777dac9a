"""The ASGI middleware reads the route the router chose instead of matching
the routes again, and still labels every request as before: templates through
mounts and included routers, 404s as their path, exceptions, streaming,
websockets, requests the router never saw."""

import asyncio

import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

from registry_views import label_key as key  # noqa: E402
from registry_views import series_values as counts  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import PlainTextResponse, StreamingResponse  # noqa: E402
from starlette.routing import Mount, Route, WebSocketRoute  # noqa: E402

from aioprometheus.asgi import middleware as middleware_module  # noqa: E402
from aioprometheus.asgi.middleware import MetricsMiddleware  # noqa: E402
from aioprometheus.collectors import Registry  # noqa: E402


async def get_all(app, paths, method="GET"):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return [await client.request(method, p) for p in paths]


async def text(request):
    return PlainTextResponse("ok")


def instrumented(routes, registry, **options):
    app = Starlette(routes=routes)
    app.add_middleware(MetricsMiddleware, registry=registry, **options)
    return app


def starlette_sets_route() -> bool:
    """Whether this Starlette leaves the matched route in scope["route"]
    (older ones, as pip picks on Python 3.9, give only the endpoint)."""
    seen = {}

    async def endpoint(request):
        seen["route"] = "route" in request.scope
        return PlainTextResponse("ok")

    asyncio.run(get_all(Starlette(routes=[Route("/", endpoint)]), ["/"]))
    return seen["route"]


@pytest.mark.skipif(
    not starlette_sets_route(), reason="this Starlette does not set scope['route']"
)
def test_no_route_matching_beyond_the_routers_own():
    """The middleware must not walk the routes: with it, each route's
    matches() runs exactly as often as in the bare app."""
    calls = {"n": 0}

    class CountingRoute(Route):
        def matches(self, scope):
            calls["n"] += 1
            return super().matches(scope)

    def routes():
        return [CountingRoute(f"/r{i}/{{x}}", text) for i in range(20)]

    paths = ["/r0/a", "/r19/b", "/r7/c", "/nowhere"] * 5

    bare = Starlette(routes=routes())
    asyncio.run(get_all(bare, paths))
    bare_calls, calls["n"] = calls["n"], 0

    registry = Registry()
    asyncio.run(get_all(instrumented(routes(), registry), paths))
    assert calls["n"] == bare_calls
    assert counts(registry, "requests_total_counter") == {
        key(method="GET", path="/r0/{x}"): 5,
        key(method="GET", path="/r19/{x}"): 5,
        key(method="GET", path="/r7/{x}"): 5,
        key(method="GET", path="/nowhere"): 5,
    }


def test_templates_through_mounts_with_parameters_and_mounted_apps():
    registry = Registry()
    sub = Starlette(routes=[Route("/pages/{page}", text)])
    app = instrumented(
        [
            Mount("/org/{org}", routes=[Route("/users/{user_id:int}", text)]),
            Mount("/a", app=sub),
            Mount("/b", app=sub),  # the same app twice: two templates
        ],
        registry,
    )
    asyncio.run(
        get_all(app, ["/org/x/users/1", "/org/y/users/2", "/a/pages/1", "/b/pages/2"])
    )
    asyncio.run(get_all(app, ["/b/pages/3", "/a/pages/4", "/org/z/nothing"]))
    assert counts(registry, "status_codes_counter") == {
        key(method="GET", path="/org/{org}/users/{user_id:int}", status_code="200"): 2,
        key(method="GET", path="/a/pages/{page}", status_code="200"): 2,
        key(method="GET", path="/b/pages/{page}", status_code="200"): 2,
        # no route inside the mount: the mount's template, never the raw path
        key(method="GET", path="/org/{org}", status_code="404"): 1,
    }


def test_route_added_after_the_first_request_gets_its_template():
    registry = Registry()
    app = instrumented([Route("/first/{x}", text)], registry)
    asyncio.run(get_all(app, ["/first/1"]))
    app.router.routes.append(Route("/later/{y}", text))
    asyncio.run(get_all(app, ["/later/2", "/later/3"]))
    assert counts(registry, "requests_total_counter") == {
        key(method="GET", path="/first/{x}"): 1,
        key(method="GET", path="/later/{y}"): 2,
    }


def test_request_rejected_before_the_router_still_gets_the_template():
    """A middleware inside ours answers before routing: the route walk over
    the request's own path gives the template, as 23.12 did."""
    registry = Registry()

    class Reject:
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.app(scope, receive, send)
            await PlainTextResponse("no", status_code=401)(scope, receive, send)

    app = Starlette(routes=[Mount("/api", routes=[Route("/users/{u}", text)])])
    app.add_middleware(Reject)
    app.add_middleware(MetricsMiddleware, registry=registry)
    asyncio.run(get_all(app, ["/api/users/1", "/api/users/2", "/elsewhere"]))
    assert counts(registry, "status_codes_counter") == {
        key(method="GET", path="/api/users/{u}", status_code="401"): 2,
        key(method="GET", path="/elsewhere", status_code="401"): 1,
    }


def test_exception_in_a_route_counted_with_its_template_and_reraised():
    registry = Registry()

    async def boom(request):
        raise KeyError("boom")

    app = instrumented([Route("/boom/{n}", boom)], registry)
    # the server error middleware sits outside ours: our middleware sees the
    # exception, counts it and re-raises it
    responses = asyncio.run(get_all(app, ["/boom/1", "/boom/2"]))
    assert [r.status_code for r in responses] == [500, 500]
    labels = key(method="GET", path="/boom/{n}")
    assert counts(registry, "exceptions_total_counter") == {labels: 2}
    assert counts(registry, "requests_total_counter") == {labels: 2}
    assert counts(registry, "responses_total_counter") == {labels: 2}
    assert counts(registry, "status_codes_counter") == {
        key(method="GET", path="/boom/{n}", status_code="500"): 2
    }


def test_streaming_response_counted_when_it_starts():
    registry = Registry()
    seen_during_stream = []

    async def stream(request):
        async def chunks():
            yield b"first"
            seen_during_stream.append(counts(registry, "responses_total_counter"))
            yield b"second"
            raise RuntimeError("stream broke")

        return StreamingResponse(chunks())

    app = instrumented([Route("/stream/{s}", stream)], registry)
    with pytest.raises(RuntimeError, match="stream broke"):
        asyncio.run(get_all_raising(app, "/stream/1"))
    labels = key(method="GET", path="/stream/{s}")
    assert seen_during_stream == [{labels: 1}]
    # the exception after the start: counted once, the 200 kept
    assert counts(registry, "exceptions_total_counter") == {labels: 1}
    assert counts(registry, "responses_total_counter") == {labels: 1}
    assert counts(registry, "status_codes_counter") == {
        key(method="GET", path="/stream/{s}", status_code="200"): 1
    }


async def get_all_raising(app, path):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


def test_websocket_routes_accepted_and_refused():
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    registry = Registry()

    async def accept(websocket):
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    async def refuse(websocket):
        await websocket.close()

    app = instrumented(
        [WebSocketRoute("/ws/{room}", accept), WebSocketRoute("/no/{room}", refuse)],
        registry,
    )
    with TestClient(app) as client:
        with client.websocket_connect("/ws/1") as ws:
            assert ws.receive_text() == "hi"
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect("/no/2"):
                pass
    assert counts(registry, "status_codes_counter") == {
        key(method="WEBSOCKET", path="/ws/{room}", status_code="101"): 1,
        key(method="WEBSOCKET", path="/no/{room}", status_code="403"): 1,
    }


def test_app_that_returns_without_responding_counts_the_request_only():
    registry = Registry()

    async def silent(scope, receive, send):
        return None

    mw = MetricsMiddleware(silent, registry=registry)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        raise AssertionError("nothing is sent")

    scope = {"type": "http", "method": "GET", "path": "/quiet", "root_path": ""}
    asyncio.run(mw(dict(scope), receive, send))
    assert counts(registry, "requests_total_counter") == {
        key(method="GET", path="/quiet"): 1
    }
    assert counts(registry, "responses_total_counter") == {}
    assert counts(registry, "status_codes_counter") == {}


def test_label_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(middleware_module, "SERIES_CACHE_SIZE", 8)
    registry = Registry()
    app = instrumented([Route(f"/x{i}/{{n}}", text) for i in range(20)], registry)
    paths = [f"/missing/{i}" for i in range(30)] + [f"/x{i}/1" for i in range(20)]
    asyncio.run(get_all(app, paths * 2))
    mw = app.middleware_stack
    while not isinstance(mw, MetricsMiddleware):
        mw = mw.app
    assert 0 < len(mw._series) <= 8
    assert 0 < len(mw._route_series) <= 8
    assert sum(counts(registry, "requests_total_counter").values()) == 100
    assert (
        counts(registry, "requests_total_counter")[key(method="GET", path="/x19/{n}")]
        == 2
    )


def test_fastapi_included_router_prefixes():
    fastapi = pytest.importorskip("fastapi")

    registry = Registry()
    inner = fastapi.APIRouter()

    @inner.get("/things/{thing_id}")
    async def thing(thing_id: int):
        return {"thing_id": thing_id}

    outer = fastapi.APIRouter()
    outer.include_router(inner, prefix="/inner")
    app = fastapi.FastAPI()
    app.include_router(outer, prefix="/v1")

    @app.post("/items/{item_id}")
    async def item(item_id: int):
        return {}

    app.add_middleware(MetricsMiddleware, registry=registry)
    asyncio.run(get_all(app, ["/v1/inner/things/1", "/v1/inner/things/2"]))
    asyncio.run(get_all(app, ["/items/3"], method="POST"))
    asyncio.run(get_all(app, ["/items/4"]))  # wrong method: 405
    assert counts(registry, "status_codes_counter") == {
        key(method="GET", path="/v1/inner/things/{thing_id}", status_code="200"): 2,
        key(method="POST", path="/items/{item_id}", status_code="200"): 1,
        key(method="GET", path="/items/{item_id}", status_code="405"): 1,
    }


def test_benchmark_times_bare_and_instrumented_apps():
    """The benchmark's middleware rows drive both apps, and the instrumented
    one really counts every request (timings are only checked to be numbers)."""
    pytest.importorskip("fastapi")
    import time

    from benchmarks import middleware as bench

    overhead = bench.Overhead("aioprometheus")
    assert set(overhead.drivers) == {
        "asgi",
        "asgi_bare",
        "httpx",
        "httpx_bare",
        "asgi_timed",
    }
    programs = overhead.programs(time.perf_counter)
    for name, n in (("asgi", 10), ("httpx", 5), ("asgi_bare", 7), ("asgi_timed", 6)):
        assert programs[name](n) > 0
    bare, instrumented = overhead.apps
    counter = instrumented.state.bench_registry.get("requests_total_counter")
    assert sum(v for _, v in counter.get_all()) == 15
    assert not hasattr(bare.state, "bench_registry")
    # the timed app (one request when it was made) observes every duration
    timed = overhead.timed_app.state.bench_registry
    durations = timed.get("http_request_duration_seconds")
    assert sum(h["count"] for _, h in durations.get_all()) == 7
