"""scrape() encodes in render threads of its own: independent of the loop's
default executor, and working again in a forked child."""

import asyncio
import concurrent.futures
import gzip
import os
import sys
import threading

import pytest

from aioprometheus import Counter, Registry
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
