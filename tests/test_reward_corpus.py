"""Every row of the hand-labelled reward corpus (tests/data/reward_corpus.jsonl).

Each row is a tricky completion with its gold answer, a category, the answer that
``extract_final_answer`` must return (null: none), the human label (is the completion's final
answer the gold quantity?) and, for the rules that need it, the ``question``. Rows of the
``ambiguous`` category record a decision of the grading policy (``utils/grader/POLICY.md``) in
their note. ``benchmarks/rewards.py`` measures other graders against the same labels.

This corpus was written together with the grader, so agreement on it is in-sample: it guards the
policy against regressions, it does not measure agreement on unseen completions.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from utils.rewards import accuracy_reward, extract_final_answer, is_correct

CORPUS = Path(__file__).parent / "data" / "reward_corpus.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
REQUIRED_CATEGORIES = {
    "well_formed", "commas", "currency", "units", "decimals", "negatives", "percent", "boxed",
    "answer_is", "gold_in_reasoning", "empty_tag", "unclosed_tag", "duplicated_tags", "hedge",
    "list", "injection", "nan_inf", "multiline", "tag_variants", "draft_in_think", "magnitude",
    "separators", "scientific", "working", "final_sentence", "revision", "restatement",
    "ambiguous", "languages", "locale_grouping", "compound_units", "spelled_out",
    "question_mentions", "stated_together", "latex_percent",
}


def test_corpus_is_large_and_covers_every_category():
    assert len(ROWS) >= 300
    assert len({row["id"] for row in ROWS}) == len(ROWS)
    counts = Counter(row["category"] for row in ROWS)
    assert REQUIRED_CATEGORIES <= set(counts)
    assert all(counts[category] >= 4 for category in REQUIRED_CATEGORIES)
    labels = Counter(row["label"] for row in ROWS)
    assert set(labels) == {"correct", "incorrect"} and min(labels.values()) >= 100


def test_every_ambiguous_row_records_its_decision():
    ambiguous = [row for row in ROWS if row["category"] == "ambiguous"]
    assert all(row.get("note", "").startswith("DECISION:") for row in ambiguous)


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_corpus_row(row):
    expected_correct = row["label"] == "correct"
    question = row.get("question")
    assert extract_final_answer(row["completion"], question) == row["expected"]
    assert is_correct(row["completion"], row["gold"], question) is expected_correct
    rewards = accuracy_reward([row["completion"]], answer=[row["gold"]],
                              question=[question] if question else None)
    assert rewards == [float(expected_correct)]
    if row["expected"] is None:
        assert not expected_correct, "a completion without a final answer cannot be correct"


def test_the_question_reaches_the_grader_through_trl_prompts():
    """TRL passes the conversational prompt as ``prompts``; the unit rules read the question."""
    row = next(r for r in ROWS if r["category"] == "percent" and r["expected"] == "320%"
               and "question" in r)
    prompt = [{"role": "system", "content": "Think, then answer."},
              {"role": "user", "content": row["question"]}]
    assert accuracy_reward([row["completion"]], answer=[row["gold"]], prompts=[prompt]) == [0.0]
    dollars = row["completion"].replace("320%", "$320")
    assert accuracy_reward([dollars], answer=[row["gold"]], prompts=[prompt]) == [1.0]
    r1_zero = f"A conversation between User and Assistant. User: {row['question']} Assistant:"
    assert accuracy_reward([row["completion"]], answer=[row["gold"]], prompts=[r1_zero]) == [0.0]
