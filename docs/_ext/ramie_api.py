"""Generate the API reference from each package's ``__all__`` and check it is complete.

At ``builder-inited`` this writes one reStructuredText page per ramie package
(and per public submodule that defines ``__all__``) into ``api/generated/``.
Every public name gets an entry with its signature and docstring. A name that
is the same object as one documented earlier (``ramie.transforms.clear_caches``
is ``ramie.core.clear_caches``) is listed as an alias with a link instead, and
the ``ramie.nn`` facade page links each of its names to where it is documented.

After the build (``build-finished``, so also when nothing needed redoing) it
checks the result: every public name must have been documented (found in the
Python domain) and must have a docstring of its own (a class: in its body, not
inherited; a constant: a ``#:`` comment where it is defined). Each problem is a
Sphinx warning, so the ``-W`` build fails and names what to fix.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import types
import typing
from collections.abc import Iterable
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: The packages, in the order the reference lists them (dependencies first).
PACKAGES = ["core", "layers", "transforms", "training", "serialization", "nn", "examples"]
FACADE = "nn"


@dataclasses.dataclass
class Entry:
    """One public name of one module, and how the reference shows it."""

    module: str  # "ramie.core"
    name: str  # "Module"
    kind: str  # class | exception | function | module | data | alias
    target: str = ""  # for aliases: the full name documented elsewhere
    doc: str = ""  # for data: the #: comment found where it is defined

    @property
    def fullname(self) -> str:
        return f"{self.module}.{self.name}"


def public_names(module: types.ModuleType) -> list[str]:
    """``module.__all__``, or an error naming the module when it has none."""
    names = getattr(module, "__all__", None)
    if names is None:
        raise RuntimeError(f"{module.__name__} has no __all__: the API reference is built from it")
    return list(names)


def public_submodules(package: types.ModuleType) -> list[types.ModuleType]:
    """The package's public submodules (no leading ``_``) that define ``__all__``.

    Read as source first, so a program that needs an optional dependency
    (``ramie.examples.gnn`` and jraph) is never imported.
    """
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        source = Path(package.__path__[0]) / f"{info.name}.py"
        if info.name.startswith("_") or not source.is_file():
            continue
        if not _defines_all(source.read_text(encoding="utf-8")):
            continue
        found.append(importlib.import_module(f"{package.__name__}.{info.name}"))
    return found


def _defines_all(source: str) -> bool:
    """Whether module source assigns ``__all__`` at its top level."""
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


def _data_docs(module: types.ModuleType) -> dict[str, str]:
    """``#:`` doc-comments of module-level names in a package's own source files."""
    docs: dict[str, str] = {}
    files: Iterable[str]
    # A package's names are defined in its private modules; a public submodule's
    # (``ramie.core.traversals``) may be too, in its parent package's private modules.
    parent = module.__name__.rpartition(".")[0]
    package = module if hasattr(module, "__path__") else None
    if package is None and parent:
        package = importlib.import_module(parent)
    files = [module.__name__]
    if package is not None:
        files += [package.__name__] + [
            f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
        ]
    for name in files:
        try:
            analyzer = ModuleAnalyzer.for_module(name)
            attr_docs = analyzer.find_attr_docs()
        except Exception:  # noqa: BLE001 - a module without source simply has no comments
            continue
        for (scope, attr), lines in attr_docs.items():
            text = "\n".join(lines).strip()
            if scope == "" and text:
                docs.setdefault(attr, text)
    return docs


def _kind(obj: object) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if typing.get_origin(obj) is not None:  # dict[str, Array], Callable[..., Any]: a type
        return "data"
    if callable(obj) and hasattr(obj, "__name__"):
        return "function"
    return "data"


