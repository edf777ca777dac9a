"""Pusher against a real Pushgateway: add (POST), replace (PUT), delete
(DELETE), grouping keys needing the @base64 form, text and protobuf bodies,
failures."""

import asyncio
import itertools
import urllib.parse

import pytest
import servers
from prometheus_client.parser import text_string_to_metric_families

from aioprometheus.collectors import Counter, Gauge, Histogram, Registry, Summary
from aioprometheus.pusher import Pusher, PushError


def _protobuf_available() -> bool:
    """True once the binary formatter and its compiled encoder are wired in."""
    try:
        from aioprometheus import _core
        from aioprometheus.formats.binary import BinaryFormatter  # noqa: F401
    except ImportError:
        return False
    return hasattr(_core, "encode_protobuf")


FORMATS = [
    "text",
    pytest.param(
        "protobuf",
        marks=pytest.mark.skipif(
            not _protobuf_available(), reason="formats.binary not available yet"
        ),
    ),
]

_jobs = itertools.count()


def unique_job(prefix: str) -> str:
    return f"{prefix}_{next(_jobs)}"


def gateway_samples(gw, name):
    """{frozenset(labels): value} of the samples called ``name`` that the
    Pushgateway exposes on its own /metrics."""
    out = {}
    for family in text_string_to_metric_families(gw.metrics_text()):
        for sample in family.samples:
            if sample.name == name:
                out[frozenset(sample.labels.items())] = sample.value
    return out


def find_group(gw, labels):
    for group in gw.api_metrics():
        if group["labels"] == labels:
            return group
    return None


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("body_format", FORMATS)
def test_replace_add_delete(pushgateway, body_format):
    job = unique_job(f"batch_{body_format}")
    gk = {"instance": "host-1"}
    group_labels = {"job": job, "instance": "host-1"}
    pusher = Pusher(job, pushgateway.base_url, grouping_key=gk, body_format=body_format)

    first = Registry()
    c = Counter("pg_jobs_total", "Jobs run.", registry=first)
    g = Gauge("pg_last_duration_seconds", "Duration.", registry=first)
    c.add({"kind": "full"}, 3)
    g.set({}, 12.5)
    h = Histogram("pg_sizes", "Sizes.", registry=first, buckets=(1.0, 10.0))
    for v in (0.5, 5.0, 50.0):
        h.observe({}, v)
    s = Summary("pg_latency", "Latency.", registry=first)
    for v in (1.0, 2.0, 3.0):
        s.observe({}, v)

    # PUT replaces the group.
    resp = run(pusher.replace(first, timeout=10))
    assert 200 <= resp.status < 300
    samples = gateway_samples(pushgateway, "pg_jobs_total")
    assert samples[frozenset({**group_labels, "kind": "full"}.items())] == 3
    assert (
        gateway_samples(pushgateway, "pg_last_duration_seconds")[
            frozenset(group_labels.items())
        ]
        == 12.5
    )
    assert (
        gateway_samples(pushgateway, "pg_sizes_count")[frozenset(group_labels.items())]
        == 3
    )
    buckets = {
        float(dict(k)["le"]): v
        for k, v in gateway_samples(pushgateway, "pg_sizes_bucket").items()
        if dict(k)["job"] == job
    }
    assert buckets == {1.0: 1, 10.0: 2, float("inf"): 3}
    assert (
        gateway_samples(pushgateway, "pg_latency_sum")[frozenset(group_labels.items())]
        == 6
    )
    group = find_group(pushgateway, group_labels)
    assert group is not None
    assert "pg_jobs_total" in group and "pg_latency" in group

    # POST only replaces the metrics with the names pushed.
    second = Registry()
    Gauge("pg_last_duration_seconds", "Duration.", registry=second).set({}, 99)
    Gauge("pg_extra", "Only in the second push.", registry=second).set({}, 1)
    run(pusher.add(second, timeout=10))
    assert (
        gateway_samples(pushgateway, "pg_jobs_total")[
            frozenset({**group_labels, "kind": "full"}.items())
        ]
        == 3
    )
    assert (
        gateway_samples(pushgateway, "pg_last_duration_seconds")[
            frozenset(group_labels.items())
        ]
        == 99
    )
    assert frozenset(group_labels.items()) in gateway_samples(pushgateway, "pg_extra")

    # PUT with the second registry drops what it does not contain.
    run(pusher.replace(second, timeout=10))
    assert not any(
        dict(k).get("job") == job for k in gateway_samples(pushgateway, "pg_jobs_total")
    )
    group = find_group(pushgateway, group_labels)
    assert group is not None and "pg_jobs_total" not in group and "pg_extra" in group

    # DELETE removes the group.
    run(pusher.delete(second, timeout=10))
    assert find_group(pushgateway, group_labels) is None
    assert not any(
        dict(k).get("job") == job for k in gateway_samples(pushgateway, "pg_extra")
    )


@pytest.mark.parametrize("body_format", FORMATS)
@pytest.mark.parametrize(
    "value",
    ["a/b/c", "", "with space+plus%percent", "ünï/cødé", "..", ".", "plain-1.2_x~"],
)
def test_grouping_key_values_arrive_exactly(pushgateway, body_format, value):
    job = unique_job("gk")
    pusher = Pusher(
        job, pushgateway.base_url, grouping_key={"path": value}, body_format=body_format
    )
    registry = Registry()
    Gauge("pg_grouped", "Grouped.", registry=registry).set({}, 5)
    run(pusher.replace(registry, timeout=10))
    # The gateway keeps an empty grouping label as a label with value "".
    expected = {"job": job, "path": value}
    group = find_group(pushgateway, expected)
    assert group is not None, [g["labels"] for g in pushgateway.api_metrics()]
    run(pusher.delete(registry, timeout=10))
    assert find_group(pushgateway, expected) is None


