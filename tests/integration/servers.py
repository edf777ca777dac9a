"""
Helpers that run real Prometheus and Pushgateway servers (Debian's
/usr/bin/prometheus and /usr/bin/prometheus-pushgateway) for the integration
tests, on 127.0.0.1 only, on ephemeral ports, in temporary directories, with
bounded waits, stopped by pid.

Reusable pieces (also through the fixtures in conftest.py):

- ``require_binary(path)``: the path, or skip (fail when the environment
  variable AIOPROMETHEUS_REQUIRE_SERVERS=1).
- ``start_prometheus(workdir, targets, extra_flags=(), ...)`` -> PrometheusServer
  with ``.base_url``/``.api_url``, ``.query(promql)``, ``.stop()``.
- ``start_pushgateway(workdir, extra_flags=())`` -> PushgatewayServer.
- ``wait_for_query(server, promql, predicate, timeout)``: poll /api/v1/query
  until the predicate holds on the result vector (bounded).
- ``ServiceThread``: run an aioprometheus Service on 127.0.0.1 in a
  background event loop, recording the Accept and Content-Type of each scrape.
- ``http_get(url, headers)``: a loopback-only GET that ignores proxy settings.
- ``start_server_group(name, argv_for_port, workdir, ready_path, env)`` ->
  ProcessGroupServer: an application server (gunicorn, uvicorn) leading a
  process group of its own; ``.stop()`` ends the leader, then the group.
- ``proc_info(pid)``, ``child_processes(ppid)``: state, parent and command
  line of processes, from /proc (to find and kill a server's workers).
- ``checkout_env(**extra)``, ``start_python(*args)``: a Python process run
  from this checkout (first on PYTHONPATH, unbuffered, output piped as text).
- ``first_line(proc, timeout)``: the first line a process printed (bounded).
- ``require_module(name)``: skip without it (fail when servers are required).
- ``gunicorn_argv(...)``, ``uvicorn_argv(...)``: a pre-fork server's command
  line, uvicorn workers on 127.0.0.1.
"""

import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

PROMETHEUS_BIN = "/usr/bin/prometheus"
PUSHGATEWAY_BIN = "/usr/bin/prometheus-pushgateway"
REQUIRE_ENV = "AIOPROMETHEUS_REQUIRE_SERVERS"

STARTUP_TIMEOUT = 30.0
QUERY_TIMEOUT = 30.0

# Never route loopback test traffic through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def servers_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def require_binary(path: str) -> str:
    """Return ``path`` if it is an executable, else skip the test (or fail it
    when AIOPROMETHEUS_REQUIRE_SERVERS=1)."""
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    message = f"{path} is not installed"
    if servers_required():
        pytest.fail(f"{message} and {REQUIRE_ENV}=1", pytrace=False)
    pytest.skip(message)
    raise AssertionError("unreachable")  # pragma: no cover


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on host:port (TIME_WAIT leftovers ignored)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen()
        except OSError:
            return False
        return True


@dataclass
class HTTPResult:
    status: int
    headers: Dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


def _check_loopback(url: str) -> None:
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise AssertionError(f"test traffic must stay on loopback, not {url!r}")


