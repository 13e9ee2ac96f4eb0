"""10,000 Variables through ramie's jit against raw jax.jit on the same nested dicts.

The model: 2,500 sub-Modules of 4 Params each (shape (4,)), 10,000 Variables; raw
JAX holds the same arrays in a dict of 2,500 dicts. Two calls, each timed one of
each in turn, round after round, blocking on every call, asynchronous dispatch
off, garbage collector off; medians and the median of each round's ratio:

- forward: a pure function taking all the parameters (using the first and last);
- update: every parameter changed (``p + 0.1``), donated in both, written back
  into the Variables by ramie and into the dict by the raw loop.

Issue 16 quotes 0.43× raw (forward) and 0.81× raw (update) for this scale: a flat
list of leaves crosses the jit boundary faster than JAX flattens nested dicts.

Run: python bench/many_variables.py [--steps N] [--write]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import _results
import jax

jax.config.update("jax_cpu_enable_async_dispatch", False)

import jax.numpy as jnp  # noqa: E402

from ramie import core  # noqa: E402
from ramie import transforms as rt  # noqa: E402

GROUPS, PER_GROUP = 2500, 4  # 10,000 Variables
NAMES = ("a", "b", "c", "d")


class Group(core.Module):
    def __init__(self, i: int):
        for k, name in enumerate(NAMES):
            setattr(self, name, core.Param(jnp.full((4,), float(i * PER_GROUP + k))))


class Wide(core.Module):
    def __init__(self):
        self.groups = [Group(i) for i in range(GROUPS)]


def _variables(m: Wide) -> list:
    return [getattr(g, n) for g in m.groups for n in NAMES]


def _total(leaves):
    # The call's cost is moving 10,000 leaves across the jit boundary; the body uses
    # two (XLA takes tens of minutes to compile one op over 10,000 operands on 2 cores).
    return jnp.sum(leaves[0] + leaves[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed rounds")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()

    model = Wide()
    raw = {
        str(i): {n: jnp.full((4,), float(i * PER_GROUP + k)) for k, n in enumerate(NAMES)}
        for i in range(GROUPS)
    }
    x = jnp.ones(())

    raw_fwd = jax.jit(lambda p, x: _total(jax.tree.leaves(p)) * x)
    ramie_fwd = rt.jit(lambda m, x: _total([v.value for v in _variables(m)]) * x)
    raw_upd = jax.jit(lambda p: jax.tree.map(lambda a: a + 0.1, p), donate_argnums=0)

    @rt.jit(donate_argnums=0)
    def ramie_upd(m):
        for v in _variables(m):
            v.value = v.value + 0.1

    state = {"raw": raw}

    def raw_update():
        state["raw"] = raw_upd(state["raw"])
        return state["raw"]["0"]["a"]

    def ramie_update():
        ramie_upd(model)
        return model.groups[0].a.value

    calls = {
        "forward": {
            "raw jax.jit": lambda: raw_fwd(state["raw"], x),
            "ramie jit": lambda: ramie_fwd(model, x),
        },
        "update": {"raw jax.jit": raw_update, "ramie jit": ramie_update},
    }
    lines = [
        f"{GROUPS * PER_GROUP} Variables (shape (4,)) in {GROUPS} Modules",
        f"{'call':<8} {'variant':<12} {'µs/call':>10} {'× raw':>7}",
    ]
    for kind, fns in calls.items():
        for f in fns.values():
            for _ in range(3):
                jax.block_until_ready(f())
        times: dict[str, list[float]] = {k: [] for k in fns}
        gc.collect()
        gc.disable()
        try:
            for _ in range(args.steps):
                for k, f in fns.items():
                    t0 = time.perf_counter()
                    jax.block_until_ready(f())
                    times[k].append(time.perf_counter() - t0)
        finally:
            gc.enable()
        base = times["raw jax.jit"]
        for k, t in times.items():
            ratio = statistics.median(a / b for a, b in zip(t, base, strict=True))
            lines.append(f"{kind:<8} {k:<12} {statistics.median(t) * 1e6:>10.1f} {ratio:>7.3f}")
    # Same numbers both ways: the update ran the same number of times on both.
    expect = float(state["raw"]["1"]["b"][0])
    assert abs(float(model.groups[1].b.value[0]) - expect) < 1e-3, "ramie and raw disagree"
    table = "\n".join(lines)
    print(table)
    if args.write:
        _results.write_block("many", table)


if __name__ == "__main__":
    main()
