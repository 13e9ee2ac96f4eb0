"""Packaging checks shared by every ramie package's ``tests/test_packaging.py``.

Each check takes what one package is expected to look like once installed (its
distribution name, its module, its requirements, the sibling packages it must
not import) and asserts it against the installed distribution, never against
the source checkout (which is only read for the list of ramie packages).
``define_tests`` turns them into one named pytest test per check in the calling
test module, so each package's test file says only what is particular to that
package::

    checks.define_tests(globals(), "ramie-layers", "ramie.layers", REQUIRES, ...)

Standard library only, and no ramie package is imported until a check runs:
this module is loaded from the checkout (``tools/``) by tests that run against
a virtual environment holding only the package under test and what it needs.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as metadata
import os
import re
import subprocess
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

PACKAGES_DIR = Path(__file__).resolve().parent.parent / "packages"
# Every package's [test] extra, by canonical name.
TEST_EXTRA = frozenset({"hypothesis", "pytest"})
# The bounds every jax requirement must state; a ramie-* one states a lower and an upper
# bound (which versions: tools/release.py checks they admit the siblings in the tree).
JAX_PIN = (">=0.10.2", "<0.13")
RAMIE_PIN = (">=", "<")

_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def canonical(name: str) -> str:
    """Normalise a distribution name as PEP 503 does (``Ramie_Core`` -> ``ramie-core``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(dist: str) -> dict[str | None, dict[str, str]]:
    """Map each extra (None for the runtime ones) to {canonical name: requirement string}."""
    out: dict[str | None, dict[str, str]] = {}
    for req in metadata.requires(dist) or []:
        spec, _, marker = req.partition(";")
        match = _NAME.match(spec)
        assert match, f"cannot parse requirement {req!r} of {dist}"
        extra = _EXTRA.search(marker)
        key = canonical(extra.group(1)) if extra else None
        out.setdefault(key, {})[canonical(match.group(1))] = spec.strip()
    return out


def ramie_modules() -> tuple[str, ...]:
    """Every ramie package in this checkout, as a module name (``ramie.core``, ...)."""
    found = sorted(
        f"ramie.{path.name}"
        for path in PACKAGES_DIR.glob("*/src/ramie/*")
        if (path / "__init__.py").is_file()
    )
    assert found, f"no ramie package found under {PACKAGES_DIR}"
    return tuple(found)


def packages_except(*allowed: str) -> tuple[str, ...]:
    """The ramie packages other than ``allowed``: what a package may not import.

    >>> "ramie.layers" in packages_except("ramie.core", "ramie.transforms")
    True
    """
    return tuple(name for name in ramie_modules() if name not in allowed)


def _path(module: str) -> str:
    return module.replace(".", "/")


def check_installed_location(dist: str, module: str) -> None:
    """``module`` is imported from the installed ``dist``, not from a source checkout."""
    imported = importlib.import_module(module)
    installed = Path(metadata.distribution(dist).locate_file(_path(module) + "/__init__.py"))
    assert imported.__file__ is not None, f"{module} has no __file__"
    assert Path(imported.__file__).resolve() == installed.resolve(), (
        f"{module} was imported from {imported.__file__}, not from the installed "
        f"{dist} at {installed}: is the source checkout shadowing it?"
    )


def check_pep420_namespace(module: str) -> None:
    """``ramie`` itself is a PEP 420 namespace package: no ``__init__.py`` anywhere."""
    importlib.import_module(module)
    ramie = sys.modules["ramie"]
    assert getattr(ramie, "__file__", None) is None, f"ramie has a __file__: {ramie.__file__}"
    assert ramie.__spec__ is not None, "ramie has no __spec__"
    assert ramie.__spec__.origin is None, f"ramie has an origin: {ramie.__spec__.origin}"
    kind = type(ramie.__path__).__name__
    assert kind == "_NamespacePath", f"ramie.__path__ is a {kind}, not a _NamespacePath"


def check_no_namespace_init(dist: str, module: str) -> None:
    """The wheel holds ``module`` and puts nothing directly in ``ramie/``."""
    files = {str(f).replace("\\", "/") for f in metadata.files(dist) or []}
    assert _path(module) + "/__init__.py" in files, f"{dist} does not ship {module}"
    assert "ramie/__init__.py" not in files, f"{dist} ships ramie/__init__.py"
    stray = sorted(f for f in files if f.startswith("ramie/") and f.count("/") == 1)
    assert not stray, f"{dist} puts files directly in the ramie namespace: {stray}"


def check_version(dist: str, module: str) -> None:
    """``module.__version__`` is the installed distribution's version."""
    version = importlib.import_module(module).__version__
    assert version == metadata.version(dist), (
        f"{module}.__version__ is {version}, but {dist} is {metadata.version(dist)}"
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version), f"odd version {version!r}"


def check_all_names(module: str) -> None:
    """``module.__all__`` is a list, and every name in it exists."""
    imported = importlib.import_module(module)
    assert isinstance(imported.__all__, list), f"{module}.__all__ is not a list"
    missing = [name for name in imported.__all__ if not hasattr(imported, name)]
    assert not missing, f"{module}.__all__ names missing attributes: {missing}"


def check_runtime_requirements(dist: str, expected: Collection[str]) -> None:
    """The runtime requirements are exactly ``expected`` (canonical names)."""
    actual = set(requirements(dist).get(None, {}))
    assert actual == set(expected), (
        f"{dist} requires {sorted(actual)} at runtime, expected {sorted(expected)}"
    )


def check_extras(dist: str, extras: Mapping[str, Collection[str]] | None = None) -> None:
    """The extras are ``test`` (pytest, hypothesis) plus ``extras``, each exactly as given."""
    expected = {"test": TEST_EXTRA, **(extras or {})}
    provided = {canonical(e) for e in metadata.metadata(dist).get_all("Provides-Extra") or []}
    assert provided == set(expected), (
        f"{dist} has extras {sorted(provided)}, not {sorted(expected)}"
    )
    reqs = requirements(dist)
    for extra, names in expected.items():
        actual = set(reqs.get(extra, {}))
        assert actual == set(names), (
            f"{dist}[{extra}] requires {sorted(actual)}, not {sorted(names)}"
        )


def check_requirement_pins(dist: str, ramie_requires: Collection[str]) -> None:
    """jax is pinned to the supported range; each ramie-* requirement has both bounds."""
    runtime = requirements(dist).get(None, {})
    ramie = {name for name in runtime if name == "ramie" or name.startswith("ramie-")}
    assert ramie == set(ramie_requires), (
        f"{dist} requires the ramie packages {sorted(ramie)}, expected {sorted(ramie_requires)}"
    )
    for name, pins in [("jax", JAX_PIN), *((name, RAMIE_PIN) for name in sorted(ramie))]:
        assert name in runtime, f"{dist} does not require {name}"
        assert all(pin in runtime[name] for pin in pins), f"{dist}: {runtime[name]!r} not {pins}"


def check_requirements_installed(dist: str) -> None:
    """Every runtime requirement is installed next to ``dist``."""
    for name in requirements(dist).get(None, {}):
        assert metadata.version(name), f"{dist} requirement {name} is not installed"


def check_import_loads_no_sibling(module: str, forbidden: Collection[str] | None) -> None:
    """A fresh ``import module`` loads none of ``forbidden`` (None: anything goes)."""
    if forbidden is None:
        return
    code = f"import sys, {module}; print(*sorted(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    loaded = set(result.stdout.split())
    leaked = sorted(name for name in forbidden if name in loaded)
    assert not leaked, f"importing {module} imported sibling packages: {leaked}"


_DEVICES_AFTER_IMPORT = """
import {module}
import jax
try:
    jax.config.update("jax_num_cpu_devices", 8)
except RuntimeError as e:
    raise SystemExit("importing {module} initialised JAX's backends: " + str(e))
print(len(jax.devices()))
"""


def check_import_touches_no_device(module: str) -> None:
    """A fresh ``import module`` starts no JAX backend: device settings can follow it.

    ``jax.config.update("jax_num_cpu_devices", 8)`` (and ``jax.distributed.initialize()``)
    must run before JAX's first computation; a package that makes an array at import
    time would make both fail for everyone who imports it first.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env["JAX_PLATFORMS"] = "cpu"
    code = _DEVICES_AFTER_IMPORT.format(module=module)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]
    assert result.stdout.split() == ["8"], result.stdout


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for each absolute import in ``tree`` (``from ramie import x``: ramie.x)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "ramie":
            found += [(node.lineno, f"ramie.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return sorted(found)


def check_sources_import_no_sibling(
    dist: str, module: str, forbidden: Collection[str] | None
) -> None:
    """No installed source file of ``module`` imports one of ``forbidden``, even lazily."""
    if forbidden is None:
        return
    prefix = _path(module) + "/"
    sources = [
        f for f in metadata.files(dist) or [] if str(f).replace("\\", "/").startswith(prefix)
    ]
    sources = [f for f in sources if f.suffix == ".py"]
    assert sources, f"{dist} ships no source file under {prefix}"
    offences = []
    for source in sources:
        path = Path(source.locate())
        for line, name in _imported_modules(ast.parse(path.read_text(), str(path))):
            if any(name == bad or name.startswith(bad + ".") for bad in forbidden):
                offences.append(f"{source}:{line} imports {name}")
    assert not offences, f"{module} imports sibling packages: {offences}"


#: The license every ramie distribution is under, as an SPDX expression (PEP 639).
LICENSE = "Apache-2.0"
#: The ``Project-URL`` labels every distribution states.
URL_LABELS = frozenset({"Homepage", "Documentation", "Source", "Changelog", "Issues"})
_FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_PRINTED = re.compile(r"^print\(.*\)\s+#\s(.+)$")


def check_metadata(dist: str, module: str) -> None:
    """License (with its text in the wheel), authors, URLs, keywords, README and py.typed."""
    meta = metadata.metadata(dist)
    assert meta.get("License-Expression") == LICENSE, (
        f"{dist}: License-Expression is {meta.get('License-Expression')!r}, not {LICENSE!r}"
    )
    files = {str(f).replace("\\", "/") for f in metadata.files(dist) or []}
    licenses = sorted(f for f in files if ".dist-info/licenses/" in f)
    assert [f.rsplit("/", 1)[1] for f in licenses] == ["LICENSE"], (
        f"{dist} ships the license files {licenses}, expected one LICENSE"
    )
    text = Path(metadata.distribution(dist).locate_file(licenses[0])).read_text()
    assert "Apache License" in text and "Version 2.0" in text, f"{licenses[0]} is not Apache-2.0"
    assert meta.get("Author") or meta.get("Author-email"), f"{dist} names no author"
    assert meta.get("Keywords"), f"{dist} has no keywords"
    labels = {url.split(",", 1)[0].strip() for url in meta.get_all("Project-URL") or []}
    assert labels == URL_LABELS, f"{dist}: Project-URLs {sorted(labels)}, not {sorted(URL_LABELS)}"
    assert meta.get("Description-Content-Type", "").startswith("text/markdown"), (
        f"{dist}: the long description is not the Markdown README"
    )
    readme = meta.get_payload()
    assert readme.startswith(f"# {dist}\n"), f"{dist}: README does not start with '# {dist}'"
    assert _path(module) + "/py.typed" in files, f"{dist} does not ship {_path(module)}/py.typed"
    assert "Typing :: Typed" in (meta.get_all("Classifier") or []), f"{dist} lacks Typing :: Typed"


def readme_example(dist: str) -> tuple[str, list[str]]:
    """The README's (the long description's) Python example, and what its prints show.

    Each ``print(...)  # text`` line of the example states, after ``#``, the line it prints.
    """
    found = _FENCE.findall(metadata.metadata(dist).get_payload())
    assert len(found) == 1, f"{dist}'s README has {len(found)} python examples, expected 1"
    expected = [m.group(1) for m in map(_PRINTED.match, found[0].splitlines()) if m]
    assert expected, f"{dist}'s README example shows no printed result ('print(...)  # result')"
    return found[0], expected


def check_readme_example(dist: str) -> None:
    """The README's example runs, in a fresh interpreter, and prints what its comments say."""
    code, expected = readme_example(dist)
    assert len(code.strip().splitlines()) <= 25, f"{dist}'s README example is over 25 lines"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{dist}'s README example failed:\n{result.stderr}"
    assert result.stdout.splitlines() == expected, (
        f"{dist}'s README example printed {result.stdout.splitlines()}, its comments say {expected}"
    )


