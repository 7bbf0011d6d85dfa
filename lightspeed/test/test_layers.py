# -*- test-case-name: lightspeed.test.test_layers -*-
"""
The architecture's layer table, kept true: every module of the package (and
the ``twistd`` plugin) is in exactly one layer and imports only what its layer
may import, no imports form a cycle, no module, class or function grows past
its size limit, and :obj:`lightspeed.clientlite` stays free of the reactor.

The modules are read with :obj:`ast` (see :obj:`lightspeed.test.layers`), never
imported, so every import counts: top level, inside functions, methods and
classes, and under ``if TYPE_CHECKING:``.  There are no exemptions: the table
below and these rules are the whole truth.  A new module fails
:obj:`LayerTests.test_every_module_placed` until it is given a layer here.
"""

from __future__ import annotations

import os
import re
import textwrap
from typing import Dict, List, Mapping, Optional, Set, Tuple

from twisted.trial.unittest import SkipTest, SynchronousTestCase

import lightspeed
from lightspeed.test.layers import (
    ANY,
    Layer,
    collect_imports,
    describe_rule,
    find_cycles,
    forbidden_imports,
    format_cycle,
    format_forbidden,
    imports_of,
    import_graph,
    layers_of,
    load_tree,
    misplaced,
    oversize,
    resolve,
    table_problems,
)

# -- the layer table ------------------------------------------------------------
#
# One row per layer: the modules in it, the other layers its modules may
# import, and ("also") single modules of other layers they may import as
# well.  A layer may always import its own modules (cycles are caught
# separately).  "lightspeed.net.*" covers every module below lightspeed.net.
# The package itself, "lightspeed" (lightspeed/__init__.py), is the top
# layer: `from lightspeed import Kernel` imports it, while `import
# lightspeed.errors` and `from lightspeed import errors` import
# lightspeed.errors alone.  The layers run from the bottom (errors) up.

LAYERS = [
    Layer(
        "errors",
        modules=["lightspeed.errors", "lightspeed.specifier", "lightspeed.bounded", "lightspeed.version",
                 "lightspeed.ratelimit"],
        may_import=[],
    ),
    Layer(
        "contracts",
        modules=["lightspeed.interfaces"],
        may_import=["errors"],
    ),
    Layer(
        "wire",
        modules=[
            "lightspeed.message",
            "lightspeed.wire",
            "lightspeed.wire.framing",
            "lightspeed.wire.codec",
            "lightspeed.wire.connection",
            "lightspeed.wire.preauth",
            "lightspeed.wire.tracehops",
            "lightspeed.wire.handshake",
        ],
        may_import=["errors"],
    ),
    Layer(
        "routing",
        modules=["lightspeed.router", "lightspeed.paths", "lightspeed.adverts", "lightspeed.vouching"],
        may_import=["errors", "wire"],
    ),
    Layer(
        # The local runtime: sessions, timers, dispatch inside one kernel.
        "runtime",
        modules=["lightspeed.session", "lightspeed.registry", "lightspeed.timers", "lightspeed.calls",
                 "lightspeed.runtime"],
        may_import=["errors", "contracts"],
    ),
    Layer(
        "network",
        modules=["lightspeed.net", "lightspeed.net.*", "lightspeed.network"],
        may_import=["errors", "contracts", "wire", "routing"],
        # Value types such as RemoteSender; never lightspeed.runtime or
        # lightspeed.kernel.
        also=["lightspeed.session"],
    ),
    Layer(
        "links",
        modules=["lightspeed.wire.protocol", "lightspeed.wire.throttle", "lightspeed.wire.options"],
        may_import=["errors", "contracts", "wire"],
    ),
    Layer(
        "features",
        modules=[
            "lightspeed.auth",
            "lightspeed.monitor",
            "lightspeed.introspection",
            "lightspeed.control",
            "lightspeed.trace",
            "lightspeed.stats",
        ],
        may_import=["errors", "contracts", "wire", "routing"],
        also=["lightspeed.session"],
    ),
    Layer(
        "node",
        modules=[
            "lightspeed.kernel",
            "lightspeed.node",
            "lightspeed.service",
            "lightspeed.tls",
            "lightspeed.tap",
            "lightspeed.demo",
            "lightspeed.web",
            "lightspeed.web.*",
            "twisted.plugins.lightspeed_plugin",
        ],
        may_import=[
            "errors", "contracts", "wire", "routing", "runtime", "network", "links", "features",
        ],
    ),
    Layer(
        # Programs and clients outside a node.  cli may import clientlite
        # (same layer); __main__ runs cli.
        "edges",
        modules=["lightspeed.__main__", "lightspeed.clientlite", "lightspeed.litelink", "lightspeed.liteparts",
                 "lightspeed.litetemplate", "lightspeed.cli", "lightspeed.cliutil", "lightspeed.clicommands",
                 "lightspeed.clibench"],
        may_import=["errors", "wire"],
        # The `certs` subcommand makes certificates.  ClientLite signs its
        # own LSA with the kernels' signer (lightspeed.adverts, pure: no
        # reactor) and so builds the LinkState it signs (lightspeed.router).
        also=["lightspeed.tls", "lightspeed.adverts", "lightspeed.router"],
    ),
    Layer(
        "testkit",
        modules=["lightspeed.testing", "lightspeed.memorylinks", "lightspeed.heapclock"],
        may_import=["errors", "contracts", "wire", "routing", "runtime", "network", "links", "features", "node",
                    "edges"],
    ),
    Layer(
        # The public surface, `import lightspeed` (it loads lightspeed.tls
        # and lightspeed.testing lazily), and the examples, which use only it.
        "package",
        modules=["lightspeed", "lightspeed.examples", "lightspeed.examples.*"],
        may_import=[ANY],
    ),
]

