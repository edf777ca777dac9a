"""The implementations compared, their isolated installs and child processes.

aioprometheus 23.12.0 has our import name, so it (and prometheus_client, to pin
its version) is installed with ``pip install --target`` into a folder of
``~/.cache/aioprometheus-bench`` (or of ``$XDG_CACHE_HOME``), outside the
repository.  Each implementation runs in workers whose ``PYTHONPATH`` holds
exactly one of: the checkout (ours, built in place) or one peer folder;
without an in-place build, ours is an installed build of ours.
"""

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib.machinery import EXTENSION_SUFFIXES, PathFinder
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_SCRIPT = Path(__file__).resolve().parent / "workloads.py"
# key (the import name too), pip requirement, label
PEERS = (
    ("aioprometheus", "aioprometheus==23.12.0", "aioprometheus 23.12.0"),
    ("prometheus_client", "prometheus_client==0.26.0", "prometheus_client 0.26.0"),
)


@dataclass
class Impl:
    """One implementation under test."""

    key: str  # "ours", "aioprometheus", "prometheus_client"
    label: str  # shown in the table
    family: str  # import name / API family
    path: Optional[Path]  # folder put on PYTHONPATH (None: the environment's)
    expect: Optional[Path] = None  # the package must be imported from here
    problem: Optional[str] = None  # why it cannot run (install failed, ...)
    info: Dict[str, object] = field(default_factory=dict)

    def env(self) -> Dict[str, str]:
        """PYTHONPATH: this implementation's folder only; fixed hash seed
        (the same dict/set layouts every run)."""
        env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPATH", None)
        if self.path is not None:
            env["PYTHONPATH"] = str(self.path)
        return env


class Child:
    """A child process speaking JSON lines: its first line (``first``), then
    a request a line in, an answer a line out, until its input ends."""

    def __init__(self, cmd: List[str], env: Dict[str, str], cwd=None, timeout=600):
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            env=env, cwd=cwd, text=True,
        )  # fmt: skip
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.first = self.read(timeout)

    def read(self, timeout: float = 600) -> Dict[str, Any]:
        """The next line; if the child ends or is silent for ``timeout``
        seconds, an error (and the child killed)."""
        ready, _, _ = select.select([self.stdout], [], [], timeout)
        line = self.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        stop(self.proc, 0)
        self.stderr.seek(0)
        why = f"process died or timed out: {self.stderr.read()[-1500:].strip()}"
        return {"ok": False, "status": "error", "reason": why}

    def request(self, cmd: Any, timeout: float = 600) -> Dict[str, Any]:
        if self.proc.poll() is not None:
            return {"status": "error", "reason": "process not running"}
        self.stdin.write(json.dumps(cmd) + "\n")
        self.stdin.flush()
        return self.read(timeout)

    def close(self) -> None:
        """End of input: the child stops."""
        with contextlib.suppress(OSError):  # it has already stopped
            self.stdin.close()
        stop(self.proc, terminate=False)
        self.stderr.close()


def worker(impl: Impl, cwd: str, clock: str = "wall") -> Child:
    """A worker process (``workloads.py``) for ``impl``: its first line says
    what it imported (``impl.info``), or why it cannot run (``impl.problem``)."""
    cmd = [sys.executable, str(WORKER_SCRIPT), f"family={impl.family}"]
    cmd += [f"expect={impl.expect or ''}", f"clock={clock}"]
    child = Child(cmd, impl.env(), cwd)
    impl.info = child.first
    if not child.first.get("ok"):
        impl.problem = str(child.first.get("reason", "worker failed to start"))
    return child


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aioprometheus-bench"


def ensure_installed(requirement: str, no_deps: bool = False) -> Path:
    """``pip install --target`` a cache folder, once (a marker remembers it);
    with `no_deps`, its dependencies are the running environment's."""
    suffix = "-nodeps" if no_deps else ""
    folder = cache_root() / (requirement.replace("==", "-") + suffix)
    marker = folder / ".bench-installed"  # written once pip has succeeded
    if marker.exists() and marker.read_text().strip() == requirement:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    print(f"[benchmarks] installing {requirement} into {folder}", file=sys.stderr)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input",
           "--disable-pip-version-check", "--no-warn-script-location"]  # fmt: skip
    pip += ["--no-deps"] * no_deps + ["--target", str(folder), requirement]
    proc = subprocess.run(pip, capture_output=True, text=True)
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).strip()[-800:]
        raise RuntimeError(f"pip install {requirement} failed: {why}")
    marker.write_text(requirement + "\n")
    return folder


class OursUnavailable(RuntimeError):
    """Ours was asked for but cannot be imported; the message says why (for an
    unbuilt checkout: the package's ImportError, which says how to build)."""


def _has_core(package: Path) -> bool:
    """True if ``package`` holds a compiled core this interpreter can load."""
    return any((package / f"_core{suffix}").exists() for suffix in EXTENSION_SUFFIXES)


def _installed_ours() -> Optional[Path]:
    """The site folder of an aioprometheus with a compiled core (ours, not
    23.12) installed outside the checkout, e.g. by ``pip install .``."""
    elsewhere = [p for p in sys.path if p and Path(p).resolve() != REPO_ROOT]
    spec = PathFinder.find_spec("aioprometheus", elsewhere)
    if spec is None or not spec.origin:
        return None
    package = Path(spec.origin).parent
    return package.parent if _has_core(package) else None


def ours() -> Impl:
    """Our package: the checkout's in-place build if there is one, else an
    installed build of ours; with neither, OursUnavailable carrying the
    checkout's ImportError (which says how to build).  It is imported as
    its workers will (a worker given no work, outside the checkout)."""
    installed = None if _has_core(REPO_ROOT / "aioprometheus") else _installed_ours()
    path = installed or REPO_ROOT
    impl = Impl("ours", "ours", "aioprometheus", None if installed else path, path)
    worker(impl, tempfile.gettempdir()).close()
    if impl.problem:
        raise OursUnavailable(impl.problem)
    if installed:
        print(f"[benchmarks] ours: no build in {REPO_ROOT}, measuring {path}'s",
              file=sys.stderr)  # fmt: skip
    return impl


def implementations(selected: List[str]) -> List[Impl]:
    """The implementations to run, in round order (ours first, checked before
    any peer is installed); a peer that cannot be installed is not run."""
    impls = [ours()] if "ours" in selected else []
    for key, requirement, label in (p for p in PEERS if p[0] in selected):
        impl = Impl(key, label, key, None)
        try:
            impl.path = impl.expect = ensure_installed(requirement)
        except Exception as exc:  # no network, pip failure: run without it
            impl.problem = str(exc)
            print(f"[benchmarks] {label} unavailable: {exc}", file=sys.stderr)
        impls.append(impl)
    return impls


def stop(proc: "subprocess.Popen[Any]", timeout: float = 30, terminate=True) -> None:
    """The child process ended: terminated (unless it was told to stop
    already), killed if still there after ``timeout`` seconds."""
    if terminate:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
