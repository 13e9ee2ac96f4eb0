"""Cost of split + merge against jax.tree flatten + unflatten of the same leaves.

A 24-block MLP (Linear(64) + a BatchNorm-like module with two Params and two
BatchStats per block, 144 Variables) is split and merged; the baseline
flattens and unflattens a nested dict holding the same arrays. Also reported:
``update`` (writing a State back) and a cold split (structure cache missed).

Run: python bench/split_merge.py   (needs ramie-core installed)
"""

from __future__ import annotations

import statistics
import timeit

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


def median_us(fn, number: int, repeat: int = 15) -> float:
    times = timeit.repeat(fn, number=number, repeat=repeat)
    return statistics.median(times) / number * 1e6


def main() -> None:
    model = MLP(24, 64, core.Rngs(0))
    graphdef, state = core.split(model)
    pure = core.to_pure_dict(state)
    leaves, treedef = jax.tree.flatten(pure)
    n_leaves = len(graphdef.paths)

    def tree_roundtrip():
        ls, td = jax.tree.flatten(pure)
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

    rows = [
        ("jax.tree flatten+unflatten (dict)", median_us(tree_roundtrip, 200)),
        ("ramie split+merge", median_us(split_merge, 100)),
        ("ramie split (cached structure)", median_us(split_only, 200)),
        ("ramie merge", median_us(merge_only, 100)),
        ("ramie update", median_us(update_only, 100)),
        ("ramie split (cold: structure walk)", median_us(cold_split, 50)),
    ]
    base = rows[0][1]
    print(f"24-block MLP, {n_leaves} Variables, {len(leaves)} dict leaves")
    print(f"{'operation':40s} {'median µs':>10s} {'× dict':>8s}")
    for name, us in rows:
        print(f"{name:40s} {us:10.1f} {us / base:8.2f}")


if __name__ == "__main__":
    main()
