"""Load and faults for the Service over real loopback HTTP."""

import asyncio
import gzip
import random
import socket

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aioprometheus.collectors import Counter, Gauge, Registry
from aioprometheus.service import Service

N_SERIES = 10_000
N_SCRAPES = 50


def parse_samples(body: bytes, name: str):
    samples = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            if sample.name == name:
                samples[sample.labels["id"]] = sample.value
    return samples


def test_concurrent_scrapes_while_updating():
    async def scenario():
        registry = Registry()
        counter = Counter(
            "load_updates_total", "Updated during scrapes.", registry=registry
        )
        label_sets = [{"id": str(i), "shard": str(i % 7)} for i in range(N_SERIES)]
        for labels in label_sets:
            counter.inc(labels)

        stop = asyncio.Event()
        updates = 0

        async def updater():
            nonlocal updates
            rng = random.Random(1)
            while not stop.is_set():
                for _ in range(500):
                    counter.inc(label_sets[rng.randrange(N_SERIES)])
                    updates += 1
                await asyncio.sleep(0)

        svc = Service(registry=registry)
        await svc.start(addr="127.0.0.1")
        async with svc:  # already started: only stops on exit
            task = asyncio.ensure_future(updater())
            connector = aiohttp.TCPConnector(limit=N_SCRAPES)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def scrape(i):
                    headers = (
                        {"Accept-Encoding": "gzip"}
                        if i % 2
                        else {"Accept-Encoding": "identity"}
                    )
                    async with session.get(svc.metrics_url, headers=headers) as resp:
                        return (
                            resp.status,
                            resp.headers.get("Content-Encoding"),
                            await resp.read(),
                        )

                results = await asyncio.gather(*(scrape(i) for i in range(N_SCRAPES)))
            stop.set()
            await task
        return results, updates, counter

    results, updates, counter = asyncio.run(scenario())
    assert updates > 0
    assert len(results) == N_SCRAPES
    totals = []
    for i, (status, encoding, body) in enumerate(results):
        assert status == 200
        # aiohttp decompresses transparently; gzip was used when asked for.
        assert encoding == ("gzip" if i % 2 else None)
        samples = parse_samples(body, "load_updates_total")
        assert len(samples) == N_SERIES
        assert all(v >= 1 for v in samples.values())
        totals.append(sum(samples.values()))
    # Every scrape saw a consistent snapshot no later than the final state.
    final_total = sum(v for _, v in counter.get_all())
    assert final_total == N_SERIES + updates
    assert all(N_SERIES <= t <= final_total for t in totals)


@pytest.mark.parametrize(
    "accept",
    [
        "garbage",
        "application/x-nonsense;;;q=abc",
        "*/*",
        "",
        ";;,,;",
        "text/html, image/png",
    ],
)
def test_garbage_accept_gets_text(accept):
    async def scenario():
        registry = Registry()
        Gauge("fault_gauge", "x", registry=registry).set({"a": "b"}, 3)
        svc = Service(registry=registry)
        await svc.start(addr="127.0.0.1")
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                async with session.get(
                    svc.metrics_url,
                    headers={"Accept": accept, "Accept-Encoding": "gzip"},
                ) as resp:
                    return resp.status, dict(resp.headers), await resp.read()
        finally:
            await svc.stop()

    status, headers, body = asyncio.run(scenario())
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    families = list(text_string_to_metric_families(text))
    assert [
        s.value for f in families for s in f.samples if s.name == "fault_gauge"
    ] == [3]


def test_stop_frees_the_port():
    async def scenario():
        svc = Service(registry=Registry())
        await svc.start(addr="127.0.0.1", port=0)
        port = int(svc.base_url.rsplit(":", 1)[1])
        async with aiohttp.ClientSession() as session:
            # Leave a keep-alive connection open across stop().
            async with session.get(svc.metrics_url) as resp:
                assert resp.status == 200
                await resp.read()
            await svc.stop()
            with socket.socket() as sock:
                # SO_REUSEADDR tolerates TIME_WAIT leftovers, not a listener.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
                sock.listen()
            with pytest.raises(aiohttp.ClientConnectionError):
                async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    await resp.read()
        # The same port can be served again.
        again = Service(registry=Registry())
        await again.start(addr="127.0.0.1", port=port)
        assert again.base_url.endswith(f":{port}")
        await again.stop()

    asyncio.run(scenario())
