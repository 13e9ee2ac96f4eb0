"""ramie.examples.sharded: the same losses on 1 device, 8 devices (dp, fsdp, tp) and
2 processes x 2 devices; parameter shardings as their metadata says.

Each configuration runs in a subprocess (the device count is fixed when jax starts),
under ``timeout -k`` so that even a hung jax.distributed run ends.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import jax
import pytest

FLAGS = ["--steps", "3", "--layers", "1", "--seed", "3"]
STEP = re.compile(r"step (\d+)  loss (\d+\.\d{8})")
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
ENV.pop("XLA_FLAGS", None)


def run(*args: str, timeout: int = 300) -> list[str]:
    """The printed lines of ``python -m ramie.examples.sharded`` under ``timeout -k 5``."""
    command = ["timeout", "-k", "5", str(timeout), sys.executable, "-m", "ramie.examples.sharded"]
    result = subprocess.run(
        [*command, *args], env=ENV, capture_output=True, text=True, timeout=timeout + 30
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout.splitlines()


def losses(lines: list[str]) -> list[float]:
    steps = [STEP.fullmatch(line) for line in lines if line.startswith("step ")]
    assert all(steps) and [int(m.group(1)) for m in steps] == list(range(len(steps)))
    final = re.fullmatch(r"final loss (\d+\.\d{8})", lines[-1])
    assert final and final.group(1) == steps[-1].group(2)
    return [float(m.group(2)) for m in steps]


# Every strategy on 8 devices in one process, with the shardings checked leaf by leaf
# (and the optimizer state's, under fsdp) after training.
EIGHT = """
import sys
import jax
from jax.sharding import NamedSharding, PartitionSpec as P
from ramie import nn
from ramie.examples import sharded

jax.config.update("jax_num_cpu_devices", 8)
for strategy in ("dp", "fsdp", "tp"):
    args = sharded.parse([*sys.argv[1:], "--strategy", strategy])
    print("strategy", strategy)
    model, optimizer, _ = sharded.train(args)  # the shardings after training
    mesh = sharded.make_mesh(strategy)
    rules = sharded.STRATEGIES[strategy][1]
    wanted = nn.get_named_sharding(nn.state(model), mesh, rules)
    checked = 0
    for path, variable in nn.state(model).flat_state().items():
        node = wanted
        for key in path:
            node = node[key]
        value = variable.value
        assert value.sharding.is_equivalent_to(node, value.ndim), (strategy, path, value.sharding)
        names = nn.sharding_names(variable)
        shard = {s.data.shape for s in value.addressable_shards}
        expected = tuple(
            d // 8 if n is not None and node.spec[i] is not None else d
            for i, (d, n) in enumerate(zip(value.shape, names or (None,) * value.ndim))
        )
        assert shard == {expected}, (strategy, path, shard, expected)
        checked += 1
    if strategy == "fsdp":
        kernel = model.blocks[0].up.kernel.value
        mu = optimizer.opt_state[0].mu["blocks"][0]["up"]["kernel"].value
        assert kernel.sharding.is_equivalent_to(NamedSharding(mesh, P("fsdp", None)), 2)
        assert mu.sharding.is_equivalent_to(kernel.sharding, 2), mu.sharding
    print("checked", checked)
