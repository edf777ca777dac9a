"""The seed README example (unchanged) and ``python -m aioprometheus`` run as
real subprocesses, serve their metrics and exit cleanly on SIGINT/SIGTERM."""

import re
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
import servers
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "seed_readme_example.py"
SEED_README_CANDIDATES = [
    REPO.parent / "shared" / "seed-README.rst",
    REPO / "shared" / "seed-README.rst",
]


def _families(url):
    res = servers.http_get(url)
    assert res.status == 200
    return {f.name: f for f in text_string_to_metric_families(res.body.decode())}


def _stop(proc, sig, timeout=20):
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"process did not exit within {timeout}s after {sig!r}:\n{err}")
    return proc.returncode, out, err


def test_example_is_the_readme_code_unchanged():
    readme = next((p for p in SEED_README_CANDIDATES if p.exists()), None)
    if readme is None:
        pytest.skip("shared/seed-README.rst not found next to the repository")
    text = readme.read_text()
    start = text.index(".. code-block:: python3\n")
    block = text[start:].split("\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith(" "):
            break
        lines.append(line)
    code = textwrap.dedent("\n".join(lines)).strip("\n") + "\n"
    assert EXAMPLE.read_text() == code


def test_seed_readme_example_runs_and_exits_cleanly_on_sigint():
    if not servers.port_is_free(8000) or not servers.port_is_free(8000, "0.0.0.0"):
        pytest.skip("port 8000 (fixed by the example) is busy")
    proc = servers.start_python(str(EXAMPLE))
    try:

        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"example exited early: {proc.communicate()}")
            fams = _families("http://127.0.0.1:8000/metrics")
            fam = fams.get("request_processing_seconds")
            if fam is None:
                return None
            names = {s.name for s in fam.samples}
            if "request_processing_seconds_count" not in names:
                return None
            return fam

        fam = servers.wait_until(ready, timeout=20, what="the example's metrics")
        assert fam.type == "summary"
        quantiles = {
            s.labels.get("quantile")
            for s in fam.samples
            if s.name == "request_processing_seconds"
        }
        assert quantiles == {"0.5", "0.9", "0.99"}
        by_name = {s.name: s.value for s in fam.samples if not s.labels}
        assert by_name["request_processing_seconds_count"] >= 1
        # random.random() durations lie in [0, 1).
        assert (
            0
            <= by_name["request_processing_seconds_sum"]
            < by_name["request_processing_seconds_count"]
        )
    except BaseException:
        proc.kill()
        proc.communicate(timeout=10)
        raise
    code, out, err = _stop(proc, signal.SIGINT)
    assert code == 0, err
    assert "Traceback" not in err, err
    assert servers.port_is_free(8000)


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
def test_python_m_aioprometheus_demo(sig):
    proc = servers.start_python(
        "-m", "aioprometheus", "--host", "127.0.0.1", "--port", "0"
    )
    try:
        first_line = servers.first_line(proc)
        assert first_line, "the demo printed nothing within 20s"
        match = re.search(r"(http://127\.0\.0\.1:\d+/metrics)", first_line)
        assert match, first_line
        url = match.group(1)

        def has_traffic():
            fams = _families(url)
            fam = fams.get("demo_requests")
            return fams if fam and fam.samples else None

        fams = servers.wait_until(has_traffic, timeout=20, what="demo metrics")
        assert fams["demo_requests"].type == "counter"
        assert fams["demo_request_duration_seconds"].type == "histogram"
        assert fams["demo_response_size_bytes"].type == "summary"
        assert fams["demo_requests_in_progress"].type == "gauge"
        assert servers.http_get(url.replace("/metrics", "/")).status == 200
    except BaseException:
        proc.kill()
        proc.communicate(timeout=10)
        raise
    code, out, err = _stop(proc, sig)
    assert code == 0, err
    assert "Traceback" not in err, err
    assert "stopped" in out
