"""timer, inprogress and count_exceptions on sync and async functions."""

import asyncio

import pytest

from aioprometheus import (
    Counter,
    Gauge,
    Histogram,
    Summary,
    count_exceptions,
    inprogress,
    timer,
)


def test_timer_sync_and_async_with_labels(registry):
    s = Summary("s", "doc", registry=registry)
    h = Histogram("h", "doc", registry=registry)

    @timer(s, {"f": "sync"})
    def sync_work(x):
        return x * 2

    @timer(h)
    async def async_work(x):
        await asyncio.sleep(0.01)
        return x + 1

    assert sync_work(2) == 4
    assert asyncio.run(async_work(1)) == 2
    assert s.get({"f": "sync"})["count"] == 1
    assert h.get({})["count"] == 1
    assert h.get({})["sum"] >= 0.009
    assert asyncio.iscoroutinefunction(async_work)
    assert sync_work.__name__ == "sync_work"


def test_timer_records_calls_that_raise(registry):
    s = Summary("s", "doc", registry=registry)

    @timer(s)
    def boom():
        raise RuntimeError("x")

    @timer(s)
    async def aboom():
        raise RuntimeError("y")

    with pytest.raises(RuntimeError):
        boom()
    with pytest.raises(RuntimeError):
        asyncio.run(aboom())
    assert s.get({})["count"] == 2


def test_inprogress_tracks_running_calls(registry):
    g = Gauge("g", "doc", registry=registry)
    seen = []

    @inprogress(g, {"w": "a"})
    async def work():
        seen.append(g.get({"w": "a"}))
        await asyncio.sleep(0)

    @inprogress(g, {"w": "a"})
    def fails():
        seen.append(g.get({"w": "a"}))
        raise ValueError

    async def main():
        await asyncio.gather(work(), work())

    asyncio.run(main())
    with pytest.raises(ValueError):
        fails()
    assert seen == [1, 2, 1]
    assert g.get({"w": "a"}) == 0


def test_count_exceptions(registry):
    c = Counter("c", "doc", registry=registry)

    @count_exceptions(c, {"f": "x"})
    def maybe(fail):
        if fail:
            raise KeyError
        return "ok"

    @count_exceptions(c)
    async def amaybe(fail):
        if fail:
            raise KeyError
        return "ok"

    assert maybe(False) == "ok"
    with pytest.raises(KeyError):
        maybe(True)
    assert asyncio.run(amaybe(False)) == "ok"
    with pytest.raises(KeyError):
        asyncio.run(amaybe(True))
    assert c.get({"f": "x"}) == 1
    assert c.get({}) == 1


def test_decorators_reject_wrong_metric_kinds(registry):
    c = Counter("c", "doc", registry=registry)
    g = Gauge("g", "doc", registry=registry)
    with pytest.raises(TypeError):
        timer(c)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        inprogress(c)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        count_exceptions(g)  # type: ignore[arg-type]
