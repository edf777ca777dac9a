"""Unit tests of aioprometheus.service.Service (served on 127.0.0.1)."""

import asyncio
import gzip
import logging
import socket
import sys
import warnings

import aiohttp
import pytest

from aioprometheus.collectors import REGISTRY, Counter, Gauge, Registry
from aioprometheus.service import Service, accepts_gzip


def run(coro):
    return asyncio.run(coro)


async def fetch(url, method="GET", headers=None, decompress=False):
    async with aiohttp.ClientSession(auto_decompress=decompress) as session:
        # aiohttp asks for gzip by default; ask for identity unless told.
        headers = {"Accept-Encoding": "identity", **(headers or {})}
        async with session.request(method, url, headers=headers) as resp:
            return resp.status, resp.headers.copy(), await resp.read()


def make_registry():
    registry = Registry()
    Counter("svc_hits_total", "Hits.", registry=registry).add({"path": "/x"}, 4)
    Gauge("svc_temp", "Temp.", registry=registry).set({}, -1.5)
    return registry


def test_metrics_root_robots_head_404():
    async def scenario():
        svc = Service(registry=make_registry())
        await svc.start(addr="127.0.0.1")
        try:
            assert svc.base_url.startswith("http://127.0.0.1:")
            assert svc.root_url == svc.base_url + "/"
            assert svc.metrics_url == svc.base_url + "/metrics"
            out = {
                "metrics": await fetch(svc.metrics_url),
                "head": await fetch(svc.metrics_url, method="HEAD"),
                "root": await fetch(svc.root_url),
                "robots": await fetch(svc.base_url + "/robots.txt"),
                "missing": await fetch(svc.base_url + "/nope"),
                "post": await fetch(svc.metrics_url, method="POST"),
            }
        finally:
            await svc.stop()
        return out

    out = run(scenario())
    status, headers, body = out["metrics"]
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert "version=0.0.4" in headers["Content-Type"]
    assert "Content-Encoding" not in headers
    text = body.decode()
    assert 'svc_hits_total{path="/x"} 4' in text
    assert "svc_temp -1.5" in text

    status, headers, body = out["head"]
    assert status == 200 and body == b""
    assert headers["Content-Type"] == out["metrics"][1]["Content-Type"]
    assert int(headers["Content-Length"]) == len(out["metrics"][2])

    status, headers, body = out["root"]
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"href='/metrics'" in body

    status, headers, body = out["robots"]
    assert status == 200 and body == b"User-agent: *\nDisallow: /\n"

    assert out["missing"][0] == 404
    assert out["post"][0] == 405


