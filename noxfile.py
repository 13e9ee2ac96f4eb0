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
    python3 noxfile.py -s build             # wheels + sdists into dist/, checked, installed alone
    python3 noxfile.py -s lowest            # tests with requirements at their lower bounds
    python3 noxfile.py -s tools             # tools/ tests + the release consistency check

The test sessions end with one table: each session's passed / failed / skipped
and the total, read from pytest's summary lines by ``.ci/summarize.py`` (as CI does).
"""

from __future__ import annotations

import atexit
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
    lowest: bool = False,
) -> None:
    """Install ``packages`` and their ramie closure from this checkout, in one command.

    Every ramie package is given as a local path, so the resolver never looks
    for one on PyPI. ``extras`` apply to ``packages`` only; ``others`` are
    extra requirements (``"optax"``, ``"jax[cuda12]"``) resolved together.
    ``lowest`` resolves every requirement the closure's pyprojects declare to the
    lowest version they allow (see :func:`lowest_requirements`).
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
    if lowest:
        _install_lowest(session, [*args, *lowest_requirements(*packages, extras=extras), *others])
    else:
        session.install(*args, *others)


def session_requires(package: str) -> tuple[list[str], dict[str, str]]:
    """Extra things a package's test session installs, from its ``[tool.ramie.nox]`` table.

    ``extra-requires`` are requirement strings (optional test dependencies such
    as ``flax`` that the package itself must not declare); ``local-requires``
    are paths, relative to the package, of fixture distributions to install
    (globs allowed); ``env`` is set while pytest runs. ::

        [tool.ramie.nox]
        extra-requires = ["flax>=0.12.1,<0.13"]
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
    lowest: bool = False,
) -> None:
    """Install ``package`` (+ closure, + ``[test]``) and run its tests against the install.

    pytest's output is shown as it comes and also kept, so that its summary
    line goes into the table printed when nox ends (see :func:`_print_results`).
    """
    more, session_env = session_requires(package)
    try:
        install_local(session, package, others=(*others, *more), lowest=lowest)
    except BaseException:
        _record_result(session.name, None)  # a row saying pytest never ran
        raise
    _pytest(session, package, PACKAGES_DIR / package, {**session_env, **(env or {})})


def _pytest(session: nox.Session, label: str, where: Path, env: dict[str, str]) -> None:
    """Run pytest on ``where/tests`` from a scratch directory, recording its summary line."""
    scratch = _scratch_dir(session, label)
    log = scratch / "pytest.log"
    try:
        session.chdir(scratch)
        session.run(
            "python",
            str(ROOT / ".ci" / "tee.py"),
            str(log),
            "pytest",
            str(where / "tests"),
            f"--rootdir={where}",
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
                **env,
            },
        )
    finally:
        _record_result(session.name, log)
        session.chdir(ROOT)
        shutil.rmtree(scratch, ignore_errors=True)


#: (session name, pytest counts or None) for each test session run by this nox process.
_RESULTS: list[tuple[str, dict[str, int] | None]] = []


def _summarize_module():  # noqa: ANN202 - the module .ci/summarize.py
    """Import ``.ci/summarize.py``: its parser reads pytest's summary lines for CI too."""
    sys.path.insert(0, str(ROOT / ".ci"))
    try:
        import summarize
    finally:
        sys.path.pop(0)
    return summarize


def _record_result(name: str, log: Path | None) -> None:
    """Remember the counts of pytest's summary line in ``log`` (None if it has none)."""
    summarize = _summarize_module()
    lines = log.read_text(encoding="utf-8").splitlines() if log and log.is_file() else []
    sessions, _ = summarize.summarize(lines)
    line = sessions[-1][1] if sessions else None
    if not _RESULTS:
        atexit.register(_print_results)
    _RESULTS.append((name, summarize.parse_counts(line) if line else None))


def _print_results() -> None:
    """Print one table of every test session's counts and their total, as nox ends."""
    summarize = _summarize_module()
    print("\n" + "\n".join(summarize.table(_RESULTS)), flush=True)


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
    "flax>=0.12.6,<0.13",
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


# --- packaging: wheels, the lowest-versions lane ------------------------------------------

DIST_DIR = ROOT / "dist"
BUILD_REQUIREMENTS = ("uv>=0.5", "twine>=6.1", "check-wheel-contents>=0.6")
# W002 (duplicate files): every package ships an empty py.typed, and empty __init__.py files
# of subpackages are identical by nature.
CHECK_WHEEL_IGNORE = "W002"


def _third_party(requirements: Iterable[str]) -> list[str]:
    """The requirements in ``requirements`` that are not ramie distributions."""
    by_dist = dist_dirs()
    out = []
    for requirement in requirements:
        match = _REQUIREMENT_NAME.match(requirement)
        if match and _canonical(match.group(1)) not in by_dist:
            out.append(requirement)
    return out


def lowest_requirements(*packages: str, extras: Iterable[str] = ("test",)) -> list[str]:
    """The third-party requirements of ``packages``' closure, as their pyprojects state them.

    Given to uv as requirements of their own, they are *direct*, so that
    ``--resolution lowest-direct`` takes each at the lowest version its bounds allow.

    >>> lowest_requirements("layers", extras=())
    ['jax>=0.10.2,<0.13', 'numpy>=1.26', 'pluggy>=1.5']
    """
    found: list[str] = []
    for package in ramie_closure(*packages):
        project = _read_pyproject(package)
        found += _third_party(project.get("dependencies", []))
        if package in packages:
            for extra in extras:
                found += project.get("optional-dependencies", {}).get(extra, [])
    return sorted(dict.fromkeys(found))


