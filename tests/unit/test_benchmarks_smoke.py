"""The benchmark harness' machinery, in-process and tiny: the row
declarations, pyperf timing of real workloads (each loop really runs the
statement), figures, the report, the plan, the peers' isolation, the gzip
scrape and the real-Prometheus scrape.  Timings are only checked to be sane
numbers; no peer installs."""

import asyncio
import gzip
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyperf")

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from benchmarks import __main__ as driver  # noqa: E402
from benchmarks import peers, prometheus, report, workloads  # noqa: E402

TINY = {"min_time": 1e-4, "values": 2, "warmups": 1}


def api():
    try:
        return workloads.Api("aioprometheus")
    except Exception as exc:  # the package may be mid-build in a dev tree
        pytest.skip(f"aioprometheus not importable: {exc!r}")


def sample(key, **params):
    s = next(s for s in workloads.STEPS if s.key == key)
    timer = workloads.make_timer(s, api(), params)
    return s, timer, timer.sample(TINY)


def answer(benches, note=""):
    return {"status": "ok", "benches": workloads.dump(benches), "note": note}


def test_rows_are_declared_once_and_targets_name_real_rows():
    keys = [r.key for s in workloads.STEPS for r in s.rows]
    assert len(keys) == len(set(keys))
    assert len({s.key for s in workloads.STEPS}) == len(workloads.STEPS)
    for s in workloads.STEPS:
        assert callable(s.workload) or s.workload in driver.DRIVER_STEPS
        assert set(s.impls) <= set(workloads.IMPLS)
        for row in s.rows:
            for t in row.targets:
                assert t.ref in (None, *workloads.IMPLS, *keys), t
                assert t.kind != "floor" or row.x_floor
    required = {"middleware_asgi", "scrape_gzip_p50_10k", "prometheus_10k"}
    required |= {"native_histogram_observe", "windowed_summary_observe"}
    required |= {"counter_inc_exemplar", "memory_native_20", "memory_native_160"}
    required |= {"openmetrics_render_10k", "protobuf_render_native_10k"}
    assert required <= set(keys)


def test_micro_sample_runs_the_statement_every_loop():
    s, timer, benches = sample("counter_inc_labels")
    assert set(benches) == {"stmt", "loop", "floor"}
    loops = workloads.loops_of(benches["stmt"])
    assert all(workloads.loops_of(b) == loops for b in benches.values())
    c, labels = timer.timed.names["m"], timer.timed.names["labels"]
    # setup's 128 + pyperf's calibration + its warm-up and values at `loops`
    assert c.get(labels) >= 128 + loops * (TINY["values"] + TINY["warmups"])
    fig = workloads.micro_figures(benches)
    stmt, loop = benches["stmt"].median(), benches["loop"].median()
    assert fig["value"] == pytest.approx((stmt - loop) * 1e9)
    assert fig["raw"] == pytest.approx(stmt * 1e9) and fig["raw"] > 0
    assert fig["x_floor_raw"] == pytest.approx(stmt / benches["floor"].median())


def test_fresh_literal_row_has_its_own_floor():
    _, timer, benches = sample("counter_inc_literal")
    floor = next(s for s in workloads.STEPS if s.key == "floor_literal")
    assert timer.timed.against == floor.workload(api()).stmt
    c = timer.timed.names["m"]
    counts = [c.get({"path": r, "method": "GET"}) for r in workloads.ROUTES]
    assert min(counts) >= 1 and "floor" in benches


def test_floors_are_not_paired_with_a_floor():
    _, _, benches = sample("floor")
    assert set(benches) == {"stmt", "loop"}
    assert "x_floor" not in workloads.micro_figures(benches)


def test_render_and_loop_samples():
    _, timer, benches = sample("text_render_1k", fmt="text", series=1_000)
    assert timer.note.endswith("bytes") and benches["call"].median() > 0
    _, _, benches = sample("asyncio_loop")
    fig = workloads.loop_figures(benches)
    assert fig["instrumented_rate"] > 0 and fig["baseline_rate"] > 0


