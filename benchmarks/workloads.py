"""The benchmark rows, their workloads, and the worker process that times them.

Each step is declared on its workload (``@micro(title, *targets)`` for an
ns/op row with its floor, ``@step(kind, Row(...), ...)`` otherwise): the
workload builds what to time for one implementation, the step says which
rows (:class:`Row`, with their targets) its figures feed, for which
implementations, in how many interleaved rounds.  Adding a row is a workload
function and its decorator.

The driver (``__main__.py``) imports this module for the declarations and
also starts it as a *script* (``python benchmarks/workloads.py serve ...``),
one worker process per implementation whose ``PYTHONPATH`` holds exactly one
implementation (``sys.path[0]`` is this folder, which has no
``aioprometheus`` package).  Calibration (loops per value), warm-up and the
values of one round are pyperf's (a ``pyperf.Runner`` in worker mode); a
sample comes back as pyperf benchmarks, which the driver merges over rounds.

Two API families run the same workloads: ``aioprometheus`` (ours and
aioprometheus 23.12.0, ``c.inc(labels)``) and ``prometheus_client`` (its
idiomatic ``c.labels(**labels).inc()``).
"""

import asyncio
import bisect
import gc
import importlib
import io
import itertools
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

AIO = "aioprometheus"
PC = "prometheus_client"
IMPLS = ("ours", "aioprometheus", "prometheus_client")
SHORT = {"ours": "ours", "aioprometheus": "aio", "prometheus_client": "pc"}

LABELS = {"method": "GET", "route": "/api/v1/items"}
METHODS = ("GET", "POST", "PUT", "DELETE")
ROUTES = tuple(f"/api/v1/route{i}" for i in range(100))

# The clock of every timed loop (``clock=cpu``: process CPU time, steadier on
# a busy machine).  Scrape latency is always wall time.
clock: Callable[[], float] = time.perf_counter


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Target:
    """A goal for our figure: ``floor`` (x floor <= bound), ``faster`` (peer /
    ours >= bound), ``max`` (ours <= bound) or ``growth`` (ours / our figure
    in row ``ref`` <= bound)."""

    kind: str
    bound: float
    ref: Optional[str] = None
    text: str = ""


def at_most(bound: float) -> Target:
    return Target("max", bound)


def faster(peer: str, bound: float) -> Target:
    return Target("faster", bound, peer, f">={bound:g}x {SHORT[peer]}")


def floor_x(bound: float) -> Target:
    return Target("floor", bound, None, f"<={bound:g}x floor")


def growth(ref: str, bound: float, text: str) -> Target:
    return Target("growth", bound, ref, text)


@dataclass(frozen=True)
class Row:
    """One table row: ``figure``, a key of what its step's ``figures`` make of
    a round; ``control`` rows (floors, baselines) get no ratios."""

    key: str
    title: str
    unit: str
    figure: str = "value"
    targets: Tuple[Target, ...] = ()
    control: bool = False
    higher_is_better: bool = False
    x_floor: str = ""  # the figure giving its "x floor" ratio, if any


@dataclass
class Step:
    key: str
    kind: str  # how it is timed: "pyperf", "scrape", "memory" or a DRIVER_STEPS key
    workload: Optional[Callable[..., Any]]
    rows: Tuple[Row, ...]
    figures: Callable[[Dict[str, Any]], Dict[str, float]] = lambda b: {}
    params: Dict[str, Any] = field(default_factory=dict)
    rounds: Tuple[int, int] = (5, 15)  # (--quick, full)
    impls: Tuple[str, ...] = IMPLS
    full_only: bool = False


STEPS: List[Step] = []


def step(kind: str, *rows: Row, **options: Any) -> Callable[[Any], Any]:
    """Declares the step that measures the decorated workload (the step's
    key: ``key=``, else the workload's name)."""

    def declare(workload: Any) -> Any:
        key = options.pop("key", None) or workload.__name__
        STEPS.append(Step(key, kind, workload, rows, **options))
        return workload

    return declare


def micro(title: str, *targets: Target, key: str = "", control=False) -> Any:
    """A micro step: one ns/op row, named after the workload."""

    def declare(workload: Any) -> Any:
        row_key = key or workload.__name__
        x_floor = "" if control else "x_floor"
        row = Row(row_key, title, "ns/op", "value", targets, control, False, x_floor)
        return step("pyperf", row, key=row_key, figures=micro_figures)(workload)

    return declare


class Unavailable(Exception):
    """The implementation does not offer this workload."""


