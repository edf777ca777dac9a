"""A real Prometheus 2.42 stores exactly the same series, with the same values,
from the OpenMetrics it asks for by default as from text 0.0.4: counters
with and without ``_total``, units, Info and Enum, histograms, summaries."""

import math

import servers

from aioprometheus import Counter, Enum, Gauge, Histogram, Info, Registry, Summary

TEXT = "text/plain;version=0.0.4"


def build_registry():
    registry = Registry()
    Counter("om_jobs_total", "Jobs.", registry=registry).add({"kind": 'a"b'}, 3)
    Counter("om_legacy", "A counter named as 23.12 allowed.", registry=registry).add(
        {"kind": "x"}, 2.5
    )
    Gauge("om_room_celsius", "Room.", unit="celsius", registry=registry).set(
        {"room": "ü"}, -1.25
    )
    latency = Histogram(
        "om_latency_seconds",
        "Latency.",
        unit="seconds",
        buckets=(0.01, 0.1, 1.0),
        registry=registry,
    )
    for value in (0.005, 0.05, 0.5, 5.0):
        latency.observe({"route": "/a"}, value)
    sizes = Summary("om_size_bytes", "Sizes.", unit="bytes", registry=registry)
    for value in range(1, 51):
        sizes.observe({}, float(value))
    Info("om_build", "Build.", registry=registry).set({}, {"version": "1.2.3"})
    Enum("om_mode", "Mode.", states=["on", "off"], registry=registry).set({}, "off")
    return registry


def stored(prom, instance):
    """{(name, labels without job/instance): value} Prometheus holds for `instance`."""
    result = prom.query(f'{{__name__=~"om_.*",instance="{instance}"}}')
    out = {}
    for item in result:
        metric = dict(item["metric"])
        name = metric.pop("__name__")
        metric.pop("job")
        metric.pop("instance")
        out[(name, tuple(sorted(metric.items())))] = float(item["value"][1])
    return out


def test_openmetrics_and_text_store_the_same_series(
    prometheus_factory, service_thread_factory
):
    registry = build_registry()
    openmetrics = service_thread_factory(registry)
    text = service_thread_factory(registry, accept_override=TEXT)
    prom = prometheus_factory([openmetrics.address, text.address])
    # 5 + 1 + 1 histogram series (3 buckets, +Inf, count, sum = 6) ...
    expected_count = 1 + 1 + 1 + 6 + 5 + 1 + 2
    servers.wait_for_query(
        prom,
        'count by (instance) ({__name__=~"om_.*"})',
        lambda r: len(r) == 2 and all(int(x["value"][1]) == expected_count for x in r),
    )
    from_openmetrics = stored(prom, openmetrics.address)
    from_text = stored(prom, text.address)
    assert from_openmetrics == from_text
    assert from_openmetrics[("om_legacy", (("kind", "x"),))] == 2.5
    assert from_openmetrics[("om_jobs_total", (("kind", 'a"b'),))] == 3
    assert from_openmetrics[("om_build_info", (("version", "1.2.3"),))] == 1
    assert from_openmetrics[("om_mode", (("om_mode", "off"),))] == 1
    assert (
        from_openmetrics[
            ("om_latency_seconds_bucket", (("le", "+Inf"), ("route", "/a")))
        ]
        == 4
    )
    assert math.isclose(from_openmetrics[("om_size_bytes_sum", ())], 1275)
    assert openmetrics.scrapes[-1].content_type.startswith(
        "application/openmetrics-text"
    )
    assert text.scrapes[-1].content_type.startswith("text/plain")


def test_prometheus_reads_the_openmetrics_metadata(
    prometheus_factory, service_thread_factory
):
    """Types and units as Prometheus' metadata API reports them."""
    registry = build_registry()
    svc = service_thread_factory(registry)
    prom = prometheus_factory([svc.address])
    servers.wait_for_query(prom, "om_mode")

    def metadata():
        response = servers.http_get(prom.api_url + "/targets/metadata")
        entries = response.json()["data"]
        return {e["metric"]: (e["type"], e.get("unit", "")) for e in entries} or None

    got = servers.wait_until(metadata, 30, what="target metadata")
    assert got["om_jobs"] == ("counter", "")
    assert got["om_legacy"] == ("unknown", "")
    assert got["om_room_celsius"] == ("gauge", "celsius")
    assert got["om_latency_seconds"] == ("histogram", "seconds")
    assert got["om_size_bytes"] == ("summary", "bytes")
    assert got["om_build"] == ("info", "")
    assert got["om_mode"] == ("stateset", "")
