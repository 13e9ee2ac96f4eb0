"""tools/release.py on a small tree of its own: versions, changelogs, sibling ranges, git."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import release  # noqa: E402

PYPROJECT = """[project]
name = "{name}"
version = "{version}"
dependencies = [{deps}]
"""
CHANGELOG = "# Changelog — {name}\n\n## 0.1.0 — unreleased\n\n- The first version.\n"
DATE = "2026-01-02"


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _write_package(root: Path, directory: str, name: str, deps: list[str]) -> None:
    path = root / "packages" / directory
    (path / "src").mkdir(parents=True)
    (path / "src" / "code.py").write_text("x = 1\n")
    quoted = ", ".join(f'"{d}"' for d in deps)
    (path / "pyproject.toml").write_text(PYPROJECT.format(name=name, version="0.1.0", deps=quoted))
    (path / "CHANGELOG.md").write_text(CHANGELOG.format(name=name))
    (path / "LICENSE").write_text("Apache License\nVersion 2.0\n")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Two packages, b needing a, a fixture distribution needing a too; committed in git."""
    (tmp_path / "LICENSE").write_text("Apache License\nVersion 2.0\n")
    _write_package(tmp_path, "a", "ramie-a", [])
    _write_package(tmp_path, "b", "ramie-b", ["ramie-a>=0.1.0,<0.2", "numpy>=2.0"])
    fixture = tmp_path / "packages" / "b" / "tests" / "plugins" / "p"
    fixture.mkdir(parents=True)
    (fixture / "pyproject.toml").write_text(
        PYPROJECT.format(name="p", version="1.0", deps='"ramie-a[x]>=0.1.0,<0.2"')
    )
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "start")
    return tmp_path


def _commit(root: Path, message: str) -> None:
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", message)


def test_a_consistent_tree_has_no_problem(tree: Path) -> None:
    assert release.check(tree) == []
    assert {p.dist: str(p.version) for p in release.packages(tree).values()} == {
        "ramie-a": "0.1.0",
        "ramie-b": "0.1.0",
    }


def test_a_patch_release_dates_the_changelog_and_keeps_the_ranges(tree: Path) -> None:
    assert release.bump("a", "patch", root=tree, date=DATE) == Version("0.1.1")
    a = tree / "packages" / "a"
    assert 'version = "0.1.1"' in (a / "pyproject.toml").read_text()
    assert (a / "CHANGELOG.md").read_text() == (
        "# Changelog — ramie-a\n\n## Unreleased\n\n## 0.1.1 — 2026-01-02\n\n- The first version.\n"
    )
    assert '"ramie-a>=0.1.0,<0.2"' in (tree / "packages" / "b" / "pyproject.toml").read_text()
    assert release.check(tree) == []


def test_a_breaking_release_is_refused_while_a_sibling_excludes_it(tree: Path) -> None:
    before = {p: p.read_text() for p in tree.rglob("*.*") if ".git" not in p.parts}
    with pytest.raises(release.ReleaseError) as info:
        release.bump("a", "minor", root=tree, date=DATE)
    assert str(info.value) == (
        "ramie-a 0.2.0 is outside the range required by packages/b/pyproject.toml, "
        "packages/b/tests/plugins/p/pyproject.toml; run again with --update-dependents to "
        "require ramie-a>=0.2.0,<0.3 there"
    )
    assert {p: p.read_text() for p in before} == before  # nothing written


def test_update_dependents_moves_every_range_and_notes_it(tree: Path) -> None:
    release.bump("a", "minor", root=tree, update_dependents=True, date=DATE)
    b = tree / "packages" / "b"
    assert '"ramie-a>=0.2.0,<0.3"' in (b / "pyproject.toml").read_text()
    assert '"ramie-a[x]>=0.2.0,<0.3"' in (b / "tests/plugins/p/pyproject.toml").read_text()
    assert (b / "CHANGELOG.md").read_text() == (
        "# Changelog — ramie-b\n\n## 0.1.0 — unreleased\n\n"
        "- Requires ramie-a>=0.2.0,<0.3 (ramie-a 0.2.0 was released).\n"
        "- The first version.\n"
    )
    assert release.excluded_siblings(tree) == []


def test_a_range_that_excludes_the_tree_version_is_reported(tree: Path) -> None:
    pyproject = tree / "packages" / "b" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("<0.2", "<0.1"))
    assert release.excluded_siblings(tree) == [
        "packages/b/pyproject.toml: requires 'ramie-a>=0.1.0,<0.1', which excludes ramie-a "
        "0.1.0 (the version in packages/a); widen the range, or run: python3 noxfile.py -s "
        "release -- bump a <part> --update-dependents"
    ]


