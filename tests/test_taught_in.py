"""Every "Taught in NN §X" in a utils docstring names a notebook section that exists and names
the function (a module docstring: the module); every function a notebook teaches has such a line.

The docstrings are read with ``ast``, so the test imports nothing heavy.
"""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UTILS, NOTEBOOKS = ROOT / "utils", ROOT / "notebooks"

# "Taught in 02 §4.2", "taught in 01 §3 and 02 §2", "Taught in 02 §3, 02 §4.4"
TAUGHT = re.compile(r"taught in\s+(\d\d\s*§\s*\w+(?:\.\d+)*(?:\s*(?:,|and)\s*\d\d\s*§\s*\w+"
                    r"(?:\.\d+)*)*)", re.IGNORECASE)
REFERENCE = re.compile(r"(\d\d)\s*§\s*(\d+[a-z]?(?:\.\d+)*)")
HEADING = re.compile(r"^(#{1,6})\s+(\d+[a-z]?(?:\.\d+)*)\.?\s")

# The functions the notebooks teach: each must say where (utils module -> function names).
TAUGHT_FUNCTIONS = {
    "rl": ["discounted_returns", "gae", "ppo_policy_loss", "value_loss", "kl_penalized_rewards",
           "kl_k1", "kl_k2", "kl_k3", "kl_estimate", "group_advantages", "grpo_per_token_terms",
           "aggregate_loss", "grpo_loss", "expected_kl_gradients", "rollout_is_weights"],
    "grpo_scratch": ["rollout", "token_logprobs", "grpo_loss"],
    "dpo": ["dpo_loss", "dpo_loss_on_batch", "preference_pairs"],
    "rewards": ["accuracy_reward", "strict_format_reward", "soft_format_reward",
                "tag_count_reward", "reward_funcs_and_weights", "score_completions"],
    "stats": ["wilson_interval", "pass_at_k", "majority_vote", "mcnemar_exact"],
    "prompts": ["build_messages"],
}


def docstrings(path: Path) -> list[tuple[str, str]]:
    """``(name, docstring)`` of the module and of every function and class in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [("<module>", ast.get_docstring(tree) or "")]
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.append((node.name, ast.get_docstring(node) or ""))
    return found


def references(doc: str) -> list[tuple[str, str]]:
    """The ``(notebook, section)`` pairs of a docstring's "Taught in" lines."""
    return [ref for match in TAUGHT.finditer(doc) for ref in REFERENCE.findall(match.group(1))]


def sections(notebook: Path) -> dict[str, str]:
    """Numbered section -> its text (markdown and code) up to the next heading of its level."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    # (line, is markdown): a "# comment" in a code cell is no heading
    lines = [(line, cell["cell_type"] == "markdown") for cell in cells
             for line in "".join(cell["source"]).splitlines()]
    heads = [(i, len(m.group(1)), m.group(2)) for i, (line, md) in enumerate(lines)
             if md and (m := HEADING.match(line))]
    levels = [(i, len(m.group(1))) for i, (line, md) in enumerate(lines)
              if md and (m := re.match(r"^(#{1,6})\s", line))]
    result = {}
    for start, level, number in heads:
        end = next((i for i, lv in levels if i > start and lv <= level), len(lines))
        result[number] = "\n".join(line for line, _ in lines[start:end])
    return result


def check(module: str, name: str, doc: str, notebooks: dict[str, Path]) -> list[str]:
    """What is wrong with the "Taught in" references of one docstring (empty when nothing)."""
    problems = []
    for number, section in references(doc):
        where = f"utils.{module}.{name}: 'Taught in {number} §{section}'"
        if number not in notebooks:
            problems.append(f"{where}: no notebook notebooks/{number}_*.ipynb")
            continue
        text = sections(notebooks[number]).get(section)
        if text is None:
            problems.append(f"{where}: {notebooks[number].name} has no heading numbered {section}")
        elif not re.search(rf"\b{re.escape(name)}\b", text):
            problems.append(f"{where}: that section never names {name}")
    return problems


@pytest.fixture(scope="module")
def notebooks() -> dict[str, Path]:
    found = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        found.setdefault(path.name[:2], path)
    return found


def all_docstrings():
    for path in sorted(UTILS.rglob("*.py")):
        module = ".".join(path.relative_to(UTILS).with_suffix("").parts)
        for name, doc in docstrings(path):
            yield module, name, doc


def test_every_taught_in_reference_names_a_section_that_shows_it(notebooks):
    checked, problems = 0, []
    for module, name, doc in all_docstrings():
        target = module.rsplit(".", 1)[-1] if name == "<module>" else name
        problems += check(module.rsplit(".", 1)[-1], target, doc, notebooks)
        checked += len(references(doc))
    assert checked >= sum(map(len, TAUGHT_FUNCTIONS.values())), "fewer references than taught"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("module", sorted(TAUGHT_FUNCTIONS))
def test_taught_functions_say_where_they_are_taught(module):
    docs = {name: doc for name, doc in docstrings(UTILS / f"{module}.py")}
    missing = [name for name in TAUGHT_FUNCTIONS[module]
               if name not in docs or not references(docs[name])]
    assert not missing, f"utils.{module}: no 'Taught in NN §X' line in {missing}"


def test_the_check_rejects_a_wrong_reference(notebooks):
    """The checker itself: a section that does not exist, a notebook that does not exist, and a
    section that exists but never names the function are each reported."""
    good = "The GRPO advantages. Taught in 02 §4.2."
    assert references(good) == [("02", "4.2")]
    assert check("rl", "group_advantages", good, notebooks) == []
    assert references("Taught in 01 §3 and 02 §2.") == [("01", "3"), ("02", "2")]
    for wrong in ("Taught in 02 §4.9.", "Taught in 99 §1.", "Taught in 02 §4.3."):
        assert check("rl", "group_advantages", wrong, notebooks), wrong
