"""Real Prometheus (started with --enable-feature=native-histograms) scrapes an
aioprometheus Service serving native histograms over protobuf, and its PromQL
gives back what was observed.

Three data sets of 10,000 observations each: lognormal latencies, values
spanning 1e-6 to 1e6, and a mix of negative, zero and positive values. For
each, ``histogram_count`` and ``histogram_sum`` equal the exact count and sum,
and ``histogram_quantile`` at 0.5, 0.9 and 0.99 (and 0.1) lies within the bucket width
of the exact quantile: both are in the same bucket (lo, lo * base], so their
ratio is at most base = 2^(2^-schema). A histogram forced past its bucket
limit (it halves its resolution) still reports the exact count and sum, and
quantiles within its final, coarser bucket width.
"""

import math
import random
from typing import Dict, List

import servers

from aioprometheus import Histogram, Registry
from aioprometheus.formats.binary import BINARY_CONTENT_TYPE

NATIVE_HISTOGRAMS = "--enable-feature=native-histograms"
N = 10_000
QUANTILES = (0.1, 0.5, 0.9, 0.99)  # 0.1: a negative quantile of the mix


def data_sets() -> Dict[str, List[float]]:
    rnd = random.Random(20261125)
    lognormal = [rnd.lognormvariate(-3.0, 1.0) for _ in range(N)]
    spanning = [10.0 ** rnd.uniform(-6.0, 6.0) for _ in range(N)]
    mixed = [
        rnd.choice((-1.0, 0.0, 0.0, 1.0, 1.0)) * rnd.lognormvariate(0.0, 2.0)
        for _ in range(N)
    ]
    return {"lognormal": lognormal, "spanning": spanning, "mixed": mixed}


def exact_quantile(values: List[float], q: float) -> float:
    """The observation of rank ceil(q * n), as the bucket search finds it."""
    ordered = sorted(values)
    return ordered[math.ceil(q * len(ordered)) - 1]


def scalar(prom, promql: str) -> float:
    result = servers.wait_for_query(prom, promql)
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def assert_within_bucket(got: float, exact: float, base: float, zero_threshold: float):
    if abs(exact) <= zero_threshold:
        assert abs(got) <= zero_threshold, (got, exact)
        return
    assert math.copysign(1.0, got) == math.copysign(1.0, exact), (got, exact)
    assert abs(math.log(got / exact)) <= math.log(base) * (1 + 1e-9), (got, exact, base)


def test_prometheus_ingests_native_histograms(
    prometheus_factory, service_thread_factory
):
    r = Registry()
    data = data_sets()
    histograms = {
        name: Histogram(
            f"native_{name}",
            f"{name} data.",
            registry=r,
            native_histogram_bucket_factor=1.1,
        )
        for name in data
    }
    limited = Histogram(
        "native_limited",
        "Spanning data past a bucket limit of 20.",
        registry=r,
        native_histogram_bucket_factor=1.1,
        native_histogram_max_bucket_number=20,
    )
    for name, values in data.items():
        for v in values:
            histograms[name].observe({"set": name}, v)
    for v in data["spanning"]:
        limited.observe({"set": "spanning"}, v)
    assert limited.get_native({"set": "spanning"})["schema"] < 3  # resolution dropped

    svc = service_thread_factory(r)
    prom = prometheus_factory([svc.address], extra_flags=[NATIVE_HISTOGRAMS])
    servers.wait_for_query(
        prom, f"histogram_count(native_limited) == {N}", lambda res: len(res) == 1
    )
    assert any(s.content_type == BINARY_CONTENT_TYPE for s in svc.scrapes)

    cases = [(histograms[name], values) for name, values in data.items()]
    cases.append((limited, data["spanning"]))
    for hist, values in cases:
        labels = next(iter(hist.get_all()))[0]
        state = hist.get_native(labels)
        base = 2.0 ** (2.0 ** -state["schema"])
        assert scalar(prom, f"histogram_count({hist.name})") == N
        total = 0.0
        for v in values:  # the order the histogram added them in
            total += v
        assert scalar(prom, f"histogram_sum({hist.name})") == total
        for q in QUANTILES:
            got = scalar(prom, f"histogram_quantile({q}, {hist.name})")
            assert_within_bucket(
                got, exact_quantile(values, q), base, state["zero_threshold"]
            )
