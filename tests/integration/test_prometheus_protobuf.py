"""A real Prometheus 2.42 (Debian's /usr/bin/prometheus) scrapes render() output
in protobuf and its HTTP API gives back exactly the values that were set.

The scrape target is a minimal aiohttp app on 127.0.0.1 that answers with
``render(registry, request Accept headers)`` and records the Accept header
and the Content-Type of every answer. Prometheus itself runs on 127.0.0.1
with an ephemeral port and a temporary data dir (servers.py / conftest.py
fixtures); missing binaries skip, unless AIOPROMETHEUS_REQUIRE_SERVERS=1.
"""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any, List, Tuple

import pytest
import servers
from aiohttp import web

from aioprometheus import Counter, Gauge, Histogram, Registry, Summary, render
from aioprometheus.formats.binary import BINARY_CONTENT_TYPE

NATIVE_HISTOGRAMS = "--enable-feature=native-histograms"


class RenderTarget:
    """aiohttp on 127.0.0.1 serving render(registry, Accept) on /metrics."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.scrapes: List[Tuple[str, str, int]] = []  # (accept, content type, size)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        accepts = request.headers.getall("Accept", [])
        body, headers = render(self.registry, accepts)
        self.scrapes.append((", ".join(accepts), headers["Content-Type"], len(body)))
        return web.Response(body=body, headers=headers)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def __enter__(self) -> RenderTarget:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def call(self, fn: Any, *args: Any) -> Any:
        """Run fn(*args) in the server's loop thread (metrics are not shared
        across threads while a scrape may be rendering)."""
        assert self._loop is not None

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def __exit__(self, *exc: Any) -> None:
        assert self._loop is not None and self._thread is not None
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(
                10
            )
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def target_factory():
    started: List[RenderTarget] = []

    def start(registry: Registry) -> RenderTarget:
        target = RenderTarget(registry).__enter__()
        started.append(target)
        return target

    yield start
    for target in started:
        target.__exit__(None, None, None)


def build_registry():
    r = Registry()
    requests = Counter(
        "pb_requests_total", "Requests ✓.", const_labels={"app": "pbtest"}, registry=r
    )
    requests.add({"path": "/", "method": "GET"}, 41)
    requests.inc({"path": "/ünïcødé 日本", "method": "POST"})
    requests.add({"path": "/big", "method": "GET"}, 2**53)

    temperature = Gauge("pb_temperature", "Degrees.", registry=r)
    gauges = {"neg": -2.5, "tiny": 1e-9, "zero": 0.0, "inf": math.inf}
    for sensor, value in gauges.items():
        temperature.set({"sensor": sensor}, value)
    temperature.set({"sensor": "nan"}, math.nan)

    latency = Histogram(
        "pb_latency_seconds", "Latency.", buckets=(0.01, 0.1, 1.0, 10.0), registry=r
    )
    for v in (0.005, 0.05, 0.05, 0.5, 5.0, 50.0):
        latency.observe({"route": "/a"}, v)
    latency.observe({"route": "/b"}, 0.2)

    payload = Summary("pb_payload_bytes", "Payload sizes.", registry=r)
    for v in range(1, 101):
        payload.observe({"route": "/a"}, float(v))
    return r, requests, temperature, latency, payload, gauges


def values_by(result, label):
    return {x["metric"].get(label, ""): x["value"][1] for x in result}


def test_prometheus_ingests_protobuf(prometheus_factory, target_factory):
    r, requests, temperature, latency, payload, gauges = build_registry()
    target = target_factory(r)
    prom = prometheus_factory([target.address], extra_flags=[NATIVE_HISTOGRAMS])

    servers.wait_for_query(
        prom, "up", lambda res: bool(res) and res[0]["value"][1] == "1"
    )

    # Counters, const labels, unicode label values, a 2**53 count.
    result = servers.wait_for_query(
        prom, "pb_requests_total", lambda res: len(res) == 3
    )
    assert {x["metric"]["app"] for x in result} == {"pbtest"}
    got = {x["metric"]["path"]: float(x["value"][1]) for x in result}
    assert got == {"/": 41.0, "/ünïcødé 日本": 1.0, "/big": float(2**53)}
    assert got == {labels["path"]: float(value) for labels, value in requests.get_all()}

    # Gauges, including +Inf and NaN.
    result = servers.wait_for_query(prom, "pb_temperature", lambda res: len(res) == 5)
    got = values_by(result, "sensor")
    assert got.pop("nan") == "NaN"
    assert got.pop("inf") == "+Inf"
    assert {k: float(v) for k, v in got.items()} == {
        k: v for k, v in gauges.items() if k != "inf"
    }

    # Histogram: every classic bucket (le), _count and _sum, per series.
    result = servers.wait_for_query(
        prom, "pb_latency_seconds_bucket", lambda res: len(res) == 10
    )
    for route in ("/a", "/b"):
        want = latency.get({"route": route})
        got_buckets = {
            float(x["metric"]["le"]): float(x["value"][1])
            for x in result
            if x["metric"]["route"] == route
        }
        assert got_buckets == {
            float(k): float(v) for k, v in want.items() if not isinstance(k, str)
        }
        (count,) = prom.query(f'pb_latency_seconds_count{{route="{route}"}}')
        (total,) = prom.query(f'pb_latency_seconds_sum{{route="{route}"}}')
        assert float(count["value"][1]) == want["count"]
        assert float(total["value"][1]) == want["sum"]
    assert latency.get({"route": "/a"})["count"] == 6

    # Summary: quantiles, _count, _sum.
    result = servers.wait_for_query(prom, "pb_payload_bytes", lambda res: len(res) == 3)
    want = payload.get({"route": "/a"})
    got = {float(x["metric"]["quantile"]): float(x["value"][1]) for x in result}
    assert got == {q: float(v) for q, v in want.items() if not isinstance(q, str)}
    assert set(got) == {0.5, 0.9, 0.99}
    (count,) = prom.query("pb_payload_bytes_count")
    (total,) = prom.query("pb_payload_bytes_sum")
    assert float(count["value"][1]) == want["count"] == 100
    assert float(total["value"][1]) == want["sum"] == 5050

    # Exactly the samples we exposed, no more (a duplicated +Inf bucket or a
    # dropped series would show here): 3 + 5 + 2 * (5 + 2) + (3 + 2).
    servers.wait_for_query(
        prom,
        "scrape_samples_scraped",
        lambda res: bool(res) and res[0]["value"][1] == str(3 + 5 + 2 * 7 + 5),
    )

    # Every scrape asked for protobuf first and was answered in protobuf.
    assert target.scrapes
    for accept, content_type, size in target.scrapes:
        assert accept.startswith("application/vnd.google.protobuf;"), accept
        assert content_type == BINARY_CONTENT_TYPE
        assert size > 0


def test_prometheus_sees_protobuf_updates(prometheus_factory, target_factory):
    r = Registry()
    gauge = Gauge("pb_changing", "Changes during the test.", registry=r)
    gauge.set({}, 1)
    target = target_factory(r)
    prom = prometheus_factory([target.address], extra_flags=[NATIVE_HISTOGRAMS])
    servers.wait_for_query(
        prom, "pb_changing", lambda res: bool(res) and res[0]["value"][1] == "1"
    )
    target.call(gauge.set, {}, 42.25)
    result = servers.wait_for_query(
        prom, "pb_changing", lambda res: bool(res) and res[0]["value"][1] != "1"
    )
    assert float(result[0]["value"][1]) == 42.25
    assert target.scrapes[-1][1] == BINARY_CONTENT_TYPE


def test_prometheus_without_native_histograms_gets_openmetrics(
    prometheus_factory, target_factory
):
    r = Registry()
    Counter("pb_plain_total", "Plain.", registry=r).add({"a": "b"}, 5)
    target = target_factory(r)
    prom = prometheus_factory([target.address])
    result = servers.wait_for_query(prom, "pb_plain_total")
    assert float(result[0]["value"][1]) == 5
    assert target.scrapes
    for accept, content_type, _ in target.scrapes:
        assert "application/vnd.google.protobuf" not in accept
        assert content_type.startswith("application/openmetrics-text; version=1.0.0")