def test_job_name_with_slash(pushgateway):
    job = unique_job("a/b")
    pusher = Pusher(job, pushgateway.base_url)
    registry = Registry()
    Counter("pg_slash_total", "x", registry=registry).inc({})
    run(pusher.replace(registry, timeout=10))
    assert find_group(pushgateway, {"job": job}) is not None
    run(pusher.delete(registry, timeout=10))


@pytest.mark.parametrize("body_format", FORMATS)
def test_label_values_survive_push(pushgateway, body_format):
    job = unique_job(f"labels_{body_format}")
    tricky = 'q"uote back\\slash new\nline ünï ✓'
    registry = Registry()
    Counter("pg_tricky_total", "x", registry=registry).add({"v": tricky}, 2)
    pusher = Pusher(job, pushgateway.base_url, body_format=body_format)
    run(pusher.replace(registry, timeout=10))
    # The gateway adds instance="" to groups pushed without an instance.
    labels = {"job": job, "instance": "", "v": tricky}
    samples = gateway_samples(pushgateway, "pg_tricky_total")
    assert samples[frozenset(labels.items())] == 2
    group = find_group(pushgateway, {"job": job})
    assert group["pg_tricky_total"]["metrics"] == [{"labels": labels, "value": "2"}]
    run(pusher.delete(registry, timeout=10))


def test_rejected_push_raises(pushgateway):
    """The gateway answers 400 for a push inconsistent with another group:
    the pusher raises PushError with the status, the registry is unchanged."""
    registry_a = Registry()
    Counter("pg_conflict", "x", registry=registry_a).inc({})
    run(Pusher(unique_job("conflict_a"), pushgateway.base_url).replace(registry_a))

    registry_b = Registry()
    gauge = Gauge("pg_conflict", "x", registry=registry_b)
    gauge.set({}, 3)
    before = registry_b.get("pg_conflict").get_all()
    with pytest.raises(PushError) as info:
        run(Pusher(unique_job("conflict_b"), pushgateway.base_url).replace(registry_b))
    assert info.value.status == 400
    assert "400" in str(info.value)
    assert registry_b.get("pg_conflict").get_all() == before


def test_dead_gateway_raises(tmp_path):
    port = servers.free_port()  # nothing listens there
    registry = Registry()
    c = Counter("pg_dead_total", "x", registry=registry)
    c.inc({})
    pusher = Pusher("dead", f"http://127.0.0.1:{port}")
    for method in (pusher.add, pusher.replace, pusher.delete):
        with pytest.raises(PushError) as info:
            run(method(registry, timeout=5))
        assert f"127.0.0.1:{port}" in str(info.value)
    assert c.get({}) == 1


def push_value(gw, job, grouping_key, value):
    registry = Registry()
    Gauge("pg_newline_probe", "Which push this is.", registry=registry).set({}, value)
    run(Pusher(job, gw.base_url, grouping_key=grouping_key).replace(registry))


def probe_values(gw, job):
    """{instance label: value} of pg_newline_probe for ``job``."""
    return {
        dict(labels)["instance"]: value
        for labels, value in gateway_samples(gw, "pg_newline_probe").items()
        if dict(labels)["job"] == job
    }


def test_newline_in_grouping_value_is_its_own_group(pushgateway):
    """'host\\n' and 'host' are two groups: pushing one (PUT replaces the
    whole group) leaves the other's metrics in place."""
    job = unique_job("newline")
    push_value(pushgateway, job, {"instance": "host"}, 1)
    push_value(pushgateway, job, {"instance": "host\n"}, 2)
    assert probe_values(pushgateway, job) == {"host": 1, "host\n": 2}
    push_value(pushgateway, job, {"instance": "host"}, 3)
    assert probe_values(pushgateway, job) == {"host": 3, "host\n": 2}
    assert find_group(pushgateway, {"job": job, "instance": "host\n"}) is not None


def test_newline_in_job_name_is_its_own_job(pushgateway):
    job = unique_job("job")
    for name, value in ((job, 1), (job + "\n", 2)):
        push_value(pushgateway, name, {"instance": "i"}, value)
    samples = gateway_samples(pushgateway, "pg_newline_probe")
    assert samples[frozenset({"job": job, "instance": "i"}.items())] == 1
    assert samples[frozenset({"job": job + "\n", "instance": "i"}.items())] == 2
    run(
        Pusher(
            job + "\n", pushgateway.base_url, grouping_key={"instance": "i"}
        ).delete()
    )
    assert find_group(pushgateway, {"job": job, "instance": "i"}) is not None
    assert find_group(pushgateway, {"job": job + "\n", "instance": "i"}) is None


@pytest.mark.parametrize("name", ["a", "_a", "a1", "A_b", "__a", "1a", "a-b", "a\n"])
def test_grouping_key_names_rejected_exactly_when_the_gateway_would(pushgateway, name):
    """Pusher refuses at construction exactly the grouping-key names that the
    Pushgateway would answer 400 for (asked directly, name percent-encoded)."""
    job = unique_job("names")
    raw = servers.http_request(
        f"{pushgateway.base_url}/metrics/job/{job}/{urllib.parse.quote(name)}/v",
        method="PUT",
        data=b"pg_name_probe 1\n",
    )
    assert raw.status in (200, 400), raw
    try:
        Pusher(job, pushgateway.base_url, grouping_key={name: "v"})
    except ValueError:
        assert raw.status == 400
    else:
        assert raw.status == 200
