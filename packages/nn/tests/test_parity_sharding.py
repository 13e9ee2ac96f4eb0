"""Flax NNX's out_sharding keywords under an Explicit mesh (8 CPU devices, see conftest.py)."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from ramie import nn


def test_out_sharding_reaches_the_result():
    mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    x = jax.device_put(jnp.ones((8, 4)), NamedSharding(mesh, P("data", None)))
    with jax.set_mesh(mesh):
        lin = nn.Linear(4, 6, rngs=nn.Rngs(0))
        y = lin(x, out_sharding=P("data", "model"))
        mha = nn.MultiHeadAttention(2, 4, rngs=nn.Rngs(0))
        seq = jax.device_put(jnp.ones((4, 3, 4)), NamedSharding(mesh, P("data", None, None)))
        z = mha(seq, out_sharding=P("data", None, None))
        dropped = nn.Dropout(0.5, rngs=nn.Rngs(1))(y)
    assert y.sharding.spec == P("data", "model")
    np.testing.assert_allclose(y, lin(jnp.ones((8, 4))), rtol=1e-6)
    assert z.sharding.spec == P("data", None, None) and z.shape == (4, 3, 4)
    assert dropped.sharding.spec == P("data", "model")
