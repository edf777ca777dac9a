"""ASGI middleware overhead: an uninstrumented FastAPI app against the same
app behind each library's middleware (the ``middleware_*`` rows; ours or
23.12: ``MetricsMiddleware``; prometheus_client: prometheus-fastapi-
instrumentator's default ``Instrumentator``, installed without dependencies
so that FastAPI, Starlette and prometheus_client are the environment's).

:class:`Overhead` times both apps in a benchmark worker, called directly and
through ``httpx.ASGITransport``; :class:`UnderUvicorn` (full runs) serves
each under uvicorn beside a bare one, both loaded at once by ``wrk``.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

try:  # a worker imports this module beside its script, the tests from the package
    from . import peers
except ImportError:
    import peers  # type: ignore[no-redef]

# installed with --no-deps next to the peers
INSTRUMENTATOR = "prometheus-fastapi-instrumentator==8.1.0"
UVICORN = "uvicorn==0.54.0"
# uvicorn's HTTP stacks: its pure-Python default, and what ``uvicorn[standard]``
# (so ``fastapi[standard]``) installs: the httptools parser on uvloop
STACKS = {"h11": (), "standard": ("httptools==0.7.1", "uvloop==0.22.1")}
# the requests of one batch, cycled: templated, static and a 404
PATHS = ("/users/42", "/items/7", "/health", "/users/42/orders/9", "/nowhere")


def make_app(instrument: Optional[str]) -> Any:
    """A small FastAPI app (8 static and templated routes), bare or behind
    the named library's middleware ("ours": whichever aioprometheus;
    "ours_timed": with its request duration histogram)."""
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
    if instrument in ("ours", "ours_timed"):
        from aioprometheus.asgi.middleware import MetricsMiddleware
        from aioprometheus.collectors import Registry

        app.state.bench_registry = Registry()
        timed = {"duration_histogram": True} if instrument == "ours_timed" else {}
        app.add_middleware(
            MetricsMiddleware, registry=app.state.bench_registry, **timed
        )
    elif instrument == "noop":
        app.add_middleware(NoOp)
    elif instrument == "instrumentator":
        from prometheus_client import CollectorRegistry
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator(registry=CollectorRegistry()).instrument(app)
    return app


class NoOp:
    """The least an ASGI middleware can be: it awaits the app (the floor
    under any middleware's figure)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


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


def instrumentation(family: str) -> Tuple[str, List[str]]:
    """The middleware that ``family``'s worker measures, and its tool's folder."""
    if family != "prometheus_client":  # ours or 23.12: whichever the worker has
        return "ours", []
    tool = peers.ensure_installed(INSTRUMENTATOR, no_deps=True)
    return "instrumentator", [str(tool)]


class Overhead:
    """Both apps of one implementation family and both drivers (ASGI, and
    httpx over ASGITransport); each program times ``n`` requests."""

    def __init__(self, family: str) -> None:
        import httpx

        name, sys.path[:0] = instrumentation(family)
        self.loop = asyncio.new_event_loop()
        self.drivers: Dict[str, Callable[[int], Any]] = {}
        self.apps = make_app(None), make_app(name)  # bare, instrumented
        # each bare program right before its instrumented ones (the figures
        # pair their values: the closer in time, the less drift between)
        for suffix, app in zip(("_bare", ""), self.apps):
            self.drivers["asgi" + suffix] = asgi_request(app)
        if name == "ours":  # with the duration histogram, where it is offered
            self.timed_app = make_app("ours_timed")
            timed = asgi_request(self.timed_app)
            try:
                self.loop.run_until_complete(timed(0))
            except TypeError:  # 23.12's middleware has no duration_histogram
                pass
            else:
                self.drivers["asgi_timed"] = timed
        for suffix, app in zip(("_bare", ""), self.apps):
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://bench")
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
# cycles through PATHS; prints what was served, as JSON, at the end
WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %%d, "us": %%d}\\n', summary.requests,
                         summary.duration))
