"""scrape() encodes in render threads of its own: independent of the loop's
default executor, and working again in a forked child."""

import asyncio
import concurrent.futures
import gzip
import os
import sys
import threading

import pytest

from aioprometheus import Counter, Registry, renderer
from aioprometheus.formats.text import TextFormatter
from aioprometheus.renderer import scrape


def small_registry():
    registry = Registry()
    Counter("c_total", "doc", registry=registry).inc({"k": "v"})
    return registry


def test_a_scrape_does_not_wait_for_the_default_executor():
    """The application's blocking jobs fill the loop's default executor; a
    scrape is answered all the same."""
    registry = small_registry()
    release = threading.Event()

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(1))
        blocked = loop.run_in_executor(None, release.wait, 10)
        try:
            return await asyncio.wait_for(scrape(registry, [], ["gzip"]), 5)
        finally:
            release.set()
            await blocked

    body, headers = asyncio.run(main())
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == TextFormatter().marshall(registry)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_scrapes_with_threads_of_its_own():
    registry = small_registry()
    asyncio.run(scrape(registry, [], []))  # the parent's render threads exist
    expected = TextFormatter().marshall(registry)
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its scrape is answered in time
        code = 1
        try:
            body, _ = asyncio.run(asyncio.wait_for(scrape(registry, [], []), 5))
            code = 0 if body == expected else 2
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_a_gzip_scrape_is_compressed_while_it_is_encoded():
    """The encoder hands a big snapshot's blocks to a compressing thread as
    they are written: the compressor has taken several before the encoder
    is done, and the answer is one gzip stream of the whole body."""
    registry = Registry()
    c = Counter("c_total", "doc", registry=registry)
    for i in range(30_000):
        c.add({"path": f"/api/v1/items/{i}", "method": "GET"}, i)
    taken_while_encoding = []
    encode = TextFormatter().prepare_stream(registry)

    def watched(emit):
        def counting(part):
            emit(part)
            taken_while_encoding.append(len(part))

        encode(counting)

    body = renderer._encode_and_compress(watched, True)
    assert gzip.decompress(body) == TextFormatter().marshall(registry)
    assert len(taken_while_encoding) >= 4


def test_a_small_gzip_body_is_compressed_without_waking_a_thread(monkeypatch):
    """Below _COMPRESS_ALONGSIDE the encoding's own thread compresses the
    body at the end (a compressing thread's wake-up costs more); from it on,
    a compressing thread takes the parts kept so far and the rest."""
    asked = []
    pool = renderer._pool

    def watched_pool(name):
        asked.append(name)
        return pool(name)

    monkeypatch.setattr(renderer, "_pool", watched_pool)
    for size, threads in (
        (renderer._COMPRESS_ALONGSIDE - 1, []),
        (renderer._COMPRESS_ALONGSIDE, ["gzip"]),
    ):
        asked.clear()
        parts = [
            b"a" * (size // 3),
            b"b" * (size // 3),
            b"c" * (size - 2 * (size // 3)),
        ]

        def encode(emit, parts=parts):
            for part in parts:
                emit(part)

        assert gzip.decompress(renderer._encode_and_compress(encode, True)) == b"".join(
            parts
        )
        assert asked == threads


def test_an_encoding_that_fails_frees_its_compressing_thread():
    """An encoder raising after handing over a part: the error reaches the
    scrape, and the compressing threads serve later scrapes (none is left
    waiting for parts that never come)."""

    def failing(emit):
        emit(b"x" * 1000)
        raise RuntimeError("encoder failed")

    for _ in range(renderer._RENDER_THREADS + 1):
        with pytest.raises(RuntimeError, match="encoder failed"):
            renderer._pool("render").submit(
                renderer._encode_and_compress, failing, True
            ).result(timeout=10)
    body, headers = asyncio.run(scrape(small_registry(), [], ["gzip"]))
    assert headers["Content-Encoding"] == "gzip"
    assert b'c_total{k="v"} 1' in gzip.decompress(body)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux niceness")
def test_render_and_gzip_threads_yield_the_cpu_to_the_application():
    """The threads that encode and compress scrapes are nicer than the
    application's, so a busy machine runs the event loop first (the gzip
    threads are started by render threads, and are no nicer for it)."""
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert renderer._APPLICATION_NICENESS == here
    for name in ("render", "gzip"):
        theirs = (
            renderer._pool(name)
            .submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            .result(timeout=10)
        )
        assert theirs == min(19, here + renderer.RENDER_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == here