def own_docstring(obj: object) -> str:
    """The object's own docstring: for a class, one written in its body, not inherited."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
    else:
        doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


#: Constants of these types are values, never aliases of one another.
_VALUE_TYPES = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset)


def collect(module_names: list[str]) -> dict[str, list[Entry]]:
    """Classify every public name of each module; the first module to show an object owns it."""
    owners: dict[int, str] = {}
    pages: dict[str, list[Entry]] = {}
    for module_name in module_names:
        module = importlib.import_module(module_name)
        docs = _data_docs(module)
        entries = []
        for name in public_names(module):
            if not hasattr(module, name):
                raise RuntimeError(
                    f"{module_name}.__all__ lists {name!r}, which it does not define"
                )
            obj = getattr(module, name)
            kind = _kind(obj)
            if getattr(obj, "__module__", None) == "typing":
                kind = "data"  # a type alias (``Filter = Any``): the docstring is typing's
            if kind in ("data",):
                # A constant object re-exported by a later module (``nn.traversals``
                # giving core's ``empty_node``) is an alias; values such as numbers,
                # strings and typing aliases may be equal by chance, so never are.
                shared = kind == "data" and not isinstance(obj, _VALUE_TYPES)
                shared = shared and getattr(obj, "__module__", None) != "typing"
                if shared and id(obj) in owners:
                    entries.append(Entry(module_name, name, "alias", target=owners[id(obj)]))
                    continue
                if shared:
                    owners[id(obj)] = f"{module_name}.{name}"
                entries.append(Entry(module_name, name, kind, doc=docs.get(name, "")))
                continue
            if kind == "module" and obj.__name__ != f"{module_name}.{name}":
                kind = "alias"
            owner = owners.get(id(obj))
            if owner is not None:
                entries.append(Entry(module_name, name, "alias", target=owner))
                continue
            if kind == "module":
                owners[id(obj)] = obj.__name__
            else:
                owners[id(obj)] = f"{module_name}.{name}"
            entries.append(Entry(module_name, name, kind))
        pages[module_name] = entries
    return pages


def module_order() -> list[str]:
    """Every documented module: each package, then its public submodules, facade last-but-one."""
    order: list[str] = []
    for package in PACKAGES:
        if package == FACADE:
            continue
        module = importlib.import_module(f"ramie.{package}")
        order.append(module.__name__)
        order += [sub.__name__ for sub in public_submodules(module)]
    # The facade's own page lists where its names live (render_facade); its public
    # submodules (``ramie.nn.graph``: NNX's module spellings) get pages of their own.
    order += [sub.__name__ for sub in public_submodules(importlib.import_module(f"ramie.{FACADE}"))]
    return order


def _heading(text: str, char: str) -> str:
    return f"{text}\n{char * len(text)}\n"


SECTIONS = [
    ("class", "Classes"),
    ("exception", "Exceptions and warnings"),
    ("function", "Functions"),
    ("data", "Constants and types"),
    ("module", "Submodules"),
    ("alias", "Also here (documented elsewhere)"),
]


def _external(module: str, name: str, obj: object) -> bool:
    """True for an object defined outside ramie (a JAX function re-exported under our name)."""
    defined_in = getattr(obj, "__module__", None) or ""
    return defined_in.split(".")[0] != module.split(".")[0]


def render(module_name: str, entries: list[Entry]) -> str:
    """The reStructuredText page for one module."""
    module = importlib.import_module(module_name)
    lines = [
        f".. This page is generated by docs/_ext/ramie_api.py from {module_name}.__all__.",
        "",
        _heading(f"``{module_name}``", "="),
        f".. automodule:: {module_name}",
        "",
        f".. currentmodule:: {module_name}",
        "",
        _heading("Summary", "-"),
        ".. list-table::",
        "   :widths: 30 70",
        "",
    ]
    for entry in entries:
        summary = ""
        if entry.kind == "alias":
            summary = f"same object as :py:obj:`{entry.target}`"
        elif entry.kind == "data":
            summary = entry.doc.split("\n\n")[0].replace("\n", " ")
        else:
            summary = own_docstring(getattr(module, entry.name)).split("\n\n")[0]
            summary = summary.replace("\n", " ")
        lines += [f"   * - :py:obj:`~{entry.fullname}`", f"     - {summary}"]
    lines.append("")
    for kind, title in SECTIONS:
        chosen = [e for e in entries if e.kind == kind]
        if not chosen:
            continue
        lines.append(_heading(title, "-"))
        for entry in chosen:
            lines += _render_entry(module, entry)
    return "\n".join(lines) + "\n"


def _render_entry(module: types.ModuleType, entry: Entry) -> list[str]:
    obj = getattr(module, entry.name, None)
    if entry.kind == "alias":
        return [
            f".. py:data:: {entry.name}",
            "   :no-index-entry:",
            "",
            f"   The same object as :py:obj:`{entry.target}`.",
            "",
        ]
    if entry.kind == "module":
        return [f"- ``{entry.name}``: the submodule :py:mod:`{obj.__name__}`", ""]
    if entry.kind == "data":
        body = entry.doc or ""
        out = [f".. py:data:: {entry.name}", f"   :type: {type(obj).__name__}", ""]
        out += [f"   {line}" if line else "" for line in body.splitlines()]
        return [*out, ""]
    if _external(module.__name__, entry.name, obj):
        # Re-exported from JAX: its docstring is JAX's (and written for JAX's own
        # Sphinx setup), so show the signature and the first paragraph, and say whence.
        source = f"{obj.__module__}.{getattr(obj, '__qualname__', entry.name)}"
        first = own_docstring(obj).split("\n\n")[0]
        try:
            signature = str(inspect.signature(obj))
        except (TypeError, ValueError):
            signature = "(*args, **kwargs)"
        return [
            f".. py:function:: {entry.name}{signature}",
            "",
            f"   Re-exported from ``{source}``.",
            "",
            *[f"   {line}" for line in _plain(first).splitlines()],
            "",
        ]
    directive = {"class": "autoclass", "exception": "autoexception", "function": "autofunction"}
    out = [f".. {directive[entry.kind]}:: {entry.name}"]
    if entry.kind in ("class", "exception"):
        out += ["   :members:", "   :show-inheritance:"]
    return [*out, ""]


def _plain(text: str) -> str:
    """Make a foreign first paragraph safe as plain text (no roles we cannot resolve)."""
    return "| " + text.replace("`", "").replace("*", r"\*").replace("\n", "\n| ")


def render_facade(pages: dict[str, list[Entry]]) -> str:
    """The ``ramie.nn`` page: its docstring and where each of its names is documented."""
    facade = importlib.import_module(f"ramie.{FACADE}")
    owners: dict[tuple[str, int], str] = {}
    for entries in pages.values():
        for entry in entries:
            obj = getattr(importlib.import_module(entry.module), entry.name)
            target = entry.target if entry.kind == "alias" else entry.fullname
            owners.setdefault((entry.name, id(obj)), target)
    modules = _module_pages(pages)
    lines = [
        ".. This page is generated by docs/_ext/ramie_api.py from ramie.nn.__all__.",
        "",
        _heading(f"``ramie.{FACADE}``", "="),
        f".. automodule:: ramie.{FACADE}",
        "",
        _heading("Every name, and where it is documented", "-"),
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 35 65",
        "",
        "   * - ``nn.`` name",
        "     - documented as",
    ]
    for name in public_names(facade):
        obj = getattr(facade, name)
        target = owners.get((name, id(obj)))
        where = f":py:obj:`{target}`" if target else "**not documented**"
        if id(obj) in modules:
            where = f":py:mod:`{modules[id(obj)]}`"
        lines += [f"   * - ``nn.{name}``", f"     - {where}"]
    return "\n".join(lines) + "\n"


def facade_missing(pages: dict[str, list[Entry]]) -> list[str]:
    """Names of ``ramie.nn`` that no package page documents."""
    facade = importlib.import_module(f"ramie.{FACADE}")
    known = set()
    for entries in pages.values():
        for entry in entries:
            known.add((entry.name, id(getattr(importlib.import_module(entry.module), entry.name))))
    modules = _module_pages(pages)
    return [
        n
        for n in public_names(facade)
        if (n, id(getattr(facade, n))) not in known and id(getattr(facade, n)) not in modules
    ]


def _module_pages(pages: dict[str, list[Entry]]) -> dict[int, str]:
    """``id(module) -> its name`` for every module that has a page of its own."""
    return {id(importlib.import_module(name)): name for name in pages}


def write_pages(outdir: Path) -> dict[str, list[Entry]]:
    """Write every page into ``outdir`` (replacing what was there); return what was written."""
    outdir.mkdir(parents=True, exist_ok=True)
    pages = collect(module_order())
    wanted = {f"{name}.rst": render(name, entries) for name, entries in pages.items()}
    wanted[f"ramie.{FACADE}.rst"] = render_facade(pages)
    order = _toc_order(pages)
    toctree = ["```{toctree}", ":maxdepth: 1", "", *order, "```", ""]
    for stale in outdir.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()
    files = {**wanted, "toctree.md.txt": "\n".join(toctree)}
    for filename, text in files.items():
        write_if_changed(outdir / filename, text)
    return pages


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it already holds it (Sphinx then skips the page)."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _toc_order(pages: dict[str, list[Entry]]) -> list[str]:
    """Page names in reading order: each package and its submodules, the facade in its place."""
    order = []
    for package in PACKAGES:
        root = f"ramie.{package}"
        order.append(f"generated/{root}")
        order += [f"generated/{m}" for m in pages if m.startswith(root + ".")]
    return order


def problems(
    pages: dict[str, list[Entry]], documented: set[str], *, facade: bool = True
) -> list[str]:
    """Every way the reference falls short: undocumented names, missing docstrings."""
    found = []
    for module_name, entries in pages.items():
        module = importlib.import_module(module_name)
        for entry in entries:
            if entry.kind == "alias":
                if entry.target not in documented:
                    found.append(
                        f"{entry.fullname}: alias of {entry.target}, which is not documented"
                    )
                continue
            if entry.fullname not in documented:
                found.append(f"{entry.fullname}: in __all__ but missing from the API reference")
            if entry.kind == "data":
                if not entry.doc:
                    found.append(
                        f"{entry.fullname}: a constant without documentation; add a `#:` comment "
                        "on the line above where it is defined"
                    )
            elif entry.kind != "module" and not own_docstring(getattr(module, entry.name)):
                found.append(f"{entry.fullname}: no docstring; write one (with a short example)")
    for name in facade_missing(pages) if facade else ():
        found.append(f"ramie.{FACADE}.{name}: not documented by any package page")
    return found


def _on_builder_inited(app: Sphinx) -> None:
    app.env.ramie_api_pages = write_pages(Path(app.srcdir) / "api" / "generated")


def _on_finished(app: Sphinx, exception: BaseException | None) -> None:
    if exception is not None:
        return
    env = app.env
    pages = getattr(env, "ramie_api_pages", None) or collect(module_order())
    objects = env.get_domain("py").objects
    documented = {name for name in objects if not objects[name].aliased}
    documented |= {name for name, _ in env.get_domain("py").modules.items()}
    for problem in problems(pages, documented):
        logger.warning("API reference: %s", problem, type="ramie", subtype="api")


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _on_builder_inited)
    app.connect("build-finished", _on_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
