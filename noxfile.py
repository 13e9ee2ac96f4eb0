"""Nox sessions for ramie: the cross-package test matrix, lint, the main job, bench and gpu.

Every package is tested in a fresh virtual environment that holds only that
package, the ramie packages it depends on (installed from this checkout, never
from PyPI) and its ``[test]`` extra. The tests run from a temporary directory
against the installed distribution, so a missing dependency or a file left out
of a wheel fails here rather than on a user's machine.

Works with a plain Python and pip: when nox is not installed, running this file
makes a private virtual environment ``.nox-bootstrap/`` with nox in it and runs
itself again from there::

    python3 noxfile.py                      # the default sessions: tests, lint
    python3 noxfile.py -l                   # list every session
    python3 noxfile.py -s "tests(package='layers')" -- -x
    python3 noxfile.py -s matrix            # tests on Python 3.11, 3.12 and 3.13
    python3 noxfile.py -s verify            # core and transforms with RAMIE_CHECK_STRUCTURE=1
    python3 noxfile.py -s demo              # the main job
    python3 noxfile.py -s docs              # the site, guides executed, into docs/_build/html
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGES_DIR = ROOT / "packages"
BOOTSTRAP_DIR = ROOT / ".nox-bootstrap"
NOX_REQUIREMENT = "nox[uv]>=2024.10"
_BOOTSTRAP_MARKER = "RAMIE_NOX_BOOTSTRAPPED"


def _bootstrap_python() -> Path:
    """Return the path of the bootstrap environment's interpreter."""
    if os.name == "nt":
        return BOOTSTRAP_DIR / "Scripts" / "python.exe"
    return BOOTSTRAP_DIR / "bin" / "python"


