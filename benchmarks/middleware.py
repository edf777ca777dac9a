"""ASGI middleware overhead: ``python -m benchmarks.middleware [--quick]``.

An uninstrumented FastAPI app against the same app behind each library's
middleware, in one run: ours, aioprometheus 23.12.0's ``MetricsMiddleware``
and prometheus-fastapi-instrumentator's default ``Instrumentator``.  Each
library runs in its own worker process (ours from the checkout, the peers
from isolated ``pip --target`` folders, see ``peers.py``; the instrumentator
is installed without dependencies so that FastAPI, Starlette and
prometheus_client are the environment's, the same for every worker).

A worker times the bare app and the instrumented app in alternating batches
and reports the median over rounds of the per-request difference (process
CPU time; ``--clock wall`` for wall time), for two drivers:

- ``asgi``: the app called directly with a fresh scope per request (the
  smallest framework floor, so the middleware's own cost shows most clearly);
- ``httpx``: ``httpx.AsyncClient`` over ``httpx.ASGITransport``.

With ``--uvicorn`` each app also runs under a real uvicorn (h11) on
127.0.0.1 (an ephemeral port), loaded over 8 keep-alive connections on
loopback by Debian's ``wrk`` when installed (else by an asyncio client, too
slow to keep the server busy: then only the CPU per request means much), for
a bounded time.  Each instrumented server runs side by side with a bare one,
both loaded at once, so that both meet the same competition for the cores;
the difference in server CPU time per request and the ratio of throughputs
are reported (medians over rounds).
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

IMPLS = ("ours", "aioprometheus", "instrumentator")
# installed with --no-deps next to the harness' peers
NO_DEPS_TOOLS = {
    "instrumentator": ("prometheus-fastapi-instrumentator", "8.1.0"),
    "uvicorn": ("uvicorn", "0.54.0"),
}
# the requests of one batch, cycled: templated, static and a 404
PATHS = ("/users/42", "/items/7", "/health", "/users/42/orders/9", "/nowhere")


# ------------------------------------------------------------------ worker


def make_app(instrument: Optional[str]) -> Any:
    """A small FastAPI app (a few static and templated routes), bare or
    behind the named library's middleware."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/")
    async def root() -> Dict[str, str]:
        return {"ok": "root"}

    @app.get("/health")
    async def health() -> Dict[str, str]:
        return {"ok": "yes"}

    @app.get("/users")
    async def users() -> List[int]:
        return [1, 2, 3]

    @app.get("/users/{user_id}")
    async def user(user_id: int) -> Dict[str, int]:
        return {"user_id": user_id}

    @app.get("/users/{user_id}/orders/{order_id}")
    async def order(user_id: int, order_id: int) -> Dict[str, int]:
        return {"user_id": user_id, "order_id": order_id}

    @app.get("/items")
    async def items() -> List[int]:
        return [7]

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> Dict[str, int]:
        return {"item_id": item_id}

    @app.post("/items")
    async def new_item() -> Dict[str, int]:
        return {"item_id": 8}

    if instrument in ("ours", "aioprometheus"):
        from aioprometheus.asgi.middleware import MetricsMiddleware
        from aioprometheus.collectors import Registry

        app.state.bench_registry = Registry()
        app.add_middleware(MetricsMiddleware, registry=app.state.bench_registry)
    elif instrument == "instrumentator":
        from prometheus_client import CollectorRegistry
        from prometheus_fastapi_instrumentator import Instrumentator

        app.state.bench_registry = CollectorRegistry()
        Instrumentator(registry=app.state.bench_registry).instrument(app)
    elif instrument is not None:
        raise ValueError(f"unknown instrumentation: {instrument}")
    return app


def counted_requests(app: Any, instrument: str) -> Optional[float]:
    """How many requests the instrumented app's metrics counted (a check
    that the middleware really ran); None for the bare app."""
    registry = getattr(app.state, "bench_registry", None)
    if registry is None:
        return None
    if instrument == "instrumentator":
        return sum(
            s.value
            for family in registry.collect()
            if family.name == "http_requests"
            for s in family.samples
            if s.name == "http_requests_total"
        )
    return sum(v for _, v in registry.get("requests_total_counter").get_all())


