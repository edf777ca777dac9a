"""The benchmark rows, their workloads, and the worker process that times them.

A step (:class:`Step`) runs one workload and feeds one or more table rows
(:class:`Row`), declared as data right after the workload.  Built for one
implementation, a workload offers ``programs(clock)`` (functions of pyperf's
loops returning seconds) or takes its own ``sample``.  Run as a script, this
module is a worker whose ``PYTHONPATH`` holds one implementation alone.  Two
API families run the same workloads: ``aioprometheus`` (ours and 23.12,
``c.inc(labels)``) and ``prometheus_client`` (``c.labels(**labels).inc()``).
"""

import asyncio
import atexit
import bisect
import contextlib
import gc
import importlib
import io
import itertools
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

AIO, PC = "aioprometheus", "prometheus_client"
IMPLS = ("ours", AIO, PC)
SHORT = {AIO: "aio", PC: "pc"}
LABELS = {"method": "GET", "route": "/api/v1/items"}
METHODS = ("GET", "POST", "PUT", "DELETE")
ROUTES = tuple(f"/api/v1/route{i}" for i in range(100))
NATIVE = {"native_histogram_bucket_factor": 1.1}
REGISTRY = ("Registry", "CollectorRegistry")  # the registry class by family

# The clock of every timed loop (``clock=cpu``: process CPU time, steadier on
# a busy machine).  Scrape latency is always wall time.
clock: Callable[[], float] = time.perf_counter
Programs = Dict[str, Callable[[int], float]]


# ---------------------------------------------------------------- declarations
class Target(NamedTuple):
    """A goal for our figure: ``floor`` (x floor <= bound), ``faster`` (peer
    ``ref`` / ours >= bound), ``max`` (ours <= bound) or ``growth`` (ours /
    our figure in row ``ref`` <= bound, shown as ``text``)."""

    kind: str
    ref: Optional[str]
    bound: float
    text: str = ""


at_most, floor_x = partial(Target, "max", None), partial(Target, "floor", None)
faster, growth = partial(Target, "faster"), partial(Target, "growth")


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
    """One workload and its rows.  ``workload(api, **params)`` is built in
    each worker; a string names a step the driver runs itself
    (``__main__.DRIVER_STEPS``).  A param or rounds tuple is (--quick, full)."""

    key: str
    workload: Union[Callable[..., Any], str]
    rows: Tuple[Row, ...]
    figures: Callable[[Dict[str, Any]], Dict[str, float]] = lambda b: {}
    params: Dict[str, Any] = field(default_factory=dict)
    rounds: Tuple[int, int] = (5, 15)
    impls: Tuple[str, ...] = IMPLS
    full_only: bool = False
    fresh: bool = False  # a fresh worker per sample (memory)

    def keys(self) -> List[str]:
        return [self.key, *(r.key for r in self.rows)]


STEPS: List[Step] = []


def step(key: str, workload: Any, *rows: Row, **options: Any) -> None:
    STEPS.append(Step(key, workload, rows, **options))


def medians(scale: float = 1.0, **figures: str) -> Callable[..., Dict[str, float]]:
    """Figures that are a pyperf benchmark's median (by name), times ``scale``."""
    return lambda b: {f: b[n].median() * scale for f, n in figures.items() if n in b}


class Unavailable(Exception):
    """The implementation does not offer this workload."""


class Api:
    """The implementation under test, imported by family name."""

    def __init__(self, family: str) -> None:
        self.family, self.mod = family, importlib.import_module(family)
        self.registry = getattr(self.mod, REGISTRY[family == PC])

    def metric(self, kind: str, name: str, reg: Any, labelnames=(), **opts) -> Any:
        """A metric; options it rejects make the workload unavailable."""
        cls, doc = getattr(self.mod, kind), "Bench."
        try:
            if self.family == PC:
                return cls(name, doc, labelnames=list(labelnames), registry=reg, **opts)
            return cls(name, doc, registry=reg, **opts)
        except TypeError as exc:
            if not opts:
                raise
            raise Unavailable(f"{kind}({', '.join(opts)}=...): {exc}") from None

    def record(self, metric: Any, labels: Dict[str, str], method: str, value) -> None:
        """``metric.method(labels, value)``, or prometheus_client's
        ``metric.labels(**labels).method(value)`` (``add`` is its ``inc``)."""
        if self.family == PC:
            method = "inc" if method == "add" else method
            getattr(metric.labels(**labels), method)(value)
        else:
            getattr(metric, method)(labels, value)


def looped(fn: Callable[[], Any], clock: Callable[[], float]) -> Callable[[int], float]:
    """A pyperf program: ``n`` calls of ``fn()``, in seconds."""

    def program(n: int) -> float:
        t0 = clock()
        for _ in range(n):
            fn()
        return clock() - t0

    return program


