"""Unit tests of aioprometheus.pusher against a small capturing aiohttp server
on 127.0.0.1 (what is sent: method, path, headers, body)."""

import asyncio
import base64
import errno
import pickle
import socket
import warnings

import aiohttp
import aiohttp.web
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aioprometheus.collectors import REGISTRY, Counter, Gauge, Registry
from aioprometheus.pusher import Pusher, PushError, encode_grouping_key


def _protobuf_available() -> bool:
    """True once the binary formatter and its compiled encoder are wired in."""
    try:
        from aioprometheus import _core
        from aioprometheus.formats.binary import BinaryFormatter  # noqa: F401
    except ImportError:
        return False
    return hasattr(_core, "encode_protobuf")


class Capture:
    """A loopback HTTP server recording requests and answering ``status``."""

    def __init__(self, status=200, delay=0.0):
        self.status = status
        self.delay = delay
        self.requests = []
        self.runner = None
        self.port = None

    async def handler(self, request):
        self.requests.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        if self.delay:
            try:
                await asyncio.wait_for(self.released.wait(), self.delay)
            except asyncio.TimeoutError:
                pass
        return aiohttp.web.Response(status=self.status, text="captured")

    async def __aenter__(self):
        # Set on exit, so that a delayed answer does not hold up the cleanup.
        self.released = asyncio.Event()
        app = aiohttp.web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handler)
        self.runner = aiohttp.web.AppRunner(app)
        await self.runner.setup()
        site = aiohttp.web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    async def __aexit__(self, *exc):
        self.released.set()
        await self.runner.cleanup()


def make_registry():
    registry = Registry()
    Counter("push_total", "Pushed.", registry=registry).add({"k": "v"}, 3)
    Gauge("push_gauge", "A gauge.", registry=registry).set({}, 2.5)
    return registry


def run(coro):
    return asyncio.run(coro)


# ---------------------------------------------------------------- grouping key


def b64(value):
    return base64.urlsafe_b64encode(value.encode()).decode()


@pytest.mark.parametrize(
    "job, key, expected",
    [
        ("j", {}, "/job/j"),
        ("j", {"b": "2", "a": "1"}, "/job/j/a/1/b/2"),
        ("j", {"p": "a/b"}, f"/job/j/p@base64/{b64('a/b')}"),
        ("j", {"p": ""}, "/job/j/p@base64/="),
        ("a/b", {}, f"/job@base64/{b64('a/b')}"),
        ("j", {"p": "x y+z%"}, f"/job/j/p@base64/{b64('x y+z%')}"),
        ("j", {"p": ".."}, f"/job/j/p@base64/{b64('..')}"),
        ("j", {"p": "ü"}, f"/job/j/p@base64/{b64('ü')}"),
        ("j", {"n": 5}, "/job/j/n/5"),
        ("j", {"p": "A-z_0.9~"}, "/job/j/p/A-z_0.9~"),
        ("j", {"instance": "127.0.0.1:1234"}, "/job/j/instance/127.0.0.1:1234"),
        # a trailing newline must not pass for plain text ('$' would match it)
        ("j", {"instance": "host\n"}, "/job/j/instance@base64/aG9zdAo="),
        ("job\n", {}, "/job@base64/am9iCg=="),
        ("j", {"p": "\nhost"}, "/job/j/p@base64/Cmhvc3Q="),
        ("j", {"p": "a\tb\r"}, "/job/j/p@base64/YQliDQ=="),
        ("j", {"p": "a?b#c"}, "/job/j/p@base64/YT9iI2M="),
    ],
)
def test_encode_grouping_key(job, key, expected):
    assert encode_grouping_key(job, {k: str(v) for k, v in key.items()}) == expected
    assert Pusher(job, "http://127.0.0.1:9091", grouping_key=key).path == (
        "http://127.0.0.1:9091/metrics" + expected
    )


def test_b64_decodes_back():
    suffix = encode_grouping_key("j", {"p": "a/ü/c"})
    encoded = suffix.rsplit("/", 1)[1]
    assert base64.urlsafe_b64decode(encoded).decode() == "a/ü/c"


