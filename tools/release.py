#!/usr/bin/env python3
"""Release one ramie package at a time: bump its version, date its changelog, check siblings.

Every package under ``packages/`` has a version of its own (semver, RELEASING.md) and
states which versions of its ramie siblings it accepts (``ramie-core>=0.1.0,<0.2``).
Run it through nox, which brings ``packaging``::

    python3 noxfile.py -s release -- bump core minor            # 0.1.0 -> 0.2.0
    python3 noxfile.py -s release -- bump core minor --update-dependents
    python3 noxfile.py -s release -- check                      # what CI checks
    python3 noxfile.py -s release -- tag core                   # ramie-core-v0.2.0

``bump`` writes the new version into the package's pyproject.toml, turns its
changelog's unreleased section into ``## <new> — <date>`` under a fresh empty
``## Unreleased``, and fails if a sibling's range (any pyproject.toml under
``packages/``, fixtures and the plug-in template included) would no longer admit
the new version, unless ``--update-dependents`` rewrites those ranges to
``>=<new>,<next breaking>`` (noting it in each dependent's changelog).

``check`` fails when a requirement on a ramie package excludes the version of it in
the tree, when a package's ``LICENSE`` differs from the root one, or (in a git
checkout) when a package's ``src/`` changed since its last release without an entry
in its changelog's unreleased section. The last release is the commit of the tag
``ramie-<name>-v<version>`` if there is one, else the last commit that changed the
``version =`` line of its pyproject.toml.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("major", "minor", "patch")
_VERSION_LINE = re.compile(r'^version = "([^"]+)"$', re.MULTILINE)
_HEADING = re.compile(r"^## (.+)$", re.MULTILINE)
_UNRELEASED = re.compile(r"unreleased", re.IGNORECASE)

NO_UNRELEASED = (
    "{changelog}: the first '## ' section is {heading!r}, not an unreleased one; add "
    "'## Unreleased' above it with what changed"
)
EMPTY_UNRELEASED = (
    "{changelog}: the unreleased section has no entry; say what changed in {dist} "
    "(a '- ' line) before releasing it"
)
EXCLUDED = (
    "{where}: requires {requirement!r}, which excludes {dist} {version} (the version in "
    "packages/{directory}); widen the range, or run: "
    "python3 noxfile.py -s release -- bump {directory} <part> --update-dependents"
)
UNLOGGED = (
    "packages/{directory}/src changed since {dist} {version} (commit {base}) but {changelog} "
    "{why}; add a '- ' line under '## Unreleased' saying what changed"
)
LICENSE_COPY = "{path} differs from the root LICENSE; copy it: cp LICENSE {path}"


class ReleaseError(Exception):
    """A release step or check that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class Package:
    """One ramie package of the tree: ``packages/<directory>``."""

    directory: str
    dist: str
    version: Version
    root: Path

    @property
    def path(self) -> Path:
        return self.root / "packages" / self.directory

    @property
    def pyproject(self) -> Path:
        return self.path / "pyproject.toml"

    @property
    def changelog(self) -> Path:
        return self.path / "CHANGELOG.md"

    @property
    def tag(self) -> str:
        """The git tag of this version: ``ramie-core-v0.1.0``."""
        return f"{self.dist}-v{self.version}"


def canonical(name: str) -> str:
    """Normalise a distribution name as PEP 503 does (``Ramie_Core`` -> ``ramie-core``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def packages(root: Path = ROOT) -> dict[str, Package]:
    """Every package of the tree under ``root``, by directory name."""
    found = {}
    for pyproject in sorted((root / "packages").glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        directory = pyproject.parent.name
        found[directory] = Package(
            directory, canonical(project["name"]), Version(project["version"]), root
        )
    return found


def bumped(version: Version, part: str) -> Version:
    """The next ``part`` (major, minor, patch) release after ``version``.

    >>> str(bumped(Version("0.1.3"), "minor")), str(bumped(Version("1.2.3"), "major"))
    ('0.2.0', '2.0.0')
    """
    major, minor, patch = version.release[:3] if len(version.release) >= 3 else (0, 0, 0)
    if part == "major":
        return Version(f"{major + 1}.0.0")
    if part == "minor":
        return Version(f"{major}.{minor + 1}.0")
    if part == "patch":
        return Version(f"{major}.{minor}.{patch + 1}")
    raise ReleaseError(f"unknown part {part!r}: expected one of {', '.join(PARTS)}")


def compatible_range(version: Version) -> str:
    """The range that admits ``version`` and what semver says cannot break it.

    Before 1.0 a minor release may break, so ``0.2.0`` admits ``<0.3``; from 1.0 on,
    ``1.4.0`` admits ``<2``.

    >>> compatible_range(Version("0.2.0")), compatible_range(Version("1.4.0"))
    ('>=0.2.0,<0.3', '>=1.4.0,<2')
    """
    major, minor = version.release[0], version.release[1]
    upper = f"0.{minor + 1}" if major == 0 else f"{major + 1}"
    return f">={version},<{upper}"


def _requirement_strings(pyproject: Path) -> list[str]:
    """Every requirement string of a pyproject: dependencies and optional dependencies."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    found = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        found += extra
    return found


