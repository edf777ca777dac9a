"""Multi-process mode: per-process stores, their aggregate, dead workers' archive.

Workers are real forked processes where it matters (fork hooks, SIGKILL,
liveness); elsewhere a "worker" is a store written in this process under a
pid of its choosing (see `worker`), so many workers, live or dead, fit in
one test.
"""

import contextlib
import logging
import os
import random
import signal
import threading
import time

import pytest
from native_views import downscaled

from aioprometheus import (
    Counter,
    Gauge,
    Histogram,
    Registry,
    Summary,
    _core,
    multiprocess,
)
from aioprometheus.formats.text import TextFormatter

# a pid no process can have (above Linux's largest pid_max): a dead worker's
DEAD_PID = 4_194_304 + 4242


@pytest.fixture
def mpdir(tmp_path, monkeypatch):
    """Multi-process mode on, in a fresh directory, with fresh module state."""
    monkeypatch.setenv(multiprocess.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(multiprocess, "_store", None)
    monkeypatch.setattr(multiprocess, "_aggregators", {})
    yield str(tmp_path)
    _core.set_store_source(multiprocess._process_store)


_serial = iter(range(1, 1 << 30))


@contextlib.contextmanager
def worker(directory, pid=None):
    """Metrics made inside keep their series in a store of their own, as if
    written by process `pid` (this process, alive, by default)."""
    if pid is None:
        pid = os.getpid()
    token = multiprocess._start_token(pid) or 1  # 1: a dead pid's
    name = f"worker-{pid}-{token}-{next(_serial)}{multiprocess.SUFFIX}"
    store = _core.StoreWriter(os.path.join(directory, name), pid, token)
    _core.set_store_source(lambda: store)
    try:
        yield Registry()
    finally:
        _core.set_store_source(multiprocess._process_store)


def aggregate(names=None):
    """{metric name: {label items: value}} of what a scrape exposes now."""
    exposed = multiprocess.merged_collectors([])
    return {
        m.name: {tuple(sorted(labels.items())): value for labels, value in m._items()}
        for m in exposed
        if names is None or m.name in names
    }


def key(**labels):
    return tuple(sorted(labels.items()))


def run_child(work):
    """Fork a child that runs `work()` and exits; its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            work()
        finally:
            os._exit(0)
    return pid


def test_counters_histograms_summaries_add_up_across_forked_workers(mpdir):
    registry = Registry()
    c = Counter("jobs_total", "Jobs", registry=registry)
    h = Histogram("job_seconds", "Time", buckets=[1, 2], registry=registry)
    s = Summary("job_bytes", "Size", registry=registry)
    c.inc({"kind": "parent"})

    def work(k):
        c.inc({"kind": "child"})
        c.add({"kind": str(k)}, k)
        h.observe({}, 0.5 * k)
        s.observe({}, 10)

    pids = [run_child(lambda k=k: work(k)) for k in range(1, 4)]
    for pid in pids:
        os.waitpid(pid, 0)
    expected = {
        "jobs_total": {
            key(kind="parent"): 1,
            key(kind="child"): 3,
            key(kind="1"): 1,
            key(kind="2"): 2,
            key(kind="3"): 3,
        },
        "job_seconds": {
            (): {1.0: 2, 2.0: 3, float("inf"): 3, "count": 3, "sum": 3.0},
        },
        "job_bytes": {(): {"count": 3, "sum": 30.0}},
    }
    assert aggregate() == expected
    # the children are gone: folded into the archive by that scrape, nothing lost
    assert multiprocess.store_files(mpdir) == sorted(
        [
            multiprocess.ARCHIVE,
            f"worker-{os.getpid()}-{multiprocess._start_token(os.getpid())}.aiop",
        ]
    )
    assert aggregate() == expected
    # the parent's own view is its own series only
    assert c.get({"kind": "parent"}) == 1
    with pytest.raises(KeyError):
        c.get({"kind": "child"})


def test_a_forked_child_starts_empty_and_keeps_the_parents_counts(mpdir):
    registry = Registry()
    c = Counter("hits_total", "Hits", registry=registry)
    bound = c.labels(page="a")
    bound.inc()
    bound.inc()

    def work():
        # the bound series and the metric start again in the child's store
        assert c._series_count() == 0
        bound.inc()

    os.waitpid(run_child(work), 0)
    assert aggregate()["hits_total"] == {key(page="a"): 3}


def test_stores_stay_bounded_and_totals_never_fall_across_many_dead_workers(mpdir):
    registry = Registry()
    c = Counter("served_total", "Served", registry=registry)
    seen = []
    for _ in range(30):
        os.waitpid(run_child(lambda: c.add({}, 2)), 0)
        total = aggregate()["served_total"][()]
        seen.append(total)
        # no parent store (it made no series): the archive alone
        assert multiprocess.store_files(mpdir) == [multiprocess.ARCHIVE]
    assert seen == [2 * (k + 1) for k in range(30)]


def test_mark_process_dead_folds_at_once_and_scrapes_skip_what_was_absorbed(mpdir):
    with worker(mpdir, DEAD_PID) as registry:
        Counter("a_total", "A", registry=registry).add({}, 5)
    multiprocess.mark_process_dead(DEAD_PID)
    assert multiprocess.store_files(mpdir) == [multiprocess.ARCHIVE]
    assert aggregate() == {"a_total": {(): 5}}
    multiprocess.mark_process_dead(DEAD_PID)  # again: nothing to do
    assert aggregate() == {"a_total": {(): 5}}


def test_a_fold_that_died_before_removing_the_store_counts_nothing_twice(
    mpdir, monkeypatch
):
    with worker(mpdir, DEAD_PID) as registry:
        Counter("a_total", "A", registry=registry).add({}, 5)
    removed = []
    real_remove = os.remove
    # the fold dies right after the rename: the absorbed store stays behind
    monkeypatch.setattr(os, "remove", lambda p: removed.append(p))
    multiprocess.mark_process_dead(DEAD_PID)
    assert len(multiprocess.store_files(mpdir)) == 2
    assert aggregate() == {"a_total": {(): 5}}
    monkeypatch.setattr(os, "remove", real_remove)
    with worker(mpdir, DEAD_PID + 1) as registry:
        Counter("a_total", "A", registry=registry).add({}, 1)
    multiprocess.mark_process_dead(DEAD_PID + 1)
    assert multiprocess.store_files(mpdir) == [multiprocess.ARCHIVE]
    assert aggregate() == {"a_total": {(): 6}}


def test_a_fold_that_overtakes_a_scrape_loses_nothing(mpdir, monkeypatch):
    """Another process folds a dead worker's store while a scrape lists the
    stores: after the scrape opened the (old) archive, before it opened the
    store the fold removes."""
    with worker(mpdir, DEAD_PID) as registry:
        Counter("a_total", "A", registry=registry).add({}, 5)
    with worker(mpdir) as registry:
        Counter("a_total", "A", registry=registry).add({}, 1)
    aggregator = multiprocess._Aggregator(mpdir)
    real_reader, folds = aggregator._reader, []

    def reader(name):
        if name.startswith(f"worker-{DEAD_PID}-") and not folds:
            folds.append(name)
            multiprocess.mark_process_dead(DEAD_PID)
        return real_reader(name)

    monkeypatch.setattr(aggregator, "_reader", reader)
    (merged,) = aggregator.merged()
    assert folds and merged._items() == [({}, 6)]


MODE_CASES = {
    # live 5 and 7, dead 3 (and a live-only gauge's dead value never counts)
    "all": None,
    "liveall": None,
    "sum": 15,
    "livesum": 12,
    "min": 3,
    "livemin": 5,
    "max": 7,
    "livemax": 7,
    "mostrecent": 3,  # the dead worker set its value last
    "livemostrecent": 7,
}


@pytest.mark.parametrize("mode", sorted(MODE_CASES))
def test_gauge_modes(mpdir, mode):
    # two live workers (this process and its parent) and a dead one
    workers = ((os.getpid(), 5), (os.getppid(), 7), (DEAD_PID, 3))
    for pid, value in workers:
        with worker(mpdir, pid) as registry:
            Gauge("g", "G", registry=registry, multiprocess_mode=mode).set(
                {"x": "1"}, value
            )
        time.sleep(0.002)  # mostrecent goes by wall time
    merged = aggregate()["g"]
    if mode in ("all", "liveall"):
        shown = workers if mode == "all" else workers[:2]
        assert merged == {key(x="1", pid=str(pid)): value for pid, value in shown}
    else:
        assert merged == {key(x="1"): MODE_CASES[mode]}
    # the same after the dead worker is folded into the archive
    multiprocess.mark_process_dead(DEAD_PID)
    assert aggregate()["g"] == merged


def test_bad_gauge_mode_is_refused_at_construction(mpdir):
    with pytest.raises(ValueError, match="multiprocess_mode"):
        Gauge("g", "G", registry=Registry(), multiprocess_mode="average")


def test_info_and_enum_combine_as_one_value(mpdir):
    from aioprometheus import Enum, Info

    for _ in range(2):
        with worker(mpdir) as registry:
            Info("build", "Build", registry=registry).set({}, {"version": "1.2"})
            e = Enum("state", "State", states=["up", "down"], registry=registry)
            e.set({}, "up")
        time.sleep(0.002)
    with worker(mpdir) as registry:
        Enum("state", "State", states=["up", "down"], registry=registry).set({}, "down")
    merged = aggregate()
    assert merged["build_info"] == {key(version="1.2"): 1}
    assert merged["state"] == {key(state="up"): 0, key(state="down"): 1}


def test_one_worker_renders_exactly_as_single_process_mode(mpdir, monkeypatch):
    def instrument(registry):
        c = Counter(
            "req_total", "Requests", const_labels={"app": "x"}, registry=registry
        )
        g = Gauge("depth", "Depth", registry=registry, multiprocess_mode="livesum")
        h = Histogram("lat", "Latency", buckets=[0.5, 1], registry=registry)
        for k in range(50):
            c.inc({"path": f"/{k % 7}", "code": 200 + k % 3})
            g.set({"q": str(k % 4)}, k)
            h.observe({"path": f"/{k % 5}"}, k / 64)
        c._remove({"path": "/3", "code": 200})

    monkeypatch.delenv(multiprocess.ENV_VAR)
    local = Registry()
    instrument(local)
    want = TextFormatter().marshall(local)
    monkeypatch.setenv(multiprocess.ENV_VAR, mpdir)
    shared = Registry()
    instrument(shared)
    assert TextFormatter().marshall(shared) == want
    # and from a process that defines none of the metrics
    assert TextFormatter().marshall(Registry()) == want


def test_removed_and_cleared_series_leave_the_aggregate(mpdir):
    registry = Registry()
    c = Counter("c_total", "C", registry=registry)
    for k in range(5):
        c.inc({"k": str(k)})
    assert len(aggregate()["c_total"]) == 5
    c._remove({"k": "1"})
    c.inc({"k": "4"})
    assert aggregate()["c_total"] == {key(k=str(k)): 1 + (k == 4) for k in (0, 2, 3, 4)}
    c._clear()
    c.inc({"k": "9"})
    assert aggregate()["c_total"] == {key(k="9"): 1}


def test_a_worker_killed_mid_write_leaves_a_readable_store(mpdir):
    """SIGKILL at random moments while a worker makes series: every scrape
    reads whole series only: 0..n-1, each 1, the newest perhaps still 0."""
    registry = Registry()
    c = Counter("made_total", "Made", registry=registry)
    h = Histogram("seen", "Seen", buckets=[1], registry=registry)
    rng = random.Random(7)
    for _ in range(12):

        def work():
            for i in range(10**9):
                c.inc({"i": str(i), "pad": "x" * (i % 300)})
                h.observe({"i": str(i % 50)}, 0.5)

        pid = run_child(work)
        time.sleep(rng.uniform(0.001, 0.05))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        made = aggregate(["made_total"]).get("made_total", {})
        values = {int(dict(k)["i"]): v for k, v in made.items()}
        n = len(values)
        assert sorted(values) == list(range(n))
        assert all(values[i] == 1 for i in range(n - 1))
        assert values.get(n - 1, 1) in (0, 1)
        # the archive (the scrape folded the dead child in) reads the same
        assert aggregate(["made_total"]).get("made_total", {}) == made
        # start again from nothing for the next child
        for name in multiprocess.store_files(mpdir):
            os.remove(os.path.join(mpdir, name))
        multiprocess._aggregators.clear()


def test_a_scrape_while_a_worker_writes_never_fails_and_never_goes_back(mpdir):
    registry = Registry()
    c = Counter("busy_total", "Busy", registry=registry)

    def work():
        for i in range(200_000):
            c.inc({"n": str(i % 3000)})

    pid = run_child(work)
    totals = []
    try:
        while True:
            merged = aggregate()
            totals.append(sum(merged.get("busy_total", {}).values()))
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert totals == sorted(totals)
    assert sum(aggregate()["busy_total"].values()) == 200_000
    assert len(totals) > 3


def test_threads_writing_while_another_thread_scrapes(mpdir):
    registry = Registry()
    c = Counter("t_total", "T", registry=registry)
    h = Histogram("t_seconds", "T", buckets=[0.5], registry=registry)
    stop = threading.Event()
    errors = []

    def scrape():
        while not stop.is_set():
            try:
                TextFormatter().marshall(registry)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

    def write(k):
        for i in range(5000):
            c.inc({"k": str(k), "i": str(i % 100)})
            h.observe({"i": str(i % 17)}, 0.25)
            if i % 997 == 0:
                with contextlib.suppress(KeyError):
                    c._remove({"k": str(k), "i": str((i + 1) % 100)})

    scraper = threading.Thread(target=scrape)
    scraper.start()
    writers = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    scraper.join()
    assert not errors
    merged = aggregate()
    assert merged["t_total"] == {tuple(sorted(lb.items())): v for lb, v in c._items()}
    assert merged["t_seconds"] == {tuple(sorted(lb.items())): v for lb, v in h._items()}


def test_label_str_that_clears_and_remakes_the_metric_mid_create(mpdir):
    registry = Registry()
    c = Counter("h_total", "H", registry=registry)

    class Sneaky:
        def __init__(self, action):
            self.action = action

        def __str__(self):
            self.action()
            return "sneaky"

    c.inc({"a": "1"})
    c.inc({"v": Sneaky(c._clear)})
    c.inc({"v": Sneaky(lambda: [c.inc({"b": str(k)}) for k in range(20)])})
    c.inc({"v": Sneaky(lambda: c._remove({"v": "sneaky"}))})
    merged = aggregate()["h_total"]
    assert merged == {tuple(sorted(lb.items())): v for lb, v in c._items()}


def _valid_store(directory, pid=DEAD_PID):
    pid = pid or os.getpid()
    with worker(directory, pid) as registry:
        Counter("ok_total", "OK", registry=registry).add({"a": "b"}, 3)
        Histogram("ok_seconds", "OK", buckets=[1], registry=registry).observe({}, 2)
    return [
        n for n in multiprocess.store_files(directory) if n.startswith(f"worker-{pid}-")
    ][0]


def test_foreign_and_corrupt_stores_are_reported_and_skipped(mpdir, caplog):
    good = _valid_store(mpdir, pid=os.getpid())
    with open(os.path.join(mpdir, good), "rb") as fh:
        image = bytearray(fh.read())
    other_version = bytearray(image)
    other_version[8] = 99
    broken_record = bytearray(image)
    broken_record[64 + 4] = 3  # the first record's length: not a multiple of 8
    for name, data in (
        ("worker-1-1-garbage.aiop", os.urandom(5000)),
        ("worker-1-1-short.aiop", b"AIOPSTOR"),
        ("worker-1-1-version.aiop", bytes(other_version)),
        ("worker-1-1-broken.aiop", bytes(broken_record)),
    ):
        with open(os.path.join(mpdir, name), "wb") as fh:
            fh.write(data)
    with caplog.at_level(logging.ERROR, logger="aioprometheus.multiprocess"):
        merged = aggregate()
        aggregate()
    assert merged == {
        "ok_total": {key(a="b"): 3},
        "ok_seconds": {(): {1.0: 0, float("inf"): 1, "count": 1, "sum": 2.0}},
    }
    messages = [r.getMessage() for r in caplog.records]
    assert any("format version 99" in m and "another version" in m for m in messages)
    assert any("not an aioprometheus multi-process store" in m for m in messages)
    assert any("corrupt store" in m and "broken" in m for m in messages)
    assert len(messages) == 4  # each said once


def test_random_damage_to_a_store_is_an_error_never_a_crash(mpdir):
    name = _valid_store(mpdir)
    path = os.path.join(mpdir, name)
    with open(path, "rb") as fh:
        image = fh.read()
    published = int.from_bytes(image[32:40], "little")
    rng = random.Random(11)
    outcomes = set()
    for _ in range(300):
        damaged = bytearray(image[: max(published, 64) + 64])
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(40, published)
            damaged[at] = rng.randrange(256)
        with open(path, "wb") as fh:
            fh.write(bytes(damaged))
        try:
            reader = _core.StoreReader(path)
            reader.refresh()
            _core.Aggregation(multiprocess._merged_classes()).merge([reader], [False])
            outcomes.add("read")
        except _core.StoreError:
            outcomes.add("refused")
    assert outcomes == {"read", "refused"}


def test_native_histograms_merge_exactly_across_workers(mpdir):
    """Workers observing into a native histogram, one of them past its
    bucket limit (so at a lower schema), scrapes in between (which sort the
    live buckets, so the stores' copies are rewritten): the aggregate's
    native buckets are those of one histogram given every observation, at
    the lowest schema."""
    rng = random.Random(5)
    data = [
        [rng.lognormvariate(0, 3) * rng.choice((1, 1, -1)) for _ in range(1500)]
        + [0.0, 1e-300, float("nan")]
        for _ in range(3)
    ]
    registry = Registry()
    h = Histogram(
        "lat_seconds", "L", registry=registry, native_histogram_bucket_factor=1.1
    )
    limited = Histogram(
        "lim_seconds",
        "L",
        registry=registry,
        native_histogram_bucket_factor=1.1,
        native_histogram_max_bucket_number=40,
    )

    def work(values, scrape_at):
        for i, v in enumerate(values):
            h.observe({"w": "all"}, v)
            if values is data[0] or (values is data[1] and i < 20):
                limited.observe({}, v)  # one worker past the limit, one not
            if i in scrape_at:
                TextFormatter().marshall(registry)  # sorts the live buckets

    for values in data:
        pid = run_child(lambda values=values: work(values, {10, 500, 1200}))
        os.waitpid(pid, 0)
    merged = {m.name: m for m in multiprocess.merged_collectors([])}
    reference = Histogram(
        "ref", "R", registry=Registry(), native_histogram_bucket_factor=1.1
    )
    for values in data:
        for v in values:
            reference.observe({}, v)
    assert merged["lat_seconds"].get_native({"w": "all"}) == reference.get_native({})
    got = merged["lim_seconds"].get_native({})
    assert got["schema"] < 3 and len(got["positive"]) + len(got["negative"]) <= 41
    alone = Histogram(
        "alone", "A", registry=Registry(), native_histogram_bucket_factor=1.1
    )
    for v in data[0] + data[1][:20]:
        alone.observe({}, v)
    assert got == downscaled(alone.get_native({}), got["schema"])
    # counts and sums agree with the classic view
    assert merged["lat_seconds"].get({"w": "all"})["count"] == 3 * 1503
