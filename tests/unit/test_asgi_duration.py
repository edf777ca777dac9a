"""The middleware's opt-in request-duration histogram: one observation per
response, labelled by method, route template and status, timed from the
request's arrival to the response's last body message; absent by default."""

import asyncio
import time

import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

from registry_views import label_key as key  # noqa: E402
from registry_views import series_values  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.background import BackgroundTask  # noqa: E402
from starlette.responses import PlainTextResponse, StreamingResponse  # noqa: E402
from starlette.routing import Mount, Route, WebSocketRoute  # noqa: E402

from aioprometheus.asgi.middleware import (  # noqa: E402
    DURATION_HISTOGRAM,
    DURATION_NATIVE_FACTOR,
    MetricsMiddleware,
)
from aioprometheus.collectors import Histogram, Registry  # noqa: E402
from aioprometheus.renderer import render  # noqa: E402

PAUSE = 0.02


async def fast(request):
    return PlainTextResponse("ok")


async def slow(request):
    await asyncio.sleep(PAUSE)
    return PlainTextResponse("slow")


async def boom(request):
    raise RuntimeError("boom")


def app_with(registry, routes=None, **options):
    app = Starlette(
        routes=routes
        or [
            Route("/fast/{n}", fast),
            Route("/slow/{n}", slow),
            Route("/boom", boom),
            Mount("/api", routes=[Route("/items/{item_id:int}", fast)]),
        ]
    )
    app.add_middleware(MetricsMiddleware, registry=registry, **options)
    return app


async def get_all(app, paths, method="GET"):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return [await client.request(method, p) for p in paths]


def durations(registry):
    """{label key: (count, sum)} of the duration histogram's series."""
    return {
        labels: (value["count"], value["sum"])
        for labels, value in series_values(registry, DURATION_HISTOGRAM).items()
    }


def test_one_observation_per_response_labelled_by_template_and_status():
    registry = Registry()
    app = app_with(registry, duration_histogram=True)
    paths = ["/fast/1", "/fast/2", "/api/items/3", "/nowhere", "/boom", "/fast/3"]
    responses = asyncio.run(get_all(app, paths))
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 500, 200]
    observed = durations(registry)
    assert {labels: count for labels, (count, _) in observed.items()} == {
        key(method="GET", path="/fast/{n}", status_code="200"): 3,
        key(method="GET", path="/api/items/{item_id:int}", status_code="200"): 1,
        key(method="GET", path="/nowhere", status_code="404"): 1,
        key(method="GET", path="/boom", status_code="500"): 1,
    }
    # the same series as the status code counter, one observation per count
    assert {labels: count for labels, (count, _) in observed.items()} == series_values(
        registry, "status_codes_counter"
    )
    assert all(total > 0 for _, total in observed.values())


def test_durations_are_positive_and_bounded_by_the_wall_time():
    registry = Registry()
    app = app_with(registry, duration_histogram=(0.001, PAUSE / 2, 10.0))
    started = time.perf_counter()
    asyncio.run(get_all(app, ["/slow/1", "/slow/2", "/fast/1"]))
    wall = time.perf_counter() - started
    slow_count, slow_sum = durations(registry)[
        key(method="GET", path="/slow/{n}", status_code="200")
    ]
    fast_count, fast_sum = durations(registry)[
        key(method="GET", path="/fast/{n}", status_code="200")
    ]
    assert (slow_count, fast_count) == (2, 1)
    assert 2 * PAUSE <= slow_sum and 0 < fast_sum
    assert slow_sum + fast_sum <= wall
    slow_labels = {"method": "GET", "path": "/slow/{n}", "status_code": "200"}
    buckets = registry.get(DURATION_HISTOGRAM).get(slow_labels)
    # neither slow request fits the buckets below the pause
    assert buckets[0.001] == buckets[PAUSE / 2] == 0
    assert buckets[10.0] == 2
    # the native buckets hold the same two observations, above the pause
    native = registry.get(DURATION_HISTOGRAM).get_native(slow_labels)
    assert native["zero_count"] == 0 and not native["negative"]
    assert sum(native["positive"].values()) == 2
    growth = 2 ** (2 ** -native["schema"])
    assert 1 < growth <= DURATION_NATIVE_FACTOR
    assert all(growth**index > PAUSE for index in native["positive"])


def test_background_task_after_the_response_is_not_timed():
    registry = Registry()

    async def with_background(request):
        return PlainTextResponse("done", background=BackgroundTask(asyncio.sleep, 0.1))

    app = app_with(registry, [Route("/bg", with_background)], duration_histogram=True)
    started = time.perf_counter()
    asyncio.run(get_all(app, ["/bg"]))
    wall = time.perf_counter() - started
    ((count, total),) = durations(registry).values()
    assert count == 1 and wall >= 0.1
    assert 0 < total < 0.1


