"""Results: cells from the samples, ratios and targets, the text table, the
JSON document, pyperf files and the PNG chart."""

import json
import math
import statistics
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional

from .workloads import SHORT, Row, Step

PEERS = ("aioprometheus", "prometheus_client")
NOTES = (
    "pyperf times each round in each worker (calibration in the first, a warm-up, "
    "the values); rounds interleave the implementations and merge per "
    "implementation (bench-results/pyperf-*.json). Cells: the figure from all "
    "rounds [min-max of the per-round figures]; 'vs aio'/'vs pc': times faster.",
    "ns/op is net of the bare `for v in values:` loop; 'x floor': net/net (raw/raw) "
    "against a `d.get(k)` loop of the same round (fresh-literal row: literal + get).",
    "prometheus_client runs its idiomatic c.labels(**labels).inc(); its Summary has "
    "no quantiles. 'not offered': no such feature (native histograms, windowed "
    "summaries, protobuf in prometheus_client, OpenMetrics in 23.12).",
    "Renders: 2-label counters and gauges, 500 series per metric (native: "
    "histograms, 20 populated buckets each); aioprometheus' formatters' marshall, "
    "prometheus_client's generate_latest. 23.12's protobuf needs an extra package.",
    "Scrape: sequential GETs over one keep-alive loopback connection from a "
    "scraper process, within a time budget per round; p50/p99 pooled; 'HTTP "
    "floor': the same body pre-rendered (and pre-gzipped), bare aiohttp handler.",
    "asyncio loop: 8 tasks, 100 events per iteration (arithmetic + one increment) "
    "then `await asyncio.sleep(0)`; cost = instrumented - bare per event.",
    "Memory: RSS growth per series, N series with unique routes, a fresh process.",
    "ASGI middleware: FastAPI app (8 routes; 4 matched paths and a 404), bare and "
    "instrumented, direct and via httpx (the median of back-to-back pairs); ours "
    "also with duration_histogram=True; pc: prometheus-fastapi-instrumentator.",
    "Prometheus: Debian's prometheus scrapes one implementation (ours, then "
    "23.12) beside the floor (ours' bytes, static): its scrape_duration_seconds "
    "averaged; handler time and the worst lateness of a 1 ms asyncio tick are "
    "the exporter's. Prometheus runs at nice 10 (its parsing must not take the "
    "exporter's CPU, as on a host of its own).",
)
Cell = Dict[str, Any]


def merge(answers: List[Cell]) -> Dict[str, Any]:
    """The pyperf benchmarks of all rounds, merged by name."""
    import pyperf

    runs: Dict[str, List[Any]] = {}
    for answer in answers:
        for name, text in answer["benches"].items():
            runs.setdefault(name, []).extend(pyperf.Benchmark.loads(text).get_runs())
    return {name: pyperf.Benchmark(r) for name, r in runs.items()}


def _failed(impl: str, answers: List[Cell], problem: Optional[str]) -> Cell:
    if problem is not None or not answers:
        status = "pending" if impl == "ours" else "not run"
        return {"status": status, "reason": problem or "not measured"}
    if answers[0].get("status") == "unavailable":
        status = "pending" if impl == "ours" else "not offered"
        return {"status": status, "reason": answers[0].get("reason", "")}
    return {"status": "error", "reason": answers[0].get("reason", "")}


