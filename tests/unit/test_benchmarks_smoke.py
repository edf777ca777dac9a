"""Smoke test of the benchmark suite's machinery, in-process and tiny.

No timing thresholds (timings are only checked to be sane numbers), no peer
installs, no network: it runs the floor and a few workloads against whatever
``aioprometheus`` is importable, then feeds the samples through the report.
"""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from benchmarks import __main__ as driver  # noqa: E402
from benchmarks import peers, report, workloads  # noqa: E402

TINY_MS = 0.2  # target per sample: calibration clamps N to its minimum


def _api():
    try:
        return workloads.Api("aioprometheus")
    except Exception as exc:  # the package may be mid-build in a dev tree
        pytest.skip(f"aioprometheus not importable: {exc!r}")


def _micro(name):
    api = _api()
    try:
        runner = workloads.prepare(api, name, {"target_ms": TINY_MS})
    except Exception as exc:
        pytest.fail(f"{name} could not be prepared: {exc!r}")
    return runner, runner.sample()


def test_floor_sample_structure():
    runner, s = _micro("floor")
    assert set(s) >= {"value", "raw", "loop", "n"}
    assert s["n"] == runner.n and s["n"] >= 1000
    assert s["raw"] > 0 and s["loop"] > 0
    assert math.isfinite(s["value"])
    # net = raw - loop by construction
    assert s["value"] == pytest.approx(s["raw"] - s["loop"])
    assert "floor" not in s  # the floor is not paired with itself


@pytest.mark.parametrize("name", ["counter_inc_labels", "counter_inc_nolabels"])
def test_counter_workload_counts_every_call(name):
    runner, s = _micro(name)
    assert s["raw"] > 0 and math.isfinite(s["value"])
    # the floor is timed within the same sample, for a drift-free ratio
    assert s["floor_raw"] > 0 and math.isfinite(s["floor"])
    c = runner.names["c"]
    labels = runner.names.get("labels", {})
    # setup inc (1) + calibration passes + warmup + REPEATS timed passes:
    # every loop iteration really incremented the counter.
    assert c.get(labels) >= 1 + runner.REPEATS * runner.n


def test_micro_statement_is_the_public_api():
    runner, _ = _micro("histogram_observe")
    assert runner.stmt == "m.observe(labels, v)"
    h = runner.names["m"]
    got = h.get(runner.names["labels"])
    assert got["count"] >= runner.REPEATS * runner.n
    assert got["sum"] > 0


def test_values_are_deterministic_and_spread():
    a = workloads.values(5000)
    b = list(a)
    workloads._VALUES_CACHE.clear()
    assert workloads.values(5000) == b
    assert min(a) < 0.01 and max(a) > 2.5  # across the default buckets


def test_fixture_has_the_requested_series():
    api = _api()
    reg = workloads.build_fixture(api, 1200)
    series = sum(len(c.get_all()) for c in reg.get_all())
    assert series == 1200
    text = workloads.text_formatter(api)(reg)
    assert isinstance(text, bytes)
    assert text.count(b"\nbench_fixture_") >= 1199


def test_report_from_inprocess_samples(tmp_path):
    _, floor = _micro("floor")
    _, inc = _micro("counter_inc_labels")
    impl = peers.Impl(key="ours", label="ours", family="aioprometheus", path=None)
    samples = {
        "floor": {"ours": [dict(floor, status="ok")] * 3},
        "counter_inc_labels": {"ours": [dict(inc, status="ok")] * 3},
        "summary_observe": {"ours": [{"status": "unavailable", "reason": "x"}]},
    }
    results = report.build({"command": "test"}, [impl], samples)
    rows = results["rows"]
    assert set(rows) == {"floor", "counter_inc_labels", "summary_observe"}
    cell = rows["counter_inc_labels"]["values"]["ours"]
    assert cell["status"] == "ok" and cell["rounds"] == 3
    assert cell["min"] <= cell["median"] <= cell["max"]
    assert cell["raw"]["median"] > 0
    cmp_ = rows["counter_inc_labels"]["compare"]
    assert cmp_["vs_aioprometheus"] is None  # no peer in this run
    assert cmp_["x_floor_raw_ours"] > 0
    assert cmp_["x_floor_raw_ours"] == cell["x_floor_raw"]["median"]  # paired
    assert rows["summary_observe"]["values"]["ours"]["status"] == "pending"
    targets = rows["counter_inc_labels"]["targets"]
    assert [t["kind"] for t in targets] == ["floor", "speedup", "speedup"]
    assert targets[1]["met"] is None  # peer missing: neither met nor missed
    text = report.table(results)
    assert "counter inc, 2-label dict" in text and "pending" in text
    out = report.write_json(results, tmp_path / "r.json")
    assert json.loads(out.read_text())["rows"]["floor"]["unit"] == "ns/op"


