"""The server helpers skip on a missing binary, or fail when
AIOPROMETHEUS_REQUIRE_SERVERS=1 (as CI sets)."""

import pytest
import servers


def test_missing_binary_skips(monkeypatch):
    monkeypatch.delenv(servers.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception):
        servers.require_binary("/nonexistent/prometheus")


def test_missing_binary_fails_when_servers_are_required(monkeypatch):
    monkeypatch.setenv(servers.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception):
        servers.require_binary("/nonexistent/prometheus")


def test_present_binary_is_returned(monkeypatch):
    monkeypatch.setenv(servers.REQUIRE_ENV, "1")
    assert servers.require_binary("/bin/sh") == "/bin/sh"


def test_traffic_is_kept_on_loopback():
    with pytest.raises(AssertionError):
        servers.http_get("http://192.0.2.1:9090/")  # never sent
    with pytest.raises(AssertionError):
        servers.start_prometheus("/nonexistent-unused", ["192.0.2.1:80"])
