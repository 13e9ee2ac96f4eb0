"""Verify mode: RAMIE_CHECK_STRUCTURE=1 / check_structure() re-walk every cached use."""

import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import pytest

from ramie import core


class M(core.Module):
    def __init__(self):
        self.ws = [core.Param(jnp.ones(2))]
        self.h = {"a": core.Param(jnp.ones(1))}
        self.sub = core.Module()


@pytest.fixture
def verify_off():
    """Verify mode off for the test, even when the suite runs with RAMIE_CHECK_STRUCTURE=1."""
    depth = core._verify._DEPTH[0]
    core._verify._set(0)
    yield
    core._verify._set(depth)


def _message(root, *changes):
    return core._errors.STALE_STRUCTURE.format(
        root=root, changes=core._errors.format_paths(changes)
    )


def test_a_bypassed_append_is_reported_with_its_path(verify_off):
    m = M()
    core.state(m)
    list.append(m.ws, core.Param(jnp.ones(3)))
    assert len(core.state(m).flat_state()) == 2  # the stale cache, outside verify mode
    with core.check_structure():
        with pytest.raises(core.StaleStructureError) as info:
            core.state(m)
    assert str(info.value) == _message("M", "'ws/1': added (a Param Variable)")


def test_a_bypassed_replacement_of_a_variable_is_reported():
    m = M()
    core.split(m)
    list.__setitem__(m.ws, 0, core.Param(jnp.zeros(2)))  # same structure, another object
    with core.check_structure(), pytest.raises(core.StaleStructureError) as info:
        core.split(m)
    assert str(info.value) == _message("M", "'ws/0': the cache holds another object there")


def test_bypassed_writes_to_a_module_are_reported():
    m = M()
    core.state(m)
    object.__setattr__(m.sub, "__dict__", {"w": core.Param(jnp.ones(2))})
    with core.check_structure(), pytest.raises(core.StaleStructureError, match="'sub/w'"):
        core.graphdef(m)


def test_tuple_roots_are_verified_too():
    a, b = M(), M()
    core.flatten((a, b))
    dict.__setitem__(b.h, "z", core.Param(jnp.ones(1)))
    with core.check_structure(), pytest.raises(core.StaleStructureError) as info:
        core.flatten((a, b))
    assert "M and M" in str(info.value) and "'1/h/z'" in str(info.value)


def test_is_current_verifies_in_verify_mode(verify_off):
    m = M()
    fg = core.flatten(m)
    dict.__delitem__(m.h, "a")
    assert fg.is_current()  # the fast check cannot see it
    with core.check_structure():
        with pytest.raises(core.StaleStructureError, match="'h/a': removed"):
            fg.is_current()
        assert core._verify.enabled()
    assert not core._verify.enabled()
    assert fg.is_current()


def test_tracked_edits_pass_verify_mode():
    with core.check_structure():
        m = M()
        for edit in [
            lambda: m.ws.append(core.Param(jnp.ones(1))),
            lambda: m.h.setdefault("k", []).append(core.Param(jnp.ones(1))),
            lambda: m.h.pop("a"),
            lambda: setattr(m.sub, "x", [core.Module()]),
            lambda: m.__dict__.update(y={"q": core.BatchStat(jnp.ones(1))}),
            lambda: setattr(m.ws[0], "sharding", ("a",)),
            lambda: delattr(m, "sub"),
        ]:
            core.state(m)
            edit()
            core.update(m, core.state(m))
        assert len(core.state(m).flat_state()) == 4


def test_the_environment_variable_turns_verify_mode_on():
    code = textwrap.dedent(
        """
        import jax.numpy as jnp
        from ramie import core
        class M(core.Module):
            def __init__(self):
                self.ws = [core.Param(jnp.ones(2))]
        m = M(); core.state(m)
        list.append(m.ws, core.Param(jnp.ones(3)))
        try:
            core.state(m)
        except core.StaleStructureError as e:
            print("raised", "'ws/1'" in str(e))
        """
    )
    env = {**os.environ, "RAMIE_CHECK_STRUCTURE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "raised True", out.stderr
    env["RAMIE_CHECK_STRUCTURE"] = "0"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "", out.stderr
