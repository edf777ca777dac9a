"""Results: aggregation, targets, the text table, JSON and the PNG chart."""

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

PEER_KEYS = ("aioprometheus", "prometheus_client")
SHORT = {"aioprometheus": "aio", "prometheus_client": "pc", "ours": "ours"}


@dataclass(frozen=True)
class Row:
    key: str
    title: str
    unit: str
    step: str  # the plan step whose samples feed this row
    field: str = "value"  # "value", or a derived statistic (see _values)
    lower_is_better: bool = True
    micro: bool = False  # ns/op loop: gets a ratio to the floor
    control: bool = False  # a reference row: no ratios (they would mean nothing)
    floor: str = "floor"  # the row of the floor it is compared with


ROWS: Tuple[Row, ...] = (
    Row("floor", "floor: d.get(k)", "ns/op", "floor", micro=True, control=True),
    Row(
        "counter_inc_labels",
        "counter inc, 2-label dict",
        "ns/op",
        "counter_inc_labels",
        micro=True,
    ),
    Row(
        "counter_inc_varied",
        "counter inc, 64 rotating 2-label dicts",
        "ns/op",
        "counter_inc_varied",
        micro=True,
    ),
    Row(
        "floor_literal",
        "floor: same dict literal + d.get(k)",
        "ns/op",
        "floor_literal",
        micro=True,
        control=True,
    ),
    Row(
        "counter_inc_literal",
        "counter inc, fresh dict literal per call",
        "ns/op",
        "counter_inc_literal",
        micro=True,
        floor="floor_literal",
    ),
    Row(
        "counter_inc_nolabels",
        "counter inc, no labels",
        "ns/op",
        "counter_inc_nolabels",
        micro=True,
    ),
    Row("gauge_set", "gauge set, 2 labels", "ns/op", "gauge_set", micro=True),
    Row(
        "histogram_observe",
        "histogram observe, default buckets",
        "ns/op",
        "histogram_observe",
        micro=True,
    ),
    Row(
        "summary_observe",
        "summary observe (quantiles)",
        "ns/op",
        "summary_observe",
        micro=True,
    ),
    Row("text_render_1k", "text render, 1k series", "ms", "text_render_1k"),
    Row("text_render_10k", "text render, 10k series", "ms", "text_render_10k"),
    Row("text_render_100k", "text render, 100k series", "ms", "text_render_100k"),
    Row("protobuf_render_1k", "protobuf render, 1k series", "ms", "protobuf_render_1k"),
    Row(
        "protobuf_render_10k",
        "protobuf render, 10k series",
        "ms",
        "protobuf_render_10k",
    ),
    Row(
        "protobuf_render_100k",
        "protobuf render, 100k series",
        "ms",
        "protobuf_render_100k",
    ),
    Row(
        "scrape_p50_10k",
        "scrape p50, Service, 10k series",
        "ms",
        "scrape_10k",
        field="p50",
    ),
    Row(
        "scrape_p99_10k",
        "scrape p99, Service, 10k series",
        "ms",
        "scrape_10k",
        field="p99",
    ),
    Row(
        "scrape_static_p50_10k",
        "HTTP floor p50: same body, static",
        "ms",
        "scrape_static_10k",
        field="p50",
        control=True,
    ),
    Row(
        "scrape_static_p99_10k",
        "HTTP floor p99: same body, static",
        "ms",
        "scrape_static_10k",
        field="p99",
        control=True,
    ),
    Row(
        "asyncio_loop_cost", "asyncio loop: cost per increment", "ns/op", "asyncio_loop"
    ),
    Row(
        "asyncio_loop_rate",
        "asyncio loop: instrumented rate",
        "Mev/s",
        "asyncio_loop",
        field="instrumented_events_per_s",
        lower_is_better=False,
    ),
    Row(
        "asyncio_loop_base",
        "asyncio loop: uninstrumented rate",
        "Mev/s",
        "asyncio_loop",
        field="baseline_events_per_s",
        lower_is_better=False,
        control=True,
    ),
    Row(
        "middleware_asgi",
        "ASGI middleware on FastAPI, added",
        "us/req",
        "middleware_fastapi",
    ),
    Row(
        "middleware_httpx",
        "ASGI middleware on FastAPI via httpx, added",
        "us/req",
        "middleware_fastapi",
        field="httpx_us",
    ),
    Row(
        "memory_counter", "memory, 2-label counter series", "B/series", "memory_counter"
    ),
    Row("memory_histogram", "memory, histogram series", "B/series", "memory_histogram"),
)

