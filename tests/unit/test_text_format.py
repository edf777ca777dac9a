"""Text exposition 0.0.4: exact output for hand-written cases, and round trips
through prometheus_client's parser and `promtool check metrics`."""

import math
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from aioprometheus import Counter, Gauge, Histogram, Registry, Summary, render
from aioprometheus.formats.text import TEXT_CONTENT_TYPE, TextFormatter


def text_of(registry: Registry) -> str:
    return TextFormatter().marshall(registry).decode("utf-8")


def test_exact_counter_and_gauge_output(registry):
    c = Counter(
        "requests_total",
        "Requests\nserved \\ here",
        const_labels={"app": "a"},
        registry=registry,
    )
    c.inc({"path": '/q"x\n\\'})
    g = Gauge("temperature", "Temp", registry=registry)
    g.set({}, 21.5)
    g.set({"room": "b"}, float("-inf"))
    assert text_of(registry) == (
        "# HELP requests_total Requests\\nserved \\\\ here\n"
        "# TYPE requests_total counter\n"
        'requests_total{app="a",path="/q\\"x\\n\\\\"} 1\n'
        "# HELP temperature Temp\n"
        "# TYPE temperature gauge\n"
        "temperature 21.5\n"
        'temperature{room="b"} -inf\n'
    )


def test_collectors_are_sorted_by_name(registry):
    for name in ("zeta", "alpha", "mid"):
        Gauge(name, "doc", registry=registry).set({}, 1)
    names = [
        line.split()[2]
        for line in text_of(registry).splitlines()
        if line.startswith("# TYPE")
    ]
    assert names == ["alpha", "mid", "zeta"]


