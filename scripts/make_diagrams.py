"""Regenerate every diagram of notebooks 01 and 02 into images/ as SVG and PNG.

    python scripts/make_diagrams.py            # or: make diagrams

The drawing code lives in ``utils/diagrams.py`` so the notebooks draw the same figures inline.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils.diagrams import save_all


def main() -> int:
    paths = save_all(ROOT / "images")
    for path in paths:
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
