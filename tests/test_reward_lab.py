"""Tests of utils.reward_lab: the shipped group, one lab update, the widget, the naive graders."""

from __future__ import annotations

import pytest
import torch

from utils.reward_lab import (
    build_lab,
    lab_update,
    lab_weights,
    load_lab_examples,
    math_verify_reward,
    naive_accuracy_reward,
    naive_extract_answer,
    naive_format_reward,
    render_result,
)
from utils.rewards import REWARD_FUNCTIONS, accuracy_reward, parse_number, score_completions
from utils.rl import group_advantages

EXAMPLES = load_lab_examples()
TEXTS = [c["text"] for c in EXAMPLES["completions"]]
LABELS = [c["label"] for c in EXAMPLES["completions"]]
GOLD = EXAMPLES["gold"]


def test_shipped_group_spans_every_reward_part():
    assert len(TEXTS) == 8 and parse_number(GOLD) is not None and EXAMPLES["question"]
    scores = score_completions(TEXTS, GOLD)
    for name in REWARD_FUNCTIONS:
        values = {row[name] for row in scores}
        assert len(values) > 1, f"{name} is the same for every shipped completion"


def test_lab_weights_route_the_format_weight():
    assert lab_weights(1.0, 0.5, 0.25, "strict") == {
        "accuracy": 1.0, "strict_format": 0.5, "soft_format": 0.0, "tag_count": 0.25}
    assert lab_weights(1.0, 0.5, 0.25, "soft")["soft_format"] == 0.5
    with pytest.raises(ValueError, match="format_kind"):
        lab_weights(1.0, 0.5, 0.25, "loose")


def test_lab_update_computes_grpo_and_dr_grpo_advantages():
    weights = lab_weights(1.0, 0.5, 0.25)
    result = lab_update(TEXTS, GOLD, weights, scale_std=True, labels=LABELS)
    totals = torch.tensor([row["total"] for row in score_completions(TEXTS, GOLD, weights)])
    assert result.table["total"].tolist() == pytest.approx(totals.tolist())
    assert result.table["adv_grpo"].tolist() == pytest.approx(
        group_advantages(totals, len(TEXTS), scale="group").tolist(), abs=1e-6)
    assert result.table["adv_dr_grpo"].tolist() == pytest.approx(
        (totals - totals.mean()).tolist(), abs=1e-6)
    assert result.advantage_column == "adv_grpo" and "advantage" not in result.table
    assert result.advantage.tolist() == result.table["adv_grpo"].tolist()
    assert not result.zero_variance and "Group mean" in result.message
    assert result.table["label"].tolist() == LABELS
    dr = lab_update(TEXTS, GOLD, weights, scale_std=False)
    assert dr.advantage_column == "adv_dr_grpo"
    assert dr.advantage.tolist() == dr.table["adv_dr_grpo"].tolist()


def test_lab_update_flags_a_zero_variance_group():
    correct_only = [t for t, s in zip(TEXTS, accuracy_reward(TEXTS, [GOLD] * 8), strict=True) if s]
    result = lab_update(correct_only, GOLD, {"accuracy": 1.0})
    assert result.zero_variance and "Zero-variance" in result.message
    assert result.advantage.abs().max() == 0.0


def test_render_result_is_html_with_the_message():
    result = lab_update(TEXTS, GOLD, lab_weights(1.0, 0.5, 0.25))
    page = render_result(result)
    assert "<table" in page and "Group mean" in page


def test_rendered_table_marks_what_counts_and_scrolls_when_narrow():
    strict = render_result(lab_update(TEXTS, GOLD, lab_weights(1.0, 0.5, 0.25, "strict"), True,
                                      LABELS))
    assert "strict format \u00d70.5" in strict and "soft format (not counted)" in strict
    assert "adv. GRPO \u25c0 in use" in strict and "adv. Dr. GRPO \u25c0" not in strict
    soft = render_result(lab_update(TEXTS, GOLD, lab_weights(1.0, 0.5, 0.25, "soft"), False,
                                    LABELS))
    assert "soft format \u00d70.5" in soft and "strict format (not counted)" in soft
    assert "adv. Dr. GRPO \u25c0 in use" in soft
    assert "overflow-x: auto" in strict
    assert ">advantage<" not in strict and ">completion<" not in strict  # fewer columns


def test_lab_controls_have_distinct_descriptions():
    lab = build_lab(TEXTS, GOLD, LABELS)
    descriptions = {name: control.description for name, control in lab.controls.items()}
    assert descriptions == {"accuracy": "accuracy weight", "format": "format weight",
                            "tag_count": "tag count weight", "format_kind": "format rule",
                            "scale_std": "divide by group std (GRPO)"}
    assert lab.controls["format_kind"].options == ("strict", "soft")


def test_widget_updates_headless():
    lab = build_lab(TEXTS, GOLD, LABELS)
    before = lab.latest.table["total"].tolist()
    lab.controls["format"].value = 0.0
    lab.controls["tag_count"].value = 0.0
    assert lab.latest.table["total"].tolist() == accuracy_reward(TEXTS, [GOLD] * 8) != before
    lab.controls["accuracy"].value = 0.0
    assert lab.latest.zero_variance
    lab.controls["scale_std"].value = False
    assert lab.latest.advantage.tolist() == lab.latest.table["adv_dr_grpo"].tolist()


def test_naive_graders_show_the_bugs_ours_fixes():
    multi_line = "<think>\nline one\nline two\n</think>\n<answer>\n18\n</answer>"
    assert naive_format_reward([multi_line, "<think>\none\n</think>\n<answer>\n18\n</answer>"]) \
        == [0.0, 1.0]
    empty = "<think>\n9 * 2 = 18\n</think>\n<answer>\n</answer>"
    assert naive_extract_answer(empty) == "18"  # last number of the reasoning
    assert naive_accuracy_reward([empty], ["18"]) == [1.0]
    assert accuracy_reward([empty], ["18"]) == [0.0]


def test_math_verify_pays_for_an_empty_answer_slot():
    pytest.importorskip("math_verify")
    empty = "<think>\n9 * 2 = 18\n</think>\n<answer>\n</answer>"
    assert math_verify_reward(["\\boxed{18}", "\\boxed{17}", empty], ["18"] * 3) == [1.0, 0.0, 1.0]


def test_the_baseline_graders_are_written_once():
    """The naive graders (here) and the harness parsers (utils.evaluation) are the ones of
    utils.grader.baselines, imported under their old names."""
    from utils import evaluation, reward_lab
    from utils.grader import baselines

    assert reward_lab.naive_accuracy_reward is baselines.naive_accuracy_reward
    assert reward_lab.math_verify_reward is baselines.math_verify_reward
    assert evaluation.last_number_correct is baselines.last_number_correct
    assert evaluation.strict_regex_correct is baselines.strict_regex_correct
    assert baselines.last_number_correct("so 17 or 18", "18")  # the hack it stands for
    assert not baselines.strict_regex_correct("<answer>18.0</answer>", "18")  # strings compared