def test_source_changed_without_a_changelog_entry_is_reported(tree: Path) -> None:
    base = _git(tree, "rev-parse", "HEAD")
    (tree / "packages" / "a" / "src" / "code.py").write_text("x = 2\n")
    _commit(tree, "change a")
    assert release.unlogged_changes(tree) == [
        f"packages/a/src changed since ramie-a 0.1.0 (commit {base[:12]}) but "
        "packages/a/CHANGELOG.md has not changed since then; add a '- ' line under "
        "'## Unreleased' saying what changed"
    ]
    changelog = tree / "packages" / "a" / "CHANGELOG.md"
    changelog.write_text(changelog.read_text() + "- x is 2.\n")
    assert release.unlogged_changes(tree) == []  # uncommitted edits count too


def test_after_a_release_the_new_unreleased_section_must_get_an_entry(tree: Path) -> None:
    release.bump("a", "patch", root=tree, date=DATE)
    _commit(tree, "release ramie-a 0.1.1")
    release_commit = _git(tree, "rev-parse", "HEAD")
    assert release.last_release(release.packages(tree)["a"]) == release_commit
    assert release.unlogged_changes(tree) == []
    (tree / "packages" / "a" / "src" / "code.py").write_text("x = 3\n")
    [problem] = release.unlogged_changes(tree)
    assert "has no entry under an unreleased heading (its first is 'Unreleased')" in problem


def test_a_tag_marks_the_release(tree: Path) -> None:
    a = release.packages(tree)["a"]
    assert a.tag == "ramie-a-v0.1.0"
    (tree / "packages" / "a" / "src" / "code.py").write_text("x = 4\n")
    changelog = tree / "packages" / "a" / "CHANGELOG.md"
    changelog.write_text(changelog.read_text() + "- x is 4.\n")
    _commit(tree, "x is 4")
    _git(tree, "tag", "-a", a.tag, "-m", "ramie-a 0.1.0")
    assert release.last_release(a) == _git(tree, "rev-parse", "HEAD")
    assert release.unlogged_changes(tree) == []


def test_an_empty_unreleased_section_cannot_be_released(tree: Path) -> None:
    release.bump("a", "patch", root=tree, date=DATE)
    with pytest.raises(release.ReleaseError) as info:
        release.bump("a", "patch", root=tree, date=DATE)
    assert str(info.value) == release.EMPTY_UNRELEASED.format(
        changelog=tree / "packages" / "a" / "CHANGELOG.md", dist="ramie-a"
    )


def test_a_license_copy_that_differs_is_reported(tree: Path) -> None:
    (tree / "packages" / "b" / "LICENSE").write_text("MIT\n")
    assert release.license_copies(tree) == [
        "packages/b/LICENSE differs from the root LICENSE; copy it: cp LICENSE packages/b/LICENSE"
    ]


def test_the_command_line_checks_bumps_and_tags(tree: Path, capsys) -> None:
    assert release.main(["check"], root=tree) == 0
    assert capsys.readouterr().out == "release check: 2 packages consistent\n"
    assert release.main(["bump", "a", "minor"], root=tree) == 1
    assert "run again with --update-dependents" in capsys.readouterr().err
    assert release.main(["bump", "a", "minor", "--update-dependents"], root=tree) == 0
    assert capsys.readouterr().out == "ramie-a is now 0.2.0; commit, then tag: ramie-a-v0.2.0\n"
    _commit(tree, "release ramie-a 0.2.0")
    assert release.main(["tag", "a", "--create"], root=tree) == 0
    assert capsys.readouterr().out == "ramie-a-v0.2.0\n"
    assert _git(tree, "tag", "--list") == "ramie-a-v0.2.0"


versions = st.tuples(*[st.integers(0, 50)] * 3).map(lambda t: Version(".".join(map(str, t))))


@given(versions, st.sampled_from(release.PARTS))
def test_a_bump_moves_forward_and_its_range_admits_only_compatible_versions(version, part):
    new = release.bumped(version, part)
    assert new > version
    spec = SpecifierSet(release.compatible_range(new))
    assert new in spec and release.bumped(new, "patch") in spec and version not in spec
    breaking = "minor" if new.major == 0 else "major"
    assert release.bumped(new, breaking) not in spec


def test_the_tree_of_this_checkout_is_consistent() -> None:
    """What CI checks: sibling ranges, LICENSE copies, and changelogs against git history."""
    in_git = subprocess.run(
        ["git", "-C", str(release.ROOT), "rev-parse", "--git-dir"], capture_output=True
    )
    assert release.check(git=in_git.returncode == 0) == []
