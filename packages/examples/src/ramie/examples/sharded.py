"""Data-parallel, fully sharded or tensor-parallel training over a jax.sharding.Mesh.

A small Transformer block stack (or an MLP with ``--model mlp``) learns a toy
token mapping. Every parameter names its dimensions (``embed``, ``mlp``,
``heads``, ``vocab``) in its metadata; ``--strategy`` only changes the
``logical_axis_rules`` that map those names onto a one-axis mesh, and the
batch's ``batch`` axis with them:

- ``dp``: the batch is split over the devices, parameters are replicated;
- ``fsdp``: the batch and every parameter's ``embed`` dimension are split;
- ``tp``: the batch is replicated, ``mlp``, ``heads`` and ``vocab`` dimensions are split.

The model is built straight into its shardings (``nn.sharded_init``) and
trained by ``nn.jit``; JAX inserts the collectives. ``--devices N`` makes N
virtual CPU devices per process; ``--processes P`` starts P local processes
joined by ``jax.distributed`` on 127.0.0.1 (gloo collectives), each feeding its
rows of the global batch. With the same ``--seed`` every configuration prints
the same losses::

    python -m ramie.examples.sharded --devices 8 --strategy fsdp
    python -m ramie.examples.sharded --devices 2 --processes 2 --strategy dp
    python -m ramie.examples.sharded --cluster   # on a real cluster, once per host
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np
import optax
from jax.sharding import AxisType, NamedSharding

from ramie import nn

#: Per strategy: the mesh axis name and the logical axis rules.
STRATEGIES = {
    "dp": ("data", (("batch", "data"),)),
    "fsdp": ("fsdp", (("batch", "fsdp"), ("embed", "fsdp"))),
    "tp": ("model", (("mlp", "model"), ("heads", "model"), ("vocab", "model"))),
}
TIMED_OUT = (
    "sharded: the {count} processes did not finish within --timeout {timeout} s; stopped them"
)
NOT_DIVISIBLE = (
    "--{flag} {value} cannot be split over {devices} devices: make it a multiple of the "
    "device count (or use fewer devices)"
)


def names(*axes: str | None) -> dict:
    """A layer's ``*_metadata`` keyword giving a parameter its logical axis names.

    >>> names("embed", "mlp")
    {'sharding_names': ('embed', 'mlp')}
    """
    return {"sharding_names": axes}


class Block(nn.Module):
    """Pre-LayerNorm: ``x + attention(norm(x))`` (unless ``attention=False``), then an MLP."""

    def __init__(self, features: int, heads: int, hidden: int, attention: bool, *, rngs):
        norm = {"scale_metadata": names("embed"), "bias_metadata": names("embed")}
        self.attention = None
        if attention:
            self.norm1 = nn.LayerNorm(features, **norm, rngs=rngs)
            self.attention = nn.MultiHeadAttention(
                heads,
                features,
                deterministic=True,
                kernel_metadata=names("embed", "heads", None),
                bias_metadata=names("heads", None),
                out_kernel_metadata=names("heads", None, "embed"),
                out_bias_metadata=names("embed"),
                rngs=rngs,
            )
        self.norm2 = nn.LayerNorm(features, **norm, rngs=rngs)
        # with_partitioning and the *_metadata keywords give the same kind of Param
        self.up = nn.Linear(
            features,
            hidden,
            kernel_init=nn.with_partitioning(jax.nn.initializers.lecun_normal(), ("embed", "mlp")),
            bias_init=nn.with_partitioning(jax.nn.initializers.zeros, ("mlp",)),
            rngs=rngs,
        )
        self.down = nn.Linear(
            hidden,
            features,
            kernel_metadata=names("mlp", "embed"),
            bias_metadata=names("embed"),
            rngs=rngs,
        )

    def __call__(self, x):
        if self.attention is not None:
            x = x + self.attention(self.norm1(x))
        h = nn.with_sharding_constraint(nn.gelu(self.up(self.norm2(x))), ("batch", None, "mlp"))
        return nn.with_sharding_constraint(x + self.down(h), ("batch", None, "embed"))


class Model(nn.Module):
    """Token embedding, ``layers`` Blocks, a final LayerNorm and a vocabulary projection."""

    def __init__(self, args: argparse.Namespace, *, rngs: nn.Rngs):
        f = args.features
        self.embed = nn.Embed(args.vocab, f, embedding_metadata=names("vocab", "embed"), rngs=rngs)
        attention = args.model == "transformer"
        self.blocks = [
            Block(f, args.heads, args.hidden, attention, rngs=rngs) for _ in range(args.layers)
        ]
        self.norm = nn.LayerNorm(
            f, scale_metadata=names("embed"), bias_metadata=names("embed"), rngs=rngs
        )
        self.head = nn.Linear(
            f, args.vocab, kernel_metadata=names("embed", "vocab"), bias_metadata=names("vocab"),
            rngs=rngs,
        )  # fmt: skip

    def __call__(self, tokens):
        x = nn.with_sharding_constraint(self.embed(tokens), ("batch", None, "embed"))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def batch(args: argparse.Namespace, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The global batch of ``step``: random tokens, each to be mapped to its successor.

    >>> tokens, targets = batch(parse(["--batch-size", "4", "--vocab", "8"]), step=0)
    >>> tokens.shape, bool(((tokens + 1) % 8 == targets).all())
    ((4, 8), True)
    """
    rng = np.random.default_rng([args.seed, step])
    tokens = rng.integers(0, args.vocab, (args.batch_size, args.length), dtype=np.int32)
    return tokens, (tokens + 1) % args.vocab


