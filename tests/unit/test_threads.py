"""Threads sharing metrics: set/observe/delete/clear/render at once.

Enum and str-subclass label values make the core run Python code (their
``__str__``) in the middle of a call, where another thread can take the GIL;
``sys.setswitchinterval(1e-6)`` makes that happen constantly. Each scenario
runs for a bounded time in a child process, so a crash is a clean failure
with the child's stderr, and then checks what must still hold: the text
parses, each series' counts agree, and a series only one thread touches has
every increment that returned.
"""

import json

from isolated import run_isolated

RUN_SECONDS = 1.2  # per scenario; two scenarios keep the file under ~3 s

SCENARIO_PRELUDE = """
import enum, json, sys, threading, time
from prometheus_client.parser import text_string_to_metric_families
from aioprometheus import Counter, Gauge, Histogram, Registry, Summary
from aioprometheus.formats.binary import BinaryFormatter, decode
from aioprometheus.formats.text import TextFormatter

sys.setswitchinterval(1e-6)
DEADLINE = time.monotonic() + {seconds}
errors = []

class State(enum.Enum):
    UP = "up"
    DOWN = "down"

class Tag(str):  # its __str__ hands the GIL to another thread mid-call
    def __str__(self):
        time.sleep(0)
        return str.__str__(self)

class One:  # 1, converted by Python code that hands the GIL over too
    def __float__(self):
        time.sleep(0)
        return 1.0

def worker(body):
    def run():
        try:
            body()
        except BaseException as exc:
            errors.append(repr(exc))
    thread = threading.Thread(target=run)
    thread.start()
    return thread

def parsed(registry):
    text = TextFormatter().marshall(registry).decode()
    return list(text_string_to_metric_families(text))
"""

ISSUE_REPRODUCER = """
registry = Registry()
g = Gauge("jobs", "doc", registry=registry)

def setter():
    i = 0
    while time.monotonic() < DEADLINE:
        g.set({{"state": State.UP, "job_id": str(i)}}, 1)
        i += 1
        if i % 50 == 0:
            g.values.clear()

thread = worker(setter)
renders = 0
while time.monotonic() < DEADLINE and renders < 20000:
    TextFormatter().marshall(registry)
    renders += 1
thread.join()
families = parsed(registry)
print(json.dumps({{
    "errors": errors,
    "renders": renders,
    "series": len(g.values),
    "text_series": sum(len(f.samples) for f in families),
}}))
"""

MIXED_WORKLOAD = """
registry = Registry()
counter = Counter("events", "doc", registry=registry)
gauge = Gauge("level", "doc", registry=registry)
hist = Histogram("latency", "doc", registry=registry, buckets=[1, 2])
summ = Summary("size", "doc", registry=registry)
owned = {{}}

def own_updates(owner):  # only this thread touches the owner's series
    def body():
        n = 0
        labels = {{"owner": owner, "state": State.UP}}
        bound = counter.labels(owner=owner, state="bound")
        cleared_meanwhile = gauge.labels(owner=owner)  # churn clears gauges
        while time.monotonic() < DEADLINE:
            counter.inc(labels) if n % 2 else counter.add(labels, One())
            hist.observe(labels, One())
            summ.observe(labels, 1)
            bound.add(One())
            cleared_meanwhile.inc()
            n += 1
        owned[str(owner)] = n
    return body

def churn():
    i = 0
    while time.monotonic() < DEADLINE:
        labels = {{"churn": Tag(str(i % 97)), "state": State.DOWN}}
        counter.inc(labels)
        gauge.set(labels, i)
        hist.observe(labels, i % 3)
        summ.observe(labels, i)
        if i % 7 == 0:
            victim = {{"churn": str((i // 7) % 97), "state": State.DOWN}}
            for metric in (counter, gauge, hist, summ):
                try:
                    del metric.values[victim]
                except KeyError:
                    pass
        if i % 101 == 0:
            gauge.values.clear()
        i += 1

def render_protobuf():
    while time.monotonic() < DEADLINE:
        decode(BinaryFormatter().marshall(registry))

threads = [
    worker(own_updates(Tag("a"))),
    worker(own_updates(State.UP)),
    worker(churn),
    worker(churn),
    worker(render_protobuf),
]
renders = 0
while time.monotonic() < DEADLINE:
    if renders % 20 == 0:
        parsed(registry)
    else:
        TextFormatter().marshall(registry)
    renders += 1
for thread in threads:
    thread.join()

counts_agree = True
for family in parsed(registry):
    if family.type not in ("histogram", "summary"):
        continue
    by_series = {{}}
    for s in family.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        if s.name.endswith("_count") or s.labels.get("le") == "+Inf":
            by_series.setdefault(key, set()).add(s.value)
    counts_agree &= all(len(values) == 1 for values in by_series.values())
print(json.dumps({{
    "errors": errors,
    "renders": renders,
    "owned": owned,
    "owned_read": {{
        owner: [
            counter.get(labels),
            hist.get(labels)["count"],
            summ.get(labels)["count"],
            counter.get({{"owner": owner, "state": "bound"}}),
        ]
        for owner in owned
        for labels in [{{"owner": owner, "state": State.UP}}]
    }},
    "counts_agree": counts_agree,
    "series_agree": all(
        len(m.values) == len(m.get_all()) for m in (counter, gauge, hist, summ)
    ),
}}))
"""


def run_scenario(body: str) -> dict:
    """Run a scenario in a child process; its last stdout line is its report."""
    source = SCENARIO_PRELUDE.format(seconds=RUN_SECONDS) + body.format()
    report = json.loads(run_isolated(source).strip().splitlines()[-1])
    assert report["errors"] == []
    assert report["renders"] > 0
    return report


def test_enum_labels_set_and_cleared_while_rendering():
    """The issue's reproducer: TypeError then a segfault before the fix."""
    report = run_scenario(ISSUE_REPRODUCER)
    assert report["text_series"] == report["series"]


def test_mixed_threads_lose_no_update_and_stay_consistent():
    report = run_scenario(MIXED_WORKLOAD)
    assert set(report["owned"]) == {"a", "State.UP"}
    assert all(n > 0 for n in report["owned"].values())
    assert report["owned_read"] == {
        owner: [n, n, n, n] for owner, n in report["owned"].items()
    }
    assert report["counts_agree"]
    assert report["series_agree"]