end
"""


class UvicornServer:
    """A server process (this module as a script) for ``instrument`` on an
    ephemeral loopback port; ``cpu_s()`` reads its CPU time from /proc."""

    def __init__(self, instrument: str, folders: List[str], stack: str = "h11") -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(512)
        self.port, fd = listener.getsockname()[1], listener.fileno()
        env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
        env["PYTHONPATH"] = os.pathsep.join(folders)
        self.proc = subprocess.Popen(
            [sys.executable, __file__, instrument, str(fd), stack],
            env=env,
            pass_fds=(fd,),
        )
        listener.close()
        try:  # serving once /health answers (the listening socket holds it till then)
            with socket.create_connection(("127.0.0.1", self.port), 60) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
                if not s.recv(64).startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"uvicorn did not serve ({self.proc.poll()})")
        except BaseException:
            peers.stop(self.proc)
            raise

    def cpu_s(self) -> float:
        """CPU time so far, of all its threads: the scheduler's own count
        (ns) where the kernel keeps it, else the clock ticks of stat."""
        try:
            return sum(_task_ns(task) for task in os.scandir(
                f"/proc/{self.proc.pid}/task")) / 1e9  # fmt: skip
        except OSError:
            with open(f"/proc/{self.proc.pid}/stat") as fh:  # utime, stime: 14, 15
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _task_ns(task: "os.DirEntry[str]") -> int:
    """A thread's time on a CPU so far (schedstat's first field, ns)."""
    with open(os.path.join(task.path, "schedstat")) as fh:
        return int(fh.read().split()[0])


def load(servers: List[UvicornServer], seconds: float) -> List[Dict[str, int]]:
    """The requests served and the microseconds taken, on each server, by
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
    return [json.loads(out.strip().splitlines()[-1]) for out in outs]


class UnderUvicorn:
    """The bare server and an instrumented one side by side, loaded at the
    same time by identical clients, so that both meet the same competition
    for the cores: the server CPU added per request (us) and the share of
    the bare server's throughput kept (%). The instrumented one is this
    worker's middleware, or (``control``) a no-op one: what the method
    reads for a middleware that adds next to nothing. Each round starts
    and loads the two in the other order."""

    def __init__(
        self, family: str, seconds: float, stack: str = "h11", control: bool = False
    ) -> None:
        self.seconds, (self.instrument, tool) = seconds, instrumentation(family)
        if control:
            self.instrument, tool = "noop", []
        self.stack, self.rounds = stack, 0
        uvicorn = [str(peers.ensure_installed(UVICORN, no_deps=True))]
        uvicorn += [str(peers.ensure_installed(r, no_deps=True)) for r in STACKS[stack]]
        own = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        self.folders = [uvicorn, [*own, *uvicorn, *tool]]

    def measure(self) -> Dict[str, List[float]]:
        order = [0, 1] if self.rounds % 2 == 0 else [1, 0]
        self.rounds += 1
        names = ("bare", self.instrument)
        servers: List[UvicornServer] = []
        try:
            for i in order:
                servers.append(UvicornServer(names[i], self.folders[i], self.stack))
            load(servers, 1.0)  # warm-up
            before = [s.cpu_s() for s in servers]
            loads = load(servers, self.seconds)
            cpu = [s.cpu_s() - b for s, b in zip(servers, before)]
        finally:
            for server in servers:
                peers.stop(server.proc)
        if order[0]:  # back to (bare, instrumented)
            cpu, loads = cpu[::-1], loads[::-1]
        per_request = [c / n["requests"] for c, n in zip(cpu, loads)]
        rate = [n["requests"] / n["us"] for n in loads]
        added = (per_request[1] - per_request[0]) * 1e6
        return {"cpu": [added], "kept": [100 * rate[1] / rate[0]]}


if __name__ == "__main__":  # a uvicorn server: instrument, listening fd, stack
    import uvicorn

    app = make_app(None if sys.argv[1] == "bare" else sys.argv[1])
    stack = {"http": "h11", "loop": "asyncio"}
    if sys.argv[3] == "standard":
        stack = {"http": "httptools", "loop": "uvloop"}
    config = uvicorn.Config(app, log_level="warning", access_log=False, **stack)
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=int(sys.argv[2]))])
