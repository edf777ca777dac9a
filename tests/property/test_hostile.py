"""Hostile label keys, label values and numbers against the compiled core.

The core calls back into Python through a label's ``__str__``/``__hash__``/
``__eq__`` and a number's ``__float__``/``__index__``. Here that Python code
performs metric operations of its own at random points (inc/observe, delete a
series, clear, create enough series to grow the table, deregister, render
text or protobuf, raise), whose own labels are hostile in turn (two calls
deep). Whatever it does, the core must not crash, and the metrics must match
a plain-Python model: the dunders' operations apply first, then the call
itself applies fully, or raises and leaves everything as it was.

Bound series (``metric.labels(...)``), which keep their series across calls,
are updated through hostile numbers too, and from inside dunders.

A crash kills the interpreter, so the issue's reproducers also run once each
in a child process, where a segfault is reported as a failure with its stderr.
``AIOPROMETHEUS_HOSTILE_EXAMPLES`` sets the state machine's example count
(CI's sanitizer step lowers it).
"""

import enum
import math
import os
import textwrap
from collections import OrderedDict, defaultdict
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from isolated import run_isolated
from prometheus_client.parser import text_string_to_metric_families

import aioprometheus
from aioprometheus import Counter, Gauge, Histogram, Registry, Summary
from aioprometheus.formats import binary
from aioprometheus.formats.text import TextFormatter

EXAMPLES = int(os.environ.get("AIOPROMETHEUS_HOSTILE_EXAMPLES", "60"))
GROWTH = 50  # series one "grow" action creates: enough to resize the table

Key = FrozenSet[Tuple[str, str]]


class HostileError(Exception):
    """Raised on purpose from a dunder: the call must fail cleanly."""


class Trap:
    """The actions hostile dunders perform, one per dunder call, in order.

    Armed only while the state machine makes the call under test, so building
    labels, the model and the checks never trigger anything. An action's own
    hostile labels fire the next actions too, up to ``MAX_DEPTH`` calls deep.
    """

    MAX_DEPTH = 2
    armed = False
    depth = 0
    plan: List[Callable[[], None]] = []

    @classmethod
    def fire(cls) -> None:
        if not (cls.armed and cls.plan) or cls.depth >= cls.MAX_DEPTH:
            return
        action = cls.plan.pop(0)
        cls.depth += 1
        try:
            action()
        finally:
            cls.depth -= 1


class HostileStr(str):
    """A str subclass (label name or value) whose dunders run the trap."""

    def __str__(self) -> str:
        Trap.fire()
        return str.__str__(self)

    def __hash__(self) -> int:
        Trap.fire()
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        Trap.fire()
        return str.__eq__(self, other)

    __ne__ = object.__ne__


class FinalizingStr(str):
    """Text whose finalizer runs the trap when the core lets go of it."""

    def __del__(self) -> None:
        try:
            Trap.fire()
        except HostileError:
            pass  # a finalizer cannot fail the call; the plan moves on


class HostileValue:
    """A non-str label value exposing ``text``; hashes collide on purpose.

    With ``finalizing``, ``__str__`` returns a str subclass the core must
    copy and drop, so its finalizer runs metric operations mid-call.
    """

    def __init__(self, text: str, finalizing: bool = False) -> None:
        self.text = text
        self.finalizing = finalizing

    def __str__(self) -> str:
        Trap.fire()
        return FinalizingStr(self.text) if self.finalizing else self.text

    def __hash__(self) -> int:
        Trap.fire()
        return 1

    def __eq__(self, other: object) -> bool:
        Trap.fire()
        return isinstance(other, HostileValue) and other.text == self.text

    def __repr__(self) -> str:
        return f"HostileValue({self.text!r})"


class HostileEnum(enum.Enum):
    """Enum members as label values: their ``__str__`` is Python code."""

    X = "x"
    CODE = "200"

    def __str__(self) -> str:
        Trap.fire()
        return str(self.value)

    def __hash__(self) -> int:
        Trap.fire()
        return hash(self.value)