#: Size limits, in lines.  A class or function is measured from its `class`
#: or `def` line (decorators left out) to its last line.
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 400
MAX_FUNCTION_LINES = 50

#: lightspeed.clientlite must run without a reactor.
CLIENTLITE = "lightspeed.clientlite"
NO_REACTOR = "twisted.internet"

# -- the tree -------------------------------------------------------------------

PACKAGE_DIR = os.path.dirname(os.path.abspath(lightspeed.__file__))
PLUGIN = "twisted.plugins.lightspeed_plugin"
# Next to the package both in a checkout and when installed.
PLUGIN_PATH = os.path.join(
    os.path.dirname(PACKAGE_DIR), "twisted", "plugins", "lightspeed_plugin.py"
)

_tree: Optional[Tuple[Dict[str, str], Set[str]]] = None


def tree() -> Tuple[Dict[str, str], Set[str]]:
    """
    ``(sources, packages)`` of every module of the package except
    ``lightspeed/test/``, and of the plugin when it is there.
    """
    global _tree
    if _tree is None:
        _tree = load_tree(PACKAGE_DIR, exclude=["test"], extra={PLUGIN: PLUGIN_PATH})
    return _tree


def _report(title: str, lines: List[str]) -> str:
    return f"{title} ({len(lines)}):\n" + "\n".join(f"  {line}" for line in lines)