def test_plan_quick_is_smaller_than_full():
    quick = {s.key: s for s in driver.make_plan(quick=True)}
    full = {s.key: s for s in driver.make_plan(quick=False)}
    assert "text_render_100k" in full and "text_render_100k" not in quick
    assert set(quick) < set(full)
    assert all(quick[k].rounds <= full[k].rounds for k in quick)


def test_peer_envs_isolate_the_import_path(tmp_path):
    ours = peers.ours(tmp_path)
    env = ours.env()
    assert str(tmp_path) not in env.get("PYTHONPATH", "")
    assert ours.require_core and ours.forbid == tmp_path
    peer = peers.Impl(
        key="aioprometheus",
        label="x",
        family="aioprometheus",
        path=tmp_path / "aioprometheus-23.12.0",
    )
    assert peer.env()["PYTHONPATH"] == str(tmp_path / "aioprometheus-23.12.0")
    # a worker that is pointed at the wrong folder refuses to run
    info = workloads.identify("json", str(tmp_path), None, False)
    assert info["ok"] is False and "expected under" in info["reason"]


def test_fresh_literal_row_is_paired_with_the_same_literal_floor():
    runner, s = _micro("counter_inc_literal")
    assert runner.stmt == 'c.inc({"path": next(routes), "method": "GET"})'
    assert runner.floor_stmt == workloads.floor_literal(_api()).stmt
    assert s["floor_raw"] > 0 and math.isfinite(s["floor"])
    c = runner.names["c"]
    counts = [c.get({"path": r, "method": "GET"}) for r in workloads.ROUTES]
    assert len(set(workloads.ROUTES)) == 100 and min(counts) >= 1
    assert sum(counts) >= len(counts) + runner.REPEATS * runner.n


def test_fresh_literal_ratio_is_to_its_own_floor():
    _, floor_literal = _micro("floor_literal")
    _, inc = _micro("counter_inc_literal")
    impl = peers.Impl(key="ours", label="ours", family="aioprometheus", path=None)
    unpaired = {k: v for k, v in inc.items() if k not in ("floor", "floor_raw")}
    samples = {
        "floor": {"ours": [{"status": "ok", "value": 1e6, "raw": 1e6}]},
        "floor_literal": {"ours": [dict(floor_literal, status="ok")]},
        "counter_inc_literal": {"ours": [dict(unpaired, status="ok")]},
    }
    rows = report.build({"command": "test"}, [impl], samples)["rows"]
    cmp_ = rows["counter_inc_literal"]["compare"]
    # without a paired floor, the ratio falls back to the literal floor's row
    assert cmp_["x_floor_ours"] == pytest.approx(inc["value"] / floor_literal["value"])
    assert [t["target"] for t in rows["counter_inc_literal"]["targets"]] == [
        "<=1.5x floor"
    ]
    samples["counter_inc_literal"]["ours"] = [dict(inc, status="ok")]
    rows = report.build({"command": "test"}, [impl], samples)["rows"]
    paired = rows["counter_inc_literal"]["compare"]["x_floor_ours"]
    assert paired == pytest.approx(inc["value"] / inc["floor"])
    # the floors themselves get no ratio
    assert not any(k.startswith("x_floor") for k in rows["floor_literal"]["compare"])


def test_unbuilt_checkout_is_reported_with_the_build_hint(tmp_path):
    shutil.copytree(
        REPO_ROOT / "aioprometheus",
        tmp_path / "aioprometheus",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    impl = peers.Impl(key="ours", label="ours", family="aioprometheus", path=tmp_path)
    impl.expect, impl.require_core = tmp_path, True
    # -S: no site-packages, so no editable install can lend its build
    proc = subprocess.run(
        [sys.executable, "-S", str(peers.WORKER_SCRIPT), "identify"]
        + impl.worker_args(),
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
    def unavailable(root):
        raise peers.OursUnavailable("ImportError: build me")

    def no_install(*args, **kwargs):
        raise AssertionError("peers installed although ours cannot run")

    monkeypatch.setattr(peers, "ours", unavailable)
    monkeypatch.setattr(peers, "ensure_peer", no_install)
    code = driver.main(["--only", "floor", "--output", str(tmp_path / "r.json")])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot measure ours: ImportError: build me" in err
    assert not (tmp_path / "r.json").exists()
