"""The multi-process aggregate against a plain-Python model.

Random updates, removals and clears by several workers (stores written in
this process under live or dead pids), scrapes in between (so the
aggregation's incremental path runs), and dead workers folded into the
archive at random points: every scrape must show what the model says.
"""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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

DEAD_PID = 4_194_304 + 99
LIVE, DEAD = "live", "dead"
BOUNDS = (0.5, 2.0)
GAUGE_MODES = ("all", "liveall", "sum", "livesum", "min", "livemin", "max", "livemax")
LABELS = st.sampled_from([{}, {"a": "1"}, {"a": "2"}, {"a": "1", "b": "x"}])
VALUES = st.sampled_from([0, 1, 2.5, 3, -1.5])  # sums of these are exact

op = st.one_of(
    st.tuples(st.just("inc"), st.integers(0, 3), LABELS, VALUES),
    st.tuples(st.just("set"), st.integers(0, 3), LABELS, VALUES),
    st.tuples(st.just("observe"), st.integers(0, 3), LABELS, VALUES),
    st.tuples(st.just("remove"), st.integers(0, 3), LABELS, VALUES),
    st.tuples(st.just("clear"), st.integers(0, 3), LABELS, VALUES),
    st.tuples(st.just("scrape"), st.integers(0, 3), LABELS, VALUES),
    st.tuples(st.just("fold"), st.integers(0, 3), LABELS, VALUES),
)


class Worker:
    """One simulated worker: its metrics, written to a store of its own,
    and the plain model of each metric's series."""

    def __init__(self, directory, pid, serial, gauge_mode):
        token = multiprocess._start_token(pid) or 1
        path = os.path.join(directory, f"worker-{pid}-{token}-{serial}.aiop")
        self.pid = pid
        self.store = _core.StoreWriter(path, pid, token)
        with self.writing():
            registry = Registry()
            self.metrics = {
                "c_total": Counter("c_total", "C", registry=registry),
                "g": Gauge("g", "G", registry=registry, multiprocess_mode=gauge_mode),
                "h": Histogram("h", "H", buckets=BOUNDS, registry=registry),
                "s": Summary("s", "S", registry=registry),
                # native buckets, few enough that the limit halves the schema
                "n": Histogram("n", "N", registry=registry,
                               native_histogram_bucket_factor=1.1,
                               native_histogram_max_bucket_number=3),
            }  # fmt: skip
        self.model = {name: {} for name in self.metrics}

    def writing(self):
        store = self.store

        class Writing:
            def __enter__(self):
                _core.set_store_source(lambda: store)

            def __exit__(self, *exc):
                _core.set_store_source(multiprocess._process_store)

        return Writing()

    def apply(self, kind, labels, value):
        key = tuple(sorted(labels.items()))
        m, model = self.metrics, self.model
        with self.writing():
            if kind == "inc":
                m["c_total"].add(labels, abs(value))
                model["c_total"][key] = model["c_total"].get(key, 0) + abs(value)
                m["g"].add(labels, value)
                model["g"][key] = model["g"].get(key, 0) + value
            elif kind == "set":
                m["g"].set(labels, value)
                model["g"][key] = value
            elif kind == "observe":
                for name in ("h", "s", "n"):
                    m[name].observe(labels, value)
                    model[name].setdefault(key, []).append(value)
            elif kind == "remove":
                for name, metric in m.items():
                    if key in model[name]:
                        metric._remove(labels)
                        del model[name][key]
            elif kind == "clear":
                for name, metric in m.items():
                    metric._clear()
                    model[name].clear()