def _install_lowest(session: nox.Session, args: list[str]) -> None:
    """``uv pip install --resolution lowest-direct args`` into the session's venv."""
    if session.venv_backend == "uv":
        session.install("--resolution", "lowest-direct", *args)
    else:  # a virtualenv made by nox without uv: bring uv in
        session.install("uv>=0.5")
        python = session.run("python", "-c", "import sys; print(sys.executable)", silent=True)
        session.run(
            "uv", "pip", "install", "--python", str(python).strip(), "--resolution",
            "lowest-direct", *args,
        )  # fmt: skip
    session.run(
        "python",
        "-c",
        "import importlib.metadata as m; "
        "print('installed:', *sorted(f'{d.name}=={d.version}' for d in m.distributions()))",
    )


@nox.session
@nox.parametrize("package", PACKAGES)
def lowest(session: nox.Session, package: str) -> None:
    """A package's tests with its requirements at the lowest versions its pyproject allows.

    Every third-party requirement declared by the package and the ramie packages
    it needs (its ``[test]`` extra and ``[tool.ramie.nox]`` extra-requires too)
    resolves to its lower bound (``uv pip install --resolution lowest-direct``);
    what they need in turn resolves to the newest that fits. A failure here means
    a lower bound in a pyproject is wrong: raise it.
    """
    _run_tests(session, package, lowest=True)


@nox.session
def build(session: nox.Session) -> None:
    """Build a wheel and an sdist of every package into dist/, check them, install each alone.

    The wheel is built from the sdist (``uv build``), so a file missing from the
    sdist fails here. ``twine check`` and ``check-wheel-contents`` read them;
    then each package is installed into a fresh venv with
    ``pip install --find-links dist <name>`` (how the README installs pieces
    from a checkout; uv's pip for all but ramie-layers, for speed), which must
    bring exactly its ramie closure, and imported.
    """
    session.install(*BUILD_REQUIREMENTS)
    shutil.rmtree(DIST_DIR, ignore_errors=True)
    for package in PACKAGES:
        session.run("uv", "build", "--quiet", "--out-dir", str(DIST_DIR), PACKAGES_DIR / package)
    built = sorted(map(str, [*DIST_DIR.glob("*.whl"), *DIST_DIR.glob("*.tar.gz")]))
    session.run("twine", "check", "--strict", *built)
    session.run(
        "check-wheel-contents",
        f"--ignore={CHECK_WHEEL_IGNORE}",
        "--toplevel=ramie",
        *sorted(map(str, DIST_DIR.glob("*.whl"))),
    )
    by_dir = {package: dist for dist, package in dist_dirs().items()}
    script = Path(session.create_tmp()) / "import_alone.py"
    script.write_text(_IMPORT_ALONE, encoding="utf-8")
    for package in PACKAGES:
        venv = Path(session.create_tmp()) / f"alone-{package}"
        shutil.rmtree(venv, ignore_errors=True)
        session.run("uv", "venv", "--quiet", "--seed", "--python", sys.executable, str(venv))
        python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        if package == "layers":  # the README's own example, with pip itself
            install = [str(python), "-m", "pip", "install", "--quiet"]
        else:  # the same resolution, faster
            install = ["uv", "pip", "install", "--quiet", "--python", str(python)]
        session.run(*install, "--find-links", str(DIST_DIR), by_dir[package], external=True)
        closure = [by_dir[p] for p in ramie_closure(package)]
        session.run(str(python), str(script), f"ramie.{package}", *closure, external=True)
        shutil.rmtree(venv, ignore_errors=True)


# Run as `python import_alone.py MODULE DIST...`: imports MODULE and checks that the ramie
# distributions installed are exactly DIST...
_IMPORT_ALONE = """
import importlib, importlib.metadata as m, sys
module = importlib.import_module(sys.argv[1])
found = sorted(d.name for d in m.distributions() if d.name.split("-")[0] == "ramie")
assert found == sorted(sys.argv[2:]), f"installed {found}, expected {sorted(sys.argv[2:])}"
print(sys.argv[1], module.__version__, "imports; ramie distributions installed:", *found)
"""

RELEASE_REQUIREMENTS = ("packaging>=24",)


@nox.session
def release(session: nox.Session) -> None:
    """``tools/release.py`` with the arguments after ``--`` (default ``check``).

    ``-- bump core minor [--update-dependents]``, ``-- check``, ``-- tag core [--create]``;
    RELEASING.md says when to use which.
    """
    session.install(*RELEASE_REQUIREMENTS)
    session.run("python", str(ROOT / "tools" / "release.py"), *(session.posargs or ["check"]))


@nox.session
def tools(session: nox.Session) -> None:
    """The tests of ``tools/`` (release.py), which end by checking this tree as CI does.

    Sibling ranges admit the versions in the tree, every LICENSE copy is the root
    one, and no package's source changed since its last release without a
    changelog entry.
    """
    session.install(*RELEASE_REQUIREMENTS, "pytest>=8", "hypothesis>=6.100")
    _pytest(session, "tools", ROOT / "tools", {})


if __name__ == "__main__":
    os.chdir(ROOT)  # nox looks for ./noxfile.py
    nox.main()
