"""Cost of split + merge against jax.tree flatten + unflatten of the same leaves.

A 24-block MLP (Linear(64) + a BatchNorm-like module with two Params and two
BatchStats per block, 144 Variables) is split and merged; the baseline
flattens and unflattens a nested dict holding the same arrays. Also reported:
``update`` (writing a State back) and a cold split (structure cache missed).

Run: python bench/split_merge.py   (needs ramie-core installed)
"""

from __future__ import annotations

import gc
import statistics
import time

import jax
import jax.numpy as jnp

from ramie import core


class Linear(core.Module):
    def __init__(self, din: int, dout: int, rngs: core.Rngs):
        self.kernel = core.Param(jax.random.normal(rngs.params(), (din, dout)))
        self.bias = core.Param(jnp.zeros((dout,)))


class Norm(core.Module):
    def __init__(self, n: int):
        self.scale = core.Param(jnp.ones((n,)))
        self.bias = core.Param(jnp.zeros((n,)))
        self.mean = core.BatchStat(jnp.zeros((n,)))
        self.var = core.BatchStat(jnp.ones((n,)))
        self.use_running_average = False


class Block(core.Module):
    def __init__(self, n: int, rngs: core.Rngs):
        self.linear = Linear(n, n, rngs)
        self.norm = Norm(n)


class MLP(core.Module):
    def __init__(self, depth: int, n: int, rngs: core.Rngs):
        self.blocks = [Block(n, rngs) for _ in range(depth)]


def interleaved_medians(ops: dict, rounds: int = 25, number: int = 50) -> dict:
    """Median µs per call of each op, timing the ops in turn, round after round.

    Interleaving spreads machine noise evenly over the ops being compared.
    The garbage collector is off while timing, as in ``timeit``.
    """
    times: dict = {name: [] for name in ops}
    for fn in ops.values():  # warm up: caches and generated builders
        fn()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, fn in ops.items():
                start = time.perf_counter()
                for _ in range(number):
                    fn()
                times[name].append((time.perf_counter() - start) / number * 1e6)
    finally:
        gc.enable()
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    model = MLP(24, 64, core.Rngs(0))
    graphdef, state = core.split(model)
    pure = core.to_pure_dict(state)
    leaves, treedef = jax.tree.flatten(pure)
    n_leaves = len(graphdef.paths)

    def tree_roundtrip():
        ls, td = jax.tree.flatten(pure)
        jax.tree.unflatten(td, ls)

    def state_tree_roundtrip():
        ls, td = jax.tree.flatten(state)
        jax.tree.unflatten(td, ls)

    def split_merge():
        g, s = core.split(model)
        core.merge(g, s)

    def split_only():
        core.split(model)

    def merge_only():
        core.merge(graphdef, state)

    def update_only():
        core.update(model, state)

    def cold_split():
        core._tracking.bump()  # invalidate the structure cache
        core.split(model)

    medians = interleaved_medians(
        {
            "jax.tree flatten+unflatten (dict)": tree_roundtrip,
            "jax.tree flatten+unflatten (the State)": state_tree_roundtrip,
            "ramie split+merge": split_merge,
            "ramie split (cached structure)": split_only,
            "ramie merge": merge_only,
            "ramie update": update_only,
            "ramie split (cold: structure walk)": cold_split,
        }
    )
    rows = list(medians.items())
    base = rows[0][1]
    print(f"24-block MLP, {n_leaves} Variables, {len(leaves)} dict leaves")
    print(f"{'operation':40s} {'median µs':>10s} {'× dict':>8s}")
    for name, us in rows:
        print(f"{name:40s} {us:10.1f} {us / base:8.2f}")


if __name__ == "__main__":
    main()
