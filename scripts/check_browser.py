"""Run every notebook in JupyterLab in headless Chromium, as a participant would (`make check-browser`).

nbmake proves that the notebooks' *code* runs; it never renders anything. This check opens the
course the way a participant meets it: JupyterLab started from the repository in smoke mode, each
notebook (solutions included) opened in a real browser with the course kernel, Run All, then:

- fails on any error output, any code cell that did not run, any widget that does not render, and
  any JavaScript error in the browser console;
- drives notebook 03's reward lab with the mouse and keyboard (the accuracy slider, the
  strict/soft toggle, the std checkbox) and checks that the table's numbers change, after checking
  that Run All leaves the lab in the state its text describes (strict format, std division on);
- saves screenshots (each cell with outputs, and the lab at 1024x768) to ``browser-screenshots/``.

The notebooks run on a temporary copy with autosave off, so the committed files never get outputs.
The server it starts is stopped on the way out, failures included. It installs what it needs:
Debian's ``chromium`` (when run as root and missing) and Playwright (the pin of the ``browser``
extra in pyproject.toml) into the running Python. Playwright drives the system Chromium; it never
downloads a browser of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KERNEL = "rl-reasoning-course"
SCREENSHOTS = ROOT / "browser-screenshots"
CELL_TIMEOUT_S = 600  # per notebook's Run All; nbmake allows the same per cell
# JupyterLab settings for the run: no autosave (the copy stays as it was), every cell in the DOM
# (windowing would detach cells out of view), and no calls to the internet for news or updates.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


def ensure_chromium() -> None:
    """Debian's chromium: installed with apt when missing and we are root, else a clear error."""
    if CHROMIUM.exists():
        return
    if os.geteuid() != 0:
        sys.exit(f"{CHROMIUM} is missing: install Debian's chromium (sudo apt-get install -y "
                 "chromium) and run again")
    print("installing Debian's chromium (apt-get)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)


def ensure_playwright() -> None:
    """Playwright's Python package (the pin in pyproject's ``browser`` extra), no browser download."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        pins = project["optional-dependencies"]["browser"]
        print("installing", *pins, flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *pins], check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def notebooks(only: list[str]) -> list[Path]:
    """Every notebook under notebooks/ (solutions included), in course order, or those named."""
    found = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted(
        (ROOT / "notebooks" / "solutions").glob("*.ipynb"))
    if only:
        found = [path for path in found if any(name in path.name for name in only)]
    return [path.relative_to(ROOT / "notebooks") for path in found]


@contextlib.contextmanager
def jupyter_lab(workdir: Path, port: int, log_path: Path) -> Iterator[str]:
    """JupyterLab over ``workdir`` as `make lab` starts it (smoke mode, token-less on localhost);
    stopped with its whole process group on the way out, failures included."""
    settings = workdir / ".lab-settings"
    for name, value in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    env = {**os.environ, "WORKSHOP_MODE": "smoke", "HF_HUB_OFFLINE": "1",
           "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(workdir / ".lab-workspaces")}
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
               "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={workdir}"]
    if os.geteuid() == 0:
        command.append("--allow-root")  # as `make lab` does for root (containers, cloud VMs)
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=workdir, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"JupyterLab exited with {server.returncode}; see {log_path}")
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(f"{url}/api/status", timeout=2)
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer within 120 s; see {log_path}")
                time.sleep(0.5)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


OPEN_AND_RUN_JS = """
async ({path, kernel, timeoutMs}) => {
  const app = window.jupyterapp;
  const panel = await app.commands.execute('docmanager:open',
                                           {path, factory: 'Notebook', kernel: {name: kernel}});
  window.__panel = panel;
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.shell.activateById(panel.id);  // run-all-cells acts on the current notebook: make it this one
  if (app.shell.currentWidget !== panel) throw new Error('could not make ' + path + ' current');
  const kernelName = panel.sessionContext.session?.kernel?.name;
  const timeout = new Promise((_, reject) =>
      setTimeout(() => reject(new Error('Run All took longer than ' + timeoutMs + ' ms')), timeoutMs));
  await Promise.race([app.commands.execute('notebook:run-all-cells'), timeout]);
  return kernelName;
}
"""

# What the run left: the notebook's cells with outputs (as a model, not pixels), and the widget
# outputs that did not render (no widget DOM, or JupyterLab's "Error displaying widget").
INSPECT_JS = """
() => {
  const panel = window.__panel;
  const cells = panel.content.model.toJSON().cells;
  let widgets = 0;
  const brokenWidgets = [];
  panel.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code') return;
    const children = cell.outputArea.node.querySelectorAll(':scope > .jp-OutputArea-child');
    cell.outputArea.model.toJSON().forEach((output, j) => {
      if (!(output.data && output.data['application/vnd.jupyter.widget-view+json'])) return;
      widgets += 1;
      const node = children[j];
      if (!node || !node.querySelector('.jupyter-widgets')
          || /Error displaying widget|Loading widget/.test(node.textContent)) {
        brokenWidgets.push('cell ' + index + ': ' + (node ? node.textContent.slice(0, 200) : 'no output node'));
      }
    });
  });
  return {cells, widgets, brokenWidgets};
}
"""

CLOSE_JS = """
async () => {
  const panel = window.__panel;
  if (!panel || panel.isDisposed) return;
  await panel.sessionContext.shutdown();
  panel.dispose();
}
"""


def problems_in(cells: list[dict]) -> tuple[list[str], list[str]]:
    """Errors (error outputs, code cells left unrun) and notes (stderr boxes a learner sees)."""
    errors, notes = [], []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        if cell.get("execution_count") is None and "".join(cell["source"]).strip():
            errors.append(f"cell {index} did not run")
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                errors.append(f"cell {index}: {output['ename']}: {output['evalue'][:300]}")
            elif output["output_type"] == "stream" and output["name"] == "stderr":
                text = "".join(output["text"]).strip().splitlines()
                notes.append(f"cell {index} stderr: {text[0][:150] if text else ''}")
    return errors, notes


def screenshot_cells(page, panel, folder: Path) -> int:
    """One picture per code cell with outputs, as the learner sees it after Run All."""
    folder.mkdir(parents=True, exist_ok=True)
    cells = panel.locator(".jp-Notebook .jp-Cell")
    tallest = max([0, *panel.evaluate(
        "node => [...node.querySelectorAll('.jp-Notebook .jp-Cell')].map(c => c.offsetHeight)")])
    # A cell taller than the window would be cut off: make the window tall enough for the tallest.
    page.set_viewport_size({"width": 1280, "height": min(max(900, tallest + 200), 6000)})
    saved = 0
    for index in range(cells.count()):
        cell = cells.nth(index)
        if cell.locator(".jp-OutputArea-output").count() == 0:
            continue
        cell.scroll_into_view_if_needed()
        cell.screenshot(path=str(folder / f"cell-{index:02d}.png"))
        saved += 1
    page.set_viewport_size({"width": 1280, "height": 900})
    return saved


# Does a table fit in the notebook's width, or scroll inside its own container? ("cut off" if
# not). A scrollbar on the whole lab or output area does not count: it sits below the table, out
# of sight while the learner reads the columns.
TABLE_FITS_JS = """
table => {
  const notebook = table.closest('.jp-Notebook') || document.body;
  if (table.getBoundingClientRect().right <= notebook.getBoundingClientRect().right + 1) return 'fits';
  const outer = table.closest('.widget-box, .jp-OutputArea-output') || notebook;
  for (let node = table.parentElement; node && node !== outer; node = node.parentElement) {
    const overflow = getComputedStyle(node).overflowX;
    if ((overflow === 'auto' || overflow === 'scroll') && node.scrollWidth > node.clientWidth) {
      return 'scrolls';
    }
  }
  return 'cut off';
}
"""


def lab_controls(lab) -> dict:
    """The lab's controls, found by widget class and (partial, case-insensitive) label text, so
    that renaming a description or reordering the sliders does not break the check."""
    def pick(selector: str, label: str):
        found = lab.locator(selector).filter(has_text=re.compile(label, re.IGNORECASE))
        return found.first if found.count() else lab.locator(selector).first

    return {"accuracy": pick(".widget-slider", "accuracy"),
            "kind": pick(".widget-toggle-buttons", "strict"),
            "std": pick(".widget-checkbox", "std")}


def lab_state(lab) -> dict:
    """What a learner sees of the reward lab: the toggle's selection, the checkbox, the table."""
    controls = lab_controls(lab)
    return {
        "selected": controls["kind"].locator(".widget-toggle-button.mod-active").all_inner_texts(),
        "std_checked": controls["std"].locator("input").is_checked(),
        "accuracy": controls["accuracy"].locator(".widget-readout").inner_text(),
        "table": lab.locator("table").first.inner_text(),
    }


