"""ASGI middleware overhead: an uninstrumented FastAPI app against the same
app behind each library's middleware, in one run (the ``middleware_*`` rows).

In a benchmark worker, :class:`Overhead` times both apps (ours or 23.12:
``MetricsMiddleware``; the prometheus_client worker:
prometheus-fastapi-instrumentator's default ``Instrumentator``, installed
without dependencies so that FastAPI, Starlette and prometheus_client are
the environment's), called directly with a fresh scope per request and
through ``httpx.ASGITransport``.

:func:`uvicorn_run` (the ``middleware_uvicorn`` rows, full runs) serves each
app under a real uvicorn on 127.0.0.1 (an ephemeral port), side by side with
a bare one, both loaded at once for a bounded time over 8 keep-alive
loopback connections by Debian's ``wrk`` (skipped without it): the server
CPU added per request and the share of the bare server's throughput kept.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

try:  # the driver imports this module from the package, a worker as a script
    from . import peers
except ImportError:
    import peers  # type: ignore[no-redef]

# installed with --no-deps next to the peers
NO_DEPS_TOOLS = {
    "instrumentator": "prometheus-fastapi-instrumentator==8.1.0",
    "uvicorn": "uvicorn==0.54.0",
}
# the requests of one batch, cycled: templated, static and a 404
PATHS = ("/users/42", "/items/7", "/health", "/users/42/orders/9", "/nowhere")


def no_deps_tool(name: str, install: bool = True) -> Path:
    requirement = NO_DEPS_TOOLS[name]
    folder = peers.cache_root() / (requirement.replace("==", "-") + "-nodeps")
    return peers.ensure_installed(requirement, folder, install, no_deps=True)


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


class Overhead:
    """Both apps of one implementation family and both drivers; ``time_func``
    gives pyperf a function of the number of requests."""

    def __init__(self, family: str) -> None:
        import httpx

        impl = "ours"  # ours or 23.12: whichever aioprometheus the worker has
        if family == "prometheus_client":
            sys.path.insert(0, str(no_deps_tool("instrumentator")))
            impl = "instrumentator"
        self.loop, self.note = asyncio.new_event_loop(), ""
        self.apps = bare, instrumented = make_app(None), make_app(impl)
        self.drivers: Dict[str, Callable[[int], Any]] = {}
        for suffix, app in (("_bare", bare), ("", instrumented)):
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench"
            )
            self.drivers["asgi" + suffix] = asgi_driver(app)
            self.drivers["httpx" + suffix] = httpx_driver(client)

    def programs(self, clock: Callable[[], float]) -> Dict[str, Callable[[int], float]]:
        """Functions of a number of requests: their time, per app and driver."""

        def program(batch: Callable[[int], Any]) -> Callable[[int], float]:
            async def timed(n: int) -> float:
                t0 = clock()
                await batch(n)
                return clock() - t0

            return lambda n: self.loop.run_until_complete(timed(n))

        return {name: program(batch) for name, batch in self.drivers.items()}


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
                loads[i] = load_wrk(servers[i].port, connections, duration)

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


def uvicorn_run(impls: List[Any], params: Dict[str, Any], quick: bool):
    """The uvicorn rows' samples ({step: {impl: [answers]}}, one answer per
    round, rounds interleaved), and a note when they cannot run."""
    if shutil.which("wrk") is None:
        return {}, "middleware under uvicorn: skipped (no `wrk` on PATH)"
    try:
        uvicorn = no_deps_tool("uvicorn")
        tool = no_deps_tool("instrumentator")
    except Exception as exc:
        return {}, f"middleware under uvicorn: not run ({exc})"
    samples: Dict[str, List[Dict[str, Any]]] = {i.key: [] for i in impls}
    for _ in range(params["rounds"]):
        for impl in impls:
            if impl.problem is not None:
                continue
            name = "instrumentator" if impl.key == "prometheus_client" else "ours"
            folders = [*([impl.path] if impl.path else []), uvicorn]
            folders += [tool] if name == "instrumentator" else []
            try:
                bare, inst = uvicorn_pair(
                    (_env([uvicorn]), _env(folders)), name, 8, params["seconds"]
                )
            except Exception as exc:
                samples[impl.key].append({"status": "error", "reason": str(exc)})
                continue
            figures = {
                "value": inst["cpu_us_per_request"] - bare["cpu_us_per_request"],
                "kept": 100 * inst["requests_per_s"] / bare["requests_per_s"],
            }
            samples[impl.key].append({"status": "ok", "figures": figures})
    return {"middleware_uvicorn": samples}, ""


def _env(folders: List[Path]) -> Dict[str, str]:
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join(str(f) for f in folders)
    return env


if __name__ == "__main__":  # a uvicorn server process
    serve_main(sys.argv[2], int(sys.argv[3]))