class HostileFloat:
    """A number converted through ``__float__``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        Trap.fire()
        return self.value


class HostileIndex:
    """An integer converted through ``__index__``."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        Trap.fire()
        return self.value


class LabelDict(dict):
    """A user dict subclass: must work wherever a dict does."""


class HostileDict(dict):
    """A dict subclass whose Python-level accessors run the trap."""

    def __iter__(self):
        Trap.fire()
        return dict.__iter__(self)

    def __len__(self) -> int:
        Trap.fire()
        return dict.__len__(self)

    def __getitem__(self, key: Any) -> Any:
        Trap.fire()
        return dict.__getitem__(self, key)

    def items(self):
        Trap.fire()
        return dict.items(self)

    def keys(self):
        Trap.fire()
        return dict.keys(self)


TEXTS = ["x", "200", "True", "1.0"]
PLAIN_VALUE_FOR_TEXT = {"x": "x", "200": 200, "True": True, "1.0": 1.0}


def make_value(kind: str, text: str) -> Any:
    """A label value of the given kind that exposes ``text``."""
    if kind == "str":
        return text
    if kind == "plain":
        return PLAIN_VALUE_FOR_TEXT[text]
    if kind == "hostile_str":
        return HostileStr(text)
    if kind == "enum":
        return HostileEnum(text) if text in ("x", "200") else HostileValue(text)
    return HostileValue(text, finalizing=kind == "finalizing")


def make_number(kind: str, amount: float) -> Any:
    if kind == "float":
        return HostileFloat(amount)
    if kind == "index" and amount == int(amount):
        return HostileIndex(int(amount))
    return amount


value_kinds = st.sampled_from(
    ["str", "plain", "hostile_str", "enum", "hostile", "finalizing"]
)
label_specs = st.dictionaries(
    st.sampled_from(["a", "b"]),
    st.tuples(st.booleans(), value_kinds, st.sampled_from(TEXTS)),
    max_size=2,
)
dict_types = st.sampled_from(
    [dict, OrderedDict, LabelDict, HostileDict, "defaultdict", None]
)
amounts = st.sampled_from([0.0, 1.0, 2.0, 0.5, 3.25])
number_kinds = st.sampled_from(["plain", "float", "index"])
plain_keys = st.sampled_from(
    [
        frozenset(),
        frozenset({("a", "x")}),
        frozenset({("a", "200")}),
        frozenset({("a", "200"), ("b", "True")}),
        frozenset({("grow", "7")}),
    ]
)
metric_names = st.sampled_from(["hc", "hg", "hh", "hs"])
actions = st.one_of(
    st.tuples(st.just("inc"), metric_names, label_specs, dict_types, amounts),
    st.tuples(st.just("delete"), metric_names, plain_keys),
    st.tuples(st.just("clear"), metric_names),
    st.tuples(st.just("grow"), metric_names),
    st.tuples(st.just("registration"), metric_names),
    st.tuples(st.just("bound"), st.integers(0, 7), amounts),
    st.tuples(st.sampled_from(["render_text", "render_proto", "render", "raise"])),
)


def build_labels(spec: Dict[str, tuple], dict_type: Any) -> Tuple[Any, Key]:
    """Hostile labels from a drawn spec, and the series key they expose."""
    items = []
    for name, (hostile_name, kind, text) in sorted(spec.items()):
        key = HostileStr(name) if hostile_name else name
        items.append((key, make_value(kind, text)))
    exposed = frozenset((name, text) for name, (_, _, text) in spec.items())
    if dict_type is None:
        return (None if not items else dict(items)), exposed
    if dict_type == "defaultdict":
        return defaultdict(int, items), exposed
    return dict_type(items), exposed


def merge(kind: str, old: Any, op: str, amount: float) -> Any:
    """The model's value after ``op`` on a series holding ``old``."""
    if kind in ("histogram", "summary"):
        count, total = old if old is not None else (0, 0.0)
        return (count + 1, total + amount)
    old = old or 0.0
    return {"set": amount, "inc": old + 1, "dec": old - 1, "add": old + amount}.get(
        op, old - amount
    )


