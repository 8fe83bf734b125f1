import pytest
import torch

from utils import runtime


def test_mode_from_environment(monkeypatch):
    monkeypatch.setenv("WORKSHOP_MODE", "smoke")
    assert runtime.get_mode() == "smoke"
    monkeypatch.setenv("WORKSHOP_MODE", " CPU ")
    assert runtime.get_mode() == "cpu"


def test_explicit_mode_wins(monkeypatch):
    monkeypatch.setenv("WORKSHOP_MODE", "smoke")
    assert runtime.get_mode("cpu") == "cpu"


def test_default_mode_follows_hardware(monkeypatch):
    monkeypatch.delenv("WORKSHOP_MODE", raising=False)
    monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    assert runtime.get_mode() == "cpu"
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    assert runtime.get_mode() == "gpu"


def test_unknown_mode_is_an_error(monkeypatch):
    monkeypatch.setenv("WORKSHOP_MODE", "smok")
    with pytest.raises(ValueError, match="smok"):
        runtime.get_mode()


def test_gpu_mode_without_cuda_says_what_to_do(monkeypatch):
    monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    with pytest.raises(RuntimeError, match="T4"):
        runtime.get_mode("gpu")


def test_dtype_per_device():
    assert runtime.pick_dtype("cpu") == torch.float32
    assert runtime.pick_device("smoke").type == "cpu"


def test_seed_everything_repeats_random_numbers():
    runtime.seed_everything(7)
    first = torch.rand(3)
    runtime.seed_everything(7)
    assert torch.equal(first, torch.rand(3))


def test_known_problems_flags_bad_combinations():
    versions = {"transformers": "5.23.0", "trl": "1.16.0", "datasets": "5.2.0", "unsloth": None,
                "vllm": None}
    warnings = runtime.known_problems("gpu", versions, gpu_name="Tesla T4", bf16=False)
    text = "\n".join(warnings)
    for fragment in ("transformers 5.23.0", "trl 1.16.0", "datasets 5.2.0", "Unsloth",
                     "fp16", "vLLM"):
        assert fragment in text
    good = {"transformers": "5.17.0", "trl": "1.15.0", "datasets": "4.8.5"}
    assert runtime.known_problems("cpu", good, gpu_name=None, bf16=False) == []


def test_doctor_prints_mode_and_versions(capsys):
    warnings = runtime.doctor("smoke")
    out = capsys.readouterr().out
    assert "mode      : smoke" in out
    assert "transformers" in out and "5.17.0" in out
    assert warnings == []


def test_run_dir_local_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("RL_COURSE_RUNS", raising=False)
    monkeypatch.setattr(runtime, "in_colab", lambda: False)
    assert runtime.run_dir("04_grpo_cpu") == runtime.Path("runs/04_grpo_cpu")
    monkeypatch.setenv("RL_COURSE_RUNS", str(tmp_path))
    assert runtime.run_dir("05_eval_cpu") == tmp_path / "05_eval_cpu"
