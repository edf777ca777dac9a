"""A real Prometheus 2.42 with exemplar storage keeps the exemplars a Service
exposes (OpenMetrics, its default), with their trace ids, values and times.

(Prometheus 2.42 stores an exemplar label value as written, escapes and all:
`a"b`, written `a\"b` as OpenMetrics requires, comes back as `a\"b`. Trace
ids have no such characters; the ones here do not either.)"""

import time
import urllib.parse

import servers

from aioprometheus import Counter, Histogram, Registry


def query_exemplars(prom, promql):
    start, end = time.time() - 3600, time.time() + 60
    params = urllib.parse.urlencode({"query": promql, "start": start, "end": end})
    response = servers.http_get(f"{prom.api_url}/query_exemplars?{params}")
    assert response.status == 200, response.body
    return response.json()["data"]


def test_prometheus_stores_counter_and_bucket_exemplars(
    prometheus_factory, service_thread_factory
):
    registry = Registry()
    requests = Counter("ex_requests_total", "Requests.", registry=registry)
    latency = Histogram(
        "ex_latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=registry
    )
    before = time.time()
    requests.inc({"path": "/a"}, exemplar={"trace_id": "abc-123"})
    requests.add({"path": "/b"}, 4, exemplar={"trace_id": "def456", "span": "s1"})
    latency.observe({"path": "/a"}, 0.5, exemplar={"trace_id": "slow/ü"})
    after = time.time()
    svc = service_thread_factory(registry)
    prom = prometheus_factory(
        [svc.address], extra_flags=["--enable-feature=exemplar-storage"]
    )
    servers.wait_for_query(prom, "ex_latency_seconds_count")

    def stored(promql, count):
        def attempt():
            data = query_exemplars(prom, promql)
            return data if sum(len(s["exemplars"]) for s in data) >= count else None

        return servers.wait_until(attempt, 30, what=f"exemplars of {promql}")

    by_path = {
        s["seriesLabels"]["path"]: s["exemplars"]
        for s in stored("ex_requests_total", 2)
    }
    assert [e["labels"] for e in by_path["/a"]] == [{"trace_id": "abc-123"}]
    assert [e["labels"] for e in by_path["/b"]] == [
        {"trace_id": "def456", "span": "s1"}
    ]
    assert float(by_path["/a"][0]["value"]) == 1.0
    assert float(by_path["/b"][0]["value"]) == 4.0
    for exemplars in by_path.values():
        assert before - 0.01 <= float(exemplars[0]["timestamp"]) <= after + 0.01

    buckets = stored("ex_latency_seconds_bucket", 1)
    assert len(buckets) == 1
    assert buckets[0]["seriesLabels"]["le"] == "1.0"
    assert buckets[0]["exemplars"][0]["labels"] == {"trace_id": "slow/ü"}
    assert float(buckets[0]["exemplars"][0]["value"]) == 0.5
    assert svc.scrapes[-1].content_type.startswith("application/openmetrics-text")
