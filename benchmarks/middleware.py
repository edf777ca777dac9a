"""ASGI middleware overhead: an uninstrumented FastAPI app against the same
app behind each library's middleware (the ``middleware_*`` rows).

:class:`Overhead`, in a benchmark worker, times both apps (ours or 23.12:
``MetricsMiddleware``; prometheus_client: prometheus-fastapi-instrumentator's
default ``Instrumentator``, installed without dependencies so that FastAPI,
Starlette and prometheus_client are the environment's), called directly with
a fresh scope per request and through ``httpx.ASGITransport``.

:func:`uvicorn_run` (full runs) serves each app under uvicorn on 127.0.0.1
beside a bare one, both loaded at once by Debian's ``wrk`` (skipped without
it): the server CPU added per request (from ``/proc``) and the share of the
bare server's throughput kept.
"""

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

try:  # the driver imports this module from the package, a worker as a script
    from . import peers
except ImportError:
    import peers  # type: ignore[no-redef]

# installed with --no-deps next to the peers
INSTRUMENTATOR = "prometheus-fastapi-instrumentator==8.1.0"
UVICORN = "uvicorn==0.54.0"
# the requests of one batch, cycled: templated, static and a 404
PATHS = ("/users/42", "/items/7", "/health", "/users/42/orders/9", "/nowhere")


def make_app(instrument: Optional[str]) -> Any:
    """A small FastAPI app (8 static and templated routes), bare or behind
    the named library's middleware ("ours": whichever aioprometheus)."""
    from fastapi import FastAPI

    app = FastAPI()

    async def static() -> Dict[str, str]:
        return {"ok": "yes"}

    async def user(user_id: int) -> Dict[str, int]:
        return {"user_id": user_id}

    async def order(user_id: int, order_id: int) -> Dict[str, int]:
        return {"user_id": user_id, "order_id": order_id}

    async def item(item_id: int) -> Dict[str, int]:
        return {"item_id": item_id}

    for path in ("/", "/health", "/users", "/items"):
        app.get(path)(static)
    app.post("/items")(static)
    app.get("/users/{user_id}")(user)
    app.get("/users/{user_id}/orders/{order_id}")(order)
    app.get("/items/{item_id}")(item)
    if instrument == "ours":
        from aioprometheus.asgi.middleware import MetricsMiddleware
        from aioprometheus.collectors import Registry

        app.state.bench_registry = Registry()
        app.add_middleware(MetricsMiddleware, registry=app.state.bench_registry)
    elif instrument == "instrumentator":
        from prometheus_client import CollectorRegistry
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator(registry=CollectorRegistry()).instrument(app)
    return app


def asgi_request(app: Any) -> Callable[[int], Any]:
    """Request ``i`` straight into the ASGI app: a fresh scope each (the
    router writes into it), an empty body, a send that drops the response."""
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "http_version": "1.1", "method": "GET", "scheme": "http",
             "root_path": "", "query_string": b"", "headers": [(b"host", b"bench")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}  # fmt: skip
    scopes = [dict(scope, path=p, raw_path=p.encode()) for p in PATHS]
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> Dict[str, Any]:
        return request

    async def send(message: Dict[str, Any]) -> None:
        pass

    return lambda i: app(dict(scopes[i % len(scopes)]), receive, send)


class Overhead:
    """Both apps of one implementation family and both drivers (ASGI, and
    httpx over ASGITransport); each program times ``n`` requests."""

    def __init__(self, family: str) -> None:
        import httpx

        instrument = "ours"  # ours or 23.12: whichever aioprometheus the worker has
        if family == "prometheus_client":
            tool = peers.ensure_installed(INSTRUMENTATOR, no_deps=True)
            sys.path.insert(0, str(tool))
            instrument = "instrumentator"
        self.loop = asyncio.new_event_loop()
        self.apps = make_app(None), make_app(instrument)
        self.drivers: Dict[str, Callable[[int], Any]] = {}
        for suffix, app in zip(("_bare", ""), self.apps):
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://bench")
            self.drivers["asgi" + suffix] = asgi_request(app)
            self.drivers["httpx" + suffix] = lambda i, c=client: c.get(
                PATHS[i % len(PATHS)]
            )

    def programs(self, clock: Callable[[], float]) -> Dict[str, Callable[[int], float]]:
        def program(request: Callable[[int], Any]) -> Callable[[int], float]:
            async def timed(n: int) -> float:
                t0 = clock()
                for i in range(n):
                    await request(i)
                return clock() - t0

            return lambda n: self.loop.run_until_complete(timed(n))

        return {name: program(request) for name, request in self.drivers.items()}