# Targets from issue 5 (ratios are "x faster": peer time / our time).
# kind: "floor" (ours / floor <= bound), "speedup" (peer / ours >= bound),
# "abs" (ours <= bound), "growth" (ours / ours[ref] <= bound).
TARGETS: Dict[str, List[Tuple[str, Optional[str], float]]] = {
    "counter_inc_labels": [
        ("floor", None, 3),
        ("speedup", "aioprometheus", 30),
        ("speedup", "prometheus_client", 20),
    ],
    "counter_inc_literal": [("floor", None, 1.5)],  # issue 8
    "counter_inc_nolabels": [
        ("speedup", "aioprometheus", 15),
        ("speedup", "prometheus_client", 5),
    ],
    "gauge_set": [
        ("speedup", "aioprometheus", 20),
        ("speedup", "prometheus_client", 20),
    ],
    "histogram_observe": [
        ("speedup", "aioprometheus", 20),
        ("speedup", "prometheus_client", 20),
    ],
    "summary_observe": [("speedup", "aioprometheus", 20)],
    "text_render_10k": [
        ("speedup", "aioprometheus", 10),
        ("speedup", "prometheus_client", 50),
    ],
    "text_render_100k": [("growth", "text_render_10k", 11)],
    "protobuf_render_10k": [("growth", "text_render_10k", 1)],
    "memory_counter": [("abs", None, 250)],
    "memory_histogram": [("abs", None, 500)],
    "scrape_p99_10k": [("abs", None, 5), ("speedup", "aioprometheus", 5)],
    "middleware_asgi": [("abs", None, 2)],  # issue 14
}

NOTES = (
    "ns/op is net: the cost of the bare `for v in values:` loop (same N, same "
    "sample) is subtracted; JSON keeps raw ns/op too. A micro sample is the best "
    "of 3 passes of each loop. 'x floor': median over rounds of net/net (raw/raw "
    "in brackets) against a `d.get(k)` loop timed within the same sample; for "
    "the fresh-literal row, against a loop that builds the same literal (route "
    "from a cycle of 100 strings) and calls `.get(k)` on it.",
    "Cells: median [min-max] over interleaved rounds (ours, aio, pc, ours, ...). "
    "'vs aio'/'vs pc': how many times faster ours is (peer median / our median).",
    "prometheus_client uses its idiomatic API: c.labels(**labels).inc(), .set(v), "
    ".observe(v); its Summary has no quantiles (count and sum only), so its "
    "summary row is not like-for-like. Its counters also expose _created series.",
    "Renders: registries of 2-label counters and gauges (500 series per metric); "
    "aioprometheus: formats.text.TextFormatter().marshall / formats.binary."
    "BinaryFormatter().marshall; prometheus_client: generate_latest. "
    "aioprometheus 23.12's binary format needs the extra prometheus-metrics-proto "
    "package, so it is shown as not offered.",
    "Scrape: a separate scraper process (stdlib http.client, one keep-alive "
    "connection, loopback only) sends sequential GETs with Accept: text/plain;"
    "version=0.0.4 and no compression; the exporter runs in the worker. "
    "aioprometheus: service.Service; prometheus_client: prometheus_client."
    "aiohttp.make_aiohttp_handler(disable_compression=True) on an aiohttp "
    "AppRunner (same HTTP stack). Each round stops after a time budget (at least "
    "3 requests), so faster exporters get more samples; p50/p99 are pooled over "
    "all rounds, brackets give the per-round range. Wall time, whatever --clock. "
    "'HTTP floor': the same text body pre-rendered and served by a bare aiohttp "
    "handler (no render), in each worker.",
    "asyncio loop: 8 tasks, 100 events per loop iteration (arithmetic + one "
    "2-label counter increment) then `await asyncio.sleep(0)`; cost per increment "
    "= (instrumented - uninstrumented time) / events.",
    "Memory: RSS growth / series in a fresh process creating N new series with a "
    "unique route label string each (the strings' cost included).",
    "ASGI middleware: a FastAPI app (8 routes; requests cycle over 4 matched "
    "paths and a 404) bare and behind the middleware, in alternating batches "
    "(called directly with a fresh scope, then through httpx.ASGITransport); "
    "per-request difference, median over rounds. aioprometheus: asgi."
    "MetricsMiddleware; in the pc column, prometheus-fastapi-instrumentator 8.1.0 "
    "(default Instrumentator().instrument(app), on prometheus_client). Under "
    "uvicorn: python -m benchmarks.middleware --uvicorn.",
)