def all_pyprojects(root: Path = ROOT) -> list[Path]:
    """Every pyproject.toml under ``packages/`` (fixtures and templates too), sorted."""
    return sorted(p for p in (root / "packages").rglob("pyproject.toml") if ".nox" not in p.parts)


def excluded_siblings(root: Path = ROOT) -> list[str]:
    """One message per requirement on a ramie package that excludes its tree version."""
    by_dist = {p.dist: p for p in packages(root).values()}
    problems = []
    for pyproject in all_pyprojects(root):
        for text in _requirement_strings(pyproject):
            requirement = Requirement(text)
            sibling = by_dist.get(canonical(requirement.name))
            if sibling is None or requirement.specifier.contains(sibling.version, True):
                continue
            problems.append(
                EXCLUDED.format(
                    where=pyproject.relative_to(root),
                    requirement=text,
                    dist=sibling.dist,
                    version=sibling.version,
                    directory=sibling.directory,
                )
            )
    return problems


def unreleased_section(changelog: Path) -> tuple[str, str]:
    """The first ``## `` heading of a changelog and the text under it (to the next one)."""
    text = changelog.read_text(encoding="utf-8")
    headings = list(_HEADING.finditer(text))
    if not headings:
        raise ReleaseError(f"{changelog}: no '## ' section; add '## Unreleased' with an entry")
    first = headings[0]
    end = headings[1].start() if len(headings) > 1 else len(text)
    return first.group(1).strip(), text[first.end() : end]


def has_entry(body: str) -> bool:
    """Whether a changelog section lists at least one change (a ``- `` line)."""
    return any(line.lstrip().startswith("- ") for line in body.splitlines())


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def last_release(package: Package) -> str | None:
    """The commit of the package's last release (see the module docstring), or None."""
    tagged = _git(package.root, "rev-list", "-n", "1", package.tag)
    if tagged.returncode == 0 and tagged.stdout.strip():
        return tagged.stdout.strip()
    pyproject = package.pyproject.relative_to(package.root).as_posix()
    found = _git(package.root, "log", "-1", "--format=%H", "-G", '^version = "', "--", pyproject)
    return found.stdout.strip() or None


def unlogged_changes(root: Path = ROOT) -> list[str]:
    """One message per package whose src/ changed since its release with no changelog entry."""
    if _git(root, "rev-parse", "--git-dir").returncode != 0:
        raise ReleaseError(f"{root} is not a git checkout: cannot tell what changed since releases")
    problems = []
    for package in packages(root).values():
        base = last_release(package)
        if base is None:
            raise ReleaseError(
                f"cannot find when {package.dist}'s version was last set in git (a shallow "
                f"clone?): fetch more history (git fetch --unshallow)"
            )
        src = (package.path / "src").relative_to(root).as_posix()
        changed = _git(root, "diff", "--name-only", base, "--", src).stdout.split()
        if not changed:
            continue
        changelog = package.changelog.relative_to(root).as_posix()
        heading, body = unreleased_section(package.changelog)
        if not _UNRELEASED.search(heading) or not has_entry(body):
            why = f"has no entry under an unreleased heading (its first is {heading!r})"
        elif not _git(root, "diff", "--name-only", base, "--", changelog).stdout.strip():
            why = "has not changed since then"
        else:
            continue
        problems.append(
            UNLOGGED.format(
                directory=package.directory,
                dist=package.dist,
                version=package.version,
                base=base[:12],
                changelog=changelog,
                why=why,
            )
        )
    return problems


def license_copies(root: Path = ROOT) -> list[str]:
    """One message per package whose LICENSE is missing or differs from the root one."""
    reference = (root / "LICENSE").read_bytes()
    problems = []
    for package in packages(root).values():
        path = package.path / "LICENSE"
        if not path.is_file() or path.read_bytes() != reference:
            problems.append(LICENSE_COPY.format(path=path.relative_to(root)))
    return problems


def check(root: Path = ROOT, *, git: bool = True) -> list[str]:
    """Every problem ``check`` reports (empty: all is well)."""
    problems = excluded_siblings(root) + license_copies(root)
    if git:
        problems += unlogged_changes(root)
    return problems


def _replace_version(pyproject: Path, old: Version, new: Version) -> None:
    text = pyproject.read_text(encoding="utf-8")
    match = _VERSION_LINE.search(text)
    if match is None or Version(match.group(1)) != old:
        raise ReleaseError(f'{pyproject}: no line version = "{old}" to bump')
    pyproject.write_text(text[: match.start(1)] + str(new) + text[match.end(1) :], "utf-8")


def _date_changelog(package: Package, new: Version, date: str) -> None:
    heading, body = unreleased_section(package.changelog)
    changelog = package.changelog
    if not _UNRELEASED.search(heading):
        raise ReleaseError(NO_UNRELEASED.format(changelog=changelog, heading=heading))
    if not has_entry(body):
        raise ReleaseError(EMPTY_UNRELEASED.format(changelog=changelog, dist=package.dist))
    text = changelog.read_text(encoding="utf-8")
    text = text.replace(f"## {heading}\n", f"## Unreleased\n\n## {new} — {date}\n", 1)
    changelog.write_text(text, encoding="utf-8")