def http_request(
    url: str,
    method: str = "GET",
    headers: Optional[Dict[str, str]] = None,
    data: Optional[bytes] = None,
    timeout: float = 10.0,
) -> HTTPResult:
    """A loopback-only HTTP request; HTTP errors are returned, not raised."""
    _check_loopback(url)
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return HTTPResult(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as exc:
        return HTTPResult(exc.code, dict(exc.headers.items()), exc.read())


def http_get(
    url: str, headers: Optional[Dict[str, str]] = None, timeout: float = 10.0
) -> HTTPResult:
    return http_request(url, headers=headers, timeout=timeout)


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    interval: float = 0.2,
    what: str = "condition",
) -> Any:
    """Call ``predicate`` until it returns something truthy (returned) or the
    timeout expires (AssertionError). Exceptions count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what}"
                + (f" (last error: {last_exc!r})" if last_exc else "")
            )
        time.sleep(interval)


@dataclass
class ServerProcess:
    """A server subprocess, stopped by its pid."""

    name: str
    proc: subprocess.Popen
    port: int
    workdir: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _launch(
    name: str,
    argv_for_port: Callable[[int], List[str]],
    workdir: Path,
    ready_path: str,
    timeout: float = STARTUP_TIMEOUT,
    attempts: int = 3,
    env: Optional[Dict[str, str]] = None,
    new_session: bool = False,
) -> Tuple[subprocess.Popen, int, Path]:
    """Start a server on a free port and wait until ``ready_path`` answers 200.
    Retries on another port if the process dies (e.g. the port was taken).
    ``env``: the server's whole environment (default: this process');
    ``new_session``: the server leads a process group of its own, which
    ``_kill_group`` ends with everything it started."""
    log_path = workdir / f"{name}.log"
    last_error = ""
    for _ in range(attempts):
        port = free_port()
        log = open(log_path, "ab")
        try:
            proc = subprocess.Popen(
                argv_for_port(port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(workdir),
                env=env,
                start_new_session=new_session,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                if (
                    http_get(f"http://127.0.0.1:{port}{ready_path}", timeout=2).status
                    == 200
                ):
                    return proc, port, log_path
            except OSError:
                pass
            time.sleep(0.1)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            last_error = f"not ready within {timeout:g}s"
        else:
            last_error = f"exited with status {proc.returncode}"
        if new_session:
            _kill_group(proc.pid)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"{name} did not start: {last_error}\n{tail}")


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of the process group ``pgid`` (a server started
    with ``new_session``: its pid is the group's id)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class ProcessGroupServer(ServerProcess):
    """A server leading a process group of its own (a pre-fork server and its
    workers): stopped by SIGTERM to its pid, then SIGKILL to its group."""

    def stop(self, timeout: float = 15.0) -> None:
        try:
            super().stop(timeout)
        finally:
            _kill_group(self.proc.pid)


def start_server_group(
    name: str,
    argv_for_port: Callable[[int], List[str]],
    workdir: Path,
    ready_path: str,
    env: Optional[Dict[str, str]] = None,
    timeout: float = STARTUP_TIMEOUT,
) -> ProcessGroupServer:
    """Start ``argv_for_port(port)`` (it must listen on 127.0.0.1:port) in a
    new session, logging to ``workdir/name.log``, and wait until
    ``ready_path`` answers 200."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for arg in argv_for_port(0):
        if "0.0.0.0" in arg or "[::]" in arg:
            raise AssertionError(f"servers must listen on loopback only: {arg!r}")
    proc, port, log_path = _launch(
        name, argv_for_port, workdir, ready_path, timeout, env=env, new_session=True
    )
    return ProcessGroupServer(name, proc, port, workdir, log_path)


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    state: str  # as in /proc/<pid>/stat: "R", "S", "Z" (zombie), ...
    cmdline: str


REPO = Path(__file__).resolve().parents[2]


def checkout_env(**extra: str) -> Dict[str, str]:
    """This process's environment with the checkout first on PYTHONPATH and
    Python's output unbuffered, plus `extra`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start_python(*args: str) -> "subprocess.Popen[str]":
    """``python *args`` in the checkout (checkout_env), its output piped as text."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=str(REPO),
        env=checkout_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def require_module(name: str) -> None:
    """Skip unless `name` is importable; fail instead when servers are required."""
    if importlib.util.find_spec(name) is not None:
        return
    message = f"{name} is not installed (it comes with the test extra)"
    if servers_required():
        pytest.fail(f"{message} and {REQUIRE_ENV}=1", pytrace=False)
    pytest.skip(message)


def gunicorn_argv(
    conf: Path, app: str, workers: int, port: int, *options: str
) -> List[str]:
    """gunicorn with `conf`, `workers` uvicorn workers serving `app` on port."""
    return [sys.executable, "-m", "gunicorn", "-c", str(conf),
            "-k", "uvicorn.workers.UvicornWorker", "-w", str(workers),
            "-b", f"127.0.0.1:{port}", *options, app]  # fmt: skip


def uvicorn_argv(app: str, workers: int, port: int, *options: str) -> List[str]:
    """``uvicorn --workers`` serving `app` on port."""
    return [sys.executable, "-m", "uvicorn", app, "--workers", str(workers),
            "--host", "127.0.0.1", "--port", str(port), *options]  # fmt: skip


