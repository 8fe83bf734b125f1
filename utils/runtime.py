"""Where the course runs: the workshop mode, the device and dtype, Colab, seeding, `doctor()`.

One code path serves three modes, chosen by the environment variable ``WORKSHOP_MODE``:

- ``gpu``: Unsloth + Qwen2.5-3B-Instruct, 4-bit + LoRA (a free Colab T4 is enough).
- ``cpu``: SmolLM2-135M-Instruct with transformers + PEFT + TRL on a laptop.
- ``smoke``: a tiny random Qwen2 and a few GSM8K rows, what tests and CI run.

The default is ``gpu`` when CUDA is usable, else ``cpu``; a GPU that torch cannot use (a torch
built for a newer CUDA than the driver supports) is an error with the fix, never a silent cpu run.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import random
from pathlib import Path
from typing import Literal

import numpy as np

from utils.install_sets import (
    CUDA12_MIN_DRIVER,
    CUDA13_MIN_DRIVER,
    in_colab,
    query_gpu,
    version_tuple,
)

Mode = Literal["gpu", "cpu", "smoke"]
MODES: tuple[str, ...] = ("gpu", "cpu", "smoke")


def cuda_available() -> bool:
    """True when torch sees a CUDA device (imports torch lazily: `doctor()` must work without it)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def gpu_visible() -> tuple[str, tuple[int, int] | None, tuple[int, ...] | None] | None:
    """``(name, compute capability, driver)`` when ``nvidia-smi`` sees a GPU, whatever torch says."""
    return query_gpu()


def torch_cuda_build() -> str | None:
    """The CUDA version the installed torch was built for (``"13.0"``), None for a CPU build."""
    try:
        import torch
    except ImportError:
        return None
    return torch.version.cuda


# The oldest NVIDIA driver each CUDA major version runs on (minor-version compatibility).
MIN_DRIVER_FOR_CUDA = {13: CUDA13_MIN_DRIVER, 12: CUDA12_MIN_DRIVER, 11: (450, 80)}


def driver_problem(driver: tuple[int, ...] | None, cuda_build: str | None) -> str | None:
    """Why a torch built for ``cuda_build`` cannot use a GPU with this driver, with the fix;
    None when they fit (or either is unknown)."""
    if driver is None or not cuda_build:
        return None
    major = version_tuple(cuda_build)[0]
    needed = MIN_DRIVER_FOR_CUDA.get(major)
    if needed is None or tuple(driver) >= needed:
        return None
    have = ".".join(map(str, driver))
    return (f"torch is built for CUDA {cuda_build}, which needs NVIDIA driver >= "
            f"{'.'.join(map(str, needed))}; this machine has {have}. Fix: in Colab, run the "
            "setup cell again (it keeps Colab's own torch: Runtime > Disconnect and delete "
            "runtime first if torch was replaced); locally, update the NVIDIA driver or install "
            "a torch built for CUDA 12 (pip install torch==2.10.0).")


def _unusable_gpu_message(gpu) -> str:
    name, _, driver = gpu
    why = driver_problem(driver, torch_cuda_build())
    if why is None:
        why = ("the installed torch has no CUDA support" if torch_cuda_build() is None
               else "torch cannot initialise CUDA (see the warning torch printed)")
    return (f"An NVIDIA GPU ({name}) is present but torch cannot use it: {why} "
            "Set WORKSHOP_MODE=cpu to run the cpu track on purpose.")


def get_mode(mode: str | None = None) -> Mode:
    """The workshop mode: ``mode`` if given, else ``$WORKSHOP_MODE``, else gpu/cpu by hardware.

    An unknown value is an error rather than a silent fallback, because a typo such as
    ``WORKSHOP_MODE=smok`` would otherwise start a half-hour CPU run. For the same reason a GPU
    that torch cannot use is an error with the fix, not a quiet switch to cpu mode.
    """
    chosen = mode if mode is not None else os.environ.get("WORKSHOP_MODE", "").strip().lower()
    if not chosen:
        if cuda_available():
            return "gpu"
        gpu = gpu_visible()
        if gpu is not None:
            raise RuntimeError(_unusable_gpu_message(gpu))
        return "cpu"
    if chosen not in MODES:
        raise ValueError(f"WORKSHOP_MODE must be one of {', '.join(MODES)}; got {chosen!r}")
    if chosen == "gpu" and not cuda_available():
        gpu = gpu_visible()
        if gpu is not None:
            raise RuntimeError(_unusable_gpu_message(gpu))
        raise RuntimeError(
            "WORKSHOP_MODE=gpu needs a CUDA GPU and none is visible. In Colab: Runtime > "
            "Change runtime type > T4 GPU. On a laptop use WORKSHOP_MODE=cpu."
        )
    return chosen  # type: ignore[return-value]


def pick_device(mode: str | None = None):
    """``cuda`` in gpu mode, otherwise ``cpu`` (smoke runs on CPU even where a GPU exists)."""
    import torch

    return torch.device("cuda" if get_mode(mode) == "gpu" else "cpu")


def supports_bf16() -> bool:
    """bf16 needs compute capability 8.0 (Ampere) or later; a T4 is 7.5 and has only fp16."""
    import torch

    if not torch.cuda.is_available():
        return False
    major, _ = torch.cuda.get_device_capability()
    return major >= 8


def pick_dtype(device=None):
    """fp32 on CPU, bf16 on Ampere and later, fp16 on older GPUs such as the T4."""
    import torch

    device = torch.device(device) if device is not None else pick_device()
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if supports_bf16() else torch.float16


