"""Driver: ``python -m benchmarks [--quick]``.

Starts one worker process per implementation (ours: see ``peers.ours``,
aioprometheus 23.12.0 and prometheus_client 0.26.0 from isolated pip
``--target`` folders, see ``peers.py``) and asks them for samples in
interleaved rounds (A B C A B C ...), one workload after another.  Memory per
series is measured in a fresh process per sample.  Then ``report.py`` prints
the table and writes the JSON results (and a PNG chart when matplotlib is
importable).
"""

import argparse
import json
import os
import platform
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import peers, report

ALL_IMPLS = ["ours", "aioprometheus", "prometheus_client"]


@dataclass
class Step:
    """One row group of the plan: a workload run for some rounds."""

    key: str  # result key, e.g. "text_render_10k"
    workload: str  # workload name in workloads.py (or "memory")
    rounds: int
    params: Dict[str, Any] = field(default_factory=dict)


def make_plan(
    quick: bool, only: Optional[List[str]] = None, rounds: Optional[int] = None
) -> List[Step]:
    micro_rounds = 5 if quick else 15
    micro_ms = 15 if quick else 40
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    plan: List[Step] = []
    for name in (
        "floor",
        "counter_inc_labels",
        "counter_inc_varied",
        "floor_literal",
        "counter_inc_literal",
        "counter_inc_nolabels",
        "gauge_set",
        "histogram_observe",
        "summary_observe",
    ):
        plan.append(Step(name, name, micro_rounds, {"target_ms": micro_ms}))
    # grouped by size so each worker builds each fixture registry once
    for n in sizes:
        for fmt in ("text_render", "protobuf_render"):
            r = (5 if quick else 11) if n < 100_000 else 5
            plan.append(
                Step(
                    f"{fmt}_{n // 1000}k",
                    fmt,
                    r,
                    {"series": n, "target_ms": 40 if quick else 100},
                )
            )
        if n == 10_000:
            plan.append(
                Step(
                    "scrape_10k",
                    "scrape",
                    3 if quick else 10,
                    {
                        "series": 10_000,
                        "requests": 40 if quick else 100,
                        "budget_ms": 500 if quick else 3000,
                    },
                )
            )
            plan.append(
                Step(
                    "scrape_static_10k",
                    "scrape",
                    2 if quick else 5,
                    {
                        "series": 10_000,
                        "static": True,
                        "requests": 30 if quick else 100,
                        "budget_ms": 200 if quick else 1000,
                    },
                )
            )
    plan.append(
        Step(
            "asyncio_loop",
            "asyncio_loop",
            5 if quick else 11,
            {"target_ms": 40 if quick else 100},
        )
    )
    plan.append(
        Step(
            "middleware_fastapi",
            "middleware",
            5 if quick else 15,
            {
                "asgi_batch": 300 if quick else 1000,
                "httpx_batch": 100 if quick else 300,
            },
        )
    )
    mem_n = 20_000 if quick else 100_000
    for kind in ("counter", "histogram"):
        plan.append(
            Step(
                f"memory_{kind}",
                "memory",
                1 if quick else 3,
                {"kind": kind, "n": mem_n},
            )
        )
    if only:
        plan = [s for s in plan if any(s.key.startswith(o) for o in only)]
    if rounds:
        for s in plan:
            s.rounds = rounds
    return plan