def first_line(proc: "subprocess.Popen[str]", timeout: float = 20.0) -> str:
    """The first line `proc` writes to its stdout pipe, '' if none comes
    within `timeout` seconds (read in a thread: a silent process never
    blocks the test)."""
    line: List[str] = []
    reader = threading.Thread(
        target=lambda: line.append(proc.stdout.readline()),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    reader.join(timeout=timeout)
    return line[0] if line else ""


def proc_info(pid: int) -> Optional[ProcInfo]:
    """What /proc says about ``pid`` (None once it is gone; Linux only)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses
    fields = stat[stat.rindex(")") + 2 :].split()
    cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return ProcInfo(pid, int(fields[1]), fields[0], cmdline)


def child_processes(ppid: int) -> List[ProcInfo]:
    """The children of ``ppid`` (zombies included: see ``.state``), by pid."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = proc_info(int(entry.name))
            if info is not None and info.ppid == ppid:
                out.append(info)
    return sorted(out, key=lambda info: info.pid)


class PrometheusServer(ServerProcess):
    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v1"

    def query(self, promql: str) -> List[Dict[str, Any]]:
        """Instant query; returns the result vector (raises on API errors)."""
        url = f"{self.api_url}/query?" + urllib.parse.urlencode({"query": promql})
        res = http_get(url)
        payload = res.json()
        if res.status != 200 or payload.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {res.status} {payload}")
        return list(payload["data"]["result"])

    def targets(self) -> List[Dict[str, Any]]:
        res = http_get(f"{self.api_url}/targets")
        return list(res.json()["data"]["activeTargets"])


def prometheus_config(
    targets: Sequence[str],
    scrape_interval: str = "1s",
    metrics_path: str = "/metrics",
    job: str = "aioprometheus",
) -> str:
    target_list = ", ".join(json.dumps(t) for t in targets)
    return (
        "global:\n"
        f"  scrape_interval: {scrape_interval}\n"
        f"  scrape_timeout: {scrape_interval}\n"
        f"  evaluation_interval: {scrape_interval}\n"
        "scrape_configs:\n"
        f"  - job_name: {json.dumps(job)}\n"
        f"    metrics_path: {json.dumps(metrics_path)}\n"
        "    static_configs:\n"
        f"      - targets: [{target_list}]\n"
    )


def start_prometheus(
    workdir: Path,
    targets: Sequence[str],
    extra_flags: Iterable[str] = (),
    scrape_interval: str = "1s",
    metrics_path: str = "/metrics",
    job: str = "aioprometheus",
) -> PrometheusServer:
    """Write a config scraping ``targets`` (``host:port`` strings, loopback),
    start Prometheus on a free 127.0.0.1 port with its data in ``workdir``
    and wait until /-/ready answers. Stop it with ``.stop()``."""
    for target in targets:
        host = target.rsplit(":", 1)[0].strip("[]")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"scrape targets must be on loopback, not {target!r}")
    binary = require_binary(PROMETHEUS_BIN)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_config(targets, scrape_interval, metrics_path, job))
    flags = list(extra_flags)
    proc, port, log_path = _launch(
        "prometheus",
        lambda port: [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            *flags,
        ],
        workdir,
        "/-/ready",
    )
    return PrometheusServer("prometheus", proc, port, workdir, log_path)


class PushgatewayServer(ServerProcess):
    def metrics_text(self) -> str:
        return http_get(f"{self.base_url}/metrics").body.decode("utf-8")

    def api_metrics(self) -> List[Dict[str, Any]]:
        """The groups of /api/v1/metrics."""
        res = http_get(f"{self.base_url}/api/v1/metrics")
        payload = res.json()
        if res.status != 200 or payload.get("status") != "success":
            raise RuntimeError(f"/api/v1/metrics failed: {res.status} {payload}")
        return list(payload["data"])


