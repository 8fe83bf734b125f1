"""Show a library function's own source in the lesson that teaches it.

The course runs one copy of each function, in ``utils``; a notebook that teaches one displays
that copy (as reasoning-from-scratch and d2l print theirs) instead of describing a formula and
calling it. The display leaves out what is not the idea: the input guards (an ``if`` whose body
only raises: wrong shapes, unknown names) and, unless asked for, the docstring. The running code
is never changed; only what is printed is shorter. Left out on purpose: line numbers, and any
rewriting of the code beyond dropping whole guard statements.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any


def _is_guard(node: ast.stmt) -> bool:
    """An ``if`` with no ``else`` whose body does nothing but raise."""
    return (isinstance(node, ast.If) and not node.orelse
            and all(isinstance(statement, ast.Raise) for statement in node.body))


def _docstring_node(function: ast.AST) -> ast.stmt | None:
    body = getattr(function, "body", [])
    first = body[0] if body else None
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return first
    return None


def source_without_guards(obj: Any, docstring: bool = False, start: str | None = None,
                          lines: int | None = None) -> str:
    """The source of ``obj`` (a function, method or class) without its input guards.

    Guards are dropped at any depth, each with the comment lines just above it; the docstring is
    dropped too unless ``docstring=True``. ``start`` and ``lines`` cut an excerpt of a long
    function (``lines`` lines from the first one containing ``start``). Raises ``TypeError`` when
    ``obj`` has no Python source, ``ValueError`` when no line contains ``start``.
    """
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError) as error:
        raise TypeError(f"show_source: no Python source for {obj!r} ({error})") from None
    tree = ast.parse(source)
    definition = tree.body[0]
    drop: set[int] = set()  # 0-based line numbers
    for node in ast.walk(definition):
        if isinstance(node, ast.stmt) and _is_guard(node):
            drop.update(range(node.lineno - 1, node.end_lineno))
    doc = _docstring_node(definition)
    if doc is not None and not docstring:
        drop.update(range(doc.lineno - 1, doc.end_lineno))
    source_lines = source.splitlines()
    for first in sorted(drop):  # a comment right above a dropped statement goes with it
        above = first - 1
        while above >= 0 and above not in drop and source_lines[above].strip().startswith("#"):
            drop.add(above)
            above -= 1
    kept = [line for number, line in enumerate(source_lines) if number not in drop]
    if start is not None:
        first = next((i for i, line in enumerate(kept) if start in line), None)
        if first is None:
            raise ValueError(f"show_source: no line of {obj.__qualname__} contains {start!r}")
        kept = textwrap.dedent("\n".join(kept[first:])).splitlines()
    return "\n".join(kept if lines is None else kept[:lines])


def show_source(obj: Any, docstring: bool = False, start: str | None = None,
                lines: int | None = None) -> None:
    """Display :func:`source_without_guards`: highlighted in Jupyter, plain text elsewhere."""
    text = source_without_guards(obj, docstring=docstring, start=start, lines=lines)
    try:
        from IPython import get_ipython
        from IPython.display import Code, display
    except ImportError:  # no IPython: a plain script
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Code(text, language="python"))
