"""Run a snippet in a fresh interpreter, so a crash of the compiled core is a
test failure (with the child's stderr) instead of the end of the pytest run.

The child inherits the environment, so under the AddressSanitizer CI step
(``LD_PRELOAD`` of the ASan runtime, ``ASAN_OPTIONS``, ``PYTHONMALLOC``) it
runs against the same instrumented build and any report fails the test.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_isolated(source: str, timeout: float = 120.0) -> str:
    """Run ``source`` with this interpreter; return its stdout, or fail the
    calling test with the exit status and stderr if it does not exit 0."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO_ROOT,
    )
    if proc.returncode != 0 or "AddressSanitizer" in proc.stderr:
        signal_note = " (killed by that signal)" if proc.returncode < 0 else ""
        raise AssertionError(
            f"child exited with {proc.returncode}{signal_note}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n"
            f"--- stderr ---\n{proc.stderr[-8000:]}"
        )
    return proc.stdout
