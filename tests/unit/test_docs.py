"""The documentation's examples run: every ``>>>`` session in docs/*.rst is
a doctest, run here (so by the README's test command too) with the stdlib's
runner, each page in a fresh interpreter (the pages use the default
registry, as users do). And no page shows Python code that nothing runs:
code is either a doctest or included from a file in examples/ or docs/
that a test runs."""

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.rst"))
# the guides that must keep examples (a page losing all of them fails)
GUIDES = {"getting-started", "migrating", "production", "internals"}


def _examples(page: Path) -> int:
    parser = doctest.DocTestParser()
    return len(parser.get_examples(page.read_text(encoding="utf-8"), str(page)))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_page_doctests_pass(page):
    if page.stem in GUIDES:
        assert _examples(page) >= 5, f"{page.name} lost its doctests"
    if not _examples(page):
        return
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "doctest",
            "-o",
            "ELLIPSIS",
            "-o",
            "NORMALIZE_WHITESPACE",
            str(page),
        ],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_guide_is_a_page():
    assert GUIDES | {"performance", "api", "index"} <= {p.stem for p in PAGES}


CODE_BLOCK = re.compile(r"^\s*\.\. code-block:: (\w+)", re.MULTILINE)
INCLUDE = re.compile(r"^\s*\.\. literalinclude:: (\S+)", re.MULTILINE)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_python_is_shown_only_as_doctests_or_tested_files(page):
    text = page.read_text(encoding="utf-8")
    languages = set(CODE_BLOCK.findall(text))
    assert not languages & {"python", "python3", "py", "pycon"}, (
        f"{page.name}: a python code-block nothing runs; write a doctest or "
        "include a file from examples/"
    )
    tests = "".join(
        p.read_text(encoding="utf-8") for p in (REPO / "tests").rglob("*.py")
    )
    for included in INCLUDE.findall(text):
        path = (DOCS / included).resolve()
        assert path.exists(), included
        assert path.name in tests, (
            f"{page.name} includes {included}, which no test runs"
        )


def test_contributing_sanitizer_commands_cover_what_ci_runs():
    """CONTRIBUTING.md's AddressSanitizer commands (moved from README) run
    the tests .ci/run's sanitizer step runs."""
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    listed = re.search(r"sanitized_tests=\(([^)]*)\)", ci).group(1).split()
    contributing = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    shown = re.search(r'^\$ tests="([^"]*)"$', contributing, re.MULTILINE)
    assert shown, "CONTRIBUTING.md lost its sanitizer commands"
    assert shown.group(1).split() == listed
