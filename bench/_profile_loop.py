"""One variant of ``overhead.py``'s asynchronous loop, alone, for a profiler to watch.

Not a benchmark (``nox -s bench`` skips ``_``-files): it runs a single variant, raw
or ramie, donated or not, for many steps with JAX's asynchronous dispatch on,
blocking every ``--block`` steps, and prints µs per step. Run it under ``perf`` (works
on this machine; py-spy ``--native`` slows the process too much), e.g.::

    perf record -F 1999 -o ramie.perf -- python bench/_profile_loop.py ramie --model tiny
    perf record -F 1999 -o raw.perf -- python bench/_profile_loop.py raw --model tiny
    perf report -i ramie.perf --no-children --sort sym

and compare the two reports symbol by symbol (issue 16's notes used it that way).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.argv.append("--async-loop")  # overhead.py turns dispatch on when it sees this flag
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import optax  # noqa: E402
import overhead as O  # noqa: E402

MODELS = {"tiny": 0, "deep": 1, "cnn": 2}


def main() -> None:
    sys.argv.remove("--async-loop")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=["raw", "ramie"])
    parser.add_argument("--model", choices=list(MODELS), default="tiny")
    parser.add_argument("--undonated", action="store_true", help="do not donate")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--block", type=int, default=400, help="block every N steps")
    args = parser.parse_args()
    _, raw, make, loss, xshape, ydim, _ = O.MODELS[MODELS[args.model]]
    x, y = O._data(xshape, ydim, loss)
    tx = optax.adam(1e-3)
    donate = not args.undonated
    if args.variant == "raw":
        v = O.raw_variant(raw, tx, donate)
    else:
        v = O.ramie_variant(make, loss, tx, donate)
    v.setup(x, y)
    for _ in range(min(args.steps, 1000)):  # warm up, so the profile is the loop
        v(x, y)
    jax.block_until_ready(v(x, y))
    t0 = time.perf_counter()
    for i in range(args.steps):
        out = v(x, y)
        if i % args.block == args.block - 1:
            jax.block_until_ready(out)
    jax.block_until_ready(out)
    us = (time.perf_counter() - t0) / args.steps * 1e6
    print(f"{args.variant} {args.model} donated={donate}: {us:.2f} µs/step")


if __name__ == "__main__":
    main()
