"""Snapshots: metrics copied in one go, encoded away from the event loop.

A snapshot must encode to exactly the bytes the live metrics give at the
moment it was taken, stay unchanged while the live metrics move on, and its
encoding must let other threads (the event loop) run while it goes.
"""

import threading
import time

from aioprometheus import Counter, Gauge, Histogram, Registry, Summary, _core


def populated_metrics():
    registry = Registry()
    c = Counter("c_total", "Requests", const_labels={"app": "x"}, registry=registry)
    g = Gauge("g", "Gauge", registry=registry)
    h = Histogram("h", "Latency", buckets=[0.1, 1], registry=registry)
    s = Summary("s", "Sizes", registry=registry)
    for i in range(300):
        labels = {"path": f"/p{i % 37}", "method": "GET" if i % 2 else "POST"}
        c.add(labels, i)
        g.set(labels, i / 7)
        h.observe(labels, i / 100)
        s.observe(labels, i)
    return [c, g, h, s]


def test_snapshot_encodes_as_the_live_metrics_did():
    metrics = populated_metrics()
    text, proto = _core.encode_text(metrics), _core.encode_protobuf(metrics)
    snap = _core.snapshot(metrics)
    assert _core.encode_text(snap) == text
    assert _core.encode_protobuf(snap) == proto


def test_snapshot_stays_as_taken_while_the_live_metrics_change():
    metrics = populated_metrics()
    c, g, h, s = metrics
    snap = _core.snapshot(metrics)
    before = _core.encode_text(snap)
    c.inc({"path": "/p1", "method": "GET"})
    g.values.clear()
    h.observe({"new": "series"}, 3)
    s.observe({"path": "/p2", "method": "GET"}, 1e9)
    del c.values[{"path": "/p3", "method": "POST"}]
    assert _core.encode_text(snap) == before
    assert _core.encode_text(metrics) != before


def test_snapshot_passes_other_objects_through():
    marker = object()
    assert _core.snapshot([marker])[0] is marker


def test_encoding_a_snapshot_lets_other_threads_run():
    """While a worker thread encodes a large snapshot, this thread gets the
    GIL again and again; encoding the live metrics holds it to the end."""
    registry = Registry()
    c = Counter("c_total", "doc", registry=registry)
    for i in range(150_000):
        c.inc({"path": f"/p{i}", "method": "GET"})
    snap = _core.snapshot([c])

    def turns_while_encoding(metrics) -> int:
        done = threading.Event()

        def encode():
            _core.encode_text(metrics)
            done.set()

        worker = threading.Thread(target=encode)
        turns = 0
        worker.start()
        time.sleep(0.0001)  # let the worker start encoding
        while not done.is_set():
            time.sleep(0.0001)
            turns += 1
        worker.join()
        return turns

    shared = turns_while_encoding(snap)
    held = turns_while_encoding([c])
    assert shared >= 10 and shared > 3 * held, (shared, held)


def test_prepared_scrape_encodes_the_registry_as_it_was_when_prepared():
    """Formatter.prepare reads the registry at once (compiled metrics by
    snapshot, Python-computed collectors through get_all) and encodes later."""
    from aioprometheus.formats.binary import BinaryFormatter
    from aioprometheus.formats.text import TextFormatter

    registry = Registry()
    c = Counter("c_total", "doc", registry=registry)
    c.inc({"k": "v"})
    calls = []

    class Computed(Gauge):
        def get_all(self):
            calls.append(1)
            return [({"at": "scrape"}, 7)]

    Computed("computed", "doc", registry=registry)
    for formatter in (TextFormatter(), BinaryFormatter()):
        expected = formatter.marshall(registry)
        job = formatter.prepare(registry)
        reads = len(calls)
        c.inc({"k": "v"})
        c.inc({"other": "series"})
        assert job() == expected
        assert len(calls) == reads  # encoding reads nothing through Python


def big_metrics(series=20_000):
    """Value arrays past the size whose blocks snapshots keep (64 KiB)."""
    registry = Registry()
    c = Counter("big_total", "doc", registry=registry)
    h = Histogram("big_seconds", "doc", buckets=[0.1, 1], registry=registry)
    s = Summary("big_bytes", "doc", registry=registry)
    for i in range(series):
        labels = {"path": f"/p{i}"}
        c.add(labels, i)
        h.observe(labels, i % 3)
        s.observe(labels, i)
    return [c, h, s]


def test_a_new_snapshot_reuses_the_arrays_of_one_done_with():
    """A snapshot's arrays go to a cache when it is dropped, and the next
    snapshot takes them (already faulted in): with the values of its own
    moment, never those left in them."""
    metrics = big_metrics()
    first = _core.snapshot(metrics)
    before = _core.encode_text(first)
    del first
    kept = _core.cached_snapshot_bytes()
    assert kept >= 20_000 * 8 * 3  # at least the counter's values and two sums
    for i in range(0, 20_000, 7):
        metrics[0].inc({"path": f"/p{i}"})
        metrics[1].observe({"path": f"/p{i}"}, 0.05)
    second = _core.snapshot(metrics)
    assert _core.cached_snapshot_bytes() < kept
    assert _core.encode_text(second) == _core.encode_text(metrics) != before


def test_a_snapshot_alive_keeps_its_arrays_while_another_is_taken():
    metrics = big_metrics()
    old = _core.snapshot(metrics)
    before = _core.encode_text(old)
    for _ in range(3):  # others come and go meanwhile, reusing each other's
        for i in range(0, 20_000, 11):
            metrics[0].inc({"path": f"/p{i}"})
        assert _core.encode_text(_core.snapshot(metrics)) == _core.encode_text(metrics)
    assert _core.encode_text(old) == before


def test_the_kept_arrays_are_bounded():
    """However many big snapshots are dropped, the cache keeps the last 64
    blocks at most (the oldest go back to the system first)."""
    histograms = []
    for _ in range(80):
        h = Histogram("h", "doc", buckets=[0.1, 1], registry=Registry())
        for i in range(2_800):  # 2,800 x 3 counts x 8 bytes: 67 KB, kept
            h.observe({"path": f"/p{i}"}, 0.5)
        histograms.append(h)
    alive = [_core.snapshot([h]) for h in histograms]  # 80 arrays at once
    del alive
    assert _core.cached_snapshot_bytes() == 64 * 2_800 * 3 * 8


def test_label_sets_are_left_out_of_garbage_collector_traversals():
    """A metric's list of label sets (flat tuples of str: never in a cycle)
    is not tracked by the garbage collector, so a full collection does not
    visit every series; also once a series is removed while a snapshot
    shares the list (a private copy is made) and after clearing."""
    import gc

    def tracked_lists_of(n):
        return [o for o in gc.get_objects() if type(o) is list and len(o) == n]

    c = Counter("gc_series_total", "doc", registry=Registry())
    for i in range(3001):
        c.inc({"path": f"/p{i}"})
    assert tracked_lists_of(3001) == []
    snap = _core.snapshot([c])
    c._remove({"path": "/p0"})  # the snapshot holds the list: copied
    assert c._series_count() == 3000 and tracked_lists_of(3000) == []
    del snap
    c._clear()
    for i in range(2999):
        c.inc({"path": f"/q{i}"})
    assert tracked_lists_of(2999) == []
    assert gc.collect() >= 0 and c.get({"path": "/q5"}) == 1