class LayerTests(SynchronousTestCase):
    """
    The package as it is on disk, against the table above.
    """

    def test_table_consistent(self) -> None:
        """
        When the table is read on its own, then its layers are named once,
        name only known layers, place each module named in full and each
        "also" module in one layer, and may not import each other in a ring.
        """
        problems = table_problems(LAYERS)
        if problems:
            self.fail(_report("The layer table is inconsistent", problems))

    def test_tree_found(self) -> None:
        """
        When the tree is read, then it holds the package, its subpackages and
        modules, and nothing from lightspeed/test/.
        """
        sources, packages = tree()
        self.assertIn("lightspeed", sources)
        self.assertIn("lightspeed", packages)
        self.assertIn("lightspeed.errors", sources)
        self.assertEqual(
            [m for m in sources if m == "lightspeed.test" or m.startswith("lightspeed.test.")], []
        )

    def test_plugin_read(self) -> None:
        """
        When the twistd plugin is next to the package, then it is checked too.
        """
        if not os.path.isfile(PLUGIN_PATH):
            raise SkipTest(f"{PLUGIN_PATH} is absent (an install without the plugin)")
        self.assertIn(PLUGIN, tree()[0])

    def test_every_module_placed(self) -> None:
        """
        When a module is in no layer of the table, or in two, then it is named.
        """
        sources, _ = tree()
        bad = [
            f"{module}: in layers {', '.join(found)}" if found else f"{module}: in no layer"
            for module, found in misplaced(sources, LAYERS)
        ]
        if bad:
            self.fail(_report("Modules not in exactly one layer (add them to LAYERS)", bad))

    def test_no_cycles(self) -> None:
        """
        When imports between modules of the package form a cycle of any
        length (counting imports in functions and under TYPE_CHECKING), then
        each cycle is shown with the line of each import along it.
        """
        sources, packages = tree()
        cycles = [format_cycle(cycle) for cycle in find_cycles(sources, packages)]
        if cycles:
            self.fail(_report("Import cycles", cycles))

    def test_allowed(self) -> None:
        """
        When a module imports a module its layer may not import, then the
        import is named with its line and the rules of the layers involved.
        """
        sources, packages = tree()
        found = forbidden_imports(sources, LAYERS, packages)
        lines = [format_forbidden(f) for f in found]
        involved = {n for f in found for n in layers_of(f.imp.importer, LAYERS)}
        rules = [describe_rule(layer) for layer in LAYERS if layer.name in involved]
        if lines:
            self.fail(
                _report("Imports the layer table does not allow", lines)
                + "\n"
                + _report("Rules of those layers", rules)
            )

    def test_sizes(self) -> None:
        """
        When a module is over 500 lines, a class over 400 or a function or
        method over 50, then each is named with its length.
        """
        sources, _ = tree()
        found = [
            str(o) for o in oversize(sources, MAX_MODULE_LINES, MAX_CLASS_LINES, MAX_FUNCTION_LINES)
        ]
        if found:
            self.fail(_report("Over the size limits", found))

    def test_clientlite_no_reactor(self) -> None:
        """
        When lightspeed.clientlite imports anything from twisted.internet, then
        each such import is named.
        """
        sources, packages = tree()
        if CLIENTLITE not in sources:
            raise SkipTest(f"{CLIENTLITE} does not exist yet")
        found = [
            f"{imp.describe()}: {imp.statement()}"
            for imp in imports_of(sources, CLIENTLITE, NO_REACTOR, packages)
        ]
        if found:
            self.fail(_report(f"{CLIENTLITE} imports {NO_REACTOR} (it must run without a reactor)", found))


# -- the checker itself -------------------------------------------------------------


def _sources(**modules: str) -> Dict[str, str]:
    """
    Module sources from keyword arguments: ``lightspeed__wire__codec="..."``
    is ``lightspeed.wire.codec``; a name with a dot is kept as it is.
    """
    return {
        name if "." in name else name.replace("__", "."): textwrap.dedent(src)
        for name, src in modules.items()
    }


def _edges(sources: Mapping[str, str], packages: Optional[Set[str]] = None) -> Set[Tuple[str, str]]:
    return {(a, b) for a, targets in import_graph(sources, packages).items() for b in targets}


