"""utils.post_training: rejection sampling data, SFT, evaluation rows and test-time-compute curves."""

from __future__ import annotations

import statistics

import pytest

from utils import post_training as pt
from utils.evaluation import compare_runs, sample_rows, summarize
from utils.generation import Completion
from utils.stats import pass_at_k

GROUPS = [
    {"prompt": "p1", "completions": ["a", "b", "a", "c"], "correct": [True, False, True, True]},
    {"prompt": "p2", "completions": ["d", "e"], "correct": [False, False]},
    {"prompt": "p3", "completions": ["f", "g"], "correct": [True, True]},
]


def test_correct_examples_keep_verified_samples_once_each():
    examples = pt.correct_examples(GROUPS)
    assert examples == [{"prompt": "p1", "completion": "a"}, {"prompt": "p1", "completion": "c"},
                        {"prompt": "p3", "completion": "f"}, {"prompt": "p3", "completion": "g"}]
    assert len(pt.correct_examples(GROUPS, max_per_prompt=1)) == 2


def test_yield_table_counts_what_each_method_can_learn_from():
    table = pt.yield_table(GROUPS)
    assert table == {"prompts": 3, "samples": 8, "correct_samples": 5,
                     "prompts_with_a_correct_sample": 2, "prompts_with_mixed_verdicts": 1}
    assert pt.sample_budget(GROUPS) == 8


def _rows(answers_per_question, golds):
    """Evaluation rows from written-out answers, graded by utils.evaluation."""
    from utils.evaluation import Question

    rows = []
    for i, (answers, gold) in enumerate(zip(answers_per_question, golds)):
        question = Question(i, f"q{i}", gold, [])
        rows.extend(sample_rows(question, [Completion(f"<think>\nx\n</think>\n<answer>\n{a}\n"
                                                      "</answer>", 5, True) for a in answers]))
    return rows


ROWS = _rows([["7", "7", "3", "1"], ["2", "5", "5", "9"], ["4", "4", "4", "4"],
              ["1", "2", "3", "8"]], ["7", "5", "6", "8"])


def test_pass_at_k_curve_is_the_unbiased_estimator_averaged_over_questions():
    curve = pt.pass_at_k_curve(ROWS, [1, 2, 4, 8])
    assert set(curve) == {1, 2, 4}  # k > n is left out
    correct = [2, 2, 0, 1]
    for k in (1, 2, 4):
        assert curve[k] == pytest.approx(statistics.fmean(pass_at_k(4, c, k) for c in correct))
    assert curve[4] == summarize(ROWS)["pass_at_k"]


def test_maj_at_k_curve_matches_the_harness_at_k_equal_n_and_pass1_at_k1():
    curve = pt.maj_at_k_curve(ROWS, [1, 4], draws=4000, seed=1)
    assert curve[4] == summarize(ROWS)["maj_at_k"]  # 7 wins, 5 wins, 4 loses, 1-2-3-8 tie -> 1
    assert curve[1] == pytest.approx(5 / 16, abs=0.02)  # maj@1 is pass@1 in expectation
    assert pt.maj_at_k_curve(ROWS, [2], seed=3) == pt.maj_at_k_curve(ROWS, [2], seed=3)


def test_plot_test_time_compute_draws_one_line_per_model_and_metric():
    import matplotlib

    matplotlib.use("Agg")
    fig = pt.plot_test_time_compute({"base": {"pass@k": {1: 0.3, 2: 0.5}, "maj@k": {1: 0.3}},
                                     "rl": {"pass@k": {1: 0.4, 2: 0.5}}})
    assert len(fig.axes[0].lines) == 3


# ----------------------------------------------------------------------------- with a model
@pytest.fixture(scope="module")
def smoke_model():
    from utils.models import load_for_inference

    return load_for_inference("smoke")


TASK = [{"question": "Sam has 2 apples and gets 3 more. How many?", "answer": "5"},
        {"question": "Mia has 9 pens and gives away 4. How many are left?", "answer": "5"}]


def test_sample_groups_checks_every_sample_with_the_prefill(smoke_model, monkeypatch):
    model, tokenizer = smoke_model
    texts = iter(["x\n</think>\n<answer>\n5\n</answer>", "no answer", "<answer>4</answer>",
                  "</think><answer>5</answer>"])
    monkeypatch.setattr(pt, "generate", lambda *a, **k: [[Completion(next(texts), 3, True)
                                                          for _ in range(2)] for _ in range(2)])
    groups = pt.sample_groups(model, tokenizer, TASK, k=2, max_new_tokens=4)
    assert [g["correct"] for g in groups] == [[True, False], [False, True]]
    assert groups[0]["prompt"].endswith("<think>\n")
    assert pt.sample_budget(groups) == 4


def test_sample_groups_and_evaluate_run_on_a_real_model(smoke_model):
    model, tokenizer = smoke_model
    groups = pt.sample_groups(model, tokenizer, TASK, k=3, max_new_tokens=4, seed=5)
    assert [len(g["completions"]) for g in groups] == [3, 3]
    assert groups == pt.sample_groups(model, tokenizer, TASK, k=3, max_new_tokens=4, seed=5)
    rows = pt.evaluate(model, tokenizer, TASK, samples=1, max_new_tokens=4)
    assert [r["id"] for r in rows] == [0, 1]
    assert all(r["completion"].startswith("<think>\n") for r in rows)
    assert compare_runs(rows, rows)["difference"] == 0.0  # same ids and texts: the runs pair up
    sampled = pt.evaluate(model, tokenizer, TASK, samples=4, max_new_tokens=4)
    assert summarize(sampled)["samples_per_question"] == 4


def test_train_sft_learns_the_completions(tmp_path):
    from utils.models import LoraSettings, load_policy

    model, tokenizer = load_policy("smoke", lora=LoraSettings(rank=4, alpha=8))
    examples = [{"prompt": f"Q{i}: 2+{i}=", "completion": f" {2 + i}"} for i in range(4)]
    trainer = pt.train_sft(model, tokenizer, examples, tmp_path / "sft", epochs=6,
                           learning_rate=1e-2, batch_size=4)
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert losses[-1] < losses[0] - 0.3  # a random tiny model: slow, but clearly learning


def test_train_sft_without_examples_says_why():
    with pytest.raises(ValueError, match="no SFT examples"):
        pt.train_sft(None, None, [], "unused")


def test_comparison_table_pairs_every_run_with_the_reference():
    base = _rows([["7"], ["2"], ["6"], ["1"]], ["7", "5", "6", "8"])     # 2 of 4 right
    better = _rows([["7"], ["5"], ["6"], ["8"]], ["7", "5", "6", "8"])   # 4 of 4 right
    table = pt.comparison_table({"base": base, "better": better}, reference="base")
    assert list(table.index) == ["base", "better"]
    assert table.loc["base", "accuracy"] == 0.5 and table.loc["better", "accuracy"] == 1.0
    assert table.loc["better", "McNemar p"] == pytest.approx(0.5)  # 2 discordant, both for B
    assert table.loc["better", "vs base"].startswith("+50.0%")
    with pytest.raises(ValueError, match="reference"):
        pt.comparison_table({"base": base}, reference="nope")
