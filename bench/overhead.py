"""Per-step overhead of ramie.transforms.jit against raw jax.jit on dict pytrees.

Three models, each trained with optax adam in two ways that compute the same thing:

(a) raw JAX: parameters and statistics in nested dicts, a pure step function,
    ``jax.jit`` with donation of the parameters and optimizer state;
(b) ramie: Modules holding Variables and the seed's pattern
    ``@nn.jit def train_step(model, optimizer, x, y)`` with ``nn.value_and_grad``
    and ``optimizer.update(grads)`` (``ramie.training.Optimizer``) inside
    (donating model and optimizer).

Models: a tiny MLP (2 layers, width 32, batch 8), a deep MLP (24 blocks of
Linear(64) + BatchNorm + Dropout, batch 8) and the seed's MNIST CNN (batch 64).
Also: the tiny model's pure forward call, compile time and init time.

Per-call table: variants are timed in turn, one step each, round after round (so
machine noise hits all alike), after a warm-up, blocking on every step, with
``jax_cpu_enable_async_dispatch=False``; medians are reported.

Asynchronous-loop table (issue 16): JAX's default asynchronous dispatch, short
bursts of steps (400 tiny / 12 deep / 3 CNN, ~10 ms) blocking only at the end of a
burst; raw and ramie each donated and not, plus a second raw variant of each as an
A/A control; every round runs one burst of each variant in a shuffled order; the
ratio is the median over rounds of ramie's burst time over the mean of the round's
two raw bursts (same donation), with a distribution-free 95% interval; "A/A" is the
second raw's over the first's.
The dispatch mode is fixed when JAX's CPU client starts, so this table runs in a
child process (``--async-loop`` runs it alone). A ratio also moves by a few percent
from one process to the next (where the arrays and the interpreter's objects land),
more than within one; ``--processes P`` runs the table in P child processes, one
after the other, and reports per row the median of their ratios and their range.

Run: python bench/overhead.py [--steps N] [--rounds R] [--processes P] [--models tiny,deep]
[--write]
(``nox -s bench``)
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

# Fixed when JAX's CPU client starts (the models module below makes an array).
ASYNC_LOOP = "--async-loop" in sys.argv[1:]
jax.config.update("jax_cpu_enable_async_dispatch", ASYNC_LOOP)

from ramie import core  # noqa: E402
from ramie import transforms as rt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _overhead_models as M  # noqa: E402
import _results  # noqa: E402

from ramie.training import Optimizer  # noqa: E402


# -- a variant builds fresh (init, step) pairs, so compile time can be measured again --
class Variant:
    def __init__(self, name: str, build: Callable):
        self.name = name
        self.build = build

    def setup(self, x, y) -> None:
        self.init_fn, self.step_fn = self.build()
        self.state = self.init_fn()
        jax.block_until_ready(self.step_fn(self.state, x, y))

    def time_init_and_compile(self, x, y) -> tuple[float, float]:
        """(init µs, first-call µs = trace + compile + one step) with a fresh build."""
        init, step = self.build()
        t0 = time.perf_counter()
        state = init()
        jax.block_until_ready(jax.tree.leaves(state))
        t1 = time.perf_counter()
        jax.block_until_ready(step(state, x, y))
        t2 = time.perf_counter()
        return (t1 - t0) * 1e6, (t2 - t1) * 1e6

    def __call__(self, x, y):
        return self.step_fn(self.state, x, y)


def raw_variant(model: M.RawModel, tx, donate: bool = True) -> Variant:
    def build():
        def init():
            params, stats = model.init(jax.random.key(0))
            return {"params": params, "stats": stats, "opt": tx.init(params), "step": 0}

        def pure_step(params, stats, opt, step, x, y):
            def loss_fn(params):
                logits, new_stats = model.apply(params, stats, x, step)
                return model.loss(logits, y), new_stats

            (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, opt = tx.update(grads, opt, params)
            return optax.apply_updates(params, updates), new_stats, opt, step + 1, loss

        jitted = jax.jit(pure_step, donate_argnums=(0, 1, 2) if donate else ())

        def step(s, x, y):
            s["params"], s["stats"], s["opt"], s["step"], loss = jitted(
                s["params"], s["stats"], s["opt"], s["step"], x, y
            )
            return loss

        return init, step

    return Variant("raw jax.jit" if donate else "raw undonated", build)


def ramie_variant(make: Callable, loss: Callable, tx, donate: bool = True) -> Variant:
    def build():
        def init():
            model = make(core.Rngs(0))
            return (model, Optimizer(model, tx))

        @rt.jit(donate_argnums=(0, 1) if donate else None)
        def train_step(model, optimizer, x, y):
            def loss_fn(model):
                return loss(model(x), y)

            value, grads = rt.value_and_grad(loss_fn)(model)
            optimizer.update(grads)
            return value

        def step(s, x, y):
            return train_step(s[0], s[1], x, y)

        return init, step

    return Variant("ramie nn.jit" if donate else "ramie undonated", build)


def interleaved(variants: list[Variant], x, y, steps: int) -> dict[str, float]:
    """Median µs per step of each variant, one step each in turn, ``steps`` rounds."""
    for v in variants:
        for _ in range(5):
            jax.block_until_ready(v(x, y))
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    gc.collect()
    gc.disable()
    try:
        for _ in range(steps):
            for v in variants:
                t0 = time.perf_counter()
                jax.block_until_ready(v(x, y))
                times[v.name].append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return times


def summarize(times: dict[str, list[float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Median µs per variant, and the median over rounds of each round's ratio to the first.

    A round times every variant back to back, so its ratio is little affected by
    the machine slowing down or speeding up between rounds.
    """
    names = list(times)
    base = times[names[0]]
    med = {n: statistics.median(t) * 1e6 for n, t in times.items()}
    ratio = {
        n: statistics.median(a / b for a, b in zip(times[n], base, strict=True)) for n in names
    }
    return med, ratio


