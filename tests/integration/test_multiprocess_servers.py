"""Multi-process mode (issue 12) under real pre-fork servers.

Real gunicorn with 4 uvicorn workers (``-k uvicorn.workers.UvicornWorker``,
the ``child_exit`` hook of mp_gunicorn_conf.py) and real ``uvicorn --workers
4`` serve mp_app.py (FastAPI, ``MetricsMiddleware``, a custom counter
incremented by ``GET /hit``) with PROMETHEUS_MULTIPROC_DIR set to a fresh
directory. Every request opens a new connection, so all workers answer; every
scrape, whichever worker answers it, must report the aggregate exactly:

- after N requests, 20 scrapes in a row all report N (the custom counter and
  ``requests_total_counter{path="/hit"}``);
- a worker SIGKILLed between load phases loses nothing: no scrape reports
  less (or more) than N while the server replaces it, and after the next
  phase the totals are exact again;
- gunicorn's ``--max-requests`` recycles workers 50 times: every scrape stays
  exact, the directory holds at most live workers + 1 stores (``*.aiop``)
  and scrapes do not get slower (a generous factor, never a tight timing);
- a real Prometheus scraping the gunicorn app every 0.5 s throughout sees
  the counters with ``resets()`` 0, never above N, and last at N.

Only 127.0.0.1 and ephemeral ports; every loop is bounded; the servers are
stopped by pid, then their process groups are killed.
"""

import http.client
import importlib.util
import os
import re
import signal
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import pytest
import servers
from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent

if importlib.util.find_spec("aioprometheus.multiprocess") is None:
    pytest.skip(
        "aioprometheus.multiprocess (issue 12, multi-process mode) does not exist yet",
        allow_module_level=True,
    )

WORKERS = 4
COUNTER = "mp_app_hits_total"
REQUESTS = "requests_total_counter"
# prometheus_client's parser names a counter's samples with ``_total``
REQUESTS_SAMPLE = REQUESTS + "_total"
LIVE_GAUGE = "mp_app_worker_up"
FIRST_PHASE = 150  # requests before the first checks
NEXT_PHASE = 100  # requests after a worker was SIGKILLed
SCRAPES_IN_A_ROW = 20
# gunicorn recycles a worker after it served 20 + randint(0, 10) requests
MAX_REQUESTS = 20
MAX_REQUESTS_JITTER = 10
RECYCLES = 50
RECYCLE_BATCH = 25  # requests between two checks while workers recycle
RECYCLE_BUDGET = 120.0  # seconds for the recycles (about 20 s on 2 cores)
SETTLE_TIMEOUT = 30.0  # for a server to have its workers back
STORE_GLOB = "*.aiop"
WORKER_STORE = re.compile(r"worker-(\d+)-\d+\.aiop$")


@pytest.fixture(autouse=True)
def _platform():
    if not sys.platform.startswith("linux"):
        pytest.skip("finds and kills workers through /proc (Linux only)")


