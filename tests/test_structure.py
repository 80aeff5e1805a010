"""The layout rules the code review asks for, checked on every run rather than remembered.

- The product (dlm_core, audio, turn_taking, assistant, web) never imports the training code, the
  benchmarks or the tests: an installed `dlm-voice` ships only its own packages.
- No function in the product, the training code, the benchmarks or the test kit is longer than
  MAX_FUNCTION_LINES.
- Every source file (and every file of the page) is named in README.md's "How it is built" table.
- One style: `ruff format` and `ruff check` (configured in pyproject.toml) pass over the whole tree.
"""

from __future__ import annotations

import ast
import posixpath
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("dlm_core", "audio", "turn_taking", "assistant", "web")
NOT_SHIPPED = ("training", "bench", "tests", "testkit")
CHECKED_FOR_LENGTH = (*PRODUCT, "training", "bench", "testkit")
MAX_FUNCTION_LINES = 60
NAMED_IN_README = (
    "assistant",
    "audio",
    "turn_taking",
    "dlm_core",
    "training",
    "bench",
    "testkit",
)  # their .py files
BUILT_SECTION = "## How it is built"


def _sources(packages) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def _imported_modules(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _sources(PRODUCT), ids=lambda p: str(p.relative_to(ROOT)))
def test_product_imports_nothing_it_does_not_ship(path):
    imported = _imported_modules(ast.parse(path.read_text(), str(path)))
    wrong = sorted(m for m in imported if m.split(".")[0] in NOT_SHIPPED)
    assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_functions_stay_short():
    long = []
    for path in _sources(CHECKED_FOR_LENGTH):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these functions:\n" + "\n".join(long)


def _files_to_name() -> list[str]:
    """The .py files of NAMED_IN_README and every file of web/, as repository paths."""
    files = [p for pkg in NAMED_IN_README for p in (ROOT / pkg).rglob("*.py")]
    files += [p for p in (ROOT / "web").rglob("*") if p.is_file()]
    paths = {p.relative_to(ROOT).as_posix() for p in files if p.name != "__init__.py"}
    return sorted(p for p in paths if "__pycache__" not in p)


def _named_in_table(readme: str) -> set[str]:
    """The paths the first column of the "How it is built" table names. In a cell, a name with a slash is
    a path from the repository root, and a bare name is a sibling of the path before it:
    `dlm_core/faithful.py`, `faithful_blocks.py` names dlm_core/faithful_blocks.py."""
    section = readme.split(BUILT_SECTION, 1)[1].split("\n## ", 1)[0]
    named = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        folder = ""
        for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
            path = name if "/" in name.rstrip("/") else posixpath.join(folder, name)
            named.add(path)
            folder = posixpath.dirname(path.rstrip("/"))
    return named


def test_readme_names_every_file():
    named = _named_in_table((ROOT / "README.md").read_text())
    missing = [p for p in _files_to_name() if p not in named]
    assert not missing, f"name these in README.md's table under {BUILT_SECTION!r}:\n" + "\n".join(missing)
    gone = sorted(p for p in named if not (ROOT / p).exists())
    assert not gone, f"README.md's table names files that are not there: {gone}"


def test_the_readme_rule_reads_a_row_naming_several():
    table = f"{BUILT_SECTION}\n\n| `a/b.py`, `c.py` | x `d.py` |\n| `w/` | y |\n\n## Next\n| `e/f.py` | z |\n"
    assert _named_in_table(table) == {"a/b.py", "a/c.py", "w/"}


def test_the_rule_sees_a_wrong_import():
    tree = ast.parse("from training.data import load_examples\nimport tests.speech\nfrom . import x\n")
    assert _imported_modules(tree) == {"training.data", "tests.speech"}


@pytest.mark.parametrize("command", [["format", "--check"], ["check"]], ids=["ruff format", "ruff check"])
def test_one_style(command):
    """`ruff format` and `ruff check` (configured in pyproject.toml) pass over the whole tree."""
    ruff = Path(sys.executable).parent / "ruff"
    assert ruff.is_file(), "ruff is a dev dependency: pip install -e '.[dev]'"
    done = subprocess.run([str(ruff), *command, "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
