"""The compiled protobuf encoder is byte-for-byte what the protobuf package emits.

The reference side builds io.prometheus.client.MetricFamily messages with the
protobuf package from the collectors' public API only (name, doc,
const_labels, get_all()) and serialises each with SerializeToString(),
delimited by its varint length. The compiled side is
``BinaryFormatter().marshall(registry)`` / ``_core.encode_protobuf``.
"""

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire import varint

from aioprometheus import Counter, Gauge, Histogram, Registry, Summary, _core, render
from aioprometheus import metrics_pb2 as pb
from aioprometheus.formats.binary import BINARY_CONTENT_TYPE, BinaryFormatter, decode

INF = math.inf
NAN = math.nan


def reference_family(collector, timestamp_ms=None):
    """The MetricFamily client_golang would send for `collector`."""
    if isinstance(collector, Counter):
        kind = pb.COUNTER
    elif isinstance(collector, Gauge):
        kind = pb.GAUGE
    elif isinstance(collector, Histogram):
        kind = pb.HISTOGRAM
    elif isinstance(collector, Summary):
        kind = pb.SUMMARY
    else:
        raise TypeError(collector)
    family = pb.MetricFamily(name=collector.name, help=str(collector.doc), type=kind)
    for labels, value in collector.get_all():
        metric = family.metric.add()
        merged = {k: str(v) for k, v in (collector.const_labels or {}).items()}
        merged.update({k: str(v) for k, v in labels.items()})
        for name in sorted(merged):
            metric.label.add(name=name, value=merged[name])
        if kind == pb.COUNTER:
            metric.counter.value = value
        elif kind == pb.GAUGE:
            metric.gauge.value = value
        elif kind == pb.HISTOGRAM:
            metric.histogram.sample_count = value["count"]
            metric.histogram.sample_sum = value["sum"]
            for bound in sorted(k for k in value if not isinstance(k, str)):
                bucket = metric.histogram.bucket.add()
                bucket.cumulative_count = value[bound]
                bucket.upper_bound = bound
        else:
            metric.summary.sample_count = value["count"]
            metric.summary.sample_sum = value["sum"]
            for phi in sorted(k for k in value if not isinstance(k, str)):
                metric.summary.quantile.add(quantile=phi, value=value[phi])
        if timestamp_ms is not None:
            metric.timestamp_ms = timestamp_ms
    return family


def reference_bytes(collectors, timestamp_ms=None):
    out = bytearray()
    for collector in collectors:
        body = reference_family(collector, timestamp_ms).SerializeToString()
        out += varint(len(body)) + body
    return bytes(out)


def assert_same(registry, timestamp_ms=None):
    collectors = registry.sorted_collectors()
    expected = reference_bytes(collectors, timestamp_ms)
    if timestamp_ms is None:
        got = BinaryFormatter().marshall(registry)
    else:
        got = _core.encode_protobuf(collectors, timestamp_ms)
    if got != expected:  # show where, readably
        i = min(len(got), len(expected))
        for j, (a, b) in enumerate(zip(got, expected)):
            if a != b:
                i = j
                break
        pytest.fail(
            f"bytes differ at {i} (len {len(got)} vs {len(expected)}):\n"
            f"ours {got[max(0, i - 24) : i + 24].hex()}\n"
            f"ref  {expected[max(0, i - 24) : i + 24].hex()}"
        )
    return got


# -- hand-written cases, every kind ------------------------------------------


def test_empty_registry():
    assert assert_same(Registry()) == b""


def test_counter():
    r = Registry()
    c = Counter("requests_total", "Requests served.", registry=r)
    c.inc({})
    c.add({"path": "/", "method": "GET"}, 41)
    c.add({"path": "/ü", "method": "PØST"}, 0.5)
    c.set({"huge": "1"}, 2**64 + 5)
    c.set({"zero": "1"}, 0)
    c.set({"inf": "1"}, INF)
    data = assert_same(r)
    family = decode(data)[0]
    assert family.type == pb.COUNTER
    assert [m.counter.value for m in family.metric] == [1, 41, 0.5, 2.0**64, 0, INF]
    # proto2 presence: a zero counter still carries its value field
    assert family.metric[4].counter.HasField("value")


def test_counter_without_series_is_header_only():
    r = Registry()
    Counter("nothing_total", "", registry=r)
    data = assert_same(r)
    # name, empty help and type COUNTER (0) are all present
    assert data == bytes([19, 0x0A, 13]) + b"nothing_total" + bytes([0x12, 0, 0x18, 0])


