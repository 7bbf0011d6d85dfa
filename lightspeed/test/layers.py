# -*- test-case-name: lightspeed.test.test_layers -*-
"""
The static checks behind :obj:`lightspeed.test.test_layers`: the import graph of
a set of modules, its cycles, the imports a layer table forbids, and
oversize modules, classes and functions.

Every check takes ``sources``, a mapping of dotted module name to source text,
and reads it with :obj:`ast`; nothing here imports the modules it checks.  An
optional ``packages`` names the modules that are packages (an ``__init__.py``),
which matters for relative imports; when it is left out, a module counts as
a package when ``sources`` holds a module inside it.
"""

from __future__ import annotations

import ast
import fnmatch
import os
from collections import deque
from dataclasses import dataclass
from typing import (
    Union,
    Collection,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
)

__all__ = [
    "ANY",
    "Layer",
    "Import",
    "Forbidden",
    "Oversize",
    "load_tree",
    "collect_imports",
    "resolve",
    "import_graph",
    "find_cycles",
    "layers_of",
    "misplaced",
    "table_problems",
    "forbidden_imports",
    "imports_of",
    "oversize",
    "format_cycle",
    "format_forbidden",
    "describe_rule",
]

#: In :obj:`Layer.may_import`: every layer of the table.
ANY = "*"


@dataclass(frozen=True)
class Layer:
    """
    One row of a layer table.

    :ivar name: the layer's name, used in other rows' ``may_import``.
    :ivar modules: dotted module names in this layer; ``"a.b.*"`` covers every
        module below ``a.b`` (but not ``a.b`` itself).
    :ivar may_import: names of the other layers whose modules this layer's
        modules may import, or ``[ANY]``.  Its own layer is always allowed.
    :ivar also: single modules of other layers that may be imported as well.
    """

    name: str
    modules: Sequence[str]
    may_import: Sequence[str] = ()
    also: Sequence[str] = ()

    def places(self, module: str) -> bool:
        return any(fnmatch.fnmatchcase(module, pattern) for pattern in self.modules)


@dataclass(frozen=True)
class Import:
    """
    One imported name.  ``from a import b, c`` gives two.

    :ivar importer: the module holding the import statement.
    :ivar line: its line number.
    :ivar module: the absolute module named by ``import X`` or ``from X
        import``, relative imports resolved; ``None`` for a relative import
        that climbs above the top-level package.
    :ivar name: the name after ``from X import``, or ``None`` for ``import X``.
    :ivar where: where the statement is, for messages: ``"top level"``,
        ``"in Kernel.start"``, ``"under TYPE_CHECKING"``...
    """

    importer: str
    line: int
    module: Optional[str]
    name: Optional[str]
    where: str

    def statement(self) -> str:
        if self.module is None:
            return "a relative import above the top-level package"
        if self.name is None:
            return f"import {self.module}"
        return f"from {self.module} import {self.name}"

    def describe(self) -> str:
        return f"{self.importer} line {self.line} ({self.where})"


@dataclass(frozen=True)
class Forbidden:
    """
    An import the layer table does not allow.

    :ivar imp: the import (of the first name, for ``from X import a, b``).
    :ivar target: the module it imports (see :obj:`resolve`).
    :ivar reason: why it is forbidden.
    :ivar names: every name the statement imports from ``target``.
    """

    imp: Import
    target: str
    reason: str
    names: Tuple[str, ...] = ()

    def statement(self) -> str:
        if self.imp.module is None or self.imp.name is None:
            return self.imp.statement()
        return f"from {self.imp.module} import {', '.join(self.names or (self.imp.name,))}"


@dataclass(frozen=True)
class Oversize:
    """
    A module, class or function over its size limit.
    """

    module: str
    kind: str  # "module", "class" or "function"
    name: str  # qualified name inside the module; the module name for a module
    line: int
    lines: int
    limit: int

    def __str__(self) -> str:
        if self.kind == "module":
            return f"module {self.module}: {self.lines} lines (limit {self.limit})"
        return (
            f"{self.kind} {self.module}.{self.name} (line {self.line}):"
            f" {self.lines} lines (limit {self.limit})"
        )


# -- reading the tree ---------------------------------------------------------


