"""Native histograms against a plain-Python model, and their protobuf bytes.

The model follows the Prometheus native-histograms spec and client_golang's
histogram.go in plain Python (math.frexp, bisect, dicts): the bucket key of
an observation, the zero bucket, negative buckets, and the bucket-limit
strategies in client_golang's order (reset after min_reset_duration, widen
the zero bucket up to max_zero_threshold, halve the resolution). Hypothesis
drives both with observations (any double, NaN and ±Inf included) and clock
steps, over several series; every native field, count and sum must match.

The protobuf side builds the io.prometheus.client.Histogram message the model
describes with the protobuf package (spans grouped as client_golang groups
them) and compares SerializeToString() with the compiled encoder's bytes,
live and from a snapshot.
"""

import bisect
import math
import pickle
from typing import Dict, List, Optional

from hypothesis import given, settings
from hypothesis import strategies as st
from wire import varint

from aioprometheus import Histogram, Registry, _core
from aioprometheus import metrics_pb2 as pb

DBL_MAX = 1.7976931348623157e308
SCHEMAS = range(-4, 9)


def fraction_bounds(schema: int) -> List[float]:
    """The bucket bounds within [0.5, 1) of a schema >= 0."""
    return [2.0 ** (j / (1 << schema) - 1) for j in range(1 << max(schema, 0))]


BOUNDS = {s: fraction_bounds(s) for s in range(0, 9)}


