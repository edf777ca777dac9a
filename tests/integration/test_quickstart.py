"""README's Quick start line, run exactly as written by a new user: in a fresh
``git clone`` of the committed HEAD, in a shell without this venv. It must
install, serve the demo's metrics, and exit cleanly on Ctrl-C (SIGINT).

The line starts the demo on its default port; ``$AIOPROMETHEUS_DEMO_PORT=0``
(read by the demo) moves it to a free port without touching the line.
"""

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import servers
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 600.0  # venv + pip (build of the compiled core included)
DEMO_URL = re.compile(r"demo: metrics at (http://127\.0\.0\.1:\d+/metrics)")


def quick_start_line(readme: Path) -> str:
    """The first console line of README's "Quick start" section."""
    section = readme.read_text().split("\nQuick start\n", 1)[1]
    match = re.search(r"^\s+\$ (.+)$", section, re.MULTILINE)
    assert match, "README's Quick start has no console line"
    return match.group(1).strip()


def new_user_env() -> dict:
    """This environment minus the test venv: no VIRTUAL_ENV, PYTHON* or
    venv bin folder on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "VIRTUAL_ENV" and not k.startswith("PYTHON")
    }
    venv_bin = os.path.join(sys.prefix, "bin")
    if sys.prefix != sys.base_prefix:
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin
        )
    env["PYTHONUNBUFFERED"] = "1"  # the demo's URL line must not sit in a buffer
    env["AIOPROMETHEUS_DEMO_PORT"] = "0"
    return env


def demo_pid(shell_pid: int) -> int:
    """The demo's pid: the shell itself if it exec'd the line's last command
    (bash does), else the shell's child running it."""
    candidates = [shell_pid]
    children = Path(f"/proc/{shell_pid}/task/{shell_pid}/children")
    if children.exists():
        candidates += [int(pid) for pid in children.read_text().split()]
    for pid in candidates:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"-m" in cmdline and b"aioprometheus" in cmdline:
            return pid
    raise AssertionError(f"no `python -m aioprometheus` among {candidates}")


def drain(stream, lines: "queue.Queue[str]") -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)


@pytest.fixture
def fresh_clone(tmp_path):
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        message = "needs git and a git checkout of the repository"
        if servers.servers_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    clone = tmp_path / "clone"
    subprocess.run(
        [git, "clone", "--quiet", str(REPO), str(clone)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return clone


def test_quick_start_line_serves_metrics_and_stops_on_ctrl_c(fresh_clone):
    line = quick_start_line(fresh_clone / "README.rst")
    assert line.endswith("python -m aioprometheus"), line
    shell = subprocess.Popen(
        ["bash", "-c", line],
        cwd=str(fresh_clone),
        env=new_user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: cleanup can reach pip's children
    )
    out_lines: queue.Queue[str] = queue.Queue()
    err_lines: queue.Queue[str] = queue.Queue()
    readers = [
        threading.Thread(target=drain, args=(stream, lines), daemon=True)
        for stream, lines in ((shell.stdout, out_lines), (shell.stderr, err_lines))
    ]
    for reader in readers:
        reader.start()
    seen = []
    try:
        deadline = time.monotonic() + INSTALL_TIMEOUT
        url = None
        while url is None:
            assert shell.poll() is None, f"the line exited early:\n{''.join(seen)}"
            try:
                seen.append(
                    out_lines.get(timeout=max(0.1, deadline - time.monotonic()))
                )
            except queue.Empty:
                pytest.fail(
                    f"no demo URL within {INSTALL_TIMEOUT:.0f}s:\n{''.join(seen)}"
                )
            match = DEMO_URL.search(seen[-1])
            url = match and match.group(1)

        def served_traffic():
            res = servers.http_get(url)
            assert res.status == 200
            families = {
                f.name: f for f in text_string_to_metric_families(res.body.decode())
            }
            requests = families.get("demo_requests")
            return families if requests and requests.samples else None

        families = servers.wait_until(served_traffic, timeout=20, what="demo metrics")
        assert families["demo_requests"].type == "counter"
        assert families["demo_request_duration_seconds"].type == "histogram"
        pid = demo_pid(shell.pid)
        # the clone's own compiled core serves them (the editable install)
        core = re.compile(re.escape(str(fresh_clone / "aioprometheus" / "_core.")))
        assert core.search(Path(f"/proc/{pid}/maps").read_text())
        os.kill(pid, signal.SIGINT)
        try:
            shell.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the demo did not exit within 20s of SIGINT")
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait(timeout=10)
    for reader in readers:
        reader.join(timeout=10)
    seen += list(out_lines.queue)
    err = "".join(err_lines.queue)
    assert shell.returncode == 0, err
    assert "Traceback" not in err, err
    assert any("demo: stopped" in x for x in seen), "".join(seen)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert port != 8000  # $AIOPROMETHEUS_DEMO_PORT=0 picked a free port
    assert servers.port_is_free(port)