def drive_reward_lab(page, panel, folder: Path) -> list[str]:
    """Notebook 03: the lab starts as its text says; slider, toggle and checkbox change the table."""
    errors = []
    labs = panel.locator(".jp-OutputArea-output .widget-vbox").filter(
        has=page.locator(".widget-toggle-buttons")).filter(has=page.locator(".widget-checkbox"))
    if labs.count() == 0:
        return ["notebook 03: the reward lab (sliders, strict/soft toggle, std checkbox) is missing"]
    lab = labs.first
    page.set_viewport_size({"width": 1024, "height": 768})  # a laptop screen, as the issue read it
    lab.evaluate("node => node.scrollIntoView({block: 'start'})")  # the controls on top
    page.screenshot(path=str(folder / "reward-lab-1024x768.png"))
    if lab.locator("table").first.evaluate(TABLE_FITS_JS) == "cut off":
        errors.append("reward lab at 1024x768 (file browser open): the table runs past the "
                      "notebook's edge with no scrollbar of its own")
    state = lab_state(lab)
    if [s.strip().lower() for s in state["selected"]] != ["strict"]:
        errors.append(f"reward lab after Run All: toggle shows {state['selected']}, the text "
                      "asks the learner to switch strict -> soft")
    if not state["std_checked"]:
        errors.append("reward lab after Run All: std division is off, the text asks the learner "
                      "to switch it off")

    def changed(action: str, before: dict) -> dict:
        for _ in range(40):  # the kernel recomputes and the HTML output redraws: up to 20 s
            page.wait_for_timeout(500)
            after = lab_state(lab)
            if after["table"] != before["table"]:
                return after
        errors.append(f"reward lab: {action} did not change the table")
        return after

    controls = lab_controls(lab)
    # The accuracy weight: click its slider's handle and step it up with the arrow keys.
    controls["accuracy"].locator(".noUi-handle").click()
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)
    if lab_state(lab)["accuracy"] == state["accuracy"]:
        errors.append(f"reward lab: the accuracy slider did not move (still {state['accuracy']})")
    state = changed("moving the accuracy slider", state)
    # The strict/soft toggle: click the button that is not selected.
    controls["kind"].locator(".widget-toggle-button:not(.mod-active)").first.click()
    state = changed("flipping the strict/soft toggle", state)
    # The std checkbox: with the keyboard, as a participant tabbing through the controls would.
    controls["std"].locator("input").focus()
    page.keyboard.press("Space")
    state = changed("the 'divide by group std' checkbox", state)
    lab.evaluate("node => node.scrollIntoView({block: 'start'})")  # the controls on top
    page.screenshot(path=str(folder / "reward-lab-after-moves.png"))
    page.set_viewport_size({"width": 1280, "height": 900})
    return errors