def test_streaming_response_timed_to_its_last_chunk():
    registry = Registry()

    async def stream(request):
        async def chunks():
            for _ in range(3):
                await asyncio.sleep(PAUSE)
                yield b"x"

        return StreamingResponse(chunks())

    app = app_with(registry, [Route("/stream", stream)], duration_histogram=True)
    asyncio.run(get_all(app, ["/stream"]))
    ((count, total),) = durations(registry).values()
    assert count == 1 and total >= 3 * PAUSE


def test_raw_asgi_app_failing_after_the_start_and_silent_requests():
    """An exception after the response started ends the duration there (the
    started status kept); a request without a response is not timed."""
    registry = Registry()

    async def app(scope, receive, send):
        if scope["path"] == "/quiet":
            return
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await asyncio.sleep(PAUSE)
        raise RuntimeError("after the start")

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    mw = MetricsMiddleware(app, registry=registry, duration_histogram=True)
    for path in ("/broken", "/quiet"):
        scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
        try:
            asyncio.run(mw(scope, receive, send))
        except RuntimeError:
            pass
    ((labels, (count, total)),) = durations(registry).items()
    assert labels == key(method="GET", path="/broken", status_code="201")
    assert count == 1 and total >= PAUSE
    assert series_values(registry, "requests_total_counter") == {
        key(method="GET", path="/broken"): 1,
        key(method="GET", path="/quiet"): 1,
    }


def test_websockets_and_excluded_paths_are_not_timed():
    from starlette.testclient import TestClient

    async def accept(websocket):
        await websocket.accept()
        await websocket.close()

    registry = Registry()
    app = app_with(
        registry,
        [WebSocketRoute("/ws", accept), Route("/metrics", fast), Route("/x", fast)],
        duration_histogram=True,
    )
    with TestClient(app) as client:
        with client.websocket_connect("/ws"):
            pass
        client.get("/metrics")
        client.get("/x")
    assert list(durations(registry)) == [
        key(method="GET", path="/x", status_code="200")
    ]
    assert key(method="WEBSOCKET", path="/ws", status_code="101") in series_values(
        registry, "status_codes_counter"
    )


def test_off_by_default_output_unchanged():
    """Without the option the registry holds exactly 23.12's four counters,
    and the exposition is the same as with the histogram's lines removed."""
    plain, timed = Registry(), Registry()
    paths = ["/fast/1", "/nowhere", "/boom"]
    asyncio.run(get_all(app_with(plain), paths))
    asyncio.run(get_all(app_with(timed, duration_histogram=True), paths))
    assert {c.name for c in plain.get_all()} == {
        "requests_total_counter",
        "responses_total_counter",
        "exceptions_total_counter",
        "status_codes_counter",
    }
    plain_text = render(plain, [])[0].decode()
    timed_text = render(timed, [])[0].decode()
    assert DURATION_HISTOGRAM not in plain_text
    assert DURATION_HISTOGRAM in timed_text
    assert plain_text == "".join(
        line
        for line in timed_text.splitlines(keepends=True)
        if DURATION_HISTOGRAM not in line
    )


def test_group_status_codes_and_const_labels_apply():
    registry = Registry()
    app = app_with(
        registry,
        duration_histogram=True,
        group_status_codes=True,
        const_labels={"service": "api"},
    )
    asyncio.run(get_all(app, ["/fast/1", "/nowhere"]))
    assert set(durations(registry)) == {
        key(method="GET", path="/fast/{n}", status_code="2xx"),
        key(method="GET", path="/nowhere", status_code="4xx"),
    }
    assert registry.get(DURATION_HISTOGRAM).const_labels == {"service": "api"}


def test_buckets_checked_at_construction_and_histogram_reused():
    for bad in ([1.0, 0.5], [float("nan")], ["x"]):
        with pytest.raises(ValueError):
            MetricsMiddleware(fast, registry=Registry(), duration_histogram=bad)
    registry = Registry()
    first = app_with(registry, duration_histogram=(0.1, 1.0))
    second = app_with(registry, duration_histogram=(0.1, 1.0))
    asyncio.run(get_all(first, ["/fast/1"]))
    asyncio.run(get_all(second, ["/fast/2"]))
    histogram = registry.get(DURATION_HISTOGRAM)
    assert isinstance(histogram, Histogram)
    assert histogram.upper_bounds == [0.1, 1.0, float("inf")]
    ((count, _),) = durations(registry).values()
    assert count == 2
    # other buckets under the same name: the registry refuses the second
    clashing = MetricsMiddleware(fast, registry=registry, duration_histogram=(0.5,))
    scope = {"type": "http", "method": "GET", "path": "/", "root_path": ""}
    with pytest.raises(ValueError, match=DURATION_HISTOGRAM):
        asyncio.run(clashing(scope, None, None))
    assert registry.get(DURATION_HISTOGRAM) is histogram