def forward_call(steps: int) -> dict[str, float]:
    """The tiny model's pure forward (inference) call: raw jax.jit vs ramie jit."""
    raw = M.RawTinyMLP()
    params, _ = raw.init(jax.random.key(0))
    model = M.TinyMLP(core.Rngs(0))
    x = jnp.ones((8, 32))

    raw_fwd = jax.jit(lambda p, x: raw.apply(p, {}, x, None)[0])
    ramie_fwd = rt.jit(lambda m, x: m(x))
    fns = {"raw jax.jit": lambda: raw_fwd(params, x), "ramie nn.jit": lambda: ramie_fwd(model, x)}
    for f in fns.values():
        for _ in range(5):
            jax.block_until_ready(f())
    times: dict[str, list[float]] = {k: [] for k in fns}
    gc.disable()
    try:
        for _ in range(steps):
            for k, f in fns.items():
                t0 = time.perf_counter()
                jax.block_until_ready(f())
                times[k].append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return summarize(times)


def _data(xshape, ydim, loss):
    x = jax.random.normal(jax.random.key(1), xshape)
    if loss is M.mse:
        return x, jax.random.normal(jax.random.key(2), (xshape[0], ydim))
    return x, jax.nn.one_hot(jnp.arange(xshape[0]) % 10, 10)


# (name, raw model, ramie constructor, loss, x shape, y width, async steps per burst)
MODELS = [
    ("tiny MLP", M.RawTinyMLP(), M.TinyMLP, M.mse, (8, 32), 1, 400),
    ("deep MLP", M.RawDeepMLP(), M.DeepMLP, M.mse, (8, 64), 64, 12),
    ("MNIST CNN", M.RawCNN(), M.CNN, M.xent, (64, 28, 28, 1), 10, 3),
]
#: Asynchronous-loop rounds per model, relative to ``--rounds`` (the CNN's bursts are long).
_ROUND_SHARE = {"tiny MLP": 1.0, "deep MLP": 1.0, "MNIST CNN": 0.25}


def _chosen(models: str) -> list[tuple]:
    """The rows of ``MODELS`` whose names start with one of the comma-separated prefixes."""
    prefixes = tuple(p.strip() for p in models.split(",") if p.strip())
    chosen = [m for m in MODELS if not prefixes or m[0].startswith(prefixes)]
    if not chosen:
        names = ", ".join(m[0] for m in MODELS)
        raise SystemExit(f"--models {models!r} matches none of the models: {names}")
    return chosen


def median_ci(ratios: list[float]) -> tuple[float, float, float]:
    """The median of ``ratios`` and a distribution-free ~95% interval for it.

    The interval is given by order statistics (ranks n/2 ± 0.98·√n), so it
    assumes nothing about the noise's shape: with 300 rounds it spans about
    ±17 ranks around the middle.
    """
    xs = sorted(ratios)
    n = len(xs)
    half = 0.98 * n**0.5
    lo, hi = max(int(n / 2 - half), 0), min(int(n / 2 + half), n - 1)
    return statistics.median(xs), xs[lo], xs[hi]


