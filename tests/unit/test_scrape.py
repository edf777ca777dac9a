"""scrape(): what every HTTP front end answers, off the loop and coalesced."""

import asyncio
import gzip

import pytest

from aioprometheus import Counter, Gauge, Registry
from aioprometheus.formats.binary import BINARY_CONTENT_TYPE, decode
from aioprometheus.formats.text import TEXT_CONTENT_TYPE, TextFormatter
from aioprometheus.renderer import scrape

PROTOBUF_ACCEPT = [
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
    "encoding=delimited"
]


def counting_registry():
    """A registry whose one Python-computed collector counts its reads."""
    registry = Registry()
    Counter("c_total", "doc", registry=registry).inc({"k": "v"})
    reads = []

    class Computed(Gauge):
        def get_all(self):
            reads.append(1)
            return [({"at": "scrape"}, 1.5)]

    Computed("computed", "doc", registry=registry)
    return registry, reads


def test_text_and_gzip_bodies_match_the_formatter():
    registry, _ = counting_registry()

    async def main():
        plain, plain_headers = await scrape(registry, [], [])
        zipped, zipped_headers = await scrape(registry, [], ["gzip, deflate"])
        proto, proto_headers = await scrape(registry, PROTOBUF_ACCEPT, ["br"])
        return plain, plain_headers, zipped, zipped_headers, proto, proto_headers

    plain, plain_headers, zipped, zipped_headers, proto, proto_headers = asyncio.run(
        main()
    )
    assert plain == TextFormatter().marshall(registry)
    assert plain_headers["Content-Type"] == TEXT_CONTENT_TYPE
    assert "Content-Encoding" not in plain_headers
    assert zipped_headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped) == plain
    assert proto_headers["Content-Type"] == BINARY_CONTENT_TYPE
    assert [f.name for f in decode(proto)] == ["c_total", "computed"]


def test_a_burst_of_scrapes_is_read_once_and_shares_the_bytes():
    registry, reads = counting_registry()

    async def main():
        burst = [scrape(registry, [], ["gzip"]) for _ in range(50)]
        return await asyncio.gather(*burst)

    results = asyncio.run(main())
    assert len(reads) == 1
    assert len({body for body, _ in results}) == 1
    assert gzip.decompress(results[0][0]) == TextFormatter().marshall(registry)


def test_scrapes_of_other_formats_or_encodings_are_not_shared():
    registry, reads = counting_registry()

    async def main():
        return await asyncio.gather(
            scrape(registry, [], []),
            scrape(registry, [], ["gzip"]),
            scrape(registry, PROTOBUF_ACCEPT, []),
        )

    asyncio.run(main())
    assert len(reads) == 3


def test_a_later_scrape_reads_again():
    registry, reads = counting_registry()

    async def main():
        await scrape(registry, [], [])
        await scrape(registry, [], [])

    asyncio.run(main())
    assert len(reads) == 2


def test_a_failing_collector_fails_every_scrape_that_shared_it():
    registry = Registry()

    class Broken(Gauge):
        def get_all(self):
            raise RuntimeError("collector failed")

    Broken("broken", "doc", registry=registry)

    async def main():
        return await asyncio.gather(
            *(scrape(registry, [], []) for _ in range(3)), return_exceptions=True
        )

    outcomes = asyncio.run(main())
    assert all(isinstance(o, RuntimeError) for o in outcomes)


def test_a_cancelled_scrape_does_not_cancel_the_shared_one():
    registry, reads = counting_registry()

    async def main():
        first = asyncio.ensure_future(scrape(registry, [], []))
        second = asyncio.ensure_future(scrape(registry, [], []))
        await asyncio.sleep(0)
        first.cancel()
        body, _ = await second
        with pytest.raises(asyncio.CancelledError):
            await first
        return body

    assert asyncio.run(main()) == TextFormatter().marshall(registry)


def test_service_answers_a_burst_of_scrapes_with_one_read():
    """Service reads the registry on the application's loop once per burst
    of same-kind scrapes (client_golang's promhttp does the same)."""
    import aiohttp

    from aioprometheus import Service

    registry, reads = counting_registry()

    async def main():
        svc = Service(registry=registry)
        await svc.start(addr="127.0.0.1")
        try:
            async with aiohttp.ClientSession() as session:

                async def fetch():
                    async with session.get(
                        svc.metrics_url, headers={"Accept-Encoding": "gzip"}
                    ) as resp:
                        return resp.status, await resp.read()

                return await asyncio.gather(*(fetch() for _ in range(30)))
        finally:
            await svc.stop()

    results = asyncio.run(main())
    assert {status for status, _ in results} == {200}
    assert len({body for _, body in results}) == 1
    assert b"computed" in results[0][1]
    assert len(reads) < 30  # shared: 30 scrapes, far fewer reads
