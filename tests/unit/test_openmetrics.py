"""OpenMetrics 1.0 text: what prometheus_client's strict OpenMetrics parser
reads back, the same samples as text 0.0.4, and the family rules (names,
types, UNIT, info/stateset, EOF)."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)

from aioprometheus import (
    Collector,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Registry,
    Summary,
    _core,
    render,
)
from aioprometheus.formats.openmetrics import (
    OPENMETRICS_CONTENT_TYPE,
    OpenMetricsFormatter,
)
from aioprometheus.renderer import scrape


def openmetrics_of(registry):
    return OpenMetricsFormatter().marshall(registry).decode()


def families(registry):
    return {f.name: f for f in parse_openmetrics(openmetrics_of(registry))}


def samples(parsed):
    """{(sample name, sorted labels): value} of parsed families; NaN as a str."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): (
            "NaN" if math.isnan(s.value) else float(s.value)
        )
        for family in parsed
        for s in family.samples
    }


def test_families_are_named_and_typed_as_openmetrics_says():
    registry = Registry()
    Counter("jobs_total", "Jobs.", registry=registry).inc({})
    Counter("jobs_legacy", "Jobs, named as 23.12 allowed.", registry=registry).inc({})
    Gauge("room_celsius", "Temperature.", unit="celsius", registry=registry).set({}, 1)
    Histogram("lat_seconds", "L.", unit="seconds", registry=registry).observe({}, 1)
    Summary("size_bytes", "S.", unit="bytes", registry=registry).observe({}, 3)
    Info("build", "Build.", registry=registry).set({}, {"version": "1"})
    Enum("mode", "Mode.", states=["a", "b"], registry=registry).set({}, "b")
    parsed = families(registry)
    assert {name: (f.type, f.unit) for name, f in parsed.items()} == {
        "jobs": ("counter", ""),
        "jobs_legacy": ("unknown", ""),  # keeps its series name (see below)
        "room_celsius": ("gauge", "celsius"),
        "lat_seconds": ("histogram", "seconds"),
        "size_bytes": ("summary", "bytes"),
        "build": ("info", ""),
        "mode": ("stateset", ""),
    }
    text = openmetrics_of(registry)
    assert text.endswith("\n# EOF\n") and text.count("# EOF") == 1
    assert "# UNIT lat_seconds seconds\n" in text


def sample_lines(text):
    """[(series, value)] of the sample lines: the text before the last space
    exactly, the value as a float (NaN as a str)."""
    out = []
    for line in text.split("\n"):
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            number = float(value)
            out.append((series, "NaN" if math.isnan(number) else number))
    return out


def test_the_same_sample_lines_as_text_0_0_4():
    """Prometheus stores the same series whichever of the two it gets."""
    registry = Registry()
    Counter("a_total", "A.", registry=registry).add({"x": "1"}, 2.5)
    Counter("b", "B.", registry=registry).add({"x": 'q"\\\n'}, 3)
    Gauge("c", "C.", registry=registry).set({"y": "ü"}, -math.inf)
    Gauge("c2", "C2.", registry=registry).set({}, math.nan)
    Histogram("d", "D.", buckets=[0.5, 2], registry=registry).observe({}, 1)
    Summary("e", "E.", registry=registry).observe({}, 4)
    Info("f", "F.", registry=registry).set({}, {"v": "1"})
    Enum("g", "G.", states=["on", "off"], registry=registry).set({}, "on")
    text = render(registry, ["text/plain"])[0].decode()
    openmetrics = openmetrics_of(registry)
    assert sample_lines(openmetrics) == sample_lines(text)
    assert '"} -Inf\n' in openmetrics and "c2 NaN\n" in openmetrics
    assert '"} -inf\n' in text  # as aioprometheus 23.12 wrote it