def test_gauge_special_values():
    r = Registry()
    g = Gauge("temperature", "Degrees\nwith a newline and \\ backslash", registry=r)
    for i, v in enumerate([NAN, INF, -INF, -0.0, 5e-324, 1.7976931348623157e308, -3]):
        g.set({"i": i}, v)
    g.set(
        {"neg_nan": "1"}, struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000001))[0]
    )
    data = assert_same(r)
    values = [m.gauge.value for m in decode(data)[0].metric]
    assert math.isnan(values[0]) and values[1:3] == [INF, -INF]
    assert math.copysign(1.0, values[3]) == -1.0


def test_const_labels_merge_sorted_and_overridden():
    r = Registry()
    c = Counter(
        "c", "h", const_labels={"zone": "eu", "app": "x", "b": "const"}, registry=r
    )
    c.inc({"b": "series", "a": "1"})
    c.inc({})
    data = assert_same(r)
    labels = [[(lp.name, lp.value) for lp in m.label] for m in decode(data)[0].metric]
    assert labels == [
        [("a", "1"), ("app", "x"), ("b", "series"), ("zone", "eu")],
        [("app", "x"), ("b", "const"), ("zone", "eu")],
    ]


def test_unicode_and_empty_label_values():
    r = Registry()
    g = Gauge("g", "héllo wörld ✓ 😀", registry=r)
    g.set({"emoji": "😀", "empty": "", "cjk": "指标", "quote": 'a"b\\c\nd'}, 1)
    g.set({"int_value": 7}, 2)
    data = assert_same(r)
    family = decode(data)[0]
    assert family.help == "héllo wörld ✓ 😀"
    assert ("emoji", "😀") in [(lp.name, lp.value) for lp in family.metric[0].label]
    assert family.metric[1].label[0].value == "7"


def test_histogram():
    r = Registry()
    h = Histogram("latency_seconds", "Latency.", buckets=[0.1, 0.5, 1, 5], registry=r)
    for v in [0.05, 0.1, 0.2, 0.7, 3, 10, INF]:
        h.observe({"route": "/a"}, v)
    h.observe({}, -1)
    Histogram("empty_hist", "No observations.", registry=r)
    data = assert_same(r)
    family = {f.name: f for f in decode(data)}["latency_seconds"]
    assert family.type == pb.HISTOGRAM
    hist = family.metric[0].histogram
    assert hist.sample_count == 7
    assert [(b.upper_bound, b.cumulative_count) for b in hist.bucket] == [
        (0.1, 2),
        (0.5, 3),
        (1.0, 4),
        (5.0, 5),
        (INF, 7),
    ]


def test_histogram_many_buckets_and_long_labels():
    # metric bodies longer than 127 and 16383 bytes need multi-byte lengths
    r = Registry()
    bounds = [i / 10 for i in range(1, 300)]
    h = Histogram("wide", "many buckets", buckets=bounds, registry=r)
    for i in range(1000):
        h.observe({"k": "v" * 20000}, i / 30)
    h.observe({"k": "short"}, 1)
    assert_same(r)


def test_summary():
    r = Registry()
    s = Summary("rpc_seconds", "RPC latency.", registry=r)
    for v in range(1, 101):
        s.observe({"service": "a"}, v / 100)
    s.observe({}, 2.5)
    Summary("quiet", "no data", registry=r, invariants=((0.9, 0.01), (0.5, 0.05)))
    data = assert_same(r)
    family = {f.name: f for f in decode(data)}["rpc_seconds"]
    assert family.type == pb.SUMMARY
    summary = family.metric[0].summary
    assert summary.sample_count == 100
    assert [q.quantile for q in summary.quantile] == [0.5, 0.9, 0.99]


def test_all_kinds_in_one_registry_sorted_by_name():
    r = Registry()
    Counter("d_total", "counter", registry=r).inc({"x": "1"})
    Gauge("c_gauge", "gauge", registry=r).set({"x": "1"}, -2.5)
    Histogram("b_hist", "histogram", registry=r).observe({"x": "1"}, 0.3)
    Summary("a_summary", "summary", registry=r).observe({"x": "1"}, 0.3)
    data = assert_same(r)
    assert [f.name for f in decode(data)] == [
        "a_summary",
        "b_hist",
        "c_gauge",
        "d_total",
    ]