class Worker:
    """A long-lived worker process for one implementation."""

    TIMEOUT_S = 600

    def __init__(self, impl: peers.Impl, workdir: Path, clock: str = "wall") -> None:
        self.impl = impl
        self.stderr = tempfile.TemporaryFile(mode="w+")
        args = [*impl.worker_args(), f"clock={clock}"]
        self.proc = subprocess.Popen(
            [sys.executable, str(peers.WORKER_SCRIPT), "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=impl.env(),
            cwd=str(workdir),
            text=True,
            bufsize=1,
        )
        hello = self._read()
        impl.info = hello
        if not hello.get("ok"):
            impl.problem = str(hello.get("reason", "worker failed to start"))
            self.close()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self) -> Dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], self.TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            self.proc.wait()
            self.stderr.seek(0)
            tail = self.stderr.read()[-1500:]
            why = "timed out" if not ready else "died"
            return {
                "ok": False,
                "status": "error",
                "reason": f"worker {why}: {tail.strip()}",
            }
        return json.loads(line)

    def request(self, cmd: Dict[str, Any]) -> Dict[str, Any]:
        if not self.alive:
            return {"status": "error", "reason": "worker not running"}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.alive:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write('{"cmd": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def run_memory(
    impl: peers.Impl, params: Dict[str, Any], workdir: Path
) -> Dict[str, Any]:
    """One memory sample in a fresh process."""
    args = [
        sys.executable,
        str(peers.WORKER_SCRIPT),
        "memory",
        *impl.worker_args(),
        f"kind={params['kind']}",
        f"n={params['n']}",
    ]
    proc = subprocess.run(
        args,
        env=impl.env(),
        cwd=str(workdir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = proc.stdout.strip().splitlines()
    if not lines:
        return {"status": "error", "reason": proc.stderr.strip()[-800:]}
    return json.loads(lines[-1])


def _progress(msg: str) -> None:
    print(f"[benchmarks] {msg}", file=sys.stderr, flush=True)


def run(
    plan: List[Step], impls: List[peers.Impl], clock: str = "wall"
) -> Dict[str, Dict[str, List[Dict]]]:
    """Run the plan; returns {step key: {impl key: [sample answers]}}."""
    samples: Dict[str, Dict[str, List[Dict]]] = {}
    with tempfile.TemporaryDirectory(prefix="aioprom-bench-") as tmp:
        workdir = Path(tmp)
        workers: Dict[str, Worker] = {}
        for impl in impls:
            if impl.problem is None:
                workers[impl.key] = Worker(impl, workdir, clock)
            if impl.problem:
                _progress(f"{impl.label}: not run ({impl.problem})")
        try:
            for step in plan:
                t0 = time.perf_counter()
                per_impl: Dict[str, List[Dict]] = {i.key: [] for i in impls}
                for _ in range(step.rounds):
                    for impl in impls:  # interleaved: A B C A B C ...
                        if impl.problem is not None:
                            continue
                        if step.workload == "memory":
                            answer = run_memory(impl, step.params, workdir)
                        else:
                            answer = workers[impl.key].request(
                                {
                                    "cmd": "sample",
                                    "key": step.key,
                                    "workload": step.workload,
                                    "params": step.params,
                                }
                            )
                        per_impl[impl.key].append(answer)
                for w in workers.values():
                    w.request({"cmd": "drop", "key": step.key})
                samples[step.key] = per_impl
                _progress(f"{step.key}: {time.perf_counter() - t0:.1f}s")
        finally:
            for w in workers.values():
                w.close()
    return samples


def _git_rev() -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", "-C", str(peers.REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        rev = out.stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(peers.REPO_ROOT),
                "status",
                "--porcelain",
                "--untracked-files=no",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return rev + ("+dirty" if dirty.strip() else "") if rev else None
    except Exception:
        return None


def _loadavg() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark ours against aioprometheus 23.12.0 and "
        "prometheus_client 0.26.0, side by side in one run.",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="fewer rounds, smaller sizes, no 100k renders (< 1 min)",
    )
    ap.add_argument(
        "--impls",
        default=",".join(ALL_IMPLS),
        help="comma-separated subset of: " + ",".join(ALL_IMPLS),
    )
    ap.add_argument(
        "--only",
        nargs="*",
        metavar="PREFIX",
        help="run only steps whose key starts with one of these",
    )
    ap.add_argument("--rounds", type=int, help="override the rounds of every step")
    ap.add_argument(
        "--output",
        type=Path,
        default=peers.REPO_ROOT / "bench-results" / "results.json",
        help="JSON results file (default: %(default)s)",
    )
    ap.add_argument(
        "--chart", type=Path, help="PNG chart path (default: next to --output)"
    )
    ap.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: time.perf_counter_ns (default); cpu: process CPU time, "
        "steadier on a machine busy with other work (scrape stays wall time)",
    )
    ap.add_argument(
        "--no-install",
        action="store_true",
        help="do not pip-install missing peers (skip them)",
    )
    args = ap.parse_args(argv)

    selected = [s.strip() for s in args.impls.split(",") if s.strip()]
    unknown = set(selected) - set(ALL_IMPLS)
    if unknown:
        ap.error(f"unknown implementation(s): {', '.join(sorted(unknown))}")

    started = time.time()
    load_start = _loadavg()
    t0 = time.perf_counter()
    try:
        impls = peers.implementations(selected, install=not args.no_install)
    except peers.OursUnavailable as exc:
        print(
            f"python -m benchmarks: cannot measure ours: {exc}\n"
            "(--impls aioprometheus,prometheus_client runs the peers alone)",
            file=sys.stderr,
        )
        return 2
    t_install = time.perf_counter() - t0
    plan = make_plan(args.quick, args.only, args.rounds)
    t1 = time.perf_counter()
    samples = run(plan, impls, args.clock)
    wall = time.perf_counter() - t1

    meta = {
        "command": "python -m benchmarks"
        + (" --quick" if args.quick else "")
        + (" --clock cpu" if args.clock == "cpu" else ""),
        "argv": sys.argv[1:] if argv is None else argv,
        "quick": args.quick,
        "clock": args.clock,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(wall, 1),
        "install_s": round(t_install, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "git_rev": _git_rev(),
        "cache_dir": str(peers.cache_root()),
        "loadavg_start": load_start,
        "loadavg_end": _loadavg(),
        "plan": [
            {
                "key": s.key,
                "workload": s.workload,
                "rounds": s.rounds,
                "params": s.params,
            }
            for s in plan
        ],
    }
    results = report.build(meta, impls, samples)
    print(report.table(results))
    out = report.write_json(results, args.output)
    print(f"\nJSON: {out}")
    if not args.no_chart:
        chart = report.write_chart(results, args.chart or out.with_suffix(".png"))
        print(
            f"chart: {chart}" if chart else "chart: skipped (matplotlib not importable)"
        )
    print(f"wall time: {wall:.1f}s (+ {t_install:.1f}s checking/installing peers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
