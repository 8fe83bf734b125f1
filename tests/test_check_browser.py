"""The browser check's own logic (the browser run itself is `make check-browser`)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import check_browser  # a script, not part of the package


def code(source, outputs=(), count=1):
    return {"cell_type": "code", "source": [source], "outputs": list(outputs),
            "execution_count": count}


def test_problems_in_flags_errors_and_unrun_cells_and_notes_stderr():
    cells = [
        {"cell_type": "markdown", "source": ["# title"]},
        code("print(1)", [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]),
        code("import warnings", [{"output_type": "stream", "name": "stderr",
                                  "text": ["UserWarning: careful\n", "more\n"]}]),
        code("1/0", [{"output_type": "error", "ename": "ZeroDivisionError",
                      "evalue": "division by zero", "traceback": []}]),
        code("print(2)", count=None),
        code("   ", count=None),  # an empty cell is not "did not run"
    ]
    errors, notes = check_browser.problems_in(cells)
    assert errors == ["cell 3: ZeroDivisionError: division by zero", "cell 4 did not run"]
    assert notes == ["cell 2 stderr: UserWarning: careful"]


def test_every_notebook_is_checked_solutions_included():
    found = [p.as_posix() for p in check_browser.notebooks([])]
    assert "01_rl_foundations.ipynb" in found
    assert any(p.startswith("solutions/") for p in found)
    assert found == sorted(p for p in found if "/" not in p) + sorted(p for p in found if "/" in p)
    assert check_browser.notebooks(["05_"]) == [p for p in check_browser.notebooks([])
                                                if "05_" in p.name]


def test_the_browser_never_downloads_and_the_screenshots_are_ignored():
    assert check_browser.CHROMIUM == Path("/usr/bin/chromium")
    assert {"--headless", "--no-sandbox", "--disable-gpu"} <= set(check_browser.CHROMIUM_ARGS)
    assert "browser-screenshots/" in (ROOT / ".gitignore").read_text().splitlines()
    assert "make check-browser" in (ROOT / ".ci" / "run").read_text()
