"""The setup cell's choice of install set, per runtime, with the detection mocked."""

import subprocess
import sys

import pytest

from utils import install_sets
from utils.install_sets import INSTALL_SETS, Runtime, choose

COLAB_TORCH = {"torch": "2.10.0+cu128", "torchvision": "0.25.0+cu128", "numpy": "2.0.2",
               "pillow": "11.3.0"}


def names(plan) -> set[str]:
    return {install_sets._name(r) for r in plan.requirements}


def test_colab_t4_keeps_colab_torch_and_has_no_vllm():
    plan = choose(Runtime(colab=True, gpu_name="Tesla T4", capability=(7, 5), driver=(550, 54),
                          installed=COLAB_TORCH))
    assert plan.name == "gpu"
    assert "torch==2.10.0+cu128" in plan.requirements
    assert "numpy==2.0.2" in plan.requirements and "pillow==11.3.0" in plan.requirements
    assert "vllm" not in names(plan) and "unsloth" in names(plan)
    assert not any(r.startswith("torch==2.13") for r in plan.requirements)
    assert any("transformers < 5" in reason for reason in plan.reasons)


def test_colab_a100_with_a_new_driver_gets_vllm_and_its_plugin():
    plan = choose(Runtime(colab=True, gpu_name="NVIDIA A100-SXM4-40GB", capability=(8, 0),
                          driver=(580, 82), installed=COLAB_TORCH))
    assert plan.name == "gpu-vllm"
    assert {"vllm", "vllm-bnb-plugin", "unsloth", "bitsandbytes"} <= names(plan)
    assert install_sets.TORCH in plan.requirements  # vllm 0.31 pins it: the runtime's is replaced
    assert "torch==2.10.0+cu128" not in plan.requirements


def test_colab_a100_with_an_old_driver_keeps_torch_and_says_why():
    plan = choose(Runtime(colab=True, gpu_name="NVIDIA A100-SXM4-40GB", capability=(8, 0),
                          driver=(550, 54), installed=COLAB_TORCH))
    assert plan.name == "gpu"
    assert "torch==2.10.0+cu128" in plan.requirements
    assert any("older than 580" in reason for reason in plan.reasons)


def test_colab_cpu_runtime_installs_no_gpu_stack():
    plan = choose(Runtime(colab=True, installed=COLAB_TORCH))
    assert plan.name == "cpu"
    assert not names(plan) & {"unsloth", "unsloth-zoo", "vllm", "bitsandbytes"}
    assert "torch==2.10.0+cu128" in plan.requirements
    assert install_sets.SMOLLM2 in plan.install_set.no_deps


def test_local_cuda_without_torch_picks_torch_for_the_driver():
    ampere = choose(Runtime(gpu_name="RTX A6000", capability=(8, 6), driver=(580, 95)))
    assert ampere.name == "gpu-vllm" and install_sets.TORCH in ampere.requirements
    turing = choose(Runtime(gpu_name="Quadro RTX 6000", capability=(7, 5), driver=(550, 120)))
    assert turing.name == "gpu" and install_sets.TORCH_CUDA12 in turing.requirements
    new_driver_turing = choose(Runtime(gpu_name="T4", capability=(7, 5), driver=(580, 1)))
    assert install_sets.TORCH in new_driver_turing.requirements


def test_local_cpu_without_torch_installs_the_cpu_build():
    plan = choose(Runtime())
    assert plan.name == "cpu"
    assert install_sets.TORCH in plan.requirements
    assert install_sets.CPU_TORCH_INDEX in plan.pip_args


def test_gpu_too_old_for_unsloth_gets_cpu_mode():
    plan = choose(Runtime(colab=True, gpu_name="Tesla P100", capability=(6, 0), driver=(550, 54),
                          installed=COLAB_TORCH))
    assert plan.name == "cpu" and "7.0" in plan.reasons[0]


def test_every_set_installs_smollm2_so_cpu_mode_always_works():
    for item in INSTALL_SETS.values():
        assert install_sets.SMOLLM2 in item.no_deps


def test_query_gpu_parses_nvidia_smi():
    out = "Tesla T4, 7.5, 550.54.15\n"
    assert install_sets.query_gpu(lambda *args: out) == ("Tesla T4", (7, 5), (550, 54, 15))
    assert install_sets.query_gpu(lambda *args: "") is None

    def broken(*args):
        raise subprocess.CalledProcessError(9, "nvidia-smi")

    assert install_sets.query_gpu(broken) is None


def test_detect_finds_colab_and_no_gpu_here(monkeypatch):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20261101")
    monkeypatch.setattr(install_sets, "query_gpu", lambda: None)
    runtime = install_sets.detect()
    assert runtime.colab and runtime.hosted and runtime.gpu_name is None
    assert runtime.installed["torch"].startswith("2.13.0")


def test_missing_reads_installed_versions():
    assert install_sets.missing(["torch>=2.0", "no-such-package-xyz==1.0", "torch==0.0.1"]) == \
        ["no-such-package-xyz==1.0", "torch==0.0.1"]


def test_setup_runtime_installs_nothing_locally(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(install_sets, "pip_install", calls.append)
    plan = install_sets.setup_runtime(runtime=Runtime(installed={"torch": "2.13.0"}))
    assert plan.name == "cpu" and calls == []
    assert "nothing installed here" in capsys.readouterr().out


def test_setup_runtime_installs_the_missing_set_on_colab(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(install_sets, "pip_install", calls.append)
    monkeypatch.setattr(install_sets, "missing", lambda reqs: list(reqs)[:1])
    runtime = Runtime(colab=True, gpu_name="Tesla T4", capability=(7, 5), driver=(550, 54),
                      installed={"torch": "2.13.0"})
    install_sets.setup_runtime(runtime=runtime)
    assert len(calls) == 2
    assert "unsloth==2026.10.7" in calls[0] and "torch==2.13.0" in calls[0]
    assert calls[1] == ["--no-deps", install_sets.SMOLLM2]
    out = capsys.readouterr().out
    assert "install set : gpu" in out and "Unsloth's HF generate" in out


def test_setup_runtime_asks_for_a_restart_when_an_imported_package_changed(monkeypatch):
    monkeypatch.setattr(install_sets, "pip_install", lambda args: None)
    monkeypatch.setattr(install_sets, "missing", lambda reqs: list(reqs))
    versions = iter([{"numpy": "1.0"}])
    monkeypatch.setattr(install_sets, "_imported_versions", lambda watched: next(versions))
    with pytest.raises(RuntimeError, match="RESTART NEEDED: .*numpy"):
        install_sets.setup_runtime(runtime=Runtime(colab=True, installed={"torch": "2.13.0"}))


def test_setup_runtime_skips_an_installed_set(monkeypatch, capsys):
    monkeypatch.setattr(install_sets, "pip_install", lambda args: pytest.fail("installed"))
    monkeypatch.setattr(install_sets, "missing", lambda reqs: [])
    install_sets.setup_runtime(runtime=Runtime(colab=True, installed={"torch": "2.13.0"}))
    assert "nothing to do" in capsys.readouterr().out


def test_pip_install_streams_output_and_raises_with_the_tail(capsys):
    with pytest.raises(RuntimeError, match="pip install failed"):
        install_sets.pip_install(["--dry-run", "--no-index", "no-such-package-xyz==1.0"])
    assert "$ pip install" in capsys.readouterr().out


def test_module_imports_with_the_standard_library_only():
    code = ("import sys; sys.modules['numpy'] = None; sys.modules['torch'] = None; "
            "import utils.install_sets")
    subprocess.run([sys.executable, "-c", code], check=True)
