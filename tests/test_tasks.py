"""The task ladder: exact gold answers, a held-out split that never meets train, determinism."""

import re

import pytest

from utils.data import parse_gold
from utils.prompts import build_messages
from utils.rewards import is_correct
from utils.tasks import (
    DEFAULT_RUNG,
    RUNGS,
    evaluate_expression,
    gsm8k_steps,
    load_task,
    task_dataset,
)

GENERATED = [rung for rung in RUNGS if rung != "gsm8k_easy"]


def test_rungs_and_default():
    assert RUNGS[0] == "one_step" and "gsm8k_easy" in RUNGS
    assert DEFAULT_RUNG in RUNGS


@pytest.mark.parametrize("expression, value", [("12 + 5", 17), ("30 - 4 - 6", 20),
                                               ("4 * 6 + 2", 26), ("3 * 5 - 15", 0)])
def test_evaluate_expression(expression, value):
    assert evaluate_expression(expression) == value


def test_evaluate_expression_refuses_other_text():
    with pytest.raises(ValueError, match="expression"):
        evaluate_expression("__import__('os')")


@pytest.mark.parametrize("rung", GENERATED)
@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_generated_gold_answers_are_exact(rung, split):
    for row in load_task(rung, split, n=300, seed=3):
        operands = row["expression"].split()[::2]
        # every operand appears in the question as a whole number, in order
        numbers = re.findall(r"\d+", row["question"])
        assert numbers == operands, row
        assert int(row["answer"]) == evaluate_expression(row["expression"]) > 0
        assert row["rung"] == rung
        assert is_correct(f"<think>\n{row['expression']}\n</think>\n<answer>\n{row['answer']}\n"
                          "</answer>", row["answer"])


def test_gsm8k_easy_gold_matches_gsm8k():
    rows = load_task("gsm8k_easy", "test")
    assert len(rows) >= 200
    for row in rows:
        assert row["answer"] == parse_gold(row["solution"])
        assert 1 <= gsm8k_steps(row["solution"]) <= 2


@pytest.mark.parametrize("rung", RUNGS)
def test_train_dev_and_test_are_disjoint(rung):
    train = {row["question"] for row in load_task(rung, "train", n=None if rung == "gsm8k_easy"
                                                   else 3000, seed=0)}
    dev = [row["question"] for row in load_task(rung, "dev", n=300, seed=2)]
    test = [row["question"] for row in load_task(rung, "test", n=400, seed=1)]
    assert len(set(test)) == len(test) == 400 and len(set(dev)) == len(dev) == 300
    assert not train & set(test) and not train & set(dev) and not set(dev) & set(test)


@pytest.mark.parametrize("rung", RUNGS)
def test_deterministic_with_seed_and_prefix_stable(rung):
    first = load_task(rung, "train", n=50, seed=7)
    assert first == load_task(rung, "train", n=50, seed=7)
    assert first[:20] == load_task(rung, "train", n=20, seed=7)
    assert first != load_task(rung, "train", n=50, seed=8)


def test_task_dataset_has_the_trainer_columns():
    dataset = task_dataset("one_step", "test", n=5)
    assert {"prompt", "answer", "question"} <= set(dataset.column_names)
    row = dataset[0]
    assert row["prompt"] == build_messages(row["question"])
    assert row["answer"] == load_task("one_step", "test", n=5)[0]["answer"]


@pytest.mark.parametrize("kwargs, message", [
    ({"rung": "calculus"}, "one_step"),
    ({"rung": "one_step", "split": "validation"}, "train"),
    ({"rung": "one_step", "n": 0}, "positive"),
    ({"rung": "gsm8k_easy", "split": "test", "n": 10_000}, "asked for"),
])
def test_bad_arguments_name_the_choices(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_task(**kwargs)
