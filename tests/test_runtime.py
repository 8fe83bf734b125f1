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
    monkeypatch.setattr(runtime, "gpu_visible", lambda: None)
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
    monkeypatch.setattr(runtime, "gpu_visible", lambda: None)
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


def test_known_problems_reads_local_builds_and_pre_releases():
    # One version reader (install_sets.version_tuple): "+local" and "rc"/"post" tails are not a
    # newer release, a ".dev" of the next minor is.
    same = {"transformers": "5.17.0+cu128", "trl": "1.15.0.post1", "datasets": "4.8.5rc1"}
    assert runtime.known_problems("cpu", same, gpu_name=None, bf16=False) == []
    newer = {"transformers": "5.18.0.dev0", "trl": "1.15.1rc1", "datasets": "5.0.0rc2"}
    text = "\n".join(runtime.known_problems("cpu", newer, gpu_name=None, bf16=False))
    for fragment in ("transformers 5.18.0.dev0", "trl 1.15.1rc1", "datasets 5.0.0rc2"):
        assert fragment in text


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


def test_default_mode_fails_loudly_when_a_gpu_is_present_but_unusable(monkeypatch):
    monkeypatch.delenv("WORKSHOP_MODE", raising=False)
    monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    monkeypatch.setattr(runtime, "gpu_visible", lambda: ("Tesla T4", (7, 5), (550, 54)))
    monkeypatch.setattr(runtime, "torch_cuda_build", lambda: "13.0")
    with pytest.raises(RuntimeError, match="CUDA 13.0.*driver >= 580.*550.54.*Fix"):
        runtime.get_mode()
    with pytest.raises(RuntimeError, match="Tesla T4"):
        runtime.get_mode("gpu")
    assert runtime.get_mode("cpu") == "cpu"  # chosen on purpose: allowed


def test_driver_problem_compares_driver_and_torch_cuda_build():
    assert runtime.driver_problem((550, 54), "13.0") is not None
    assert runtime.driver_problem((580, 82), "13.0") is None
    assert runtime.driver_problem((550, 54), "12.8") is None
    assert "525" in runtime.driver_problem((470, 1), "12.8")
    assert runtime.driver_problem(None, "13.0") is None
    assert runtime.driver_problem((550, 54), None) is None  # a CPU build of torch


def test_known_problems_reports_a_driver_mismatch():
    good = {"transformers": "5.17.0", "trl": "1.15.0", "datasets": "4.8.5"}
    warnings = runtime.known_problems("cpu", good, gpu_name=None, bf16=False,
                                      driver=(550, 54), cuda_build="13.0")
    assert len(warnings) == 1 and "580" in warnings[0]


def test_doctor_prints_driver_and_torch_cuda_build(monkeypatch, capsys):
    monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    monkeypatch.setattr(runtime, "gpu_visible", lambda: ("Tesla T4", (7, 5), (550, 54)))
    monkeypatch.setattr(runtime, "torch_cuda_build", lambda: "13.0")
    warnings = runtime.doctor("cpu")
    out = capsys.readouterr().out
    assert "driver    : NVIDIA 550.54; torch built for CUDA 13.0" in out
    assert any("driver >= 580" in w for w in warnings)


def test_harmless_transformers_message_is_filtered_and_others_are_not(caplog):
    import logging

    runtime.quiet_harmless_warnings()
    runtime.quiet_harmless_warnings()  # idempotent
    logger = logging.getLogger("transformers.trainer_utils")
    assert len(logger.filters) == 1
    record = logging.LogRecord(logger.name, logging.WARNING, __file__, 1,
                               "The tokenizer has new PAD/BOS/EOS tokens that differ from the "
                               "model config and generation config.", None, None)
    assert logger.filter(record) is False
    other = logging.LogRecord(logger.name, logging.WARNING, __file__, 1, "something else",
                              None, None)
    assert logger.filter(other)