def test_values_written_as_23_12_wrote_them_without_loss(registry):
    """Float series as repr(float), as aioprometheus 23.12's f"{value}" wrote
    them; integer series as their digits."""
    g = Gauge("g", "doc", registry=registry)
    g.set({"v": "big"}, 2.0**62)
    g.set({"v": "neg"}, -12345678901234.0)
    g.set({"v": "huge"}, 1e300)
    g.set({"v": "tiny"}, 1e-300)
    g.set({"v": "int"}, 2**62)
    text = text_of(registry)
    assert 'g{v="big"} 4.611686018427388e+18\n' in text
    assert 'g{v="neg"} -12345678901234.0\n' in text
    assert 'g{v="huge"} 1e+300\n' in text
    assert 'g{v="int"} 4611686018427387904\n' in text
    values = {
        s.labels["v"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert values == {
        "big": 2.0**62,
        "neg": -12345678901234.0,
        "huge": 1e300,
        "tiny": 1e-300,
        "int": 2.0**62,
    }


def test_histogram_output_order(registry):
    h = Histogram("latency_seconds", "doc", buckets=[0.5, 1], registry=registry)
    h.observe({"r": "x"}, 0.2)
    h.observe({"r": "x"}, 3)
    assert text_of(registry).splitlines()[2:] == [
        'latency_seconds_bucket{le="0.5",r="x"} 1.0',
        'latency_seconds_bucket{le="1.0",r="x"} 1.0',
        'latency_seconds_bucket{le="+Inf",r="x"} 2.0',
        'latency_seconds_count{r="x"} 2.0',
        'latency_seconds_sum{r="x"} 3.2',
    ]


def test_summary_quantiles_in_increasing_order(registry):
    s = Summary("s", "doc", invariants=((0.9, 0.01), (0.1, 0.01)), registry=registry)
    s.observe({}, 1)
    lines = text_of(registry).splitlines()[2:]
    assert lines == [
        's{quantile="0.1"} 1.0',
        's{quantile="0.9"} 1.0',
        "s_count 1",
        "s_sum 1.0",
    ]


def test_labels_sorted_by_name_and_series_label_overrides_const_label(registry):
    c = Counter("c", "doc", const_labels={"env": "prod", "app": "x"}, registry=registry)
    c.inc({"env": "test"})
    c.inc({"zone": "b", "code": "200"})
    text = text_of(registry)
    assert 'c{app="x",env="test"} 1\n' in text
    assert 'c{app="x",code="200",env="prod",zone="b"} 1\n' in text
    s = Summary("s", "doc", const_labels={"z": "1"}, registry=registry)
    s.observe({"a": "2"}, 1)
    assert 's{a="2",quantile="0.5",z="1"} 1.0\n' in text_of(registry)


def test_timestamp_option(registry):
    Gauge("g", "doc", registry=registry).set({}, 1)
    line = TextFormatter(timestamp=True).marshall(registry).decode().splitlines()[2]
    name, value, ts = line.split(" ")
    assert (name, value) == ("g", "1") and int(ts) > 1_600_000_000_000


def test_render_defaults_to_text(registry):
    Gauge("g", "doc", registry=registry).set({}, 1)
    body, headers = render(registry, [])
    assert headers == {"Content-Type": TEXT_CONTENT_TYPE}
    assert body == TextFormatter().marshall(registry)
    with pytest.raises(TypeError):
        render("nope", [])  # type: ignore[arg-type]


label_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
label_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in ("job", "le", "quantile")
)
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**53), 2**53)


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # prometheus_client's parser strips whitespace around HELP: generate none there
    doc=label_text.filter(lambda d: d == d.strip()),
    series=st.lists(
        st.tuples(st.dictionaries(label_names, label_text, max_size=3), numbers),
        max_size=6,
    ),
    observations=st.lists(st.floats(-1e6, 1e6), max_size=20),
)
def test_round_trip_through_prometheus_client_parser(doc, series, observations):
    registry = Registry()
    g = Gauge("prop_gauge", doc, registry=registry)
    expected = {}
    for labels, value in series:
        g.set(labels, value)
        expected[tuple(sorted(labels.items()))] = float(value)
    h = Histogram("prop_hist", doc, buckets=[-1, 0, 2.5], registry=registry)
    for v in observations:
        h.observe({"k": doc}, v)
    families = {f.name: f for f in text_string_to_metric_families(text_of(registry))}

    gauge = families["prop_gauge"]
    assert gauge.documentation == doc
    got = {tuple(sorted(s.labels.items())): s.value for s in gauge.samples}
    assert got.keys() == expected.keys()
    assert all(same(got[k], expected[k]) for k in expected)

    if observations:
        samples = families["prop_hist"].samples
        assert all(s.labels["k"] == doc for s in samples)
        buckets = [s for s in samples if s.name == "prop_hist_bucket"]
        assert [s.labels["le"] for s in buckets] == ["-1.0", "0.0", "2.5", "+Inf"]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts)
        count = next(s.value for s in samples if s.name == "prop_hist_count")
        assert counts[-1] == count == len(observations)
        assert counts[1] == sum(1 for v in observations if v <= 0)


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool (Debian package prometheus) not installed",
)
def test_promtool_accepts_output(registry):
    c = Counter(
        "app_requests_total",
        'Requests with "quotes" and \\ and\nnewline',
        registry=registry,
    )
    c.inc({"path": 'a"b\\c\nd', "user": "ü漢字"})
    Gauge("app_temperature_celsius", "Temperature", registry=registry).set(
        {"room": "x"}, float("nan")
    )
    h = Histogram("app_latency_seconds", "Latency", registry=registry)
    h.observe({"route": "/"}, 0.3)
    s = Summary("app_size_bytes", "Sizes", registry=registry)
    s.observe({"route": "/"}, 3)
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=text_of(registry).encode(),
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@settings(max_examples=2000, deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False)
    | st.builds(
        lambda n, k: n / 10**k, st.integers(-(10**12), 10**12), st.integers(0, 12)
    )
)
def test_sample_values_read_back_exactly_and_are_shortest(value):
    registry = Registry()
    Gauge("g", "doc", registry=registry).set({}, value)
    written = text_of(registry).splitlines()[2].split(" ")[1]
    assert float(written) == value
    if value != math.floor(value):
        # never longer than Python's shortest round-trip repr
        assert len(written) <= len(repr(value))
