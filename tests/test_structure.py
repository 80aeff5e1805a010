"""The layout rules the code review asks for, checked on every run rather than remembered.

- The product (dlm_core, audio, assistant, web) never imports the training code, the benchmarks or the
  tests: an installed `dlm-voice` ships only its own packages.
- No function in the product, the training code or the benchmarks is longer than MAX_FUNCTION_LINES.
- One style: `ruff format` and `ruff check` (configured in pyproject.toml) pass over the whole tree.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("dlm_core", "audio", "assistant", "web")
NOT_SHIPPED = ("training", "bench", "tests", "testkit")
CHECKED_FOR_LENGTH = (*PRODUCT, "training", "bench")
MAX_FUNCTION_LINES = 60


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
