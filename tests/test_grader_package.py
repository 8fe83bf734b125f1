"""The grader ships in the wheel the Colab setup cell installs (``pip install git+...``).

An editable install (``make setup``) imports from the source tree and would hide a subpackage or a
data file that the wheel leaves out, so this builds the wheel from a copy of the tree and looks.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRADER = ROOT / "utils" / "grader"


def test_the_built_wheel_contains_the_grader_and_its_policy(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "utils", source / "utils",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"utils/grader/{path.name}" for path in GRADER.glob("*.py")}
    expected |= {"utils/grader/POLICY.md", "utils/rewards.py"}
    assert expected <= names, sorted(expected - names)
