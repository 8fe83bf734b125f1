"""utils.show: a function's source as a lesson displays it, guards and docstring left out."""

import pytest

from utils import rl, stats
from utils.show import show_source, source_without_guards


def _example(x, names, strict=True):
    """A docstring that the display leaves out."""
    # a comment about the guard goes with it
    if x < 0:
        raise ValueError("x must be >= 0")
    if not names:
        names = ["a"]  # not a guard: it does something
    for name in names:
        if strict and name not in {"a", "b"}:
            raise KeyError(name)
        x += len(name)
    return x  # the result


def test_guards_and_docstring_are_left_out_and_everything_else_kept():
    expected = """def _example(x, names, strict=True):
    if not names:
        names = ["a"]  # not a guard: it does something
    for name in names:
        x += len(name)
    return x  # the result"""
    assert source_without_guards(_example) == expected


def test_the_docstring_on_request():
    shown = source_without_guards(_example, docstring=True)
    assert '"""A docstring that the display leaves out."""' in shown
    assert "raise" not in shown


def test_the_library_functions_the_lessons_show_keep_their_maths():
    shown = source_without_guards(rl.group_advantages)
    assert "raise" not in shown and "grouped.mean(dim=1, keepdim=True)" in shown
    assert "raise" not in source_without_guards(stats.pass_at_k)
    assert "math.comb" in source_without_guards(stats.mcnemar_exact)


def test_the_shown_code_still_runs_as_the_original():
    namespace = {}
    exec(source_without_guards(_example), namespace)  # noqa: S102 - our own test function
    assert namespace["_example"](1, ["a", "b"]) == _example(1, ["a", "b"]) == 3


def test_an_excerpt_of_a_long_function():
    shown = source_without_guards(_example, start="for name in names", lines=2)
    assert shown == "for name in names:\n    x += len(name)"
    with pytest.raises(ValueError, match="no line of _example contains"):
        source_without_guards(_example, start="while")


def test_no_source_is_a_clear_error():
    with pytest.raises(TypeError, match="no Python source"):
        source_without_guards(len)


def test_plain_text_outside_jupyter(capsys):
    show_source(stats.pass_at_k)
    out = capsys.readouterr().out
    assert out.startswith("def pass_at_k(") and "ValueError" not in out
