"""`python -m utils.train`: the help, a smoke run with resume, and 2 CPU processes under accelerate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from utils.train import build_parser, main, parse_reward_weights
from utils.training import get_preset

ROOT = Path(__file__).resolve().parent.parent


def test_help_lists_every_option():
    result = subprocess.run([sys.executable, "-m", "utils.train", "--help"], check=False,
                            cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for option in ("--mode", "--preset", "--max-steps", "--output-dir", "--model", "--resume",
                   "--reward-weight", "--merged", "--gguf", "--no-vllm"):
        assert option in result.stdout
    for mode in ("gpu", "cpu", "smoke"):
        assert mode in result.stdout


def test_parser_requires_an_output_dir_and_checks_choices():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "smoke"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "tpu", "--output-dir", "x"])
    args = parser.parse_args(["--output-dir", "x", "--reward-weight", "accuracy=2"])
    assert parse_reward_weights(args.reward_weight) == {"accuracy": 2.0}
    with pytest.raises(ValueError, match="NAME=WEIGHT"):
        parse_reward_weights(["speed=1"])


def test_gguf_is_refused_off_the_gpu_path(tmp_path):
    with pytest.raises(SystemExit, match="gpu"):
        main(["--mode", "smoke", "--output-dir", str(tmp_path), "--gguf"])


def test_smoke_run_writes_log_and_adapter_then_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--mode", "smoke", "--max-steps", "2", "--output-dir", str(out)]) == 0
    assert (out / "adapter" / "adapter_config.json").is_file()
    history = json.loads((out / "log_history.json").read_text())
    assert [row["step"] for row in history if "reward" in row] == [1, 2]
    printed = capsys.readouterr().out
    summary = json.loads(printed[printed.rindex("\n{"):])
    assert summary["steps"] == 2 and summary["resumed_from"] is None
    assert summary["adapter"] == str(out / "adapter")
    assert main(["--mode", "smoke", "--max-steps", "4", "--output-dir", str(out), "--resume",
                 "--reward-weight", "tag_count=1", "--reward-weight", "accuracy=1"]) == 0
    history = json.loads((out / "log_history.json").read_text())
    assert [row["step"] for row in history if "reward" in row] == [1, 2, 3, 4]
    assert "rewards/tag_count_reward/mean" in history[-2]
    assert "rewards/strict_format_reward/mean" not in history[-2]  # weight 0: not computed


@pytest.mark.skipif(shutil.which("accelerate") is None and not (
    Path(sys.executable).parent / "accelerate").exists(), reason="accelerate CLI not installed")
def test_two_cpu_processes_under_accelerate_launch(tmp_path):
    """Data parallel with 2 CPU processes (gloo): one log and one adapter, written by rank 0."""
    launcher = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
    out = tmp_path / "ddp"
    env = {**os.environ, "WORKSHOP_MODE": "smoke", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [launcher, "launch", "--config_file", str(ROOT / "configs" / "cpu_ddp_2proc.yaml"),
         "-m", "utils.train", "--mode", "smoke", "--max-steps", "2", "--output-dir", str(out)],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((out / "log_history.json").read_text())
    assert [row["step"] for row in history if "reward" in row] == [1, 2]
    assert (out / "adapter" / "adapter_config.json").is_file()
    # both ranks generated: TRL gathers their completions, 2 x per_device_train_batch_size
    sampled = pd.read_parquet(out / "completions" / "completions_00001.parquet")
    assert len(sampled) == 2 * get_preset("smoke").per_device_train_batch_size