def _stats(values: List[float]) -> Dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _percentile(xs: List[float], p: float) -> float:
    s = sorted(xs)
    return s[max(1, math.ceil(p / 100.0 * len(s))) - 1]


def _cell(
    row: Row, impl_key: str, answers: List[Dict[str, Any]], problem: Optional[str]
) -> Dict[str, Any]:
    """Aggregate one implementation's samples for one row."""
    ok = [a for a in answers if a.get("status") == "ok"]
    if not ok:
        if problem is not None or not answers:
            status = "pending" if impl_key == "ours" else "not run"
            return {"status": status, "reason": problem or "not measured"}
        bad = answers[0]
        if bad.get("status") == "unavailable":
            status = "pending" if impl_key == "ours" else "not offered"
        else:
            status = "error"
        return {"status": status, "reason": bad.get("reason", "")}
    cell: Dict[str, Any] = {"status": "ok", "rounds": len(ok)}
    if row.field in ("p50", "p99"):
        pooled = [x for a in ok for x in a["latencies_ms"]]
        pct = 50 if row.field == "p50" else 99
        per_round = [_percentile(a["latencies_ms"], pct) for a in ok]
        cell.update(
            median=_percentile(pooled, pct),
            min=min(per_round),
            max=max(per_round),
            requests=len(pooled),
        )
        if row.field == "p50":
            cell["samples_ms"] = pooled
    else:
        vals = [float(a[row.field]) for a in ok]
        if row.unit == "Mev/s":
            vals = [v / 1e6 for v in vals]
        cell.update(_stats(vals))
        cell["samples"] = vals
        if row.micro:
            raws = [float(a["raw"]) for a in ok]
            cell["raw"] = _stats(raws)
            cell["n"] = ok[0].get("n")
            paired = [a for a in ok if a.get("floor", 0) > 0 and a.get("floor_raw")]
            if paired:  # the floor timed within the same sample
                cell["x_floor"] = _stats([a["value"] / a["floor"] for a in paired])
                cell["x_floor_raw"] = _stats(
                    [a["raw"] / a["floor_raw"] for a in paired]
                )
                cell["paired_floor"] = _stats([a["floor"] for a in paired])
    note = ok[0].get("note")
    if note:
        cell["note"] = note
    return cell


def build(
    meta: Dict[str, Any],
    impls: List[Any],
    samples: Dict[str, Dict[str, List[Dict[str, Any]]]],
) -> Dict[str, Any]:
    """Aggregate raw samples into the results document."""
    impl_docs = {
        i.key: {
            "label": i.label,
            "family": i.family,
            "path": str(i.path) if i.path else None,
            "ok": i.problem is None,
            "problem": i.problem,
            "info": i.info,
        }
        for i in impls
    }
    rows: Dict[str, Any] = {}
    for row in ROWS:
        if row.step not in samples:
            continue
        per_impl = samples[row.step]
        cells = {
            i.key: _cell(row, i.key, per_impl.get(i.key, []), i.problem) for i in impls
        }
        rows[row.key] = {
            "title": row.title,
            "unit": row.unit,
            "lower_is_better": row.lower_is_better,
            "values": cells,
        }
    for row in ROWS:
        if row.key in rows:
            rows[row.key]["compare"] = _compare(row, rows)
            rows[row.key]["targets"] = _targets(row, rows)
    return {
        "meta": meta,
        "implementations": impl_docs,
        "rows": rows,
        "notes": list(NOTES),
    }


def _median(rows: Dict[str, Any], row_key: str, impl: str) -> Optional[float]:
    cell = rows.get(row_key, {}).get("values", {}).get(impl)
    if cell and cell.get("status") == "ok":
        return float(cell["median"])
    return None


