"""Scrapes are compressed part by part into one standard gzip stream."""

import asyncio
import gzip
import zlib

from hypothesis import given
from hypothesis import strategies as st

from aioprometheus import Counter, Registry
from aioprometheus.formats.openmetrics import OpenMetricsFormatter
from aioprometheus.renderer import gzip_parts, scrape

PROMETHEUS_ACCEPT = [
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
]


@given(st.lists(st.binary(max_size=3000), max_size=6))
def test_gzip_parts_is_one_gzip_member_of_their_concatenation(parts):
    body = gzip_parts(parts)
    assert body[:4] == b"\x1f\x8b\x08\x00" and body[4:8] == bytes(4)  # mtime 0
    reader = zlib.decompressobj(31)
    assert reader.decompress(body) == b"".join(parts)
    assert reader.eof and reader.unused_data == b""
    assert gzip_parts(parts) == body


def test_an_openmetrics_gzip_scrape_ends_with_eof():
    registry = Registry()
    Counter("c_total", "doc", registry=registry).inc({"k": "v"})
    body, headers = asyncio.run(scrape(registry, PROMETHEUS_ACCEPT, ["gzip"]))
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = gzip.decompress(body)
    assert text == OpenMetricsFormatter().marshall(registry)
    assert text.endswith(b"\n# EOF\n")


def test_encoders_give_the_same_bytes_after_the_vector_state_is_cleared():
    """gzip_parts ends with _core.clear_vector_state() (vzeroupper after
    ISA-L's AVX code, which made the next encodes 2.5x slower): harmless on
    any CPU, and it changes no encoder's output."""
    from aioprometheus import Counter, Histogram, Registry, _core

    registry = Registry()
    Counter("c_total", "C", registry=registry).add({"a": "x"}, 2.5)
    Histogram("h", "H", registry=registry).observe({}, 0.3)
    metrics = list(registry.sorted_collectors())
    before = [_core.encode_text(metrics), _core.encode_protobuf(metrics)]
    gzip_parts([b"x" * 100_000])
    _core.clear_vector_state()
    assert [_core.encode_text(metrics), _core.encode_protobuf(metrics)] == before