def _note_in_changelog(changelog: Path, line: str) -> None:
    """Add ``line`` under the changelog's unreleased section (made if missing)."""
    heading, _ = unreleased_section(changelog)
    text = changelog.read_text(encoding="utf-8")
    if _UNRELEASED.search(heading):
        start = text.index(f"## {heading}\n") + len(f"## {heading}\n")
        rest = text[start:].lstrip("\n")
        gap = "" if rest.startswith("- ") else "\n"  # joins a list, or stands above a ### part
        text = text[:start] + f"\n{line}\n{gap}" + rest
    else:
        text = text.replace(f"## {heading}\n", f"## Unreleased\n\n{line}\n\n## {heading}\n", 1)
    changelog.write_text(text, encoding="utf-8")


def _widen(pyproject: Path, dist: str, new_range: str) -> list[str]:
    """Rewrite every requirement on ``dist`` in ``pyproject`` to ``new_range``; the new ones."""
    text = pyproject.read_text(encoding="utf-8")
    changed = []
    for old in _requirement_strings(pyproject):
        requirement = Requirement(old)
        if canonical(requirement.name) != dist:
            continue
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        marker = f"; {requirement.marker}" if requirement.marker else ""
        new = f"{requirement.name}{extras}{new_range}{marker}"
        text = text.replace(f'"{old}"', f'"{new}"')
        changed.append(new)
    pyproject.write_text(text, encoding="utf-8")
    return changed


def bump(
    directory: str,
    part: str,
    *,
    root: Path = ROOT,
    update_dependents: bool = False,
    date: str | None = None,
) -> Version:
    """Release ``packages/<directory>`` as its next ``part`` version; return that version."""
    tree = packages(root)
    if directory not in tree:
        raise ReleaseError(f"no package {directory!r}: expected one of {', '.join(tree)}")
    package = tree[directory]
    new = bumped(package.version, part)
    date = date or datetime.date.today().isoformat()
    after = Package(package.directory, package.dist, new, root)
    blocked = []
    for pyproject in all_pyprojects(root):
        for text in _requirement_strings(pyproject):
            requirement = Requirement(text)
            if canonical(requirement.name) == package.dist and not requirement.specifier.contains(
                new, True
            ):
                blocked.append(pyproject)
    if blocked and not update_dependents:
        where = ", ".join(str(p.relative_to(root)) for p in dict.fromkeys(blocked))
        raise ReleaseError(
            f"{package.dist} {new} is outside the range required by {where}; run again with "
            f"--update-dependents to require {package.dist}{compatible_range(new)} there"
        )
    _date_changelog(package, new, date)
    _replace_version(package.pyproject, package.version, new)
    owners = {p.pyproject: p for p in tree.values()}
    for pyproject in dict.fromkeys(blocked):
        changed = _widen(pyproject, package.dist, compatible_range(new))
        if pyproject in owners:
            line = f"- Requires {', '.join(changed)} ({after.dist} {new} was released)."
            _note_in_changelog(owners[pyproject].changelog, line)
    return new


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    """The command line (see the module docstring), on the tree under ``root``."""
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    bump_cmd = commands.add_parser("bump", help="release a package as its next version")
    bump_cmd.add_argument("package", help="a directory under packages/ (core, layers, ...)")
    bump_cmd.add_argument("part", choices=PARTS)
    bump_cmd.add_argument("--update-dependents", action="store_true")
    bump_cmd.add_argument("--date", help="the release date (default: today)")
    check_cmd = commands.add_parser("check", help="sibling ranges, licenses, changelogs")
    check_cmd.add_argument("--no-git", action="store_true", help="skip the changelog check")
    tag_cmd = commands.add_parser("tag", help="print (or --create) a package's release tag")
    tag_cmd.add_argument("package")
    tag_cmd.add_argument("--create", action="store_true", help="git tag -a it at HEAD")
    args = parser.parse_args(argv)
    try:
        if args.command == "bump":
            new = bump(
                args.package,
                args.part,
                root=root,
                update_dependents=args.update_dependents,
                date=args.date,
            )
            package = packages(root)[args.package]
            print(f"{package.dist} is now {new}; commit, then tag: {package.tag}")
        elif args.command == "check":
            problems = check(root, git=not args.no_git)
            for problem in problems:
                print(f"FAILED: {problem}")
            if problems:
                return 1
            print(f"release check: {len(packages(root))} packages consistent")
        else:
            package = packages(root).get(args.package)
            if package is None:
                raise ReleaseError(f"no package {args.package!r}")
            if args.create:
                message = f"{package.dist} {package.version}"
                made = _git(root, "tag", "-a", package.tag, "-m", message)
                if made.returncode != 0:
                    raise ReleaseError(made.stderr.strip())
            print(package.tag)
    except ReleaseError as e:
        print(f"release.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