"""


@pytest.fixture(scope="module")
def one_device() -> list[float]:
    return losses(run("--devices", "1", *FLAGS))


def test_eight_devices_dp_fsdp_tp_match_one_device(one_device):
    command = ["timeout", "-k", "5", "400", sys.executable, "-c", EIGHT, *FLAGS]
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=430)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    out = result.stdout.splitlines()
    starts = [i for i, line in enumerate(out) if line.startswith("strategy ")]
    assert [out[i] for i in starts] == ["strategy dp", "strategy fsdp", "strategy tp"]
    for start, end in zip(starts, [*starts[1:], len(out)], strict=True):
        part = out[start + 1 : end]
        assert part[-1].startswith("checked ") and int(part[-1].split()[1]) >= 20
        assert losses(part[:-1]) == pytest.approx(one_device, abs=1e-5), out[start]
    assert one_device[-1] < one_device[0]  # it learns


def test_two_processes_of_two_devices_match_one_device(one_device):
    lines = run("--devices", "2", "--processes", "2", "--timeout", "240", *FLAGS, timeout=270)
    assert losses([line for line in lines if not line.startswith("[Gloo]")]) == pytest.approx(
        one_device, abs=1e-5
    )


def test_the_mlp_model_and_an_indivisible_size():
    mlp = losses(run("--devices", "1", "--model", "mlp", *FLAGS))
    assert len(mlp) == 3 and mlp[-1] < mlp[0]
    command = ["timeout", "-k", "5", "120", sys.executable, "-m", "ramie.examples.sharded"]
    result = subprocess.run(
        [*command, "--devices", "8", "--batch-size", "12", *FLAGS],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "--batch-size 12 cannot be split over 8 devices: make it a multiple of the device "
        "count (or use fewer devices)"
    )


# -- in this process (whatever devices it has) ---------------------------------------
# layer: (constructor, its parameter's keyword prefix and attribute path, the names)
LAYERS = {
    "Linear": (lambda nn, **kw: nn.Linear(4, 8, **kw), "kernel", "kernel", ("embed", "mlp")),
    "Conv": (
        lambda nn, **kw: nn.Conv(4, 8, (3, 3), **kw), "kernel", "kernel",
        (None, None, "embed", "mlp"),
    ),
    "Embed": (lambda nn, **kw: nn.Embed(16, 4, **kw), "embedding", "embedding", ("vocab", "embed")),
    "LayerNorm": (lambda nn, **kw: nn.LayerNorm(4, **kw), "scale", "scale", ("embed",)),
    "MultiHeadAttention": (
        lambda nn, **kw: nn.MultiHeadAttention(2, 4, decode=False, **kw), "kernel",
        "query.kernel", ("embed", "heads", None),
    ),
}  # fmt: skip


def _layers(kind: str):
    """The layer's parameter once with with_partitioning, once with its *_metadata keyword."""
    from ramie import nn

    make, prefix, attribute, names = LAYERS[kind]
    init = nn.with_partitioning(jax.nn.initializers.normal(), names)
    wrapped = make(nn, rngs=nn.Rngs(0), **{f"{prefix}_init": init})
    keyword = make(nn, rngs=nn.Rngs(0), **{f"{prefix}_metadata": {"sharding_names": names}})
    for name in attribute.split("."):
        wrapped, keyword = getattr(wrapped, name), getattr(keyword, name)
    return wrapped, keyword


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_with_partitioning_and_the_metadata_keywords_agree_on_every_layer(kind):
    wrapped, keyword = _layers(kind)
    assert type(wrapped) is type(keyword)
    assert wrapped.metadata == keyword.metadata and wrapped.shape == keyword.shape
    assert len(nn_names(wrapped)) == wrapped.ndim


def nn_names(variable):
    from ramie import nn

    return nn.sharding_names(variable)


def test_eval_shape_and_jit_honour_the_metadata():
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    from ramie import nn
    from ramie.examples import sharded

    args = sharded.parse(["--layers", "1", "--vocab", "8", "--features", "8", "--hidden", "8"])
    mesh = jax.make_mesh((jax.device_count(),), ("model",), axis_types=(AxisType.Explicit,))
    rules = sharded.STRATEGIES["tp"][1]
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules), nn.use_eager_sharding():
        abstract = nn.eval_shape(lambda: sharded.Model(args, rngs=nn.Rngs(0)))
    up = abstract.blocks[0].up.kernel.value  # with_partitioning's
    head = abstract.head.kernel.value  # kernel_metadata's: eager sharding needs the wrapper
    assert isinstance(up, jax.ShapeDtypeStruct) and up.sharding.spec == P(None, "model")
    assert head.sharding is None or head.sharding.spec == P(None, None)

    model = sharded.Model(args, rngs=nn.Rngs(0))
    shardings = nn.get_named_sharding(model, mesh, rules)

    @nn.jit(in_shardings=(shardings,))
    def scale(model):
        model.head.kernel.value = model.head.kernel.value * 2

    before = jax.numpy.array(model.head.kernel.value)
    scale(model)
    assert model.head.kernel.value.sharding == NamedSharding(mesh, P(None, "model"))
    assert (model.head.kernel.value == 2 * before).all()