OPS = {
    "counter": ["inc", "add", "set"],
    "gauge": ["set", "inc", "dec", "add", "sub"],
    "histogram": ["observe"],
    "summary": ["observe"],
}


class HostileMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        Trap.armed, Trap.depth, Trap.plan = False, 0, []
        self.registry = Registry()
        self.metrics = {
            "hc": Counter("hc", "counter", registry=self.registry),
            "hg": Gauge("hg", "gauge", registry=self.registry),
            "hh": Histogram("hh", "histogram", registry=self.registry, buckets=[1, 2]),
            "hs": Summary("hs", "summary", registry=self.registry),
        }
        self.kinds = {
            "hc": "counter",
            "hg": "gauge",
            "hh": "histogram",
            "hs": "summary",
        }
        self.model: Dict[str, Dict[Key, Any]] = {name: {} for name in self.metrics}
        self.registered = set(self.metrics)
        # (metric name, series key, metric.labels(...)) bound earlier
        self.bound: List[Tuple[str, Key, Any]] = []

    # -- the plain operations hostile dunders perform (and the model follows)

    def _apply(self, name: str, labels: Optional[dict], op: str, amount: Any) -> None:
        metric = self.metrics[name]
        if op in ("inc", "dec"):
            getattr(metric, op)(labels)
        else:
            getattr(metric, op)(labels, amount)

    def _add(self, name: str, labels: Any, key: Key, amount: float) -> None:
        op = "observe" if self.kinds[name] in ("histogram", "summary") else "add"
        self._apply(name, labels, op, amount)
        series = self.model[name]
        series[key] = merge(self.kinds[name], series.get(key), op, amount)

    def _plain_delete(self, name: str, key: Key) -> None:
        try:
            del self.metrics[name].values[dict(key)]
        except KeyError:
            assert key not in self.model[name]
        else:
            del self.model[name][key]

    def _bound_update(self, index: int, op: str, number: Any, amount: float) -> None:
        """Update a bound series; it stays bound to its labels (recreated if
        it was deleted or cleared meanwhile)."""
        if not self.bound:
            return
        name, key, series = self.bound[index % len(self.bound)]
        op = op if op in OPS[self.kinds[name]] else OPS[self.kinds[name]][0]
        if op in ("inc", "dec"):
            getattr(series, op)()
        else:
            getattr(series, op)(number)
        self.model[name][key] = merge(
            self.kinds[name], self.model[name].get(key), op, amount
        )

    def _bound_add(self, index: int, amount: float) -> None:
        self._bound_update(index, "add", amount, amount)

    def _clear(self, name: str) -> None:
        self.metrics[name].values.clear()
        self.model[name].clear()

    def _grow(self, name: str) -> None:
        for i in range(GROWTH):
            self._add(name, {"grow": str(i)}, frozenset({("grow", str(i))}), 1.0)

    def _toggle_registration(self, name: str) -> None:
        if name in self.registered:
            self.registry.deregister(name)
            self.registered.discard(name)
        else:
            self.registry.register(self.metrics[name])
            self.registered.add(name)

    def _render_any(self, how: str) -> None:
        if how == "render_text":
            self.check_text(TextFormatter().marshall(self.registry))
        elif how == "render_proto":
            self.check_protobuf(binary.BinaryFormatter().marshall(self.registry))
        else:  # what the service does per scrape: negotiate, then encode
            self.check_text(aioprometheus.render(self.registry, [])[0])
            accept = [binary.BINARY_CONTENT_TYPE]
            self.check_protobuf(aioprometheus.render(self.registry, accept)[0])

    def _action(self, drawn: tuple) -> Callable[[], None]:
        what, *args = drawn
        if what == "raise":

            def fail() -> None:
                raise HostileError("raised from a dunder")

            return fail
        handlers: Dict[str, Callable[..., None]] = {
            "inc": lambda name, spec, dict_type, amount: self._add(
                name, *build_labels(spec, dict_type), amount
            ),
            "delete": self._plain_delete,
            "clear": self._clear,
            "grow": self._grow,
            "registration": self._toggle_registration,
            "bound": self._bound_add,
        }
        if what in handlers:
            return lambda: handlers[what](*args)
        return lambda: self._render_any(what)

    def _armed_call(self, plan: List[tuple], call: Callable[[], Any]) -> Any:
        """Run ``call`` with the trap armed; HostileError means it failed."""
        Trap.plan = [self._action(drawn) for drawn in plan]
        Trap.armed = True
        try:
            return call()
        finally:
            Trap.armed, Trap.depth, Trap.plan = False, 0, []

    # -- the calls under test: labels and numbers are hostile

    @rule(
        name=metric_names,
        spec=label_specs,
        dict_type=dict_types,
        op_index=st.integers(0, 4),
        amount=amounts,
        number_kind=number_kinds,
        plan=st.lists(actions, max_size=4),
    )
    def update(self, name, spec, dict_type, op_index, amount, number_kind, plan):
        kind = self.kinds[name]
        op = OPS[kind][op_index % len(OPS[kind])]
        labels, key = build_labels(spec, dict_type)
        number = make_number(number_kind, amount)
        try:
            self._armed_call(plan, lambda: self._apply(name, labels, op, number))
        except HostileError:
            return  # failed cleanly: the model keeps only what the dunders did
        series = self.model[name]
        series[key] = merge(kind, series.get(key), op, amount)

    @rule(
        name=metric_names,
        spec=label_specs,
        dict_type=dict_types,
        plan=st.lists(actions, max_size=4),
    )
    def delete(self, name, spec, dict_type, plan):
        labels, key = build_labels(spec, dict_type)
        try:
            self._armed_call(plan, lambda: self.metrics[name]._remove(labels))
        except HostileError:
            return
        except KeyError:
            assert key not in self.model[name]
        else:
            del self.model[name][key]

    @rule(
        name=metric_names,
        spec=label_specs,
        dict_type=dict_types,
        plan=st.lists(actions, max_size=4),
    )
    def get(self, name, spec, dict_type, plan):
        labels, key = build_labels(spec, dict_type)
        try:
            got = self._armed_call(plan, lambda: self.metrics[name].get(labels))
        except HostileError:
            return
        except KeyError:
            assert key not in self.model[name]
        else:
            assert_same_value(self.kinds[name], got, self.model[name][key])

    @rule(
        name=metric_names,
        spec=label_specs,
        dict_type=dict_types,
        plan=st.lists(actions, max_size=4),
    )
    def bind(self, name, spec, dict_type, plan):
        labels, key = build_labels(spec, dict_type)
        try:
            series = self._armed_call(plan, lambda: self.metrics[name].labels(labels))
        except HostileError:
            return
        zero = (0, 0.0) if self.kinds[name] in ("histogram", "summary") else 0.0
        self.model[name].setdefault(key, zero)  # created at once
        self.bound = self.bound[-7:] + [(name, key, series)]

    @rule(
        index=st.integers(0, 7),
        op=st.sampled_from(["inc", "dec", "add", "sub", "set", "observe"]),
        amount=amounts,
        number_kind=number_kinds,
        plan=st.lists(actions, max_size=4),
    )
    def update_bound(self, index, op, amount, number_kind, plan):
        number = make_number(number_kind, amount)
        try:
            self._armed_call(
                plan, lambda: self._bound_update(index, op, number, amount)
            )
        except HostileError:
            return

    @rule(plan=st.lists(actions, min_size=1, max_size=4))
    def actions_alone(self, plan):
        for drawn in plan:
            try:
                self._action(drawn)()
            except HostileError:
                pass

    # -- every step: the metrics, the text and the protobuf agree with the model

    @invariant()
    def series_match_model(self):
        for name, metric in self.metrics.items():
            got = {}
            for labels, value in metric.get_all():
                assert all(type(v) is str for v in labels.values()), labels
                got[frozenset(labels.items())] = value
            assert got.keys() == self.model[name].keys(), name
            assert len(metric.values) == len(self.model[name])
            for key, value in got.items():
                assert_same_value(self.kinds[name], value, self.model[name][key])

    @invariant()
    def renders_match_model(self):
        self.check_text(TextFormatter().marshall(self.registry))
        self.check_protobuf(binary.BinaryFormatter().marshall(self.registry))

    def check_text(self, body: bytes) -> None:
        """The text parses and shows exactly the registered model's series."""
        seen: Dict[str, Dict[Key, float]] = {}
        for family in text_string_to_metric_families(body.decode("utf-8")):
            for sample in family.samples:
                labels = dict(sample.labels)
                labels.pop("le", None)
                labels.pop("quantile", None)
                key = frozenset(labels.items())
                counted = family.type in ("counter", "gauge")
                if counted or sample.name.endswith("_count"):
                    seen.setdefault(family.name, {})[key] = sample.value
                else:
                    seen.setdefault(family.name, {}).setdefault(key, math.nan)
        self.compare_exposed(seen)

    def check_protobuf(self, body: bytes) -> None:
        seen: Dict[str, Dict[Key, float]] = {}
        for family in binary.decode(body):
            for metric in family.metric:
                key = frozenset((p.name, p.value) for p in metric.label)
                seen.setdefault(family.name, {})[key] = protobuf_number(metric)
        self.compare_exposed(seen)

    def compare_exposed(self, seen: Dict[str, Dict[Key, float]]) -> None:
        expected = {n for n in self.registered if self.model[n]}
        assert set(seen) == expected
        for name in expected:
            assert seen[name].keys() == self.model[name].keys(), name
            for key, number in seen[name].items():
                model = self.model[name][key]
                want = model[0] if isinstance(model, tuple) else model
                assert math.isclose(number, want, abs_tol=1e-9), (name, key)


