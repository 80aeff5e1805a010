"""The layout rules the code review asks for, checked on every run rather than remembered.

- The product (dlm_core, audio, turn_taking, assistant, web) never imports the training code, the
  benchmarks or the tests: an installed `dlm-voice` ships only its own packages.
- No function in the product, the training code, the benchmarks or the test kit is longer than
  MAX_FUNCTION_LINES.
- No import circle among the modules of the product, the training code, the test kit and the benchmarks
  (imports inside functions count too), and each package imports only from the layers below it (LAYERS).
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
NAMED_IN_README = ("assistant", "audio", "turn_taking", "dlm_core", "training", "bench", "testkit")  # .py
# Who may import whom, lowest first: a package imports its own modules and those of lower layers only.
# audio and dlm_core are leaves that know nothing of each other; turn-taking listens (audio) and reads
# the words with the AR twin (dlm_core); the assistant joins them; training builds the product's models
# from its code; the test kit trains with training's objectives; the benchmarks use everything.
LAYERS = (("audio", "dlm_core"), ("turn_taking",), ("assistant",), ("training",), ("testkit",), ("bench",))
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(packages) -> dict[str, set[str]]:
    """module -> the modules of `packages` it imports, anywhere in the file (a function's lazy import and
    a TYPE_CHECKING import count). `from pkg import mod` counts as importing pkg.mod."""
    paths = {_module_name(p): p for p in _sources(packages)}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        known = set()
        for target in _import_targets(ast.parse(path.read_text(), str(path)), package):
            while target and target not in paths:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                known.add(target)
        graph[name] = known
    return graph


def _import_targets(tree: ast.AST, package: str) -> set[str]:
    """Every dotted name an import statement of `tree` names (relative ones resolved from `package`);
    `from a import b` gives "a.b", which is module b or a name inside module a."""
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets.update(f"{base}.{a.name}" for a in node.names)
    return targets


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _layer_breaks(graph: dict[str, set[str]]) -> list[str]:
    layer = {pkg: i for i, group in enumerate(LAYERS) for pkg in group}
    wrong = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = module.split(".")[0], target.split(".")[0]
            if a != b and layer[b] >= layer[a]:
                wrong.append(f"{module} imports {target}")
    return wrong


def test_no_import_circles_and_imports_go_down_the_layers():
    graph = _import_graph([pkg for group in LAYERS for pkg in group])
    assert not _cycles(graph), "import circles:\n" + "\n".join(" <-> ".join(c) for c in _cycles(graph))
    assert not _layer_breaks(graph), f"imports against LAYERS {LAYERS}:\n" + "\n".join(_layer_breaks(graph))


def test_the_import_rules_see_a_circle_and_an_upward_import():
    graph = {"training.a": {"training.b"}, "training.b": {"training.a", "testkit.c"}, "testkit.c": set()}
    assert _cycles(graph) == [["training.a", "training.b"]]
    assert _layer_breaks(graph) == ["training.b imports testkit.c"]
    assert _cycles({"audio.a": {"audio.b"}, "audio.b": set()}) == []


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
