"""Cost of split + merge against jax.tree flatten + unflatten of the same leaves.

A 24-block MLP (Linear(64) + a BatchNorm-like module with two Params and two
BatchStats per block, 144 Variables) is split and merged; the baseline
flattens and unflattens a nested dict holding the same arrays. Also reported:
``update`` (writing a State back) and a cold split (structure cache missed).

The last two rows answer "is generating code worth it?": the same split and
merge done by a plain interpreted loop over the cached structure (what core's
generated builders replace), same results, no code generation.

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


# -- the interpreted alternative to core's generated builders --------------------------
def _build(node, leaves):
    """Rebuild objects from a GraphDef node tree by walking it (no generated code)."""
    from ramie.core import _codegen as cg
    from ramie.core._module import _SET_TRACKED
    from ramie.core._variables import make_variable

    it = iter(leaves)
    objs: list = []

    def build(n):
        code = n[0]
        if code == cg.VAR:
            v = next(it)
            x = make_variable(n[1], v._value if isinstance(v, core.Variable) else v, n[2])
            objs.append(x)
            return x
        if code == cg.MODULE:
            x = object.__new__(n[1])
            _SET_TRACKED(x, False)
            objs.append(x)
            x.__dict__.update({k: build(c) for k, c in n[2]})
            return x
        if code == cg.REF:
            return objs[n[1]]
        if code == cg.ARRAY:
            return next(it)
        if code == cg.STATIC:
            return n[2]
        if code == cg.LIST:
            return core.List([build(c) for c in n[1]])
        if code == cg.DICT:
            return core.Dict({k: build(c) for k, c in n[1]})
        return cg.rebuild_tuple(n[1], [build(c) for c in n[2]])

    return build(node)


def interpreted_merge(graphdef, state):
    leaves = []
    for path in graphdef.paths:
        d = state
        for k in path:
            d = d[k]
        leaves.append(d)
    return _build(graphdef.node, leaves)


def interpreted_split(obj):
    fg = core.flatten(obj)
    root: dict = {}
    for path, ref in zip(fg.paths, fg.refs, strict=True):
        d = root
        for k in path[:-1]:
            d = d.setdefault(k, {})
        d[path[-1]] = ref.copy() if isinstance(ref, core.Variable) else ref._value

    def to_state(d):
        return core.State({k: to_state(v) if type(v) is dict else v for k, v in d.items()})

    return fg.graphdef, to_state(root)


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

    def split_interpreted():
        interpreted_split(model)

    def merge_interpreted():
        interpreted_merge(graphdef, state)

    g2, s2 = interpreted_split(model)
    assert g2 == graphdef and core.graphdef(interpreted_merge(graphdef, state)) == graphdef
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), s2, state))

    def cold_split():
        core._containers.bump()  # invalidate the structure cache
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
            "split, interpreted loop (no codegen)": split_interpreted,
            "merge, interpreted loop (no codegen)": merge_interpreted,
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