def test_gzip_when_accepted():
    async def scenario():
        svc = Service(registry=make_registry())
        await svc.start(addr="127.0.0.1")
        try:
            plain = await fetch(
                svc.metrics_url, headers={"Accept-Encoding": "identity"}
            )
            zipped = await fetch(svc.metrics_url, headers={"Accept-Encoding": "gzip"})
            refused = await fetch(
                svc.metrics_url, headers={"Accept-Encoding": "gzip;q=0, deflate"}
            )
        finally:
            await svc.stop()
        return plain, zipped, refused

    plain, zipped, refused = run(scenario())
    assert zipped[1]["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped[1]["Vary"]
    assert gzip.decompress(zipped[2]) == plain[2]
    assert "Content-Encoding" not in refused[1]
    assert refused[2] == plain[2]


def test_large_body_is_gzipped_correctly():
    registry = Registry()
    c = Counter("svc_big_total", "Many series.", registry=registry)
    for i in range(5000):
        c.inc({"id": str(i)})

    async def scenario():
        svc = Service(registry=registry)
        await svc.start(addr="127.0.0.1")
        try:
            plain = await fetch(svc.metrics_url)
            zipped = await fetch(svc.metrics_url, headers={"Accept-Encoding": "gzip"})
        finally:
            await svc.stop()
        return plain, zipped

    plain, zipped = run(scenario())
    assert len(plain[2]) > 64 * 1024
    assert zipped[1]["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped[2]) == plain[2]


@pytest.mark.parametrize(
    "headers, expected",
    [
        ([], False),
        (["gzip"], True),
        (["GZIP"], True),
        (["deflate, gzip;q=1.0, *;q=0.5"], True),
        (["gzip;q=0"], False),
        (["gzip; q=0.000"], False),
        (["*"], True),
        (["*;q=0"], False),
        (["gzip;q=0, *"], False),
        (["identity"], False),
        (["br", "x-gzip"], True),
        (["gzip;q=bad"], False),
        ([",,;"], False),
    ],
)
def test_accepts_gzip(headers, expected):
    assert accepts_gzip(headers) is expected


def test_custom_metrics_url_and_root_link():
    async def scenario():
        svc = Service(registry=make_registry())
        await svc.start(addr="127.0.0.1", metrics_url="/custom/path")
        try:
            assert svc.metrics_url.endswith("/custom/path")
            custom = await fetch(svc.metrics_url)
            default = await fetch(svc.base_url + "/metrics")
            root = await fetch(svc.root_url)
        finally:
            await svc.stop()
        return custom, default, root

    custom, default, root = run(scenario())
    assert custom[0] == 200 and b"svc_hits_total" in custom[2]
    assert default[0] == 404
    assert b"href='/custom/path'" in root[2]


def test_bad_metrics_url_rejected():
    svc = Service(registry=Registry())
    with pytest.raises(ValueError):
        run(svc.start(addr="127.0.0.1", metrics_url="metrics"))
    assert not svc.running


def test_urls_raise_when_not_running():
    svc = Service(registry=Registry())
    for attr in ("base_url", "root_url", "metrics_url"):
        with pytest.raises(RuntimeError):
            getattr(svc, attr)


def test_registry_type_checked():
    with pytest.raises(TypeError):
        Service(registry={})
    assert Service().registry is REGISTRY


def test_loop_argument_is_deprecated():
    loop = asyncio.new_event_loop()
    try:
        with pytest.warns(DeprecationWarning, match="loop"):
            svc = Service(loop=loop)
    finally:
        loop.close()
    assert svc.registry is REGISTRY
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Service(registry=Registry())


def test_async_with_starts_and_stops():
    async def scenario():
        async with Service(registry=make_registry()) as svc:
            assert svc.running
            # Bound on all interfaces: the URL names the IPv4 wildcard.
            assert svc.base_url.startswith("http://0.0.0.0:")
            port = int(svc.base_url.rsplit(":", 1)[1])
            status, _, body = await fetch(f"http://127.0.0.1:{port}/metrics")
        assert not svc.running
        return status, body

    status, body = run(scenario())
    assert status == 200 and b"svc_temp" in body


def test_start_twice_and_stop_twice_warn(caplog):
    async def scenario():
        svc = Service(registry=Registry())
        await svc.start(addr="127.0.0.1")
        first = svc.base_url
        with caplog.at_level(logging.WARNING, logger="aioprometheus.service"):
            await svc.start(addr="127.0.0.1")
            assert svc.base_url == first
            await svc.stop()
            await svc.stop()
        return first

    run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert any("already running" in m for m in messages)
    assert any("already stopped" in m for m in messages)


def test_port_in_use_raises_and_leaves_service_stopped():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]

        async def scenario():
            svc = Service(registry=Registry())
            with pytest.raises(OSError):
                await svc.start(addr="127.0.0.1", port=port)
            assert not svc.running
            with pytest.raises(RuntimeError):
                _ = svc.base_url
            # It can still be started elsewhere afterwards.
            await svc.start(addr="127.0.0.1")
            assert svc.running
            await svc.stop()

        run(scenario())


def test_serves_registry_changes_live():
    registry = Registry()
    g = Gauge("svc_live", "Live.", registry=registry)

    async def scenario():
        svc = Service(registry=registry)
        await svc.start(addr="127.0.0.1")
        try:
            g.set({}, 1)
            first = (await fetch(svc.metrics_url))[2]
            g.set({}, 2)
            Counter("svc_added_later_total", "Later.", registry=registry).inc({})
            second = (await fetch(svc.metrics_url))[2]
        finally:
            await svc.stop()
        return first, second

    first, second = run(scenario())
    assert b"svc_live 1\n" in first and b"svc_added_later_total" not in first
    assert b"svc_live 2\n" in second and b"svc_added_later_total 1\n" in second


def test_ctrl_c_keeps_pythons_default_handling(caplog):
    """A running Service leaves SIGINT to Python: a Ctrl-C is raised where it
    lands, here inside a render on the application's loop, and leaves nothing
    behind for svc.stop() to raise again (the server runs in its own thread,
    where signals never land); the scrape it cut short gets a 503."""
    import os
    import signal

    from aioprometheus import Gauge

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT handler is not Python's default here")
    reached = []

    class Interrupting(Gauge):
        def get_all(self):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the default handler raises in here
                pass
            reached.append(True)
            return []

    registry = Registry()
    Interrupting("interrupting", "Presses Ctrl-C.", registry=registry)
    loop = asyncio.new_event_loop()
    try:
        svc = Service(registry=registry)
        loop.run_until_complete(svc.start(addr="127.0.0.1"))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        scrape = loop.create_task(fetch(svc.metrics_url))
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(scrape)
        assert not reached
        status, _, _ = loop.run_until_complete(scrape)
        assert status == 503
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        registry.deregister("interrupting")
        assert loop.run_until_complete(fetch(svc.metrics_url))[0] == 200
        loop.run_until_complete(svc.stop())
        assert not svc.running
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        loop.close()


def test_custom_sigint_handler_is_left_alone():
    import signal

    def custom(signum, frame):
        pass

    previous = signal.signal(signal.SIGINT, custom)
    try:

        async def scenario():
            svc = Service(registry=Registry())
            await svc.start(addr="127.0.0.1")
            assert signal.getsignal(signal.SIGINT) is custom
            await svc.stop()

        run(scenario())
        assert signal.getsignal(signal.SIGINT) is custom
    finally:
        signal.signal(signal.SIGINT, previous)


def test_https_with_ssl_context(tmp_path):
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(cert), str(key))
    client_ctx = ssl.create_default_context(cafile=str(cert))

    async def scenario():
        svc = Service(registry=make_registry())
        await svc.start(addr="127.0.0.1", ssl=server_ctx)
        try:
            url = svc.metrics_url
            async with aiohttp.ClientSession() as session:
                async with session.get(url, ssl=client_ctx) as resp:
                    return url, resp.status, await resp.read()
        finally:
            await svc.stop()

    url, status, body = run(scenario())
    assert url.startswith("https://127.0.0.1:")
    assert status == 200 and b"svc_hits_total" in body


