"""ruff (lint and format), mypy and the compiled core's stub stay clean.

The tools come with the test extra; a missing tool fails these tests rather
than skipping them, so CI can never pass without running them.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("aioprometheus", "tests", "benchmarks", "examples", "docs")


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        (sys.executable, "-m", *args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ruff_check():
    result = run_module("ruff", "check", *SOURCES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = run_module("ruff", "format", "--check", *SOURCES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy():
    result = run_module("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_stub_matches_the_built_extension():
    """_core.pyi is hand-written; stubtest compares it with the compiled module."""
    result = run_module(
        "mypy.stubtest", "aioprometheus._core", "--mypy-config-file", "pyproject.toml"
    )
    assert result.returncode == 0, result.stdout + result.stderr