# ------------------------------------------------------------------ uvicorn


WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


class UvicornServer:
    """A server process for ``impl`` ("bare", "ours" or "instrumentator") on
    an ephemeral loopback port; ``cpu_s()`` reads its CPU time from /proc."""

    def __init__(self, impl: str, folders: List[Path]) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(512)
        self.port, fd = listener.getsockname()[1], listener.fileno()
        env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
        env["PYTHONPATH"] = os.pathsep.join(str(f) for f in folders)
        self.proc = subprocess.Popen(
            [sys.executable, __file__, impl, str(fd)], env=env, pass_fds=(fd,)
        )
        listener.close()
        deadline = time.monotonic() + 60
        try:  # serving once /health answers
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                        s.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
                        if s.recv(64).startswith(b"HTTP/1.1 200"):
                            return
                except OSError:
                    time.sleep(0.1)
            raise RuntimeError(f"uvicorn did not serve (exit code {self.proc.poll()})")
        except BaseException:
            peers.stop(self.proc)
            raise

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as fh:  # utime, stime: 14, 15
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(servers: List[UvicornServer], seconds: float) -> List[Tuple[int, float]]:
    """(requests, seconds) of the request mix on each server, from Debian's
    ``wrk`` (one thread, 8 keep-alive connections), all loaded at once."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT % ", ".join(f'"{p}"' for p in PATHS))
        script.flush()
        cmd = ["wrk", "-t1", "-c8", f"-d{max(1, round(seconds))}s", "-s", script.name]
        procs = [subprocess.Popen([*cmd, f"http://127.0.0.1:{s.port}/"], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                 for s in servers]  # fmt: skip
        try:
            outs = [p.communicate(timeout=seconds + 60)[0] for p in procs]
        finally:
            for p in procs:
                peers.stop(p, 5)
    loads = []
    for out in outs:
        found = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
        if not found:
            raise RuntimeError(f"unexpected wrk output: {out[-500:]}")
        scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[found.group(3)]
        loads.append((int(found.group(1)), float(found.group(2)) * scale))
    return loads


def uvicorn_pair(folders: List[List[Path]], impl: str, seconds: float):
    """The bare server and ``impl``'s side by side, loaded at the same time by
    identical clients, so that both meet the same competition for the cores:
    the server CPU ``impl`` adds per request, and the throughput it keeps."""
    servers: List[UvicornServer] = []
    try:
        for name, path in zip(("bare", impl), folders):
            servers.append(UvicornServer(name, path))
        load(servers, 1.0)  # warm-up
        before = [s.cpu_s() for s in servers]
        loads = load(servers, seconds)
        cpu = [(s.cpu_s() - b) / n for s, b, (n, _) in zip(servers, before, loads)]
        rate = [n / elapsed for n, elapsed in loads]
        return {"value": (cpu[1] - cpu[0]) * 1e6, "kept": 100 * rate[1] / rate[0]}
    finally:
        for server in servers:
            peers.stop(server.proc)


def uvicorn_run(impls: List[Any], params: Dict[str, Any], quick: bool):
    """The uvicorn rows' samples ({step: {impl: [answers]}}, one answer per
    round, rounds interleaved), and a note when they cannot run."""
    if shutil.which("wrk") is None:
        return {}, "middleware under uvicorn: skipped (no `wrk` on PATH)"
    try:
        uvicorn = peers.ensure_installed(UVICORN, no_deps=True)
        tool = peers.ensure_installed(INSTRUMENTATOR, no_deps=True)
    except Exception as exc:
        return {}, f"middleware under uvicorn: not run ({exc})"
    samples: Dict[str, List[Dict[str, Any]]] = {i.key: [] for i in impls}
    for _ in range(params["rounds"]):
        for impl in impls:
            pc = impl.key == "prometheus_client"
            folders = [*([impl.path] if impl.path else []), uvicorn, *[tool] * pc]
            name = "instrumentator" if pc else "ours"
            try:
                figures = uvicorn_pair([[uvicorn], folders], name, params["seconds"])
                samples[impl.key].append({"status": "ok", "figures": figures})
            except Exception as exc:
                samples[impl.key].append({"status": "error", "reason": str(exc)})
    return {"middleware_uvicorn": samples}, ""


if __name__ == "__main__":  # a uvicorn server process: impl, listening fd
    import uvicorn

    app = make_app(None if sys.argv[1] == "bare" else sys.argv[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, http="h11")
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=int(sys.argv[2]))])