def check_notebook(page, relpath: Path, console: list[str]) -> tuple[list[str], list]:
    """Open, Run All, inspect, screenshot, close; returns (errors, notes)."""
    from playwright.sync_api import Error as PlaywrightError

    start = len(console)
    try:
        kernel = page.evaluate(OPEN_AND_RUN_JS, {"path": f"notebooks/{relpath.as_posix()}",
                                                 "kernel": KERNEL,
                                                 "timeoutMs": CELL_TIMEOUT_S * 1000})
    except PlaywrightError as error:
        return [f"Run All failed: {str(error).splitlines()[0]}"], []
    page.wait_for_timeout(1000)  # late console messages
    with contextlib.suppress(PlaywrightError):  # give slow widgets 15 s; the check then says which
        page.wait_for_function(
            "() => !window.__panel.node.textContent.includes('Loading widget...')", timeout=15_000)
    result = page.evaluate(INSPECT_JS)
    errors, notes = problems_in(result["cells"])
    if kernel != KERNEL:
        errors.append(f"ran on kernel {kernel!r}, not {KERNEL!r}")
    errors += [f"widget did not render: {text!r}" for text in result["brokenWidgets"]]
    folder = SCREENSHOTS / relpath.with_suffix("").as_posix().replace("/", "-")
    shutil.rmtree(folder, ignore_errors=True)
    panel = page.locator(f"[id=\"{page.evaluate('() => window.__panel.id')}\"]")
    saved = screenshot_cells(page, panel, folder)
    if relpath.name.startswith("03_") and relpath.parent == Path("."):  # the lab, not solutions
        errors += drive_reward_lab(page, panel, folder)
    errors += [f"browser console: {message}" for message in console[start:]]
    figures = sum("image/png" in output.get("data", {}) for cell in result["cells"]
                  for output in cell.get("outputs", []))
    notes.append(f"{figures} figures, {result['widgets']} widget outputs, {saved} screenshots "
                 f"in {folder}")
    page.evaluate(CLOSE_JS)
    return errors, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="run only notebooks whose name contains these")
    args = parser.parse_args()
    ensure_chromium()
    ensure_playwright()
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    selected = notebooks(args.only)
    failures: dict[str, list[str]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="check-browser-") as tmp:
        workdir = Path(tmp)
        # A copy: Run All's outputs must never reach the committed notebooks.
        shutil.copytree(ROOT / "notebooks", workdir / "notebooks",
                        ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints"))
        with jupyter_lab(workdir, free_port(), SCREENSHOTS / "jupyterlab.log") as url, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: console.append(f"uncaught: {error}"))
            # One page for the whole run; ?reset starts from an empty workspace.
            page.goto(f"{url}/lab?reset", wait_until="domcontentloaded")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started",
                                   timeout=120_000)
            page.evaluate("() => window.jupyterapp.started")
            for relpath in selected:
                t0 = time.perf_counter()
                try:
                    errors, notes = check_notebook(page, relpath, console)
                except PlaywrightError as error:  # a step timed out: report it, go on
                    errors, notes = [f"browser: {str(error).splitlines()[0]}"], []
                    with contextlib.suppress(PlaywrightError):
                        page.evaluate(CLOSE_JS)
                verdict = "FAIL" if errors else "ok"
                print(f"{verdict:4} {relpath} ({time.perf_counter() - t0:.0f} s)", flush=True)
                for line in errors:
                    print(f"     error: {line}")
                for line in notes:
                    print(f"     note: {line}")
                if errors:
                    failures[str(relpath)] = errors
            browser.close()
    print(f"browser check: {time.perf_counter() - started:.0f} s; screenshots in {SCREENSHOTS}")
    print(f"{len(selected) - len(failures)} passed, {len(failures)} failed")  # CI reads this line
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
