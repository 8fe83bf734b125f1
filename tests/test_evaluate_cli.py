"""``python -m utils.evaluate``: runs, summary keys, resuming, --compare, and its error messages."""

import json
import os
import subprocess
import sys

import pytest

from utils import evaluate, evaluation
from utils.evaluation import Question
from utils.generation import Completion

SMOKE = ["--mode", "smoke", "--n-questions", "2", "--max-new-tokens", "8"]


def test_module_entry_point_writes_samples_and_summary(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, HF_HUB_OFFLINE="1", WORKSHOP_MODE="smoke")
    result = subprocess.run([sys.executable, "-m", "utils.evaluate", *SMOKE,
                             "--output-dir", str(out)], check=False, capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "accuracy_strict" in result.stdout and "95% CI" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    for key in ("accuracy_strict", "accuracy_lenient", "format_rate", "truncation_rate"):
        assert 0.0 <= summary[key] <= 1.0
    assert set(summary["ci95"]) == {"accuracy_strict", "accuracy_lenient"}
    assert "maj_at_k" not in summary and "pass_at_k" not in summary
    rows = evaluation.read_samples(out)
    assert len(rows) == 2 and all(r["num_tokens"] <= 8 for r in rows)


def test_sampled_run_reports_maj_and_pass_at_k_and_resumes(tmp_path, capsys):
    args = [*SMOKE, "--samples", "3", "--temperature", "0.9", "--output-dir", str(tmp_path)]
    assert evaluate.main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["k"] == 3 and summary["config"]["temperature"] == 0.9
    assert {"maj_at_k", "pass_at_k"} <= set(summary["ci95"])
    assert summary["pass_at_k"] >= summary["accuracy_lenient"]
    first = evaluation.read_samples(tmp_path)
    assert len(first) == 2 * 3
    assert "maj_at_k" in capsys.readouterr().out

    assert evaluate.main(args) == 0  # a finished run: nothing regenerated
    assert json.loads((tmp_path / "summary.json").read_text())["backend"].startswith("none")
    assert evaluation.read_samples(tmp_path) == first


def test_cli_errors_are_messages(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([*SMOKE, "--samples", "4", "--temperature", "0", "--output-dir",
                       str(tmp_path)])
    assert exit_info.value.code == 2 and "temperature" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(["--mode", "smoke"])  # no --output-dir
    assert "--output-dir is required" in capsys.readouterr().err


def test_resume_with_other_settings_points_to_overwrite(tmp_path, capsys):
    assert evaluate.main([*SMOKE, "--output-dir", str(tmp_path)]) == 0
    other = ["--mode", "smoke", "--n-questions", "2", "--max-new-tokens", "6"]
    with pytest.raises(SystemExit):
        evaluate.main([*other, "--output-dir", str(tmp_path)])
    assert "max_new_tokens" in capsys.readouterr().err
    assert evaluate.main([*other, "--output-dir", str(tmp_path), "--overwrite"]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["config"]["max_new_tokens"] == 6


def write_run(directory, answers):
    """A run directory whose question i was answered ``answers[i]`` (gold is always 2i)."""
    directory.mkdir()
    rows = []
    for i, answer in enumerate(answers):
        question = Question(i, f"twice {i}?", str(2 * i), [])
        rows.extend(evaluation.sample_rows(question, [Completion(f"<answer>{answer}</answer>",
                                                                 5, True)]))
    (directory / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_compare_prints_the_paired_test(tmp_path, capsys):
    write_run(tmp_path / "a", [0, 2, 5, 5, 5, 5, 12, 14])      # 4 of 8 right
    write_run(tmp_path / "b", [0, 2, 4, 6, 8, 10, 12, 1])      # 7 of 8 right
    assert evaluate.main(["--compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "paired comparison on 8 questions (correct_strict)" in out
    assert "+37.5%" in out  # 7/8 - 4/8
    assert "4 only" in out and "1 questions only" in out  # 1 only A (question 7), 4 only B
    assert "p = 0.375" in out  # exact binomial: 2 * (1 + 5) / 2**5
