"""Accept header negotiation: protobuf or OpenMetrics when asked for (RFC 9110
weights), else text."""

import pytest

from aioprometheus.formats.binary import BINARY_CONTENT_TYPE, BinaryFormatter
from aioprometheus.formats.openmetrics import (
    OPENMETRICS_CONTENT_TYPE,
    OpenMetricsFormatter,
)
from aioprometheus.formats.text import TextFormatter
from aioprometheus.negotiator import negotiate, parse_accept_ranges, parse_accepts

# The exact Accept headers Prometheus 2.42 sends (scrape/scrape.go
# scrapeAcceptHeader and scrapeAcceptHeaderWithProtobuf, the latter when
# started with --enable-feature=native-histograms).
PROMETHEUS_242 = (
    "application/openmetrics-text;version=1.0.0,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_242_NATIVE_HISTOGRAMS = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
    "encoding=delimited,"
    "application/openmetrics-text;version=1.0.0;q=0.8,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PB = (
    "application/vnd.google.protobuf;"
    "proto=io.prometheus.client.MetricFamily;encoding=delimited"
)


def test_prometheus_242_default_gets_openmetrics():
    assert negotiate([PROMETHEUS_242]) is OpenMetricsFormatter


def test_prometheus_242_native_histograms_gets_protobuf():
    assert negotiate([PROMETHEUS_242_NATIVE_HISTOGRAMS]) is BinaryFormatter


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [""],
        ["*/*"],
        ["*/*;q=0.9"],
        ["text/*"],
        ["text/plain"],
        ["text/plain; version=0.0.4"],
        ["garbage"],
        ["a/b/c, ;;;, ,,,"],
        ["application/json"],
        ["application/openmetrics-text;version=0.0.1"],  # a version not served
        ["application/openmetrics-text;version=1.0.0;charset=latin-1"],
        ["application/openmetrics-text;version=1.0.0;q=0.4, text/plain"],
        [PB.replace("delimited", "text")],
        [PB.replace("io.prometheus.client.MetricFamily", "foo.Bar")],
        [PB.replace("delimited", "compact-text")],
        [PB + ";q=0"],
        [PB + ";q=0.000"],
        [PB + ";q=abc"],  # invalid weight: element ignored
        [PB + ";q=2"],
        [PB + ";q=0, */*"],  # the specific range excludes protobuf; */* gives text
        [PB + ";q=0, text/plain;q=0"],  # nothing acceptable: fall back to text
    ],
)
def test_text(headers):
    assert negotiate(headers) is TextFormatter


@pytest.mark.parametrize(
    "headers",
    [
        [PB],
        [PB + ";q=0.001"],
        [PB.replace(";", "; ")],
        [BINARY_CONTENT_TYPE],
        [
            "application/vnd.google.protobuf;"
            'proto="io.prometheus.client.MetricFamily";encoding="delimited"'
        ],
        [
            "APPLICATION/VND.GOOGLE.PROTOBUF;"
            "PROTO=io.prometheus.client.MetricFamily;Encoding=delimited"
        ],
        [PB + ", text/plain"],  # equal weights: first listed wins
        [PB + ";q=0.9, text/plain;version=0.0.4;q=0.8"],
        ["text/plain;version=0.0.4;q=0.3, " + PB + ";q=0.7"],
        ["text/plain;q=0.5", PB + ";q=0.9"],  # several header values form one list
        ["text/plain;q=0", PB + ";q=0.1"],
        ["text/plain;q=0, */*"],  # text excluded, the wildcard admits protobuf
        ["text/plain;version=0.0.4;q=0.2, text/plain;q=1, " + PB + ";q=0.5"],
        [" " + PB + " ;q=1 "],
    ],
)
def test_protobuf(headers):
    assert negotiate(headers) is BinaryFormatter


@pytest.mark.parametrize(
    "headers",
    [
        ["text/plain, " + PB],  # equal weights: first listed wins
        ["text/plain;version=0.0.4;q=0.8, " + PB + ";q=0.7"],
        [PB + ";q=0.3", "text/plain;q=0.5"],
    ],
)
def test_text_preferred(headers):
    assert negotiate(headers) is TextFormatter


@pytest.mark.parametrize(
    "headers",
    [
        ["application/openmetrics-text"],
        ["application/openmetrics-text;version=1.0.0"],
        [OPENMETRICS_CONTENT_TYPE],
        ["APPLICATION/OpenMetrics-Text; Version=1.0.0; charset=UTF-8"],
        ["text/plain;q=0.5, application/openmetrics-text;q=0.6"],
        ["application/openmetrics-text;version=1.0.0, " + PB],  # first listed
        [PB + ";q=0.7, application/openmetrics-text;version=1.0.0;q=0.8"],
    ],
)
def test_openmetrics(headers):
    assert negotiate(headers) is OpenMetricsFormatter


@pytest.mark.parametrize(
    "headers, formatter",
    [
        (["*/*"], TextFormatter),
        (["application/*"], BinaryFormatter),  # as before OpenMetrics was served
        (["text/plain;q=0, */*"], BinaryFormatter),
        (["text/plain;q=0, " + PB + ";q=0, */*"], OpenMetricsFormatter),
        (
            ["application/openmetrics-text;version=0.0.1, application/*"],
            BinaryFormatter,
        ),
    ],
)
def test_ties_on_one_range_go_to_text_then_protobuf(headers, formatter):
    assert negotiate(headers) is formatter


def test_most_specific_range_decides_weight():
    # text/plain;version=0.0.4 (q=0.2) is more specific than text/plain (q=1),
    # so text weighs 0.2 and protobuf (0.5) wins; drop the specific one and
    # text wins.
    specific = "text/plain;version=0.0.4;q=0.2, text/plain, " + PB + ";q=0.5"
    assert negotiate([specific]) is BinaryFormatter
    assert negotiate(["text/plain, " + PB + ";q=0.5"]) is TextFormatter


def test_non_string_and_none_are_text():
    assert negotiate(None) is TextFormatter  # type: ignore[arg-type]
    assert negotiate([None, 42]) is TextFormatter  # type: ignore[list-item]


def test_parse_accept_ranges():
    ranges = parse_accept_ranges([PROMETHEUS_242_NATIVE_HISTOGRAMS])
    assert [(r.type, r.subtype, r.q) for r in ranges] == [
        ("application", "vnd.google.protobuf", 1.0),
        ("application", "openmetrics-text", 0.8),
        ("application", "openmetrics-text", 0.75),
        ("text", "plain", 0.5),
        ("*", "*", 0.1),
    ]
    assert ranges[0].params == {
        "proto": "io.prometheus.client.MetricFamily",
        "encoding": "delimited",
    }
    assert [r.position for r in ranges] == [0, 1, 2, 3, 4]


def test_parse_accepts_compat():
    assert parse_accepts(["text/plain; version=0.0.4"]) == {
        "text/plain",
        "version=0.0.4",
    }
    assert parse_accepts(["*/*"]) == {"*/*"}


def test_formatter_headers():
    assert BinaryFormatter().get_headers() == {
        "Content-Type": "application/vnd.google.protobuf; "
        "proto=io.prometheus.client.MetricFamily; encoding=delimited"
    }
