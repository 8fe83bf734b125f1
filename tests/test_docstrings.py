"""``utils`` docstrings say what and why, briefly: no measurement, date or change history in
them (those go to docs/experiments.md), and no module whose docstrings outweigh its code.

Docstrings are read with ``ast``; nothing is imported. ``literal`` spans (double backticks) and
citations ("Schulman et al., 2016") are examples and references, not measurements, and are left
out before the patterns are searched.
"""

import ast
import re
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[1] / "utils"
MODULES = sorted(UTILS.rglob("*.py"))
MAX_RATIO = 0.40  # docstring lines per code line, per module

LITERAL = re.compile(r"``.*?``", re.DOTALL)
CITATION = re.compile(r"[A-Z][\w-]*(?: et al\.,|,) (?:19|20)\d\d\b")
PATTERNS = {
    "a date": re.compile(r"\b(?:19|20)\d\d\b(?!\.\d)"),  # a version such as 2026.10 is no date
    "a timing": re.compile(r"\b\d+(?:\.\d+)?\s*(?:ms|s|sec|seconds?|min|minutes?|h|hours?)\b"),
    "a percentage": re.compile(r"\b(?!95\s*%)\d+(?:\.\d+)?\s*%"),  # "95%" names a confidence level
    "history": re.compile(r"\b(?:(?:earlier|previous|older|old) version|previously|no longer|"
                          r"formerly|used to be|was changed|were changed)\b", re.IGNORECASE),
}


def docstring_nodes(tree: ast.Module):
    """``(name, docstring, its expression)`` of the module and each class and function in it."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                and (doc := ast.get_docstring(node)) is not None:
            yield getattr(node, "name", "<module>"), doc, node.body[0]


def findings(doc: str) -> list[str]:
    """What a docstring should not hold, as ``"a timing: '20 s'"`` strings (empty when clean)."""
    text = CITATION.sub("", LITERAL.sub("", doc))
    return [f"{kind}: {match.group(0)!r}" for kind, pattern in PATTERNS.items()
            for match in pattern.finditer(text)]


def ratio(path: Path) -> tuple[int, int]:
    """``(docstring lines, code lines)`` of a module: code lines are the non-blank, non-comment
    lines outside docstrings."""
    source = path.read_text(encoding="utf-8")
    doc_lines = set()
    for _, _, expr in docstring_nodes(ast.parse(source)):
        doc_lines.update(range(expr.lineno, expr.end_lineno + 1))
    code = sum(1 for number, line in enumerate(source.splitlines(), 1)
               if number not in doc_lines and line.strip() and not line.strip().startswith("#"))
    return len(doc_lines), code


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(UTILS)))
def test_no_measurement_date_or_history_in_docstrings(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems = [f"{name}: {finding}" for name, doc, _ in docstring_nodes(tree)
                for finding in findings(doc)]
    assert not problems, f"utils/{path.relative_to(UTILS)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "__init__.py"],
                         ids=lambda p: str(p.relative_to(UTILS)))
def test_docstrings_do_not_outweigh_the_code(path):
    """A package's ``__init__`` is left out: its docstring is the package's map."""
    doc, code = ratio(path)
    assert doc <= MAX_RATIO * code, (
        f"utils/{path.relative_to(UTILS)}: {doc} docstring lines for {code} code lines "
        f"({doc / code:.0%} > {MAX_RATIO:.0%})")


def test_the_checks_can_fail(tmp_path):
    """Each pattern catches what it is for and leaves literals and citations alone."""
    assert findings("Sampling takes 44% of a run (about 20 s, measured November 2026).") == [
        "a date: '2026'", "a timing: '20 s'", "a percentage: '44%'"]
    assert findings("An earlier version of this paid off.") == ["history: 'earlier version'"]
    assert findings("Reads ``2 hours 40 minutes`` (Schulman et al., 2016); a Wilson 95% "
                    "interval; TRL 1.15 and Unsloth 2026.10.") == []
    module = tmp_path / "heavy.py"
    module.write_text('"""One.\n\nTwo.\n\nThree.\n"""\n\nx = 1\n')
    assert ratio(module) == (6, 1)
