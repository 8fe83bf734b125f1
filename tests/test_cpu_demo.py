"""utils.cpu_demo in smoke mode: the plumbing of `make cpu-demo` (a tiny random model, seconds).

Timings and accuracy targets are printed by the demo itself, never asserted here.
"""

import json
import re
from dataclasses import replace

import pytest

from utils import cpu_demo
from utils.rewards import is_correct, strict_format_reward
from utils.tasks import load_task

LAST_LINE = re.compile(r"^cpu-demo: accuracy \d+\.\d% -> cold start \d+\.\d% -> GRPO \d+\.\d% "
                       r"\(n=(\d+), GRPO vs cold start paired p=[\d.e-]+\), "
                       r"strict format \d+\.\d% -> \d+\.\d%, \d+\.\d min$")


def test_smoke_run_writes_both_adapters_log_curve_record_and_last_line(tmp_path, capsys):
    image, record = tmp_path / "curve.png", tmp_path / "results" / "demo.json"
    cpu_demo.main(["--mode", "smoke", "--output-dir", str(tmp_path / "run"),
                   "--image", str(image), "--record", str(record)])
    lines = capsys.readouterr().out.strip().splitlines()
    match = LAST_LINE.match(lines[-1])
    assert match, lines[-1]
    recipe = cpu_demo.RECIPES["smoke"]
    assert int(match.group(1)) == recipe.eval_n
    run = tmp_path / "run"
    for adapter in ("cold_start_adapter", "adapter"):
        assert (run / adapter / "adapter_config.json").is_file()
    assert image.is_file() and image.stat().st_size > 1000
    result = json.loads((run / "result.json").read_text())
    assert result["summary"] == lines[-1]
    assert len(result["curve"]) == recipe.grpo_steps
    for key in ("before", "after_cold_start", "after"):
        assert len(result[key]["correct"]) == recipe.eval_n
    checkpoints = [row["step"] + 1 for row in result["curve"] if "heldout_accuracy" in row]
    assert checkpoints == cpu_demo.checkpoint_steps(recipe) == [recipe.grpo_steps]
    for row in result["curve"]:  # the mismatch is measured on the groups trained on
        assert ("sampling/importance_sampling_ratio/mean" in row) == (row["spread_share"] > 0)
    quoted = json.loads(record.read_text())
    assert quoted["summary"] == lines[-1]
    assert quoted["after"]["n"] == recipe.eval_n and "machine" in quoted
    logged = [json.loads(x) for x in (run / "completions.jsonl").read_text().splitlines()]
    per_step = recipe.questions_per_step * recipe.group_size
    assert len(logged) == recipe.grpo_steps * per_step
    assert {r["step"] for r in logged} == set(range(recipe.grpo_steps))
    assert {"step", "question", "text", "rewards"} <= set(logged[0])


def test_image_none_draws_no_figure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a file named "none" would land here
    drawn = []
    monkeypatch.setattr(cpu_demo, "plot_curve", lambda *a, **k: drawn.append(a))
    cpu_demo.main(["--mode", "smoke", "--output-dir", "run", "--image", "none"])
    assert drawn == [] and not list(tmp_path.glob("none*"))


def test_held_out_problems_do_not_depend_on_the_seed(tmp_path, monkeypatch):
    seen = []
    real = cpu_demo.evaluate

    def spy(model, tokenizer, rows, recipe):
        seen.append([row["question"] for row in rows])
        return real(model, tokenizer, rows, recipe)

    monkeypatch.setattr(cpu_demo, "evaluate", spy)
    for seed in (0, 1):
        cpu_demo.main(["--mode", "smoke", "--output-dir", str(tmp_path / str(seed)),
                       "--seed", str(seed), "--set", "grpo_steps=1", "checkpoints=0"])
    assert seen[0] == seen[1] == seen[3] == seen[4]  # base and cold start, two seeds


def test_checkpoint_steps():
    recipe = cpu_demo.RECIPES["cpu"]
    assert cpu_demo.checkpoint_steps(replace(recipe, grpo_steps=40, checkpoints=4)) == [10, 20, 30,
                                                                                        40]
    assert cpu_demo.checkpoint_steps(replace(recipe, grpo_steps=3, checkpoints=5)) == [1, 2, 3]
    assert cpu_demo.checkpoint_steps(replace(recipe, checkpoints=0)) == []


def test_skipping_zero_spread_groups_trains_on_the_rest(tmp_path):
    recipe = replace(cpu_demo.RECIPES["smoke"], skip_zero_spread=True, grpo_steps=2)
    result = cpu_demo.run("smoke", tmp_path, None, recipe)
    assert len(result["curve"]) == 2  # a step with no spread at all is skipped, not an error


def test_worked_solutions_are_right_and_strictly_formatted():
    for row in load_task("two_step", "train", n=20):
        text = cpu_demo.worked_solution(row)
        assert is_correct(text, row["answer"]) and strict_format_reward([text]) == [1.0]


def test_summary_line_counts_and_pairs_grpo_with_the_cold_start():
    before = {"correct": [False] * 8 + [True] * 2, "strict_format": [False] * 10}
    cold = {"correct": [False] * 5 + [True] * 5, "strict_format": [True] * 10}
    after = {"correct": [True] * 10, "strict_format": [True] * 9 + [False]}
    line = cpu_demo.summary_line(before, cold, after, 3.14)
    assert line == ("cpu-demo: accuracy 20.0% -> cold start 50.0% -> GRPO 100.0% (n=10, GRPO vs "
                    "cold start paired p=0.062), strict format 0.0% -> 90.0%, 3.1 min")


def test_unknown_knob_is_refused():
    with pytest.raises(SystemExit, match="unknown recipe knob"):
        cpu_demo.main(["--mode", "smoke", "--set", "learning_rat=1"])


def test_fresh_problems_are_new_and_exact():
    rows = [json.loads(x) for x in cpu_demo.FRESH_PROBLEMS.read_text().splitlines()]
    assert len(rows) == len({r["question"] for r in rows}) >= 200
    train = {r["question"] for rung in ("one_step", "two_step")
             for split in ("train", "dev", "test") for r in load_task(rung, split, n=400)}
    assert not train & {r["question"] for r in rows}
    for row in rows:
        a, op, b = row["expression"].split()
        assert int(row["answer"]) == (int(a) + int(b) if op == "+" else int(a) - int(b)) > 0


def test_fresh_comparison_reads_both_adapters(tmp_path, capsys):
    with pytest.raises(SystemExit, match="cpu-demo"):
        cpu_demo.main(["--mode", "smoke", "--output-dir", str(tmp_path), "--compare-fresh"])
    cpu_demo.main(["--mode", "smoke", "--output-dir", str(tmp_path)])
    fresh = tmp_path / "fresh.jsonl"
    fresh.write_text("\n".join(cpu_demo.FRESH_PROBLEMS.read_text().splitlines()[:3]))
    line = cpu_demo.compare_on_fresh("smoke", tmp_path, fresh)
    assert re.match(r"fresh word problems: cold start \d+\.\d% -> GRPO \d+\.\d% \(n=3, \d+ fixed, "
                    r"\d+ broken, paired p=[\d.e-]+\)$", line)