class ImportCollectionTests(SynchronousTestCase):
    """
    :obj:`collect_imports`, :obj:`resolve` and :obj:`import_graph` on small module sets.
    """

    def test_everywhere(self) -> None:
        """
        When imports sit at top level, in a function, a method, a class body,
        under TYPE_CHECKING (plain or typing.TYPE_CHECKING) and in an
        import_module call, then each is found with where it is.
        """
        sources = _sources(
            lightspeed="",
            lightspeed__a="""\
                import typing
                from typing import TYPE_CHECKING
                import lightspeed.b
                if TYPE_CHECKING:
                    from lightspeed import c
                else:
                    import lightspeed.d
                if typing.TYPE_CHECKING:
                    import lightspeed.e
                def f():
                    from lightspeed.f import x
                class K:
                    import lightspeed.g
                    def m(self):
                        import importlib
                        importlib.import_module("lightspeed.h")
                """,
            **{f"lightspeed__{m}": "" for m in "bcdefgh"},
        )
        found = {
            (imp.line, resolve(imp, sources), imp.where)
            for imp in collect_imports(sources)["lightspeed.a"]
            if resolve(imp, sources)
        }
        self.assertEqual(
            found,
            {
                (3, "lightspeed.b", "top level"),
                (5, "lightspeed.c", "under TYPE_CHECKING"),
                (7, "lightspeed.d", "top level"),
                (9, "lightspeed.e", "under TYPE_CHECKING"),
                (11, "lightspeed.f", "in f"),
                (13, "lightspeed.g", "in K"),
                (16, "lightspeed.h", "in K.m"),
            },
        )

    def test_relative(self) -> None:
        """
        When imports are relative, then they resolve against the importer's
        package: a module's own package, or a package's ``__init__`` itself.
        """
        sources = _sources(
            lightspeed="from . import errors\nfrom .wire import codec",
            lightspeed__errors="",
            lightspeed__wire="from . import codec\nfrom .framing import frame",
            lightspeed__wire__codec="from .. import errors\nfrom ..errors import E",
            lightspeed__wire__framing="from . import codec",
        )
        self.assertEqual(
            _edges(sources),
            {
                ("lightspeed", "lightspeed.errors"),
                ("lightspeed", "lightspeed.wire.codec"),
                ("lightspeed.wire", "lightspeed.wire.codec"),
                ("lightspeed.wire", "lightspeed.wire.framing"),
                ("lightspeed.wire.codec", "lightspeed.errors"),
                ("lightspeed.wire.framing", "lightspeed.wire.codec"),
            },
        )

    def test_explicit_packages(self) -> None:
        """
        When a package has no modules in the mapping, then ``packages`` still
        makes ``from . import x`` in it resolve against itself.
        """
        sources = _sources(lightspeed="", lightspeed__web="from . import x", lightspeed__x="")
        self.assertEqual(_edges(sources), {("lightspeed.web", "lightspeed.x")})
        self.assertEqual(
            _edges(sources, {"lightspeed", "lightspeed.web"}), {("lightspeed.web", "lightspeed.web")}
        )

    def test_package_or_submodule(self) -> None:
        """
        When a module imports from the package, then a submodule name counts
        as that submodule, a re-exported name as the package, and ``import
        a.b.c`` as ``a.b.c`` alone.
        """
        sources = _sources(
            lightspeed="",
            lightspeed__errors="",
            lightspeed__wire="",
            lightspeed__wire__codec="",
            lightspeed__a="from lightspeed import errors, Kernel\nimport lightspeed.wire.codec",
        )
        self.assertEqual(
            {b for a, b in _edges(sources) if a == "lightspeed.a"},
            {"lightspeed.errors", "lightspeed", "lightspeed.wire.codec"},
        )

    def test_outside_ignored(self) -> None:
        """
        When a module imports the standard library or Twisted, then the graph
        has no edge for it; a lightspeed name that is no module resolves to
        itself.
        """
        sources = _sources(
            lightspeed="", lightspeed__a="import os\nfrom twisted.internet import defer\nimport lightspeed.nope"
        )
        imports = collect_imports(sources)["lightspeed.a"]
        self.assertEqual([resolve(imp, sources) for imp in imports], [None, None, "lightspeed.nope"])
        self.assertEqual(_edges(sources), set())


class CycleTests(SynchronousTestCase):
    """
    :obj:`find_cycles`.
    """

    def test_long_cycle(self) -> None:
        """
        When a -> b -> c -> a (one import in a function, one under
        TYPE_CHECKING), then the cycle is found and shown with its lines.
        """
        sources = _sources(
            lightspeed="",
            lightspeed__a="import lightspeed.b",
            lightspeed__b="def f():\n    from lightspeed import c",
            lightspeed__c="from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lightspeed.a import A",
            lightspeed__d="import lightspeed.a",
        )
        cycles = find_cycles(sources)
        self.assertEqual(len(cycles), 1)
        self.assertEqual(
            format_cycle(cycles[0]),
            "lightspeed.a -> lightspeed.b -> lightspeed.c -> lightspeed.a\n"
            "    lightspeed.a line 1 (top level): imports lightspeed.b\n"
            "    lightspeed.b line 2 (in f): imports lightspeed.c\n"
            "    lightspeed.c line 3 (under TYPE_CHECKING): imports lightspeed.a",
        )

    def test_every_edge_shown(self) -> None:
        """
        When two cycles share a module, then every import taking part in a
        cycle is in some reported cycle.
        """
        sources = _sources(
            lightspeed="",
            lightspeed__a="import lightspeed.b\nimport lightspeed.c",
            lightspeed__b="import lightspeed.a",
            lightspeed__c="import lightspeed.a",
        )
        shown = {(imp.importer, resolve(imp, sources)) for c in find_cycles(sources) for imp in c}
        self.assertEqual(
            shown,
            {
                ("lightspeed.a", "lightspeed.b"),
                ("lightspeed.b", "lightspeed.a"),
                ("lightspeed.a", "lightspeed.c"),
                ("lightspeed.c", "lightspeed.a"),
            },
        )

    def test_self_import(self) -> None:
        """
        When a module imports itself, then that is a cycle.
        """
        sources = _sources(lightspeed="", lightspeed__a="from lightspeed import a")
        self.assertEqual(len(find_cycles(sources)), 1)

    def test_no_cycle(self) -> None:
        """
        When imports only go one way, then no cycle.  Importing a submodule
        does not count as importing the package around it.
        """
        sources = _sources(
            lightspeed="from lightspeed.a import A",
            lightspeed__a="import lightspeed.b\nfrom lightspeed import b",
            lightspeed__b="",
        )
        self.assertEqual(find_cycles(sources), [])


