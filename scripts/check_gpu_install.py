"""`make check-gpu-install`: does every install set the setup cell can choose resolve?

For each runtime case below, :func:`utils.install_sets.choose` gives the exact requirements the
setup cell would install; this script asks pip's resolver about each distinct set (and about
``pip install -e ".[gpu]"``) for CPython 3.12 on manylinux x86_64, against the registry, without
downloading a wheel (``--dry-run --report`` with ``--use-feature=fast-deps``). It prints each set's
package count and download size and exits 1 on any conflict.

- Platform: manylinux up to glibc 2.35, Colab's (Ubuntu 22.04); vLLM's dependency llguidance 1.7
  ships only manylinux_2_31 wheels, so a manylinux_2_28-only check would wrongly fail.
- Sets that keep the runtime's torch are resolved with Colab's torch pinned (:data:`COLAB`); the
  size "to download" leaves out what came with that torch (torch, its CUDA libraries, triton...).
- Sizes come from the registry's Content-Length of each wheel in the resolver's report (pip's
  report names the files but not their sizes).
- pip config files and find-links of this machine are ignored, so the answer is the registry's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from utils.install_sets import Runtime, choose

COLAB = {"torch": "2.10.0", "torchvision": "0.25.0", "torchaudio": "2.10.0"}
"""Colab's preinstalled torch in 2026: the torch 2.10 upgrade (googlecolab/colabtools#5801) was
rolled out; the 2.11-2.13 ones (#5925, #5982, #6053) were still open, Colab asking for CUDA 12
builds. On Colab the cell pins whatever torch is really there."""
CASES = {
    "Colab T4": Runtime(colab=True, gpu_name="Tesla T4", capability=(7, 5), driver=(550, 54),
                        installed=COLAB),
    "Colab L4/A100, driver >= 580": Runtime(colab=True, gpu_name="NVIDIA A100-SXM4-40GB",
                                            capability=(8, 0), driver=(580, 82), installed=COLAB),
    "Colab L4/A100, driver < 580": Runtime(colab=True, gpu_name="NVIDIA L4", capability=(8, 9),
                                           driver=(550, 54), installed=COLAB),
    "Colab CPU": Runtime(colab=True, installed=COLAB),
    "local CUDA, Ampere, driver 580, no torch": Runtime(gpu_name="NVIDIA RTX A6000",
                                                        capability=(8, 6), driver=(580, 95)),
    "local CUDA, Turing, driver 550, no torch": Runtime(gpu_name="Quadro RTX 6000",
                                                       capability=(7, 5), driver=(550, 120)),
    "local CPU, no torch": Runtime(),
}
PYTHON = "3.12"
GLIBC_MINORS = range(35, 16, -1)
TORCH_COMPANIONS = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*)$")


def pip_env() -> dict[str, str]:
    """This machine's pip settings minus its local mirrors: resolve against the registry."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def resolve(requirements: list[str], pip_args: list[str]) -> tuple[dict | None, str]:
    """pip's dry-run resolution: (report, "") or (None, pip's error lines)."""
    platforms = [arg for minor in GLIBC_MINORS for arg in ("--platform",
                                                           f"manylinux_2_{minor}_x86_64")]
    platforms += ["--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                   "--report", str(report), "--only-binary=:all:", "--python-version", PYTHON,
                   *platforms, "--target", str(Path(tmp) / "target"),
                   "--use-feature=fast-deps", *pip_args, *requirements]
        result = subprocess.run(command, capture_output=True, text=True, env=pip_env(),
                                check=False)
        if result.returncode != 0 or not report.is_file():
            errors = [line for line in (result.stderr + result.stdout).splitlines()
                      if "ERROR" in line or "conflict" in line.lower()]
            return None, "\n".join(errors[-12:]) or result.stderr[-2000:]
        return json.loads(report.read_text()), ""


def size_of(url: str) -> int:
    """Bytes of one wheel: Content-Length from the registry (HEAD), or the local file's size."""
    if url.startswith("file://"):
        return Path(urllib.request.url2pathname(url[len("file://"):])).stat().st_size
    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(response.headers.get("Content-Length", 0))


def kept_closure(report: dict, kept: set[str]) -> set[str]:
    """The kept packages plus everything they pull in: what the runtime already has."""
    items = {_norm(i["metadata"]["name"]): i["metadata"] for i in report["install"]}
    todo, seen = [n for n in kept if n in items], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for dep in items[name].get("requires_dist", []):
            if "extra ==" in dep:
                continue
            dep_name = _norm(re.split(r"[ ;<>=!~\[(]", dep, maxsplit=1)[0])
            if dep_name in items:
                todo.append(dep_name)
    return seen


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def summarize(report: dict, kept: set[str]) -> tuple[int, int, int, int]:
    """(packages, bytes, packages to download on the runtime, bytes to download)."""
    urls = {_norm(i["metadata"]["name"]): i["download_info"]["url"] for i in report["install"]}
    with ThreadPoolExecutor(16) as pool:
        sizes = dict(zip(urls, pool.map(size_of, urls.values())))
    already = kept_closure(report, kept) if kept else set()
    new = [n for n in urls if n not in already]
    return len(urls), sum(sizes.values()), len(new), sum(sizes[n] for n in new)


def main() -> int:
    start = time.time()
    jobs: dict[tuple, dict] = {}
    for case, runtime in CASES.items():
        plan = choose(runtime)
        # the CPU torch index is not reachable from every checker: resolve the same pins on PyPI
        pip_args = tuple(a for a in plan.pip_args if a not in ("--extra-index-url",)
                         and not a.startswith("https://download.pytorch.org"))
        note = ("  (resolved on PyPI, whose torch wheel is the CUDA build; the cell installs "
                "the CPU build, about 0.2 GB, from PyTorch's CPU index)"
                if pip_args != plan.pip_args else "")
        key = (plan.name, plan.requirements, pip_args)
        job = jobs.setdefault(key, {"set": plan.name, "cases": [], "kept": set(), "note": note})
        job["cases"].append(case)
        if plan.install_set.keep_torch and runtime.installed:
            job["kept"] = {_norm(n) for n in runtime.installed}
    # what `pip install -e ".[gpu]"` resolves: the project's dependencies plus its gpu extra,
    # read from pyproject.toml (building the project's metadata in an isolated environment
    # gives the same list and takes minutes longer)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    gpu_extra = (*project["dependencies"], *project["optional-dependencies"]["gpu"])
    jobs[("pyproject [gpu]", gpu_extra, ())] = {
        "set": 'pip install -e ".[gpu]"', "cases": ["pyproject.toml"], "kept": set()}
    print(f"resolving {len(jobs)} install sets for CPython {PYTHON}, manylinux x86_64 "
          "(glibc <= 2.35), against the registry; no wheel is downloaded")
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda key: resolve(list(key[1]), list(key[2])), jobs))
    failures = 0
    for (key, job), (report, error) in zip(jobs.items(), results):
        print(f"\n{job['set']}  <- {'; '.join(job['cases'])}")
        print("  " + " ".join(key[1])[:400])
        if report is None:
            failures += 1
            print("  CONFLICT:\n    " + error.replace("\n", "\n    "))
            continue
        count, total, new_count, new_total = summarize(report, job["kept"])
        line = f"  resolves: {count} packages, {total / 1e9:.2f} GB of wheels"
        if job["kept"]:
            line += (f"; on a runtime that has torch {COLAB['torch']}: {new_count} packages, "
                     f"{new_total / 1e6:.0f} MB to download")
        print(line + job.get("note", ""))
    print(f"\n{len(jobs) - failures}/{len(jobs)} install sets resolve "
          f"({time.time() - start:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