def start_pushgateway(
    workdir: Path, extra_flags: Iterable[str] = ()
) -> PushgatewayServer:
    """Start the Pushgateway on a free 127.0.0.1 port, in-memory only."""
    binary = require_binary(PUSHGATEWAY_BIN)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    flags = list(extra_flags)
    proc, port, log_path = _launch(
        "pushgateway",
        lambda port: [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            "--persistence.file=",
            "--log.level=warn",
            *flags,
        ],
        workdir,
        "/-/ready",
    )
    return PushgatewayServer("pushgateway", proc, port, workdir, log_path)


def wait_for_query(
    server: PrometheusServer,
    promql: str,
    predicate: Optional[Callable[[List[Dict[str, Any]]], bool]] = None,
    timeout: float = QUERY_TIMEOUT,
) -> List[Dict[str, Any]]:
    """Poll ``promql`` until ``predicate(result)`` (default: non-empty) holds;
    return that result. AssertionError (with the last result) on timeout."""
    check = predicate or (lambda result: bool(result))
    last: List[Any] = []

    def attempt() -> Optional[List[Dict[str, Any]]]:
        nonlocal last
        last = server.query(promql)
        return last if check(last) else None

    try:
        return wait_until(attempt, timeout, interval=0.25, what=f"query {promql!r}")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; last result: {last!r}\nprometheus log:\n{server.log_tail()}"
        ) from None


def series_by_labels(
    result: List[Dict[str, Any]], drop: Iterable[str] = ("job", "instance")
) -> Dict[Tuple[Tuple[str, str], ...], str]:
    """Map each series of an instant-query vector (labels without __name__ and
    ``drop``) to its value string."""
    dropped = {"__name__", *drop}
    out = {}
    for item in result:
        labels = tuple(
            sorted((k, v) for k, v in item["metric"].items() if k not in dropped)
        )
        out[labels] = item["value"][1]
    return out


@dataclass
class ScrapeRecord:
    accept: str
    accept_encoding: str
    status: int
    content_type: str
    content_encoding: str


@dataclass
class ServiceThread:
    """Run an aioprometheus ``Service`` for ``registry`` on 127.0.0.1 (free
    port) in an event loop on a background thread. Every metrics response is
    recorded in ``scrapes`` (Accept, Content-Type, ...). Use as a context
    manager; ``call(fn, *args)`` runs ``fn`` in the loop thread."""

    registry: Any
    metrics_url_path: str = "/metrics"
    scrapes: List[ScrapeRecord] = field(default_factory=list)
    # the Accept header the service sees in place of the scraper's, if set
    # (Prometheus 2.42's own cannot be configured)
    accept_override: Optional[str] = None

    def __post_init__(self) -> None:
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self.service: Any = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.address}{self.metrics_url_path}"

    def __enter__(self) -> "ServiceThread":
        from aioprometheus.service import Service

        records = self.scrapes
        accept_override = self.accept_override

        class RecordingService(Service):
            async def handle_metrics(self, request):  # type: ignore[override]
                asked = request
                if accept_override is not None:
                    headers = CIMultiDict(request.headers)
                    headers["Accept"] = accept_override
                    asked = request.clone(headers=CIMultiDictProxy(headers))
                response = await super().handle_metrics(asked)
                records.append(
                    ScrapeRecord(
                        accept=", ".join(request.headers.getall("Accept", [])),
                        accept_encoding=request.headers.get("Accept-Encoding", ""),
                        status=response.status,
                        content_type=response.headers.get("Content-Type", ""),
                        content_encoding=response.headers.get("Content-Encoding", ""),
                    )
                )
                return response

        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, daemon=True)
        self._thread.start()
        self.service = RecordingService(registry=self.registry)
        fut = asyncio.run_coroutine_threadsafe(
            self.service.start(
                addr="127.0.0.1", port=0, metrics_url=self.metrics_url_path
            ),
            loop,
        )
        try:
            fut.result(timeout=10)
        except BaseException:
            self._shutdown_loop()
            raise
        self.port = int(self.service.base_url.rsplit(":", 1)[1])
        return self

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0) -> Any:
        """Run ``fn(*args)`` in the service's loop thread and return its result."""
        assert self._loop is not None

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def _shutdown_loop(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None and self.service is not None:
            fut = asyncio.run_coroutine_threadsafe(self.service.stop(), self._loop)
            fut.result(timeout=10)
        self._shutdown_loop()