def _cells(step: Step, impl: Any, answers: List[Cell]) -> Dict[str, Cell]:
    """One implementation's cell in each of the step's rows: the figure pooled
    over all rounds (a driver step's answers carry theirs, per round), its
    per-round range, and the ratios' inputs."""
    ok = [a for a in answers if a.get("status") == "ok"]
    if not ok:
        return {r.key: _failed(impl.key, answers, impl.problem) for r in step.rows}
    if callable(step.workload):
        pooled, rounds = step.figures(merge(ok)), [step.figures(merge([a])) for a in ok]
    else:
        pooled, rounds = None, [a["figures"] for a in ok]
    first = pooled or rounds[0]  # the ratios' inputs come from here
    note = {"note": ok[0]["note"]} if ok[0].get("note") else {}
    cells: Dict[str, Cell] = {}
    for row in step.rows:
        vals = [r[row.figure] for r in rounds if row.figure in r]
        if not vals:
            cells[row.key] = {"status": "not offered", "reason": "no such figure"}
            continue
        median = pooled[row.figure] if pooled else statistics.median(vals)
        extras = (row.x_floor, f"{row.x_floor}_raw", "raw", "floor", "requests")
        cells[row.key] = {"status": "ok", "rounds": len(vals), "median": median,
                          "min": min(vals), "max": max(vals), "samples": vals,
                          **{k: first[k] for k in extras if first.get(k) is not None},
                          **note}  # fmt: skip
    return cells


def build(meta, impls, steps: List[Step], samples) -> Dict[str, Any]:
    """The results document from {step key: {impl key: [answers]}}."""
    rows: Dict[str, Any] = {}
    for step in (s for s in steps if s.key in samples):
        got = {i.key: _cells(step, i, samples[step.key].get(i.key, [])) for i in impls}
        for r in step.rows:
            cells = {impl: by_row[r.key] for impl, by_row in got.items()}
            if not any(c["status"] == "ok" for c in cells.values()) and any(
                c.get("reason") == "no such figure" for c in cells.values()
            ):
                continue  # e.g. the 100k Prometheus rows of a --quick run
            rows[r.key] = {"title": r.title, "unit": r.unit,
                           "lower_is_better": not r.higher_is_better,
                           "values": cells, "compare": _compare(r, cells)}  # fmt: skip
    for r in (r for s in steps for r in s.rows if r.key in rows):
        rows[r.key]["targets"] = [_target(r, t, rows) for t in r.targets]
    implementations = {i.key: dict(vars(i), ok=i.problem is None) for i in impls}
    return {"meta": meta, "implementations": implementations, "rows": rows,
            "notes": list(NOTES)}  # fmt: skip


def _median(values: Dict[str, Any], impl: str) -> Optional[float]:
    cell = values.get(impl, {})
    return float(cell["median"]) if cell.get("status") == "ok" else None


def _compare(row: Row, values: Dict[str, Any]) -> Dict[str, Optional[float]]:
    ours, out = _median(values, "ours"), {}
    for peer in PEERS:
        other = _median(values, peer)
        ok = not row.control and ours and other and ours > 0 and other > 0
        ratio = (ours / other if row.higher_is_better else other / ours) if ok else None
        out[f"vs_{peer}"] = ratio
    for impl, cell in values.items() if row.x_floor else ():
        out[f"x_floor_{impl}"] = cell.get(row.x_floor)
        out[f"x_floor_raw_{impl}"] = cell.get(f"{row.x_floor}_raw")
    return out


def _target(row: Row, t: Any, rows: Dict[str, Any]) -> Dict[str, Any]:
    doc = rows[row.key]
    actual = ours = _median(doc["values"], "ours")
    if t.kind == "floor":
        actual = doc["compare"].get("x_floor_ours")
    elif t.kind == "faster":
        actual = doc["compare"].get(f"vs_{t.ref}")
    elif t.kind == "growth":  # against another of our rows
        base = _median(rows.get(t.ref, {}).get("values", {}), "ours")
        actual = ours / base if ours is not None and base else None
    met = None
    if actual is not None:
        met = actual >= t.bound if t.kind == "faster" else actual <= t.bound
    shown = {"max": f"<={t.bound:g} {row.unit}", "floor": f"<={t.bound:g}x floor"}
    text = t.text or shown.get(t.kind) or f">={t.bound:g}x {SHORT[t.ref]}"
    return dict(t._asdict(), target=text, actual=actual, met=met)


