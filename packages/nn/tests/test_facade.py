"""The facade: ``from ramie import nn`` exposes every installed ramie package."""

import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

import ramie.core
from ramie import nn
from ramie.nn import _facade


def test_core_names_are_reexported_as_the_same_objects():
    for name in ramie.core.__all__:
        assert getattr(nn, name) is getattr(ramie.core, name), name
    assert set(ramie.core.__all__) <= set(nn.__all__)


def test_a_module_round_trips_through_the_facade():
    class Scale(nn.Module):
        def __init__(self, rngs: nn.Rngs):
            self.w = nn.Param(jax.random.normal(rngs.params(), (3,)))

    model = Scale(nn.Rngs(params=0))
    graphdef, params = nn.split(model, nn.Param)
    rebuilt = nn.merge(graphdef, jax.tree.map(lambda p: 2 * p, params))
    np.testing.assert_allclose(rebuilt.w.value, 2 * model.w.value)


def test_installed_packages_are_loaded_and_their_names_reexported():
    for pkg in _facade.PACKAGES:
        assert pkg.loaded, f"{pkg.dist} is a dependency of ramie but did not import: {pkg.error}"
        module = sys.modules[pkg.module]
        for name in pkg.names:
            assert getattr(nn, name) is getattr(module, name)


def test_planned_names_either_exist_or_say_which_package_to_upgrade():
    for pkg in _facade.PACKAGES:
        for name in pkg.expected:
            if name in pkg.names or name in vars(nn):  # e.g. nn.serialization, the module
                continue
            with pytest.raises(AttributeError) as info:
                getattr(nn, name)
            assert pkg.dist in str(info.value) and "pip install -U" in str(info.value)


def test_unknown_names_are_plain_attribute_errors():
    with pytest.raises(AttributeError, match="has no attribute 'not_a_thing'"):
        nn.not_a_thing  # noqa: B018


def test_a_missing_package_gives_an_import_error_naming_the_distribution():
    script = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "ramie.transforms" or name.startswith("ramie.transforms."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        from ramie import nn
        assert hasattr(nn, "Module")
        try:
            nn.jit
        except ImportError as e:
            print(e)
        else:
            raise SystemExit("no ImportError")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert "ramie.nn.jit comes from ramie-transforms, which is not installed" in out.stdout
    assert (
        "Install it from the root of a ramie checkout: pip install ./packages/transforms (or, "
        "with the wheels built by `python3 noxfile.py -s build`: pip install --find-links dist "
        "ramie-transforms)"
    ) in out.stdout


def test_the_not_installed_hint_names_a_directory_that_holds_the_package():
    checkout = Path(__file__).resolve().parents[2]  # packages/
    for pkg in _facade.PACKAGES:
        pyproject = checkout / pkg.directory / "pyproject.toml"
        assert f'name = "{pkg.dist}"' in pyproject.read_text(), pyproject
        hint = _facade.NOT_INSTALLED_HINT.format(dist=pkg.dist, dir=pkg.directory)
        assert f"pip install ./packages/{pkg.directory} " in hint


def test_dir_lists_public_names():
    listing = dir(nn)
    assert "Module" in listing and "split" in listing