class ForbiddenTests(SynchronousTestCase):
    """
    :obj:`forbidden_imports`, :obj:`misplaced` and :obj:`table_problems`, with the real
    table and with small ones.
    """

    def forbidden(self, sources: Mapping[str, str], table: List[Layer] = LAYERS) -> List[Tuple[str, int, str]]:
        return [(f.imp.importer, f.imp.line, f.target) for f in forbidden_imports(sources, table)]

    def test_upward_hidden(self) -> None:
        """
        When a network module imports the kernel under TYPE_CHECKING and a
        runtime module inside a method, then both are forbidden; importing
        lightspeed.session, wire and routing modules is not.
        """
        sources = _sources(
            lightspeed="",
            lightspeed__kernel="",
            lightspeed__runtime="",
            lightspeed__session="",
            lightspeed__router="",
            lightspeed__message="",
            lightspeed__network="""\
                from typing import TYPE_CHECKING
                from lightspeed.session import RemoteSender
                from lightspeed.router import Router
                from lightspeed import message
                if TYPE_CHECKING:
                    from lightspeed.kernel import Kernel
                class Network:
                    def start(self):
                        from lightspeed.runtime import Loop
                """,
        )
        self.assertEqual(
            self.forbidden(sources),
            [("lightspeed.network", 6, "lightspeed.kernel"), ("lightspeed.network", 9, "lightspeed.runtime")],
        )

    def test_package_is_top(self) -> None:
        """
        When a feature imports a name from the package, then that is an import
        of the top (package) layer; a submodule imported from the package is not.
        """
        sources = _sources(
            lightspeed="",
            lightspeed__errors="",
            lightspeed__monitor="from lightspeed import errors, Kernel, Session",
        )
        self.assertEqual(self.forbidden(sources), [("lightspeed.monitor", 1, "lightspeed")])
        [found] = forbidden_imports(sources, LAYERS)
        self.assertEqual(
            format_forbidden(found),
            "lightspeed.monitor line 1 (top level): from lightspeed import Kernel, Session"
            " -- lightspeed.monitor is in layer features, lightspeed in layer package",
        )

    def test_real_rules(self) -> None:
        """
        When modules import across the real table, then links may not reach
        the network, edges may reach tls but not the kernel, the node may reach
        the network, and the testkit anything.
        """
        sources = _sources(
            lightspeed="",
            lightspeed__kernel="import lightspeed.network",
            lightspeed__network="",
            lightspeed__tls="",
            lightspeed__wire="",
            lightspeed__wire__protocol="import lightspeed.network",
            lightspeed__cli="import lightspeed.tls\nimport lightspeed.clientlite\nimport lightspeed.kernel",
            lightspeed__clientlite="",
            **{"lightspeed.__main__": "from lightspeed.cli import main"},
            lightspeed__testing="import lightspeed.kernel\nimport lightspeed.cli",
            twisted__plugins__lightspeed_plugin="import lightspeed.tap",
            lightspeed__tap="",
        )
        self.assertEqual(
            self.forbidden(sources),
            [("lightspeed.cli", 3, "lightspeed.kernel"), ("lightspeed.wire.protocol", 1, "lightspeed.network")],
        )

    def test_unknown_and_unplaced(self) -> None:
        """
        When a module imports a lightspeed name that is no module, or a module
        in no layer, or is in no layer itself, then each import is forbidden.
        """
        table = [Layer("low", ["lightspeed.low"]), Layer("high", ["lightspeed.high"], ["low"])]
        sources = _sources(
            lightspeed__low="",
            lightspeed__high="import lightspeed.gone\nimport lightspeed.stray\nimport lightspeed.low",
            lightspeed__stray="import lightspeed.low",
        )
        self.assertEqual(
            self.forbidden(sources, table),
            [
                ("lightspeed.high", 1, "lightspeed.gone"),
                ("lightspeed.high", 2, "lightspeed.stray"),
                ("lightspeed.stray", 1, "lightspeed.low"),
            ],
        )
        self.assertEqual(misplaced(sources, table), [("lightspeed.stray", [])])

    def test_misplaced(self) -> None:
        """
        When patterns of two layers cover one module, then it is misplaced;
        ``a.*`` covers modules below ``a``, not ``a``.
        """
        table = [Layer("one", ["lightspeed.web.*", "lightspeed.x"]), Layer("two", ["lightspeed.web.a"])]
        self.assertEqual(layers_of("lightspeed.web", table), [])
        self.assertEqual(layers_of("lightspeed.web.b.c", table), ["one"])
        self.assertEqual(
            misplaced(["lightspeed.web.a", "lightspeed.x", "lightspeed.y"], table),
            [("lightspeed.web.a", ["one", "two"]), ("lightspeed.y", [])],
        )

    def test_table_problems(self) -> None:
        """
        When a table repeats a layer, names an unknown one, places a module
        twice, grants an unplaced module or lets two layers import each other,
        then each is found; the real table has none.
        """
        table = [
            Layer("a", ["m.a"], ["b", "nope"]),
            Layer("b", ["m.b", "m.a"], [], also=["m.c", "m.x"]),
            Layer("c", ["m.c"]),
            Layer("c", ["m.d"], [ANY]),
        ]
        self.assertEqual(
            table_problems(table),
            [
                "layer c is in the table twice",
                "layer a may import unknown layer nope",
                "m.a is in layers a, b",
                "m.a is in layers a, b",
                "layer b may import m.x, which is in no single layer",
                "layer a may import itself through other layers",
                "layer b may import itself through other layers",
                "layer c may import itself through other layers",
            ],
        )
        self.assertEqual(table_problems(LAYERS), [])