# ---------------------------------------------------------------- table
def _num(x: float) -> str:
    ax = abs(x)
    digits = 0 if ax >= 100 else 1 if ax >= 10 else 2 if ax >= 1 else 3
    return f"{x:,.0f}" if ax >= 1000 else f"{x:.{digits}f}"


def _value(cell: Cell) -> str:
    if cell.get("status") != "ok":
        return cell.get("status", "-")
    if cell["min"] == cell["max"]:
        return _num(cell["median"])
    return f"{_num(cell['median'])} [{_num(cell['min'])}-{_num(cell['max'])}]"


def _met(targets: List[Dict[str, Any]]) -> str:
    missed = [t["target"] for t in targets if t["met"] is False]
    if missed:
        return f"NOT met: {'; '.join(missed)}"
    if not targets:
        return ""
    return "pending" if any(t["met"] is None for t in targets) else "met"


def _line(row: Dict[str, Any], order: List[str], peers: List[str]) -> List[str]:
    """A row's table cells: title, unit, values, ratios, x floor, targets."""
    cmp_, targets = row["compare"], row["targets"]
    fl, raw = cmp_.get("x_floor_ours"), cmp_.get("x_floor_raw_ours")
    return (
        [row["title"], row["unit"], *(_value(row["values"].get(k, {})) for k in order)]
        + [f"{_num(x)}x" if (x := cmp_.get(f"vs_{p}")) else "-" for p in peers]
        + ["" if fl is None else f"{fl:.1f}" + (f" ({raw:.1f})" if raw else "")]
        + [", ".join(t["target"] for t in targets), _met(targets)]
    )


def table(results: Dict[str, Any], steps: List[Step]) -> str:
    impls, meta, rows = results["implementations"], results["meta"], results["rows"]
    order = [k for k in ("ours", *PEERS) if k in impls]
    peers = [p for p in PEERS if p in impls]
    head = ["workload", "unit", *(impls[k]["label"] for k in order)]
    head += [f"vs {SHORT[p]}" for p in peers] + ["x floor", "target", "met"]
    keys = [r.key for s in steps for r in s.rows if r.key in rows]
    lines = [_line(rows[key], order, peers) for key in keys]
    widths = [max([len(h)] + [len(r[i]) for r in lines]) for i, h in enumerate(head)]

    def fmt(cells: List[str]) -> str:
        right = range(2, len(cells) - 2)  # the figures, right-aligned
        aligned = (c.rjust(w) if i in right else c.ljust(w)
                   for i, (c, w) in enumerate(zip(cells, widths)))  # fmt: skip
        return "  ".join(aligned).rstrip()

    text = [fmt(head), "  ".join("-" * w for w in widths), *map(fmt, lines), ""]
    text.append(
        f"{meta.get('command')} | {meta.get('started_utc')} | python "
        f"{meta.get('python')} | {meta.get('cpus')} cpus ({meta.get('cpu')}) | "
        f"ours @ {meta.get('git_rev')} | wall {meta.get('wall_s')}s"
    )
    text += [f"{impls[k]['label']}: not run: {impls[k]['problem']}"
             for k in order if impls[k].get("problem")]  # fmt: skip
    text += meta.get("messages", [])
    load = meta.get("loadavg_start")
    if load is not None and load > 0.5:
        text.append(
            f"note: 1-min load average {load:.2f} at the start "
            f"({meta.get('loadavg_end', 0):.2f} at the end): other processes "
            "competed for the cores, expect wider ranges (--clock cpu is steadier)"
        )
    seen: Dict[str, List[str]] = {}  # reasons, once each, with their rows
    notes, first_rows = [], {s.rows[0].key for s in steps}
    for key, doc in rows.items():
        for impl, cell in doc["values"].items():
            label = impls[impl]["label"]
            if cell.get("note") and key in first_rows:
                notes.append(f"{doc['title']}, {label}: {cell['note']}")
            missing = cell["status"] in ("pending", "not offered", "error")
            if missing and not impls[impl].get("problem"):  # said once above
                why = f"{label} {cell['status']}: {cell.get('reason')}"
                seen.setdefault(why, []).append(key)
    text += [f"{why} ({', '.join(keys)})" for why, keys in seen.items()] + notes
    return "\n".join(text + [""] + [f"* {n}" for n in results["notes"]])


