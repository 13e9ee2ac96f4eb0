"""PARTITION_NAME updates whichever metadata key core reads logical axis names from."""

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

from ramie import core
from ramie.transforms import PARTITION_NAME, vmap


class Dense(core.Module):
    def __init__(self, key, spelling):
        init = jax.random.normal(key, (2, 3))
        if spelling == "with_partitioning":
            init_fn = core.with_partitioning(lambda k, s: jax.random.normal(k, s), ("embed", "mlp"))
            self.w = core.Param(init_fn(key, (2, 3)))
        else:
            self.w = core.Param(init, **{spelling: ("embed", "mlp")})


@pytest.mark.parametrize(
    "spelling", ["with_partitioning", "sharding_names", "sharding", "sharding_metadata"]
)
def test_stacked_layers_name_the_new_axis_under_the_key_core_reads(spelling):
    keys = jax.random.split(jax.random.key(0), 4)
    stack = vmap(lambda k: Dense(k, spelling), transform_metadata={PARTITION_NAME: "layers"})(keys)
    assert stack.w.value.shape == (4, 2, 3)
    assert core.sharding_names(stack.w) == ("layers", "embed", "mlp")
    rules = (("layers", None), ("embed", None), ("mlp", "model"))
    spec = core.get_partition_spec(core.state(stack), rules=rules)
    assert spec["w"] == P(None, None, "model")


def test_inside_the_map_each_layer_sees_names_of_its_own_rank():
    keys = jax.random.split(jax.random.key(0), 3)
    stack = vmap(
        lambda k: Dense(k, "sharding_names"), transform_metadata={PARTITION_NAME: "layers"}
    )(keys)
    seen = []

    def look(layer, x):
        seen.append(core.sharding_names(layer.w))
        return x @ layer.w

    out = vmap(look, in_axes=(0, None), transform_metadata={PARTITION_NAME: "layers"})(
        stack, jnp.ones((2,))
    )
    assert out.shape == (3, 3)
    assert seen == [("embed", "mlp")]
    assert core.sharding_names(stack.w) == ("layers", "embed", "mlp")
