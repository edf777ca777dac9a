"""The text encoder against a plain-Python model of the format.

Label texts are read as UTF-8 pointers a chunk of series at a time and the
lines written from them (without the GIL for a snapshot), so the merge of
series and const labels, the place of `le`, escaping, non-ASCII text and
chunk boundaries are checked here, for live metrics and snapshots alike.
"""

from typing import Dict, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioprometheus import Counter, Histogram, Registry, _core

# names on both sides of "le", and shared by const and series labels
NAMES = st.sampled_from(["a", "app", "kind", "l", "le_x", "lf", "path", "z"])
VALUES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12
)
LABEL_SETS = st.lists(
    st.dictionaries(NAMES, VALUES, max_size=4), min_size=0, max_size=600
)
BOUNDS = [0.1, 1.0, 10.0]


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_text(labels: Dict[str, str]) -> str:
    return ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))


def model(
    name: str, const: Dict[str, str], series: List[Dict[str, str]], kind: str
) -> str:
    """What the encoder must write for these series (insertion order)."""
    lines = [f"# HELP {name} doc", f"# TYPE {name} {kind}"]
    for i, labels in enumerate(series):
        merged = {**const, **labels}
        if kind == "counter":
            text = label_text(merged)
            lines.append(f"{name}{{{text}}} {i}" if text else f"{name} {i}")
            continue
        observed = i % 20  # one observation per series
        for bound in [*BOUNDS, float("inf")]:
            count = 1 if observed <= bound else 0
            le = "+Inf" if bound == float("inf") else str(bound)
            text = label_text({**merged, "le": le})
            lines.append(f"{name}_bucket{{{text}}} {float(count)!r}")
        text = label_text(merged)
        braces = f"{{{text}}}" if text else ""
        lines.append(f"{name}_count{braces} {float(count)!r}")
        lines.append(f"{name}_sum{braces} {float(observed)!r}")
    return "\n".join(lines) + "\n"


def unique(label_sets: List[Dict[str, str]]) -> List[Dict[str, str]]:
    seen, result = set(), []
    for labels in label_sets:
        key = tuple(sorted(labels.items()))
        if key not in seen:
            seen.add(key)
            result.append(labels)
    return result


def assert_text_matches_model(series, const):
    """A counter and a histogram holding `series` (series i counted i, and
    observed i % 20) encode as the model says, live and as a snapshot."""
    registry = Registry()
    c = Counter("c_total", "doc", const_labels=const, registry=registry)
    h = Histogram("h", "doc", const_labels=const, buckets=BOUNDS, registry=registry)
    for i, labels in enumerate(series):
        c.add(labels, i)
        h.observe(labels, i % 20)
    expected = (
        model("c_total", const, series, "counter")
        + model("h", const, series, "histogram")
    ).encode()
    assert _core.encode_text([c, h]) == expected
    assert _core.encode_text(_core.snapshot([c, h])) == expected
    for metrics in ([c, h], _core.snapshot([c, h])):  # at the end, or streamed
        parts: List[bytes] = []
        assert _core.encode_text(metrics, -1, parts.append) is None
        assert b"".join(parts) == expected
        assert all(part.endswith(b"\n") for part in parts)  # no line split
    return parts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    series=LABEL_SETS,
    const=st.dictionaries(NAMES, VALUES, max_size=3),
)
def test_counter_and_histogram_text_match_the_model(series, const):
    assert_text_matches_model(unique(series), const)


def test_many_series_across_chunks_match_the_model():
    """More series than one chunk gathers, with non-ASCII and escaped text."""
    series = [
        {"path": f"/ü/{i}", "kind": 'q"\\\n' * (i % 3), "z": "漢" * (i % 5)}
        for i in range(1500)
    ]
    assert_text_matches_model(series, {"app": "x", "kind": "shadowed"})


def test_output_larger_than_its_estimate_comes_in_whole_line_parts():
    """Long label texts overrun the encoder's size estimate many times over:
    a streamed snapshot's output comes in many blocks (never grown by
    copying what was written), and they join into exactly the model's text."""
    series = [
        {"path": f"/{i}" + "ü" * 500 * (i % 7), "kind": 'q"\\\n' * 300 * (i % 3)}
        for i in range(120)
    ]
    parts = assert_text_matches_model(series, {"app": "x" * 2000})
    assert len(parts) > 3


def test_a_snapshot_streams_in_blocks_a_compressor_can_take_as_they_come():
    """Encoding a private snapshot hands its output over in blocks of at
    most 256 KiB as it goes; live metrics are handed over once encoded."""
    c = Counter("c_total", "doc", registry=Registry())
    for i in range(30_000):
        c.add({"path": f"/api/v1/items/{i}", "method": "GET"}, i)
    expected = _core.encode_text([c])
    assert len(expected) > 1_000_000
    streamed: List[bytes] = []
    _core.encode_text(_core.snapshot([c]), -1, streamed.append)
    assert b"".join(streamed) == expected
    assert len(streamed) >= 4
    assert max(len(part) for part in streamed) <= 256 * 1024


def test_a_sink_that_fails_stops_the_encoding_with_its_error():
    """The sink is Python code run mid-walk: when it raises, the encoding
    ends with its error, and the snapshot encodes whole next time."""
    c = Counter("c_total", "doc", registry=Registry())
    for i in range(30_000):
        c.add({"path": f"/api/v1/items/{i}", "method": "GET"}, i)
    snap = _core.snapshot([c])
    taken: List[int] = []

    def failing(part: bytes) -> None:
        taken.append(len(part))
        if len(taken) == 2:
            raise RuntimeError("sink failed")

    with pytest.raises(RuntimeError, match="sink failed"):
        _core.encode_text(snap, -1, failing)
    assert len(taken) == 2
    parts: List[bytes] = []
    _core.encode_text(snap, -1, parts.append)
    assert b"".join(parts) == _core.encode_text([c])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_join_parts_is_bytes_join(parts):
    joined = _core.join_parts(parts)
    assert joined == b"".join(parts)
    if len(parts) == 1:
        assert joined is parts[0]


def test_join_parts_refuses_what_is_not_bytes():
    for bad in ([b"a", bytearray(b"b")], [b"a", "b"], [memoryview(b"a"), b"b"]):
        with pytest.raises(TypeError, match="parts must be bytes"):
            _core.join_parts(bad)