label_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
label_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in ("job", "le", "quantile")
)
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**53), 2**53)
label_sets = st.dictionaries(label_names, label_text, max_size=3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=label_text.filter(lambda d: d == d.strip()),
    gauges=st.lists(st.tuples(label_sets, numbers), max_size=5),
    counts=st.lists(
        st.tuples(label_sets, st.floats(0, 1e12) | st.integers(0, 2**53)), max_size=5
    ),
    # OpenMetrics forbids negative histogram/summary sums and quantiles, and
    # a _sum beside negative bucket bounds (the parser enforces it);
    # aioprometheus writes what was observed, as client_golang does, and
    # Prometheus stores it
    observations=st.lists(st.tuples(label_sets, st.floats(0, 1e6)), max_size=12),
)
def test_round_trip_through_prometheus_clients_openmetrics_parser(
    doc, gauges, counts, observations
):
    registry = Registry()
    gauge = Gauge("prop_gauge", doc, registry=registry)
    counter = Counter("prop_events_total", doc, registry=registry)
    histogram = Histogram("prop_hist", doc, buckets=[0, 2.5, 10], registry=registry)
    summary = Summary("prop_summary", doc, registry=registry)
    for labels, value in gauges:
        gauge.set(labels, value)
    for labels, value in counts:
        counter.add(labels, value)
    for labels, value in observations:
        histogram.observe(labels, value)
        summary.observe(labels, value)
    text = openmetrics_of(registry)
    parsed = list(parse_openmetrics(text))  # strict: raises on any violation
    assert all(f.documentation == doc for f in parsed)
    assert sample_lines(text) == sample_lines(render(registry, [])[0].decode())
    got = {
        labels: value
        for (name, labels), value in samples(parsed).items()
        if name == "prop_gauge"
    }
    assert got.keys() == {tuple(sorted(labels.items())) for labels, _ in gauges}
    for labels, value in got.items():
        stored = gauge.get(dict(labels))
        assert value == ("NaN" if math.isnan(stored) else stored)


def test_collectors_read_through_python_follow_the_same_rules():
    class Computed(Counter):
        def get_all(self):
            return [({"x": "1"}, 5), ({"x": "2"}, math.inf)]

    registry = Registry()
    Computed("computed_total", 'Computed "here".', registry=registry)
    Counter("compiled_total", "Compiled.", registry=registry).inc({"x": "1"})
    parsed = families(registry)
    assert parsed["computed"].type == "counter"
    assert parsed["computed"].documentation == 'Computed "here".'
    assert samples([parsed["computed"]]) == {
        ("computed_total", (("x", "1"),)): 5.0,
        ("computed_total", (("x", "2"),)): math.inf,
    }
    assert 'computed_total{x="2"} +Inf\n' in openmetrics_of(registry)


def test_snapshot_encoding_matches_the_live_encoding():
    registry = Registry()
    Counter("n_total", "N.", registry=registry).add({"k": "v"}, 3)
    Histogram("h_seconds", "H.", unit="seconds", registry=registry).observe({}, 2)
    formatter = OpenMetricsFormatter()
    assert formatter.prepare(registry)() == formatter.marshall(registry)