def bucket_key(a: float, schema: int) -> int:
    """client_golang's key of |v| = a > 0: frexp, then the fraction's bucket."""
    if math.isinf(a):
        return bucket_key(DBL_MAX, schema) + 1
    frac, exp = math.frexp(a)
    if schema > 0:
        return bisect.bisect_left(BOUNDS[schema], frac) + (exp - 1) * (1 << schema)
    if frac == 0.5:
        exp -= 1
    return -((-exp) // (1 << -schema))  # ceil(exp / 2^-schema)


def upper_bound(key: int, schema: int) -> float:
    if schema < 0:
        exp = key * (1 << -schema)
        return DBL_MAX if exp == 1024 else math.ldexp(1.0, exp)
    frac = BOUNDS[schema][key % (1 << schema)]
    exp = key // (1 << schema) + 1
    return DBL_MAX if frac == 0.5 and exp == 1025 else math.ldexp(frac, exp)


def factor_for(schema: int) -> float:
    """A bucket factor that picks `schema` (a hair above its exact factor)."""
    return 2.0 ** (2.0**-schema) * 1.000001


class NativeModel:
    """One series: classic buckets, count, sum and native buckets."""

    def __init__(self, cfg: Dict, bounds: List[float]) -> None:
        self.cfg = cfg
        self.bounds = bounds
        self.last_reset: Optional[float] = None
        self.start(None)

    def start(self, now: Optional[float]) -> None:
        self.count = 0
        self.sum = 0.0
        self.classic = [0] * len(self.bounds)
        self.schema = self.cfg["schema"]
        self.zero_threshold = self.cfg["zero_threshold"]
        self.zero_count = 0
        self.positive: Dict[int, int] = {}
        self.negative: Dict[int, int] = {}
        self.last_reset = now
        self.scheduled = False

    def observe(self, v: float, now: float) -> None:
        if not math.isnan(v) and self.cfg["min_reset"] > 0:
            if self.last_reset is None:
                self.last_reset = now
            elif self.scheduled and now - self.last_reset >= self.cfg["min_reset"]:
                self.start(now)
        self.count_in(v)
        if math.isnan(v):
            return
        limit = self.cfg["max_buckets"]
        if limit and len(self.positive) + len(self.negative) > limit:
            self.limit(v, now)

    def count_in(self, v: float) -> None:
        self.count += 1
        self.sum += v
        self.classic[bisect.bisect_left(self.bounds, v) if v == v else -1] += 1
        if math.isnan(v):
            return
        if abs(v) <= self.zero_threshold:
            self.zero_count += 1
        else:
            side = self.positive if v > 0 else self.negative
            key = bucket_key(abs(v), self.schema)
            side[key] = side.get(key, 0) + 1

    def limit(self, v: float, now: float) -> None:
        if self.cfg["min_reset"] > 0 and not self.scheduled:
            if now - self.last_reset >= self.cfg["min_reset"]:
                self.start(now)
                self.count_in(v)
                return
            self.scheduled = True
        if not self.widen():
            self.halve()

    def widen(self) -> bool:
        if self.zero_threshold >= self.cfg["max_zero"]:
            return False
        keys = list(self.positive) + list(self.negative)
        if not keys:
            return False
        key = min(keys)
        threshold = upper_bound(key, self.schema)
        if threshold > self.cfg["max_zero"]:
            return False
        self.zero_threshold = threshold
        self.zero_count += self.positive.pop(key, 0) + self.negative.pop(key, 0)
        return True

    def halve(self) -> None:
        if self.schema == -4:
            return
        self.schema -= 1
        for side in (self.positive, self.negative):
            merged: Dict[int, int] = {}
            for key, count in side.items():
                merged[-((-key) // 2)] = merged.get(-((-key) // 2), 0) + count
            side.clear()
            side.update(merged)

    def native(self) -> Dict:
        return {
            "schema": self.schema,
            "zero_threshold": self.zero_threshold,
            "zero_count": self.zero_count,
            "positive": dict(sorted(self.positive.items())),
            "negative": dict(sorted(self.negative.items())),
        }


# -- the protobuf message the model describes ---------------------------------


def fill_side(spans, deltas, buckets: Dict[int, int]) -> None:
    """client_golang's grouping: a gap of up to two empty buckets stays in
    the span (as zero-count buckets), a longer one starts a new span."""
    previous_count = 0
    next_key = 0
    for n, key in enumerate(sorted(buckets)):
        gap = key - next_key
        if n == 0 or gap > 2:
            spans.add(offset=gap, length=0)
        else:
            for _ in range(gap):
                spans[-1].length += 1
                deltas.append(0 - previous_count)
                previous_count = 0
        spans[-1].length += 1
        deltas.append(buckets[key] - previous_count)
        previous_count = buckets[key]
        next_key = key + 1


def reference_metric(family, labels: Dict[str, str], model: NativeModel, classic: bool):
    metric = family.metric.add()
    for name in sorted(labels):
        metric.label.add(name=name, value=labels[name])
    h = metric.histogram
    h.sample_count = model.count
    h.sample_sum = model.sum
    if classic:
        running = 0
        for bound, count in zip(model.bounds, model.classic):
            running += count
            h.bucket.add(cumulative_count=running, upper_bound=bound)
    h.schema = model.schema
    h.zero_threshold = model.zero_threshold
    h.zero_count = model.zero_count
    fill_side(h.negative_span, h.negative_delta, model.negative)
    fill_side(h.positive_span, h.positive_delta, model.positive)
    if model.zero_threshold == 0 and not (
        model.zero_count or model.positive or model.negative
    ):
        h.positive_span.add(offset=0, length=0)


def reference_bytes(hist: Histogram, models: Dict[str, NativeModel], classic: bool):
    family = pb.MetricFamily(name=hist.name, help=hist.doc, type=pb.HISTOGRAM)
    for series, model in models.items():
        reference_metric(family, {"series": series}, model, classic)
    body = family.SerializeToString()
    return varint(len(body)) + body


# -- hypothesis ---------------------------------------------------------------

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.builds(
        lambda m, e, neg: (-1 if neg else 1) * math.ldexp(m, e),
        st.floats(0.5, 1.0),
        st.integers(-30, 30),
        st.booleans(),
    ),
    st.sampled_from([0.0, -0.0, 5e-324, 2.0**-128, 1.0, 2.0, 0.5, DBL_MAX, -DBL_MAX]),
)
steps = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), values, st.sampled_from([0, 0, 1, 7])),
    max_size=120,
)
configs = st.fixed_dictionaries(
    {
        "schema": st.sampled_from(SCHEMAS),
        "zero_threshold": st.sampled_from([0.0, 2.0**-128, 1e-3, 0.5]),
        "max_buckets": st.sampled_from([0, 1, 2, 5, 12]),
        "min_reset": st.sampled_from([0.0, 5.0, 20.0]),
        "max_zero": st.sampled_from([0.0, 1e-3, 1.0, 100.0]),
        "classic": st.booleans(),
    }
)


