"""decode()/iter_decode(): delimited MetricFamily streams back into messages."""

import math
import os
import subprocess
import sys

import pytest
from wire import varint

from aioprometheus import Counter, Gauge, Histogram, Registry, Summary
from aioprometheus import metrics_pb2 as pb
from aioprometheus.formats.binary import (
    BinaryFormatter,
    DecodeError,
    decode,
    iter_decode,
)


def sample_registry():
    r = Registry()
    Counter("jobs_total", "Jobs done.", const_labels={"app": "a"}, registry=r).add(
        {"queue": "q1"}, 3
    )
    Gauge("temp", "Temperature.", registry=r).set({"room": "kitchen"}, -1.5)
    h = Histogram("lat", "Latency.", buckets=[1, 2], registry=r)
    h.observe({}, 0.5)
    h.observe({}, 1.5)
    h.observe({}, 99)
    s = Summary("size", "Sizes.", registry=r)
    for v in (1, 2, 3):
        s.observe({"kind": "x"}, v)
    return r


def test_round_trip_values():
    families = {
        f.name: f for f in decode(BinaryFormatter().marshall(sample_registry()))
    }
    assert sorted(families) == ["jobs_total", "lat", "size", "temp"]

    jobs = families["jobs_total"]
    assert jobs.help == "Jobs done." and jobs.type == pb.COUNTER
    assert [(lp.name, lp.value) for lp in jobs.metric[0].label] == [
        ("app", "a"),
        ("queue", "q1"),
    ]
    assert jobs.metric[0].counter.value == 3

    assert families["temp"].metric[0].gauge.value == -1.5

    lat = families["lat"].metric[0].histogram
    assert (lat.sample_count, lat.sample_sum) == (3, 101.0)
    assert [(b.upper_bound, b.cumulative_count) for b in lat.bucket] == [
        (1.0, 1),
        (2.0, 2),
        (math.inf, 3),
    ]

    size = families["size"].metric[0].summary
    assert (size.sample_count, size.sample_sum) == (3, 6.0)
    assert [q.quantile for q in size.quantile] == [0.5, 0.9, 0.99]
    assert all(1 <= q.value <= 3 for q in size.quantile)


def test_reencoding_the_decoded_messages_gives_the_same_stream():
    data = BinaryFormatter().marshall(sample_registry())
    again = b""
    for family in decode(data):
        body = family.SerializeToString()
        again += varint(len(body)) + body
    assert again == data


def test_empty_stream():
    assert decode(b"") == []


def test_accepts_bytearray_and_memoryview():
    data = BinaryFormatter().marshall(sample_registry())
    assert [f.name for f in decode(bytearray(data))] == [f.name for f in decode(data)]
    assert len(list(iter_decode(memoryview(data)))) == 4


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",  # an empty family
        bytes(1000),  # a thousand of them
        b"\x03\x12\x01h",  # only a HELP
        b"\x05\x0a\x00\x12\x01h",  # a name set to ""
        b"\x03\x0a\x01a\x00",  # a named family, then an empty one
    ],
)
def test_family_without_a_name(data):
    with pytest.raises(DecodeError, match="has no name"):
        decode(data)
    with pytest.raises(DecodeError, match="has no name"):
        list(iter_decode(data))


@pytest.mark.parametrize(
    "data",
    [
        b"\x05abc",  # length beyond the end
        b"\x80",  # length varint cut short
        b"\xff" * 11,  # length varint too long
        b"\x02\x0a",  # body cut short inside a field
        b"\x03\x0a\x05a",  # string longer than its message
    ],
)
def test_malformed(data):
    with pytest.raises(DecodeError):
        decode(data)


def test_truncated_real_stream():
    data = BinaryFormatter().marshall(sample_registry())
    with pytest.raises(DecodeError):
        decode(data[:-1])
    # DecodeError is a ValueError, so callers can catch either
    with pytest.raises(ValueError):
        decode(data[:-3])


def test_bad_family_is_reported_with_its_offset():
    good = BinaryFormatter().marshall(sample_registry())
    bad = b"\x05\x0a\x05abc"  # the name is longer than its message
    for stream in (decode, lambda data: list(iter_decode(data))):
        with pytest.raises(DecodeError, match=f"offset {len(good)}:"):
            stream(good + bad + good)


