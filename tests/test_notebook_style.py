"""The lessons read in short steps: code lines of at most 88 characters, markdown cells that say
one thing (a median of at most 6 lines per notebook, none over 25).

``CHECKED_NOTEBOOKS`` lists the notebooks held to it; a notebook joins the list once it passes.
The setup cell is left out only while it is exactly the one ``scripts/sync_links.py`` writes
(its lines are that script's to keep).
"""

import json
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import sync_links  # a script, not part of the package

CHECKED_NOTEBOOKS = [
    "01_rl_foundations.ipynb",
    "02_ppo_vs_grpo.ipynb",
    "03_reward_functions.ipynb",
    "04_grpo_training_unsloth.ipynb",
    "05_gsm8k_evaluation.ipynb",
    "06_r1_and_beyond.ipynb",
    "solutions/01_rl_foundations_solutions.ipynb",
    "solutions/02_ppo_vs_grpo_solutions.ipynb",
    "solutions/03_reward_functions_solutions.ipynb",
    "solutions/04_grpo_training_unsloth_solutions.ipynb",
    "solutions/05_gsm8k_evaluation_solutions.ipynb",
    "solutions/06_r1_and_beyond_solutions.ipynb",
]
MAX_CODE_LINE = 88
MAX_MEDIAN_MARKDOWN_LINES = 6
MAX_MARKDOWN_LINES = 25


def _source(cell: dict) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def _is_generated_setup_cell(cell: dict) -> bool:
    return (cell["cell_type"] == "code"
            and _source(cell) == sync_links.setup_cell_source(sync_links.repo_url()))


def style_problems(notebook: dict) -> list[str]:
    """Every breach of the style in one notebook (parsed JSON), as readable lines."""
    problems = []
    markdown_lengths = []
    for number, cell in enumerate(notebook["cells"]):
        lines = _source(cell).rstrip("\n").splitlines()
        if cell["cell_type"] == "markdown":
            markdown_lengths.append(len(lines))
            if len(lines) > MAX_MARKDOWN_LINES:
                problems.append(f"cell {number}: markdown of {len(lines)} lines "
                                f"(at most {MAX_MARKDOWN_LINES})")
        elif cell["cell_type"] == "code" and not _is_generated_setup_cell(cell):
            for line_number, line in enumerate(lines, start=1):
                if len(line) > MAX_CODE_LINE:
                    problems.append(f"cell {number}, line {line_number}: {len(line)} characters "
                                    f"(at most {MAX_CODE_LINE}): {line.strip()[:60]}")
    if markdown_lengths:
        median = statistics.median(markdown_lengths)
        if median > MAX_MEDIAN_MARKDOWN_LINES:
            problems.append(f"markdown cells: median {median} lines "
                            f"(at most {MAX_MEDIAN_MARKDOWN_LINES})")
    return problems


@pytest.mark.parametrize("name", CHECKED_NOTEBOOKS)
def test_checked_notebooks_read_in_short_steps(name):
    notebook = json.loads((ROOT / "notebooks" / name).read_text())
    assert style_problems(notebook) == []


def _notebook(*cells: tuple[str, str]) -> dict:
    return {"cells": [{"cell_type": kind, "source": source, "metadata": {}}
                      for kind, source in cells]}


def test_a_clean_notebook_has_no_problems():
    notebook = _notebook(("markdown", "# Title\n\nOne thing."), ("code", "x = 1\n" + "y" * 88),
                         ("markdown", "a\nb\nc\nd\ne\nf"))
    assert style_problems(notebook) == []


def test_a_long_code_line_is_caught_with_its_place():
    problems = style_problems(_notebook(("markdown", "text"), ("code", "ok = 1\n" + "x" * 89)))
    assert problems == [f"cell 1, line 2: 89 characters (at most 88): {'x' * 60}"]


def test_a_markdown_wall_is_caught():
    wall = "\n".join(f"line {i}" for i in range(26))
    problems = style_problems(_notebook(("markdown", wall), ("markdown", "short")))
    assert problems == ["cell 0: markdown of 26 lines (at most 25)",
                        "markdown cells: median 13.5 lines (at most 6)"]


def test_a_median_of_seven_lines_fails_and_six_passes():
    seven, six = "\n".join("l" * 7), "\n".join("l" * 6)
    assert style_problems(_notebook(("markdown", seven), ("markdown", seven),
                                    ("markdown", six))) == [
        "markdown cells: median 7 lines (at most 6)"]
    assert style_problems(_notebook(("markdown", six), ("markdown", seven),
                                    ("markdown", six))) == []


def test_only_the_generated_setup_cell_is_exempt():
    setup = sync_links.setup_cell_source(sync_links.repo_url())
    assert any(len(line) > MAX_CODE_LINE for line in setup.splitlines())  # else drop the exemption
    assert style_problems(_notebook(("code", setup), ("markdown", "text"))) == []
    edited = setup + "\n# " + "x" * 90
    assert len(style_problems(_notebook(("code", edited), ("markdown", "text")))) > 0


def test_no_placeholder_is_left_for_a_learner_to_read():
    """A figure still to be measured is written as such ("not measured yet: COMMAND"), never as
    a TBD token that a run was meant to fill in."""
    paths = sorted((ROOT / "notebooks").rglob("*.ipynb")) + [ROOT / "README.md"] \
        + sorted((ROOT / "docs").glob("*.md"))
    left = [str(p.relative_to(ROOT)) for p in paths
            if "runs" not in p.parts and ("TBD_" in p.read_text() or "TODO" in p.read_text())]
    assert not left, f"placeholders in {left}"