# ---------------------------------------------------------------- files
def write_json(results: Dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return path


def write_pyperf(steps: List[Step], samples, folder: Path) -> List[Path]:
    """One pyperf suite per implementation, benchmarks named step.name."""
    import pyperf

    suites: Dict[str, List[Any]] = {}
    for step in steps:
        for impl, answers in samples.get(step.key, {}).items():
            ok = [a for a in answers if a.get("status") == "ok" and "benches" in a]
            for name, bench in merge(ok).items():
                bench.update_metadata({"name": f"{step.key}.{name}"})
                suites.setdefault(impl, []).append(bench)
    paths = [folder / f"pyperf-{impl}.json" for impl in suites]
    for path, benches in zip(paths, suites.values()):
        path.unlink(missing_ok=True)
        pyperf.BenchmarkSuite(benches).dump(str(path))
    return paths


COLORS = {"ours": "#1f77b4", "aioprometheus": "#ff7f0e", "prometheus_client": "#2ca02c"}
# fmt: off
PANELS = (  # title, unit, row keys (bars labelled by row title); log scales
    ("instrumentation cost per call (lower is better)", "ns/op",
     "floor counter_inc_labels counter_inc_nolabels gauge_set histogram_observe "
     "native_histogram_observe summary_observe asyncio_loop_cost"),
    ("render time (lower is better)", "ms", "text_render_1k text_render_10k "
     "text_render_100k protobuf_render_10k protobuf_render_100k "
     "openmetrics_render_10k protobuf_render_native_10k"),
    ("scrapes, 10k series (ms), and middleware (us/req)", "", "scrape_p50_10k "
     "scrape_p99_10k scrape_static_p50_10k scrape_gzip_p50_10k prometheus_10k "
     "middleware_asgi"),
    ("memory per series, RSS (lower is better)", "bytes/series", "memory_counter "
     "memory_histogram memory_native_20 memory_native_160"),
)
# fmt: on


def write_chart(results: Dict[str, Any], path: Path) -> Optional[Path]:
    """A 2x2 PNG of grouped bars; None when matplotlib is not importable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    impls, rows, meta = results["implementations"], results["rows"], results["meta"]
    order = [k for k in ("ours", *PEERS) if k in impls]
    width = 0.8 / len(order)
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    fig.suptitle(f"{meta.get('command')} | {meta.get('started_utc')}", fontsize=10)
    for ax, (title, unit, keys) in zip(axes.flat, PANELS):
        bars = [k for k in keys.split() if k in rows]
        for j, impl in enumerate(order):
            xs = [i + (j - (len(order) - 1) / 2) * width for i in range(len(bars))]
            ys = [_median(rows[k]["values"], impl) or math.nan for k in bars]
            label, color = impls[impl]["label"], COLORS[impl]
            drawn = ax.bar(xs, ys, width, label=label, color=color)
            labels = ["" if math.isnan(y) else _num(y) for y in ys]
            ax.bar_label(drawn, labels, fontsize=6, rotation=90)
        bounds = [(i, t["bound"]) for i, k in enumerate(bars)
                  for t in rows[k]["targets"] if t["kind"] == "max"]  # fmt: skip
        for i, bound in bounds:  # our upper bounds, dashed
            ax.hlines(bound, i - 0.45, i + 0.45, colors="red", linestyles="dashed")
        ax.set_title(title, fontsize=10)
        ticks = [textwrap.fill(rows[k]["title"], 14) for k in bars]
        ax.set_xticks(range(len(bars)), ticks, fontsize=7)
        ax.set_ylabel(unit)
        ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
