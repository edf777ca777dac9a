"""Real Prometheus stores every series the library exposes, and drops none as
a duplicate, when label values of mixed types render alike or differently.

``{"code": 200}`` and ``{"code": "200"}`` render the same, so they must be
one series (two identical lines would make Prometheus drop one sample as a
duplicate); ``1``, ``True`` and ``1.0`` render differently, so they must be
three; ``nan`` used again and again must stay one series.

Prometheus 2.42 counts a repeated series with a *different* value as a
duplicate, but drops one with the same value silently; so besides its
dropped-sample counters, the samples in each scrape must equal the series
its TSDB stored.
"""

import enum
import math

import pytest
import servers
from prometheus_client.parser import text_string_to_metric_families

from aioprometheus import Counter, Gauge, Registry, render


class Color(enum.Enum):
    RED = "red"


# Prometheus' own counters of samples it refused from a scrape
DROPPED_SAMPLE_COUNTERS = (
    "prometheus_target_scrapes_sample_duplicate_timestamp_total",
    "prometheus_target_scrapes_sample_out_of_order_total",
    "prometheus_target_scrapes_sample_out_of_bounds_total",
)


def build_registry() -> Registry:
    registry = Registry()
    codes = Counter("it_identity_requests_total", "By code.", registry=registry)
    for code in (200, "200", 200, 404, "404", "500"):
        codes.inc({"code": code})
    weights = Gauge("it_identity_weight", "By weight.", registry=registry)
    for value, w in ((1.0, 1), (2.0, True), (3.0, 1.0), (4.0, "1")):
        weights.set({"w": w}, value)
    ratios = Gauge("it_identity_ratio", "nan labels.", registry=registry)
    for _ in range(50):
        ratios.inc({"ratio": math.nan})
    ratios.inc({"ratio": "nan", "color": Color.RED})
    ratios.inc({"color": "Color.RED", "ratio": float("nan")})
    return registry


def library_series(registry: Registry) -> dict:
    """``{metric name: {label set: value}}`` as the library's text shows them."""
    body, _ = render(registry, [])
    exposed: dict = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            assert key not in exposed.get(sample.name, {}), f"twice: {sample}"
            exposed.setdefault(sample.name, {})[key] = sample.value
    return exposed


def prometheus_own_counter(prom: servers.PrometheusServer, name: str) -> float:
    """One of Prometheus' self-metrics, read from its own /metrics page."""
    text = servers.http_get(f"{prom.base_url}/metrics").body.decode("utf-8")
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"Prometheus does not expose {name}")


def series_count(n: int):
    """A wait_for_query predicate: the result has ``n`` series."""
    return lambda result: len(result) == n


@pytest.mark.parametrize(
    "flags",
    [(), ("--enable-feature=native-histograms",)],
    ids=["text", "protobuf"],
)
def test_prometheus_stores_every_exposed_series_and_drops_none(
    flags, prometheus_factory, service_thread_factory
):
    registry = build_registry()
    expected = library_series(registry)
    assert expected == {
        "it_identity_requests_total": {
            (("code", "200"),): 3.0,
            (("code", "404"),): 2.0,
            (("code", "500"),): 1.0,
        },
        "it_identity_weight": {
            (("w", "1"),): 4.0,
            (("w", "True"),): 2.0,
            (("w", "1.0"),): 3.0,
        },
        "it_identity_ratio": {
            (("ratio", "nan"),): 50.0,
            (("color", "Color.RED"), ("ratio", "nan")): 2.0,
        },
    }
    svc = service_thread_factory(registry)
    prom = prometheus_factory([svc.address], extra_flags=flags)
    for name, series in expected.items():
        result = servers.wait_for_query(prom, name, series_count(len(series)))
        stored = servers.series_by_labels(result)
        assert {k: float(v) for k, v in stored.items()} == series, name

    scrapes_before = len(svc.scrapes)
    servers.wait_until(
        lambda: len(svc.scrapes) >= scrapes_before + 2,
        timeout=30,
        what="two more scrapes",
    )
    assert all(s.status == 200 for s in svc.scrapes)
    if flags:
        assert svc.scrapes[-1].content_type.startswith("application/vnd.google")
    samples = servers.wait_for_query(
        prom, 'scrape_samples_scraped{job="aioprometheus"}'
    )
    assert float(samples[0]["value"][1]) == sum(len(s) for s in expected.values())
    for counter in DROPPED_SAMPLE_COUNTERS:
        assert prometheus_own_counter(prom, counter) == 0, counter