def test_fixture_has_the_requested_series():
    reg = workloads.build_fixture(api(), 1200)
    assert sum(len(c.get_all()) for c in reg.get_all()) == 1200


def test_report_from_inprocess_samples(tmp_path):
    steps = [s for s in workloads.STEPS if s.key in ("floor", "counter_inc_labels")]
    _, _, floor = sample("floor")
    _, _, inc = sample("counter_inc_labels")
    impl = peers.Impl(key="ours", label="ours", family="aioprometheus", path=None)
    samples = {
        "floor": {"ours": [answer(floor)] * 2},
        "counter_inc_labels": {"ours": [answer(inc), answer(inc)]},
    }
    results = report.build({"command": "test"}, [impl], steps, samples)
    cell = results["rows"]["counter_inc_labels"]["values"]["ours"]
    assert cell["status"] == "ok" and cell["rounds"] == 2
    merged = report.merge(samples["counter_inc_labels"]["ours"])
    # the rounds' pyperf runs merged: a run per value and round
    assert merged["stmt"].get_nrun() == 2 * TINY["values"]
    assert cell["median"] == pytest.approx(workloads.micro_figures(merged)["value"])
    compare = results["rows"]["counter_inc_labels"]["compare"]
    assert compare["vs_aioprometheus"] is None  # no peer in this run
    assert compare["x_floor_ours"] == cell["x_floor"]
    targets = results["rows"]["counter_inc_labels"]["targets"]
    assert [t["kind"] for t in targets] == ["floor", "faster", "faster"]
    assert targets[1]["met"] is None  # peer missing: neither met nor missed
    text = report.table(results, steps)
    assert "counter inc, 2-label dict" in text and ">=30x aio" in text
    out = report.write_json(results, tmp_path / "r.json")
    assert json.loads(out.read_text())["rows"]["floor"]["unit"] == "ns/op"
    files = report.write_pyperf(steps, samples, tmp_path)
    assert [f.name for f in files] == ["pyperf-ours.json"]
    import pyperf

    suite = pyperf.BenchmarkSuite.load(str(files[0]))
    assert "counter_inc_labels.stmt" in suite.get_benchmark_names()


def test_targets_against_peers_and_other_rows():
    row = workloads.Row(
        "x",
        "x",
        "ms",
        targets=(
            workloads.faster("aioprometheus", 10),
            workloads.growth("y", 2, "<=2x y"),
        ),
    )
    rows = {
        "x": {
            "values": {
                "ours": {"status": "ok", "median": 3.0},
                "aioprometheus": {"status": "ok", "median": 24.0},
            }
        },
        "y": {"values": {"ours": {"status": "ok", "median": 1.0}}},
    }
    rows["x"]["compare"] = report._compare(row, rows["x"]["values"])
    met = [report._target(row, t, rows)["met"] for t in row.targets]
    assert met == [False, False]  # 8x < 10x; 3x > 2x


def test_plan_quick_is_smaller_than_full_and_only_selects_rows():
    quick = {s.key for s in driver.make_plan(quick=True)}
    full = {s.key for s in driver.make_plan(quick=False)}
    assert "text_render_100k" in full - quick and "middleware_uvicorn" in full - quick
    assert quick < full
    only = driver.make_plan(quick=True, only=["scrape_gzip"])
    assert [s.key for s in only] == ["scrape_gzip_10k", "scrape_gzip_static_10k"]
    assert driver.pick((1, 2), True) == 1 and driver.pick(3, False) == 3


def test_gzip_scrape_gets_gzip_from_ours():
    pytest.importorskip("aiohttp")
    scrape = workloads.Scrape(api(), 100, gzip=True)
    latencies = asyncio.run(scrape.round(3, 1.0))
    assert len(latencies) == 3 and all(x > 0 for x in latencies)
    assert scrape.note.endswith("(gzip)")
    static = workloads.Scrape(api(), 100, static=True, gzip=True)
    asyncio.run(static.round(3, 1.0))
    assert static.note.endswith("(gzip)")
    # prometheus_client's own aiohttp handler serves its exposition
    pc = workloads.Scrape(workloads.Api("prometheus_client"), 100)
    assert len(asyncio.run(pc.round(3, 1.0))) == 3 and pc.note.endswith("(identity)")