def _env(multiproc_dir: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


SeriesKey = Tuple[str, Tuple[Tuple[str, str], ...]]


class Scrape:
    """One GET of a metrics endpoint: who answered, how long it took, and
    the samples of its text exposition."""

    def __init__(self, url: str) -> None:
        start = time.perf_counter()
        res = servers.http_get(url, timeout=15)
        self.seconds = time.perf_counter() - start
        assert res.status == 200, f"GET {url}: {res.status} {res.body[:500]!r}"
        headers = {k.lower(): v for k, v in res.headers.items()}
        self.pid = int(headers.get("x-worker-pid", "0"))
        self.cold = False  # the first scrape its worker answered (App.scrape)
        self.text = res.body.decode("utf-8")
        self.samples: Dict[SeriesKey, float] = {}
        duplicates = []
        for family in text_string_to_metric_families(self.text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key in self.samples:
                    duplicates.append(key)
                self.samples[key] = sample.value
        assert not duplicates, (
            f"series exposed twice by worker {self.pid}: {duplicates}"
        )

    def value(self, name: str, **labels: str) -> Optional[float]:
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def hits(self) -> Optional[float]:
        return self.value(COUNTER)

    def requests(self) -> Optional[float]:
        return self.value(REQUESTS_SAMPLE, method="GET", path="/hit")


class Load:
    """Sequential GET /hit requests, each on a new connection (so that
    different workers answer). ``sent`` counts the answered ones; a request
    that got no answer (a worker closing its connections as it recycles)
    never reached the app and is sent again, and is noted in ``retried``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.sent = 0
        self.by_pid: Dict[int, int] = {}
        self.retried: List[str] = []

    def hit(self) -> int:
        for _ in range(5):
            try:
                res = servers.http_get(self.base_url + "/hit", timeout=15)
            except (OSError, http.client.HTTPException) as exc:
                self.retried.append(repr(exc))
                time.sleep(0.05)
                continue
            assert res.status == 200, f"GET /hit: {res.status} {res.body[:500]!r}"
            pid = int(res.json()["pid"])
            self.sent += 1
            self.by_pid[pid] = self.by_pid.get(pid, 0) + 1
            return pid
        raise AssertionError(f"GET /hit failed 5 times: {self.retried[-5:]}")

    def run(self, count: int) -> None:
        for _ in range(count):
            self.hit()

    def note(self) -> str:
        if not self.retried:
            return ""
        return (
            f" ({len(self.retried)} requests got no answer and were sent again,"
            f" e.g. {self.retried[-1]})"
        )


class App:
    """A running pre-fork server of mp_app and what the test knows of it."""

    def __init__(
        self,
        server: servers.ProcessGroupServer,
        multiproc_dir: Path,
        is_worker: Callable[[servers.ProcInfo], bool],
    ) -> None:
        self.server = server
        self.dir = multiproc_dir
        self.is_worker = is_worker
        self.load = Load(server.base_url)
        self.scrapes: List[Scrape] = []
        self.scraped_by: Set[int] = set()
        self.unanswered_scrapes: List[str] = []
        # requests counted by the middleware whose handler a SIGKILL cut off
        self.requests_not_hits = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def scrape(self, path: str = "/metrics") -> Scrape:
        """GET ``path``; a connection that a worker closed as it recycled,
        with no answer, is tried again (a scrape changes no counter)."""
        for attempt in range(5):
            try:
                scrape = Scrape(self.server.base_url + path)
                break
            except (OSError, http.client.HTTPException) as exc:
                self.unanswered_scrapes.append(repr(exc))
                if attempt == 4:
                    raise
                time.sleep(0.05)
        scrape.cold = scrape.pid not in self.scraped_by
        self.scraped_by.add(scrape.pid)
        self.scrapes.append(scrape)
        return scrape

    def workers(self) -> List[servers.ProcInfo]:
        """The master's worker processes, zombies (exited, not yet reaped)
        included."""
        return [
            p
            for p in servers.child_processes(self.server.proc.pid)
            if self.is_worker(p)
        ]

    def live_workers(self) -> List[int]:
        return [p.pid for p in self.workers() if p.state != "Z"]

    def stores(self) -> List[str]:
        return sorted(p.name for p in self.dir.glob(STORE_GLOB))

    def wait_for_workers(self, gone: Sequence[int] = ()) -> List[int]:
        """Wait until exactly WORKERS workers run, none a zombie and none of
        ``gone``; return their pids."""

        def ready() -> Optional[List[int]]:
            workers = self.workers()
            pids = [p.pid for p in workers]
            if len(workers) != WORKERS or any(p.state == "Z" for p in workers):
                return None
            return None if set(pids) & set(gone) else pids

        try:
            return servers.wait_until(ready, SETTLE_TIMEOUT, 0.1, "workers")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: {self.workers()}\n{self.server.log_tail()}"
            ) from None

    def wait_until_all_answer(self) -> None:
        """Scrape (on new connections) until each live worker has answered
        one: all of them serve, so the load that follows reaches them all."""
        pids = self.wait_for_workers()
        answered: set = set()

        def all_answered() -> bool:
            answered.add(self.scrape().pid)
            return set(self.live_workers()) <= answered

        try:
            servers.wait_until(all_answered, SETTLE_TIMEOUT, 0.02, "every worker")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: workers {pids}, answered {sorted(answered)}\n"
                f"{self.server.log_tail()}"
            ) from None

    def scrape_until_answered_by(self, pid: int, when: str) -> None:
        """Scrape until worker ``pid`` answers one (each scrape exact)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        answered: Dict[int, int] = {}
        while time.monotonic() < deadline:
            scrape = self.scrape()
            self.assert_exact(scrape, when)
            if scrape.pid == pid:
                return
            answered[scrape.pid] = answered.get(scrape.pid, 0) + 1
            time.sleep(0.01)  # every worker idle again, waiting to accept
        raise AssertionError(
            f"{when}: worker {pid} answered no scrape in {SETTLE_TIMEOUT:g}s; "
            f"others did: {answered}"
        )

    def assert_exact(self, scrape: Scrape, when: str) -> None:
        expected = self.load.sent
        requests = expected + self.requests_not_hits
        assert (scrape.hits(), scrape.requests()) == (expected, requests), (
            f"{when}: worker {scrape.pid}'s scrape reports {COUNTER}="
            f"{scrape.hits()} and {REQUESTS}{{path='/hit'}}={scrape.requests()}"
            f" after {expected} answered requests{self.load.note()}; "
            f"requests per worker: {self.load.by_pid}; stores: {self.stores()}"
        )

    def scrapes_in_a_row(self, when: str) -> List[Scrape]:
        row = [self.scrape() for _ in range(SCRAPES_IN_A_ROW)]
        for index, scrape in enumerate(row):
            self.assert_exact(scrape, f"{when}, scrape {index + 1} of {len(row)}")
        return row

    def wait_for_live_gauge(self) -> None:
        """``mp_app_worker_up`` (livesum) counts the live workers: WORKERS
        once dead workers' values have dropped out."""

        def settled() -> bool:
            return self.scrape().value(LIVE_GAUGE) == WORKERS

        try:
            servers.wait_until(settled, SETTLE_TIMEOUT, 0.2, f"{LIVE_GAUGE} == 4")
        except AssertionError as exc:
            last = self.scrapes[-1].value(LIVE_GAUGE) if self.scrapes else None
            raise AssertionError(
                f"{exc}: last {LIVE_GAUGE}={last}, workers {self.live_workers()},"
                f" stores {self.stores()}"
            ) from None

    def assert_stores_bounded(self) -> List[str]:
        """After a scrape with no worker starting or stopping around it, the
        directory holds a store per live worker and the archive, at most."""

        def quiet() -> Optional[Tuple[List[str], List[int]]]:
            before = self.workers()
            self.scrape()
            stores = self.stores()
            after = self.workers()
            stable = before == after and all(p.state != "Z" for p in after)
            return (stores, [p.pid for p in after]) if stable else None

        stores, pids = servers.wait_until(quiet, SETTLE_TIMEOUT, 0.2, "quiet workers")
        assert len(stores) <= len(pids) + 1, (
            f"{len(stores)} stores for {len(pids)} live workers: {stores}"
        )
        stale = [
            name
            for name in stores
            if WORKER_STORE.match(name)
            and int(WORKER_STORE.match(name).group(1)) not in pids  # type: ignore[union-attr]
        ]
        assert not stale, f"stores of dead workers left after a scrape: {stale}"
        return stores

    def kill_a_worker(self) -> int:
        """SIGKILL a worker that has counted requests (it answered the last
        one); return its pid."""
        for _ in range(50):
            pid = self.load.hit()
            info = servers.proc_info(pid)
            if info is not None and info.ppid == self.server.proc.pid:
                if info.state != "Z":
                    os.kill(pid, signal.SIGKILL)
                    return pid
        raise AssertionError("no live worker to kill answered in 50 requests")

    def exact_first_phase(self) -> List[Scrape]:
        """FIRST_PHASE requests over at least two workers: every scrape of a
        row reports them all (the row, returned)."""
        self.load.run(FIRST_PHASE)
        assert len(self.load.by_pid) >= 2, (
            f"one worker answered all {FIRST_PHASE} requests: {self.load.by_pid}"
        )
        row = self.scrapes_in_a_row(f"after {FIRST_PHASE} requests")
        self.wait_for_live_gauge()
        return row

    def exact_after_a_sigkill(self) -> None:
        """A worker SIGKILLed between phases: nothing lost while the server
        replaces it, exact again after the next phase."""
        victim = self.kill_a_worker()
        self.assert_nothing_lost_while_replaced(victim)
        self.load.run(NEXT_PHASE)
        self.scrapes_in_a_row(f"after the phase following the SIGKILL of {victim}")
        self.wait_for_live_gauge()

    def assert_nothing_lost_while_replaced(self, victim: int) -> List[int]:
        """Scrape until the server has replaced ``victim``; every scrape must
        report the requests sent, never less."""
        expected = self.load.sent
        deadline = time.monotonic() + SETTLE_TIMEOUT
        seen: List[Optional[float]] = []
        while True:
            scrape = self.scrape()
            seen.append(scrape.hits())
            self.assert_exact(
                scrape,
                f"scrape {len(seen)} after worker {victim} was SIGKILLed "
                f"(values so far {seen})",
            )
            live = self.live_workers()
            if len(live) == WORKERS and victim not in live:
                break
            assert time.monotonic() < deadline, (
                f"worker {victim} not replaced in {SETTLE_TIMEOUT:g}s: {live}\n"
                f"{self.server.log_tail()}"
            )
            time.sleep(0.1)
        for _ in range(5):
            self.assert_exact(self.scrape(), f"after worker {victim} was replaced")
        assert expected == self.load.sent
        return self.wait_for_workers(gone=[victim])


def _deleted_stores_held(pid: int) -> Tuple[int, int]:
    """(descriptors, mappings) process ``pid`` holds of store files that have
    been removed from the directory (folded into the archive)."""
    descriptors = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        descriptors += ".aiop" in target and target.endswith("(deleted)")
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    mappings = sum(".aiop" in line and line.endswith("(deleted)") for line in maps)
    return descriptors, mappings


def _warm_median(app: App, row: List[Scrape], when: str) -> float:
    """The median time of the scrapes of ``row`` answered by a worker that had
    answered one before (a worker's first scrape also pays for its first
    reading of every store and for lazy imports); more rows if too few."""
    for _ in range(3):
        warm = [s.seconds for s in row if not s.cold]
        if len(warm) >= 5:
            return statistics.median(warm)
        row = app.scrapes_in_a_row(when)
    raise AssertionError(f"{when}: too few scrapes by workers that had scraped")


def _start_app(
    tmp_path: Path,
    name: str,
    argv_for_port: Callable[[int], List[str]],
    is_worker: Callable[[servers.ProcInfo], bool],
) -> App:
    multiproc_dir = tmp_path / "multiproc"
    multiproc_dir.mkdir()
    server = servers.start_server_group(
        name, argv_for_port, tmp_path / name, "/metrics", env=_env(multiproc_dir)
    )
    return App(server, multiproc_dir, is_worker)


def _boots(app: App) -> int:
    """Workers gunicorn has booted so far (its log)."""
    text = app.server.log_path.read_text(errors="replace")
    return len(re.findall(r"Booting worker with pid", text))


def _prometheus_value(prom: servers.PrometheusServer, promql: str) -> float:
    result = prom.query(promql)
    assert len(result) == 1, f"{promql}: {result}"
    return float(result[0]["value"][1])


def test_gunicorn_uvicorn_workers_aggregate_exactly(tmp_path, prometheus_factory):
    servers.require_module("gunicorn")
    servers.require_module("uvicorn")
    app = _start_app(
        tmp_path,
        "gunicorn",
        lambda port: servers.gunicorn_argv(
            HERE / "mp_gunicorn_conf.py",
            "mp_app:app",
            WORKERS,
            port,
            "--max-requests",
            str(MAX_REQUESTS),
            "--max-requests-jitter",
            str(MAX_REQUESTS_JITTER),
            "--graceful-timeout",
            "10",
        ),
        # gunicorn's workers are forked: every child of the master
        lambda info: True,
    )
    try:
        app.wait_until_all_answer()
        prom = prometheus_factory([app.address], scrape_interval="500ms")
        servers.wait_for_query(prom, f'up{{instance="{app.address}"}} == 1')
        scraped_since = time.monotonic()

        # 1. N requests: every scrape, whoever answers, reports N
        early = app.exact_first_phase()
        early_s = _warm_median(app, early, f"after {FIRST_PHASE} requests")

        # 2. a worker SIGKILLed between phases: nothing lost, exact again after
        app.exact_after_a_sigkill()

        # 3. --max-requests recycles workers 50 times: exact all along, the
        # stores bounded, scrapes no slower
        replaced_before = _boots(app) - WORKERS
        deadline = time.monotonic() + RECYCLE_BUDGET
        most_stores: List[str] = []
        batches = 0
        while _boots(app) - WORKERS - replaced_before < RECYCLES:
            assert time.monotonic() < deadline, (
                f"only {_boots(app) - WORKERS - replaced_before} recycles in "
                f"{RECYCLE_BUDGET:g}s"
            )
            app.load.run(RECYCLE_BATCH)
            batches += 1
            app.assert_exact(app.scrape(), f"while recycling, after batch {batches}")
            stores = app.stores()
            most_stores = max(most_stores, stores, key=len)
            # a store per worker, one per worker on its way out, the archive
            assert len(stores) <= 2 * WORKERS + 1, (
                f"stores pile up as workers recycle: {stores}"
            )
        recycled = _boots(app) - WORKERS - replaced_before
        app.wait_for_workers()
        stores = app.assert_stores_bounded()
        assert "archive.aiop" in stores, stores
        app.wait_for_live_gauge()
        # the scrapes recycle workers too, and a worker booting takes CPU from
        # a scrape: the best of three rows, each of 20 exact scrapes
        lates: List[float] = []
        bound = 3 * early_s + 0.005
        while len(lates) < 3 and (not lates or min(lates) > bound):
            when = f"after {recycled} recycles, row {len(lates) + 1}"
            lates.append(_warm_median(app, app.scrapes_in_a_row(when), when))
        late_s = min(lates)
        assert late_s <= bound, (
            f"median scrape time grew from {early_s * 1e3:.1f} ms to "
            f"{[round(x * 1e3, 1) for x in lates]} ms over {recycled} recycles "
            f"(stores: {stores})"
        )

        # the master folded every recycled worker's store (child_exit)
        held = _deleted_stores_held(app.server.proc.pid)
        assert max(held) <= 2, (
            f"the gunicorn master holds {held[0]} descriptors and {held[1]} "
            f"mappings of removed stores after {recycled} recycles"
        )

        # render() in a worker serves the aggregate too
        rendered = app.scrape("/render")
        app.assert_exact(rendered, "render() in a worker")

        answering = {s.pid for s in app.scrapes}
        assert len(answering) >= 2, f"one worker answered every scrape: {answering}"

        # 4. Prometheus saw the counters scraped all along with no reset
        total = app.load.sent
        for series in (COUNTER, f'{REQUESTS}{{method="GET",path="/hit"}}'):
            servers.wait_for_query(
                prom,
                series,
                lambda r: len(r) == 1 and float(r[0]["value"][1]) == total,
            )
            assert _prometheus_value(prom, f"resets({series}[10m])") == 0
            assert _prometheus_value(prom, f"max_over_time({series}[10m])") == total
            # one sample per 0.5 s; some scrapes may time out while workers boot
            expected = (time.monotonic() - scraped_since) / 0.5
            samples = _prometheus_value(prom, f"count_over_time({series}[10m])")
            assert samples >= max(5.0, 0.4 * expected), (
                f"Prometheus kept {samples} samples of {series}, for about "
                f"{expected:.0f} scrapes"
            )
        print(
            f"gunicorn: {total} requests, {recycled} recycles, {len(app.scrapes)} "
            f"scrapes by {len(answering)} workers, median scrape "
            f"{early_s * 1e3:.1f} ms early, {late_s * 1e3:.1f} ms late, at most "
            f"{len(most_stores)} stores{app.load.note()}, "
            f"{len(app.unanswered_scrapes)} scrapes tried again"
        )
    finally:
        app.server.stop()


def _start_uvicorn(tmp_path: Path) -> App:
    servers.require_module("uvicorn")
    return _start_app(
        tmp_path,
        "uvicorn",
        lambda port: servers.uvicorn_argv(
            "mp_app:app", WORKERS, port, "--log-level", "warning"
        ),
        # uvicorn spawns its workers through multiprocessing (a resource
        # tracker may be a child too)
        lambda info: "spawn_main" in info.cmdline,
    )


def test_uvicorn_workers_aggregate_exactly(tmp_path):
    app = _start_uvicorn(tmp_path)
    try:
        app.wait_until_all_answer()
        app.exact_first_phase()
        # no child_exit hook here: the dead worker's store is found by its
        # pid at the next scrape
        app.exact_after_a_sigkill()
        stores = app.assert_stores_bounded()
        assert "archive.aiop" in stores, stores
        app.assert_exact(app.scrape("/render"), "render() in a worker")
    finally:
        app.server.stop()


def test_uvicorn_worker_killed_under_load_loses_no_answered_request(tmp_path):
    """SIGKILL a worker while clients keep sending requests (it may die in the
    middle of an increment): scrapes never go backwards, and afterwards the
    total counts every answered request, plus at most the unanswered ones
    (which the app may or may not have reached); the next phase adds exactly."""
    app = _start_uvicorn(tmp_path)
    clients, answered, unanswered, errors = 3, [0, 0, 0], [0, 0, 0], []
    stop = threading.Event()

    def client(index: int) -> None:
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                res = servers.http_get(app.server.base_url + "/hit", timeout=15)
            except (OSError, http.client.HTTPException):
                unanswered[index] += 1
                time.sleep(0.01)
                continue
            if res.status == 200:
                answered[index] += 1
            else:
                errors.append((res.status, res.body[:200]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    try:
        app.wait_until_all_answer()
        app.load.run(FIRST_PHASE)
        before = app.load.sent
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        live = app.live_workers()
        victim = max(live, key=lambda pid: app.load.by_pid.get(pid, 0))
        os.kill(victim, signal.SIGKILL)
        seen: List[float] = []
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            value = app.scrape().hits()
            assert value is not None
            assert not seen or value >= seen[-1], (
                f"{COUNTER} went back from {seen[-1]} to {value} after worker "
                f"{victim} was SIGKILLed under load (values {seen + [value]})"
            )
            seen.append(value)
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join(timeout=40)
        assert not errors, errors
        assert sum(answered) > 100, f"too little load: {answered}"
        app.wait_for_workers(gone=[victim])
        lowest = before + sum(answered)
        highest = lowest + sum(unanswered)
        total = app.scrape().hits()
        assert total is not None and lowest <= total <= highest, (
            f"{COUNTER}={total} after {lowest} answered requests and "
            f"{sum(unanswered)} unanswered ones (worker {victim} SIGKILLed)"
        )
        # a request the SIGKILL cut between the handler's count and the
        # middleware's (made when the response starts) counts in
        # mp_app_hits_total alone, and so the two may differ by at most the
        # requests in flight then: one per client
        requests = app.scrape().requests()
        assert requests is not None and requests <= highest, (requests, highest)
        assert abs(requests - total) <= clients, (requests, total)
        app.requests_not_hits = int(requests - total)
        print(
            f"uvicorn, SIGKILL under load: {COUNTER}={total} for {lowest} answered "
            f"and {sum(unanswered)} unanswered requests; {len(seen)} scrapes"
        )
        # from here on the total is known again: the next phase adds exactly
        app.load.sent = int(total)
        app.load.run(NEXT_PHASE)
        app.scrapes_in_a_row("after the phase following a SIGKILL under load")
        app.wait_for_live_gauge()
        stores = app.assert_stores_bounded()
        assert "archive.aiop" in stores, stores
    finally:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=40)
        app.server.stop()


def test_uvicorn_worker_keeps_no_dead_store_open(tmp_path):
    """Dead workers cost nothing: a worker that scrapes while its siblings are
    SIGKILLed and replaced, again and again, does not keep their stores (folded
    and removed) open: at most 2 descriptors or mappings of removed ``*.aiop``
    files (a reader may be dropped a scrape late), not one per dead worker."""
    app = _start_uvicorn(tmp_path)
    kills = 6
    try:
        app.wait_until_all_answer()
        survivor = min(app.live_workers())
        for kill in range(kills):
            app.load.run(10)
            # the victim answered since it started, so it has a store, which
            # the survivor reads at its next scrape
            victim = max(pid for pid in app.live_workers() if pid != survivor)
            app.scrape_until_answered_by(survivor, f"before SIGKILL {kill + 1}")
            os.kill(victim, signal.SIGKILL)
            app.wait_for_workers(gone=[victim])
            app.wait_until_all_answer()
            app.scrape_until_answered_by(survivor, f"after SIGKILL {kill + 1}")
        assert survivor in app.live_workers()
        held = _deleted_stores_held(survivor)
        assert max(held) <= 2, (
            f"worker {survivor}, which scraped while {kills} workers died, holds "
            f"{held[0]} descriptors and {held[1]} mappings of removed stores "
            f"(stores now: {app.stores()})"
        )
    finally:
        app.server.stop()