def asgi_driver(app: Any) -> Callable[[int], Any]:
    """Requests straight into the ASGI app: a fresh scope each (the router
    writes into it), an empty body, a send that drops the response."""
    scopes = [
        {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        for path in PATHS
    ]
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> Dict[str, Any]:
        return request

    async def send(message: Dict[str, Any]) -> None:
        pass

    async def batch(n: int) -> None:
        for i in range(n):
            await app(dict(scopes[i % len(scopes)]), receive, send)

    return batch


def httpx_driver(client: Any) -> Callable[[int], Any]:
    """Requests through an httpx client (over ASGITransport)."""

    async def batch(n: int) -> None:
        for i in range(n):
            await client.get(PATHS[i % len(PATHS)])

    return batch


async def paired_overhead(
    bare: Callable[[int], Any],
    instrumented: Callable[[int], Any],
    n: int,
    rounds: int,
    clock: Callable[[], int],
    warm_up: bool = True,
) -> Dict[str, Any]:
    """Alternate bare and instrumented batches (ABBA), n requests each; the
    median over rounds of per-request times and of their difference, in
    microseconds."""
    if warm_up:  # imports, caches, first-request paths
        await bare(n)
        await instrumented(n)
    bare_ns: List[float] = []
    instr_ns: List[float] = []
    for r in range(rounds):
        order = [(bare, bare_ns), (instrumented, instr_ns)]
        for run, out in order if r % 2 == 0 else reversed(order):
            t0 = clock()
            await run(n)
            out.append((clock() - t0) / n)
    diffs = [i - b for b, i in zip(bare_ns, instr_ns)]
    return {
        "bare_us": statistics.median(bare_ns) / 1e3,
        "instrumented_us": statistics.median(instr_ns) / 1e3,
        "overhead_us": statistics.median(diffs) / 1e3,
        "overhead_iqr_us": _iqr(diffs) / 1e3,
    }


def _iqr(values: List[float]) -> float:
    if len(values) < 4:
        return max(values) - min(values)
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def _clock(name: str) -> Callable[[], int]:
    return time.process_time_ns if name == "cpu" else time.perf_counter_ns


async def in_process(impl: str, params: Dict[str, Any]) -> Dict[str, Any]:
    import httpx

    bare_app = make_app(None)
    instr_app = make_app(impl)
    clock = _clock(params["clock"])
    results: Dict[str, Any] = {}
    results["asgi"] = await paired_overhead(
        asgi_driver(bare_app),
        asgi_driver(instr_app),
        params["asgi_batch"],
        params["rounds"],
        clock,
    )
    base = "http://bench"
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=bare_app), base_url=base
        ) as bare_client,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=instr_app), base_url=base
        ) as instr_client,
    ):
        results["httpx"] = await paired_overhead(
            httpx_driver(bare_client),
            httpx_driver(instr_client),
            params["httpx_batch"],
            params["rounds"],
            clock,
        )
    results["counted"] = counted_requests(instr_app, impl)
    return results


def worker_main(impl: str, params_json: str) -> None:
    """In the worker process: check the library came from where it should,
    measure, print one JSON line."""
    params = json.loads(params_json)
    expect = params.get("expect")
    if impl in ("ours", "aioprometheus"):
        import aioprometheus

        where = aioprometheus.__file__ or ""
    else:
        import prometheus_fastapi_instrumentator

        where = prometheus_fastapi_instrumentator.__file__ or ""
    if expect and not os.path.realpath(where).startswith(os.path.realpath(expect)):
        raise SystemExit(f"{impl} imported from {where}, expected under {expect}")
    answer = asyncio.run(in_process(impl, params))
    answer["imported_from"] = where
    print(json.dumps(answer), flush=True)