class SizeAndReactorTests(SynchronousTestCase):
    """
    :obj:`oversize` and :obj:`imports_of`.
    """

    def test_oversize(self) -> None:
        """
        When a function is 51 lines from its def (decorators left out) and a
        nested one 51 too, then both are over 50, the nested one also inside
        its parent; a 50-line function is not; classes and modules too.
        """
        body = "    x = 1\n"
        source = (
            "@decorator\n" * 5
            + "def ok():\n" + body * 49
            + "def big():\n" + body * 50
            + "def outer():\n    def inner():\n" + ("    " + body) * 49 + "        return 1\n"
            + "class C:\n" + body * 4
        )
        found = oversize({"lightspeed.a": source}, max_module=150, max_class=3, max_function=50)
        self.assertEqual(
            [str(o) for o in found],
            [
                "module lightspeed.a: 163 lines (limit 150)",
                "function lightspeed.a.big (line 56): 51 lines (limit 50)",
                "function lightspeed.a.outer (line 107): 52 lines (limit 50)",
                "function lightspeed.a.outer.inner (line 108): 51 lines (limit 50)",
                "class lightspeed.a.C (line 159): 5 lines (limit 3)",
            ],
        )
        self.assertEqual(oversize({"lightspeed.a": source}, 163, 5, 52), [])

    def test_reactor_imports(self) -> None:
        """
        When a module imports twisted.internet in any form, anywhere, then each
        such import is found; twisted.python and twisted.internetx are not.
        """
        sources = _sources(
            lightspeed__clientlite="""\
                from twisted.python.failure import Failure
                import twisted.internetx
                from twisted import internet, logger
                import twisted.internet.defer
                def connect():
                    from twisted.internet import reactor
                """
        )
        found = imports_of(sources, "lightspeed.clientlite", "twisted.internet")
        self.assertEqual([imp.line for imp in found], [3, 4, 6])


class DocstringMarkupTests(SynchronousTestCase):
    """
    Docstrings use one markup, reStructuredText field lists (for Sphinx
    autodoc): no epytext markers.
    """

    def test_no_epytext(self):
        """When the package's sources are read, then none holds an epytext marker."""
        marker = re.compile(r"(?<![\w])[CLIB]\{|^\s*@(param|return|returns|raise|raises|ivar|type)\b", re.M)
        found = [f"{name} line {source[:m.start()].count(chr(10)) + 1}: {m.group(0).strip()}"
                 for name, source in sorted(tree()[0].items()) for m in marker.finditer(source)]
        self.assertEqual(found, [])
