"""Memory of a training run: ramie's jit against raw jax.jit, donated and not.

The deep MLP of ``overhead.py`` (24 blocks of Linear(64) + BatchNorm + Dropout,
optax adam, batch 8) is trained for 200 steps. Each variant runs in its own
child process, which imports everything first (ramie, optax, both models), so
the processes differ only in the variant they run. Reported per variant:

- peak RSS of the process (``ru_maxrss``) and its growth over the 200 steps
  (peak minus the RSS after imports and data, before the model is built);
- the XLA buffer footprint: the bytes of every live ``jax.Array``
  (``jax.live_arrays()``) after each step, the largest such total (with
  asynchronous dispatch off every step has finished when it is counted), and
  the number of live arrays at the end (XLA's temporaries inside a step show
  in the peak RSS only).

Each variant runs in ``--repeats`` fresh processes (3), the variants in turn, and
the medians are reported: XLA's compile alone takes 106-172 MiB of native memory
for one and the same program from process to process on this machine (measured),
so a single process per variant cannot tell a 5% difference.

Run: python bench/memory.py [--steps N] [--repeats R] [--write]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import _results

VARIANTS = ["raw donated", "ramie donated", "raw undonated", "ramie undonated"]


def _rss_now_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(variant: str, steps: int) -> dict:
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", False)
    import optax

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _overhead_models as M
    import overhead

    x, y = overhead._data((8, 64), 64, M.mse)
    gc.collect()
    rss0 = _rss_now_kib()
    tx = optax.adam(1e-3)
    donate = variant.endswith(" donated")
    if variant.startswith("raw"):
        v = overhead.raw_variant(M.RawDeepMLP(), tx, donate)
    else:
        v = overhead.ramie_variant(M.DeepMLP, M.mse, tx, donate)
    v.setup(x, y)
    gc.collect()
    rss1 = _rss_now_kib()
    peak_live = 0
    for _ in range(steps):
        jax.block_until_ready(v(x, y))
        # No list of the arrays kept across steps: it would keep the last step's alive.
        peak_live = max(peak_live, sum(a.nbytes for a in jax.live_arrays() if not a.is_deleted()))
    gc.collect()
    live = [a for a in jax.live_arrays() if not a.is_deleted()]
    return {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024,
        "setup_mib": (rss1 - rss0) / 1024,
        "steps_mib": (_rss_now_kib() - rss1) / 1024,
        "peak_live_kib": peak_live / 1024,
        "end_live_kib": sum(a.nbytes for a in live) / 1024,
        "end_live_count": len(live),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="processes per variant")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps)))
        return
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):  # the variants in turn, each in a fresh process
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", variant, "--steps", str(args.steps)],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            ).stdout
            runs[variant].append(json.loads(out.strip().splitlines()[-1]))
            print(variant, runs[variant][-1], file=sys.stderr, flush=True)
    results = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in runs.items()}
    lines = [
        f"deep MLP, {args.steps} steps of adam (batch 8); medians of {args.repeats} processes"
        " per variant (peak RSS range in brackets)",
        f"{'variant':<16} {'peak RSS MiB':>12} {'range':>13} {'× raw':>6} {'growth MiB':>10}"
        f" {'peak live KiB':>13} {'× raw':>6} {'end live KiB':>12} {'arrays':>6}",
    ]
    for variant in VARIANTS:
        r = results[variant]
        base = results["raw " + variant.split(" ", 1)[1]]
        peaks = [x["peak_rss_mib"] for x in runs[variant]]
        lines.append(
            f"{variant:<16} {r['peak_rss_mib']:>12.1f} {f'[{min(peaks):.0f}-{max(peaks):.0f}]':>13}"
            f" {r['peak_rss_mib'] / base['peak_rss_mib']:>6.3f} {r['rss_growth_mib']:>10.1f}"
            f" {r['peak_live_kib']:>13.1f} {r['peak_live_kib'] / base['peak_live_kib']:>6.3f}"
            f" {r['end_live_kib']:>12.1f} {r['end_live_count']:>6.0f}"
        )
    table = "\n".join(lines)
    print(table)
    if args.write:
        _results.write_block("memory", table)


if __name__ == "__main__":
    main()