def define_tests(
    namespace: dict[str, Any],
    dist: str,
    module: str,
    requires: Collection[str],
    ramie_requires: Collection[str],
    forbidden: Collection[str] | None,
    extras: Mapping[str, Collection[str]] | None = None,
) -> None:
    """Add one ``test_*`` function per check to ``namespace``, a test module's ``globals()``.

    ``requires`` are the runtime requirements, ``ramie_requires`` the ramie ones among
    them, ``forbidden`` the ramie packages ``module`` must not import (None: it may
    import anything), ``extras`` the extras besides ``test``. pytest collects the
    tests under the test module, one per check, each with its own name.
    """
    checks: dict[str, tuple[Callable[..., None], tuple[Any, ...]]] = {
        "test_imports_from_installed_distribution": (check_installed_location, (dist, module)),
        "test_ramie_is_a_pep420_namespace": (check_pep420_namespace, (module,)),
        "test_distribution_ships_no_namespace_init": (check_no_namespace_init, (dist, module)),
        "test_version_matches_metadata": (check_version, (dist, module)),
        "test_all_names_exist": (check_all_names, (module,)),
        "test_runtime_requirements": (check_runtime_requirements, (dist, requires)),
        "test_extras": (check_extras, (dist, extras)),
        "test_requirement_pins": (check_requirement_pins, (dist, ramie_requires)),
        "test_requirements_are_installed": (check_requirements_installed, (dist,)),
        "test_import_touches_no_device": (check_import_touches_no_device, (module,)),
        "test_metadata": (check_metadata, (dist, module)),
        "test_readme_example": (check_readme_example, (dist,)),
    }
    if forbidden is not None:
        checks["test_import_loads_no_sibling"] = (
            check_import_loads_no_sibling,
            (module, forbidden),
        )
        checks["test_sources_import_no_sibling"] = (
            check_sources_import_no_sibling,
            (dist, module, forbidden),
        )
    for name, (check, args) in checks.items():
        namespace[name] = _as_test(name, check, args, namespace.get("__name__", __name__))


def _as_test(
    name: str, check: Callable[..., None], args: tuple[Any, ...], module: str
) -> Callable[[], None]:
    """A test function called ``name`` in ``module`` that runs ``check(*args)``."""

    def test() -> None:
        check(*args)

    test.__name__ = test.__qualname__ = name
    test.__module__ = module
    test.__doc__ = check.__doc__
    return test