def test_scrape_negotiates_openmetrics_with_prometheus_default_accept():
    import asyncio

    registry = Registry()
    Counter("n_total", "N.", registry=registry).inc({})
    accept = (
        "application/openmetrics-text;version=1.0.0,"
        "application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    body, headers = asyncio.run(scrape(registry, [accept], []))
    assert headers["Content-Type"] == OPENMETRICS_CONTENT_TYPE
    assert body == OpenMetricsFormatter().marshall(registry)


@pytest.mark.parametrize(
    "cls, name, unit, error",
    [
        (Gauge, "room_celsius", "kelvin", "must end with '_kelvin'"),
        (Counter, "jobs_total", "seconds", "must end with '_seconds'"),
        (Gauge, "x_bytes", "by tes", "Invalid unit"),
        (Gauge, "x_bytes", 7, "Invalid unit"),
        (Collector, "x_bytes", "bytes", "no unit"),
    ],
)
def test_bad_units_are_refused_and_nothing_is_registered(cls, name, unit, error):
    registry = Registry()
    with pytest.raises(ValueError, match=error):
        cls(name, "Doc.", unit=unit, registry=registry)
    assert registry.get_all() == []


def test_a_counter_unit_goes_before_total():
    registry = Registry()
    Counter("busy_seconds_total", "Busy.", unit="seconds", registry=registry).inc({})
    assert families(registry)["busy_seconds"].unit == "seconds"


def test_units_survive_pickling():
    import pickle

    gauge = Gauge("room_celsius", "T.", unit="celsius", registry=Registry())
    info = Info("build", "B.", registry=Registry())
    assert pickle.loads(pickle.dumps(gauge)).unit == "celsius"
    assert _core.openmetrics_family(pickle.loads(pickle.dumps(info))) == (
        "build",
        "info",
    )


def created_samples(registry):
    """{(sample name, sorted labels): value} of the _created samples."""
    return {
        key: value
        for key, value in samples(parse_openmetrics(openmetrics_of(registry))).items()
        if key[0].endswith("_created")
    }


def test_no_created_samples_unless_the_registry_asks():
    registry = Registry()
    Counter("n_total", "N.", registry=registry).inc({})
    Histogram("h", "H.", registry=registry).observe({}, 1)
    assert "_created" not in openmetrics_of(registry)


def test_created_samples_say_when_each_series_was_created():
    import time

    registry = Registry(created_samples=True)
    counter = Counter("n_total", "N.", registry=registry)
    histogram = Histogram("h", "H.", buckets=[1], registry=registry)
    summary = Summary("s", "S.", registry=registry)
    Counter("legacy", "No _total: unknown, no _created.", registry=registry).inc({})
    Gauge("g", "G.", registry=registry).set({}, 1)
    made = {}
    for key in "abc":
        before = time.time()
        counter.inc({"k": key})
        histogram.observe({"k": key}, 0.5)
        summary.observe({"k": key}, 2)
        made[key] = (before, time.time())
        time.sleep(0.01)
    counter.inc({"k": "a"})  # later updates do not move it
    counter._remove({"k": "a"})  # c moves into a's place, with its time
    created = created_samples(registry)
    assert {name for name, _ in created} == {"n_created", "h_created", "s_created"}
    for (name, labels), value in created.items():
        before, after = made[dict(labels)["k"]]
        assert before - 0.0005 <= value <= after + 0.0005, (name, labels)
    assert (("n_created", (("k", "a"),))) not in created
    assert encoded_equal_live_and_snapshot(registry)


def encoded_equal_live_and_snapshot(registry):
    formatter = OpenMetricsFormatter()
    return formatter.prepare(registry)() == formatter.marshall(registry)


def test_output_over_many_blocks_with_exemplars_parses_whole():
    """Long label texts overrun the encoder's size estimate, so the output
    grows by new blocks, some starting in the middle of a line that an
    exemplar extends: the parts join into one exposition the strict parser
    reads back exactly."""
    registry = Registry()
    counter = Counter("big_events_total", "doc", registry=registry)
    histogram = Histogram("big_hist", "doc", buckets=[1, 10], registry=registry)
    expected = {}
    for i in range(80):
        labels = {"path": f"/{i}" + 'ü"\\\n' * 300 * (i % 4)}
        counter.add(labels, i, exemplar={"trace_id": f"t{i}"})
        histogram.observe(labels, i % 15, exemplar={"trace_id": f"h{i}"})
        expected[labels["path"]] = i
    parts = []
    _core.encode_openmetrics(_core.snapshot([counter, histogram]), False, parts.append)
    assert len(parts) > 3
    text = b"".join(parts).decode() + "# EOF\n"
    assert text == openmetrics_of(registry)
    parsed = {f.name: f for f in parse_openmetrics(text)}
    totals = [s for s in parsed["big_events"].samples if s.name == "big_events_total"]
    assert {s.labels["path"]: s.value for s in totals} == expected
    assert {s.labels["path"]: s.exemplar.labels["trace_id"] for s in totals} == {
        path: f"t{i}" for path, i in expected.items()
    }
    counts = [s for s in parsed["big_hist"].samples if s.name == "big_hist_count"]
    assert len(counts) == 80 and all(s.value == 1 for s in counts)