def test_iter_decode_and_decode_agree():
    data = BinaryFormatter().marshall(sample_registry()) * 3
    assert decode(data) == list(iter_decode(data))
    assert [f.name for f in decode(data)] == ["jobs_total", "lat", "size", "temp"] * 3


# ------------------------------------------------------- hostile input memory

# Measured in a fresh interpreter: the peak resident size while decoding
# (the kernel's high-water mark, reset once the input is loaded) above the
# size before. tracemalloc would miss most of it, since the protobuf runtime
# (upb) allocates messages with C malloc.
_MEASURE = """
import sys
from aioprometheus.formats.binary import DecodeError, decode

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

decode(b"\\x03\\x0a\\x01a")  # protobuf and the stream class loaded
with open(sys.argv[1], "rb") as f:
    data = f.read()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the high-water mark starts again from here
before = status("VmRSS")
try:
    outcome = str(len(decode(data)))
except DecodeError:
    outcome = "DecodeError"
print(outcome, status("VmHWM") - before)
"""

_SIZE = 1 << 20


def _frame(body):
    return varint(len(body)) + body


def _field(tag, body):
    return bytes([tag]) + varint(len(body)) + body


# Each about 1 MB; the family "a" is b"\x0a\x01a" (field 1, one byte).
HOSTILE = {
    # one empty (nameless) family per byte: refused at the first
    "zeros": lambda: bytes(_SIZE),
    # the smallest named families, 4 bytes each: the worst case
    "named families": lambda: _frame(b"\x0a\x01a") * (_SIZE // 4),
    # as many, then a length prefix cut short
    "truncated varint": lambda: _frame(b"\x0a\x01a") * (_SIZE // 4) + b"\x80",
    # as many, then a family that does not parse
    "bad last family": lambda: _frame(b"\x0a\x01a") * (_SIZE // 4) + b"\x05\x0a\x05abc",
    # nameless families that are only a HELP (refused once parsed)
    "nameless families": lambda: _frame(b"\x12\x01h") * (_SIZE // 4),
    # one family, empty metrics (field 4), 2 bytes each
    "empty metrics": lambda: _frame(b"\x0a\x01a" + b"\x22\x00" * (_SIZE // 2)),
    # one metric, empty label pairs, 2 bytes each
    "empty labels": lambda: _frame(
        b"\x0a\x01a" + _field(0x22, b"\x0a\x00" * (_SIZE // 2))
    ),
    # one histogram (field 7 of the metric), empty buckets, 2 bytes each
    "empty buckets": lambda: _frame(
        b"\x0a\x01a" + _field(0x22, _field(0x3A, b"\x1a\x00" * (_SIZE // 2)))
    ),
    # a length of 2**62 bytes declared, 1 MB given
    "huge declared length": lambda: varint(1 << 62) + bytes(_SIZE),
    # a length prefix that never ends
    "endless varint": lambda: b"\xff" * _SIZE,
}

# Peak memory allowed per input byte. The worst case is the stream of
# 4-byte named families: each becomes a Python message object (~90 bytes)
# plus its protobuf struct and cache entry, about 75 bytes per input byte in
# all. Parsed one arena per family, it took about 150; a stream of zero bytes
# took about 590 (5 MB -> 2.6 GB).
BYTES_PER_INPUT_BYTE = 100
VALID = {"named families", "empty metrics", "empty labels", "empty buckets"}
SLACK = 1 << 20  # page-granular noise


@pytest.mark.skipif(
    not os.access("/proc/self/clear_refs", os.W_OK),
    reason="needs Linux's resettable peak RSS (/proc/self/clear_refs)",
)
@pytest.mark.parametrize("pattern", sorted(HOSTILE))
def test_hostile_input_memory_is_bounded(pattern, tmp_path):
    data = HOSTILE[pattern]()
    path = tmp_path / "stream.bin"
    path.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outcome, grown = result.stdout.split()
    limit = BYTES_PER_INPUT_BYTE * len(data) + SLACK
    assert int(grown) <= limit, (pattern, int(grown) / len(data))
    assert (outcome != "DecodeError") == (pattern in VALID), outcome