def protobuf_number(metric: Any) -> float:
    """A protobuf Metric's value, or its observation count."""
    for kind in ("histogram", "summary"):
        if metric.HasField(kind):
            return getattr(metric, kind).sample_count
    return (metric.counter if metric.HasField("counter") else metric.gauge).value


def assert_same_value(kind: str, got: Any, want: Any) -> None:
    if kind in ("histogram", "summary"):
        assert got["count"] == want[0]
        assert math.isclose(got["sum"], want[1], abs_tol=1e-9)
    else:
        assert math.isclose(got, want, abs_tol=1e-9)


HostileMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=25, deadline=None
)
TestHostile = HostileMachine.TestCase


# -- the reproducers, as plain code (run in-process and in a child) --

# The third reproducer, on a Summary and on a Counter: every value
# has hash 1 and an __eq__ that clears the metric.
EQ_CLEARS_COLLIDING = """
    from aioprometheus import {kind}, Registry

    events = []
    metric = {kind}("m", "doc", registry=Registry())

    class Colliding:
        def __str__(self):
            return "x"
        def __hash__(self):
            return 1
        def __eq__(self, other):
            metric.values.clear()
            events.append("clear")
            return True

    for labels in ({{"k": Colliding()}}, {{"k": Colliding()}}, {{"k": Colliding()}}):
        metric.{update}
        events.append("update")
    since_clear = events[::-1].index("clear") if "clear" in events else 3
    assert {count} == since_clear, events
    assert len(metric.values) == 1
"""

