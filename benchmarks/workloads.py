"""Benchmark workloads and the worker process that runs them.

This module is deliberately self-contained (standard library only) because the
driver starts it as a *script* (``python benchmarks/workloads.py serve ...``) in
one subprocess per implementation, with ``PYTHONPATH`` pointing at exactly one
implementation.  ``sys.path[0]`` is then this folder, which holds no
``aioprometheus`` package, so the implementation under test is the only one
the worker can import.

Two API families are measured with the same workloads:

* ``aioprometheus``: ours and aioprometheus 23.12.0 (identical public API,
  ``c.inc(labels_dict)``),
* ``prometheus_client``: its idiomatic API (``c.labels(**labels).inc()``).

Every workload is one function taking an :class:`Api` and returning what to
time: a :class:`Micro` (a statement run in a tight loop), a :class:`Call` (a
whole operation such as a render) or a special object for the scrape and the
asyncio loop.  Timing uses ``time.perf_counter_ns`` with the garbage collector
disabled; micro loops have the cost of the bare loop measured alongside with
the same N and subtracted ("net" ns/op; "raw" is kept too).
"""

import asyncio
import bisect
import gc
import importlib
import itertools
import json
import math
import os
import random
import sys
import time
from typing import Any, Callable, Dict, List, Optional

AIO = "aioprometheus"
PC = "prometheus_client"

LABELS = {"method": "GET", "route": "/api/v1/items"}
METHODS = ("GET", "POST", "PUT", "DELETE")

# The clock of every timed loop; ``clock=cpu`` on the worker command line
# switches it to the process CPU time (ignores time spent descheduled on a busy
# machine).  Scrape latency is always wall time.
wall_clock = time.perf_counter_ns
clock = wall_clock


class Unavailable(Exception):
    """The implementation does not offer this workload (or not yet)."""


