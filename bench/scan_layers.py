"""Scan over layers: 48 blocks under ``nn.scan`` against ``jax.lax.scan`` and a Python loop.

One model, a stack of 48 residual blocks ``x + relu(x @ kernel + bias)`` (width 64,
batch 16), trained with ``optax.adam`` in four ways that compute the same thing:

- raw scan: stacked parameters in a dict (leading axis 48), ``jax.lax.scan`` over
  the layers inside a pure step under ``jax.jit`` (donating parameters and state);
- ramie scan: the blocks created by ``ramie.transforms.vmap`` over the constructor
  (one Module whose Params have a leading axis of 48) and applied with
  ``ramie.transforms.scan``, inside ``@jit def train_step(model, optimizer, x, y)``;
- raw loop / ramie loop: 48 separate blocks applied by a Python ``for`` loop
  (XLA sees 48 copies of the block: the compile time that scanning saves).

Reported: compile time (the first call of a fresh build: trace + compile + one
step; median of 3 builds, in turn) and step time (one step of each variant in
turn, round after round, blocking on each, asynchronous dispatch off; medians and
the median of each round's ratio to raw scan).

Run: python bench/scan_layers.py [--steps N] [--write]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable

import _results
import jax

jax.config.update("jax_cpu_enable_async_dispatch", False)

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from ramie import core  # noqa: E402
from ramie import transforms as rt  # noqa: E402
from ramie.training import Optimizer  # noqa: E402

DEPTH, WIDTH, BATCH = 48, 64, 16


def block(x, kernel, bias):
    return x + jax.nn.relu(x @ kernel + bias)


def loss(out, y):
    return jnp.mean((out - y) ** 2)


def _kernel(key):
    return jax.nn.initializers.lecun_normal()(key, (WIDTH, WIDTH)) * 0.1


class Block(core.Module):
    def __init__(self, key):
        self.kernel = core.Param(_kernel(key))
        self.bias = core.Param(jnp.zeros((WIDTH,)))

    def __call__(self, x):
        return block(x, self.kernel.value, self.bias.value)


class ScanStack(core.Module):
    def __init__(self, key):
        self.blocks = rt.vmap(Block)(jax.random.split(key, DEPTH))

    def __call__(self, x):
        @rt.scan(in_axes=(0, rt.Carry), out_axes=rt.Carry)
        def apply(b, x):
            return b(x)

        return apply(self.blocks, x)


class LoopStack(core.Module):
    def __init__(self, key):
        self.blocks = [Block(k) for k in jax.random.split(key, DEPTH)]

    def __call__(self, x):
        for b in self.blocks:
            x = b(x)
        return x


def _raw_params(key, stacked: bool):
    keys = jax.random.split(key, DEPTH)
    if stacked:
        return {"kernel": jax.vmap(_kernel)(keys), "bias": jnp.zeros((DEPTH, WIDTH))}
    return [{"kernel": _kernel(k), "bias": jnp.zeros((WIDTH,))} for k in keys]


def _raw_apply_scan(params, x):
    def body(x, p):
        return block(x, p["kernel"], p["bias"]), None

    return jax.lax.scan(body, x, params)[0]


def _raw_apply_loop(params, x):
    for p in params:
        x = block(x, p["kernel"], p["bias"])
    return x


def raw_build(stacked: bool, tx) -> Callable:
    apply = _raw_apply_scan if stacked else _raw_apply_loop

    def build():
        params = _raw_params(jax.random.key(0), stacked)
        state = {"params": params, "opt": tx.init(params)}

        def pure_step(params, opt, x, y):
            value, grads = jax.value_and_grad(lambda p: loss(apply(p, x), y))(params)
            updates, opt = tx.update(grads, opt, params)
            return optax.apply_updates(params, updates), opt, value

        jitted = jax.jit(pure_step, donate_argnums=(0, 1))

        def step(x, y):
            state["params"], state["opt"], value = jitted(state["params"], state["opt"], x, y)
            return value

        return step

    return build


def ramie_build(cls: type, tx) -> Callable:
    def build():
        model = cls(jax.random.key(0))
        optimizer = Optimizer(model, tx)

        @rt.jit(donate_argnums=(0, 1))
        def train_step(model, optimizer, x, y):
            value, grads = rt.value_and_grad(lambda m: loss(m(x), y))(model)
            optimizer.update(grads)
            return value

        return lambda x, y: train_step(model, optimizer, x, y)

    return build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed rounds")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    tx = optax.adam(1e-3)
    builds = {
        "raw lax.scan": raw_build(True, tx),
        "ramie nn.scan": ramie_build(ScanStack, tx),
        "raw loop": raw_build(False, tx),
        "ramie loop": ramie_build(LoopStack, tx),
    }
    x = jax.random.normal(jax.random.key(1), (BATCH, WIDTH))
    y = jax.random.normal(jax.random.key(2), (BATCH, WIDTH))

    compile_s: dict[str, list[float]] = {k: [] for k in builds}
    for _ in range(3):
        for name, build in builds.items():
            step = build()
            t0 = time.perf_counter()
            jax.block_until_ready(step(x, y))
            compile_s[name].append(time.perf_counter() - t0)
        print("compile round done", flush=True, file=sys.stderr)

    steps = {name: build() for name, build in builds.items()}
    for step in steps.values():
        for _ in range(5):
            jax.block_until_ready(step(x, y))
    times: dict[str, list[float]] = {k: [] for k in steps}
    gc.collect()
    gc.disable()
    try:
        for _ in range(args.steps):
            for name, step in steps.items():
                t0 = time.perf_counter()
                jax.block_until_ready(step(x, y))
                times[name].append(time.perf_counter() - t0)
    finally:
        gc.enable()

    base = "raw lax.scan"
    lines = [
        f"{DEPTH} blocks x + relu(x @ W + b), width {WIDTH}, batch {BATCH}, adam",
        f"{'variant':<14} {'µs/step':>9} {'× raw scan':>11} {'compile ms':>11} {'× raw scan':>11}",
    ]
    cbase = statistics.median(compile_s[base])
    for name in steps:
        us = statistics.median(times[name]) * 1e6
        ratio = statistics.median(a / b for a, b in zip(times[name], times[base], strict=True))
        c = statistics.median(compile_s[name])
        lines.append(f"{name:<14} {us:>9.1f} {ratio:>11.3f} {c * 1e3:>11.1f} {c / cbase:>11.2f}")
    med = {k: statistics.median(v) for k, v in compile_s.items()}
    gain = med["ramie loop"] / med["ramie nn.scan"]
    lines.append(f"compile time, ramie loop / ramie nn.scan: {gain:.1f}x")
    table = "\n".join(lines)
    print(table)
    if args.write:
        _results.write_block("scan", table)


if __name__ == "__main__":
    main()