@pytest.mark.parametrize("ts", [0, 1, 1_700_000_000_123, -1, -(2**63), 2**63 - 1])
def test_timestamp_ms(ts):
    r = Registry()
    Counter("c", "h", registry=r).inc({"a": "b"})
    Gauge("g", "h", registry=r).set({}, 3)
    Histogram("h", "h", registry=r, buckets=[1]).observe({}, 0.5)
    Summary("s", "h", registry=r).observe({}, 0.5)
    data = assert_same(r, ts)
    assert all(m.timestamp_ms == ts for f in decode(data) for m in f.metric)


def test_timestamp_out_of_range():
    with pytest.raises(OverflowError):
        _core.encode_protobuf([], 2**63)


def test_formatter_timestamp_flag():
    r = Registry()
    Counter("c", "h", registry=r).inc({})
    (family,) = decode(BinaryFormatter(timestamp=True).marshall(r))
    assert family.metric[0].HasField("timestamp_ms")
    (family,) = decode(BinaryFormatter().marshall(r))
    assert not family.metric[0].HasField("timestamp_ms")


def test_render_answers_protobuf_for_prometheus_native_histograms_header():
    accept = (
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
        "encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,"
        "application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    r = Registry()
    Counter("c", "h", registry=r).inc({"a": "b"})
    body, headers = render(r, [accept])
    assert headers == {"Content-Type": BINARY_CONTENT_TYPE}
    assert body == reference_bytes(r.sorted_collectors())
    body, headers = render(r, [])
    assert headers["Content-Type"].startswith("text/plain")


def test_not_encodable():
    with pytest.raises(TypeError):
        _core.encode_protobuf([object()])


# -- generated registries -------------------------------------------------------

metric_names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,30}", fullmatch=True)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True).filter(
    lambda n: not n.startswith("__") and n not in ("job", "le", "quantile")
)
unicode_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40
)
label_values = st.one_of(unicode_text, st.integers(-(2**70), 2**70))
label_sets = st.dictionaries(label_names, label_values, max_size=4)
any_double = st.floats(allow_nan=True, allow_infinity=True)
non_negative = st.one_of(
    st.floats(min_value=0.0, allow_infinity=True),
    st.integers(0, 2**80),
)


@st.composite
def registries(draw):
    r = Registry()
    names = draw(st.lists(metric_names, unique=True, max_size=6))
    for name in names:
        kind = draw(st.sampled_from(["counter", "gauge", "histogram", "summary"]))
        doc = draw(unicode_text)
        const = draw(st.dictionaries(label_names, unicode_text, max_size=3))
        series = draw(st.lists(label_sets, max_size=5))
        if kind == "counter":
            m = Counter(name, doc, const_labels=const, registry=r)
            for labels in series:
                m.add(labels, draw(non_negative))
        elif kind == "gauge":
            m = Gauge(name, doc, const_labels=const, registry=r)
            for labels in series:
                m.set(labels, draw(any_double))
        elif kind == "histogram":
            bounds = draw(
                st.lists(
                    st.floats(allow_nan=False, allow_infinity=False),
                    min_size=1,
                    max_size=8,
                    unique=True,
                ).map(sorted)
            )
            m = Histogram(name, doc, const_labels=const, registry=r, buckets=bounds)
            for labels in series:
                for v in draw(st.lists(any_double, max_size=8)):
                    m.observe(labels, v)
        else:
            m = Summary(name, doc, const_labels=const, registry=r)
            for labels in series:
                for v in draw(
                    st.lists(
                        st.floats(-1e12, 1e12, allow_nan=False), min_size=1, max_size=20
                    )
                ):
                    m.observe(labels, v)
    return r


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(registries())
def test_generated_registries_byte_equal(registry):
    data = assert_same(registry)
    # and the stream decodes into what the reference bytes decode into
    # (compared re-serialised: the pure-Python backend canonicalises NaN
    # payloads when parsing, so compare decode(ours) with decode(reference))
    assert [f.SerializeToString() for f in decode(data)] == [
        pb.MetricFamily.FromString(
            reference_family(c).SerializeToString()
        ).SerializeToString()
        for c in registry.sorted_collectors()
    ]


@settings(max_examples=100, deadline=None)
@given(registries(), st.integers(-(2**63), 2**63 - 1))
def test_generated_registries_with_timestamp(registry, ts):
    assert_same(registry, ts)