class Api:
    """The implementation under test, imported by family name."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.mod = importlib.import_module(family)

    def registry(self) -> Any:
        return (
            self.mod.CollectorRegistry() if self.family == PC else self.mod.Registry()
        )

    def metric(self, kind: str, name: str, doc: str, reg: Any, labelnames=()) -> Any:
        cls = getattr(self.mod, kind)
        if self.family == PC:
            return cls(name, doc, labelnames=list(labelnames), registry=reg)
        return cls(name, doc, registry=reg)


# ---------------------------------------------------------------- micro rows


_MICRO_TEMPLATE = """
def _timed(_values, _clock{params}):
    _t0 = _clock()
    for v in _values:
        {stmt}
    return _clock() - _t0
"""


class Micro:
    """``for v in values: <stmt>``, timed with its empty loop (subtracted:
    "net") and (``paired``) a floor loop, ``against`` or ``d.get(k)``, in
    every round, all with the same loops."""

    same_loops = True

    def __init__(self, stmt: str, note="", against=None, paired=True, **names) -> None:
        self.stmt, self.note, self.names = stmt, note, names
        self.against = (against or floor(None)) if paired else None

    def programs(self, clock: Callable[[], float]) -> Dict[str, Callable[[int], float]]:
        out = {"stmt": (self.stmt, self.names), "loop": ("pass", self.names)}
        if self.against is not None:
            out["floor"] = (self.against.stmt, self.against.names)
        return {
            name: _compile(stmt, names, clock) for name, (stmt, names) in out.items()
        }


def _compile(stmt: str, names: Dict[str, Any], clock) -> Callable[[int], float]:
    ns: Dict[str, Any] = {}
    exec(_MICRO_TEMPLATE.format(params="".join(f", {k}" for k in names), stmt=stmt), ns)
    timed, args = ns["_timed"], tuple(names.values())
    return lambda n: timed(values(n), clock, *args)


def micro_figures(b: Dict[str, Any]) -> Dict[str, float]:
    """Per-round figures of a micro row (pyperf values: seconds per loop)."""
    stmt, loop = b["stmt"].median(), b["loop"].median()
    out = {"value": (stmt - loop) * 1e9, "raw": stmt * 1e9}
    if "floor" in b:
        fl = b["floor"].median()
        out.update(floor=(fl - loop) * 1e9, x_floor=(stmt - loop) / (fl - loop))
        out["x_floor_raw"] = stmt / fl
    return out


@micro("floor: d.get(k)", control=True)
def floor(api: Api) -> Micro:
    """One C call from Python: ``d.get(k)`` on a prebuilt key."""
    return Micro("d.get(k)", paired=False, d={"key": 1, "other": 2}, k="key")


@micro("counter inc, 2-label dict", floor_x(3), faster(AIO, 30), faster(PC, 20))
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


@micro("counter inc, 64 rotating 2-label dicts")
def counter_inc_varied(api: Api) -> Micro:
    """Each call brings another of 64 label dicts (``next()`` on a cycle is in
    every implementation's figure)."""
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


@micro("floor: same dict literal + d.get(k)", control=True)
def floor_literal(api: Api) -> Micro:
    """The fresh-literal row's floor: the same dict literal built per call,
    then one C call on it."""
    stmt = '{"path": next(routes), "method": "GET"}.get(k)'
    return Micro(stmt, paired=False, routes=itertools.cycle(ROUTES), k="path")


@micro("counter inc, fresh dict literal per call", floor_x(1.5))  # issue 8
def counter_inc_literal(api: Api) -> Micro:
    """The web-server pattern: a fresh dict literal per call, the route one
    of 100 (prometheus_client: the same values as keyword arguments)."""
    reg = api.registry()
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
    routes = itertools.cycle(ROUTES)
    return Micro(stmt, against=floor_literal(api), c=c, routes=routes)


@micro("counter inc, no labels", faster(AIO, 15), faster(PC, 5))
def counter_inc_nolabels(api: Api) -> Micro:
    reg = api.registry()
    if api.family == PC:
        c = api.metric("Counter", "bench_events", "Events.", reg)
        c.inc()
        return Micro("c.inc()", c=c)
    c = api.metric("Counter", "bench_events_total", "Events.", reg)
    c.inc({})
    return Micro("c.inc({})", c=c)


def labelled_call(kind: str, name: str, method: str) -> Callable[[Api], Micro]:
    """``metric.<method>(labels, v)`` on a 2-label series (prometheus_client:
    ``metric.labels(**labels).<method>(v)``)."""

    def workload(api: Api) -> Micro:
        labels = dict(LABELS)
        m = api.metric(kind, name, "Bench.", api.registry(), labels)
        if api.family == PC:
            getattr(m.labels(**labels), method)(0.1)
            return Micro(f"m.labels(**labels).{method}(v)", m=m, labels=labels)
        getattr(m, method)(labels, 0.1)
        note = summary_accuracy(api) if kind == "Summary" else ""
        return Micro(f"m.{method}(labels, v)", note, m=m, labels=labels)

    return workload


for key, title, kind, name, method, targets in (
    ("gauge_set", "gauge set, 2 labels", "Gauge", "in_flight", "set", (20, 20)),
    (
        "histogram_observe",
        "histogram observe, default buckets",
        "Histogram",
        "latency_seconds",
        "observe",
        (20, 20),
    ),
    (
        "summary_observe",
        "summary observe (quantiles)",
        "Summary",
        "size_bytes",
        "observe",
        (20,),
    ),
):
    speedups = [faster(peer, x) for peer, x in zip((AIO, PC), targets)]
    micro(title, *speedups, key=key)(labelled_call(kind, f"bench_{name}", method))


def summary_accuracy(api: Api, n: int = 20_000) -> str:
    """Rank error of the reported quantiles on a fresh summary (not timed)."""
    s = api.metric("Summary", "bench_accuracy", "Accuracy.", api.registry())
    obs = values(n)
    for v in obs:
        s.observe({}, v)
    got = s.get({})
    ordered = sorted(obs)
    parts = []
    for q, eps in getattr(s, "invariants", ((0.5, 0.05), (0.9, 0.01), (0.99, 0.001))):
        est = got.get(q)
        if est is None:
            continue
        lo = bisect.bisect_left(ordered, est) / n  # the estimate's rank range
        hi = bisect.bisect_right(ordered, est) / n
        err = 0.0 if lo <= q <= hi else min(abs(lo - q), abs(hi - q))
        parts.append(f"q{q:g} rank err {err:.4f} (eps {eps:g})")
    return "; ".join(parts)


# ---------------------------------------------------------------- renders

SERIES_PER_METRIC = 500
_FIXTURE: Dict[int, Any] = {}


def build_fixture(api: Api, n_series: int) -> Any:
    """``n_series`` 2-label series in counters and gauges (alternating, 500
    series per metric), identical across implementations."""
    reg = api.registry()
    made = 0
    for m in range(max(1, math.ceil(n_series / SERIES_PER_METRIC))):
        count = min(SERIES_PER_METRIC, n_series - made)
        kind = "Counter" if m % 2 == 0 else "Gauge"
        # prometheus_client appends _total itself
        suffix = "_total" if kind == "Counter" and api.family != PC else ""
        metric = api.metric(
            kind, f"bench_fixture_{m}{suffix}", f"Fixture metric {m}.", reg, LABELS
        )
        for i in range(count):
            labels = {"method": METHODS[i % 4], "route": f"/api/v1/resource/{m}/{i}"}
            value = i + 1 if kind == "Counter" else i * 0.25 + 0.1
            if api.family == PC:
                child = metric.labels(**labels)
                child.inc(value) if kind == "Counter" else child.set(value)
            else:
                (metric.add if kind == "Counter" else metric.set)(labels, value)
        made += count
    return reg


def fixture(api: Api, n_series: int) -> Any:
    """The fixture of ``n_series``, kept for the steps that follow (rendering
    and scraping do not change it)."""
    if n_series not in _FIXTURE:
        _FIXTURE.clear()
        gc.collect()
        _FIXTURE[n_series] = build_fixture(api, n_series)
    return _FIXTURE[n_series]


def text_formatter(api: Api) -> Callable[[Any], bytes]:
    if api.family == PC:
        return api.mod.generate_latest
    from aioprometheus.formats.text import TextFormatter  # type: ignore

    return TextFormatter().marshall


class Call:
    """A zero-argument callable timed as a whole (one render)."""

    def __init__(self, fn: Callable[[], Any], note: str = "") -> None:
        self.fn, self.note = fn, note

    def programs(self, clock: Callable[[], float]) -> Dict[str, Callable[[int], float]]:
        def call(n: int) -> float:
            fn, t0 = self.fn, clock()
            for _ in range(n):
                fn()
            return clock() - t0

        return {"call": call}


def text_render(api: Api, series: int) -> Call:
    marshall, reg = text_formatter(api), fixture(api, series)
    return Call(lambda: marshall(reg), f"{len(marshall(reg))} bytes")


def protobuf_render(api: Api, series: int) -> Call:
    if api.family == PC:
        raise Unavailable("prometheus_client has no protobuf exposition")
    try:
        from aioprometheus.formats.binary import BinaryFormatter  # type: ignore

        marshall, reg = BinaryFormatter().marshall, fixture(api, series)
        size = len(marshall(reg))
    except (ImportError, AttributeError, NotImplementedError) as exc:
        raise Unavailable(f"{type(exc).__name__}: {exc}") from None
    return Call(lambda: marshall(reg), f"{size} bytes")


RENDER_TARGETS = {
    "text_10k": (faster("aioprometheus", 10), faster("prometheus_client", 50)),
    "text_100k": (growth("text_render_10k", 11, "<=11x 10k"),),
    "protobuf_10k": (growth("text_render_10k", 1, "<= our text"),),
}
for fmt, render in (("text", text_render), ("protobuf", protobuf_render)):
    for n in (1_000, 10_000, 100_000):
        key, size = f"{fmt}_render_{n // 1000}k", f"{n // 1000}k"
        row = Row(
            key,
            f"{fmt} render, {size} series",
            "ms",
            "value",
            RENDER_TARGETS.get(f"{fmt}_{size}", ()),
        )
        step(
            "pyperf",
            row,
            key=key,
            figures=lambda b: {"value": b["call"].median() * 1e3},
            params={"series": n},
            rounds=(5, 5 if n == 100_000 else 11),
            full_only=n == 100_000,
        )(render)


# ---------------------------------------------------------------- scrapes

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Scrape:
    """Sequential GETs of an aiohttp exporter on 127.0.0.1 from a separate
    scraper process (``workloads.py client``, one keep-alive connection):
    aioprometheus' Service, prometheus_client's aiohttp handler on the same
    HTTP stack, or (``static``) the same bytes pre-rendered (and, with
    ``gzip``, pre-compressed) from a bare handler."""

    def __init__(
        self, api: Api, series: int, static=False, gzip=False, requests=3, budget_s=1.0
    ) -> None:
        try:
            import aiohttp  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"ImportError: {exc}") from None
        self.api, self.gzip, self.static = api, gzip, static
        self.requests, self.budget_s = requests, budget_s
        self.reg = fixture(api, series)
        self.note = ""

    def sample(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        """One round of requests as a pyperf run (after one unmeasured round
        that warms up the exporter)."""
        import pyperf

        if not self.note:
            asyncio.run(self.round(1, 0))
        lat = without_gc(asyncio.run)(self.round(self.requests, self.budget_s))
        meta = {"name": "latency", "unit": "second", "loops": 1}
        return {"latency": pyperf.Benchmark([pyperf.Run(lat, metadata=meta)])}

    async def start(self) -> Tuple[str, Callable[[], Any]]:
        from aiohttp import web

        if self.api.family == AIO and not self.static:
            from aioprometheus.service import Service  # type: ignore

            svc = Service(registry=self.reg)
            await svc.start(addr="127.0.0.1", port=0)
            return svc.metrics_url, svc.stop
        if self.static:
            body = text_formatter(self.api)(self.reg)
            headers = {"Content-Type": TEXT_CONTENT_TYPE}
            if self.gzip:
                import gzip

                body = gzip.compress(body, 6)
                headers["Content-Encoding"] = "gzip"

            async def handler(request: Any) -> Any:
                return web.Response(body=body, headers=headers)

        else:
            from prometheus_client.aiohttp import make_aiohttp_handler  # type: ignore

            handler = make_aiohttp_handler(self.reg, disable_compression=not self.gzip)
        app = web.Application()
        app.router.add_get("/metrics", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}/metrics", runner.cleanup

    async def round(self, requests: int, budget_s: float) -> List[float]:
        url, stop = await self.start()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                os.path.abspath(__file__),
                "client",
                json.dumps([url, requests, budget_s, self.gzip]),
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
        self.note = f"{got['size']} bytes ({got['encoding']})"
        return got["latencies"]


def scrape_client(args: List[str]) -> int:
    """The scraper process: up to ``requests`` timed GETs (after one that
    opens the connection), stopping once ``budget_s`` is spent (after 3), so
    that slow exporters do not dominate the run."""
    import http.client
    from urllib.parse import urlsplit

    url, requests, budget_s, gzip = json.loads(args[0])
    parts = urlsplit(url)
    headers = {
        "Accept": "text/plain; version=0.0.4",
        "Accept-Encoding": "gzip" if gzip else "identity",
    }
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    lat: List[float] = []
    size, start = 0, time.perf_counter()
    for i in range(requests + 1):
        if len(lat) >= 3 and time.perf_counter() - start > budget_s:
            break
        t0 = time.perf_counter()
        conn.request("GET", parts.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200 or not body:
            raise SystemExit(f"HTTP {resp.status}")
        if i:
            lat.append(time.perf_counter() - t0)
        size = len(body)
    encoding = resp.getheader("Content-Encoding") or "identity"
    print(json.dumps({"latencies": lat, "size": size, "encoding": encoding}))
    return 0


def scrape_rows(key: str, title: str, p99_targets=(), control=False) -> List[Row]:
    """p50 and p99 rows of a scrape step ``key`` (``{p}`` in the title)."""
    prefix, size = key.rsplit("_", 1)
    return [
        Row(f"{prefix}_p{p}_{size}", title.format(p=f"p{p}"), "ms", f"p{p}", t, control)
        for p, t in ((50, ()), (99, p99_targets))
    ]


def scrape_figures(b: Dict[str, Any]) -> Dict[str, float]:
    lat = b["latency"]
    p50, p99 = lat.percentile(50) * 1e3, lat.percentile(99) * 1e3
    return {"p50": p50, "p99": p99, "requests": lat.get_nvalue()}


for key, title, params, impls in (
    ("scrape_10k", "scrape {p}, Service, 10k series", {}, IMPLS),
    ("scrape_static_10k", "HTTP floor {p}: same body, static", {"static": True}, IMPLS),
    (
        "scrape_gzip_10k",
        "scrape {p}, Service, gzip, 10k series",
        {"gzip": True},
        ("ours", AIO),
    ),
    (
        "scrape_gzip_static_10k",
        "HTTP floor {p}: same gzip body, static",
        {"gzip": True, "static": True},
        ("ours", AIO),
    ),
):
    static = params.get("static", False)
    targets = (at_most(5), faster(AIO, 5)) if key == "scrape_10k" else ()
    step(
        "scrape",
        *scrape_rows(key, title, targets, static),
        key=key,
        figures=scrape_figures,
        impls=impls,
        rounds=(2, 5) if static else (3, 10),
        params={
            "series": 10_000,
            "requests": (30, 100),
            "budget_s": (0.3, 2),
            **params,
        },
    )(Scrape)


# ---------------------------------------------------------------- asyncio loop

LOOP_TASKS, LOOP_PER_ITER = 8, 100
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
    """8 tasks, 100 events per loop iteration (arithmetic and one 2-label
    counter increment) then ``await asyncio.sleep(0)``; the baseline is the
    same program without the increment."""

    def __init__(self, api: Api) -> None:
        reg = api.registry()
        self.pool = [{"method": m, "route": "/api/v1/items"} for m in METHODS]
        if api.family == PC:
            self.c = api.metric("Counter", "bench_loop", "Events.", reg, LABELS)
            stmt = "c.labels(**labels).inc()"
        else:
            self.c = api.metric("Counter", "bench_loop_total", "Events.", reg)
            stmt = "c.inc(labels)"
        self.tasks = {"instrumented": _loop(stmt), "baseline": _loop("pass")}
        self.note, self.inner_loops = "", LOOP_TASKS * LOOP_PER_ITER

    def programs(self, clock: Callable[[], float]) -> Dict[str, Callable[[int], float]]:
        def program(task: Any) -> Callable[[int], float]:
            async def main(iters: int) -> float:
                t0 = clock()
                await asyncio.gather(
                    *(task(iters, self.c, self.pool) for _ in range(8))
                )
                return clock() - t0

            return lambda iters: asyncio.run(main(iters))

        return {name: program(task) for name, task in self.tasks.items()}


def _loop(stmt: str) -> Callable[..., Any]:
    ns: Dict[str, Any] = {"_sleep": asyncio.sleep}
    exec(_LOOP_TEMPLATE.format(per_iter=LOOP_PER_ITER, stmt=stmt), ns)
    return ns["_task"]


def loop_figures(b: Dict[str, Any]) -> Dict[str, float]:
    instr, base = b["instrumented"].median(), b["baseline"].median()
    rates = {"instrumented_rate": 1e-6 / instr, "baseline_rate": 1e-6 / base}
    return {"value": (instr - base) * 1e9, **rates}


step(
    "pyperf",
    Row("asyncio_loop_cost", "asyncio loop: cost per increment", "ns/op"),
    Row(
        "asyncio_loop_rate",
        "asyncio loop: instrumented rate",
        "Mev/s",
        "instrumented_rate",
        higher_is_better=True,
    ),
    Row(
        "asyncio_loop_base",
        "asyncio loop: uninstrumented rate",
        "Mev/s",
        "baseline_rate",
        control=True,
        higher_is_better=True,
    ),
    key="asyncio_loop",
    figures=loop_figures,
    rounds=(5, 11),
)(AsyncLoop)


# ---------------------------------------------------------------- middleware


def middleware_figures(b: Dict[str, Any]) -> Dict[str, float]:
    def added(driver: str) -> float:
        return (b[driver].median() - b[f"{driver}_bare"].median()) * 1e6

    return {"value": added("asgi"), "httpx": added("httpx")}


@step(
    "pyperf",
    Row(
        "middleware_asgi",
        "ASGI middleware on FastAPI, added",
        "us/req",
        "value",
        (at_most(2),),
    ),  # issue 14
    Row(
        "middleware_httpx",
        "ASGI middleware on FastAPI via httpx, added",
        "us/req",
        "httpx",
    ),
    key="middleware_fastapi",
    figures=middleware_figures,
)
def middleware(api: Api) -> Any:
    import middleware  # benchmarks/middleware.py, beside this script

    return middleware.Overhead(api.family)


step(  # run by middleware.uvicorn_run
    "uvicorn",
    Row(
        "middleware_uvicorn",
        "middleware under uvicorn, server CPU added",
        "us/req",
        "value",
        (at_most(2),),
    ),  # issue 14
    Row(
        "middleware_uvicorn_kept",
        "middleware under uvicorn, throughput kept",
        "%",
        "kept",
        higher_is_better=True,
    ),
    key="middleware_uvicorn",
    params={"rounds": 5, "seconds": 5.0},
    full_only=True,
)(None)


# ---------------------------------------------------------------- memory


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_per_series(api: Api, kind: str, n: int) -> float:
    """RSS growth per series for ``n`` new 2-label series of ``kind``, each
    with a unique route string (the strings' cost included)."""
    reg = api.registry()
    if kind == "counter":
        name = "bench_mem_total" if api.family == AIO else "bench_mem"
        metric = api.metric("Counter", name, "Memory.", reg, LABELS)
    else:
        metric = api.metric("Histogram", "bench_mem_seconds", "Memory.", reg, LABELS)

    def add(i: int, route: str) -> None:
        v = 0.001 * (i % 2000)
        labels = {"method": "GET", "route": route}
        if api.family == PC:
            child = metric.labels(**labels)
            child.inc() if kind == "counter" else child.observe(v)
        else:
            metric.inc(labels) if kind == "counter" else metric.observe(labels, v)

    add(0, "/warmup")  # the first series and code paths are not counted
    gc.collect()
    gc.disable()
    before = rss_bytes()
    for i in range(n):
        add(i, f"/api/v1/items/{i}")
    gc.collect()
    return (rss_bytes() - before) / n


for kind, bound in (("counter", 250), ("histogram", 500)):
    title = "2-label counter series" if kind == "counter" else "histogram series"
    row = Row(
        f"memory_{kind}", f"memory, {title}", "B/series", "value", (at_most(bound),)
    )
    step(
        "memory",
        row,
        key=row.key,
        figures=lambda b: {"value": b["memory"].median()},
        params={"kind": kind, "n": (20_000, 100_000)},
        rounds=(1, 3),
    )(None)


# ---------------------------------------------------------------- real Prometheus


def prometheus_rows(size: str, handler_ms: float, lateness_ms: float) -> List[Row]:
    """Issue 14's goals: within 1.2x of the floor, handler and worst loop
    lateness during a scrape within the given bounds (ours)."""
    key, at = f"prometheus_{size}", f"{size} series"
    return [
        Row(
            key,
            f"Prometheus scrape_duration avg, {at}",
            "ms",
            size,
            (floor_x(1.2),),
            x_floor=f"x_floor_{size}",
        ),
        Row(
            f"{key}_floor",
            f"Prometheus floor: same bytes, static, {at}",
            "ms",
            f"floor_{size}",
            control=True,
        ),
        Row(
            f"{key}_handler",
            f"Prometheus scrape: handler time, {at}",
            "ms",
            f"handler_{size}",
            (at_most(handler_ms),),
        ),
        Row(
            f"{key}_lateness",
            f"Prometheus scrape: worst loop lateness, {at}",
            "ms",
            f"lateness_{size}",
            (at_most(lateness_ms),),
        ),
    ]


step(  # run by prometheus.run
    "prometheus",
    *prometheus_rows("10k", 4, 2),
    *prometheus_rows("100k", 40, 5),
    key="prometheus",
    params={"seconds": (6, 30), "interval_s": (1, 2)},
    rounds=(1, 1),
    impls=("ours", AIO),
)(None)


# ---------------------------------------------------------------- timing

_VALUES: Dict[int, List[float]] = {}


def values(n: int) -> List[float]:
    """``n`` deterministic observations spread across the default buckets
    (lognormal, median 0.135), repeating with a period of 65536."""
    if n not in _VALUES:
        base = _VALUES.get(-1)
        if base is None:
            rng = random.Random(20231200)
            base = [rng.lognormvariate(-2.0, 1.5) for _ in range(65536)]
        _VALUES.clear()
        _VALUES[-1], _VALUES[n] = base, (base * (n // 65536 + 1))[:n]
    return _VALUES[n]


def without_gc(fn: Callable[..., float]) -> Callable[..., float]:
    """Time with the collector off, after a collection (cheap: the worker's
    long-lived objects are frozen)."""

    def timed(*args: Any) -> float:
        gc.collect()
        gc.disable()
        try:
            return fn(*args)
        finally:
            gc.enable()

    return timed


_RUNNER: Any = None


def pyperf_run(
    name: str, time_func: Callable[[int], float], settings: Dict[str, Any], loops=0
) -> Any:
    """One pyperf run (warm-ups, then values) of ``time_func(loops)`` ->
    seconds, as a one-run ``pyperf.Benchmark``; ``loops=0``: pyperf
    calibrates them first (to ``min_time`` per value)."""
    global _RUNNER
    import pyperf

    if _RUNNER is None:
        _RUNNER = pyperf.Runner()
        _RUNNER.parse_args(["--worker", "--quiet", "--loops=1"])
    args = _RUNNER.args
    args.min_time = settings["min_time"]
    args.values, args.warmups = settings["values"], settings["warmups"]
    inner = settings.get("inner_loops")
    if not loops:
        args.calibrate_loops, args.loops = True, 1
        _RUNNER._bench_names.clear()  # a worker runs a benchmark once per round
        calibration = _RUNNER.bench_time_func(name, time_func, inner_loops=inner)
        loops = calibration.get_runs()[0].get_metadata()["loops"]
    args.calibrate_loops, args.loops = False, loops
    _RUNNER._bench_names.clear()
    return _RUNNER.bench_time_func(name, time_func, inner_loops=inner)


def loops_of(bench: Any) -> int:
    return int(bench.get_runs()[0].get_metadata()["loops"])


class Timer:
    """pyperf runs of a workload's programs (timed functions of the loops),
    each calibrated on its first run (all on the first program's if the
    workload has ``same_loops``): one value of each program in turn (a run
    each, the warm-ups in the first), so that load drifting during a round
    meets all of them alike; the order reversed every other round."""

    def __init__(self, timed: Any) -> None:
        self.timed, self.note, self.rounds = timed, timed.note, 0
        self.loops: Dict[str, int] = {}

    def sample(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        inner = getattr(self.timed, "inner_loops", None)
        programs = list(self.timed.programs(clock).items())
        self.rounds += 1
        out: Dict[str, Any] = {}
        for value in range(settings["values"]):
            warmups = settings["warmups"] if value == 0 else 0
            one = dict(settings, values=1, warmups=warmups, inner_loops=inner)
            for name, program in programs if self.rounds % 2 else programs[::-1]:
                slot = "" if getattr(self.timed, "same_loops", False) else name
                run = pyperf_run(
                    name, without_gc(program), one, self.loops.get(slot, 0)
                )
                self.loops[slot] = loops_of(run)
                if name in out:
                    out[name].add_runs(run)
                else:
                    out[name] = run
        return out


# ---------------------------------------------------------------- worker


def identify(opts: Dict[str, str]) -> Dict[str, Any]:
    """Import the implementation; refuse one from the wrong folder."""
    family = opts["family"]
    info: Dict[str, Any] = {"family": family, "python": sys.version.split()[0]}
    try:
        mod = importlib.import_module(family)
        path = os.path.realpath(mod.__file__ or "")
        info.update(module_file=path, version=getattr(mod, "__version__", None))
        expect, forbid = opts.get("expect"), opts.get("forbid")
        if expect and not path.startswith(os.path.realpath(expect) + os.sep):
            raise ImportError(f"{family} imported from {path}, expected under {expect}")
        if forbid and path.startswith(os.path.realpath(forbid) + os.sep):
            raise ImportError(f"{family} imported from {path}, inside {forbid}")
        if opts.get("core") == "1":
            try:
                importlib.import_module(f"{family}._core")
            except Exception as exc:
                raise ImportError(f"no compiled core: {exc!r}") from None
    except Exception as exc:
        return {**info, "ok": False, "reason": f"{type(exc).__name__}: {exc}"}
    return {**info, "ok": True}


def _freeze() -> None:
    """Hide every live object from the collector, so the collection before
    each timed value costs next to nothing whatever was imported."""
    gc.collect()
    gc.freeze()


def dump(benches: Dict[str, Any]) -> Dict[str, str]:
    out = {}
    for name, bench in benches.items():
        buf = io.StringIO()
        bench.dump(buf)
        out[name] = buf.getvalue()
    return out


def serve(opts: Dict[str, str]) -> int:
    """Worker loop: one JSON command per stdin line, one JSON answer each."""
    global clock
    if opts.get("clock") == "cpu":
        clock = time.process_time
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what the libraries (and pyperf) print goes to stderr
    sys.stdout = sys.stderr
    info = identify(opts)
    proto.write(json.dumps(info) + "\n")
    if not info["ok"]:
        return 1
    api = Api(opts["family"])
    steps = {s.key: s for s in STEPS}
    _freeze()
    timers: Dict[str, Any] = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        key = cmd.get("step", "")
        try:
            if cmd["cmd"] == "quit":
                break
            if cmd["cmd"] == "drop":
                timers.pop(key, None)
                gc.unfreeze()  # the dropped step's objects may go
                _freeze()
                answer: Dict[str, Any] = {"status": "ok"}
            else:
                timer = timers.get(key)
                if timer is None:
                    s, params = steps[key], cmd["params"]
                    timer = timers[key] = make_timer(s, api, params)
                    _freeze()
                if isinstance(timer, Exception):
                    raise timer
                benches = timer.sample(cmd["settings"])
                answer = {"status": "ok", "benches": dump(benches), "note": timer.note}
        except Unavailable as exc:
            timers[key] = exc
            answer = {"status": "unavailable", "reason": str(exc)}
        except Exception as exc:
            timers[key] = Unavailable(f"{type(exc).__name__}: {exc}")
            answer = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
        proto.write(json.dumps(answer) + "\n")
    return 0


def make_timer(s: Step, api: Api, params: Dict[str, Any]) -> Any:
    """The step's workload built for this implementation, in its timer."""
    import inspect

    assert s.workload is not None
    wanted = inspect.signature(s.workload).parameters
    built = s.workload(api, **{k: v for k, v in params.items() if k in wanted})
    return built if hasattr(built, "sample") else Timer(built)


def memory_main(opts: Dict[str, str]) -> int:
    """One memory sample, in a fresh process."""
    import pyperf

    info = identify(opts)
    try:
        if not info["ok"]:
            raise RuntimeError(info["reason"])
        per_series = memory_per_series(
            Api(opts["family"]), opts["kind"], int(opts["n"])
        )
        meta = {"name": "memory", "unit": "byte", "loops": 1}
        bench = pyperf.Benchmark([pyperf.Run([per_series], metadata=meta)])
        print(json.dumps({"status": "ok", "benches": dump({"memory": bench})}))
    except Exception as exc:
        print(json.dumps({"status": "error", "reason": f"{type(exc).__name__}: {exc}"}))
    return 0


if __name__ == "__main__":
    modes = {"serve": serve, "memory": memory_main, "identify": identify}
    if len(sys.argv) > 2 and sys.argv[1] == "client":
        sys.exit(scrape_client(sys.argv[2:]))
    if len(sys.argv) < 2 or sys.argv[1] not in modes:
        sys.exit(f"usage: workloads.py {'|'.join(modes)}|client key=value ...")
    options = dict(a.split("=", 1) for a in sys.argv[2:])
    if sys.argv[1] == "identify":
        found = identify(options)
        print(json.dumps(found))
        sys.exit(0 if found["ok"] else 1)
    sys.exit(modes[sys.argv[1]](options))  # type: ignore[operator]