class HarnessRunner:
    """One ``python -m benchmarks`` worker's middleware samples: the bare and
    the instrumented app, in alternating batches.  The aioprometheus family
    (ours or 23.12, whichever the worker imports) uses its MetricsMiddleware;
    the prometheus_client family, prometheus-fastapi-instrumentator."""

    def __init__(
        self, family: str, params: Dict[str, Any], clock: Callable[[], int]
    ) -> None:
        import httpx

        if family == "prometheus_client":
            import peers  # beside this file, as for the harness' worker script

            dist, version = NO_DEPS_TOOLS["instrumentator"]
            folder = ensure_no_deps(dist, version, peers.cache_root(), install=True)
            sys.path.insert(0, str(folder))
            impl = "instrumentator"
        else:
            impl = "ours"  # the same code for 23.12: the worker's aioprometheus
        self.loop = asyncio.new_event_loop()
        self.clock = clock
        self.params = params
        self.apps = apps = (make_app(None), make_app(impl))
        self.asgi = tuple(asgi_driver(app) for app in apps)
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench"
            )
            for app in apps
        ]
        self.httpx = tuple(httpx_driver(client) for client in clients)
        for run in (*self.asgi, *self.httpx):
            self.loop.run_until_complete(run(params["httpx_batch"]))

    def sample(self) -> Dict[str, Any]:
        """Two rounds (ABBA) of each driver; "value" is the direct-ASGI
        overhead in microseconds per request."""
        asgi = self.loop.run_until_complete(
            paired_overhead(*self.asgi, self.params["asgi_batch"], 2, self.clock, False)
        )
        via_httpx = self.loop.run_until_complete(
            paired_overhead(
                *self.httpx, self.params["httpx_batch"], 2, self.clock, False
            )
        )
        return {
            "value": asgi["overhead_us"],
            "bare_us": asgi["bare_us"],
            "httpx_us": via_httpx["overhead_us"],
            "httpx_bare_us": via_httpx["bare_us"],
        }


def serve_main(impl: str, fd: int) -> None:
    """In a server process: the app (bare when impl is "bare") under uvicorn
    on the inherited listening socket.  SIGUSR1 marks the start of the
    measured load, SIGUSR2 prints the process CPU seconds since the mark."""
    import uvicorn

    app = make_app(None if impl == "bare" else impl)
    sock = socket.socket(fileno=fd)
    mark = [time.process_time()]

    def start(*_: Any) -> None:
        mark[0] = time.process_time()

    def report(*_: Any) -> None:
        print(json.dumps({"cpu_s": time.process_time() - mark[0]}), flush=True)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, report)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", http="h11"
    )
    uvicorn.Server(config).run(sockets=[sock])


# ------------------------------------------------------------------ load


async def load(port: int, connections: int, seconds: float) -> Tuple[int, float]:
    """Keep-alive GETs over ``connections`` loopback connections for about
    ``seconds``; returns (responses, elapsed seconds).  Bounded in time."""
    requests = [
        f"GET {p} HTTP/1.1\r\nHost: bench\r\n\r\n".encode("ascii") for p in PATHS
    ]
    done = 0
    deadline = time.perf_counter() + seconds

    async def one_connection(offset: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        try:
            while time.perf_counter() < deadline:
                writer.write(requests[i % len(requests)])
                i += 1
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one_connection(c) for c in range(connections)))
    return done, time.perf_counter() - t0


WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def load_wrk(port: int, connections: int, seconds: float) -> Tuple[int, float]:
    """The same request mix from Debian's ``wrk`` (one thread, keep-alive
    connections): a client fast enough to keep the server busy."""
    import re
    import tempfile

    paths = ", ".join(f'"{p}"' for p in PATHS)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT % paths)
        script.flush()
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}/",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        ).stdout
    found = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
    if not found:
        raise RuntimeError(f"unexpected wrk output: {out[-500:]}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[found.group(3)]
    return int(found.group(1)), float(found.group(2)) * scale


def run_load(port: int, connections: int, seconds: float) -> Tuple[int, float]:
    if shutil.which("wrk"):
        return load_wrk(port, connections, seconds)
    return asyncio.run(load(port, connections, seconds))


class UvicornServer:
    """A server process for ``impl`` ("bare" or a library) on an ephemeral
    loopback port; ``mark()`` starts its CPU clock, ``cpu_s()`` reads it."""

    def __init__(self, impl: str, env: Dict[str, str]) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(512)
        self.port = listener.getsockname()[1]
        fd = listener.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", impl, str(fd)],
            env=env,
            pass_fds=(fd,),
            stdout=subprocess.PIPE,
            text=True,
        )
        listener.close()
        try:
            _wait_until_serving(self.port, self.proc)
        except BaseException:
            self.stop()
            raise

    def mark(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)

    def cpu_s(self) -> float:
        self.proc.send_signal(signal.SIGUSR2)
        assert self.proc.stdout is not None
        return float(json.loads(self.proc.stdout.readline())["cpu_s"])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def uvicorn_pair(
    envs: Tuple[Dict[str, str], Dict[str, str]],
    impl: str,
    connections: int,
    seconds: float,
) -> List[Dict[str, float]]:
    """The bare server and ``impl``'s side by side, loaded at the same time
    by identical clients, so that both meet the same competition for the
    cores: [bare sample, impl sample] (CPU per request, requests/s)."""
    import threading

    servers: List[UvicornServer] = []
    try:
        for name, env in zip(("bare", impl), envs):
            servers.append(UvicornServer(name, env))
        loads: List[Tuple[int, float]] = [(0, 1.0)] * len(servers)

        def load_all(duration: float) -> None:
            def one(i: int) -> None:
                loads[i] = run_load(servers[i].port, connections, duration)

            threads = [
                threading.Thread(target=one, args=(i,)) for i in range(len(servers))
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        load_all(1.0)  # warm-up
        for server in servers:
            server.mark()
        time.sleep(0.05)
        load_all(seconds)
        return [
            {
                "cpu_us_per_request": server.cpu_s() * 1e6 / done,
                "requests_per_s": done / elapsed,
                "requests": done,
            }
            for server, (done, elapsed) in zip(servers, loads)
        ]
    finally:
        for server in servers:
            server.stop()


def _wait_until_serving(port: int, server: "subprocess.Popen[str]") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start within 60 s")


# ------------------------------------------------------------------ driver


def _log(msg: str) -> None:
    print(f"[benchmarks.middleware] {msg}", file=sys.stderr, flush=True)


def impl_folders(install: bool) -> Dict[str, Optional[Path]]:
    """PYTHONPATH folder per implementation (None: cannot run)."""
    from benchmarks import peers

    root = peers.cache_root()
    folders: Dict[str, Optional[Path]] = {"ours": peers.REPO_ROOT}
    spec = next(p for p in peers.PEERS if p.key == "aioprometheus")
    try:
        folders["aioprometheus"] = peers.ensure_peer(spec, root, install=install)
    except Exception as exc:
        _log(f"{spec.label} unavailable: {exc}")
        folders["aioprometheus"] = None
    for key, (dist, version) in NO_DEPS_TOOLS.items():
        try:
            folders[key] = ensure_no_deps(dist, version, root, install)
        except Exception as exc:
            _log(f"{dist} {version} unavailable: {exc}")
            folders[key] = None
    return folders


def ensure_no_deps(dist: str, version: str, root: Path, install: bool) -> Path:
    """``pip install --no-deps --target`` a pure-Python tool once: its
    dependencies are the environment's, the same in every worker."""
    try:
        from benchmarks import peers
    except ImportError:  # in a worker: this folder is on sys.path
        import peers  # type: ignore[no-redef]

    return peers.ensure_installed(
        f"{dist}=={version}", root / f"{dist}-{version}-nodeps", install, no_deps=True
    )


def worker_env(folders: List[Path]) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(f) for f in folders)
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(
    quick: bool = False,
    clock: str = "cpu",
    with_uvicorn: bool = False,
    install: bool = True,
    impls: Tuple[str, ...] = IMPLS,
) -> Dict[str, Any]:
    """All rows: {impl: {"asgi": {...}, "httpx": {...}, "uvicorn": {...}}}."""
    folders = impl_folders(install)
    params = {
        "clock": clock,
        "rounds": 7 if quick else 21,
        "asgi_batch": 300 if quick else 1000,
        "httpx_batch": 100 if quick else 300,
    }
    results: Dict[str, Any] = {}
    for impl in impls:
        folder = folders.get(impl)
        if folder is None:
            results[impl] = {"problem": "not installed"}
            continue
        params["expect"] = str(folder)
        proc = subprocess.run(
            [sys.executable, __file__, "worker", impl, json.dumps(params)],
            env=worker_env([folder]),
            capture_output=True,
            text=True,
            timeout=900,
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            results[impl] = {"problem": proc.stderr.strip()[-800:]}
            _log(f"{impl}: failed: {proc.stderr.strip()[-300:]}")
            continue
        results[impl] = json.loads(lines[-1])
        _log(f"{impl}: in-process done")
    uvicorn_folder = folders.get("uvicorn")
    if with_uvicorn and uvicorn_folder is not None:
        seconds = 2.0 if quick else 5.0
        rounds = 1 if quick else 5
        bare_env = worker_env([uvicorn_folder])
        paired: Dict[str, List[List[Dict[str, float]]]] = {}
        for _ in range(rounds):  # interleaved: A B C A B C ...
            for impl in impls:
                folder = folders.get(impl)
                if folder is None:
                    continue
                impl_env = worker_env([folder, uvicorn_folder])
                paired.setdefault(impl, []).append(
                    uvicorn_pair((bare_env, impl_env), impl, 8, seconds)
                )
        for impl, pairs in paired.items():
            results[impl]["uvicorn"] = {
                "bare_cpu_us_per_request": statistics.median(
                    b["cpu_us_per_request"] for b, _ in pairs
                ),
                "cpu_us_per_request": statistics.median(
                    m["cpu_us_per_request"] for _, m in pairs
                ),
                "cpu_overhead_us": statistics.median(
                    m["cpu_us_per_request"] - b["cpu_us_per_request"] for b, m in pairs
                ),
                "throughput_kept": statistics.median(
                    m["requests_per_s"] / b["requests_per_s"] for b, m in pairs
                ),
                "requests_per_s": statistics.median(
                    m["requests_per_s"] for _, m in pairs
                ),
            }
        _log("uvicorn done")
    return results


def table(results: Dict[str, Any], clock: str) -> str:
    unit = "CPU" if clock == "cpu" else "wall"
    lines = [
        f"Middleware overhead per request over the bare FastAPI app "
        f"(median of paired rounds, {unit} time)",
        f"{'':32}" + "".join(f"{i:>18}" for i in IMPLS),
    ]

    def row(title: str, cell: Callable[[Dict[str, Any]], str]) -> None:
        cells = []
        for impl in IMPLS:
            got = results.get(impl) or {}
            try:
                cells.append(cell(got))
            except (KeyError, TypeError):
                cells.append("-")
        lines.append(f"{title:32}" + "".join(f"{c:>18}" for c in cells))

    for driver in ("asgi", "httpx"):
        row(
            f"{driver}: overhead us (iqr)",
            lambda r, d=driver: (
                f"{r[d]['overhead_us']:.2f} ({r[d]['overhead_iqr_us']:.2f})"
            ),
        )
        row(f"{driver}: bare app us", lambda r, d=driver: f"{r[d]['bare_us']:.1f}")
    if any("uvicorn" in (r or {}) for r in results.values()):
        lines.append(
            "uvicorn, each server side by side with a bare one under the same "
            f"load ({'wrk' if shutil.which('wrk') else 'asyncio client'}):"
        )
        row(
            "uvicorn: bare server CPU us",
            lambda r: f"{r['uvicorn']['bare_cpu_us_per_request']:.1f}",
        )
        row(
            "uvicorn: server CPU added us",
            lambda r: f"{r['uvicorn']['cpu_overhead_us']:+.1f}",
        )
        row(
            "uvicorn: throughput kept",
            lambda r: f"{r['uvicorn']['throughput_kept']:.0%}",
        )
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.middleware", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    ap.add_argument(
        "--uvicorn", action="store_true", help="also under uvicorn on 127.0.0.1"
    )
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args(argv)
    impls = tuple(i for i in args.impls.split(",") if i)
    unknown = set(impls) - set(IMPLS)
    if unknown:
        ap.error(f"unknown implementation(s): {', '.join(sorted(unknown))}")
    results = run(args.quick, args.clock, args.uvicorn, not args.no_install, impls)
    print(table(results, args.clock))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_main(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve_main(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(main())
