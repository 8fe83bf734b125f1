"""The layering of ``utils``: every module depends only downward (no import cycle, lazy imports
inside functions included: they hide a circle, they do not remove it), and no module uses
another module's ``_private`` names (what another module needs is public). The modules of one
subpackage (``utils.grader``) are one unit and share their private helpers."""

import ast
import sys
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[1] / "utils"


def _module_name(path: Path) -> str:
    parts = path.relative_to(UTILS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(imported utils module, imported names, line) for every import in the file."""
    package = _module_name(path) if path.name == "__init__.py" else \
        _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base == "utils" or base.startswith("utils."):
                for alias in node.names:  # `from utils import tasks` imports a module
                    sub = f"{base}.{alias.name}"
                    if (UTILS.parent / (sub.replace(".", "/") + ".py")).is_file() or \
                            (UTILS.parent / sub.replace(".", "/")).is_dir():
                        yield sub, [], node.lineno
                    else:
                        yield base, [alias.name], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("utils."):
                    yield alias.name, [], node.lineno


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(UTILS.rglob("*.py")):
        name = _module_name(path)
        graph[name] = {target for target, _, _ in _imports(path)
                       if target != name and not name.startswith(target + ".")
                       and target != "utils"}
    return graph


def test_no_import_cycle_among_utils_modules():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt in graph and not state.get(nxt):
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node, [node])
    assert not cycles, "import cycles among utils modules:\n" + "\n".join(cycles)


def test_no_module_uses_another_modules_private_names():
    problems = []
    for path in sorted(UTILS.rglob("*.py")):
        own = _module_name(path)
        for target, names, line in _imports(path):
            if target == own or (own.count(".") > 1 and
                                  target.rpartition(".")[0] == own.rpartition(".")[0]):
                continue  # the same module, or a sibling inside one subpackage
            problems += [f"{path.relative_to(UTILS.parent)}:{line} imports {target}.{n}"
                         for n in names if n.startswith("_") and not n.startswith("__")]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}
        for node in ast.walk(tree):  # `from utils import grpo_scratch` then grpo_scratch._pad
            if isinstance(node, ast.ImportFrom) and node.module == "utils":
                aliases.update({(a.asname or a.name): a.name for a in node.names})
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id in aliases and node.attr.startswith("_") and \
                    not node.attr.startswith("__"):
                problems.append(f"{path.relative_to(UTILS.parent)}:{node.lineno} uses "
                                f"{aliases[node.value.id]}.{node.attr}")
    assert not problems, "private names used across utils modules:\n" + "\n".join(problems)


def test_the_checks_see_a_cycle_and_a_private_import(tmp_path, monkeypatch):
    """The two checks can fail: on a tiny package with a circle and a private import."""
    pkg = tmp_path / "utils"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from utils.b import _g\n    return _g\n")
    (pkg / "b.py").write_text("from utils import a\n\ndef _g():\n    return a\n")
    monkeypatch.setattr(sys.modules[__name__], "UTILS", pkg)
    assert _graph()["utils.a"] == {"utils.b"} and _graph()["utils.b"] == {"utils.a"}
    with pytest.raises(AssertionError, match="utils.a -> utils.b -> utils.a"):
        test_no_import_cycle_among_utils_modules()
    with pytest.raises(AssertionError, match=r"utils\.b\._g"):
        test_no_module_uses_another_modules_private_names()
