"""Core is layered: each module imports only modules below it, at the top of the file.

The order is ``ramie.core._LAYERS``. The checker parses each module's source
(``ast``), so it sees imports that never run (inside functions, in branches).
"""

from __future__ import annotations

import ast
from pathlib import Path

import jax.numpy as jnp
import pytest

import ramie.core as core

CORE_DIR = Path(core.__file__).parent
# Optional third-party packages that only some functions use (``display`` in a
# notebook): importing them with ramie.core would make them required, or slow.
OPTIONAL = frozenset({"treescope"})
SIBLINGS = ("layers", "transforms", "training", "serialization", "nn", "examples")


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The core modules (``_graph``, ...) an import statement names."""
    if isinstance(node, ast.Import):
        return [a.name.split(".")[2] for a in node.names if a.name.startswith("ramie.core.")]
    if node.level == 0:
        name = node.module or ""
        if name == "ramie.core":
            return [a.name for a in node.names]
        return [name.split(".")[2]] if name.startswith("ramie.core.") else []
    if node.module:
        return [node.module.split(".")[0]]
    return [a.name for a in node.names]


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return [node.module or ""] if node.level == 0 else []


def violations(module: str, source: str, layers: tuple[str, ...]) -> list[str]:
    """Every import in ``source`` (core module ``module``) that breaks the layering."""
    below = set(layers[: layers.index(module)]) if module in layers else set(layers)
    out = []

    def visit(node: ast.AST, scope: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner = f"function {getattr(child, 'name', 'lambda')}"
            elif isinstance(child, ast.ClassDef):
                inner = f"class {child.name}"
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                text = f"{module}.py line {child.lineno}: `{ast.unparse(child)}`"
                top = {name.split(".")[0] for name in _imported(child)}
                optional = bool(top) and top <= OPTIONAL
                if scope is not None and not optional:
                    out.append(f"{text} is inside {scope}; import at the top of the file")
                for name in _imported(child):
                    parts = name.split(".")
                    if parts[0] == "ramie" and len(parts) > 1 and parts[1] in SIBLINGS:
                        out.append(f"{text} imports the sibling package ramie.{parts[1]}")
                for target in _targets(child):
                    if target not in below:
                        out.append(
                            f"{text} imports {target}, which is not below {module} "
                            "in ramie.core._LAYERS"
                        )
            visit(child, inner)

    visit(ast.parse(source), None)
    return out


MODULES = sorted(p.stem for p in CORE_DIR.glob("*.py"))


def test_every_core_module_has_a_layer():
    assert sorted(core._LAYERS) == sorted(m for m in MODULES if m != "__init__")
    assert len(set(core._LAYERS)) == len(core._LAYERS)


@pytest.mark.parametrize("module", MODULES)
def test_imports_only_go_down_and_sit_at_the_top(module):
    source = (CORE_DIR / f"{module}.py").read_text()
    assert violations(module, source, core._LAYERS) == []


LAYERS = ("_a", "_b", "_c")


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("_c", "from ._a import x\nfrom . import _b\n", []),
        ("_c", "from ramie.core._a import x\nimport ramie.core._b\n", []),
        (
            "_a",
            "from ._b import x\n",
            [
                "_a.py line 1: `from ._b import x` imports _b, which is not below _a "
                "in ramie.core._LAYERS"
            ],
        ),
        (
            "_b",
            "from . import _a, _b\n",
            [
                "_b.py line 1: `from . import _a, _b` imports _b, which is not below _b "
                "in ramie.core._LAYERS"
            ],
        ),
        (
            "_c",
            "def f():\n    from ._a import x\n",
            [
                "_c.py line 2: `from ._a import x` is inside function f; "
                "import at the top of the file"
            ],
        ),
        (
            "_c",
            "class K:\n    import json\n",
            ["_c.py line 2: `import json` is inside class K; import at the top of the file"],
        ),
        ("_c", "def f():\n    import treescope\n", []),
        ("_c", "try:\n    from jax._src import core\nexcept ImportError:\n    pass\n", []),
        (
            "_a",
            "from ramie.layers import Linear\n",
            [
                "_a.py line 1: `from ramie.layers import Linear` imports the sibling package "
                "ramie.layers"
            ],
        ),
        (
            "_a",
            "from ramie.core import _c\n",
            [
                "_a.py line 1: `from ramie.core import _c` imports _c, which is not below _a "
                "in ramie.core._LAYERS"
            ],
        ),
    ],
)
def test_the_checker_names_the_module_and_the_import(module, source, expected):
    assert violations(module, source, LAYERS) == expected


def test_the_old_circle_is_reported():
    # What _graph looked like before the layering: repr imported display lazily.
    source = "class GraphDef:\n    def __repr__(self):\n        from ._display import render\n"
    layers = ("_graph", "_display")
    assert violations("_graph", source, layers) == [
        "_graph.py line 3: `from ._display import render` is inside function __repr__; "
        "import at the top of the file",
        "_graph.py line 3: `from ._display import render` imports _display, which is not "
        "below _graph in ramie.core._LAYERS",
    ]


def test_lower_layers_print_through_display():
    class M(core.Module):
        def __init__(self):
            self.w = core.Param(jnp.zeros((2, 3)))

    m = M()
    assert repr(m) == "M\n  w: Param float32[2, 3]"
    g, st = core.split(m)
    assert repr(st) == "State\n  w: Param float32[2, 3]"
    assert repr(g) == "GraphDef(M; leaves: w)"