def load_tree(
    package_dir: str, exclude: Collection[str] = ("test",), extra: Mapping[str, str] = {}
) -> Tuple[Dict[str, str], Set[str]]:
    """
    Read every ``.py`` module of the package in ``package_dir``.

    :param exclude: subdirectories of ``package_dir`` to leave out.
    :param extra: more modules, as module name to file path; missing files are
        left out.
    :return: ``(sources, packages)``.
    """
    top = os.path.basename(os.path.normpath(package_dir))
    parent = os.path.dirname(os.path.normpath(package_dir))
    sources: Dict[str, str] = {}
    packages: Set[str] = set()
    for dirpath, dirnames, filenames in os.walk(package_dir):
        rel = os.path.relpath(dirpath, parent).split(os.sep)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d.isidentifier() and not (rel == [top] and d in exclude)
        )
        for filename in sorted(filenames):
            stem, ext = os.path.splitext(filename)
            if ext != ".py" or not stem.isidentifier():
                continue
            if stem == "__init__":
                name = ".".join(rel)
                packages.add(name)
            else:
                name = ".".join(rel + [stem])
            sources[name] = _read(os.path.join(dirpath, filename))
    for name, path in extra.items():
        if os.path.isfile(path):
            sources[name] = _read(path)
    return sources, packages


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _packages(sources: Mapping[str, str], packages: Optional[Collection[str]]) -> FrozenSet[str]:
    if packages is not None:
        return frozenset(packages)
    return frozenset(
        name for name in sources if any(other.startswith(name + ".") for other in sources)
    )


def _parse(module: str, source: str) -> ast.Module:
    return ast.parse(source, filename=f"<{module}>")


# -- imports ------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _is_dynamic_import(func: ast.expr) -> bool:
    """
    ``importlib.import_module(...)``, ``import_module(...)``, ``__import__(...)``.
    """
    if isinstance(func, ast.Name):
        return func.id in ("import_module", "__import__")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _relative_base(importer: str, is_package: bool, level: int) -> Optional[str]:
    package = importer if is_package else importer.rpartition(".")[0]
    parts = package.split(".") if package else []
    if level - 1 >= len(parts):
        return None
    return ".".join(parts[: len(parts) - (level - 1)])


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.is_package = is_package
        self.scope: List[str] = []
        self.type_checking = 0
        self.found: List[Import] = []

    def where(self) -> str:
        parts = []
        if self.scope:
            parts.append("in " + ".".join(self.scope))
        if self.type_checking:
            parts.append("under TYPE_CHECKING")
        return ", ".join(parts) or "top level"

    def add(self, node: Union[ast.stmt, ast.expr], module: Optional[str], name: Optional[str]) -> None:
        self.found.append(Import(self.module, node.lineno, module, name, self.where()))

    def visit_scope(self, node: ast.AST) -> None:
        self.scope.append(node.name)  # type: ignore[attr-defined]
        self.generic_visit(node)
        self.scope.pop()

    visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = visit_scope

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.visit(node.test)
        self.type_checking += 1
        for stmt in node.body:
            self.visit(stmt)
        self.type_checking -= 1
        for stmt in node.orelse:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.add(node, alias.name, None)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module
        if node.level:
            base = _relative_base(self.module, self.is_package, node.level)
            if base is None:
                module = None
            elif module:
                module = f"{base}.{module}" if base else module
            else:
                module = base
        for alias in node.names:
            self.add(node, module, alias.name)

    def visit_Call(self, node: ast.Call) -> None:
        if (
            _is_dynamic_import(node.func)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            self.add(node, node.args[0].value, None)
        self.generic_visit(node)


def collect_imports(
    sources: Mapping[str, str], packages: Optional[Collection[str]] = None
) -> Dict[str, List[Import]]:
    """
    Every import of every module, in source order: top level, in functions,
    methods and class bodies, under ``if TYPE_CHECKING:``, and calls of
    ``importlib.import_module`` or ``__import__`` with a literal absolute name.
    """
    pkgs = _packages(sources, packages)
    result = {}
    for module, source in sources.items():
        collector = _Collector(module, module in pkgs)
        collector.visit(_parse(module, source))
        result[module] = collector.found
    return result


def _ours(name: str, top: str) -> bool:
    return name == top or name.startswith(top + ".")


def resolve(imp: Import, modules: Collection[str], top: str = "lightspeed") -> Optional[str]:
    """
    The module ``imp`` imports, as far as ``modules`` is concerned.

    ``from p import x`` imports the module ``p.x`` when ``modules`` has one
    (``from lightspeed import errors``), else ``p`` (``from lightspeed import
    Kernel`` imports the package).  ``import a.b.c`` imports ``a.b.c`` alone,
    not the packages around it.

    :return: a name in ``modules``; or, for a name in package ``top`` that is no
        module in ``modules`` (and for a relative import above the top-level
        package), that name, which then belongs to no layer; or ``None`` for a
        module outside (the standard library, Twisted...).
    """
    if imp.module is None:
        return "<relative import above the top-level package>"
    if imp.name is not None and imp.name != "*":
        submodule = f"{imp.module}.{imp.name}"
        if submodule in modules:
            return submodule
    if imp.module in modules or _ours(imp.module, top):
        return imp.module
    return None


def import_graph(
    sources: Mapping[str, str], packages: Optional[Collection[str]] = None
) -> Dict[str, Dict[str, Import]]:
    """
    Module -> module it imports -> its first import of that module, for
    imports between modules of ``sources``.
    """
    graph: Dict[str, Dict[str, Import]] = {}
    for module, imports in collect_imports(sources, packages).items():
        edges = graph.setdefault(module, {})
        for imp in imports:
            target = resolve(imp, sources)
            if target is not None and target in sources:
                edges.setdefault(target, imp)
    return graph


# -- cycles -------------------------------------------------------------------


def _reachable(graph: Mapping[str, Mapping[str, Import]], start: str) -> Set[str]:
    seen: Set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _shortest_path(
    graph: Mapping[str, Mapping[str, Import]], start: str, goal: str, within: Set[str]
) -> List[str]:
    came_from: Dict[str, Optional[str]] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while came_from[path[-1]] is not None:
                path.append(came_from[path[-1]])  # type: ignore[arg-type]
            return path[::-1]
        for nxt in sorted(graph[node]):
            if nxt in within and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"no path from {start} to {goal}")  # pragma: no cover