def _compare(row: Row, rows: Dict[str, Any]) -> Dict[str, Optional[float]]:
    ours = _median(rows, row.key, "ours")
    out: Dict[str, Optional[float]] = {}
    for peer in PEER_KEYS:
        other = _median(rows, row.key, peer)
        if row.control or ours is None or other is None or ours <= 0 or other <= 0:
            out[f"vs_{peer}"] = None
        elif row.lower_is_better:
            out[f"vs_{peer}"] = other / ours
        else:
            out[f"vs_{peer}"] = ours / other
    if row.micro and not row.control:  # a floor is not compared with a floor
        for impl in ("ours", *PEER_KEYS):
            cell = rows[row.key]["values"].get(impl, {})
            if "x_floor" in cell:  # paired within samples: median of ratios
                out[f"x_floor_{impl}"] = cell["x_floor"]["median"]
                out[f"x_floor_raw_{impl}"] = cell["x_floor_raw"]["median"]
                continue
            mine = _median(rows, row.key, impl)
            fl = _median(rows, row.floor, impl)
            out[f"x_floor_{impl}"] = mine / fl if mine and fl and fl > 0 else None
            fcell = rows.get(row.floor, {}).get("values", {}).get(impl, {})
            if cell.get("status") == "ok" and fcell.get("status") == "ok":
                out[f"x_floor_raw_{impl}"] = (
                    cell["raw"]["median"] / fcell["raw"]["median"]
                )
            else:
                out[f"x_floor_raw_{impl}"] = None
    return out


def _targets(row: Row, rows: Dict[str, Any]) -> List[Dict[str, Any]]:
    found = []
    ours = _median(rows, row.key, "ours")
    for kind, ref, bound in TARGETS.get(row.key, []):
        actual: Optional[float] = None
        if kind == "floor":
            text = f"<={bound:g}x floor"
            actual = rows[row.key]["compare"].get("x_floor_ours")
            met = None if actual is None else actual <= bound
        elif kind == "speedup":
            assert ref is not None
            text = f">={bound:g}x {SHORT[ref]}"
            actual = rows[row.key]["compare"].get(f"vs_{ref}")
            met = None if actual is None else actual >= bound
        elif kind == "abs":
            text = f"<={bound:g} {row.unit}"
            actual = ours
            met = None if actual is None else actual <= bound
        else:  # growth against another of our rows
            assert ref is not None
            base = _median(rows, ref, "ours")
            if bound == 1:
                text = "<= our text"
            else:
                text = f"<={bound:g}x {ref.split('_')[-1]}"
            actual = ours / base if ours is not None and base else None
            met = None if actual is None else actual <= bound
        found.append(
            {
                "target": text,
                "kind": kind,
                "ref": ref,
                "bound": bound,
                "actual": actual,
                "met": met,
            }
        )
    return found


# ---------------------------------------------------------------------------
# Text table
# ---------------------------------------------------------------------------


def _num(x: float) -> str:
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _value_cell(cell: Dict[str, Any]) -> str:
    if cell.get("status") != "ok":
        return cell.get("status", "-")
    if cell["min"] == cell["max"] == cell["median"]:
        return _num(cell["median"])
    return f"{_num(cell['median'])} [{_num(cell['min'])}-{_num(cell['max'])}]"


def _ratio(x: Optional[float]) -> str:
    return "-" if x is None else f"{_num(x)}x"