def test_stop_does_not_wait_long_for_a_stuck_scrape():
    """A scrape that never completes (here its handler waits forever) holds
    stop() for the short shutdown timeout, not aiohttp's default minute."""
    entered: asyncio.Event
    import time

    class StuckService(Service):
        async def handle_metrics(self, request):
            self._app_loop.call_soon_threadsafe(entered.set)
            await asyncio.Event().wait()

    async def scenario():
        nonlocal entered
        entered = asyncio.Event()  # made in the loop (Python 3.9 binds at creation)
        svc = StuckService(registry=Registry())
        await svc.start(addr="127.0.0.1")
        scrape = asyncio.ensure_future(fetch(svc.metrics_url))
        await asyncio.wait_for(entered.wait(), 10)
        started = time.monotonic()
        await svc.stop()
        scrape.cancel()
        await asyncio.gather(scrape, return_exceptions=True)
        return time.monotonic() - started

    assert run(scenario()) < 10


def test_stop_answers_scrapes_whose_read_never_ran():
    """The application's loop stopped with a scrape's read queued on it (as
    after a Ctrl-C): stop() answers that scrape 503 at once instead of holding
    the shutdown until aiohttp gives up on it."""
    import threading
    import time

    app_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=app_loop.run_forever)
    thread.start()
    registry = make_registry()
    registry.add_refresh(lambda: None)  # application code: read on its loop
    svc = Service(registry=registry)
    try:
        asyncio.run_coroutine_threadsafe(svc.start(addr="127.0.0.1"), app_loop).result(
            10
        )
        app_loop.call_soon_threadsafe(app_loop.stop)
        thread.join(10)

        async def scenario():
            scrape = asyncio.ensure_future(fetch(svc.metrics_url))
            for _ in range(500):
                if svc._queued_reads:
                    break
                await asyncio.sleep(0.01)
            assert svc._queued_reads
            started = time.monotonic()
            await svc.stop()
            return time.monotonic() - started, (await scrape)[0]

        took, status = asyncio.run(scenario())
        assert status == 503
        assert took < 1.5
    finally:
        app_loop.close()


