"""The scrape as a real Prometheus measures it (the ``prometheus_*`` rows).

Debian's ``prometheus`` (on PATH; else the rows are skipped, with a message)
scrapes, every 1 s (``--quick``) or 2 s, two exporter processes on
127.0.0.1 side by side, each serving 10k counter and 1k histogram series
(100k/10k too in full runs): one implementation's Service (ours, then
aioprometheus 23.12's, each with a Prometheus of its own, so neither loses
CPU to the other's renders) and the floor, a static aiohttp handler serving
the bytes ours answers Prometheus (its format, its gzip).  The rows give
Prometheus' own ``scrape_duration_seconds`` averaged per target, and from
each exporter its
handler time (median) and the worst lateness of a 1 ms asyncio tick on its
event loop during a scrape. Prometheus runs PROMETHEUS_NICENESS nicer than
the exporters, as if on a host of its own.
"""

import asyncio
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

try:  # the driver imports this module from the package, an exporter as a script
    from . import peers, workloads
except ImportError:
    import peers  # type: ignore[no-redef]
    import workloads  # type: ignore[no-redef]

# what Prometheus 2.42 asks for
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_NICENESS = 10
START_TIMEOUT_S = 120  # building 100k series in 23.12 takes a while
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _query(url: str) -> List[Dict[str, Any]]:
    """The result vector of a loopback API query ([] while unreachable)."""
    assert urllib.parse.urlsplit(url).hostname == "127.0.0.1"
    try:
        with _OPENER.open(url, timeout=10) as resp:
            return json.loads(resp.read())["data"]["result"]
    except OSError:
        return []


class Exporter:
    """An exporter process (``prometheus.py``) for one target."""

    def __init__(self, env: Dict[str, str], mode: str, series: int) -> None:
        cmd = [sys.executable, __file__, mode, str(series)]
        self.child = peers.Child(cmd, env, timeout=START_TIMEOUT_S)
        self.target = self.said(self.child.first, "target")["target"]

    def stop(self) -> Dict[str, Any]:
        """Its handler times and loop lateness, once it has stopped."""
        try:
            return self.said(self.child.request("stop", 60), "scrapes")
        finally:
            self.child.close()

    def said(self, line: Dict[str, Any], key: str) -> Dict[str, Any]:
        if key not in line:
            raise RuntimeError(f"exporter process: {line.get('reason')}")
        return line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(
    targets: List[str], interval_s: int, seconds: float, warmup_scrapes: int = 3
) -> Dict[str, float]:
    """Average scrape_duration_seconds per target over ``seconds`` of
    scraping, after ``warmup_scrapes`` (the first create the series), from a
    Prometheus started (and stopped) here."""
    with tempfile.TemporaryDirectory(prefix="aioprom-bench-prom-") as tmp:
        every = f"{interval_s}s"
        job = {"job_name": "bench", "static_configs": [{"targets": targets}]}
        config = {"global": {"scrape_interval": every, "scrape_timeout": every}}
        config["scrape_configs"] = [job]  # JSON is YAML
        (Path(tmp) / "prometheus.yml").write_text(json.dumps(config))
        port = _free_port()
        api = f"http://127.0.0.1:{port}/api/v1/query?query="
        with open(Path(tmp) / "log", "w") as log:
            args = ["--config.file=prometheus.yml", "--storage.tsdb.path=data"]
            args += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
            # nice: at 100k series its parsing (~300 ms a scrape) would take
            # the exporter's CPU on this machine, as it would not from a host
            # of its own; the exporters' rows measure what they cause
            proc = subprocess.Popen(
                ["nice", "-n", str(PROMETHEUS_NICENESS), "prometheus", *args],
                stdout=log, stderr=log, cwd=tmp,
            )  # fmt: skip
        try:
            # up once every target was scraped (discovery takes about 5 s)
            deadline = time.monotonic() + 60
            while len(_query(api + "up")) < len(targets):
                if time.monotonic() > deadline or proc.poll() is not None:
                    log = (Path(tmp) / "log").read_text()[-800:]
                    raise RuntimeError(f"prometheus did not scrape every target: {log}")
                time.sleep(0.2)
            time.sleep(warmup_scrapes * interval_s + seconds)
            query = urllib.parse.quote(
                f"avg_over_time(scrape_duration_seconds[{int(seconds + interval_s)}s])"
            )
            found = _query(api + query)
        finally:
            peers.stop(proc)
    return {r["metric"]["instance"]: float(r["value"][1]) * 1e3 for r in found}