def find_cycles(
    sources: Mapping[str, str], packages: Optional[Collection[str]] = None
) -> List[List[Import]]:
    """
    Import cycles, each a list of the imports along it, ending where it
    started.

    Every import that is part of some cycle appears in at least one of them:
    for each such import M{a -> b} not yet shown, the shortest path back from
    M{b} to M{a} is reported.
    """
    graph = import_graph(sources, packages)
    reach = {module: _reachable(graph, module) for module in graph}
    cycles: List[List[Import]] = []
    covered: Set[Tuple[str, str]] = set()
    for a in sorted(graph):
        if a not in reach[a]:
            continue
        component = {m for m in reach[a] if a in reach[m]}
        for b in sorted(graph[a]):
            if b not in component or (a, b) in covered:
                continue
            nodes = [a] + _shortest_path(graph, b, a, component)
            steps = list(zip(nodes, nodes[1:]))
            covered.update(steps)
            cycles.append([graph[x][y] for x, y in steps])
    return cycles


def format_cycle(cycle: List[Import]) -> str:
    names = [imp.importer for imp in cycle] + [cycle[0].importer]
    lines = [" -> ".join(names)]
    for imp, target in zip(cycle, names[1:]):
        lines.append(f"    {imp.describe()}: imports {target}")
    return "\n".join(lines)


# -- layers -------------------------------------------------------------------


def layers_of(module: str, table: Sequence[Layer]) -> List[str]:
    """
    The names of the layers of ``table`` that place ``module``.
    """
    return [layer.name for layer in table if layer.places(module)]


def misplaced(modules: Iterable[str], table: Sequence[Layer]) -> List[Tuple[str, List[str]]]:
    """
    ``(module, layers)`` for each module that is not in exactly one layer.
    """
    result = []
    for module in sorted(modules):
        found = layers_of(module, table)
        if len(found) != 1:
            result.append((module, found))
    return result


def _allowed_layers(layer: Layer, table: Sequence[Layer]) -> Set[str]:
    if ANY in layer.may_import:
        return {other.name for other in table}
    return {layer.name, *layer.may_import}


def table_problems(table: Sequence[Layer]) -> List[str]:
    """
    Mistakes in the table itself: repeated or unknown layer names, modules
    named by two layers, ``also`` modules no layer places, and layers that may
    import each other (so that the table would allow a cycle).
    """
    problems = []
    names = [layer.name for layer in table]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"layer {name} is in the table twice")
    for layer in table:
        for other in layer.may_import:
            if other != ANY and other not in names:
                problems.append(f"layer {layer.name} may import unknown layer {other}")
        for pattern in layer.modules:
            if "*" not in pattern and len(layers_of(pattern, table)) > 1:
                problems.append(
                    f"{pattern} is in layers {', '.join(layers_of(pattern, table))}"
                )
        for module in layer.also:
            if len(layers_of(module, table)) != 1:
                problems.append(f"layer {layer.name} may import {module}, which is in no single layer")
    # The layers' own import graph must have no cycle.
    deps: Dict[str, Set[str]] = {}
    for layer in table:
        allowed = _allowed_layers(layer, table) | {
            found for module in layer.also for found in layers_of(module, table)
        }
        deps.setdefault(layer.name, set()).update(allowed & set(names) - {layer.name})
    graph = {name: {d: None for d in sorted(deps[name])} for name in deps}
    for name in sorted(graph):
        if name in _reachable(graph, name):  # type: ignore[arg-type]
            problems.append(f"layer {name} may import itself through other layers")
    return problems


