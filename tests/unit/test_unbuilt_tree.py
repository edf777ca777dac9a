"""A source tree whose compiled core is not built must say how to build it.

From a checkout's root, the source folder ``aioprometheus/`` shadows any
installed copy, so a new user who ran ``pip install .`` (not ``-e``) gets the
unbuilt tree: that must be an ImportError with the build command, not an
AttributeError from deep inside the package.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "aioprometheus"
BUILD_HINT = "python -m pip install -e ."

# Prints what importing the package from the current directory raised.
IMPORT_PROBE = """
import json
try:
    import aioprometheus
except BaseException as error:
    print(json.dumps({"type": type(error).__name__,
                      "is_import_error": isinstance(error, ImportError),
                      "message": str(error)}))
else:
    print(json.dumps({"type": None, "file": aioprometheus.__file__}))
"""


@pytest.fixture
def unbuilt_tree(tmp_path):
    """A copy of the package sources without any compiled module."""
    shutil.copytree(
        PACKAGE,
        tmp_path / "aioprometheus",
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "*.c"),
    )
    assert not list((tmp_path / "aioprometheus").glob("_core.*.so"))
    return tmp_path


def _run(tree, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(
        [sys.executable, "-S", *args],  # -S: no site-packages, no editable finder
        cwd=str(tree),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kernels_folder_is_not_a_namesake_of_the_compiled_module(unbuilt_tree):
    # a folder named like the extension would be imported as a namespace
    # package in its place, and fail far from the cause
    assert not (unbuilt_tree / "aioprometheus" / "_core").exists()


def test_import_from_unbuilt_tree_raises_import_error_with_build_hint(unbuilt_tree):
    result = _run(unbuilt_tree, "-c", IMPORT_PROBE)
    assert result.returncode == 0, result.stderr
    raised = json.loads(result.stdout.strip().splitlines()[-1])
    assert raised["type"] is not None, f"imported {raised.get('file')}"
    assert raised["is_import_error"], raised
    assert BUILD_HINT in raised["message"]
    # names the tree that lacks the build, so the user knows which one
    assert str(unbuilt_tree / "aioprometheus") in raised["message"]


def test_demo_from_unbuilt_tree_fails_with_build_hint(unbuilt_tree):
    result = _run(unbuilt_tree, "-m", "aioprometheus")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert BUILD_HINT in result.stderr
    assert "AttributeError" not in result.stderr
