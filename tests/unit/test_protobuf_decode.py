"""decode()/iter_decode(): delimited MetricFamily streams back into messages."""

import math

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


def test_zero_length_message_is_an_empty_family():
    (family,) = decode(b"\x00")
    assert family == pb.MetricFamily()


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
