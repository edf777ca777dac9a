"""Fixtures for the integration tests (real Prometheus / Pushgateway servers
on 127.0.0.1). The server helpers live in servers.py next to this file.

- ``prometheus_factory(targets, extra_flags=(), **kw)`` -> started
  PrometheusServer (``.api_url``, ``.query()``), stopped at teardown.
  Use with ``servers.wait_for_query(server, promql, predicate)``.
- ``pushgateway``: a Pushgateway shared by a test module.
- ``service_thread_factory(registry)`` -> started ServiceThread (an
  aioprometheus Service on 127.0.0.1 in a background loop), stopped at
  teardown.

Missing server binaries skip the tests, or fail them when
AIOPROMETHEUS_REQUIRE_SERVERS=1.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import servers  # noqa: E402


@pytest.fixture
def prometheus_factory(tmp_path):
    started = []

    def start(targets, extra_flags=(), **kwargs):
        server = servers.start_prometheus(
            tmp_path / f"prometheus-{len(started)}", targets, extra_flags, **kwargs
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory):
    server = servers.start_pushgateway(tmp_path_factory.mktemp("pushgateway"))
    yield server
    server.stop()


@pytest.fixture
def service_thread_factory():
    started = []

    def start(registry, metrics_url_path="/metrics", accept_override=None):
        svc = servers.ServiceThread(
            registry, metrics_url_path, accept_override=accept_override
        ).__enter__()
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.__exit__(None, None, None)
