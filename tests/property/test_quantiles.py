"""Rank-error tests for the compiled Summary quantile estimator.

Every check compares against EXACT ranks computed in plain Python (a sorted
copy of the stream and ``bisect``), never against another estimator.

The guarantee under test (see ``QuantileEstimator.__doc__``): with
``eps = min(eps_i)`` of the invariants and ``n`` inserted (non-NaN) values,
``query(phi)`` returns an observation whose rank lies within ``eps*n`` of
``phi*n`` whenever some rank 1..n does, else the observation whose rank is
nearest to ``phi*n``.  Because duplicates share a value, a value's ranks form
a range; the test accepts the value when that range meets the allowed ranks.
"""

from __future__ import annotations

import bisect
import math
import random
import sys
from typing import Iterable, List, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioprometheus._core import QuantileEstimator

DEFAULT = ((0.50, 0.05), (0.90, 0.01), (0.99, 0.001))
CUSTOM = (
    ((0.1, 0.02), (0.25, 0.005), (0.75, 0.005)),
    ((0.0, 0.01), (1.0, 0.01), (0.5, 0.01)),
    ((0.5, 0.2),),
    ((0.999, 0.0005), (0.001, 0.0005)),
)
PHIS = [i / 200 for i in range(201)] + [0.001, 0.01, 0.99, 0.999]

# Measured stored_samples (GK summary tuples, 24 bytes each) with the default
# invariants (eps_min = 0.001), random.Random(1) uniform values:
#   n          random  ascending  descending  converging*  pareto
#   10_000        852        651         651         1400     847
#   100_000       751        695         689         2610     755
#   1_000_000     719        952         695         3806     730
# (* values alternately from the bottom and top ends moving inwards, so every
# value lands in the middle of what was seen: GK's hard case, growing with
# log n.)  With eps_min = 0.01 the counts are 56..490.  Bound asserted below:
# min(n/10, log2(2*eps*n)/eps), about 3x above the worst measured count.


# ---------------------------------------------------------------- reference


def rank_range(sorted_values: Sequence[float], v: float) -> Tuple[int, int]:
    """1-based ranks occupied by value v in the sorted stream (exact)."""
    lo = bisect.bisect_left(sorted_values, v) + 1
    hi = bisect.bisect_right(sorted_values, v)
    assert lo <= hi, f"{v!r} is not an observed value"
    return lo, hi


def allowed_ranks(n: int, phi: float, eps: float) -> Tuple[float, float]:
    """Ranks a correct answer may have: within eps*n of phi*n, or, if no
    rank 1..n is, the rank(s) nearest to phi*n."""
    t = phi * n
    slack = 1e-9 * n  # floating-point rounding of phi*n and eps*n
    lo = max(1, math.ceil(t - eps * n - slack))
    hi = min(n, math.floor(t + eps * n + slack))
    if lo <= hi:
        return lo, hi
    cands = [k for k in (math.floor(t), math.ceil(t), 1, n) if 1 <= k <= n]
    best = min(abs(k - t) for k in cands)
    near = [k for k in cands if abs(k - t) == best]
    return min(near), max(near)


def check_query(
    est: QuantileEstimator, sorted_values: Sequence[float], phi: float, eps: float
) -> None:
    n = len(sorted_values)
    v = est.query(phi)
    lo, hi = rank_range(sorted_values, v)
    a, b = allowed_ranks(n, phi, eps)
    assert lo <= b and a <= hi, (
        f"phi={phi} eps={eps} n={n}: value {v!r} has ranks [{lo}, {hi}], "
        f"allowed [{a}, {b}] (phi*n={phi * n})"
    )


def check_estimator(
    est: QuantileEstimator,
    values: Iterable[float],
    invariants: Sequence[Tuple[float, float]],
    all_phis: bool = True,
) -> None:
    """Invariant queries with their own eps, every phi in PHIS with eps_min,
    plus the summary's internal rank bounds against exact ranks."""
    s = sorted(x for x in values if not math.isnan(x))
    n = len(s)
    assert est.inserted == n
    if n == 0:
        for phi, _ in invariants:
            assert math.isnan(est.query(phi))
        return
    for phi, eps in invariants:
        check_query(est, s, phi, eps)
    eps_min = min(e for _, e in invariants)
    if all_phis:
        for phi in PHIS:
            check_query(est, s, phi, eps_min)
    check_summary(est, s, eps_min)


