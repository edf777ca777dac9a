"""Draw docs/_static/runtime-collectors.png: what the runtime collectors show
of a real asyncio service, as a Grafana dashboard would draw it.

It runs ``register_default_collectors`` in this process, with a small service
on the event loop: request tasks arriving at a varying rate, each allocating
(so the garbage collector runs) and sleeping; and, from a third of the way
in, a handler that blocks the loop with a synchronous 30-150 ms call every
couple of seconds, the bug the loop-lag histogram exists to catch. Every
``--step`` seconds it reads the registry as a scrape does (refresh hooks
included) and keeps the values, then plots the rates and quantiles Prometheus
would compute from them (``rate()``, ``histogram_quantile()``).

Regenerate (needs matplotlib: ``pip install matplotlib`` or the ``bench``
extra), from the checkout, its core built::

    python docs/figures/runtime_collectors.py --seconds 90 \\
        --output docs/_static/runtime-collectors.png

``tests/unit/test_docs_figures.py`` runs a short collection (and the plot,
where matplotlib is installed).
"""

import argparse
import asyncio
import math
import random
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from aioprometheus import Registry
from aioprometheus.runtime import register_default_collectors

Sample = Dict[str, Any]


def read(registry: Registry) -> Sample:
    """One scrape's worth of values: {metric name: [(labels, value), ...]}."""
    return {
        collector.name: collector.get_all()
        for collector in registry.sorted_collectors()
    }


async def _service(stop_at: float, block_from: float, blocking_share: float) -> None:
    """Requests at a rate that rises and falls; after `block_from`, that
    share of the handlers blocks the loop."""
    loop = asyncio.get_running_loop()
    pending = set()
    started = loop.time()

    async def handle(blocking: bool) -> None:
        garbage = [{"i": i, "self": None} for i in range(500)]
        for item in garbage:
            item["self"] = item  # cycles: the collector has work to do
        if blocking:
            time.sleep(random.uniform(0.03, 0.15))  # the bug: sync I/O on the loop
        await asyncio.sleep(random.uniform(0.05, 0.5))

    while loop.time() < stop_at:
        elapsed = loop.time() - started
        rate = 40 + 30 * (1 + math.sin(elapsed / 8))  # requests/s
        blocking = loop.time() >= block_from and random.random() < blocking_share
        task = loop.create_task(handle(blocking))
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(random.expovariate(rate))
    await asyncio.gather(*pending)