class Api:
    """The implementation under test, imported by family name."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.mod = importlib.import_module(family)

    def registry(self) -> Any:
        if self.family == PC:
            return self.mod.CollectorRegistry()
        return self.mod.Registry()

    def metric(self, kind: str, name: str, doc: str, reg: Any, labelnames=()) -> Any:
        """Create a Counter/Gauge/Histogram/Summary with default settings."""
        cls = getattr(self.mod, kind)
        if self.family == PC:
            return cls(name, doc, labelnames=list(labelnames), registry=reg)
        return cls(name, doc, registry=reg)


class Micro:
    """A statement timed in ``for v in values: <stmt>`` (v: float values).

    ``against``: the floor timed within the same sample for the "x floor"
    ratio (default: ``floor``'s ``d.get(k)``).
    """

    def __init__(
        self, stmt: str, note: str = "", against: Optional["Micro"] = None, **names: Any
    ) -> None:
        self.stmt = stmt
        self.note = note
        self.against = against
        self.names = names


class Call:
    """A zero-argument callable timed as a whole (e.g. one render)."""

    def __init__(self, fn: Callable[[], Any], note: str = "") -> None:
        self.fn = fn
        self.note = note


# ---------------------------------------------------------------------------
# Micro workloads: one function each.  The statement is identical across
# implementations of one family; prometheus_client uses its idiomatic API.
# ---------------------------------------------------------------------------


def floor(api: Api) -> Micro:
    """One C call from Python: ``d.get(k)`` on a prebuilt key."""
    return Micro("d.get(k)", d={"key": 1, "other": 2}, k="key")


def counter_inc_labels(api: Api) -> Micro:
    labels = dict(LABELS)
    reg = api.registry()
    if api.family == PC:
        c = api.metric("Counter", "bench_requests", "Requests.", reg, labels)
        c.labels(**labels).inc()
        return Micro("c.labels(**labels).inc()", c=c, labels=labels)
    c = api.metric("Counter", "bench_requests_total", "Requests.", reg)
    c.inc(labels)
    return Micro("c.inc(labels)", c=c, labels=labels)


def counter_inc_varied(api: Api) -> Micro:
    """Like counter_inc_labels, but each call brings another of 64 label dicts
    (the cost of `next()` on a cycle is in every implementation's figure)."""
    pool = [{"method": METHODS[i % 4], "route": f"/api/v1/r{i}"} for i in range(64)]
    reg = api.registry()
    if api.family == PC:
        c = api.metric("Counter", "bench_varied", "Requests.", reg, pool[0])
        for labels in pool:
            c.labels(**labels).inc()
        return Micro("c.labels(**next(pool)).inc()", c=c, pool=itertools.cycle(pool))
    c = api.metric("Counter", "bench_varied_total", "Requests.", reg)
    for labels in pool:
        c.inc(labels)
    return Micro("c.inc(next(pool))", c=c, pool=itertools.cycle(pool))


ROUTES = tuple(f"/api/v1/route{i}" for i in range(100))


def floor_literal(api: Api) -> Micro:
    """The floor of counter_inc_literal: the same dict literal built per
    call, then one C call on it."""
    return Micro(
        '{"path": next(routes), "method": "GET"}.get(k)',
        routes=itertools.cycle(ROUTES),
        k="path",
    )


def counter_inc_literal(api: Api) -> Micro:
    """The web-server pattern: a fresh dict literal per call, the route one
    of 100 (prometheus_client: the same values as keyword arguments)."""
    reg = api.registry()
    routes = itertools.cycle(ROUTES)
    if api.family == PC:
        c = api.metric("Counter", "bench_routes", "Requests.", reg, ("path", "method"))
        for route in ROUTES:
            c.labels(path=route, method="GET").inc()
        stmt = 'c.labels(path=next(routes), method="GET").inc()'
    else:
        c = api.metric("Counter", "bench_routes_total", "Requests.", reg)
        for route in ROUTES:
            c.inc({"path": route, "method": "GET"})
        stmt = 'c.inc({"path": next(routes), "method": "GET"})'
    return Micro(stmt, against=floor_literal(api), c=c, routes=routes)


def counter_inc_nolabels(api: Api) -> Micro:
    reg = api.registry()
    if api.family == PC:
        c = api.metric("Counter", "bench_events", "Events.", reg)
        c.inc()
        return Micro("c.inc()", c=c)
    c = api.metric("Counter", "bench_events_total", "Events.", reg)
    c.inc({})
    return Micro("c.inc({})", c=c)


def _labelled_call(api: Api, kind: str, name: str, doc: str, method: str) -> Micro:
    """`metric.<method>(labels, v)` on a 2-label series (prometheus_client:
    `metric.labels(**labels).<method>(v)`)."""
    labels = dict(LABELS)
    m = api.metric(kind, name, doc, api.registry(), labels)
    if api.family == PC:
        getattr(m.labels(**labels), method)(0.1)
        return Micro(f"m.labels(**labels).{method}(v)", m=m, labels=labels)
    getattr(m, method)(labels, 0.1)
    return Micro(f"m.{method}(labels, v)", m=m, labels=labels)


def gauge_set(api: Api) -> Micro:
    return _labelled_call(api, "Gauge", "bench_in_flight", "In flight.", "set")


def histogram_observe(api: Api) -> Micro:
    return _labelled_call(
        api, "Histogram", "bench_latency_seconds", "Latency.", "observe"
    )


def summary_observe(api: Api) -> Micro:
    micro = _labelled_call(api, "Summary", "bench_size_bytes", "Size.", "observe")
    if api.family != PC:
        micro.note = summary_accuracy(api)
    return micro


def summary_accuracy(api: Api, n: int = 20_000) -> str:
    """Rank error of the reported quantiles on a fresh summary (not timed)."""
    s = api.metric("Summary", "bench_accuracy", "Accuracy.", api.registry())
    obs = values(n)
    for v in obs:
        s.observe({}, v)
    got = s.get({})
    ordered = sorted(obs)
    parts = []
    for q, eps in getattr(s, "invariants", ()) or (
        (0.5, 0.05),
        (0.9, 0.01),
        (0.99, 0.001),
    ):
        est = got.get(q)
        if est is None:
            continue
        # the estimate's rank range among the observations, as a fraction
        lo = bisect.bisect_left(ordered, est) / n
        hi = bisect.bisect_right(ordered, est) / n
        err = 0.0 if lo <= q <= hi else min(abs(lo - q), abs(hi - q))
        parts.append(f"q{q:g} rank err {err:.4f} (eps {eps:g})")
    return "; ".join(parts)


# ---------------------------------------------------------------------------
# Render workloads: a registry with N series (2-label counters and gauges,
# 500 series per metric, alternating kinds), rendered whole.
# ---------------------------------------------------------------------------

SERIES_PER_METRIC = 500


def build_fixture(api: Api, n_series: int) -> Any:
    """A registry holding ``n_series`` 2-label series, identical across impls."""
    reg = api.registry()
    n_metrics = max(1, math.ceil(n_series / SERIES_PER_METRIC))
    made = 0
    for m in range(n_metrics):
        count = min(SERIES_PER_METRIC, n_series - made)
        kind = "Counter" if m % 2 == 0 else "Gauge"
        name = f"bench_fixture_{m}" + ("_total" if kind == "Counter" else "")
        if api.family == PC and kind == "Counter":
            name = f"bench_fixture_{m}"  # prometheus_client appends _total
        metric = api.metric(
            kind, name, f"Fixture metric {m}.", reg, ("method", "route")
        )
        for i in range(count):
            method = METHODS[i % 4]
            route = f"/api/v1/resource/{m}/{i}"
            if kind == "Counter":
                value: float = i + 1
            else:
                value = i * 0.25 + 0.1
            if api.family == PC:
                child = metric.labels(method=method, route=route)
                if kind == "Counter":
                    child.inc(value)
                else:
                    child.set(value)
            elif kind == "Counter":
                metric.add({"method": method, "route": route}, value)
            else:
                metric.set({"method": method, "route": route}, value)
        made += count
    return reg


def text_formatter(api: Api) -> Callable[[Any], bytes]:
    if api.family == PC:
        generate_latest = api.mod.generate_latest
        return lambda reg: generate_latest(reg)
    from aioprometheus.formats.text import TextFormatter  # type: ignore

    fmt = TextFormatter()
    return lambda reg: fmt.marshall(reg)


def binary_formatter(api: Api) -> Callable[[Any], bytes]:
    if api.family == PC:
        raise Unavailable("prometheus_client has no protobuf exposition")
    try:
        from aioprometheus.formats.binary import BinaryFormatter  # type: ignore

        fmt = BinaryFormatter()
    except Exception as exc:  # ImportError, or a missing extra package
        raise Unavailable(f"{type(exc).__name__}: {exc}") from None
    return lambda reg: fmt.marshall(reg)


_FIXTURE_CACHE: Dict[int, Any] = {}


def fixture(api: Api, n_series: int) -> Any:
    """The fixture registry of ``n_series`` series, reused by consecutive
    steps of one worker (rendering and scraping do not change it)."""
    reg = _FIXTURE_CACHE.get(n_series)
    if reg is None:
        _FIXTURE_CACHE.clear()
        gc.collect()
        reg = _FIXTURE_CACHE[n_series] = build_fixture(api, n_series)
    return reg


def text_render(api: Api, n_series: int) -> Call:
    marshall = text_formatter(api)
    reg = fixture(api, n_series)
    size = len(marshall(reg))
    return Call(lambda: marshall(reg), note=f"{size} bytes")


def protobuf_render(api: Api, n_series: int) -> Call:
    marshall = binary_formatter(api)
    reg = fixture(api, n_series)
    try:
        size = len(marshall(reg))
    except (AttributeError, ImportError, NotImplementedError) as exc:
        # the formatter exists but its encoder is not wired in (yet)
        raise Unavailable(f"{type(exc).__name__}: {exc}") from None
    return Call(lambda: marshall(reg), note=f"{size} bytes")


# ---------------------------------------------------------------------------
# Scrape latency through an aiohttp exporter on 127.0.0.1 (loopback only),
# measured by a separate scraper process (stdlib http.client, keep-alive).
# aioprometheus (ours and 23.12): aioprometheus.service.Service.
# prometheus_client: its own aiohttp handler (prometheus_client.aiohttp,
# compression disabled) on an aiohttp AppRunner, i.e. the same HTTP stack.
# ---------------------------------------------------------------------------

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_HEADERS = {"Accept": "text/plain; version=0.0.4", "Accept-Encoding": "identity"}


class Scrape:
    MIN_REQUESTS = 3

    def __init__(self, api: Api, n_series: int, static: bool = False) -> None:
        """``static``: serve the pre-rendered text body from a bare aiohttp
        handler instead (the HTTP floor: same bytes, no render)."""
        self.api = api
        self.static_body: Optional[bytes] = None
        try:
            import aiohttp  # noqa: F401

            if static:
                pass
            elif api.family == PC:
                from prometheus_client.aiohttp import make_aiohttp_handler  # type: ignore

                self.make_handler = make_aiohttp_handler
            else:
                from aioprometheus.service import Service  # type: ignore

                self.Service = Service
        except ImportError as exc:
            raise Unavailable(f"ImportError: {exc}") from None
        self.reg = fixture(api, n_series)
        if static:
            self.static_body = text_formatter(api)(self.reg)

    async def _start(self):
        if self.api.family == PC or self.static_body is not None:
            from aiohttp import web

            app = web.Application()
            if self.static_body is not None:
                body = self.static_body

                async def handler(request: Any) -> Any:
                    return web.Response(
                        body=body, headers={"Content-Type": TEXT_CONTENT_TYPE}
                    )

            else:
                handler = self.make_handler(self.reg, disable_compression=True)
            app.router.add_get("/metrics", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]

            async def stop() -> None:
                await runner.cleanup()

            return f"http://{host}:{port}/metrics", stop
        svc = self.Service(registry=self.reg)
        await svc.start(addr="127.0.0.1", port=0)
        return svc.metrics_url, svc.stop

    async def _round(self, max_requests: int, budget_ns: float) -> List[int]:
        """Up to ``max_requests`` timed GETs, stopping early (after at least
        ``MIN_REQUESTS``) once ``budget_ns`` is spent, so slow peers do not
        dominate the run; fast implementations get more samples.

        The scraper is a separate process (as Prometheus is), a keep-alive
        ``http.client`` connection, so the client's own work does not run in
        the exporter's event loop.
        """
        url, stop = await self._start()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                os.path.abspath(__file__),
                "client",
                f"url={url}",
                f"max={max_requests}",
                f"min={self.MIN_REQUESTS}",
                f"budget_ns={budget_ns}",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await proc.communicate()
        finally:
            await stop()
        try:
            got = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError(f"scrape client failed: {err.decode()[-500:]}") from None
        if "error" in got:
            raise RuntimeError(f"scrape failed: {got['error']}")
        self.size = got["size"]
        return list(got["latencies"])

    def run(self, max_requests: int, budget_ns: float = math.inf) -> List[int]:
        gc.collect()
        gc.disable()
        try:
            return asyncio.run(self._round(max_requests, budget_ns))
        finally:
            gc.enable()


# ---------------------------------------------------------------------------
# High-frequency asyncio loop: TASKS tasks, each doing PER_ITER events per
# loop iteration (each event = a little arithmetic + one 2-label counter
# increment) and then yielding with ``await asyncio.sleep(0)``.  The same
# program without the increment is the baseline.
# ---------------------------------------------------------------------------

LOOP_TASKS = 8
LOOP_PER_ITER = 100

_LOOP_TEMPLATE = """
async def _task(iters, c, pool):
    acc = 0
    for _it in range(iters):
        for j in range({per_iter}):
            acc += j * 3
            labels = pool[j & 3]
            {stmt}
        await _sleep(0)
    return acc
"""


class AsyncLoop:
    def __init__(self, api: Api) -> None:
        self.api = api
        reg = api.registry()
        self.pool = [{"method": m, "route": "/api/v1/items"} for m in METHODS]
        if api.family == PC:
            self.c = api.metric(
                "Counter", "bench_loop_events", "Events.", reg, ("method", "route")
            )
            stmt = "c.labels(**labels).inc()"
        else:
            self.c = api.metric("Counter", "bench_loop_events_total", "Events.", reg)
            stmt = "c.inc(labels)"
        self.instrumented = _compile_loop(stmt)
        self.baseline = _compile_loop("pass")
        self.iters = 0

    async def _main(self, task: Callable, iters: int) -> int:
        t0 = clock()
        await asyncio.gather(
            *(task(iters, self.c, self.pool) for _ in range(LOOP_TASKS))
        )
        return clock() - t0

    def time_once(self, task: Callable, iters: int) -> int:
        return asyncio.run(self._main(task, iters))

    def events(self, iters: int) -> int:
        return iters * LOOP_TASKS * LOOP_PER_ITER


def _compile_loop(stmt: str) -> Callable:
    ns: Dict[str, Any] = {"_sleep": asyncio.sleep}
    exec(_LOOP_TEMPLATE.format(per_iter=LOOP_PER_ITER, stmt=stmt), ns)
    return ns["_task"]


# ---------------------------------------------------------------------------
# Memory per series: run in a fresh process (``workloads.py memory ...``).
# Unique label value strings are created inside the measured region.
# ---------------------------------------------------------------------------


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: peak RSS is the best we have
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def memory_per_series(api: Api, kind: str, n: int) -> Dict[str, Any]:
    """RSS growth per series for ``n`` new 2-label series of ``kind``."""
    reg = api.registry()
    if kind == "counter":
        metric = api.metric(
            "Counter",
            "bench_mem_total" if api.family == AIO else "bench_mem",
            "Memory.",
            reg,
            ("method", "route"),
        )
    elif kind == "histogram":
        metric = api.metric(
            "Histogram", "bench_mem_seconds", "Memory.", reg, ("method", "route")
        )
    else:
        raise ValueError(kind)

    def add(i: int, route: str) -> None:
        v = 0.001 * (i % 2000)
        if api.family == PC:
            child = metric.labels(method="GET", route=route)
            if kind == "counter":
                child.inc()
            else:
                child.observe(v)
        elif kind == "counter":
            metric.inc({"method": "GET", "route": route})
        else:
            metric.observe({"method": "GET", "route": route}, v)

    add(0, "/warmup")  # the metric's first series and code paths are not counted
    gc.collect()
    gc.disable()
    before = rss_bytes()
    for i in range(n):
        add(i, f"/api/v1/items/{i}")
    gc.collect()
    after = rss_bytes()
    gc.enable()
    return {
        "series": n,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_series": (after - before) / n,
    }


# ---------------------------------------------------------------------------
# Worker machinery: calibrated, warmed-up timing of the objects above.
# ---------------------------------------------------------------------------

_MICRO_TEMPLATE = """
def _timed(_values, _clock{params}):
    _t0 = _clock()
    for v in _values:
        {stmt}
    return _clock() - _t0
"""

_VALUES_CACHE: Dict[int, List[float]] = {}
_VALUES_BASE = 65536


def values(n: int) -> List[float]:
    """``n`` deterministic observation values spread across default buckets
    (lognormal, median 0.135), repeating with a period of 65536."""
    cached = _VALUES_CACHE.get(n)
    if cached is None:
        base = _VALUES_CACHE.get(-1)
        if base is None:
            rng = random.Random(20231200)
            base = [rng.lognormvariate(-2.0, 1.5) for _ in range(_VALUES_BASE)]
        cached = (base * (n // _VALUES_BASE + 1))[:n]
        _VALUES_CACHE.clear()
        _VALUES_CACHE[-1] = base
        _VALUES_CACHE[n] = cached
    return cached


def _compile_micro(stmt: str, names: Dict[str, Any]) -> Callable[..., int]:
    params = "".join(f", {k}" for k in names)
    ns: Dict[str, Any] = {}
    exec(_MICRO_TEMPLATE.format(params=params, stmt=stmt), ns)
    return ns["_timed"]


class MicroRunner:
    """Times a :class:`Micro`: net = (stmt loop - empty loop) / N.

    One sample is the best of ``REPEATS`` passes of each loop (alternating),
    which keeps a preempted pass on a busy machine from polluting the sample;
    the driver then takes the median over rounds.  With ``paired_floor`` the
    floor loop (``d.get(k)``, or the micro's ``against``) is timed in the same
    sample too, so the ratio to
    the floor is taken within one sample, immune to load drifting between
    steps.
    """

    REPEATS = 3

    def __init__(self, micro: Micro, target_ns: int, paired_floor: bool = True) -> None:
        self.names = micro.names
        self.timed = _compile_micro(micro.stmt, micro.names)
        self.empty = _compile_micro("pass", micro.names)
        self.floor_names: Dict[str, Any] = {}
        self.floor_fn: Optional[Callable[..., int]] = None
        self.floor_stmt: Optional[str] = None
        if paired_floor:
            fl = micro.against or floor(None)  # type: ignore[arg-type]
            self.floor_stmt = fl.stmt
            self.floor_names = fl.names
            self.floor_fn = _compile_micro(fl.stmt, fl.names)
        self.stmt = micro.stmt
        self.note = micro.note
        pass_ns = target_ns / self.REPEATS
        # calibrate N so that one timed pass takes about pass_ns
        n = 1000
        while True:
            t = self._pass(self.timed, n)
            if t >= pass_ns / 4 or n >= 4_000_000:
                break
            n *= 4
        per_op = max(t / n, 1.0)
        self.n = int(min(max(pass_ns / per_op, 1000), 4_000_000))
        self._pass(self.timed, self.n)  # warmup at the final size
        self._pass(self.empty, self.n)

    def _pass(self, fn: Callable[..., int], n: int, names=None) -> int:
        vals = values(n)
        args = (names if names is not None else self.names).values()
        gc.collect()
        gc.disable()
        try:
            return fn(vals, clock, *args)
        finally:
            gc.enable()

    def sample(self) -> Dict[str, Any]:
        empties, stmts, floors = [], [], []
        for _ in range(self.REPEATS):
            empties.append(self._pass(self.empty, self.n))
            stmts.append(self._pass(self.timed, self.n))
            if self.floor_fn is not None:
                floors.append(self._pass(self.floor_fn, self.n, self.floor_names))
        t_empty, t_stmt = min(empties), min(stmts)
        out = {
            "value": (t_stmt - t_empty) / self.n,
            "raw": t_stmt / self.n,
            "loop": t_empty / self.n,
            "n": self.n,
            "note": self.note,
        }
        if floors:
            t_floor = min(floors)
            out["floor"] = (t_floor - t_empty) / self.n
            out["floor_raw"] = t_floor / self.n
        return out


class CallRunner:
    """Times a :class:`Call`: one sample = median of k timed calls.

    k is calibrated so that a sample takes about target_ns (at least 1 call).
    """

    def __init__(self, call: Call, target_ns: int) -> None:
        self.fn = call.fn
        self.note = call.note
        t = min(self._times(1)[0], self._times(1)[0])  # warmup and estimate
        self.k = int(max(1, min(target_ns // max(t, 1), 200)))

    def _times(self, k: int) -> List[int]:
        fn = self.fn
        out = []
        gc.collect()
        gc.disable()
        try:
            for _ in range(k):
                t0 = clock()
                fn()
                out.append(clock() - t0)
            return out
        finally:
            gc.enable()

    def sample(self) -> Dict[str, Any]:
        times = sorted(self._times(self.k))
        mid = (
            times[len(times) // 2]
            if len(times) % 2
            else (times[len(times) // 2 - 1] + times[len(times) // 2]) / 2
        )
        return {"value": mid / 1e6, "k": self.k, "note": self.note}


class ScrapeRunner:
    def __init__(self, scrape: Scrape, requests: int, budget_ns: float) -> None:
        self.scrape = scrape
        self.requests = requests
        self.budget_ns = budget_ns
        scrape.run(1)  # warmup

    def sample(self) -> Dict[str, Any]:
        lat = self.scrape.run(self.requests, self.budget_ns)
        return {
            "latencies_ms": [x / 1e6 for x in lat],
            "value": _percentile([x / 1e6 for x in lat], 50),
            "note": f"{self.scrape.size} bytes",
        }


class LoopRunner:
    """One sample: the best of ``REPEATS`` runs of each program (alternating),
    each program sized to about target_ns / REPEATS."""

    REPEATS = 2

    def __init__(self, loop: AsyncLoop, target_ns: int) -> None:
        self.loop = loop
        iters = 10
        t = loop.time_once(loop.instrumented, iters)
        per_run = target_ns / self.REPEATS
        self.iters = int(max(10, min(iters * per_run / max(t, 1), 100_000)))
        loop.time_once(loop.instrumented, self.iters)  # warmup
        loop.time_once(loop.baseline, self.iters)

    def sample(self) -> Dict[str, Any]:
        loop = self.loop
        bases, instrs = [], []
        gc.collect()
        gc.disable()
        try:
            for _ in range(self.REPEATS):
                bases.append(loop.time_once(loop.baseline, self.iters))
                instrs.append(loop.time_once(loop.instrumented, self.iters))
        finally:
            gc.enable()
        t_base, t_instr = min(bases), min(instrs)
        events = loop.events(self.iters)
        return {
            "value": (t_instr - t_base) / events,
            "instrumented_ns_per_event": t_instr / events,
            "baseline_ns_per_event": t_base / events,
            "instrumented_events_per_s": events * 1e9 / t_instr,
            "baseline_events_per_s": events * 1e9 / t_base,
            "events": events,
        }


def _percentile(xs: List[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    if not s:
        return float("nan")
    rank = max(1, math.ceil(p / 100.0 * len(s)))
    return s[rank - 1]


MICRO = {
    "floor": floor,
    "counter_inc_labels": counter_inc_labels,
    "counter_inc_varied": counter_inc_varied,
    "floor_literal": floor_literal,
    "counter_inc_literal": counter_inc_literal,
    "counter_inc_nolabels": counter_inc_nolabels,
    "gauge_set": gauge_set,
    "histogram_observe": histogram_observe,
    "summary_observe": summary_observe,
}


FLOORS = ("floor", "floor_literal")  # reference loops: not paired with a floor


def prepare(api: Api, workload: str, params: Dict[str, Any]) -> Any:
    """Build the runner for one workload (setup, calibration, warmup)."""
    target_ns = int(params.get("target_ms", 20) * 1e6)
    if workload in MICRO:
        return MicroRunner(
            MICRO[workload](api), target_ns, paired_floor=workload not in FLOORS
        )
    if workload == "text_render":
        return CallRunner(text_render(api, params["series"]), target_ns)
    if workload == "protobuf_render":
        return CallRunner(protobuf_render(api, params["series"]), target_ns)
    if workload == "scrape":
        return ScrapeRunner(
            Scrape(api, params["series"], static=params.get("static", False)),
            params["requests"],
            params.get("budget_ms", math.inf) * 1e6,
        )
    if workload == "asyncio_loop":
        return LoopRunner(AsyncLoop(api), target_ns)
    if workload == "middleware":
        import middleware  # benchmarks/middleware.py, beside this script

        return middleware.HarnessRunner(api.family, params, clock)
    raise ValueError(f"unknown workload {workload!r}")


def identify(
    family: str,
    expect_dir: Optional[str],
    forbid_dir: Optional[str],
    require_core: bool,
) -> Dict[str, Any]:
    """Import the implementation and check it is the one we were meant to get."""
    info: Dict[str, Any] = {
        "family": family,
        "python": sys.version.split()[0],
        "executable": sys.executable,
    }
    try:
        mod = importlib.import_module(family)
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        return {**info, "ok": False, "reason": f"import {family} failed: {why}"}
    path = os.path.realpath(getattr(mod, "__file__", "") or "")
    info["module_file"] = path
    info["version"] = getattr(mod, "__version__", None)
    if info["version"] is None:
        try:
            from importlib.metadata import version

            info["version"] = version(family)
        except Exception:
            pass
    if expect_dir and not path.startswith(os.path.realpath(expect_dir) + os.sep):
        return {
            **info,
            "ok": False,
            "reason": f"{family} imported from {path}, expected under {expect_dir}",
        }
    if forbid_dir and path.startswith(os.path.realpath(forbid_dir) + os.sep):
        return {
            **info,
            "ok": False,
            "reason": f"{family} imported from {path}, inside {forbid_dir}",
        }
    if require_core:
        try:
            core = importlib.import_module(f"{family}._core")
            info["core_file"] = os.path.realpath(core.__file__ or "")
        except Exception as exc:
            return {**info, "ok": False, "reason": f"no compiled core: {exc!r}"}
    info["ok"] = True
    return info


def identify_opts(opts: Dict[str, str]) -> Dict[str, Any]:
    """:func:`identify` from a worker command line (family=, expect=, ...)."""
    return identify(
        opts["family"],
        opts.get("expect") or None,
        opts.get("forbid") or None,
        opts.get("core") == "1",
    )


def identify_main(args: List[str]) -> int:
    """Only the import check: the driver checks ours with it before the run."""
    info = identify_opts(dict(a.split("=", 1) for a in args))
    print(json.dumps(info))
    return 0 if info["ok"] else 1


def _freeze() -> None:
    """Move every live object out of the collector's sight, so the
    ``gc.collect()`` before each timed pass costs the same (next to nothing)
    whatever the implementation imported (aiohttp, protobuf, ...)."""
    gc.collect()
    gc.freeze()


def serve(args: List[str]) -> int:
    """Worker loop: JSON commands on stdin, one JSON answer per line."""
    global clock
    opts = dict(a.split("=", 1) for a in args)
    if opts.get("clock") == "cpu":
        clock = time.process_time_ns
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the libraries print goes to stderr
    sys.stdout = sys.stderr
    info = identify_opts(opts)
    proto.write(json.dumps(info) + "\n")
    if not info["ok"]:
        return 1
    api = Api(opts["family"])
    _freeze()
    runners: Dict[str, Any] = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        key = cmd.get("key", "")
        try:
            if cmd["cmd"] == "quit":
                break
            if cmd["cmd"] == "drop":
                runners.pop(key, None)
                gc.unfreeze()  # let the dropped step's cycles be collected
                _freeze()
                answer: Dict[str, Any] = {"status": "ok"}
            elif cmd["cmd"] == "sample":
                runner = runners.get(key)
                if runner is None:
                    runner = runners[key] = prepare(
                        api, cmd["workload"], cmd.get("params", {})
                    )
                    _freeze()
                if isinstance(runner, Unavailable):
                    raise runner
                answer = {"status": "ok", **runner.sample()}
            else:
                raise ValueError(f"unknown command {cmd['cmd']!r}")
        except Unavailable as exc:
            runners[key] = exc
            answer = {"status": "unavailable", "reason": str(exc)}
        except Exception as exc:
            runners[key] = Unavailable(f"{type(exc).__name__}: {exc}")
            answer = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
        proto.write(json.dumps(answer) + "\n")
    return 0


def memory_main(args: List[str]) -> int:
    opts = dict(a.split("=", 1) for a in args)
    info = identify_opts(opts)
    if not info["ok"]:
        print(json.dumps({"status": "error", "reason": info["reason"]}))
        return 1
    try:
        result = memory_per_series(Api(opts["family"]), opts["kind"], int(opts["n"]))
        print(
            json.dumps({"status": "ok", "value": result["bytes_per_series"], **result})
        )
    except Exception as exc:
        print(json.dumps({"status": "error", "reason": f"{type(exc).__name__}: {exc}"}))
    return 0


def scrape_client(args: List[str]) -> int:
    """The scraper process: sequential GETs over one keep-alive connection."""
    import http.client
    from urllib.parse import urlsplit

    opts = dict(a.split("=", 1) for a in args)
    url = urlsplit(opts["url"])
    max_requests, min_requests = int(opts["max"]), int(opts["min"])
    budget_ns = float(opts["budget_ns"])
    conn = http.client.HTTPConnection(
        url.hostname or "127.0.0.1", url.port, timeout=120
    )
    lat: List[int] = []
    size = 0
    start = wall_clock()
    for i in range(max_requests + 1):
        if len(lat) >= min_requests and wall_clock() - start > budget_ns:
            break
        t0 = wall_clock()
        conn.request("GET", url.path, headers=SCRAPE_HEADERS)
        resp = conn.getresponse()
        body = resp.read()
        t1 = wall_clock()
        if resp.status != 200 or not body:
            print(json.dumps({"error": f"HTTP {resp.status}"}))
            return 1
        if i:  # the first request opens and warms the connection
            lat.append(t1 - t0)
        size = len(body)
    conn.close()
    print(json.dumps({"latencies": lat, "size": size}))
    return 0


if __name__ == "__main__":
    modes = {
        "serve": serve,
        "memory": memory_main,
        "client": scrape_client,
        "identify": identify_main,
    }
    if len(sys.argv) < 2 or sys.argv[1] not in modes:
        print(f"usage: workloads.py {'|'.join(modes)} key=value ...", file=sys.stderr)
        sys.exit(2)
    sys.exit(modes[sys.argv[1]](sys.argv[2:]))