def forbidden_imports(
    sources: Mapping[str, str],
    table: Sequence[Layer],
    packages: Optional[Collection[str]] = None,
    top: str = "lightspeed",
) -> List[Forbidden]:
    """
    Every import of a module of package ``top`` (or of any module in
    ``sources``) that ``table`` does not allow.  Each import statement is
    reported once per module it imports, wherever it is.  Imports within one
    layer are allowed; an import of or by a module in no single layer, or of a
    name of ``top`` that is no module, is not.
    """
    found: Dict[Tuple[str, int, str], Forbidden] = {}
    for module, imports in collect_imports(sources, packages).items():
        for imp in imports:
            target = resolve(imp, sources, top)
            if target is None:
                continue
            reason = _forbidden_reason(module, target, sources, table)
            if reason is None:
                continue
            key = (module, imp.line, target)
            earlier = found.get(key)
            names = (earlier.names if earlier else ()) + ((imp.name,) if imp.name else ())
            found[key] = Forbidden(earlier.imp if earlier else imp, target, reason, names)
    return [found[key] for key in sorted(found)]


def _forbidden_reason(
    module: str, target: str, modules: Collection[str], table: Sequence[Layer]
) -> Optional[str]:
    if target not in modules:
        return f"{target} is no module of the tree, so it is in no layer"
    for name in (module, target):
        found = layers_of(name, table)
        if not found:
            return f"{name} is in no layer"
        if len(found) > 1:
            return f"{name} is in more than one layer: {', '.join(found)}"
    layer = next(layer for layer in table if layer.places(module))
    theirs = layers_of(target, table)[0]
    if theirs in _allowed_layers(layer, table) or target in layer.also:
        return None
    return f"{module} is in layer {layer.name}, {target} in layer {theirs}"


def describe_rule(layer: Layer) -> str:
    """
    What ``layer`` may import, in words.
    """
    if ANY in layer.may_import:
        return f"{layer.name} may import anything"
    allowed = [layer.name, *layer.may_import, *layer.also]
    return f"{layer.name} may import {', '.join(allowed)}"


def format_forbidden(found: Forbidden) -> str:
    return f"{found.imp.describe()}: {found.statement()} -- {found.reason}"


def imports_of(
    sources: Mapping[str, str],
    module: str,
    prefix: str,
    packages: Optional[Collection[str]] = None,
) -> List[Import]:
    """
    The imports in ``module`` of ``prefix`` or anything below it
    (``from twisted import internet`` counts for ``twisted.internet``).
    """
    found = []
    for imp in collect_imports(sources, packages).get(module, []):
        names = [imp.module or ""]
        if imp.name is not None and imp.name != "*":
            names.append(f"{imp.module}.{imp.name}")
        if any(_ours(name, prefix) for name in names):
            found.append(imp)
    return found


# -- sizes --------------------------------------------------------------------


def oversize(
    sources: Mapping[str, str], max_module: int, max_class: int, max_function: int
) -> List[Oversize]:
    """
    Modules over ``max_module`` lines, classes over ``max_class`` and functions
    or methods over ``max_function``.  A class or function is measured from its
    ``class`` or ``def`` line (decorators left out) to its last line; a nested
    function counts both on its own and within its parent.
    """
    result = []
    for module, source in sorted(sources.items()):
        length = len(source.splitlines())
        if length > max_module:
            result.append(Oversize(module, "module", module, 1, length, max_module))
        todo: List[Tuple[ast.AST, Tuple[str, ...]]] = [(_parse(module, source), ())]
        while todo:
            node, scope = todo.pop()
            for child in ast.iter_child_nodes(node):
                inner = scope
                if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    inner = scope + (child.name,)
                    kind = "class" if isinstance(child, ast.ClassDef) else "function"
                    limit = max_class if kind == "class" else max_function
                    lines = child.end_lineno - child.lineno + 1  # type: ignore[operator]
                    if lines > limit:
                        name = ".".join(inner)
                        result.append(Oversize(module, kind, name, child.lineno, lines, limit))
                todo.append((child, inner))
    return sorted(result, key=lambda o: (o.module, o.line, o.kind))
