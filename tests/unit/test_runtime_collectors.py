"""The runtime collectors: prometheus_client's names, values read at scrape
time that agree with the system's own accounts, and an event-loop probe that
sees the loop blocked."""

import asyncio
import gc
import os
import platform
import resource
import subprocess
import sys
import time

import aiohttp
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aioprometheus import REGISTRY, Registry, Service, render
from aioprometheus.collectors import register_default_collectors
from aioprometheus.runtime import EventLoopCollector, ProcessCollector

linux_only = pytest.mark.skipif(
    not ProcessCollector.available(), reason="the process collector reads Linux /proc"
)


def scrape(registry):
    """{(sample name, sorted labels): value} of one text render."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(render(registry, [])[0].decode())
        for sample in family.samples
    }


def families(text):
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_nothing_is_registered_unless_asked():
    assert REGISTRY.get_all() == []
    assert render(REGISTRY, [])[0] == b""


@linux_only
def test_names_and_types_match_prometheus_client():
    ours = Registry()
    register_default_collectors(ours)
    theirs = prometheus_client.CollectorRegistry()
    prometheus_client.ProcessCollector(registry=theirs)
    prometheus_client.PlatformCollector(registry=theirs)
    prometheus_client.GCCollector(registry=theirs)
    ours_families = families(render(ours, [])[0].decode())
    theirs_families = families(prometheus_client.generate_latest(theirs).decode())
    assert {
        name: kind for name, kind in ours_families.items() if name in theirs_families
    } == (theirs_families)
    # the event-loop metrics come on top, and nothing else
    assert set(ours_families) - set(theirs_families) == {
        "python_asyncio_loop_lag_seconds",
        "python_asyncio_tasks",
    }


def test_python_info_has_prometheus_client_labels():
    ours = Registry()
    register_default_collectors(ours)
    theirs = prometheus_client.CollectorRegistry()
    prometheus_client.PlatformCollector(registry=theirs)
    info = {
        key: value for key, value in scrape(ours).items() if key[0] == "python_info"
    }
    expected = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(
            prometheus_client.generate_latest(theirs).decode()
        )
        for sample in family.samples
    }
    assert info == expected
    assert dict(next(iter(info))[1])["version"] == platform.python_version()


@linux_only
def test_process_values_agree_with_the_system():
    registry = Registry()
    register_default_collectors(registry)
    cpu_before = time.process_time()
    values = scrape(registry)
    cpu_after = time.process_time()
    # /proc counts whole clock ticks; allow one tick each for user and system
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert (
        cpu_before - 2 * tick <= values[("process_cpu_seconds_total", ())] <= cpu_after
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    resident = values[("process_resident_memory_bytes", ())]
    assert 0 < resident <= usage.ru_maxrss * 1024
    assert values[("process_virtual_memory_bytes", ())] >= resident
    assert (
        values[("process_max_fds", ())] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    )
    opened = [open(os.devnull) for _ in range(5)]
    try:
        more = scrape(registry)[("process_open_fds", ())]
    finally:
        for handle in opened:
            handle.close()
    assert more == values[("process_open_fds", ())] + 5


@linux_only
def test_process_start_time_is_when_the_process_started():
    before = time.time()
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from aioprometheus import Registry, render;"
            "from aioprometheus.runtime import ProcessCollector;"
            "r = Registry(); ProcessCollector(r);"
            "print(render(r, [])[0].decode())",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        ),
    )
    after = time.time()
    start = next(
        sample.value
        for family in text_string_to_metric_families(child.stdout)
        for sample in family.samples
        if sample.name == "process_start_time_seconds"
    )
    # boot time and start ticks are whole seconds and ticks apart
    assert before - 1.5 <= start <= after


def test_gc_counts_follow_gc_get_stats():
    registry = Registry()
    register_default_collectors(registry)
    before = scrape(registry)
    gc.collect()
    after = scrape(registry)
    key = ("python_gc_collections_total", (("generation", "2"),))
    assert after[key] >= before[key] + 1
    stats = gc.get_stats()
    assert after[key] <= stats[2]["collections"]


def lag_count_over(values, seconds):
    """Observations of the lag histogram greater than `seconds` (a bound)."""
    total = values[("python_asyncio_loop_lag_seconds_count", ())]
    at_most = values[
        ("python_asyncio_loop_lag_seconds_bucket", (("le", str(seconds)),))
    ]
    return total - at_most


def test_event_loop_probe_sees_a_blocked_loop_and_counts_tasks():
    async def scenario():
        registry = Registry()
        EventLoopCollector(registry, period=0.01)
        sleepers = [asyncio.ensure_future(asyncio.sleep(10)) for _ in range(7)]
        await asyncio.sleep(0.05)
        quiet = scrape(registry)
        time.sleep(0.3)  # blocks the loop: the next probe runs ~0.3 s late
        await asyncio.sleep(0.05)
        blocked = scrape(registry)
        for task in sleepers:
            task.cancel()
        await asyncio.gather(*sleepers, return_exceptions=True)
        return quiet, blocked, scrape(registry)

    quiet, blocked, done = asyncio.run(scenario())
    assert quiet[("python_asyncio_loop_lag_seconds_count", ())] >= 2
    assert lag_count_over(quiet, 0.1) == 0
    assert lag_count_over(blocked, 0.25) == 1
    # the 7 sleepers and the scenario itself; then only the scenario
    assert quiet[("python_asyncio_tasks", ())] == 8
    assert done[("python_asyncio_tasks", ())] == 1


def test_probe_attaches_at_the_first_scrape_and_moves_when_the_loop_closes():
    registry = Registry()
    collector = EventLoopCollector(registry, period=0.01)  # no loop running here

    def probes():
        return scrape(registry).get(("python_asyncio_loop_lag_seconds_count", ()), 0)

    async def probed_for(seconds):
        before = probes()  # a scrape on this loop attaches the probe
        await asyncio.sleep(seconds)
        return probes() - before

    assert probes() == 0
    assert asyncio.run(probed_for(0.1)) >= 3
    assert asyncio.run(probed_for(0.1)) >= 3  # a new loop: the probe moved
    collector.close()

    async def after_close():
        return await probed_for(0.1)

    assert asyncio.run(after_close()) == 0  # a scrape no longer attaches it


def test_service_scrapes_read_the_application_loop():
    async def scenario():
        registry = Registry()
        register_default_collectors(registry, loop_probe_period=0.01)
        service = Service(registry=registry)
        await service.start(addr="127.0.0.1")
        background = [asyncio.ensure_future(asyncio.sleep(10)) for _ in range(3)]
        try:
            await asyncio.sleep(0.1)
            async with aiohttp.ClientSession() as session:
                async with session.get(service.metrics_url) as response:
                    text = await response.text()
        finally:
            for task in background:
                task.cancel()
            await service.stop()
        return text

    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(asyncio.run(scenario()))
        for sample in family.samples
        if not sample.labels
    }
    assert values["python_asyncio_tasks"] >= 4  # the 3 sleepers and the scenario
    assert values["python_asyncio_loop_lag_seconds_count"] >= 3


def test_bad_probe_period_is_refused():
    for period in (0, -1, "1", None):
        with pytest.raises(ValueError, match="period"):
            EventLoopCollector(Registry(), period=period)


def test_refresh_hooks_run_before_every_read_and_can_be_removed():
    registry = Registry()
    calls = []
    registry.add_refresh(lambda: calls.append(1))
    render(registry, [])
    render(registry, ["application/vnd.google.protobuf"])
    assert len(calls) == 2
    hook = registry._refresh_hooks[0]
    registry.remove_refresh(hook)
    render(registry, [])
    assert len(calls) == 2
    with pytest.raises(TypeError):
        registry.add_refresh("not callable")