class Once:
    """A workload measured as a whole, once a sample (not timed by pyperf):
    ``measure()`` gives {name: [values]}, in ``unit``, kept as a pyperf run."""

    note, unit = "", "integer"

    def __init__(self, measure: Callable[[], Any], unit: str = "integer") -> None:
        self.measure, self.unit = measure, unit

    def sample(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        import pyperf

        got, meta = self.measure().items(), {"unit": self.unit, "loops": 1}
        runs = {name: pyperf.Run(v, metadata=dict(meta, name=name)) for name, v in got}
        return {name: pyperf.Benchmark([run]) for name, run in runs.items()}


# ---------------------------------------------------------------- micro rows
_MICRO_TEMPLATE = """
def _timed(_values, _clock, m, d, k, labels, pool, routes, exemplar):
    _t0 = _clock()
    for v in _values:
        {stmt}
    return _clock() - _t0
"""
FLOOR, LITERAL = "d.get(k)", '{"path": next(routes), "method": "GET"}'
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Micro:
    """``for v in values: <stmt>`` on a fresh metric ``m`` (run 128 times first,
    so that every series it touches exists), timed beside its empty loop
    (subtracted: "net") and a floor loop (``against``), all with the same
    loops.  A row without a metric ``kind`` is a floor itself."""

    same_loops = True

    def __init__(self, api: Api, kind: str, stmts, against, labelnames, opts) -> None:
        self.stmt, m = stmts[api.family == PC], None
        self.against = against if kind else None
        opts = dict(opts)
        shared = multiprocess_mode(api) if opts.pop("multiprocess", False) else None
        if kind:
            name = "bench_m" + ("_total" if kind == "Counter" else "")
            with shared or contextlib.nullcontext():
                m = api.metric(kind, name, api.registry(), labelnames, **opts)
                if shared:  # the series' shared value made while the mode is on
                    api.record(m, LABELS, "add", 1)
        aio_summary = kind == "Summary" and api.family == AIO
        self.note = summary_accuracy(api, opts) if aio_summary else ""
        pool = [{"method": METHODS[i % 4], "route": f"/api/v1/r{i}"} for i in range(64)]
        self.names = dict(m=m, d={"path": 1, "method": 2}, k="path",
                          labels=dict(LABELS), pool=itertools.cycle(pool),
                          routes=itertools.cycle(ROUTES),
                          exemplar={"trace_id": TRACE_ID})  # fmt: skip
        if kind:
            try:
                self.compile(self.stmt, clock)(128)
            except TypeError as exc:  # an argument this API does not take (exemplar=)
                raise Unavailable(f"TypeError: {exc}") from None

    def programs(self, clock: Callable[[], float]) -> Programs:
        stmts = {"stmt": self.stmt, "loop": "pass", "floor": self.against}
        return {name: self.compile(s, clock) for name, s in stmts.items() if s}

    def compile(self, stmt: str, clock) -> Callable[[int], float]:
        ns: Dict[str, Any] = {}
        exec(_MICRO_TEMPLATE.format(stmt=stmt), ns)
        timed, args = ns["_timed"], tuple(self.names.values())
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


# fmt: off
def micro(key: str, title: str, kind: str, ours: str, pc: str, *targets,
          against=FLOOR, labelnames=tuple(LABELS), **opts: Any) -> None:
    """Declares a ns/op row: ``ours`` is the statement for ours and 23.12,
    ``pc`` prometheus_client's; ``opts`` go to the metric (an implementation
    refusing them, or the statement, does not offer the row). A row without a
    metric ``kind`` is a floor (no ratios)."""
    row = Row(key, title, "ns/op", "value", targets, not kind, False,
              "x_floor" if kind else "")
    step(key, partial(Micro, kind=kind, stmts=(ours, pc), against=against,
                      labelnames=labelnames, opts=opts),
         row, figures=micro_figures)


# key, title, metric kind, statement (ours and 23.12), prometheus_client's, targets
micro("floor", "floor: d.get(k)", "", FLOOR, FLOOR)
micro("counter_inc_labels", "counter inc, 2-label dict", "Counter", "m.inc(labels)",
      "m.labels(**labels).inc()", floor_x(3), faster(AIO, 30), faster(PC, 20))
micro("counter_inc_varied", "counter inc, 64 rotating 2-label dicts", "Counter",
      "m.inc(next(pool))", "m.labels(**next(pool)).inc()")
micro("floor_literal", "floor: same dict literal + d.get(k)", "", LITERAL + ".get(k)",
      LITERAL + ".get(k)")
micro("counter_inc_literal", "counter inc, fresh dict literal per call", "Counter",
      f"m.inc({LITERAL})", 'm.labels(path=next(routes), method="GET").inc()',
      floor_x(1.5), against=LITERAL + ".get(k)", labelnames=("path", "method"))
micro("counter_inc_nolabels", "counter inc, no labels", "Counter", "m.inc({})",
      "m.inc()", faster(AIO, 15), faster(PC, 5), labelnames=())
micro("counter_inc_exemplar", "counter inc, 2 labels, with exemplar", "Counter",
      "m.inc(labels, exemplar=exemplar)", "m.labels(**labels).inc(1, exemplar)")
micro("gauge_set", "gauge set, 2 labels", "Gauge", "m.set(labels, v)",
      "m.labels(**labels).set(v)", faster(AIO, 20), faster(PC, 20))
micro("histogram_observe", "histogram observe, default buckets", "Histogram",
      "m.observe(labels, v)", "m.labels(**labels).observe(v)", faster(AIO, 20),
      faster(PC, 20))
micro("counter_inc_multiprocess", "counter inc, 2-label dict, multi-process mode",
      "Counter", "m.inc(labels)", "m.labels(**labels).inc()",
      growth("counter_inc_labels", 1.5, "<=1.5x single-process"),
      multiprocess=True)  # issue 12
micro("native_histogram_observe", "native histogram observe, factor 1.1",
      "Histogram", "m.observe(labels, v)", "m.labels(**labels).observe(v)",
      growth("histogram_observe", 1.3, "<=1.3x classic"), **NATIVE)  # issue 10
micro("summary_observe", "summary observe (quantiles)", "Summary",
      "m.observe(labels, v)", "m.labels(**labels).observe(v)", faster(AIO, 20))
micro("windowed_summary_observe", "summary observe, 10 min window", "Summary",
      "m.observe(labels, v)", "m.labels(**labels).observe(v)",
      growth("summary_observe", 1.5, "<=1.5x summary"), max_age_seconds=600,
      age_buckets=5)  # issue 10
# fmt: on


def summary_accuracy(api: Api, opts: Dict[str, Any], n: int = 20_000) -> str:
    """Rank error of the reported quantiles on a fresh summary (not timed)."""
    s = api.metric("Summary", "bench_accuracy", api.registry(), **opts)
    obs = values(n)
    for v in obs:
        s.observe({}, v)
    got, ordered, parts = s.get({}), sorted(obs), []
    for q, eps in getattr(s, "invariants", ((0.5, 0.05), (0.9, 0.01), (0.99, 0.001))):
        if (est := got.get(q)) is not None:  # the estimate's rank range against q
            lo = bisect.bisect_left(ordered, est) / n
            hi = bisect.bisect_right(ordered, est) / n
            err = 0.0 if lo <= q <= hi else min(abs(lo - q), abs(hi - q))
            parts.append(f"q{q:g} rank err {err:.4f} (eps {eps:g})")
    return "; ".join(parts)


# ---------------------------------------------------------------- renders
SERIES_PER_METRIC = 500
_FIXTURE: Dict[Tuple[str, int, bool], Any] = {}


def native_values(buckets: int) -> List[float]:
    """One value in each of ``buckets`` distinct native buckets (factor 1.1:
    schema 3, bucket i is (2**((i-1)/8), 2**(i/8)])."""
    return [2 ** ((i - 0.5) / 8) for i in range(1, buckets + 1)]


def build_fixture(api: Api, n_series: int, native: bool = False) -> Any:
    """``n_series`` 2-label series, identical across implementations: in
    counters and gauges (alternating, 500 series per metric), or (``native``)
    in native histograms, 20 populated buckets each."""
    reg = api.registry()
    for m in range(math.ceil(n_series / SERIES_PER_METRIC)):
        kind = "Histogram" if native else ("Counter", "Gauge")[m % 2]
        suffix = "_total" if kind == "Counter" else ""
        opts = NATIVE if native else {}
        metric = api.metric(kind, f"bench_fixture_{m}{suffix}", reg, LABELS, **opts)
        for i in range(min(SERIES_PER_METRIC, n_series - m * SERIES_PER_METRIC)):
            labels = {"method": METHODS[i % 4], "route": f"/api/v1/resource/{m}/{i}"}
            if native:
                for v in native_values(20):
                    api.record(metric, labels, "observe", v)
            elif kind == "Counter":
                api.record(metric, labels, "add", i + 1)
            else:
                api.record(metric, labels, "set", i * 0.25 + 0.1)
    return reg


def fixture(api: Api, n_series: int, native: bool = False) -> Any:
    """The fixture, kept for the steps that follow (rendering and scraping do
    not change it; the driver runs the steps of one fixture together)."""
    key = (api.family, n_series, native)
    if key not in _FIXTURE:
        _FIXTURE.clear()
        gc.collect()
        _FIXTURE[key] = build_fixture(api, n_series, native)
    return _FIXTURE[key]


FORMATTERS = {  # format: (ours and 23.12, prometheus_client), module:attribute
    "text": ("aioprometheus.formats.text:TextFormatter",
             "prometheus_client:generate_latest"),
    "protobuf": ("aioprometheus.formats.binary:BinaryFormatter", None),
    "openmetrics": ("aioprometheus.formats.openmetrics:OpenMetricsFormatter",
                    "prometheus_client.openmetrics.exposition:generate_latest"),
}  # fmt: skip


def formatter(api: Api, fmt: str) -> Callable[[Any], bytes]:
    where = FORMATTERS[fmt][api.family == PC]
    if where is None:
        raise Unavailable(f"{api.family} has no {fmt} exposition")
    module, attr = where.split(":")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise Unavailable(f"{type(exc).__name__}: {exc}") from None
    return found if api.family == PC else found().marshall


class Render:
    """One render of the fixture in ``fmt``, timed as a whole."""

    def __init__(self, api: Api, fmt: str, series: int, native: bool = False) -> None:
        marshall, reg = formatter(api, fmt), fixture(api, series, native)
        self.fn = partial(marshall, reg)
        self.note = f"{len(self.fn())} bytes"

    def programs(self, clock: Callable[[], float]) -> Programs:
        return {"call": looped(self.fn, clock)}


RENDERS = (  # format, series, native histograms, targets
    ("text", 1_000, False, ()),
    ("text", 10_000, False, (faster(AIO, 10), faster(PC, 50))),
    ("text", 100_000, False, (growth("text_render_10k", 11, "<=11x 10k"),)),
    ("protobuf", 1_000, False, ()),
    ("protobuf", 10_000, False, (growth("text_render_10k", 1, "<= our text"),)),
    ("protobuf", 100_000, False, ()),
    ("openmetrics", 10_000, False, (growth("text_render_10k", 1.2, "<=1.2x text"),)),
    ("protobuf", 10_000, True, ()),  # issues 10 and 11
)  # fmt: skip
for fmt, n, native, targets in RENDERS:
    size, what = f"{n // 1000}k", "native histogram " if native else ""
    key = f"{fmt}_render_{'native_' * native}{size}"
    step(key, Render, Row(key, f"{fmt} render, {size} {what}series", "ms", "value",
                          targets),
         figures=medians(1e3, value="call"), full_only=n == 100_000,
         params={"fmt": fmt, "series": n, "native": native},
         rounds=(3, 5 if n == 100_000 else 11))  # fmt: skip


# ---------------------------------------------------------------- multi-process mode
@contextlib.contextmanager
def multiprocess_mode(api: Api, directory: Optional[str] = None) -> Any:
    """Metrics made (and, for prometheus_client, series first touched)
    inside keep their values in shared files in ``directory`` (a fresh one
    by default): ours through ``PROMETHEUS_MULTIPROC_DIR``, prometheus_client
    through its mmap'd values (chosen at its import, so swapped in here)."""
    pc = api.family == PC
    try:
        values = importlib.import_module(
            "prometheus_client.values" if pc else "aioprometheus.multiprocess"
        )
    except ImportError as exc:
        raise Unavailable(f"no multi-process mode: {exc}") from None
    here = os.path.dirname(api.mod.__file__)
    if not pc and os.path.dirname(values.__file__) != here:
        # another install's module, found through an editable install's finder
        raise Unavailable(f"no multi-process mode in {here}")
    if directory is None:  # removed when this worker exits
        directory = tempfile.mkdtemp(prefix="bench-mp-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    saved = getattr(values, "ValueClass", None)
    if pc:
        values.ValueClass = values.MultiProcessValue()
    try:
        yield directory
    finally:
        if pc:
            values.ValueClass = saved
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]


class MultiprocessRead:
    """What a scrape reads in multi-process mode: ``workers`` processes
    (forked, kept alive) with ``series`` counter series each, aggregated:
    ours as a scrape does it again (``warm``, its readers kept) or as a new
    exporter's first scrape (``cold``); prometheus_client's
    MultiProcessCollector (which reads every file at every scrape)."""

    note = ""

    def __init__(self, api: Api, workers: int, series: int) -> None:
        with multiprocess_mode(api) as directory:
            metric = api.metric("Counter", "mp_requests_total", api.registry(),
                                ("method", "route"))  # fmt: skip
        self.api, self.directory, self.children = api, directory, []
        self.expected = series * workers * (workers + 1) // 2
        for w in range(workers):
            pid = os.fork()
            if pid == 0:  # a worker: its series, then wait to be killed
                with multiprocess_mode(api, directory):
                    for i in range(series):
                        labels = {"method": METHODS[i % 4], "route": f"/api/v1/r/{i}"}
                        api.record(metric, labels, "add", w + 1)
                signal.pause()
            self.children.append(pid)

    def read(self, cold: bool) -> List[Any]:
        with multiprocess_mode(self.api, self.directory):
            if self.api.family == PC:
                from prometheus_client.multiprocess import MultiProcessCollector

                return list(MultiProcessCollector(None, self.directory).collect())
            mp = importlib.import_module("aioprometheus.multiprocess")
            if cold:
                return mp._Aggregator(self.directory).merged()
            return mp.merged_collectors([])

    def total(self) -> float:
        """The sum of every series (-1 while prometheus_client finds a file
        still being made: its reader fails on one)."""
        try:
            metrics = self.read(cold=True)
        except Exception:  # noqa: BLE001 - prometheus_client's struct.error and kin
            return -1
        if self.api.family == PC:
            return sum(s.value for m in metrics for s in m.samples)
        return sum(v for m in metrics for _, v in m._items())

    def programs(self, clock: Callable[[], float]) -> Programs:
        deadline = time.monotonic() + 60
        while self.total() != self.expected:  # every worker's series
            if time.monotonic() > deadline:
                raise RuntimeError("the multi-process workers never finished")
            time.sleep(0.05)
        cold = {} if self.api.family == PC else {"cold": True}
        reads = {"warm": False, **cold}.items()
        return {k: looped(partial(self.read, c), clock) for k, c in reads}

    def __del__(self) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        shutil.rmtree(self.directory, ignore_errors=True)


step("multiprocess_read", MultiprocessRead,  # issue 12
     Row("multiprocess_read", "multi-process scrape read, 4 workers x 10k series",
         "ms", "value", (at_most(10), faster(PC, 10))),
     Row("multiprocess_read_cold", "multi-process first read (new exporter), same",
         "ms", "cold", (at_most(10),)),
     figures=medians(1e3, value="warm", cold="cold"), impls=("ours", PC),
     params={"workers": 4, "series": 10_000}, rounds=(3, 7))  # fmt: skip


# ---------------------------------------------------------------- scrapes
class Scrape(Once):
    """Sequential GETs of an aiohttp exporter on 127.0.0.1 from a separate
    scraper process (``workloads.py client``, one keep-alive connection):
    aioprometheus' Service, prometheus_client's aiohttp handler on the same
    HTTP stack, or (``static``) the same bytes pre-rendered (and, with
    ``gzip``, pre-compressed) from a bare handler."""

    def __init__(self, api: Api, series: int, static=False, gzip=False, requests=3,
                 budget_s=1.0) -> None:  # fmt: skip
        try:
            import aiohttp  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"ImportError: {exc}") from None
        self.api, self.gzip, self.static, self.unit = api, gzip, static, "second"
        self.requests, self.budget_s = requests, budget_s
        self.reg, self.note = fixture(api, series), ""

    def measure(self) -> Dict[str, List[float]]:
        """One round of requests' latencies (the first round after an
        unmeasured request that warms up the exporter)."""
        if not self.note:
            asyncio.run(self.round(1, 0))
        lat = without_gc(asyncio.run)(self.round(self.requests, self.budget_s))
        return {"latency": lat}

    async def start(self) -> Tuple[str, Callable[[], Any]]:
        """The exporter: (its URL, its cleanup)."""
        if self.static:
            body = formatter(self.api, "text")(self.reg)
            headers = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
            if self.gzip:
                import gzip

                body, headers["Content-Encoding"] = gzip.compress(body, 6), "gzip"
            return await serve_static(body, headers)
        if self.api.family == AIO:
            from aioprometheus.service import Service  # type: ignore

            svc = Service(registry=self.reg)
            await svc.start(addr="127.0.0.1", port=0)
            return svc.metrics_url, svc.stop
        from prometheus_client.aiohttp import make_aiohttp_handler  # type: ignore

        return await http_site(
            make_aiohttp_handler(self.reg, disable_compression=not self.gzip)
        )

    async def round(self, requests: int, budget_s: float) -> List[float]:
        url, stop = await self.start()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, os.path.abspath(__file__), "client",
                json.dumps([url, requests, budget_s, self.gzip]),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
        finally:
            await stop()
        try:
            got = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError(f"scrape client failed: {err.decode()[-500:]}") from None
        self.note = f"{got['size']} bytes ({got['encoding']})"
        return got["latencies"]