async def collect_async(
    seconds: float, step: float, blocking_share: float
) -> List[Tuple[float, Sample]]:
    registry = Registry()
    collectors = register_default_collectors(registry, loop_probe_period=0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    service = loop.create_task(
        _service(start + seconds, start + seconds / 3, blocking_share)
    )
    samples = []
    try:
        while not service.done():
            samples.append((loop.time() - start, read(registry)))
            await asyncio.sleep(step)
        await service
        samples.append((loop.time() - start, read(registry)))
    finally:
        collectors[-1].close()  # the event-loop probe
    return samples


def collect(
    seconds: float = 90.0, step: float = 1.0, blocking_share: float = 0.02
) -> List[Tuple[float, Sample]]:
    """Run the service for `seconds`, reading the registry every `step`;
    from a third of the way in, `blocking_share` of the requests block."""
    return asyncio.run(collect_async(seconds, step, blocking_share))


def value(sample: Sample, name: str, **labels: str) -> float:
    """The sum of `name`'s series whose labels include `labels`."""
    return sum(
        v
        for series, v in sample.get(name, [])
        if all(series.get(k) == w for k, w in labels.items())
        and not isinstance(v, dict)
    )


def rate(times: Sequence[float], values: Sequence[float]) -> List[float]:
    return [
        (values[i] - values[i - 1]) / (times[i] - times[i - 1])
        for i in range(1, len(times))
    ]


def lag_quantile(
    before: Sample,
    after: Sample,
    q: float,
    name: str = "python_asyncio_loop_lag_seconds",
) -> Optional[float]:
    """histogram_quantile(q, increase over the interval), as PromQL computes
    it: linear within the bucket, from the buckets' cumulative counts."""

    def buckets(sample: Sample) -> Dict[float, float]:
        rows = sample.get(name) or [({}, {})]  # no probe observed yet
        return {b: c for b, c in rows[0][1].items() if isinstance(b, float)}

    old, new = buckets(before), buckets(after)
    bounds = sorted(new)
    increase = [new[b] - old.get(b, 0) for b in bounds]
    if not increase or increase[-1] <= 0:
        return None
    rank = q * increase[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, increase):
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def series(samples: List[Tuple[float, Sample]]) -> Dict[str, Any]:
    """The dashboard's lines, one value per interval between two reads."""
    times = [t for t, _ in samples]
    mid = times[1:]
    cpu = [value(s, "process_cpu_seconds_total") for _, s in samples]
    gcs = [value(s, "python_gc_collections_total") for _, s in samples]
    return {
        "t": mid,
        "cpu": rate(times, cpu) if cpu[-1] else [],
        "rss_mib": [
            value(s, "process_resident_memory_bytes") / 2**20 for _, s in samples[1:]
        ],
        "tasks": [value(s, "python_asyncio_tasks") for _, s in samples[1:]],
        "gc_per_s": rate(times, gcs),
        "lag_p50": [
            lag_quantile(a, b, 0.5) for (_, a), (_, b) in zip(samples, samples[1:])
        ],
        "lag_p99": [
            lag_quantile(a, b, 0.99) for (_, a), (_, b) in zip(samples, samples[1:])
        ],
    }


def plot(lines: Dict[str, Any], output: str, marker: Optional[float] = None) -> None:
    """Draw the dashboard; `marker`: when the blocking handler came in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panel, text, grid = "#181b1f", "#ccccdc", "#2c3235"
    fig, axes = plt.subplots(2, 2, figsize=(12, 6.5), facecolor="#111217")
    t = lines["t"]

    def ms(values):
        return [v * 1000 if v is not None else float("nan") for v in values]

    panels = [
        (
            "Event loop lag  (histogram_quantile over python_asyncio_loop_lag_seconds)",
            "ms",
            [
                ("p50", ms(lines["lag_p50"]), "#73bf69"),
                ("p99", ms(lines["lag_p99"]), "#f2495c"),
            ],
        ),
        (
            "Tasks  (python_asyncio_tasks)",
            "tasks",
            [("unfinished tasks", lines["tasks"], "#5794f2")],
        ),
        (
            "CPU  (rate(process_cpu_seconds_total))"
            "  and GC  (rate(python_gc_collections_total))",
            "cores / collections per s",
            [
                ("CPU, cores", lines["cpu"], "#ff9830"),
                (
                    "GC collections/s / 100",
                    [g / 100 for g in lines["gc_per_s"]],
                    "#b877d9",
                ),
            ],
        ),
        (
            "Memory  (process_resident_memory_bytes)",
            "MiB",
            [("resident", lines["rss_mib"], "#fade2a")],
        ),
    ]
    for ax, (title, unit, plotted) in zip(axes.flat, panels):
        ax.set_facecolor(panel)
        for label, values, color in plotted:
            if values:
                ax.plot(t[: len(values)], values, label=label, color=color, lw=1.4)
        ax.set_title(title, color=text, fontsize=9, loc="left")
        ax.set_ylabel(unit, color=text, fontsize=8)
        ax.set_xlabel("seconds", color=text, fontsize=8)
        ax.tick_params(colors=text, labelsize=7)
        ax.grid(color=grid, lw=0.6)
        for spine in ax.spines.values():
            spine.set_color(grid)
        ax.legend(fontsize=7, facecolor=panel, edgecolor=grid, labelcolor=text)
        ax.set_ylim(bottom=0)
        if marker is not None:
            ax.axvline(marker, color="#8e8e8e", lw=0.8, ls="--")
    if marker is not None:
        axes[0][0].annotate(
            " a handler starts blocking the loop",
            (marker, axes[0][0].get_ylim()[1] * 0.92),
            color=text,
            fontsize=7,
        )
    fig.tight_layout()
    fig.savefig(output, dpi=100, facecolor=fig.get_facecolor())
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--step", type=float, default=1.0)
    parser.add_argument("--output", default="docs/_static/runtime-collectors.png")
    args = parser.parse_args(argv)
    lines = series(collect(args.seconds, args.step))
    plot(lines, args.output, marker=args.seconds / 3)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