def seed_everything(seed: int = 42) -> None:
    """Seed Python, NumPy and torch so that a rerun of a cell gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


LIBRARIES = (
    "torch", "transformers", "trl", "datasets", "peft", "accelerate",
    "unsloth", "unsloth_zoo", "vllm", "bitsandbytes", "rl-reasoning-course",
)


def library_versions() -> dict[str, str | None]:
    """Installed version of each library the course depends on (None when absent)."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def known_problems(mode: str, versions: dict[str, str | None], gpu_name: str | None,
                   bf16: bool, driver: tuple[int, ...] | None = None,
                   cuda_build: str | None = None) -> list[str]:
    """Plain-words warnings about combinations that are known to break a run."""
    warnings: list[str] = []
    mismatch = driver_problem(driver, cuda_build)
    if mismatch:
        warnings.append(mismatch)
    tf, trl = versions.get("transformers"), versions.get("trl")
    if mode == "gpu" and versions.get("unsloth") is None:
        warnings.append("gpu mode needs Unsloth: pip install -e '.[gpu]' (or rerun the setup cell).")
    if mode != "gpu" and versions.get("unsloth") is not None and not cuda_available():
        warnings.append("Unsloth is installed but there is no CUDA: it is not imported on this path.")
    if tf is not None and version_tuple(tf) > (5, 17, 0):
        warnings.append(f"transformers {tf} is newer than Unsloth 2026.10 accepts (<=5.17.0).")
    if trl is not None and version_tuple(trl) > (1, 15, 0):
        warnings.append(f"trl {trl} is newer than Unsloth 2026.10 accepts (<=1.15.0).")
    ds = versions.get("datasets")
    if ds is not None and version_tuple(ds) >= (5, 0, 0):
        warnings.append(f"datasets {ds} is 5.x; Unsloth 2026.10 needs datasets<5.")
    if gpu_name and not bf16:
        warnings.append(f"{gpu_name} has no bf16: training must use fp16 (the T4 preset does).")
    if mode == "gpu" and versions.get("vllm") is None:
        warnings.append("vLLM is not installed: generation uses Unsloth's HF generate, about 3x "
                        "slower (expected on a T4: no vLLM supports both Turing and transformers "
                        "5; see utils/install_sets.py).")
    return warnings


def doctor(mode: str | None = None) -> list[str]:
    """Print mode, hardware and library versions, and warn about known-bad combinations.

    Returns the warnings so that a notebook or test can act on them.
    """
    mode = get_mode(mode)
    versions = library_versions()
    gpu_name, bf16 = None, False
    gpu = gpu_visible()
    driver = gpu[2] if gpu else None
    cuda_build = torch_cuda_build() if versions.get("torch") else None
    if cuda_available():
        import torch

        gpu_name = torch.cuda.get_device_name(0)
        bf16 = supports_bf16()
        mem = torch.cuda.get_device_properties(0).total_memory / 2**30
        hardware = f"{gpu_name}, {mem:.1f} GiB, bf16={'yes' if bf16 else 'no (fp16)'}"
    elif gpu is not None:
        hardware = f"{gpu[0]} present, but torch cannot use it"
    else:
        hardware = f"CPU only, {os.cpu_count()} cores"
    print(f"mode      : {mode}  (set WORKSHOP_MODE=gpu|cpu|smoke to change)")
    print(f"python    : {platform.python_version()} on {platform.system()} {platform.machine()}")
    print(f"hardware  : {hardware}")
    if gpu is not None:
        print(f"driver    : NVIDIA {'.'.join(map(str, driver)) if driver else '?'}; torch built "
              f"for CUDA {cuda_build or '- (CPU build)'}")
    print(f"colab     : {in_colab()}")
    for name, version in versions.items():
        print(f"{name:<21}: {version or '-'}")
    warnings = known_problems(mode, versions, gpu_name, bf16, driver=driver,
                              cuda_build=cuda_build)
    for warning in warnings:
        print(f"WARNING: {warning}")
    if not warnings:
        print("no known problems")
    return warnings


HARMLESS_LOG_MESSAGES = {
    "transformers.trainer_utils": (
        # TRL's trainer copies the tokenizer's pad/bos/eos ids into the model config; the tiny
        # and SmolLM2 models have no bos token, so it reports {'bos_token_id': None}: expected.
        "The tokenizer has new PAD/BOS/EOS tokens that differ from the model config",
    ),
}
"""Log messages known to be harmless on the course's paths, by logger: filtered by their exact
opening words so that every other warning of the same logger still shows."""


class _DropMessages(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefixes)


def quiet_harmless_warnings() -> None:
    """Hide the :data:`HARMLESS_LOG_MESSAGES` (red stderr boxes in a notebook that would teach
    learners to ignore red boxes). Idempotent."""
    for name, prefixes in HARMLESS_LOG_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(prefixes))


def run_dir(name: str) -> Path:
    """Where a run named ``name`` keeps checkpoints, logs and samples: ``runs/name``, or under
    ``$RL_COURSE_RUNS``; in Colab, on Google Drive (mounted here, which asks permission once).

    A Colab disconnect recycles the VM and its disk: only checkpoints on Drive let ``resume=True``
    continue a run instead of starting it again. Notebook 05 finds notebook 04's adapter here.
    """
    if os.environ.get("RL_COURSE_RUNS"):
        return Path(os.environ["RL_COURSE_RUNS"]) / name
    if in_colab():
        from google.colab import drive  # only importable inside Colab

        drive.mount("/content/drive")
        return Path("/content/drive/MyDrive/rl-reasoning-course/runs") / name
    return Path("runs") / name