def run(impls: List[Any], params: Dict[str, Any], quick: bool):
    """The rows' samples ({step: {impl: [answer]}}) and a note."""
    if shutil.which("prometheus") is None:
        return {}, "Prometheus rows: skipped (no `prometheus` on PATH)"
    ours = next((i for i in impls if i.key == "ours"), None)
    if ours is None:
        return {}, "Prometheus rows: skipped (they need ours)"
    figures: Dict[str, Dict[str, float]] = {i.key: {} for i in impls}
    for series in (10_000,) if quick else (10_000, 100_000):
        size = f"{series // 1000}k"
        for impl in impls:  # one at a time: 23.12's 0.8 s renders took ours' CPU
            exporters: List[Exporter] = []
            try:
                exporters.append(Exporter(impl.env(), "service", series))
                exporters.append(Exporter(ours.env(), "static", series))
                targets = [e.target for e in exporters]
                avg = scrape(targets, params["interval_s"], params["seconds"])
            finally:
                stats = [e.stop() for e in exporters]
            ms, floor = avg[targets[0]], avg[targets[1]]
            got = {"": ms, "x_floor_": ms / floor, "floor_": floor}
            got.update((f"{k}_", v) for k, v in stats[0].items())
            got["floor_lateness_"] = stats[1]["lateness"]  # the machine's share
            figures[impl.key].update((f"{k}{size}", v) for k, v in got.items())
    answers = {k: [{"status": "ok", "figures": f}] for k, f in figures.items()}
    return {"prometheus": answers}, ""


# ---------------------------------------------------------------- exporter


def registry(series: int) -> Any:
    """``series`` counter series and a tenth as many histogram series."""
    from aioprometheus import Counter, Histogram, Registry

    reg = Registry()
    counter = Counter("bench_requests_total", "Requests.", registry=reg)
    histogram = Histogram("bench_latency_seconds", "Latency.", registry=reg)
    for i in range(series):
        counter.add({"path": f"/p{i}", "method": "GET"}, i)
    for i in range(series // 10):
        histogram.observe({"path": f"/p{i}"}, i / 1000)
    return reg


async def export(mode: str, series: int) -> Dict[str, Any]:
    """Serve until a line on stdin; the handler spans and the lateness of a
    1 ms tick meanwhile."""
    from aioprometheus.service import Service

    reg = registry(series)
    spans: List[Tuple[float, float]] = []

    class TimedService(Service):  # type: ignore[misc]
        async def handle_metrics(self, request: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await super().handle_metrics(request)
            finally:
                spans.append((t0, time.perf_counter()))

    svc = TimedService(registry=reg)
    await svc.start(addr="127.0.0.1", port=0)
    if mode == "static":  # what ours answers Prometheus, kept and served as is
        import aiohttp

        ask = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.get(svc.metrics_url, headers=ask) as resp:
                packed, got = await resp.read(), resp.headers
        await svc.stop()
        spans.clear()
        headers = {k: got[k] for k in ("Content-Type", "Content-Encoding") if k in got}
        url, stop = await workloads.serve_static(packed, headers, spans)
    else:
        url, stop = svc.metrics_url, svc.stop
    print(json.dumps({"target": urllib.parse.urlsplit(url).netloc}), flush=True)
    loop = asyncio.get_running_loop()
    line = loop.run_in_executor(None, sys.stdin.readline)
    # each tick: start, lateness, and meanwhile the CPU wait and GC time
    ticks: List[Tuple[float, float, float, float]] = []
    cpu_wait, gc_time = cpu_wait_clock(), gc_clock()
    while not line.done():
        waited, collected, t0 = cpu_wait(), gc_time(), time.perf_counter()
        await asyncio.sleep(0.001)
        late = time.perf_counter() - t0 - 0.001
        ticks.append((t0, late, cpu_wait() - waited, gc_time() - collected))
    await stop()
    none = (0.0, 0.0, 0.0, 0.0)
    worst = [  # each scrape's latest tick
        max(
            (t for t in ticks if a <= t[0] + 0.001 + t[1] and t[0] <= b),
            key=lambda t: t[1],
            default=none,
        )
        for a, b in spans
    ]
    handler = statistics.median(b - a for a, b in spans) * 1e3 if spans else None
    _, late, waited, collected = max(worst, key=lambda t: t[1], default=none)
    return {  # ms
        "handler": handler,
        "scrapes": len(spans),
        "lateness": late * 1e3,
        "lateness_cpu_wait": waited * 1e3,
        "lateness_gc": collected * 1e3,
        "lateness_median": statistics.median(t[1] for t in worst) * 1e3
        if worst
        else 0.0,
    }


def gc_clock() -> Callable[[], float]:
    """Seconds the garbage collector has run in this process, from now on:
    a full collection of the interpreter's and aiohttp's objects takes
    7-15 ms here, whichever client counts."""
    spent = [0.0, 0.0]  # total, start of the collection under way

    def note(phase: str, info: Dict[str, Any]) -> None:
        if phase == "start":
            spent[1] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - spent[1]

    gc.callbacks.append(note)
    return lambda: spent[0]


def cpu_wait_clock() -> Callable[[], float]:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux's
    schedstat run delay; 0 elsewhere): lateness the machine caused, not
    the GIL or the loop's own work."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return lambda: 0.0
    return lambda: int(os.pread(fd, 128, 0).split()[1]) * 1e-9


if __name__ == "__main__":  # an exporter: mode, series
    print(json.dumps(asyncio.run(export(sys.argv[1], int(sys.argv[2])))), flush=True)
