"""utils.reflection: phrase counting, reading logged completions, per-step rates and the test."""

from __future__ import annotations

import json

import pytest

from utils import reflection


def test_phrases_are_counted_with_word_boundaries_and_any_case():
    text = "Wait, wait. Let me check: 3 + 4 = 7. Hmm, let's recheck. I made a mistake. Aha!"
    counts = reflection.reflection_counts(text)
    assert counts["wait"] == 2
    assert counts["let me check"] == 1
    assert counts["recheck"] == 1
    assert counts["mistake"] == 1
    assert counts["hmm"] == 1 and counts["aha"] == 1
    assert reflection.has_reflection(text)


@pytest.mark.parametrize("text", ["They awaited the bus.", "3 + 4 = 7", "", None, 42,
                                  "<think>\n12 + 5 = 17\n</think>\n<answer>\n17\n</answer>"])
def test_no_reflection_in_plain_arithmetic_or_bad_input(text):
    assert not reflection.has_reflection(text)
    assert sum(reflection.reflection_counts(text).values()) == 0


def test_examples_show_the_match_in_context():
    shown = reflection.reflection_examples(["no", "so 17. Wait, that is wrong", "verify it"],
                                           limit=1, width=5)
    assert shown == ["17. Wait, tha"]


def test_fisher_exact_matches_the_textbook_value():
    # [[6, 2], [1, 4]]: two-sided p = 176/1716 (the hypergeometric sum, computed by hand)
    assert reflection.fisher_exact(6, 8, 1, 5) == pytest.approx(176 / 1716)
    assert reflection.fisher_exact(3, 10, 3, 10) == pytest.approx(1.0)
    assert reflection.fisher_exact(0, 50, 20, 50) < 1e-6
    with pytest.raises(ValueError):
        reflection.fisher_exact(5, 4, 0, 1)


def _rows():
    early = [{"step": s, "completion": "12 + 5 = 17"} for s in (1, 2) for _ in range(10)]
    late = [{"step": s, "completion": "12 + 5 = 17. Wait, let me verify: yes 17" if i < 8
             else "17"} for s in (9, 10) for i in range(10)]
    return early + late


def test_by_step_rates_intervals_and_lengths():
    table = reflection.reflection_by_step(_rows())
    assert [row["step"] for row in table] == [1, 2, 9, 10]
    assert [row["rate"] for row in table] == [0.0, 0.0, 0.8, 0.8]
    assert all(row["low"] <= row["rate"] <= row["high"] for row in table)
    assert table[0]["length"] == 5.0
    assert table[-1]["phrases"]["wait"] == 8 and table[-1]["phrases"]["verify"] == 8


def test_early_late_detects_a_real_change():
    result = reflection.early_late(_rows(), share=0.5)
    assert result["early"]["hits"] == 0 and result["late"]["hits"] == 16
    assert result["early"]["steps"] == (1, 2) and result["late"]["steps"] == (9, 10)
    assert result["p_value"] < 1e-6
    assert "Fisher" in reflection.format_early_late(result)
    with pytest.raises(ValueError, match="two training steps"):
        reflection.early_late([{"step": 1, "completion": "x"}])


def test_reads_a_jsonl_log(tmp_path):
    path = tmp_path / "completions.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _rows()) + "\n")
    assert reflection.read_logged_completions(tmp_path) == _rows()
    assert reflection.read_logged_completions(path) == _rows()
    path.write_text('{"step": 3, "text": "wait"}\n')  # utils.grpo_scratch's key
    assert reflection.read_logged_completions(path) == [{"step": 3, "completion": "wait"}]
    path.write_text('{"step": 1}\n')
    with pytest.raises(ValueError, match="completion"):
        reflection.read_logged_completions(path)


def test_reads_trl_parquet_logs(tmp_path):
    import pandas as pd

    folder = tmp_path / "completions"
    folder.mkdir()
    completions = {2: ["wait 2", "two"],  # plain text
                   1: [[{"role": "assistant", "content": "wait 1"}],  # conversational
                       [{"role": "assistant", "content": "hm"}]]}
    for step in (2, 1):
        pd.DataFrame({"step": [step, step], "prompt": ["p", "p"], "completion": completions[step],
                      "advantage": [0.5, -0.5]}).to_parquet(folder / f"completions_{step:05d}.parquet")
    rows = reflection.read_logged_completions(tmp_path)
    assert [r["step"] for r in rows] == [1, 1, 2, 2]
    assert [r["completion"] for r in rows] == ["wait 1", "hm", "wait 2", "two"]


def test_a_missing_log_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="log_completions"):
        reflection.read_logged_completions(tmp_path)