class AppLoopThread:
    """An application's event loop running in a thread of its own."""

    def __init__(self):
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever)
        self.thread.start()

    def run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_compiled_registry_is_served_while_the_application_loop_is_stuck():
    """A registry of compiled metrics is read in the server's thread: the
    scrape is answered while the application's loop is stuck in a 3 s
    blocking call (one releasing the GIL, as I/O does)."""
    import time
    import urllib.request

    app = AppLoopThread()
    svc = Service(registry=make_registry())
    try:
        app.run(svc.start(addr="127.0.0.1"))
        app.loop.call_soon_threadsafe(time.sleep, 3)
        time.sleep(0.1)  # the loop is in it now
        started = time.monotonic()
        with urllib.request.urlopen(svc.metrics_url, timeout=2) as resp:
            body = resp.read()
        assert time.monotonic() - started < 2
        assert b'svc_hits_total{path="/x"} 4' in body
        app.run(svc.stop())
    finally:
        app.close()


def test_application_code_in_a_read_runs_on_the_application_loop():
    """Collectors computing their values and refresh hooks run on the
    application's loop, in its thread, as when the server ran there."""
    import threading

    seen = {}

    class Computed(Gauge):
        def get_all(self):
            seen["get_all"] = threading.get_ident()
            return [({}, 1.0)]

    registry = make_registry()
    Computed("svc_computed", "Computed at scrape time.", registry=registry)
    app = AppLoopThread()
    svc = Service(registry=registry)
    try:
        app.run(svc.start(addr="127.0.0.1"))

        async def its_thread():
            return threading.get_ident()

        app_thread = app.run(its_thread())
        assert app_thread != threading.get_ident()
        status, _, body = asyncio.run(fetch(svc.metrics_url))
        assert status == 200 and b"svc_computed 1.0" in body
        assert seen == {"get_all": app_thread}
        registry.deregister("svc_computed")
        registry.add_refresh(lambda: seen.setdefault("hook", threading.get_ident()))
        assert asyncio.run(fetch(svc.metrics_url))[0] == 200
        assert seen["hook"] == app_thread
        app.run(svc.stop())

        class Sorting(Registry):
            def sorted_collectors(self):
                seen["sorted"] = threading.get_ident()
                return super().sorted_collectors()

        sorting = Sorting()
        Gauge("svc_plain", "Compiled.", registry=sorting).set({}, 2)
        svc = Service(registry=sorting)
        app.run(svc.start(addr="127.0.0.1"))
        status, _, body = asyncio.run(fetch(svc.metrics_url))
        assert status == 200 and b"svc_plain 2" in body
        assert seen["sorted"] == app_thread
        app.run(svc.stop())
    finally:
        app.close()


