"""The examples the documentation includes (``literalinclude``), run as a
user runs them: examples/service_example.py serving, examples/pusher_example.py
pushing to a real Pushgateway, and examples/multiprocess_app.py under real
gunicorn (with examples/gunicorn_conf.py) and ``uvicorn --workers``, in
multi-process mode."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import servers
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
WORKERS = 2
JOBS = 30


def _samples(body: bytes):
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_service_example_serves_all_four_kinds_and_stops_on_ctrl_c():
    port = servers.free_port()
    proc = servers.start_python(
        str(EXAMPLES / "service_example.py"), "--port", str(port)
    )
    try:
        line = servers.first_line(proc)
        url = f"http://127.0.0.1:{port}/metrics"
        assert url in line, line

        def served():
            families = {
                f.name: f
                for f in text_string_to_metric_families(
                    servers.http_get(url).body.decode()
                )
            }
            return families if "example_size_bytes" in families else None

        families = servers.wait_until(served, timeout=20, what="example metrics")
        kinds = {name: families[name].type for name in families}
        assert kinds == {
            "example_events": "counter",
            "example_queue_depth": "gauge",
            "example_latency_seconds": "histogram",
            "example_size_bytes": "summary",
        }
    except BaseException:
        proc.kill()
        proc.communicate(timeout=10)
        raise
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert servers.port_is_free(port)


def test_pusher_example_pushes_its_group(pushgateway):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "pusher_example.py"), pushgateway.base_url],
        cwd=str(REPO),
        env=servers.checkout_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "pushed to " + pushgateway.base_url in result.stdout
    samples = _samples(pushgateway.metrics_text().encode())
    group = (("dataset", "2024/01"), ("instance", "host-1"), ("job", "example_batch"))
    for kind in ("even", "odd"):
        key = ("example_batch_records_total", tuple(sorted(group + (("kind", kind),))))
        assert samples[key] == 500


def _serve_and_count(tmp_path, name, argv_for_port):
    multiproc_dir = tmp_path / "metrics"
    multiproc_dir.mkdir()
    server = servers.start_server_group(
        name,
        argv_for_port,
        tmp_path / name,
        "/metrics",
        env=servers.checkout_env(PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir)),
    )
    try:
        base = f"http://127.0.0.1:{server.port}"
        workers = set()
        for size in range(JOBS):
            res = servers.http_request(f"{base}/jobs/{size * 500}", method="POST")
            assert res.status == 200, res.body
            workers.add(res.json()["worker"])

        def every_worker_up():
            samples = _samples(servers.http_get(f"{base}/metrics").body)
            return samples if samples[("app_workers", ())] == WORKERS else None

        samples = servers.wait_until(every_worker_up, timeout=30, what="workers")
        # the same totals whichever worker answers the scrape
        for _ in range(4):
            samples = _samples(servers.http_get(f"{base}/metrics").body)
            assert samples[("app_jobs_total", (("queue", "default"),))] == JOBS
            assert (
                samples[("app_job_size_bytes_count", (("queue", "default"),))] == JOBS
            )
            assert samples[("app_workers", ())] == WORKERS
        stores = [p for p in os.listdir(multiproc_dir) if p.endswith(".aiop")]
        assert len(stores) >= WORKERS
    finally:
        server.stop()


def test_multiprocess_example_under_gunicorn(tmp_path):
    servers.require_module("gunicorn")
    servers.require_module("uvicorn")
    _serve_and_count(
        tmp_path,
        "gunicorn",
        lambda port: servers.gunicorn_argv(
            EXAMPLES / "gunicorn_conf.py",
            "multiprocess_app:app",
            WORKERS,
            port,
            "--chdir",
            str(EXAMPLES),
        ),
    )


def test_multiprocess_example_under_uvicorn_workers(tmp_path):
    servers.require_module("uvicorn")
    _serve_and_count(
        tmp_path,
        "uvicorn",
        lambda port: servers.uvicorn_argv(
            "multiprocess_app:app", WORKERS, port, "--app-dir", str(EXAMPLES)
        ),
    )