def async_loop(rounds: int, models: str = "") -> tuple[str, list[dict]]:
    """The asynchronous-loop table: µs per step and paired ratios, donated and not.

    Per model, six variants: raw and ramie, donated and not, and a second raw
    variant of each donation. ramie's ratio is to the mean of the two raw
    bursts of its round; the two raws' own ratio ("A/A": identical programs)
    shows what the machine's noise alone does to a ratio. Every round
    runs each variant for one short burst (``MODELS``' last column, ~10 ms;
    JAX's dispatch on, blocking only at the burst's end), in a shuffled order
    (seeded), so slow spells of the shared machine hit all variants alike.
    ``models``: only the models whose names start with one of these
    comma-separated prefixes (all by default).
    Returns the table and its rows (for ``--processes``).
    """
    tx = optax.adam(1e-3)
    rows: list[dict] = []
    order = random.Random(0)
    lines = [_async_line(_ASYNC_HEAD, "95% interval", "A/A")]
    for name, raw, make, loss, xshape, ydim, burst in _chosen(models):
        x, y = _data(xshape, ydim, loss)
        variants = {}
        for donate in (True, False):
            tag = "donated" if donate else "undonated"
            variants[f"raw {tag}"] = raw_variant(raw, tx, donate)
            variants[f"ramie {tag}"] = ramie_variant(make, loss, tx, donate)
            variants[f"raw {tag} (A/A)"] = raw_variant(raw, tx, donate)
        for v in variants.values():
            v.setup(x, y)
            for _ in range(3):
                jax.block_until_ready(v(x, y))
        names = list(variants)
        times: dict[str, list[float]] = {n: [] for n in names}
        gc.collect()
        gc.disable()
        try:
            for _ in range(max(int(rounds * _ROUND_SHARE[name]), 5)):
                order.shuffle(names)
                for n in names:
                    v = variants[n]
                    t0 = time.perf_counter()
                    for _ in range(burst):
                        out = v(x, y)
                    jax.block_until_ready(out)
                    times[n].append((time.perf_counter() - t0) / burst)
        finally:
            gc.enable()
        for tag in ("donated", "undonated"):
            # Each round's baseline is the mean of its two raw bursts (less noisy than one).
            r1, r2 = times[f"raw {tag}"], times[f"raw {tag} (A/A)"]
            a = [(p + q) / 2 for p, q in zip(r1, r2, strict=True)]
            b = times[f"ramie {tag}"]
            ratio, lo, hi = median_ci([q / p for p, q in zip(a, b, strict=True)])
            aa, _, _ = median_ci([q / p for p, q in zip(r1, r2, strict=True)])
            rows.append(
                {"model": name, "donate": tag == "donated", "raw": statistics.median(a),
                 "ramie": statistics.median(b), "ratio": ratio, "aa": aa}
            )  # fmt: skip
            lines.append(_async_line(rows[-1], f"{lo:.3f}-{hi:.3f}", f"{aa:.3f}"))
        print(lines[-2], lines[-1], sep="\n", file=sys.stderr, flush=True)
    return "\n".join(lines), rows