def test_addr_path_and_custom_path():
    p = Pusher("j", "http://127.0.0.1:9091/prefix/")
    assert p.path == "http://127.0.0.1:9091/prefix/metrics/job/j"
    vm = Pusher(
        "j",
        "http://127.0.0.1:8428",
        grouping_key={"a": "b"},
        path="/api/v1/import/prometheus",
    )
    assert vm.path == "http://127.0.0.1:8428/api/v1/import/prometheus"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"job_name": ""},
        {"grouping_key": {"bad-name": "x"}},
        {"grouping_key": {"job": "x"}},
        {"grouping_key": {"": "x"}},
        {"grouping_key": {"instance\n": "x"}},
        {"grouping_key": {"in stance": "x"}},
        {"grouping_key": {"1st": "x"}},
        {"grouping_key": {"__reserved": "x"}},
        {"grouping_key": {5: "x"}},
        {"grouping_key": {"p": "\ud800"}},
        {"job_name": "\ud800"},
        {"path": "no-slash"},
        {"body_format": "xml"},
        {"addr": ""},
    ],
)
def test_bad_arguments(kwargs):
    args = {"job_name": "j", "addr": "http://127.0.0.1:9091", **kwargs}
    with pytest.raises(ValueError):
        Pusher(**args)


def test_loop_argument_is_deprecated():
    loop = asyncio.new_event_loop()
    try:
        with pytest.warns(DeprecationWarning):
            p = Pusher("j", "http://127.0.0.1:9091", loop=loop)
    finally:
        loop.close()
    assert "loop" not in p.client_kwargs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Pusher("j", "http://127.0.0.1:9091")


# ---------------------------------------------------------------- requests


def test_methods_paths_and_text_body():
    registry = make_registry()

    async def scenario():
        async with Capture() as cap:
            p = Pusher("batch", cap.url, grouping_key={"instance": "a/b"})
            r1 = await p.add(registry)
            r2 = await p.replace(registry)
            r3 = await p.delete(registry)
            return cap.requests, (r1.status, r2.status, r3.status), await r1.text()

    requests, statuses, text = run(scenario())
    assert statuses == (200, 200, 200)
    assert text == "captured"
    assert [r["method"] for r in requests] == ["POST", "PUT", "DELETE"]
    path = f"/metrics/job/batch/instance@base64/{b64('a/b')}"
    assert {r["raw_path"] for r in requests} == {path}
    # DELETE carries the registry too, as aioprometheus 23.12 sent it.
    for r in requests:
        assert r["headers"]["Content-Type"].startswith("text/plain")
        samples = {
            s.name: s.value
            for f in text_string_to_metric_families(r["body"].decode())
            for s in f.samples
        }
        assert samples == {"push_total": 3, "push_gauge": 2.5}


@pytest.mark.skipif(not _protobuf_available(), reason="formats.binary not available")
def test_protobuf_body():
    from aioprometheus.formats.binary import BinaryFormatter

    registry = make_registry()

    async def scenario():
        async with Capture() as cap:
            await Pusher("batch", cap.url, body_format="protobuf").replace(registry)
            return cap.requests

    (req,) = run(scenario())
    headers = BinaryFormatter().get_headers()
    assert req["headers"]["Content-Type"] == headers["Content-Type"]
    assert req["body"] == BinaryFormatter().marshall(registry)
    assert len(req["body"]) > 0