def same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def build(cfg: Dict, clock) -> Histogram:
    kwargs = {}
    if cfg["classic"]:
        kwargs["buckets"] = [-1.0, 0.0, 0.25, 1.0, 1e6]
    h = Histogram(
        "native_seconds",
        "Native.",
        registry=Registry(),
        native_histogram_bucket_factor=factor_for(cfg["schema"]),
        native_histogram_zero_threshold=cfg["zero_threshold"],
        native_histogram_max_bucket_number=cfg["max_buckets"],
        native_histogram_min_reset_duration=cfg["min_reset"],
        native_histogram_max_zero_threshold=cfg["max_zero"],
        **kwargs,
    )
    h._set_native_clock(clock)
    return h


@settings(max_examples=300, deadline=None)
@given(configs, steps)
def test_native_histogram_matches_model(cfg, ops):
    clock = _core.ManualClock(1000.0)
    h = build(cfg, clock)
    assert h.upper_bounds == ([-1.0, 0.0, 0.25, 1.0, 1e6] if cfg["classic"] else []) + [
        math.inf
    ]
    bounds = h.upper_bounds
    models: Dict[str, NativeModel] = {}
    for series, v, tick in ops:
        clock.advance(tick)
        if series == "c":  # the bound-series path
            h.labels(series=series).observe(v)
        else:
            h.observe({"series": series}, v)
        models.setdefault(series, NativeModel(cfg, bounds)).observe(v, clock.seconds)
    for series, model in models.items():
        assert h.get_native({"series": series}) == model.native()
        got = h.get({"series": series})
        assert got["count"] == model.count
        assert same_float(got["sum"], model.sum)
        if cfg["classic"]:
            running = 0
            for bound, count in zip(bounds, model.classic):
                running += count
                assert got[bound] == running

    for series, model in models.items():
        # which NaN payload a sum of two NaNs keeps is up to the C compiler
        if math.isnan(model.sum):
            model.sum = h.get({"series": series})["sum"]
    expected = reference_bytes(h, models, cfg["classic"])
    assert _core.encode_protobuf([h]) == expected
    assert _core.encode_protobuf(_core.snapshot([h])) == expected
    copy = pickle.loads(pickle.dumps(h))
    assert _core.encode_protobuf([copy]) == expected


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SCHEMAS), st.lists(values, max_size=60))
def test_bucket_keys_match_frexp_model(schema, observed):
    h = Histogram(
        "keys",
        "",
        registry=Registry(),
        native_histogram_bucket_factor=factor_for(schema),
        native_histogram_zero_threshold=0,
    )
    model = NativeModel(
        {
            "schema": schema,
            "zero_threshold": 0.0,
            "max_buckets": 0,
            "min_reset": 0.0,
            "max_zero": 0.0,
        },
        [math.inf],
    )
    for v in observed:
        h.observe({}, v)
        model.observe(v, 0.0)
    if observed:
        assert h.get_native({}) == model.native()


def test_keys_at_every_bound_and_its_neighbours():
    """Each schema's bounds (times powers of two, subnormal to the largest
    double) and the doubles either side land where the frexp model says."""
    for schema in SCHEMAS:
        h = Histogram(
            "edges",
            "",
            registry=Registry(),
            native_histogram_bucket_factor=factor_for(schema),
            native_histogram_zero_threshold=0,
        )
        points = [
            math.ldexp(b, e)
            for b in BOUNDS[max(schema, 0)]
            for e in (-1073, -1022, -60, -1, 0, 1, 77, 1024)
        ]
        points += [math.nextafter(p, 0) for p in points]
        points += [math.nextafter(p, math.inf) for p in points]
        points = sorted({p for p in points if 0 < p < math.inf} | {5e-324, DBL_MAX})
        for i, p in enumerate(points):
            h.observe({"i": str(i)}, p)
            assert h.get_native({"i": str(i)})["positive"] == {bucket_key(p, schema): 1}


def test_pick_schema_is_the_largest_schema_within_the_factor():
    for schema in SCHEMAS:
        assert _core.pick_schema(factor_for(schema)) == schema
    assert _core.pick_schema(1.1) == 3  # 2^(1/8) = 1.0905 <= 1.1 < 2^(1/4)
    assert _core.pick_schema(1.0001) == 8  # finer than schema 8 allows
    assert _core.pick_schema(1e9) == -4
