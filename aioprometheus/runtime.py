"""Runtime collectors: the process, the interpreter, its GC and the event loop.

Opt-in with one line, :func:`register_default_collectors`, because
aioprometheus 23.12's registry starts empty and drop-in output must not
change. Each collector is a group of ordinary metrics plus a refresh hook the
registry runs whenever a scrape reads it (``Registry.sorted_collectors``), so
values are read at scrape time, on the scraping thread, and never by a timer
thread. The event-loop lag probe is the one exception to "read at scrape
time": lateness can only be seen while it happens, so a callback on the loop
itself measures it.
"""

import asyncio
import gc
import os
import platform
import resource
from typing import List, Optional, Sequence

from .collectors import Counter, Gauge, Histogram, Registry, get_registry

# /proc/self/stat fields (man 5 proc) as indexes into what follows the ")"
# that ends the command name (index 0 is field 3, the state): utime, stime,
# starttime, vsize, rss
_STAT_UTIME, _STAT_STIME, _STAT_STARTTIME, _STAT_VSIZE, _STAT_RSS = 11, 12, 19, 20, 21

# How late a probe may run, in seconds: a millisecond (the epoll timeout's
# granularity) up to a loop frozen for seconds (then +Inf).
LOOP_LAG_BUCKETS = (0.001, 0.0025) + Histogram.DEFAULT_BUCKETS[:-1]
DEFAULT_PROBE_PERIOD = 0.1