def test_client_kwargs_auth_and_headers():
    registry = make_registry()

    async def scenario():
        async with Capture() as cap:
            p = Pusher(
                "j",
                cap.url,
                auth=aiohttp.BasicAuth("user", "pw"),
                headers={"X-Tenant": "t1"},
            )
            await p.replace(registry)
            await p.add(registry, headers={"X-Call": "c1"})
            return cap.requests

    first, second = run(scenario())
    expected_auth = "Basic " + base64.b64encode(b"user:pw").decode()
    assert first["headers"]["Authorization"] == expected_auth
    assert first["headers"]["X-Tenant"] == "t1"
    assert second["headers"]["X-Call"] == "c1"
    assert "X-Tenant" not in second["headers"]  # per-call headers replace them
    assert second["headers"]["Authorization"] == expected_auth


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_error_status_raises(status):
    registry = make_registry()
    before = [(c.name, c.get_all()) for c in registry.get_all()]

    async def scenario():
        async with Capture(status=status) as cap:
            with pytest.raises(PushError) as info:
                await Pusher("j", cap.url).replace(registry)
            return info.value

    err = run(scenario())
    assert err.status == status
    assert str(status) in str(err) and "captured" in str(err)
    assert [(c.name, c.get_all()) for c in registry.get_all()] == before


def test_slow_gateway_times_out():
    """A gateway that answers too late: the PushError is also the
    asyncio.TimeoutError that aioprometheus 23.12 let through, so handlers
    written for 23.12 still catch it, whatever the method."""
    registry = make_registry()

    async def scenario():
        caught = []
        async with Capture(delay=30) as cap:
            p = Pusher("j", cap.url)
            for push in (p.add, p.replace, p.delete):
                try:
                    await push(registry, timeout=0.3)
                except asyncio.TimeoutError as exc:
                    caught.append(exc)
        return caught

    caught = run(scenario())
    assert len(caught) == 3
    for err in caught:
        assert isinstance(err, PushError) and "timed out after 0.3s" in str(err)
        assert err.status is None
        assert isinstance(err.__cause__, asyncio.TimeoutError)
        assert not isinstance(err.__cause__, PushError)


def closed_port():
    """A port bound but not listening: connecting to it is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def test_nothing_listening_raises():
    """The PushError is also the aiohttp.ClientConnectorError (an
    aiohttp.ClientError and an OSError) that 23.12 let through, with the
    same attributes."""
    sock, port = closed_port()
    with sock:
        for push in ("add", "replace", "delete"):
            pusher = Pusher("j", f"http://127.0.0.1:{port}")
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                run(getattr(pusher, push)(make_registry(), timeout=5))
            err = info.value
            assert isinstance(err, PushError)
            assert isinstance(err, aiohttp.ClientError) and isinstance(err, OSError)
            assert err.status is None
            assert f"127.0.0.1:{port}" in str(err)
            cause = err.__cause__
            assert type(cause) is not type(err)
            assert isinstance(cause, aiohttp.ClientConnectorError)
            assert (err.host, err.port, err.errno) == (cause.host, port, cause.errno)
            assert err.errno == errno.ECONNREFUSED


def test_transport_error_pickles_as_a_plain_push_error():
    sock, port = closed_port()
    with sock, pytest.raises(PushError) as info:
        run(Pusher("j", f"http://127.0.0.1:{port}").add(make_registry(), timeout=5))
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is PushError
    assert str(again) == str(info.value) and again.status is None


def test_status_error_is_not_a_transport_error():
    async def scenario():
        async with Capture(status=500) as cap:
            with pytest.raises(PushError) as info:
                await Pusher("j", cap.url).add(make_registry())
            return info.value

    err = run(scenario())
    assert type(err) is PushError
    assert not isinstance(err, (aiohttp.ClientError, asyncio.TimeoutError))


@pytest.mark.parametrize("timeout", [0, -1, "5", True])
def test_bad_timeout(timeout):
    with pytest.raises((TypeError, ValueError)):
        run(Pusher("j", "http://127.0.0.1:1").add(make_registry(), timeout=timeout))


def test_bad_registry():
    with pytest.raises(TypeError):
        run(Pusher("j", "http://127.0.0.1:1").add({}))


def test_default_registry_is_used():
    seen = {}

    async def scenario():
        async with Capture() as cap:
            p = Pusher("j", cap.url)

            class Recorder:
                def marshall(self, registry):
                    seen["reg"] = registry
                    return b""

            p.formatter = Recorder()
            await p.add()
            return cap.requests

    run(scenario())
    assert seen["reg"] is REGISTRY