def _async_table(rounds: int, processes: int = 1, models: str = "") -> str:
    """Run ``async_loop`` in child processes (asynchronous dispatch on); the table.

    One process: its table. Several: per row, the median over the processes of
    their µs and ratios, and the range of their ratios and A/A ratios.
    """
    tables, runs = [], []
    for k in range(processes):
        out = subprocess.run(
            [sys.executable, __file__, "--async-loop", "--rounds", str(rounds), "--models", models],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
        table, rows = out.split(_ASYNC_MARK, 1)[1].split(_ROWS_MARK, 1)
        tables.append(table.strip("\n"))
        runs.append(json.loads(rows))
        if processes > 1:
            print(f"process {k + 1} of {processes}:", tables[-1], sep="\n", flush=True)
    if processes == 1:
        return tables[0]
    return _across_processes(runs)


def _across_processes(runs: list[list[dict]]) -> str:
    """The async table from several processes' rows: medians, and ranges of ratios."""
    lines = [_async_line(_ASYNC_HEAD, "range", "A/A range") + f"   ({len(runs)} processes)"]
    for i, row in enumerate(runs[0]):
        same = [run[i] for run in runs]
        ratios = [r["ratio"] for r in same]
        aas = [r["aa"] for r in same]
        med = {k: statistics.median(r[k] for r in same) for k in ("raw", "ramie", "ratio")}
        spread = f"{min(ratios):.3f}-{max(ratios):.3f}"
        lines.append(_async_line({**row, **med}, spread, f"{min(aas):.3f}-{max(aas):.3f}"))
    return "\n".join(lines)


#: The header row of the asynchronous-loop tables, as ``_async_line`` takes it.
_ASYNC_HEAD = {"model": "model", "donate": "donate", "raw": "raw µs/step",
               "ramie": "ramie µs/step", "ratio": "× raw"}  # fmt: skip


def _async_line(row: dict, spread: str, aa: str) -> str:
    """One line of an asynchronous-loop table: a row (seconds per step) or the header."""
    raw, ramie, ratio = row["raw"], row["ramie"], row["ratio"]
    if not isinstance(raw, str):
        raw, ramie, ratio = f"{raw * 1e6:.1f}", f"{ramie * 1e6:.1f}", f"{ratio:.3f}"
    return (
        f"{row['model']:<10} {str(row['donate']):<7} {raw:>12} {ramie:>14} {ratio:>7}"
        f" {spread:>14} {aa:>12}"
    )


_ASYNC_MARK = "-- asynchronous loop --"
_ROWS_MARK = "-- rows --"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="timed rounds per model")
    parser.add_argument("--rounds", type=int, default=300, help="asynchronous-loop rounds")
    parser.add_argument(
        "--processes", type=int, default=1, help="run the async table in P processes"
    )
    parser.add_argument("--async-loop", action="store_true", help="only the async table")
    parser.add_argument(
        "--models", default="", help="async table: only these models (name prefixes, a,b)"
    )
    parser.add_argument("--no-async", action="store_true", help="only the per-call table")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    if args.write and args.models:
        parser.error("--write records every model: drop --models")
    if args.async_loop and args.processes > 1:  # the parent of the processes
        print(_async_table(args.rounds, args.processes, args.models))
        return
    if args.async_loop:
        table, rows = async_loop(args.rounds, args.models)
        print(_ASYNC_MARK, table, _ROWS_MARK, json.dumps(rows), sep="\n")
        return
    tx = optax.adam(1e-3)
    rows = []
    for name, raw, make, loss, xshape, ydim, _ in MODELS:
        steps = {"tiny MLP": args.steps, "deep MLP": args.steps // 2}.get(
            name, max(args.steps // 10, 30)
        )
        x, y = _data(xshape, ydim, loss)
        variants = [raw_variant(raw, tx), ramie_variant(make, loss, tx)]
        for v in variants:
            v.setup(x, y)
        med, ratio = summarize(interleaved(variants, x, y, steps))
        first = {v.name: [] for v in variants}
        for _ in range(3):  # in turn, fresh builds: trace + compile + one step
            for v in variants:
                first[v.name].append(v.time_init_and_compile(x, y))
        init = {k: statistics.median(t[0] for t in ts) for k, ts in first.items()}
        comp = {k: statistics.median(t[1] for t in ts) for k, ts in first.items()}
        base = variants[0].name
        for v in variants:
            n = v.name
            rows.append(
                (name, n, med[n], ratio[n], comp[n] / 1e3, comp[n] / comp[base],
                 init[n] / 1e3)
            )  # fmt: skip
        print(f"{name}: " + ", ".join(f"{k} {t:.1f} µs" for k, t in med.items()), flush=True)
    fwd = forward_call(args.steps)
    table = _table(rows, fwd)
    print(table)
    async_table = None if args.no_async else _async_table(args.rounds, args.processes, args.models)
    if async_table is not None:
        print("\nasynchronous loop (dispatch on, shuffled short bursts, block at the end of each)")
        print(async_table)
    if args.write:
        _results.write_block("overhead", table)
        if async_table is not None:
            _results.write_block("async", async_table)


def _table(rows, fwd) -> str:
    lines = [
        f"{'model':<10} {'variant':<14} {'µs/step':>9} {'× raw':>7} {'compile ms':>11}"
        f" {'× raw':>7} {'init ms':>8}"
    ]
    for name, variant, us, ratio, cms, cratio, ims in rows:
        lines.append(
            f"{name:<10} {variant:<14} {us:>9.1f} {ratio:>7.3f} {cms:>11.1f}"
            f" {cratio:>7.2f} {ims:>8.1f}"
        )
    med, ratio = fwd
    lines.append("")
    lines.append("tiny MLP forward call (inference)")
    for k, t in med.items():
        lines.append(f"{'':<10} {k:<14} {t:>9.1f} {ratio[k]:>7.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
