"""Driver: ``python -m benchmarks [--quick] [--only PREFIX ...]``.

Starts one worker process per implementation (``peers.py``: ours, and the
peers from isolated pip ``--target`` folders) and asks them, step after step
(``workloads.STEPS``), for one sample each in interleaved rounds (A B C A B C
...); memory samples in a fresh worker each, the real-Prometheus step here
(``prometheus.py``).  Then ``report.py`` prints the table and writes the
JSON, pyperf files and chart.
"""

import argparse
import functools
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import peers, prometheus, report
from .workloads import IMPLS, STEPS, Step, micro_figures

# the steps the driver runs itself (servers of their own), not the workers
DRIVER_STEPS = {"prometheus": prometheus.run}


def pick(value: Any, quick: bool) -> Any:
    """A step parameter given as (--quick, full) is resolved."""
    return value[0 if quick else 1] if isinstance(value, tuple) else value


def settings(s: Step, quick: bool) -> Dict[str, Any]:
    """pyperf's settings for one round: micro rows take more, shorter values."""
    micro = s.figures is micro_figures
    min_time = pick((0.004, 0.01) if micro else (0.01, 0.025), quick)
    return {"min_time": min_time, "values": 5 if micro else 3, "warmups": 1}


def make_plan(quick: bool, only: Optional[List[str]] = None) -> List[Step]:
    """The steps to run, those sharing a fixture registry next to each other
    (each worker builds each fixture once)."""
    chosen = [s for s in STEPS if not (quick and s.full_only)]
    if only:  # the steps with a row whose key starts with one of the prefixes
        chosen = [s for s in chosen if any(k.startswith(tuple(only)) for k in s.keys())]
    return sorted(chosen, key=lambda s: (s.params.get("series", 0), "native" in s.key))


def log(msg: str) -> None:
    print(f"[benchmarks] {msg}", file=sys.stderr, flush=True)


def run(plan: List[Step], impls: List[peers.Impl], quick: bool, clock: str = "wall",
        rounds: Optional[int] = None):  # fmt: skip
    """({step key: {impl key: [answers]}}, rounds interleaved; the notes)."""
    samples: Dict[str, Dict[str, List[Dict[str, Any]]]] = {}
    messages: List[str] = []
    for impl in (i for i in impls if i.problem):
        log(f"{impl.label}: not run ({impl.problem})")
    runs = [i for i in impls if i.problem is None]
    with tempfile.TemporaryDirectory(prefix="aioprom-bench-") as workdir:
        start = functools.partial(peers.worker, cwd=workdir, clock=clock)
        workers = {i.key: start(i) for i in runs}
        try:
            for s in plan:
                t0 = time.perf_counter()
                params = {k: pick(v, quick) for k, v in s.params.items()}
                chosen = [i for i in runs if i.key in s.impls]
                if isinstance(s.workload, str):  # run here
                    got, note = DRIVER_STEPS[s.workload](chosen, params, quick)
                    samples.update(got)
                    messages += [note] if note else []
                    log(note or f"{s.key}: {time.perf_counter() - t0:.1f}s")
                    continue
                cmd = {"step": s.key, "params": params, "settings": settings(s, quick)}
                answers = samples[s.key] = {i.key: [] for i in chosen}
                for _ in range(rounds or pick(s.rounds, quick)):
                    for impl in chosen:  # interleaved: A B C A B C ...
                        worker = start(impl) if s.fresh else workers[impl.key]
                        answers[impl.key].append(worker.request(cmd))
                        if s.fresh:  # a fresh process per sample
                            worker.close()
                log(f"{s.key}: {time.perf_counter() - t0:.1f}s")
        finally:
            for w in workers.values():
                w.close()
    return samples, messages


def git_rev() -> Optional[str]:
    """HEAD, "+dirty" when tracked files have changed."""
    git = ["git", "-C", str(peers.REPO_ROOT), "describe", "--always", "--abbrev=40"]
    try:
        got = subprocess.run([*git, "--dirty=+dirty", "--exclude=*"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return got.stdout.strip() or None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(ln for ln in fh if ln.startswith("model name"))
        return model.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor()


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark ours against aioprometheus 23.12.0 and "
        "prometheus_client 0.26.0, side by side in one run.",
    )
    # fmt: off
    add = ap.add_argument
    add("--quick", action="store_true",
        help="fewer rounds, shorter values, no 100k series (about a minute)")
    add("--impls", default=",".join(IMPLS), help="a subset of " + ",".join(IMPLS))
    add("--only", nargs="*", metavar="PREFIX",
        help="only the steps with a row whose key starts so")
    add("--rounds", type=int, help="override the rounds of every step")
    add("--output", type=Path, help="JSON file",
        default=peers.REPO_ROOT / "bench-results" / "results.json")
    add("--no-chart", action="store_true", help="skip the PNG chart")
    add("--clock", choices=["wall", "cpu"], default="wall",
        help="cpu: process CPU time (steadier when busy; not scrapes)")
    # fmt: on
    args = ap.parse_args(argv)
    selected = [s.strip() for s in args.impls.split(",") if s.strip()]
    unknown = set(selected) - set(IMPLS)
    if unknown:
        ap.error(f"unknown implementation(s): {', '.join(sorted(unknown))}")

    started, load_start, t0 = time.time(), os.getloadavg()[0], time.perf_counter()
    try:
        impls = peers.implementations(selected)
    except peers.OursUnavailable as exc:
        print(
            f"python -m benchmarks: cannot measure ours: {exc}\n(--impls "
            "aioprometheus,prometheus_client runs the peers alone)",
            file=sys.stderr,
        )
        return 2
    t_install, t1 = time.perf_counter() - t0, time.perf_counter()
    plan = make_plan(args.quick, args.only)
    samples, messages = run(plan, impls, args.quick, args.clock, args.rounds)
    wall = time.perf_counter() - t1
    command = "python -m benchmarks" + " --quick" * args.quick
    command += " --clock cpu" * (args.clock == "cpu")
    started_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    meta = {"command": command, "argv": sys.argv[1:] if argv is None else argv,
            "quick": args.quick, "clock": args.clock, "started_utc": started_utc,
            "wall_s": round(wall, 1), "install_s": round(t_install, 1),
            "python": sys.version.split()[0], "platform": platform.platform(),
            "cpu": cpu_model(), "cpus": os.cpu_count(), "git_rev": git_rev(),
            "cache_dir": str(peers.cache_root()), "loadavg_start": load_start,
            "loadavg_end": os.getloadavg()[0], "messages": messages,
            "plan": [s.key for s in plan]}  # fmt: skip
    shown = [s for s in STEPS if s in plan]  # in the order declared
    results = report.build(meta, impls, shown, samples)
    print(report.table(results, shown))
    out = report.write_json(results, args.output)
    pyperf_files = report.write_pyperf(plan, samples, out.parent)
    print(f"\nJSON: {out}; pyperf: {', '.join(p.name for p in pyperf_files)}")
    if not args.no_chart:
        chart = report.write_chart(results, out.with_suffix(".png"))
        print(f"chart: {chart}" if chart else "chart: skipped (no matplotlib)")
    print(f"wall time: {wall:.1f}s (+ {t_install:.1f}s checking/installing peers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