def expected(workers, gauge_mode):
    """What the aggregate of `workers` (pid, model) must show."""
    result = {"c_total": {}, "g": {}, "h": {}, "s": {}, "n": {}}
    for worker in workers:
        live = worker.pid != DEAD_PID
        for key, v in worker.model["c_total"].items():
            result["c_total"][key] = result["c_total"].get(key, 0) + v
        for key, values in worker.model["h"].items():
            result["h"].setdefault(key, []).extend(values)
        for name in ("s", "n"):
            for key, values in worker.model[name].items():
                result[name].setdefault(key, []).extend(values)
        if gauge_mode.startswith("live") and not live:
            continue
        for key, v in worker.model["g"].items():
            base = gauge_mode.replace("live", "")
            if base == "all":
                result["g"][tuple(sorted(key + (("pid", str(worker.pid)),)))] = v
            elif key not in result["g"]:
                result["g"][key] = v
            else:
                combine = {"sum": lambda a, b: a + b, "min": min, "max": max}[base]
                result["g"][key] = combine(result["g"][key], v)
    result["h"] = {k: histogram(vs) for k, vs in result["h"].items()}
    result["s"] = {
        k: {"count": len(vs), "sum": float(sum(vs))} for k, vs in result["s"].items()
    }
    result["n"] = {k: native_histogram(vs) for k, vs in result["n"].items()}
    return {name: series for name, series in result.items() if series}


def histogram(values):
    row = {b: sum(1 for v in values if v <= b) for b in BOUNDS}
    row[float("inf")] = len(values)
    return {**row, "count": len(values), "sum": float(sum(values))}


def native_histogram(values):
    """Its classic view, and its native buckets as one histogram (no bucket
    limit, made with multi-process mode off) given all `values` shows them."""
    directory = os.environ.pop(multiprocess.ENV_VAR)
    try:
        h = Histogram("x", "X", registry=Registry(), native_histogram_bucket_factor=1.1)
    finally:
        os.environ[multiprocess.ENV_VAR] = directory
    for v in values:
        h.observe({}, v)
    return {**h.get({}), "native": h.get_native({})}


def aggregate():
    shown = {}
    for m in multiprocess.merged_collectors([]):
        if m._series_count():
            shown[m.name] = {tuple(sorted(lb.items())): v for lb, v in m._items()}
            if m.name == "n":
                for key, row in shown["n"].items():
                    row["native"] = m.get_native(dict(key))
    return shown


def same(shown, want):
    """`shown` is `want`, native buckets compared at the schema shown (a
    worker past its bucket limit lowered it)."""
    for key, row in want.get("n", {}).items():
        native = shown.get("n", {}).get(key, {}).get("native")
        if native is not None:
            row["native"] = downscaled(row["native"], native["schema"])
    return shown == want


@pytest.fixture
def mpdir(tmp_path_factory, monkeypatch):
    monkeypatch.setattr(multiprocess, "_store", None)
    yield tmp_path_factory
    _core.set_store_source(multiprocess._process_store)


@settings(
    max_examples=int(os.environ.get("AIOPROMETHEUS_HOSTILE_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kinds=st.lists(st.sampled_from([LIVE, DEAD]), min_size=1, max_size=4),
    gauge_mode=st.sampled_from(GAUGE_MODES),
    ops=st.lists(op, max_size=40),
)
def test_aggregate_matches_the_model(mpdir, monkeypatch, kinds, gauge_mode, ops):
    directory = str(mpdir.mktemp("mp"))
    monkeypatch.setenv(multiprocess.ENV_VAR, directory)
    monkeypatch.setattr(multiprocess, "_aggregators", {})
    # live workers: this process and its parent (a pid label each); dead ones
    live_pids = iter([os.getpid(), os.getppid()])
    workers = []
    for serial, kind in enumerate(kinds):
        pid = next(live_pids, None) if kind == LIVE else DEAD_PID
        if pid is not None:
            workers.append(Worker(directory, pid, serial, gauge_mode))
    # A scrape folds dead workers' stores into the archive, as does "fold"
    # (mark_process_dead); from then on those workers write no more (a dead
    # process cannot), and their series stay in the archive.
    folded = []
    for kind, w, labels, value in ops:
        if kind in ("scrape", "fold"):
            if kind == "scrape":
                assert same(aggregate(), expected(workers, gauge_mode))
            else:
                multiprocess.mark_process_dead(DEAD_PID)
            folded.extend(x for x in workers if x.pid == DEAD_PID and x not in folded)
        else:
            worker = workers[w % len(workers)]
            if worker not in folded:
                worker.apply(kind, labels, value)
    assert same(aggregate(), expected(workers, gauge_mode))
    multiprocess.mark_process_dead(DEAD_PID)
    assert same(aggregate(), expected(workers, gauge_mode))
