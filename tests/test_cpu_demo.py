"""utils.cpu_demo in smoke mode: the plumbing of `make cpu-demo` (a tiny random model, seconds).

Timings and accuracy targets are printed by the demo itself, never asserted here.
"""

import json
import re

import pytest

from utils import cpu_demo
from utils.rewards import is_correct, strict_format_reward
from utils.tasks import load_task

LAST_LINE = re.compile(r"^cpu-demo: accuracy \d+\.\d% -> \d+\.\d% \(n=(\d+), paired p=[\d.e-]+\), "
                       r"strict format \d+\.\d% -> \d+\.\d%, \d+\.\d min$")


def test_smoke_run_writes_adapter_log_curve_and_last_line(tmp_path, capsys):
    image = tmp_path / "curve.png"
    cpu_demo.main(["--mode", "smoke", "--output-dir", str(tmp_path / "run"),
                   "--image", str(image)])
    lines = capsys.readouterr().out.strip().splitlines()
    match = LAST_LINE.match(lines[-1])
    assert match, lines[-1]
    recipe = cpu_demo.RECIPES["smoke"]
    assert int(match.group(1)) == recipe.eval_n
    run = tmp_path / "run"
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert image.is_file() and image.stat().st_size > 1000
    result = json.loads((run / "result.json").read_text())
    assert result["summary"] == lines[-1]
    assert len(result["curve"]) == recipe.grpo_steps
    assert len(result["before"]["correct"]) == len(result["after"]["correct"]) == recipe.eval_n
    logged = [json.loads(x) for x in (run / "completions.jsonl").read_text().splitlines()]
    per_step = recipe.questions_per_step * recipe.group_size
    assert len(logged) == recipe.grpo_steps * per_step
    assert {r["step"] for r in logged} == set(range(recipe.grpo_steps))
    assert {"step", "question", "text", "rewards"} <= set(logged[0])


def test_worked_solutions_are_right_and_strictly_formatted():
    for row in load_task("two_step", "train", n=20):
        text = cpu_demo.worked_solution(row)
        assert is_correct(text, row["answer"]) and strict_format_reward([text]) == [1.0]


def test_summary_line_counts_and_pairs():
    before = {"correct": [False] * 8 + [True] * 2, "strict_format": [False] * 10}
    after = {"correct": [True] * 10, "strict_format": [True] * 9 + [False]}
    line = cpu_demo.summary_line(before, after, 3.14)
    assert line == ("cpu-demo: accuracy 20.0% -> 100.0% (n=10, paired p=0.0078), "
                    "strict format 0.0% -> 90.0%, 3.1 min")


def test_unknown_knob_is_refused():
    with pytest.raises(SystemExit, match="unknown recipe knob"):
        cpu_demo.main(["--mode", "smoke", "--set", "learning_rat=1"])
