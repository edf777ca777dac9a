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