async def http_site(handler: Any) -> Tuple[str, Callable[[], Any]]:
    """``handler`` at /metrics of an aiohttp site on 127.0.0.1, an ephemeral
    port: (its URL, its cleanup)."""
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}/metrics", runner.cleanup


async def serve_static(body: bytes, headers: Dict[str, str], spans=None) -> Any:
    """The HTTP floor: the same response every time, prepared beforehand
    (each request's start and end appended to ``spans`` if given)."""
    from aiohttp import web

    async def handler(request: Any) -> Any:
        t0 = time.perf_counter()
        response = web.Response(body=body, headers=headers)
        if spans is not None:
            spans.append((t0, time.perf_counter()))
        return response

    return await http_site(handler)


def scrape_client(url: str, requests: int, budget_s: float, gzip: bool) -> None:
    """The scraper process: up to ``requests`` timed GETs (after one that
    opens the connection), stopping once ``budget_s`` is spent (after 3), so
    that slow exporters do not dominate the run."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    encoding = "gzip" if gzip else "identity"
    headers = {"Accept": "text/plain; version=0.0.4", "Accept-Encoding": encoding}
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    lat: List[float] = []
    start = time.perf_counter()
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
    encoding = resp.getheader("Content-Encoding") or "identity"
    print(json.dumps({"latencies": lat, "size": len(body), "encoding": encoding}))


def scrape_figures(b: Dict[str, Any]) -> Dict[str, float]:
    lat = b["latency"]
    p50, p99 = lat.percentile(50) * 1e3, lat.percentile(99) * 1e3
    return {"p50": p50, "p99": p99, "requests": lat.get_nvalue()}


SCRAPES = (  # key, title ({p}: p50/p99), Scrape options, implementations
    ("scrape_10k", "scrape {p}, Service, 10k series", {}, IMPLS),
    ("scrape_static_10k", "HTTP floor {p}: same body, static", {"static": True}, IMPLS),
    ("scrape_gzip_10k", "scrape {p}, Service, gzip, 10k series", {"gzip": True},
     ("ours", AIO)),
    ("scrape_gzip_static_10k", "HTTP floor {p}: same gzip body, static",
     {"gzip": True, "static": True}, ("ours", AIO)),
)  # fmt: skip
for key, title, options, impls in SCRAPES:
    static, prefix = options.get("static", False), key[: -len("_10k")]
    p99 = (at_most(5), faster(AIO, 5)) if key == "scrape_10k" else ()
    rows = [
        Row(f"{prefix}_p{p}_10k", title.format(p=f"p{p}"), "ms", f"p{p}", t, static)
        for p, t in ((50, ()), (99, p99))
    ]
    params = {"series": 10_000, "requests": (30, 100), "budget_s": (0.3, 2), **options}
    step(key, Scrape, *rows, figures=scrape_figures, impls=impls,
         rounds=(2, 5) if static else (3, 10), params=params)  # fmt: skip


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

    inner_loops = LOOP_TASKS * LOOP_PER_ITER

    def __init__(self, api: Api) -> None:
        self.c = api.metric("Counter", "bench_loop_total", api.registry(), LABELS)
        self.pool = [{"method": m, "route": "/api/v1/items"} for m in METHODS]
        self.stmt = "c.labels(**labels).inc()" if api.family == PC else "c.inc(labels)"

    def programs(self, clock: Callable[[], float]) -> Programs:
        def program(stmt: str) -> Callable[[int], float]:
            ns: Dict[str, Any] = {"_sleep": asyncio.sleep}
            exec(_LOOP_TEMPLATE.format(per_iter=LOOP_PER_ITER, stmt=stmt), ns)
            task = ns["_task"]

            async def main(iters: int) -> float:
                t0 = clock()
                tasks = (task(iters, self.c, self.pool) for _ in range(LOOP_TASKS))
                await asyncio.gather(*tasks)
                return clock() - t0

            return lambda iters: asyncio.run(main(iters))

        return {"instrumented": program(self.stmt), "baseline": program("pass")}


def loop_figures(b: Dict[str, Any]) -> Dict[str, float]:
    instr, base = b["instrumented"].median(), b["baseline"].median()
    rates = {"instrumented_rate": 1e-6 / instr, "baseline_rate": 1e-6 / base}
    return {"value": (instr - base) * 1e9, **rates}


step("asyncio_loop", AsyncLoop,
     Row("asyncio_loop_cost", "asyncio loop: cost per increment", "ns/op"),
     Row("asyncio_loop_rate", "asyncio loop: instrumented rate", "Mev/s",
         "instrumented_rate", higher_is_better=True),
     Row("asyncio_loop_base", "asyncio loop: uninstrumented rate", "Mev/s",
         "baseline_rate", control=True, higher_is_better=True),
     figures=loop_figures, rounds=(5, 11))  # fmt: skip


# ---------------------------------------------------------------- middleware
def asgi_middleware(
    api: Api, seconds: float = 0, stack: str = "h11", control: bool = False
) -> Any:
    """The middleware rows' workload: both apps timed here, or (``seconds``)
    served under uvicorn (its ``stack``) and loaded by ``wrk`` for that long
    (``control``: a no-op middleware instead of the implementation's)."""
    import middleware  # benchmarks/middleware.py, beside this script

    if not seconds:
        return middleware.Overhead(api.family)
    if shutil.which("wrk") is None:
        raise Unavailable("no `wrk` on PATH")
    return Once(middleware.UnderUvicorn(api.family, seconds, stack, control).measure)


def middleware_figures(b: Dict[str, Any]) -> Dict[str, float]:
    def added(driver: str, bare: str) -> float:
        """The median over values of instrumented minus bare: each pair was
        timed back to back (values interleave), so load drifting across a
        round cancels out instead of widening a difference of medians."""
        pairs = zip(b[driver].get_values(), b[bare].get_values())
        return statistics.median(i - j for i, j in pairs) * 1e6

    figures = {
        "value": added("asgi", "asgi_bare"),
        "httpx": added("httpx", "httpx_bare"),
    }
    if "asgi_timed" in b:  # ours: the middleware with its duration histogram
        figures["timed"] = added("asgi_timed", "asgi_bare")
    return figures


step("middleware_fastapi", asgi_middleware,
     Row("middleware_asgi", "ASGI middleware on FastAPI, added", "us/req", "value",
         (at_most(2),)),  # issue 14
     Row("middleware_httpx", "ASGI middleware on FastAPI via httpx, added", "us/req",
         "httpx"),
     Row("middleware_asgi_timed", "ASGI middleware + duration histogram, added",
         "us/req", "timed", (at_most(2),)),  # issue 14: the same budget
     figures=middleware_figures)  # fmt: skip
for stack, where in (("h11", ""), ("standard", "_standard")):
    server = "uvicorn" if stack == "h11" else "uvicorn[standard]"
    uvicorn = {"seconds": 5.0, "stack": stack}
    step(f"middleware_uvicorn{where}", asgi_middleware,
         Row(f"middleware_uvicorn{where}", f"middleware under {server}, server CPU "
             "added", "us/req", "value", (at_most(2),)),  # issue 14
         Row(f"middleware_uvicorn{where}_kept", f"middleware under {server}, "
             "throughput kept", "%", "kept", higher_is_better=True),
         figures=medians(value="cpu", kept="kept"), params=uvicorn, rounds=(6, 6),
         full_only=True)  # fmt: skip
    # the method's zero: a no-op middleware, the same for every implementation
    step(f"middleware_uvicorn{where}_noop", asgi_middleware,
         Row(f"middleware_uvicorn{where}_noop", f"no-op middleware under {server}, "
             "server CPU added", "us/req", "value", control=True),
         figures=medians(value="cpu"), params=dict(uvicorn, control=True),
         rounds=(6, 6), impls=("ours",), full_only=True)  # fmt: skip


# ---------------------------------------------------------------- memory
def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_per_series(api: Api, kind: str, n: int, buckets: int = 0) -> float:
    """RSS growth per series for ``n`` new 2-label series of ``kind``, each
    with a unique route string (the strings' cost included); a native
    histogram series gets ``buckets`` populated buckets."""
    name, opts = "bench_mem" + "_total" * (kind == "Counter"), NATIVE if buckets else {}
    metric = api.metric(kind, name, api.registry(), LABELS, **opts)
    observed = native_values(buckets)

    def add(i: int, route: str) -> None:
        labels = {"method": "GET", "route": route}
        if kind == "Counter":
            api.record(metric, labels, "add", 1)
        else:  # a native histogram's series gets all its buckets at once
            for v in observed or [0.001 * (i % 2000)]:
                api.record(metric, labels, "observe", v)

    add(0, "/warmup")  # the first series and code paths are not counted
    if buckets:  # the series really has that many buckets
        found = metric.get_native(dict(LABELS, route="/warmup"))["positive"]
        if len(found) != buckets:
            raise RuntimeError(f"{len(found)} native buckets, not {buckets}")
    gc.collect()
    gc.disable()
    before = rss_bytes()
    for i in range(n):
        add(i, f"/api/v1/items/{i}")
    gc.collect()
    return (rss_bytes() - before) / n


def memory(api: Api, **params: Any) -> Once:
    """A memory row's sample (the driver asks a fresh worker for each)."""
    return Once(lambda: {"memory": [memory_per_series(api, **params)]}, "byte")


MEMORY = (  # key, title, metric kind, native buckets, B/series at most
    ("memory_counter", "memory, 2-label counter series", "Counter", 0, 250),
    ("memory_histogram", "memory, histogram series", "Histogram", 0, 500),
    ("memory_native_20", "memory, native histogram, 20 buckets", "Histogram", 20, None),
    ("memory_native_160", "memory, native histogram, 160 buckets", "Histogram", 160,
     None),
)  # fmt: skip
for key, title, kind, buckets, bound in MEMORY:
    n = (20_000, 100_000) if not buckets else (5_000, 20_000)
    step(key, memory,
         Row(key, title, "B/series", "value", (at_most(bound),) if bound else ()),
         figures=medians(value="memory"), rounds=(1, 3), fresh=True,
         params={"kind": kind, "n": n, "buckets": buckets})  # fmt: skip


# ---------------------------------------------------------------- real Prometheus
def prometheus_rows(size: str, handler_ms: float, lateness_ms: float) -> List[Row]:
    """Issue 14's goals: within 1.2x of the floor, handler and worst loop
    lateness during a scrape within the given bounds (ours)."""
    key, at = f"prometheus_{size}", f"{size} series"
    return [
        Row(key, f"Prometheus scrape_duration avg, {at}", "ms", size, (floor_x(1.2),),
            x_floor=f"x_floor_{size}"),
        Row(f"{key}_floor", f"Prometheus floor: same bytes, static, {at}", "ms",
            f"floor_{size}", control=True),
        Row(f"{key}_handler", f"Prometheus scrape: handler time, {at}", "ms",
            f"handler_{size}", (at_most(handler_ms),)),
        Row(f"{key}_lateness", f"Prometheus scrape: worst loop lateness, {at}", "ms",
            f"lateness_{size}", (at_most(lateness_ms),)),
        Row(f"{key}_cpu_wait", "  of which the loop waited for a CPU", "ms",
            f"lateness_cpu_wait_{size}"),
        Row(f"{key}_gc", "  of which the garbage collector ran", "ms",
            f"lateness_gc_{size}"),
        Row(f"{key}_lateness_median", f"  the median scrape's worst, {at}", "ms",
            f"lateness_median_{size}"),
        Row(f"{key}_floor_lateness", f"  the floor's worst (static bytes), {at}", "ms",
            f"floor_lateness_{size}", control=True),
    ]  # fmt: skip


step("prometheus", "prometheus",  # prometheus.run
     *prometheus_rows("10k", 4, 2), *prometheus_rows("100k", 40, 5),
     params={"seconds": (6, 30), "interval_s": (1, 2)}, rounds=(1, 1),
     impls=("ours", AIO))  # fmt: skip


# ---------------------------------------------------------------- timing
_RNG = random.Random(20231200)
_BASE_VALUES = [_RNG.lognormvariate(-2.0, 1.5) for _ in range(65536)]


@lru_cache(maxsize=1)
def values(n: int) -> List[float]:
    """``n`` deterministic observations spread across the default buckets
    (lognormal, median 0.135), repeating with a period of 65536."""
    return (_BASE_VALUES * (n // 65536 + 1))[:n]


def without_gc(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Time with the collector off, after a collection (cheap: the worker's
    long-lived objects are frozen)."""

    def timed(*args: Any) -> Any:
        gc.collect()
        gc.disable()
        try:
            return fn(*args)
        finally:
            gc.enable()

    return timed


def loops_of(bench: Any) -> int:
    return int(bench.get_runs()[0].get_metadata()["loops"])


class Timer:
    """pyperf runs of a workload's programs, each calibrated on its first run
    (all on the first program's if the workload has ``same_loops``): one
    value of each program in turn (a run each, the warm-ups in the first),
    so that load drifting during a round meets all of them alike; the order
    reversed every other round."""

    runner: Any = None  # pyperf allows one Runner a process

    def __init__(self, timed: Any) -> None:
        self.timed, self.note = timed, getattr(timed, "note", "")
        self.rounds, self.loops = 0, {}
        if Timer.runner is None:
            import pyperf

            Timer.runner = pyperf.Runner()
            Timer.runner.parse_args(["--worker", "--quiet", "--loops=1", "--values=1"])

    def sample(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        import pyperf

        programs = list(self.timed.programs(clock).items())
        self.rounds += 1
        runs: Dict[str, List[Any]] = {}
        Timer.runner.args.min_time = settings["min_time"]
        for value in range(settings["values"]):
            Timer.runner.args.warmups = settings["warmups"] if value == 0 else 0
            for name, program in programs if self.rounds % 2 else programs[::-1]:
                slot = "" if getattr(self.timed, "same_loops", False) else name
                if slot not in self.loops:  # pyperf calibrates them (to min_time)
                    self.loops[slot] = loops_of(self.run(name, program, 0))
                bench = self.run(name, program, self.loops[slot])
                runs.setdefault(name, []).extend(bench.get_runs())
        return {name: pyperf.Benchmark(r) for name, r in runs.items()}

    def run(self, name: str, program: Callable[[int], float], loops: int) -> Any:
        """One pyperf run (the warm-ups, then one value) of ``program(loops)``
        -> seconds; ``loops=0``: a calibration run."""
        runner, inner = Timer.runner, getattr(self.timed, "inner_loops", None)
        runner.args.calibrate_loops, runner.args.loops = not loops, loops or 1
        runner._bench_names.clear()  # a worker runs a benchmark once per round
        return runner.bench_time_func(name, without_gc(program), inner_loops=inner)


# ---------------------------------------------------------------- worker
def identify(opts: Dict[str, str]) -> Dict[str, Any]:
    """Import the implementation; refuse one from the wrong folder."""
    family, expect = opts["family"], opts.get("expect")
    info: Dict[str, Any] = {"family": family, "python": sys.version.split()[0]}
    try:
        mod = importlib.import_module(family)
        path = os.path.realpath(mod.__file__ or "")
        info.update(module_file=path, version=getattr(mod, "__version__", None))
        if expect and not path.startswith(os.path.realpath(expect) + os.sep):
            raise ImportError(f"{family} imported from {path}, expected under {expect}")
    except Exception as exc:
        return {**info, "ok": False, "reason": f"{type(exc).__name__}: {exc}"}
    return {**info, "ok": True}


def freeze() -> None:
    """Hide every live object from the collector, so the collection before
    each timed value costs next to nothing whatever was imported."""
    gc.collect()
    gc.freeze()


def dump(benches: Dict[str, Any]) -> Dict[str, str]:
    """pyperf benchmarks as JSON text, by name."""
    texts = {name: io.StringIO() for name in benches}
    for name, bench in benches.items():
        bench.dump(texts[name])
    return {name: text.getvalue() for name, text in texts.items()}


def make_timer(s: Step, api: Api, params: Dict[str, Any]) -> Any:
    """The step's workload built for this implementation, in its timer."""
    assert callable(s.workload)
    built = s.workload(api, **params)
    return built if hasattr(built, "sample") else Timer(built)


def serve(opts: Dict[str, str]) -> int:
    """Worker loop: a JSON command a stdin line (``step``, ``params``,
    ``settings``), a JSON answer each, until the end of input."""
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
    api, steps = Api(opts["family"]), {s.key: s for s in STEPS}
    key, timer = None, None
    freeze()
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["step"] != key:  # the last step's objects may go
            key, timer = cmd["step"], None
            gc.unfreeze()
            gc.collect()
            try:
                timer = make_timer(steps[key], api, cmd["params"])
            except Exception as exc:  # remembered: not built again
                timer = exc
            freeze()
        try:
            if isinstance(timer, Exception):
                raise timer
            benches = dump(timer.sample(cmd["settings"]))
            answer = {"status": "ok", "benches": benches, "note": timer.note}
        except Exception as exc:
            status = "unavailable" if isinstance(exc, Unavailable) else "error"
            answer = {"status": status, "reason": f"{type(exc).__name__}: {exc}"}
        proto.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":  # a worker (key=value ...), or a scraper
    if sys.argv[1:2] == ["client"]:
        sys.exit(scrape_client(*json.loads(sys.argv[2])))
    sys.exit(serve(dict(a.split("=", 1) for a in sys.argv[1:])))
