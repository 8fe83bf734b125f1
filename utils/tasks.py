"""A ladder of math word problems inside a small model's reach, with exact gold answers.

GSM8K is out of reach for SmolLM2-135M (almost never right, docs/experiments.md), so every GRPO group on it scores the
same and RL has nothing to learn from. This module gives easier rungs in the same format (same
prompt, same ``<think>``/``<answer>`` tags, same rewards from :mod:`utils.rewards`):

- ``one_step``: one addition or subtraction with numbers up to 50, generated in code.
- ``two_step``: two additions/subtractions in a row (or one multiplication and one addition),
  generated in code.
- ``gsm8k_easy``: GSM8K's own easiest problems, those whose worked solution has at most two
  calculator steps (``<<...>>``), from the shipped copy (:mod:`utils.data`).

Held-out splits: a generated problem belongs to ``test`` (about one in five) or ``dev`` (another
one in five) when a hash of its text says so, whatever the seed, so train, dev and test can never
share a question. ``test`` is what results are reported on; recipes are chosen on ``dev``. ``gsm8k_easy`` keeps
GSM8K's own train/test split. Every row keeps the arithmetic it was built from (``expression``)
so that tests can recompute the gold answer.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable

from utils.prompts import SYSTEM_PROMPT, build_messages

RUNGS = ("one_step", "two_step", "gsm8k_easy")
"""Rung names, easiest first."""
SPLITS = ("train", "dev", "test")
DEFAULT_RUNG = "one_step"
"""The rung the CPU track trains on (chosen by measured base accuracy and reward spread; see
docs/experiments.md)."""

GSM8K_EASY_MAX_STEPS = 2
_TEST_SHARE = 5  # one generated question in five is held out

_NAMES = ("Sam", "Mia", "Leo", "Ava", "Noah", "Emma", "Liam", "Zoe", "Omar", "Lily", "Ben",
          "Nora", "Ivan", "Rosa", "Kai", "Anna", "Tom", "Sara", "Jack", "Maya")
_ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "books", "cards", "shells",
          "stamps", "balloons", "coins", "toy cars", "oranges", "crayons", "flowers", "eggs")
_CONTAINERS = ("boxes", "bags", "packs", "jars", "baskets", "trays")

# Each template: (text with {a} {b} {name} {other} {item}, operation). The question asks for one
# number; the operation is how the gold answer is computed from a and b.
_ONE_STEP = (
    ("{name} has {a} {item}. {name} gets {b} more {item}. How many {item} does {name} have now?",
     "+"),
    ("{name} had {a} {item}. {other} gave {name} {b} {item}. How many {item} does {name} have now?",
     "+"),
    (("There are {a} {item} in a basket. {name} puts in {b} more. How many {item} are in the "
     "basket now?"), "+"),
    ("{name} has {a} {item} and {other} has {b} {item}. How many {item} do they have together?",
     "+"),
    (("{name} has {a} {item}. {name} gives {b} {item} to {other}. How many {item} does {name} have "
     "left?"), "-"),
    (("There were {a} {item} on a table. {name} took {b} of them. How many {item} are left on the "
     "table?"), "-"),
    ("{name} had {a} {item} and lost {b} of them. How many {item} does {name} have now?", "-"),
    (("{name} has {a} {item}. {other} has {b} {item}. How many more {item} does {name} have than "
     "{other}?"), "-"),
)
_TWO_STEP = (
    (("{name} has {a} {item}. {name} buys {b} more and then gives {c} to {other}. How many {item} "
     "does {name} have now?"), "{a} + {b} - {c}"),
    (("{name} had {a} {item}, lost {b} of them, and then found {c} more. How many {item} does "
     "{name} have now?"), "{a} - {b} + {c}"),
    (("{name} has {a} {item}. {other} gives {name} {b} {item}, and then {name} gets {c} more. How "
     "many {item} does {name} have now?"), "{a} + {b} + {c}"),
    (("There were {a} {item} in a bag. {name} took out {b} and {other} took out {c}. How many {item} "
     "are left in the bag?"), "{a} - {b} - {c}"),
    (("{name} has {a} {container} with {b} {item} in each, and {c} loose {item}. How many {item} "
     "does {name} have in all?"), "{a} * {b} + {c}"),
    (("{name} buys {a} {container} of {item} with {b} {item} in each. {name} gives {c} {item} to "
     "{other}. How many {item} does {name} have left?"), "{a} * {b} - {c}"),
)
_EXPRESSION_RE = re.compile(r"^\d+( [-+*] \d+)+$")


def evaluate_expression(expression: str) -> int:
    """Value of a whole-number expression like ``"12 + 5 - 3"`` or ``"4 * 6 + 2"`` (``*`` first).

    Written out rather than ``eval``: the tests recompute every gold answer with it.
    """
    if not _EXPRESSION_RE.match(expression):
        raise ValueError(f"not a whole-number expression with + - *: {expression!r}")
    tokens = expression.split()
    terms: list[int] = [int(tokens[0])]
    signs: list[int] = [1]
    for operator, number in zip(tokens[1::2], tokens[2::2]):
        if operator == "*":
            terms[-1] *= int(number)
        else:
            terms.append(int(number))
            signs.append(1 if operator == "+" else -1)
    return sum(sign * term for sign, term in zip(signs, terms))


def _split_of(question: str) -> str:
    """``test`` for about one generated question in five, ``dev`` for another, decided by the
    text alone."""
    share = hashlib.sha256(question.encode("utf-8")).digest()[0] % _TEST_SHARE
    return "test" if share == 0 else "dev" if share == 1 else "train"


def _one_step(rng: random.Random) -> tuple[str, str]:
    template, operation = rng.choice(_ONE_STEP)
    if operation == "+":
        a, b = rng.randint(2, 50), rng.randint(2, 50)
    else:
        a = rng.randint(5, 50)
        b = rng.randint(1, a - 1)
    return template, f"{a} {operation} {b}"


def _two_step(rng: random.Random) -> tuple[str, str]:
    template, shape = rng.choice(_TWO_STEP)
    while True:
        if "*" in shape:
            a, b, c = rng.randint(2, 9), rng.randint(2, 12), rng.randint(1, 20)
        else:
            a, b, c = rng.randint(5, 50), rng.randint(1, 30), rng.randint(1, 30)
        expression = shape.format(a=a, b=b, c=c)
        # Every intermediate count stays positive (nobody gives away more than they have).
        first = evaluate_expression(" ".join(expression.split()[:3]))
        if first > 0 and evaluate_expression(expression) > 0:
            return template, expression


_GENERATORS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "one_step": _one_step,
    "two_step": _two_step,
}


def _fill(template: str, expression: str, rng: random.Random) -> str:
    numbers = dict(zip("abc", expression.split()[::2]))
    name, other = rng.sample(_NAMES, 2)
    return template.format(name=name, other=other, item=rng.choice(_ITEMS),
                           container=rng.choice(_CONTAINERS), **numbers)


def _generated(rung: str, split: str, n: int, seed: int) -> list[dict]:
    # Distinct seeds per (rung, split) so that asking for more rows extends the same sequence.
    rng = random.Random(f"{rung}:{split}:{seed}")
    rows: list[dict] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 200 * n + 1000:
            raise ValueError(f"cannot make {n} distinct {rung!r} {split} questions; ask for fewer")
        template, expression = _GENERATORS[rung](rng)
        question = _fill(template, expression, rng)
        if question in seen or _split_of(question) != split:
            continue
        seen.add(question)
        rows.append({"question": question, "answer": str(evaluate_expression(expression)),
                     "rung": rung, "expression": expression})
    return rows


def gsm8k_steps(solution: str) -> int:
    """Number of calculator annotations (``<<48/2=24>>``) in a GSM8K worked solution."""
    return solution.count("<<")


def _gsm8k_easy(split: str, n: int | None, seed: int) -> list[dict]:
    from utils.data import parse_gold, read_jsonl, shipped_path

    # dev: the GSM8K train problems the hash puts in dev; train keeps the rest
    rows = [
        {"question": row["question"], "answer": parse_gold(row["answer"]), "rung": "gsm8k_easy",
         "expression": None, "solution": row["answer"]}
        for row in read_jsonl(shipped_path("test" if split == "test" else "train"))
        if 1 <= gsm8k_steps(row["answer"]) <= GSM8K_EASY_MAX_STEPS
        and (split == "test" or (_split_of(row["question"]) == "dev") == (split == "dev"))
    ]
    random.Random(f"gsm8k_easy:{split}:{seed}").shuffle(rows)
    if n is not None and n > len(rows):
        raise ValueError(f"gsm8k_easy {split} has {len(rows)} problems; asked for {n}")
    return rows if n is None else rows[:n]


DEFAULT_SIZE = {"train": 2000, "dev": 400, "test": 400}
"""Rows returned for a generated rung when ``n`` is None."""


def load_task(rung: str, split: str = "train", n: int | None = None, seed: int = 0) -> list[dict]:
    """``n`` problems of a rung: dicts with ``question``, ``answer`` (gold number as a string),
    ``rung`` and ``expression`` (the arithmetic behind a generated problem; None for GSM8K rows).

    Same ``(rung, split, n, seed)``, same rows in the same order; a larger ``n`` extends the list.
    ``n=None`` gives ``DEFAULT_SIZE[split]`` generated rows, or every ``gsm8k_easy`` row.
    """
    if rung not in RUNGS:
        raise ValueError(f"unknown rung {rung!r}; choose one of {RUNGS}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if n is not None and n <= 0:
        raise ValueError(f"n must be positive; got {n}")
    if rung == "gsm8k_easy":
        return _gsm8k_easy(split, n, seed)
    return _generated(rung, split, DEFAULT_SIZE[split] if n is None else n, seed)


def task_dataset(rung: str, split: str = "train", n: int | None = None, seed: int = 0,
                 system_prompt: str = SYSTEM_PROMPT):
    """The rows of :func:`load_task` as a ``datasets.Dataset`` for TRL's ``GRPOTrainer`` and
    :mod:`utils.training`: columns ``prompt`` (system + user chat messages), ``answer``,
    ``question`` and ``rung``, exactly like :func:`utils.data.load_gsm8k`'s."""
    from datasets import Dataset

    rows = load_task(rung, split, n, seed)
    return Dataset.from_dict({
        "question": [row["question"] for row in rows],
        "answer": [row["answer"] for row in rows],
        "rung": [row["rung"] for row in rows],
        "prompt": [build_messages(row["question"], system_prompt) for row in rows],
    })