REPRODUCERS = {
    "eq_clears_colliding_summary": EQ_CLEARS_COLLIDING.format(
        kind="Summary",
        update="observe(labels, 1.0)",
        count='metric.get({"k": "x"})["count"]',
    ),
    "eq_clears_colliding_counter": EQ_CLEARS_COLLIDING.format(
        kind="Counter", update="inc(labels)", count='metric.get({"k": "x"})'
    ),
    "str_clears_during_text_render": """
        from prometheus_client.parser import text_string_to_metric_families
        from aioprometheus import Counter, Registry
        from aioprometheus.formats.text import TextFormatter

        registry = Registry()
        metric = Counter("c", "doc", registry=registry)

        class Clearing:
            def __str__(self):
                metric.values.clear()
                return "v"

        for i in range(20):
            metric.inc({"i": str(i)})
        metric.inc({"k": Clearing()})
        for i in range(20):
            metric.inc({"i": str(i)})
        text = TextFormatter().marshall(registry).decode()
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        exposed = {tuple(sorted(s.labels.items())): s.value for s in samples}
        assert exposed == {
            tuple(sorted(labels.items())): value for labels, value in metric.get_all()
        }
        assert len(exposed) == 21 and exposed[(("k", "v"),)] == 1
    """,
    "str_deletes_during_protobuf_render": """
        from aioprometheus import Counter, Registry
        from aioprometheus.formats.binary import BinaryFormatter, decode

        registry = Registry()
        metric = Counter("c", "doc", registry=registry)

        class Deleting:
            def __str__(self):
                for i in range(10):
                    if {"i": str(i)} in metric.values:
                        del metric.values[{"i": str(i)}]
                return "v"

        for i in range(10):
            metric.inc({"i": str(i)})
        metric.inc({"k": Deleting()})
        for i in range(10):
            metric.inc({"i": str(i)})
        for _ in range(3):
            (family,) = decode(BinaryFormatter().marshall(registry))
            assert len(family.metric) == len(metric.values) == 11
    """,
    "series_created_while_creating": """
        from aioprometheus import Gauge, Histogram, Registry

        registry = Registry()
        gauge = Gauge("g", "doc", registry=registry)
        hist = Histogram("h", "doc", registry=registry, buckets=[1])

        calls = []

        class Growing:
            def __str__(self):
                calls.append(1)
                for i in range(200):
                    gauge.set({"n": str(i)}, i)
                    hist.observe({"n": str(i)}, i)
                return "v"

        gauge.set({"k": Growing()}, 7)
        hist.observe({"k": Growing()}, 0.5)
        assert gauge.get({"k": "v"}) == 7
        assert hist.get({"k": "v"})["count"] == 1
        assert len(gauge.values) == len(hist.values) == 201
        assert all(gauge.get({"n": str(i)}) == i for i in range(200))
        assert hist.get({"n": "3"})["count"] == len(calls)
    """,
    "key_hash_changes_dict": """
        from aioprometheus import Counter, Registry

        metric = Counter("c", "doc", registry=Registry())
        armed = False

        def mutate():
            if armed:
                labels.clear()
                labels.update({"z%d" % i: "v" for i in range(30)})

        class Mutating(str):
            def __hash__(self):
                mutate()
                return str.__hash__(self)
            def __eq__(self, other):
                mutate()
                return str.__eq__(self, other)

        labels = {Mutating("a"): "1", "b": "2"}
        armed = True
        try:
            metric.inc(labels)
        except (RuntimeError, TypeError, ValueError):
            assert len(metric.values) == 0
        armed = False
        series = [frozenset(found.items()) for found, _ in metric.get_all()]
        assert series in (
            [],
            [frozenset({("a", "1"), ("b", "2")})],
            [frozenset(("z%d" % i, "v") for i in range(30))],
        ), series
    """,
    "value_str_changes_dict": """
        from aioprometheus import Counter, Registry

        metric = Counter("c", "doc", registry=Registry())

        class Mutating:
            def __str__(self):
                labels.clear()
                labels.update({"z%d" % i: Mutating() for i in range(30)})
                return "x"

        labels = {"a": Mutating(), "b": "2"}
        original = frozenset({("a", "x"), ("b", "2")})
        try:
            metric.inc(labels)
        except RuntimeError:
            assert len(metric.values) == 0
        else:
            ((found, value),) = metric.get_all()
            assert value == 1
            assert frozenset(found.items()) in (
                original,
                frozenset(("z%d" % i, "x") for i in range(30)),
            )
    """,
}


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_reproducer_in_process(name):
    exec(compile(textwrap.dedent(REPRODUCERS[name]), name, "exec"), {})


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_reproducer_in_child_process(name):
    run_isolated(REPRODUCERS[name])
