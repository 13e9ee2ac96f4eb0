"""The seed's programs run with ramie's layers: the MLP (Linear, Dropout, BatchNorm, gelu),
LoRA model surgery, and Sequential with a shared module."""

import jax
import jax.numpy as jnp
import numpy as np

from ramie import layers
from ramie.core import BatchStat, Module, Param, Rngs, merge, split, state


class MLP(Module):
    def __init__(self, din, dmid, dout, *, rngs):
        self.linear1 = layers.Linear(din, dmid, rngs=rngs)
        self.dropout = layers.Dropout(rate=0.1, rngs=rngs)
        self.bn = layers.BatchNorm(dmid, rngs=rngs)
        self.linear2 = layers.Linear(dmid, dout, rngs=rngs)

    def __call__(self, x):
        x = layers.gelu(self.dropout(self.bn(self.linear1(x))))
        return self.linear2(x)


def test_mlp_trains_with_jax_grad_and_updates_batch_stats():
    model = MLP(2, 16, 5, rngs=Rngs(0))
    assert model(jnp.ones((3, 2))).shape == (3, 5)
    graphdef, params, rest = split(model, Param, ...)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 2)), jnp.float32)
    y = jnp.ones((8, 5))

    @jax.jit
    def step(params, rest):
        def loss(params):
            m = merge(graphdef, params, rest)
            loss = jnp.mean((m(x) - y) ** 2)
            return loss, split(m, Param, ...)[2]

        (value, rest), grads = jax.value_and_grad(loss, has_aux=True)(params)
        params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
        return value, params, rest

    losses = []
    for _ in range(20):
        value, params, rest = step(params, rest)
        losses.append(float(value))
    assert losses[-1] < losses[0] * 0.5
    before = state(model, BatchStat)
    model = merge(graphdef, params, rest)
    after = state(model, BatchStat)
    assert not np.allclose(before.bn.mean.value, after.bn.mean.value)
    model.eval()
    assert model.dropout.deterministic and model.bn.use_running_average
    out1, out2 = model(x), model(x)
    np.testing.assert_array_equal(out1, out2)  # no dropout, no statistics change
    np.testing.assert_array_equal(state(model, BatchStat).bn.var.value, after.bn.var.value)


def test_lora_model_surgery():
    rngs = Rngs(0)
    model = MLP(2, 32, 5, rngs=rngs)
    model.eval()
    x = jnp.ones((3, 2))
    y_before = model(x)
    model.linear1 = layers.LoRA(2, 4, 32, base_module=model.linear1, rngs=rngs)
    model.linear2 = layers.LoRA(32, 4, 5, base_module=model.linear2, rngs=rngs)
    np.testing.assert_allclose(model(x), y_before, rtol=1e-6)  # lora_b starts at zero
    lora_params, others = split(model, layers.LoRAParam, ...)[1:]
    assert sorted(lora_params.flat_state()) == [
        ("linear1", "lora_a"), ("linear1", "lora_b"), ("linear2", "lora_a"), ("linear2", "lora_b"),
    ]  # fmt: skip
    assert ("linear1", "base_module", "kernel") in others.flat_state()
    model.linear1.lora_b.value = jnp.ones((4, 32))
    assert not np.allclose(model(x), y_before)


def test_sequential_with_a_shared_module_keeps_one_copy_of_its_parameters():
    rngs = Rngs(0)
    shared = layers.Linear(4, 4, rngs=rngs)
    model = layers.Sequential(shared, layers.relu, shared)
    graphdef, params = split(model)
    assert sorted(params.flat_state()) == [("layers", 0, "bias"), ("layers", 0, "kernel")]
    copy = merge(graphdef, params)
    assert copy.layers[0] is copy.layers[2]
    x = jnp.ones((1, 4))
    expected = shared(jax.nn.relu(shared(x)))
    np.testing.assert_allclose(model(x), expected, rtol=1e-6)


def test_nn_facade_names_are_provided():
    planned = [
        "Linear", "LinearGeneral", "Einsum", "Embed", "Conv", "ConvTranspose", "BatchNorm",
        "LayerNorm", "RMSNorm", "GroupNorm", "InstanceNorm", "Dropout", "MultiHeadAttention",
        "dot_product_attention", "make_attention_mask", "make_causal_mask", "combine_masks",
        "LSTMCell", "GRUCell", "SimpleCell", "RNN", "Bidirectional", "LoRA", "LoRALinear",
        "LoRAParam", "Sequential", "PReLU", "avg_pool", "max_pool", "min_pool", "pool", "relu",
        "gelu", "silu", "swish", "softmax", "log_softmax", "sigmoid", "tanh", "elu",
        "leaky_relu", "one_hot", "initializers",
    ]  # fmt: skip
    missing = [n for n in planned if n not in layers.__all__ or not hasattr(layers, n)]
    assert missing == []
    assert layers.relu is jax.nn.relu
    assert layers.initializers.lecun_normal is jax.nn.initializers.lecun_normal
