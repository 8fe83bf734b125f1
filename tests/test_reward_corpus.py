"""Every row of the hand-labelled reward corpus (tests/data/reward_corpus.jsonl).

Each row is a tricky completion with its gold answer, a category, the answer that
``extract_final_answer`` must return (null: none) and the human label (is the completion's final
answer the gold?). ``benchmarks/rewards.py`` measures other graders against the same labels.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from utils.rewards import accuracy_reward, extract_final_answer, is_correct, parse_number

CORPUS = Path(__file__).parent / "data" / "reward_corpus.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
REQUIRED_CATEGORIES = {
    "well_formed", "commas", "currency", "units", "decimals", "negatives", "percent", "boxed",
    "answer_is", "gold_in_reasoning", "empty_tag", "unclosed_tag", "duplicated_tags", "hedge",
    "list", "injection", "nan_inf", "multiline",
}


def test_corpus_is_large_and_covers_every_category():
    assert len(ROWS) >= 150
    assert len({row["id"] for row in ROWS}) == len(ROWS)
    counts = Counter(row["category"] for row in ROWS)
    assert REQUIRED_CATEGORIES <= set(counts)
    assert all(counts[category] >= 5 for category in REQUIRED_CATEGORIES)
    labels = Counter(row["label"] for row in ROWS)
    assert set(labels) == {"correct", "incorrect"} and min(labels.values()) >= 50


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_corpus_row(row):
    expected_correct = row["label"] == "correct"
    assert extract_final_answer(row["completion"]) == row["expected"]
    assert is_correct(row["completion"], row["gold"]) is expected_correct
    assert accuracy_reward([row["completion"]], answer=[row["gold"]]) == [float(expected_correct)]
    if row["expected"] is None:
        assert not expected_correct, "a completion without a final answer cannot be correct"
    else:
        assert (parse_number(row["expected"]) == parse_number(row["gold"])) is expected_correct