def place(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """This process's rows of a global batch, assembled into one global jax.Array."""
    index = sharding.addressable_devices_indices_map(array.shape)
    rows = [slice(*s[0].indices(array.shape[0])[:2]) for s in index.values()]
    start, stop = min(r.start for r in rows), max(r.stop for r in rows)
    return jax.make_array_from_process_local_data(sharding, array[start:stop], array.shape)


@nn.jit
def train_step(model: Model, optimizer: nn.Optimizer, tokens, targets):
    def loss_fn(model):
        logits = model(tokens)
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()

    loss, grads = nn.value_and_grad(loss_fn)(model)
    optimizer.update(grads)
    return loss


def make_mesh(strategy: str) -> jax.sharding.Mesh:
    """A one-axis mesh over every device of every process, named for ``strategy``."""
    axis = STRATEGIES[strategy][0]
    return jax.make_mesh((jax.device_count(),), (axis,), axis_types=(AxisType.Auto,))


def build(args: argparse.Namespace, mesh: jax.sharding.Mesh) -> tuple[Model, nn.Optimizer]:
    """The model built into its shardings, and its optimizer (whose state follows them)."""
    rules = STRATEGIES[args.strategy][1]
    model = nn.sharded_init(lambda: Model(args, rngs=nn.Rngs(args.seed)), mesh, rules)
    return model, nn.Optimizer(model, optax.adam(args.learning_rate), wrt=nn.Param)


def _check_divisible(args: argparse.Namespace) -> None:
    devices = jax.device_count()
    sizes = {"batch-size": args.batch_size, "features": args.features, "hidden": args.hidden}
    sizes |= {"heads": args.heads, "vocab": args.vocab}
    for flag, value in sizes.items():
        if value % devices:
            raise SystemExit(NOT_DIVISIBLE.format(flag=flag, value=value, devices=devices))


def train(args: argparse.Namespace) -> tuple[Model, nn.Optimizer, float]:
    """Train for ``args.steps`` steps over every process's devices.

    Returns the model, its optimizer and the final loss.
    """
    _check_divisible(args)
    mesh = make_mesh(args.strategy)
    rules = STRATEGIES[args.strategy][1]
    model, optimizer = build(args, mesh)
    data = NamedSharding(mesh, nn.logical_to_mesh_axes(("batch", None), rules))
    show = jax.process_index() == 0
    loss = float("nan")
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        for step in range(args.steps):
            tokens, targets = batch(args, step)
            value = train_step(model, optimizer, place(tokens, data), place(targets, data))
            # jaxlib < 0.12 can deadlock unless each sharded step is waited for
            loss = float(np.asarray(jax.block_until_ready(value).addressable_data(0)))
            if show:
                print(f"step {step}  loss {loss:.8f}", flush=True)
    if show:
        print(f"final loss {loss:.8f}", flush=True)
    return model, optimizer, loss


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def launch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Start ``args.processes`` local processes of this script and wait for them all.

    A test launcher only: on a real cluster start the script once per host
    with ``--cluster``. If one process fails (or this one is interrupted or
    times out) the others are stopped, so none is left behind.
    """
    port = _free_port()
    command = [sys.executable, "-m", "ramie.examples.sharded", *argv]
    command += ["--coordinator", f"127.0.0.1:{port}"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    children = [
        subprocess.Popen([*command, "--process-id", str(i)], env=env, preexec_fn=_die_with_parent)
        for i in range(args.processes)
    ]

    def stop(*_):
        for child in children:
            if child.poll() is None:
                child.kill()  # jax.distributed catches SIGTERM
        for child in children:
            child.wait()

    previous = signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(143)))
    deadline = time.monotonic() + args.timeout
    try:  # until all succeed, one fails, or time runs out
        while time.monotonic() < deadline:
            codes = [child.poll() for child in children]
            if any(c for c in codes) or all(c == 0 for c in codes):
                break
            time.sleep(0.1)
        else:
            print(TIMED_OUT.format(count=len(children), timeout=args.timeout), file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        signal.signal(signal.SIGTERM, previous)
    codes = [child.returncode for child in children]
    return 0 if all(c == 0 for c in codes) else max(abs(c or 1) for c in codes)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategy", choices=sorted(STRATEGIES), default="dp")
    p.add_argument("--model", choices=("transformer", "mlp"), default="transformer")
    p.add_argument("--devices", type=int, default=None, help="virtual CPU devices per process")
    p.add_argument("--processes", type=int, default=1, help="local processes (jax.distributed)")
    p.add_argument("--cluster", action="store_true", help="jax.distributed.initialize() as is")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16, help="the global batch")
    p.add_argument("--length", type=int, default=8)
    p.add_argument("--vocab", type=int, default=32)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--learning-rate", type=float, default=1e-2)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for --processes runs")
    p.add_argument("--coordinator", help=argparse.SUPPRESS)  # set by the launcher
    p.add_argument("--process-id", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags; launch the local processes, or train in this one."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.processes > 1 and args.process_id is None:
        return launch(args, argv)
    if args.devices is not None:  # before the backend starts (a no-op off CPU)
        jax.config.update("jax_num_cpu_devices", args.devices)
    if args.process_id is not None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(args.coordinator, args.processes, args.process_id)
    elif args.cluster:  # the cluster's own coordinator (SLURM, Kubernetes, TPU pods, ...)
        jax.distributed.initialize()
    try:
        train(args)
    finally:
        if args.process_id is not None or args.cluster:
            jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
