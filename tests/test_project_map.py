"""The map of ``utils`` (its package docstring, repeated in the README) stays complete and true.

Each map line is ``module  lessons  what it is``. The lessons are derived here from the notebooks:
a lesson uses a module when one of its code cells imports it, or a cell names
``python -m utils.<module>``; a solution notebook counts for its lesson.
"""

import ast
import json
import re
from pathlib import Path

import utils

ROOT = Path(__file__).resolve().parents[1]
HEADER = "module         lessons   what it is"
LINE = re.compile(r"^(?P<module>[a-z_]+/?) +(?P<lessons>-|\d\d(?:-\d\d)?(?: \d\d(?:-\d\d)?)*)"
                  r"  +(?P<what>\S.*)$")


def map_block(text: str) -> list[str]:
    """The map's lines: from the header to the first blank line or closing fence."""
    lines = text.splitlines()
    assert HEADER in lines, f"no map header {HEADER!r}"
    block = []
    for line in lines[lines.index(HEADER) + 1:]:
        if not line.strip() or line.startswith(("```", '"""')):
            break
        block.append(line)
    return block


def parse_map(block: list[str]) -> dict[str, set[str]]:
    entries: dict[str, set[str]] = {}
    for line in block:
        match = LINE.match(line)
        assert match, f"map line is not 'module  lessons  what it is': {line!r}"
        module = match["module"].rstrip("/")
        assert module not in entries, f"{module} is on the map twice"
        entries[module] = set()
        for item in match["lessons"].split():
            if item == "-":
                continue
            first, _, last = item.partition("-")
            entries[module] |= {f"{n:02d}" for n in range(int(first), int(last or first) + 1)}
    return entries


def modules_on_disk() -> set[str]:
    package = ROOT / "utils"
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    return modules | {p.parent.name for p in package.glob("*/__init__.py")}


def imported_utils_modules(source: str, where: str) -> set[str]:
    # Shell and magic lines (!pip, %time) are not Python; everything else must parse.
    code = "\n".join("" if line.lstrip().startswith(("!", "%")) else line
                     for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        raise AssertionError(f"{where}: a code cell does not parse: {error}") from error
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("utils.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "utils":
                found |= {a.name for a in node.names}
            elif node.module.startswith("utils."):
                found.add(node.module.split(".")[1])
    return found


def lessons_using_each_module() -> dict[str, set[str]]:
    uses: dict[str, set[str]] = {}
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    notebooks += sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        lesson = path.name[:2]
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            names = set(re.findall(r"python -m utils\.(\w+)", source))
            if cell["cell_type"] == "code":
                names |= imported_utils_modules(source, path.name)
            for name in names:
                uses.setdefault(name, set()).add(lesson)
    return uses


def package_map() -> list[str]:
    return map_block(utils.__doc__)


def readme_map() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Repository layout", 1)[1].split("\n## ", 1)[0]
    return map_block(section)


def test_the_map_names_every_module_and_only_modules():
    mapped = set(parse_map(package_map()))
    on_disk = modules_on_disk()
    assert not on_disk - mapped, f"modules missing from the map in utils/__init__.py: " \
                                 f"{sorted(on_disk - mapped)}"
    assert not mapped - on_disk, f"the map names modules that do not exist: " \
                                 f"{sorted(mapped - on_disk)}"


def test_the_readme_holds_the_same_map():
    assert readme_map() == package_map(), (
        "the README's layout map differs from utils/__init__.py; copy this block there:\n"
        + "\n".join([HEADER, *package_map()]))


def test_the_map_names_the_lessons_that_use_each_module():
    uses = lessons_using_each_module()
    unknown = set(uses) - modules_on_disk()
    assert not unknown, f"notebooks import utils modules that do not exist: {sorted(unknown)}"
    wrong = {module: (sorted(lessons), sorted(uses.get(module, set())))
             for module, lessons in parse_map(package_map()).items()
             if lessons != uses.get(module, set())}
    assert not wrong, "map lessons (listed, used by the notebooks) differ: " + repr(wrong)


def test_the_tests_map_names_every_test_file_and_its_fast_pattern_selects_the_fast_row():
    text = (ROOT / "tests" / "README.md").read_text()
    rows = {line.split("|")[1].strip(): set(re.findall(r"`(test_\w+)`", line.split("|")[2]))
            for line in text.splitlines() if line.startswith(("| fast", "| model"))}
    on_disk = {p.stem for p in (ROOT / "tests").glob("test_*.py")}
    listed = rows["fast"] | rows["model"]
    assert not rows["fast"] & rows["model"], f"in two tiers: {sorted(rows['fast'] & rows['model'])}"
    assert listed == on_disk, (f"tests/README.md misses {sorted(on_disk - listed)}, "
                               f"names missing files {sorted(listed - on_disk)}")
    pattern = re.search(r"^FAST='([^']+)'$", text, re.MULTILINE)[1]
    selected = {stem for stem in on_disk if re.search(pattern, f"tests/{stem}.py")}
    assert selected == rows["fast"], f"FAST selects {sorted(selected ^ rows['fast'])} wrongly"