def _bootstrap() -> None:
    """Run this file again under ``.nox-bootstrap/``, creating it (with nox) first if needed.

    Only used when ``import nox`` fails and this file is run as a script, e.g.
    ``python3 noxfile.py -s tests`` on a machine with nothing but Python and pip.
    """
    if os.environ.get(_BOOTSTRAP_MARKER):
        sys.exit(
            f"noxfile.py: nox is still not importable from {sys.executable} after "
            f"bootstrapping; delete {BOOTSTRAP_DIR} and try again."
        )
    python = _bootstrap_python()
    has_nox = (
        python.exists()
        and subprocess.run([python, "-c", "import nox"], capture_output=True).returncode == 0
    )
    if not has_nox:
        import venv

        print(f"noxfile.py: nox not found; installing it into {BOOTSTRAP_DIR}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(BOOTSTRAP_DIR)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", NOX_REQUIREMENT],
            check=True,
        )
    os.environ[_BOOTSTRAP_MARKER] = "1"
    os.execv(python, [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


try:
    import nox
except ImportError:
    if __name__ != "__main__":
        raise
    _bootstrap()

nox.needs_version = ">=2024.10"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint"]
# No Python can be downloaded here: uv must use the interpreters already installed.
os.environ["UV_PYTHON_DOWNLOADS"] = "never"

PACKAGES = ["core", "layers", "transforms", "training", "serialization", "nn", "examples"]
PYTHONS = ["3.11", "3.12", "3.13"]
RUFF_REQUIREMENT = "ruff>=0.17,<0.18"
CUDA_JAX = "jax[cuda12]>=0.10.2,<0.13"
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def _canonical(name: str) -> str:
    """Normalise a distribution name as PEP 503 does (``Ramie_Core`` -> ``ramie-core``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _read_pyproject(package: str) -> dict:
    """Return the ``[project]`` table of ``packages/<package>/pyproject.toml``."""
    path = PACKAGES_DIR / package / "pyproject.toml"
    with path.open("rb") as file:
        return tomllib.load(file)["project"]


def dist_dirs() -> dict[str, str]:
    """Map each ramie distribution name (canonical) to its directory under ``packages/``.

    >>> dist_dirs()["ramie-core"]
    'core'
    """
    mapping: dict[str, str] = {}
    for pyproject in sorted(PACKAGES_DIR.glob("*/pyproject.toml")):
        package = pyproject.parent.name
        mapping[_canonical(_read_pyproject(package)["name"])] = package
    return mapping


def ramie_closure(*packages: str) -> list[str]:
    """Return the given package dirs plus every ramie package they need, transitively.

    Only runtime dependencies count (not extras). Dependencies come before the
    packages that need them.

    >>> ramie_closure("layers")
    ['core', 'layers']
    """
    by_dist = dist_dirs()
    ordered: list[str] = []

    def visit(package: str, chain: tuple[str, ...]) -> None:
        if package in ordered:
            return
        if package in chain:
            raise RuntimeError(f"dependency cycle between ramie packages: {' -> '.join(chain)}")
        for requirement in _read_pyproject(package).get("dependencies", []):
            match = _REQUIREMENT_NAME.match(requirement)
            if match and _canonical(match.group(1)) in by_dist:
                visit(by_dist[_canonical(match.group(1))], (*chain, package))
        ordered.append(package)

    for package in packages:
        if not (PACKAGES_DIR / package / "pyproject.toml").is_file():
            raise ValueError(f"no package {package!r}: expected {PACKAGES_DIR / package}")
        visit(package, ())
    return ordered


def install_local(
    session: nox.Session,
    *packages: str,
    extras: Iterable[str] = ("test",),
    others: Iterable[str] = (),
) -> None:
    """Install ``packages`` and their ramie closure from this checkout, in one command.

    Every ramie package is given as a local path, so the resolver never looks
    for one on PyPI. ``extras`` apply to ``packages`` only; ``others`` are
    extra requirements (``"optax"``, ``"jax[cuda12]"``) resolved together.
    """
    extras = tuple(extras)
    extra = f"[{','.join(extras)}]" if extras else ""
    by_dist = {package: dist for dist, package in dist_dirs().items()}
    args: list[str] = []
    for package in ramie_closure(*packages):
        path = str(PACKAGES_DIR / package)
        args.append(path + extra if package in packages else path)
        if session.venv_backend == "uv":
            # Never let uv reuse a wheel it built earlier from this directory:
            # edits under src/ must always be what gets tested.
            args += ["--refresh-package", by_dist[package]]
    session.install(*args, *others)


def session_requires(package: str) -> tuple[list[str], dict[str, str]]:
    """Extra things a package's test session installs, from its ``[tool.ramie.nox]`` table.

    ``extra-requires`` are requirement strings (optional test dependencies such
    as ``flax`` that the package itself must not declare); ``local-requires``
    are paths, relative to the package, of fixture distributions to install
    (globs allowed); ``env`` is set while pytest runs. ::

        [tool.ramie.nox]
        extra-requires = ["flax>=0.12,<0.13"]
        local-requires = ["tests/plugins/*"]
        env = {RAMIE_TEST_PLUGINS = "1"}
    """
    path = PACKAGES_DIR / package / "pyproject.toml"
    with path.open("rb") as file:
        table = tomllib.load(file).get("tool", {}).get("ramie", {}).get("nox", {})
    others = list(table.get("extra-requires", []))
    for pattern in table.get("local-requires", []):
        matches = sorted((PACKAGES_DIR / package).glob(pattern))
        if not matches:
            raise ValueError(f"{path}: local-requires {pattern!r} matches nothing")
        others += [str(match) for match in matches if (match / "pyproject.toml").is_file()]
    return others, dict(table.get("env", {}))


def _scratch_dir(session: nox.Session, label: str) -> Path:
    """Return a new empty directory outside the checkout for a session to run in."""
    base = Path(tempfile.mkdtemp(prefix=f"ramie-{label}-"))
    session.log(f"working directory: {base}")
    return base


def _run_tests(
    session: nox.Session,
    package: str,
    *,
    others: Iterable[str] = (),
    env: dict[str, str] | None = None,
) -> None:
    """Install ``package`` (+ closure, + ``[test]``) and run its tests against the install."""
    more, session_env = session_requires(package)
    install_local(session, package, others=(*others, *more))
    env = {**session_env, **(env or {})}
    scratch = _scratch_dir(session, package)
    try:
        session.chdir(scratch)
        session.run(
            "pytest",
            str(PACKAGES_DIR / package / "tests"),
            f"--rootdir={PACKAGES_DIR / package}",
            "-p",
            "no:cacheprovider",
            "--import-mode=importlib",
            "-q",
            "-ra",
            *session.posargs,
            env={
                "HYPOTHESIS_STORAGE_DIRECTORY": str(scratch / ".hypothesis"),
                # Byte code (pytest's rewritten tests included) goes here, not into the checkout.
                "PYTHONPYCACHEPREFIX": str(scratch / "pycache"),
                **(env or {}),
            },
        )
    finally:
        session.chdir(ROOT)
        shutil.rmtree(scratch, ignore_errors=True)


@nox.session
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """Test one package in a fresh venv holding only it and what it declares it needs."""
    _run_tests(session, package)


#: Packages whose suites also run once in verify mode (see the ``verify`` session).
VERIFY_PACKAGES = ["core", "transforms"]


@nox.session
@nox.parametrize("package", VERIFY_PACKAGES)
def verify(session: nox.Session, package: str) -> None:
    """A package's tests with ``RAMIE_CHECK_STRUCTURE=1``: every cached structure re-walked.

    Any cached flatten that differs from a fresh walk raises StaleStructureError
    naming the path, so the whole suite doubles as a check that no structural
    change goes unseen.
    """
    _run_tests(session, package, env={"RAMIE_CHECK_STRUCTURE": "1"})


@nox.session(python=PYTHONS)
@nox.parametrize("package", PACKAGES)
def matrix(session: nox.Session, package: str) -> None:
    """The per-package tests on every supported Python (not run by default)."""
    _run_tests(session, package)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff (ruff.toml holds the rules)."""
    session.install(RUFF_REQUIREMENT)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


#: What the docs session installs besides ramie, pinned so a new release cannot break the
#: ``-W`` build (all work on Python 3.11+). flax is there for the guides that load and
#: write Flax checkpoints; the plug-in template for the plug-in guide.
DOCS_REQUIREMENTS = [
    "sphinx==8.2.3",
    "furo==2025.12.19",
    "myst-parser==5.2.0",
    "myst-nb==1.4.0",
    "sphinx-copybutton==0.5.2",
    "sphinx-autodoc-typehints==3.5.2",
    "ipykernel>=6.29",
    "pytest>=8",
    "flax>=0.12,<0.13",
    str(PACKAGES_DIR / "examples" / "plugin_template"),
]


@nox.session
def docs(session: nox.Session) -> None:
    """Build the site into ``docs/_build/html``: every guide executed, warnings are errors.

    First the tests of the API-reference generator (``docs/tests``), then a fresh
    ``sphinx-build -E -W --keep-going``: a guide that stops running, a broken
    reference, or a public name without documentation fails the session. Flags
    after ``--`` go to sphinx-build (``-- -b linkcheck``).
    """
    install_local(session, "examples", extras=("plot", "gnn"), others=DOCS_REQUIREMENTS)
    session.run(
        "pytest",
        str(ROOT / "docs" / "tests"),
        "-p",
        "no:cacheprovider",
        "-q",
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )
    # The guides run in a Jupyter kernel: make it this venv's Python, whatever kernels the
    # user has installed elsewhere (JUPYTER_PREFER_ENV_PATH puts the venv's first).
    session.run(
        "python", "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3", silent=True
    )
    session.env["JUPYTER_PREFER_ENV_PATH"] = "1"
    session.run(
        "sphinx-build",
        "-b",
        "html",
        "-E",
        "-W",
        "--keep-going",
        "-j",
        "auto",  # guides execute two at a time on two cores
        *session.posargs,
        str(ROOT / "docs"),
        str(ROOT / "docs" / "_build" / "html"),
    )
    session.log(f"the site: {ROOT / 'docs' / '_build' / 'html' / 'index.html'}")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: ``python -m ramie.examples.mnist`` from ramie-examples[plot], plot included."""
    install_local(session, "examples", extras=("plot",))
    # .nox/demo/tmp (git-ignored) is kept after the run: the demo writes its plot there
    # and prints the path. Flags after `--` go to the example (a later --plot wins).
    session.chdir(session.create_tmp())
    session.run(
        "python", "-m", "ramie.examples.mnist", "--plot", "mnist-curves.png", *session.posargs
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Run every ``bench/*.py`` script in turn; each prints ratios against raw JAX."""
    scripts = sorted(p for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))
    if not scripts:
        session.log("no benchmarks yet: bench/ has no *.py script")
        return
    install_local(session, "nn", extras=(), others=("optax",))  # every ramie package
    for script in scripts:
        session.run("python", str(script), *session.posargs)


def _has_nvidia_gpu() -> bool:
    """Return whether ``nvidia-smi -L`` lists at least one GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listing.returncode == 0 and "GPU" in listing.stdout


@nox.session
@nox.parametrize("package", PACKAGES)
def gpu(session: nox.Session, package: str) -> None:
    """The per-package tests with ``jax[cuda12]`` on an NVIDIA GPU (not run by default)."""
    if not _has_nvidia_gpu():
        session.skip("no NVIDIA GPU found: the gpu session needs one (nvidia-smi)")
    _run_tests(session, package, others=(CUDA_JAX,), env={"JAX_PLATFORMS": "cuda"})


if __name__ == "__main__":
    os.chdir(ROOT)  # nox looks for ./noxfile.py
    nox.main()
