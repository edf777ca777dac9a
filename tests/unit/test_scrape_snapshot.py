"""Snapshots share the live metric's list of label sets (taking one copies
only the values); the live metric must copy that list before changing it
other than by appending, while any snapshot holds it."""

from aioprometheus import Counter, Histogram, Registry, _core


def filled(n=2000):
    registry = Registry()
    c = Counter("c_total", "doc", registry=registry)
    h = Histogram("h", "doc", buckets=[1, 2], registry=registry)
    for i in range(n):
        c.add({"path": f"/p{i}"}, i)
        h.observe({"path": f"/p{i}"}, i % 3)
    return c, h


def test_removals_and_clears_after_a_snapshot_leave_it_as_taken():
    c, h = filled()
    snap = _core.snapshot([c, h])
    before = _core.encode_text(snap)
    for i in range(0, 2000, 3):
        del c.values[{"path": f"/p{i}"}]
    for i in range(5000, 5100):
        c.inc({"path": f"/p{i}"})
    h.values.clear()
    h.observe({"path": "/new"}, 1)
    assert _core.encode_text(snap) == before
    assert _core.encode_text([c, h]) != before


def test_a_snapshot_taken_by_a_label_str_during_a_removal_stays_as_taken():
    """The removal's lookup runs Python code (a label's __str__) that takes
    a snapshot; the removal then must not change what that snapshot sees."""
    c, _ = filled(300)
    taken = []

    class Sneaky:
        def __str__(self):
            if not taken:
                taken.append(_core.snapshot([c]))
                taken.append(_core.encode_text(taken[0]))
            return "/p7"

    del c.values[{"path": Sneaky()}]
    snap, text_then = taken
    assert _core.encode_text(snap) == text_then
    assert b'path="/p7"' in text_then
    assert b'path="/p7"' not in _core.encode_text([c])


def test_snapshots_of_snapshots_and_repeated_snapshots_agree():
    c, h = filled(500)
    first = _core.snapshot([c, h])
    second = _core.snapshot(first)
    del c.values[{"path": "/p1"}]
    third = _core.snapshot([c, h])
    assert _core.encode_text(second) == _core.encode_text(first)
    assert _core.encode_text(third) == _core.encode_text([c, h])
    assert _core.encode_text(third) != _core.encode_text(first)