def check_summary(est: QuantileEstimator, s: Sequence[float], eps: float) -> None:
    """The proof's invariants, checked on the stored tuples:
    I1 every stored value can sit at a rank in [rmin, rmax];
    I2 the minimum and maximum are stored with exact ranks 1 and n;
    I3 rmax_i - rmin_(i-1) <= max(1, 2*eps*n)."""
    n = len(s)
    summary = est._debug_summary()
    assert len(summary) == est.stored_samples
    assert summary[0] == (s[0], 1, 1)
    assert summary[-1] == (s[-1], n, n)
    limit = max(1.0, 2 * eps * n)
    prev_rmin = 0
    prev_v = -math.inf
    for v, rmin, rmax in summary:
        assert v >= prev_v
        assert prev_rmin < rmin <= rmax <= n
        assert rmax - prev_rmin <= limit
        lo, hi = rank_range(s, v)
        assert lo <= rmax and rmin <= hi, (v, lo, hi, rmin, rmax)
        prev_rmin, prev_v = rmin, v


def fed(values: Iterable[float], invariants=DEFAULT) -> QuantileEstimator:
    est = QuantileEstimator(invariants)
    for x in values:
        est.observe(x)
    return est


# ------------------------------------------------------------------ streams


def _streams(n: int, seed: int) -> List[Tuple[str, List[float]]]:
    rng = random.Random(seed)
    base = [rng.random() for _ in range(n)]
    half = n // 2
    return [
        ("random", base),
        ("ascending", sorted(base)),
        ("descending", sorted(base, reverse=True)),
        ("constant", [3.25] * n),
        ("pareto", [rng.paretovariate(1.0) for _ in range(n)]),
        (
            "bimodal",
            [
                rng.gauss(0.0, 1.0) if rng.random() < 0.7 else rng.gauss(100, 5)
                for _ in range(n)
            ],
        ),
        ("duplicates", [float(rng.randrange(10)) for _ in range(n)]),
        # inserts always land in the middle of what was seen so far
        ("converging", [float(i // 2 if i % 2 else n - i // 2) for i in range(n)]),
        ("zigzag", [float(i if i % 2 else -i) for i in range(n)]),
        # ascending runs that restart: each merge batch hits old territory
        ("sawtooth", [float((i * 7919) % 5003) for i in range(n)]),
        ("desc-runs", [float(-(i % 3000) + 10 * (i // 3000)) for i in range(n)]),
        (
            "with-infinities",
            [
                math.inf if i % 97 == 0 else -math.inf if i % 89 == 0 else x
                for i, x in enumerate(base[:half] + sorted(base[half:]))
            ],
        ),
    ]


STREAMS_100K = _streams(100_000, seed=7)


@pytest.mark.parametrize("name,values", STREAMS_100K, ids=[s[0] for s in STREAMS_100K])
def test_default_invariants_100k(name, values):
    est = fed(values)
    check_estimator(est, values, DEFAULT)


@pytest.mark.parametrize("invariants", CUSTOM, ids=str)
@pytest.mark.parametrize(
    "name,values", STREAMS_100K[:8], ids=[s[0] for s in STREAMS_100K[:8]]
)
def test_custom_invariants_30k(name, values, invariants):
    values = values[:30_000]
    est = fed(values, invariants)
    check_estimator(est, values, invariants)


@pytest.mark.parametrize("name,values", _streams(20_000, seed=11), ids=lambda x: "")
def test_tiny_eps_is_still_bounded(name, values):
    invariants = ((0.5, 0.0001), (0.99, 0.00002))
    est = fed(values, invariants)
    check_estimator(est, values, invariants, all_phis=False)


def test_uniform_p99_rank():
    """The case aioprometheus 23.12 gets wrong (its p99 lands at rank ~0.984)."""
    rng = random.Random(2023)
    values = [rng.random() for _ in range(100_000)]
    est = fed(values)
    s = sorted(values)
    lo, hi = rank_range(s, est.query(0.99))
    assert abs(lo / len(s) - 0.99) <= 0.001


@pytest.mark.parametrize("n", list(range(1, 40)) + [99, 100, 101, 499, 500, 501])
def test_small_streams_every_phi(n):
    """Small n: 2*eps*n < 1 for eps=0.001, the summary must be exact."""
    rng = random.Random(n)
    for values in ([rng.random() for _ in range(n)], list(range(n, 0, -1))):
        values = [float(v) for v in values]
        est = fed(values)
        check_estimator(est, values, DEFAULT)
        if n <= 500:
            assert est.stored_samples == n


# ------------------------------------------------------------------ memory


@pytest.mark.parametrize("name,values", STREAMS_100K, ids=[s[0] for s in STREAMS_100K])
def test_stored_samples_far_below_n(name, values):
    est = fed(values)
    n = len(values)
    stored = est.stored_samples
    assert stored < n / 10
    # O((1/eps) * log(eps*n)) growth; measured counts are in the table on top
    assert stored <= math.log2(2 * 0.001 * n) / 0.001


def test_stored_samples_do_not_grow_with_n():
    rng = random.Random(5)
    est = QuantileEstimator()
    sizes = []
    for _ in range(4):
        for _ in range(50_000):
            est.observe(rng.random())
        sizes.append(est.stored_samples)
    # n went 50k -> 200k; the summary stays about the same size
    assert max(sizes) < 2 * min(sizes)


def test_few_values_small_summary():
    empty = QuantileEstimator()
    est = fed([1.0, 2.0, 3.0])
    assert est.stored_samples == 3
    assert est.inserted == 3
    # the buffer starts small and grows lazily (16 doubles, then x4)
    assert sys.getsizeof(est) - sys.getsizeof(empty) < 512


def test_memory_after_many_values_is_modest():
    rng = random.Random(8)
    est = fed(rng.random() for _ in range(100_000))
    # ~720 tuples of 24 bytes + a 2048-double buffer (+ merge room)
    assert sys.getsizeof(est) < 128 * 1024


# ----------------------------------------------------- hypothesis properties

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
any_value = st.one_of(
    finite,
    st.sampled_from([math.inf, -math.inf, math.nan, 0.0, -0.0, 1.0]),
    st.integers(-5, 5).map(float),
)


@st.composite
def invariant_sets(draw):
    phis = draw(
        st.lists(
            st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=4, unique=True
        )
    )
    return tuple((p, draw(st.floats(0.0005, 0.5))) for p in phis)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(any_value, max_size=300), invariants=invariant_sets())
def test_hypothesis_small_streams(values, invariants):
    est = fed(values, invariants)
    check_estimator(est, values, invariants)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1000, 12_000),
    shape=st.sampled_from(["random", "asc", "desc", "dups", "runs"]),
    invariants=st.one_of(st.just(DEFAULT), invariant_sets()),
)
def test_hypothesis_larger_streams(seed, n, shape, invariants):
    rng = random.Random(seed)
    if shape == "dups":
        values = [float(rng.randrange(rng.randrange(1, 50))) for _ in range(n)]
    else:
        values = [rng.lognormvariate(0, 2) for _ in range(n)]
        if shape == "asc":
            values.sort()
        elif shape == "desc":
            values.sort(reverse=True)
        elif shape == "runs":
            run = rng.randrange(10, 5000)
            values = [x for i in range(0, n, run) for x in sorted(values[i : i + run])]
    est = fed(values, invariants)
    check_estimator(est, values, invariants, all_phis=False)


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.lists(any_value, max_size=3000), min_size=1, max_size=6),
    phi=st.floats(0.0, 1.0),
)
def test_hypothesis_queries_interleaved_with_inserts(chunks, phi):
    est = QuantileEstimator(DEFAULT)
    seen: List[float] = []
    for chunk in chunks:
        for x in chunk:
            est.observe(x)
        seen.extend(chunk)
        s = sorted(x for x in seen if not math.isnan(x))
        if s:
            check_query(est, s, phi, 0.001)
            first = est.query(phi)
            assert est.query(phi) == first or (math.isnan(first))
        else:
            assert math.isnan(est.query(phi))
    check_estimator(est, seen, DEFAULT)


# ----------------------------------------------------------- special values


def test_empty_query_is_nan():
    est = QuantileEstimator()
    for phi in (0.0, 0.5, 0.9, 0.99, 1.0):
        assert math.isnan(est.query(phi))
    assert est.stored_samples == 0
    assert est.inserted == 0


def test_nan_is_not_inserted():
    est = QuantileEstimator()
    est.observe(math.nan)
    assert est.inserted == 0
    assert math.isnan(est.query(0.5))
    for x in (1.0, math.nan, 2.0, math.nan, 3.0):
        est.observe(x)
    assert est.inserted == 3
    assert est.query(0.5) == 2.0
    assert est.query(0.0) == 1.0
    assert est.query(1.0) == 3.0


def test_infinities_are_ordinary_extremes():
    rng = random.Random(3)
    values = [rng.random() for _ in range(10_000)]
    values[100] = math.inf
    values[5000] = -math.inf
    est = fed(values)
    assert est.query(1.0) == math.inf
    assert est.query(0.0) == -math.inf
    assert math.isfinite(est.query(0.5))
    check_estimator(est, values, DEFAULT)


def test_only_infinities():
    est = fed([math.inf] * 3000 + [-math.inf] * 1000)
    assert est.query(0.0) == -math.inf
    assert est.query(0.1) == -math.inf
    assert est.query(0.5) == math.inf
    assert est.query(1.0) == math.inf


def test_signed_zero_and_huge_values():
    values = [
        -0.0,
        0.0,
        5e-324,
        -5e-324,
        1.7976931348623157e308,
        -1.7976931348623157e308,
    ]
    est = fed(values * 1000)
    check_estimator(est, values * 1000, DEFAULT)


def test_query_flushes_and_reset():
    est = QuantileEstimator(((0.5, 0.01),))
    for i in range(10):
        est.observe(float(i))
    assert est.query(0.0) == 0.0
    est.observe(-1.0)  # buffered, must be visible to the next query
    assert est.query(0.0) == -1.0
    assert est.stored_samples == 11
    est.reset()
    assert math.isnan(est.query(0.5))
    assert est.inserted == 0
    est.observe(7.0)
    assert est.query(0.5) == 7.0


# --------------------------------------------------------------- validation


def test_default_and_normalised_invariants():
    assert QuantileEstimator().invariants == DEFAULT
    est = QuantileEstimator([[0.5, 0.05], (1, 0.5)])
    assert est.invariants == ((0.5, 0.05), (1.0, 0.5))
    assert all(type(x) is float for pair in est.invariants for x in pair)
    assert est.eps == 0.05


@pytest.mark.parametrize(
    "invariants",
    [
        [],
        (),
        None,
        5,
        "ab",
        [(0.5,)],
        [(0.5, 0.01, 0.1)],
        [0.5],
        [(1.5, 0.01)],
        [(-0.1, 0.01)],
        [(math.nan, 0.01)],
        [(math.inf, 0.01)],
        [(0.5, 0.0)],
        [(0.5, 1.0)],
        [(0.5, -0.1)],
        [(0.5, math.nan)],
        [("x", 0.1)],
        [(0.5, None)],
        [(True, 0.1)],
        [(0.5, 0.05), (0.5, 0.01)],
    ],
    ids=repr,
)
def test_invalid_invariants_raise_value_error(invariants):
    with pytest.raises(ValueError):
        QuantileEstimator(invariants)


@pytest.mark.parametrize("phi", [-0.01, 1.01, math.nan, math.inf, -math.inf])
def test_invalid_query_phi_raises(phi):
    est = fed([1.0, 2.0])
    with pytest.raises(ValueError):
        est.query(phi)
    assert est.query(1.0) == 2.0  # estimator unchanged


def test_observe_rejects_non_numbers_without_changing_state():
    est = fed([1.0])
    with pytest.raises(TypeError):
        est.observe("3")
    with pytest.raises(TypeError):
        est.observe(None)
    assert est.inserted == 1