class ProcessCollector:
    """CPU, memory, file descriptors and start time from Linux ``/proc``.

    The names are prometheus_client's, so existing dashboards keep working.
    Where ``/proc/self/stat`` does not exist (not Linux), nothing is
    registered.
    """

    def __init__(self, registry: Registry, proc: str = "/proc") -> None:
        self._proc = proc
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._page_size = resource.getpagesize()
        self._boot_time = self._read_boot_time()
        self.cpu_seconds = Counter(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            registry=registry,
        )
        self.virtual_memory = Gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            registry=registry,
        )
        self.resident_memory = Gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            registry=registry,
        )
        self.start_time = Gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            registry=registry,
        )
        self.open_fds = Gauge(
            "process_open_fds", "Number of open file descriptors.", registry=registry
        )
        self.max_fds = Gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            registry=registry,
        )
        registry.add_refresh(self.refresh)

    @staticmethod
    def available(proc: str = "/proc") -> bool:
        """Whether this system has the ``/proc`` files the collector reads."""
        return os.path.exists(os.path.join(proc, "self", "stat"))

    def _read_boot_time(self) -> float:
        with open(os.path.join(self._proc, "stat"), "rb") as stat:
            for line in stat:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
        raise OSError(f"no btime line in {self._proc}/stat")

    def refresh(self) -> None:
        """Read ``/proc/self`` into the metrics; a failed read keeps the last values."""
        try:
            with open(os.path.join(self._proc, "self", "stat"), "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            open_fds = len(os.listdir(os.path.join(self._proc, "self", "fd")))
        except OSError:
            return
        ticks = int(fields[_STAT_UTIME]) + int(fields[_STAT_STIME])
        self.cpu_seconds.set(None, ticks / self._ticks)
        self.virtual_memory.set(None, int(fields[_STAT_VSIZE]))
        self.resident_memory.set(None, int(fields[_STAT_RSS]) * self._page_size)
        self.start_time.set(
            None, self._boot_time + int(fields[_STAT_STARTTIME]) / self._ticks
        )
        self.open_fds.set(None, open_fds)
        self.max_fds.set(None, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


class PlatformCollector:
    """``python_info``: which interpreter runs the process, as a constant 1."""

    def __init__(self, registry: Registry) -> None:
        major, minor, patchlevel = platform.python_version_tuple()
        self.info = Gauge(
            "python_info", "Python platform information", registry=registry
        )
        self.info.set(
            {
                "implementation": platform.python_implementation(),
                "major": major,
                "minor": minor,
                "patchlevel": patchlevel,
                "version": platform.python_version(),
            },
            1,
        )


class GCCollector:
    """The cyclic garbage collector's work per generation (``gc.get_stats``)."""

    def __init__(self, registry: Registry) -> None:
        self.collected = Counter(
            "python_gc_objects_collected_total",
            "Objects collected during gc",
            registry=registry,
        )
        self.uncollectable = Counter(
            "python_gc_objects_uncollectable_total",
            "Uncollectable objects found during GC",
            registry=registry,
        )
        self.collections = Counter(
            "python_gc_collections_total",
            "Number of times this generation was collected",
            registry=registry,
        )
        self._generations = [{"generation": str(n)} for n in range(len(gc.get_stats()))]
        registry.add_refresh(self.refresh)

    def refresh(self) -> None:
        for labels, stats in zip(self._generations, gc.get_stats()):
            self.collected.set(labels, stats["collected"])
            self.uncollectable.set(labels, stats["uncollectable"])
            self.collections.set(labels, stats["collections"])


class EventLoopCollector:
    """How late the asyncio event loop runs callbacks, and how many tasks it has.

    A probe callback is scheduled on the loop every `period` seconds; how much
    later than its due time it runs is observed into
    ``python_asyncio_loop_lag_seconds``. A loop blocked for longer than
    `period` is always seen; shorter blocks are seen when a probe falls due
    during them. ``python_asyncio_tasks`` counts the loop's unfinished tasks
    at scrape time.

    The probe attaches to `loop`, or when that is None to the loop running
    when the collector is created, or else to the first loop a scrape reads
    the registry on (``Service`` and the ASGI handlers read it on the
    application's loop). If that loop closes, the next scrape on another
    running loop moves the probe there.
    """

    def __init__(
        self,
        registry: Registry,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        period: float = DEFAULT_PROBE_PERIOD,
        buckets: Sequence[float] = LOOP_LAG_BUCKETS,
    ) -> None:
        if not isinstance(period, (int, float)) or not period > 0:
            raise ValueError(f"period must be a number of seconds > 0, got {period!r}")
        self.period = float(period)
        self.lag = Histogram(
            "python_asyncio_loop_lag_seconds",
            "How late the event loop ran a callback scheduled for a given time.",
            buckets=buckets,
            registry=registry,
        )
        self.tasks = Gauge(
            "python_asyncio_tasks",
            "Tasks of the event loop that are not done.",
            registry=registry,
        )
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._closed = False
        self._probe_handle: Optional[asyncio.TimerHandle] = None
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        if loop is not None:
            self.attach(loop)
        registry.add_refresh(self.refresh)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Probe `loop` from now on (thread-safe; stops probing the previous one)."""
        if self._closed:
            raise RuntimeError("this EventLoopCollector is closed")
        previous, self._loop = self._loop, loop
        if previous is not None and previous is not loop and not previous.is_closed():
            previous.call_soon_threadsafe(self._cancel_probe)
        if previous is not loop:
            loop.call_soon_threadsafe(self._schedule, loop)

    def close(self) -> None:
        """Stop probing, for good (the metrics keep their last values)."""
        self._closed = True
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._cancel_probe)

    def _cancel_probe(self) -> None:
        if self._probe_handle is not None:
            self._probe_handle.cancel()
            self._probe_handle = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:
            return
        due = loop.time() + self.period
        self._probe_handle = loop.call_at(due, self._probe, loop, due)

    def _probe(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        # asyncio runs timers up to one clock resolution early: never negative
        self.lag.observe(None, max(loop.time() - due, 0.0))
        self._schedule(loop)

    def refresh(self) -> None:
        """Count the loop's tasks; attach to the scraping loop if none is probed."""
        if self._closed:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                return
            self.attach(running)
            loop = running
        # all_tasks retries by itself when another thread changes the task set
        self.tasks.set(None, len(asyncio.all_tasks(loop)))


def register_default_collectors(
    registry: Optional[Registry] = None,
    loop: Optional[asyncio.AbstractEventLoop] = None,
    loop_probe_period: float = DEFAULT_PROBE_PERIOD,
) -> List[object]:
    """Register the process (on Linux), platform, GC and event-loop collectors.

    Returns the collectors, so a caller can ``close()`` the event-loop one.
    """
    if registry is None:
        registry = get_registry()
    collectors: List[object] = []
    if ProcessCollector.available():
        collectors.append(ProcessCollector(registry))
    collectors.append(PlatformCollector(registry))
    collectors.append(GCCollector(registry))
    collectors.append(EventLoopCollector(registry, loop=loop, period=loop_probe_period))
    return collectors


__all__: List[str] = [
    "EventLoopCollector",
    "GCCollector",
    "LOOP_LAG_BUCKETS",
    "PlatformCollector",
    "ProcessCollector",
    "register_default_collectors",
]