def test_peer_envs_isolate_the_import_path(tmp_path):
    ours = peers.ours()
    assert ours.env().get("PYTHONPATH") in (None, str(REPO_ROOT))
    assert ours.info["ok"] and ours.expect is not None
    folder = tmp_path / "aioprometheus-23.12.0"
    peer = peers.Impl(
        key="aioprometheus", label="x", family="aioprometheus", path=folder
    )
    assert peer.env()["PYTHONPATH"] == str(folder)
    # a worker pointed at the wrong folder refuses to run
    info = workloads.identify({"family": "json", "expect": str(tmp_path)})
    assert info["ok"] is False and "expected under" in info["reason"]


def test_unbuilt_checkout_is_reported_with_the_build_hint(tmp_path):
    shutil.copytree(
        REPO_ROOT / "aioprometheus",
        tmp_path / "aioprometheus",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    impl = peers.Impl("ours", "ours", "aioprometheus", tmp_path, expect=tmp_path)
    # -S: no site-packages, so no editable install can lend its build
    cmd = [sys.executable, "-S", str(peers.WORKER_SCRIPT)]
    proc = subprocess.run(
        [*cmd, "family=aioprometheus", f"expect={tmp_path}"],
        input="",
        env=impl.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    info = json.loads(proc.stdout)
    assert proc.returncode == 1 and info["ok"] is False
    assert "ImportError" in info["reason"]
    assert "python -m pip install -e ." in info["reason"]


def test_driver_stops_early_when_ours_cannot_run(monkeypatch, capsys, tmp_path):
    def unavailable():
        raise peers.OursUnavailable("ImportError: build me")

    def no_install(*args, **kwargs):
        raise AssertionError("peers installed although ours cannot run")

    monkeypatch.setattr(peers, "ours", unavailable)
    monkeypatch.setattr(peers, "ensure_installed", no_install)
    code = driver.main(["--only", "floor", "--output", str(tmp_path / "r.json")])
    assert code == 2
    assert "cannot measure ours: ImportError: build me" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_real_prometheus_scrapes_ours_and_the_floor():
    if shutil.which("prometheus") is None:
        pytest.skip("no prometheus on PATH")
    env = peers.Impl(
        key="ours", label="ours", family="aioprometheus", path=REPO_ROOT
    ).env()
    ours = prometheus.Exporter(env, "service", 200)
    floor = prometheus.Exporter(env, "static", 200)
    try:
        avg = prometheus.scrape([ours.target, floor.target], 1, 2, 0)
    finally:
        stats = ours.stop(), floor.stop()
    assert set(avg) == {ours.target, floor.target}
    assert all(0 < ms < 1000 for ms in avg.values())
    assert stats[0]["scrapes"] >= 2 and stats[0]["handler"] > 0
    assert stats[1]["scrapes"] >= 2  # the floor's static handler, timed too
    assert stats[1]["lateness"] >= 0
    assert math.isfinite(stats[0]["lateness"])


def test_floor_serves_what_ours_answers_prometheus():
    import urllib.request

    env = peers.Impl(
        key="ours", label="ours", family="aioprometheus", path=REPO_ROOT
    ).env()
    bodies, types = [], []
    for mode in ("service", "static"):
        exporter = prometheus.Exporter(env, mode, 50)
        try:
            request = urllib.request.Request(
                f"http://{exporter.target}/metrics",
                headers={
                    "Accept": prometheus.PROMETHEUS_ACCEPT,
                    "Accept-Encoding": "gzip",
                },
            )
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(request, timeout=10) as resp:
                assert resp.headers["Content-Encoding"] == "gzip"
                types.append(resp.headers["Content-Type"])
                bodies.append(gzip.decompress(resp.read()))
        finally:
            exporter.stop()
    assert bodies[0] == bodies[1] and types[0] == types[1]
    assert bodies[0].count(b"bench_requests_total{") == 50
    assert bodies[0].count(b"bench_latency_seconds_count{") == 5


def test_prometheus_rows_skip_with_a_message_without_the_binary(monkeypatch):
    monkeypatch.setattr(prometheus.shutil, "which", lambda name: None)
    samples, note = prometheus.run([], {}, quick=True)
    assert samples == {} and "skipped" in note and "prometheus" in note


def test_capability_rows_measure_the_feature_and_peers_say_not_offered():
    _, timer, _ = sample("native_histogram_observe")
    h, labels = timer.timed.names["m"], timer.timed.names["labels"]
    assert sum(h.get_native(labels)["positive"].values()) >= 128
    _, timer, _ = sample("counter_inc_exemplar")
    assert timer.timed.names["m"].get(labels) >= 128
    _, timer, _ = sample("windowed_summary_observe")
    assert "rank err" in timer.note  # the windowed summary's own accuracy
    pc = workloads.Api("prometheus_client")
    for key in ("native_histogram_observe", "windowed_summary_observe"):
        s = next(s for s in workloads.STEPS if s.key == key)
        with pytest.raises(workloads.Unavailable):
            s.workload(pc)
    with pytest.raises(workloads.Unavailable):
        workloads.Render(pc, "protobuf", 10)


def test_native_memory_series_get_the_requested_buckets():
    from aioprometheus import Histogram, Registry

    for buckets in (20, 160):
        h = Histogram("h", "d", registry=Registry(), native_histogram_bucket_factor=1.1)
        for v in workloads.native_values(buckets):
            h.observe({}, v)
        assert len(h.get_native({})["positive"]) == buckets
        # the workload checks its own series the same way (RuntimeError if not)
        per_series = workloads.memory_per_series(api(), "Histogram", 100, buckets)
        assert math.isfinite(per_series)
    reg = workloads.build_fixture(api(), 600, native=True)
    (h,) = [m for m in reg.get_all() if m.name == "bench_fixture_0"]
    assert (
        len(h.get_native(dict(method="GET", route="/api/v1/resource/0/0"))["positive"])
        == 20
    )


def test_openmetrics_renders_of_ours_and_prometheus_client():
    for family in ("aioprometheus", "prometheus_client"):
        call = workloads.Render(workloads.Api(family), "openmetrics", 100)
        assert call.fn().endswith(b"# EOF\n")


def test_driver_runs_a_worker_and_a_fresh_memory_worker(tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["--quick", "--impls", "ours", "--rounds", "1", "--no-chart"]
    args += ["--output", str(out), "--only", "floor", "memory_counter"]
    assert driver.main(args) == 0
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"floor", "floor_literal", "memory_counter"}
    assert rows["floor"]["values"]["ours"]["median"] > 0
    assert rows["memory_counter"]["values"]["ours"]["status"] == "ok"
    assert (tmp_path / "pyperf-ours.json").exists()
    assert "memory, 2-label counter series" in capsys.readouterr().out


def test_multiprocess_rows_measure_shared_stores_for_ours_and_prometheus_client():
    import os

    from aioprometheus import multiprocess

    _, timer, _ = sample("counter_inc_multiprocess")
    counter = timer.timed.names["m"]
    assert counter.multiprocess_mode == "all"  # its series are in a store
    for family in ("aioprometheus", "prometheus_client"):
        read = workloads.MultiprocessRead(workloads.Api(family), workers=2, series=50)
        try:
            assert read.expected == 150
            programs = read.programs(workloads.clock)  # waits for the workers
            assert read.total() == 150
            assert set(programs) == (
                {"warm"} if family != "aioprometheus" else {"warm", "cold"}
            )
            assert all(run(2) > 0 for run in programs.values())
            if family == "aioprometheus":
                assert len(multiprocess.store_files(read.directory)) == 2
        finally:
            directory = read.directory
            read.__del__()
        assert not os.path.exists(directory)