def test_reads_in_the_server_thread_race_the_application_safely():
    """While the application's thread registers and drops metrics and adds
    series to a histogram as fast as it can, every scrape read in the
    server's thread is whole: 200, each series' +Inf bucket equal to its
    _count and its _sum (every observation is 1.0)."""
    import re
    import sys
    import threading

    from aioprometheus import Histogram

    registry = Registry()
    hist = Histogram("svc_race", "Races.", registry=registry, buckets=(0.5, 2.0))
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            i += 1
            hist.observe({"n": str(i % 500)}, 1.0)
            name = f"svc_churn_{i % 7}_total"
            if name in registry.collectors:
                registry.deregister(name)
            else:
                Counter(name, "Churn.", registry=registry).inc({})

    async def scrapes(svc):
        return [await fetch(svc.metrics_url) for _ in range(40)]

    svc = Service(registry=registry)
    run(svc.start(addr="127.0.0.1"))  # no application loop: reads here
    svc._app_loop = asyncio.new_event_loop()  # one that is not this thread's
    worker = threading.Thread(target=churn)
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can
    worker.start()
    try:
        results = asyncio.run(scrapes(svc))
    finally:
        stop.set()
        worker.join(10)
        sys.setswitchinterval(switching)
        svc._app_loop.close()
        run(svc.stop())
    sample = re.compile(
        rb'^svc_race_(bucket|count|sum)\{(?:le="([^"]+)",)?n="(\d+)"\} (\S+)$'
    )
    for status, _, body in results:
        assert status == 200
        series = {}
        for line in body.splitlines():
            m = sample.match(line)
            if m:
                kind, le, n, value = m.groups()
                series.setdefault(n, {})[(kind + (le or b"")).decode()] = float(value)
        assert series
        for got in series.values():
            assert got["bucket+Inf"] == got["count"] == got["sum"]
            assert got["bucket0.5"] == 0 and got["bucket2.0"] == got["count"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux niceness")
def test_server_thread_yields_the_cpu_to_the_application():
    """The server's thread encodes scrapes, so it is as nice as the render
    threads: on a busy machine the application's event loop runs first."""
    import os
    import threading

    from aioprometheus import renderer

    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    async def scenario():
        svc = Service(registry=make_registry())
        await svc.start(addr="127.0.0.1")
        try:
            (server,) = [
                t for t in threading.enumerate() if t.name == "aioprometheus-service"
            ]
            return os.getpriority(os.PRIO_PROCESS, server.native_id)
        finally:
            await svc.stop()

    assert run(scenario()) == min(19, here + renderer.RENDER_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == here


def test_handle_metrics_mounted_in_the_applications_own_server(monkeypatch):
    """``svc.handle_metrics`` mounted in an aiohttp app of the application's
    own (as with 23.12's Service, whose server ran on that loop): the
    registry is read there and encoded in a render thread, never on the
    application's loop (only Service's own server thread encodes inline)."""
    import threading

    from aioprometheus import renderer

    encoded_on = []
    encode_and_compress = renderer._encode_and_compress

    def watched(encode, compress):
        encoded_on.append(threading.get_ident())
        return encode_and_compress(encode, compress)

    monkeypatch.setattr(renderer, "_encode_and_compress", watched)

    async def scenario():
        svc = Service(registry=make_registry())
        app = aiohttp.web.Application()
        app.router.add_get("/metrics", svc.handle_metrics)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            mounted = await fetch(f"http://127.0.0.1:{port}/metrics")
            await svc.start(addr="127.0.0.1")  # its own server too
            try:
                own = await fetch(svc.metrics_url)
            finally:
                await svc.stop()
            return mounted, own, threading.get_ident()
        finally:
            await runner.cleanup()

    mounted, own, loop_thread = run(scenario())
    assert mounted[0] == own[0] == 200 and mounted[2] == own[2]
    assert b'svc_hits_total{path="/x"} 4' in mounted[2]
    assert len(encoded_on) == 2 and loop_thread not in encoded_on
