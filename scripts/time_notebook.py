"""Run one notebook top to bottom and print each code cell's wall time, then the total.

How the cpu-mode notebook times in the README were measured, e.g.::

    WORKSHOP_MODE=cpu HF_HUB_OFFLINE=1 python scripts/time_notebook.py \
        notebooks/06_r1_and_beyond.ipynb /tmp/06_cpu.ipynb

The executed copy (outputs included) goes to the second path; the notebook itself is untouched.
Cells run in the notebook's own folder, as in JupyterLab.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("output", type=Path, help="where the executed copy is written")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args()

    notebook = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(notebook, timeout=args.timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(args.notebook.parent)}})
    started = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            cell_started = time.perf_counter()
            client.execute_cell(cell, index)
            first_line = (cell.source.strip().splitlines() or [""])[0][:70]
            print(f"{time.perf_counter() - cell_started:7.1f} s  [{index}] {first_line}",
                  flush=True)
    print(f"total {time.perf_counter() - started:.1f} s", flush=True)
    nbformat.write(notebook, args.output)


if __name__ == "__main__":
    main()