def table(results: Dict[str, Any]) -> str:
    impls = results["implementations"]
    order = [k for k in ("ours", *PEER_KEYS) if k in impls]
    headers = ["workload", "unit"] + [impls[k]["label"] for k in order]
    peers_present = [p for p in PEER_KEYS if p in impls]
    headers += [f"vs {SHORT[p]}" for p in peers_present]
    headers += ["x floor", "target", "met"]
    lines: List[List[str]] = []
    for row in ROWS:
        doc = results["rows"].get(row.key)
        if doc is None:
            continue
        cells = [row.title, row.unit]
        cells += [_value_cell(doc["values"].get(k, {})) for k in order]
        cmp_ = doc["compare"]
        cells += [_ratio(cmp_.get(f"vs_{p}")) for p in peers_present]
        if row.micro and not row.control:
            fl = cmp_.get("x_floor_ours")
            raw = cmp_.get("x_floor_raw_ours")
            cells.append("-" if fl is None else f"{fl:.1f} ({raw:.1f})")
        else:
            cells.append("")
        targets = doc["targets"]
        cells.append(", ".join(t["target"] for t in targets))
        if not targets:
            cells.append("")
        elif any(t["met"] is False for t in targets):
            missed = [t["target"] for t in targets if t["met"] is False]
            cells.append("NOT met: " + "; ".join(missed))
        elif any(t["met"] is None for t in targets):
            cells.append("pending")
        else:
            cells.append("met")
        lines.append(cells)
    widths = [
        max(len(h), *(len(r[i]) for r in lines)) if lines else len(h)
        for i, h in enumerate(headers)
    ]

    def fmt(cells: List[str]) -> str:
        out = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            out.append(c.ljust(w) if i in (0, 1) or i >= len(cells) - 2 else c.rjust(w))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    text = [fmt(headers), sep] + [fmt(r) for r in lines]
    meta = results["meta"]
    text.append("")
    text.append(
        f"{meta.get('command')} | {meta.get('started_utc')} | "
        f"python {meta.get('python')} | {meta.get('cpus')} cpus "
        f"({meta.get('cpu')}) | ours @ {meta.get('git_rev')} | "
        f"wall {meta.get('wall_s')}s"
    )
    for key in order:
        doc = impls[key]
        if doc.get("problem"):
            text.append(f"{doc['label']}: not run: {doc['problem']}")
    scrape = results["rows"].get("scrape_p99_10k")
    if scrape:
        counts = [
            f"{SHORT[k]} {scrape['values'][k]['requests']}"
            for k in order
            if scrape["values"].get(k, {}).get("status") == "ok"
        ]
        if counts:
            text.append("scrape requests timed: " + ", ".join(counts))
    load = meta.get("loadavg_start")
    if load is not None and load > 0.5:
        text.append(
            f"note: 1-min load average was {load:.2f} at the start "
            f"({meta.get('loadavg_end', 0):.2f} at the end): other processes "
            "competed for the cores, expect wider min-max ranges"
            + ("" if meta.get("clock") == "cpu" else " (--clock cpu is steadier)")
        )
    reasons = _reasons(results)
    for r in reasons:
        text.append(r)
    for key in (
        "summary_observe",
        "text_render_10k",
        "protobuf_render_10k",
        "scrape_p50_10k",
    ):
        doc = results["rows"].get(key)
        if not doc:
            continue
        for impl in order:
            note = doc["values"].get(impl, {}).get("note")
            if note:
                text.append(f"{doc['title']}, {impls[impl]['label']}: {note}")
    text.append("")
    for note in results.get("notes", []):
        text.append("* " + note)
    return "\n".join(text)


def _reasons(results: Dict[str, Any]) -> List[str]:
    """One line per distinct (impl, reason) among pending/not offered/error."""
    seen: Dict[Tuple[str, str], List[str]] = {}
    for key, doc in results["rows"].items():
        for impl, cell in doc["values"].items():
            if cell.get("status") in (
                "pending",
                "not offered",
                "error",
            ) and not results["implementations"][impl].get("problem"):
                seen.setdefault(
                    (impl, f"{cell['status']}: {cell.get('reason')}"), []
                ).append(key)
    return [
        f"{results['implementations'][impl]['label']} {why} ({', '.join(keys)})"
        for (impl, why), keys in seen.items()
    ]


# ---------------------------------------------------------------------------
# JSON and chart
# ---------------------------------------------------------------------------


def write_json(results: Dict[str, Any], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=False, default=str) + "\n")
    return path


