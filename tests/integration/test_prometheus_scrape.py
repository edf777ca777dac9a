"""A real Prometheus scrapes the aioprometheus Service; its HTTP API must give
back exactly the values and label values that were set."""

import math

import pytest
import servers

from aioprometheus.collectors import Counter, Gauge, Histogram, Registry, Summary

TRICKY_VALUES = [
    'say "hi"',
    "back\\slash\\",
    "new\nline",
    "ünïcødé ✓ 日本語 🚀",
    'all "of\\them\nat once" ü',
    "{braces},commas=equals}",
    "trailing space ",
]


def _protobuf_available() -> bool:
    """True once the binary formatter and its compiled encoder are wired in."""
    try:
        from aioprometheus import _core
        from aioprometheus.formats.binary import BinaryFormatter  # noqa: F401
    except ImportError:
        return False
    return hasattr(_core, "encode_protobuf")


def build_registry():
    registry = Registry()
    counter = Counter(
        "it_events_total",
        "Events with tricky labels.",
        const_labels={"app": "itest"},
        registry=registry,
    )
    gauge = Gauge("it_temperature", "A gauge.", registry=registry)
    hist = Histogram(
        "it_latency_seconds",
        "A histogram.",
        registry=registry,
        buckets=(0.01, 0.1, 1.0, 10.0),
    )
    summ = Summary("it_payload_bytes", "A summary.", registry=registry)

    expected_counter = {}
    for i, value in enumerate(TRICKY_VALUES):
        amount = float(i + 1) * 1.5
        counter.add({"kind": value}, amount)
        expected_counter[value] = amount
    counter.inc({"kind": "plain"})
    expected_counter["plain"] = 1.0

    expected_gauge = {"neg": -2.5, "tiny": 1e-9, "big": 12345678.125, "zero": 0.0}
    for name, value in expected_gauge.items():
        gauge.set({"sensor": name}, value)

    for v in (0.005, 0.05, 0.05, 0.5, 5.0, 50.0):
        hist.observe({"route": "/a"}, v)
    for v in range(1, 101):
        summ.observe({"route": "/a"}, float(v))

    return registry, {
        "counter": counter,
        "gauge": gauge,
        "hist": hist,
        "summ": summ,
        "expected_counter": expected_counter,
        "expected_gauge": expected_gauge,
    }


def _values(result, label):
    return {item["metric"].get(label, ""): float(item["value"][1]) for item in result}


def check_values(prom, m):
    # up == 1: the scrape itself succeeded.
    servers.wait_for_query(
        prom, "up", lambda r: bool(r) and all(x["value"][1] == "1" for x in r)
    )

    expected_counter = m["expected_counter"]
    result = servers.wait_for_query(
        prom, "it_events_total", lambda r: len(r) == len(expected_counter)
    )
    assert _values(result, "kind") == expected_counter
    assert {x["metric"]["app"] for x in result} == {"itest"}
    # Exact label-value match through a PromQL equality matcher too.
    for value, amount in expected_counter.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        one = prom.query(f'it_events_total{{kind="{escaped}"}}')
        assert len(one) == 1 and float(one[0]["value"][1]) == amount, (value, one)

    result = servers.wait_for_query(
        prom, "it_temperature", lambda r: len(r) == len(m["expected_gauge"])
    )
    assert _values(result, "sensor") == m["expected_gauge"]

    hist_expected = m["hist"].get({"route": "/a"})
    result = servers.wait_for_query(
        prom, "it_latency_seconds_bucket", lambda r: len(r) == 5
    )
    got = {float(x["metric"]["le"]): float(x["value"][1]) for x in result}
    want = {
        float(k): float(v)
        for k, v in hist_expected.items()
        if k not in ("count", "sum")
    }
    assert got == want
    assert got[math.inf] == 6
    count = prom.query("it_latency_seconds_count")
    total = prom.query("it_latency_seconds_sum")
    assert float(count[0]["value"][1]) == hist_expected["count"] == 6
    assert float(total[0]["value"][1]) == hist_expected["sum"]

    summ_expected = m["summ"].get({"route": "/a"})
    result = servers.wait_for_query(prom, "it_payload_bytes", lambda r: len(r) == 3)
    got = {float(x["metric"]["quantile"]): float(x["value"][1]) for x in result}
    assert got == {
        q: float(v) for q, v in summ_expected.items() if q not in ("count", "sum")
    }
    assert set(got) == {0.5, 0.9, 0.99}
    count = prom.query("it_payload_bytes_count")
    total = prom.query("it_payload_bytes_sum")
    assert float(count[0]["value"][1]) == summ_expected["count"] == 100
    assert float(total[0]["value"][1]) == summ_expected["sum"] == 5050


def test_prometheus_scrapes_openmetrics_by_default(
    prometheus_factory, service_thread_factory
):
    registry, m = build_registry()
    svc = service_thread_factory(registry)
    prom = prometheus_factory([svc.address])
    check_values(prom, m)
    assert svc.scrapes, "Prometheus never scraped the service"
    last = svc.scrapes[-1]
    assert last.status == 200
    assert last.content_type.startswith("application/openmetrics-text"), last
    assert "version=1.0.0" in last.content_type
    # Prometheus always asks for gzip, and the service honours it.
    assert "gzip" in last.accept_encoding
    assert last.content_encoding == "gzip"


def test_prometheus_scrapes_text(prometheus_factory, service_thread_factory):
    """Text 0.0.4, for scrapers that ask for it: the same values stored."""
    registry, m = build_registry()
    svc = service_thread_factory(registry, accept_override="text/plain;version=0.0.4")
    prom = prometheus_factory([svc.address])
    check_values(prom, m)
    last = svc.scrapes[-1]
    assert last.status == 200
    assert last.content_type.startswith("text/plain"), last


def test_prometheus_scrapes_with_native_histograms(
    prometheus_factory, service_thread_factory
):
    """With native histograms on, Prometheus 2.42 asks for protobuf first; the
    service answers protobuf if the binary formatter exists, else text."""
    registry, m = build_registry()
    svc = service_thread_factory(registry)
    prom = prometheus_factory(
        [svc.address], extra_flags=["--enable-feature=native-histograms"]
    )
    check_values(prom, m)
    last = svc.scrapes[-1]
    assert "application/vnd.google.protobuf" in last.accept, last
    if _protobuf_available():
        assert last.content_type.startswith("application/vnd.google.protobuf"), last
        assert "encoding=delimited" in last.content_type
    else:
        assert last.content_type.startswith("text/plain"), last


def test_prometheus_sees_updates(prometheus_factory, service_thread_factory):
    """A value changed while Prometheus scrapes shows up in later scrapes."""
    registry = Registry()
    gauge = Gauge("it_changing", "Changes during the test.", registry=registry)
    gauge.set({}, 1)
    svc = service_thread_factory(registry)
    prom = prometheus_factory([svc.address])
    servers.wait_for_query(
        prom, "it_changing", lambda r: bool(r) and r[0]["value"][1] == "1"
    )
    svc.call(gauge.set, {}, 42.25)
    result = servers.wait_for_query(
        prom, "it_changing", lambda r: bool(r) and r[0]["value"][1] != "1"
    )
    assert float(result[0]["value"][1]) == 42.25


@pytest.mark.parametrize("path", ["/custom/metrics"])
def test_prometheus_scrapes_custom_metrics_path(
    path, prometheus_factory, service_thread_factory
):
    registry = Registry()
    Counter("it_custom_path_total", "On a custom path.", registry=registry).add({}, 7)
    svc = service_thread_factory(registry, metrics_url_path=path)
    assert servers.http_get(f"http://{svc.address}/metrics").status == 404
    prom = prometheus_factory([svc.address], metrics_path=path)
    result = servers.wait_for_query(prom, "it_custom_path_total")
    assert float(result[0]["value"][1]) == 7