def write_chart(results: Dict[str, Any], path: Path) -> Optional[Path]:
    """A 2x2 PNG overview; returns None when matplotlib is not importable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return None
    impls = results["implementations"]
    order = [k for k in ("ours", *PEER_KEYS) if k in impls]
    colors = {
        "ours": "#1f77b4",
        "aioprometheus": "#ff7f0e",
        "prometheus_client": "#2ca02c",
    }
    rows = results["rows"]

    def med(key: str, impl: str) -> float:
        cell = rows.get(key, {}).get("values", {}).get(impl, {})
        return float(cell["median"]) if cell.get("status") == "ok" else float("nan")

    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    meta = results["meta"]
    fig.suptitle(
        f"aioprometheus (ours) vs aioprometheus 23.12.0 vs prometheus_client "
        f"0.26.0 | {meta.get('command')} | {meta.get('started_utc')} | "
        f"{meta.get('cpus')} cpus",
        fontsize=10,
        y=0.995,
    )

    def bars(
        ax,
        keys: List[str],
        labels: List[str],
        title: str,
        unit: str,
        log: bool = True,
        targets: Optional[Dict[str, float]] = None,
    ) -> None:
        keys_present = [(k, lab) for k, lab in zip(keys, labels) if k in rows]
        ax.set_title(title, fontsize=10)
        if not keys_present:
            ax.text(
                0.5,
                0.5,
                "not measured in this run",
                ha="center",
                transform=ax.transAxes,
            )
            ax.set_axis_off()
            return
        width = 0.8 / max(1, len(order))
        for j, impl in enumerate(order):
            xs = [
                i + (j - (len(order) - 1) / 2) * width for i in range(len(keys_present))
            ]
            ys = [med(k, impl) for k, _ in keys_present]
            ax.bar(xs, ys, width, label=impls[impl]["label"], color=colors[impl])
            for x, y in zip(xs, ys):
                if not math.isnan(y):
                    ax.text(
                        x, y, _num(y), ha="center", va="bottom", fontsize=6, rotation=90
                    )
        ax.set_xticks(range(len(keys_present)))
        ax.set_xticklabels([lab for _, lab in keys_present], fontsize=8)
        ax.set_ylabel(unit)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
        index = {k: i for i, (k, _) in enumerate(keys_present)}
        for key, bound in (targets or {}).items():
            if key not in index:
                continue
            i = index[key]
            ax.hlines(bound, i - 0.45, i + 0.45, colors="red", linestyles="dashed")
            ax.text(
                i + 0.45,
                bound,
                "target",
                color="red",
                fontsize=7,
                va="bottom",
                ha="right",
            )

    bars(
        axes[0][0],
        [
            "floor",
            "counter_inc_labels",
            "counter_inc_nolabels",
            "gauge_set",
            "histogram_observe",
            "summary_observe",
            "asyncio_loop_cost",
        ],
        [
            "floor\nd.get",
            "counter\n2 labels",
            "counter\nno labels",
            "gauge\nset",
            "histogram\nobserve",
            "summary\nobserve",
            "asyncio loop\nper inc",
        ],
        "instrumentation cost per call (lower is better, log scale)",
        "ns/op",
    )
    from matplotlib.patches import Patch

    handles = [Patch(color=colors[k], label=impls[k]["label"]) for k in order]
    labels = [impls[k]["label"] for k in order]
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.965),
        ncol=len(order),
        fontsize=9,
    )

    ax = axes[0][1]
    for impl in order:
        for fmt_, style in (("text", "-"), ("protobuf", "--")):
            pts = [
                (n, med(f"{fmt_}_render_{n // 1000}k", impl))
                for n in (1_000, 10_000, 100_000)
            ]
            pts = [(n, y) for n, y in pts if not math.isnan(y)]
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    style,
                    marker="o",
                    color=colors[impl],
                    label=f"{impls[impl]['label']} {fmt_}",
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("series")
    ax.set_ylabel("ms per render")
    ax.set_title("render time vs series (lower is better, log-log)", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    else:
        ax.text(
            0.5, 0.5, "not measured in this run", ha="center", transform=ax.transAxes
        )

    bars(
        axes[1][0],
        [
            "scrape_p50_10k",
            "scrape_p99_10k",
            "scrape_static_p50_10k",
            "scrape_static_p99_10k",
        ],
        [
            "p50",
            "p99",
            "HTTP floor p50\n(static body)",
            "HTTP floor p99\n(static body)",
        ],
        "scrape latency through the aiohttp exporter, 10k series",
        "ms",
        targets={"scrape_p99_10k": 5.0},
    )
    bars(
        axes[1][1],
        ["memory_counter", "memory_histogram"],
        ["2-label counter", "histogram (default buckets)"],
        "memory per series, RSS (lower is better)",
        "bytes/series",
        targets={"memory_counter": 250.0, "memory_histogram": 500.0},
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
