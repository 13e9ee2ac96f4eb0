"""The seed's "Module System" and "Functional API" walkthrough, in ramie.

Layers beyond a hand-written Linear come with ramie-layers; here small
stand-ins (a Dropout and a BatchNorm written in a few lines) show that the
object model carries RNG state and batch statistics.
"""

import jax
import jax.numpy as jnp
import numpy as np

from ramie import core as nn


class Linear(nn.Module):
    def __init__(self, din: int, dout: int, *, rngs: nn.Rngs):
        key = rngs.params()
        self.w = nn.Param(jax.random.uniform(key, (din, dout)))
        self.b = nn.Param(jnp.zeros((dout,)))
        self.din, self.dout = din, dout

    def __call__(self, x):
        return x @ self.w + self.b


class Count(nn.Variable):
    pass


class Counter(nn.Module):
    def __init__(self):
        self.count = Count(jnp.array(0))

    def __call__(self):
        self.count += 1


class TinyDropout(nn.Module):
    def __init__(self, rate: float, *, rngs: nn.Rngs):
        self.rate = rate
        self.rngs = rngs
        self.deterministic = False

    def __call__(self, x):
        if self.deterministic:
            return x
        keep = jax.random.bernoulli(self.rngs.dropout(), 1 - self.rate, x.shape)
        return jnp.where(keep, x / (1 - self.rate), 0)


class TinyBatchNorm(nn.Module):
    def __init__(self, n: int):
        self.mean = nn.BatchStat(jnp.zeros(n))
        self.scale = nn.Param(jnp.ones(n))
        self.use_running_average = False

    def __call__(self, x):
        if not self.use_running_average:
            self.mean.value = 0.9 * self.mean.value + 0.1 * x.mean(0)
        return (x - self.mean.value) * self.scale


class MLP(nn.Module):
    def __init__(self, din, dmid, dout, *, rngs):
        self.linear1 = Linear(din, dmid, rngs=rngs)
        self.dropout = TinyDropout(0.1, rngs=rngs)
        self.bn = TinyBatchNorm(dmid)
        self.linear2 = Linear(dmid, dout, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.gelu(self.dropout(self.bn(self.linear1(x))))
        return self.linear2(x)


class LoraParam(nn.Param):
    pass


class LoraLinear(nn.Module):
    def __init__(self, linear: Linear, rank: int, rngs: nn.Rngs):
        self.linear = linear
        self.A = LoraParam(jax.random.normal(rngs(), (linear.din, rank)))
        self.B = LoraParam(jax.random.normal(rngs(), (rank, linear.dout)))

    def __call__(self, x):
        return self.linear(x) + x @ self.A @ self.B


class StatefulLinear(nn.Module):
    def __init__(self, din, dout, *, rngs):
        self.w = nn.Param(jax.random.uniform(rngs(), (din, dout)))
        self.b = nn.Param(jnp.zeros((dout,)))
        self.count = Count(jnp.array(0, dtype=jnp.uint32))

    def __call__(self, x):
        self.count += 1
        return x @ self.w + self.b


def test_linear_is_eager_and_holds_its_state():
    model = Linear(2, 5, rngs=nn.Rngs(params=0))
    y = model(x=jnp.ones((1, 2)))
    assert y.shape == (1, 5)
    np.testing.assert_allclose(y, jnp.ones((1, 2)) @ model.w.value, rtol=1e-6)
    assert (model.din, model.dout) == (2, 5)


def test_counter_counts():
    counter = Counter()
    assert int(counter.count.value) == 0
    counter()
    counter()
    assert int(counter.count.value) == 2


def test_nested_mlp_runs_and_updates_rng_and_stats():
    model = MLP(2, 16, 5, rngs=nn.Rngs(0))
    x = jnp.ones((3, 2))
    counts_before = int(model.dropout.rngs.default.count.value)
    y1 = model(x)
    y2 = model(x)
    assert y1.shape == (3, 5)
    assert int(model.dropout.rngs.default.count.value) == counts_before + 2
    assert not np.allclose(y1, y2)  # fresh dropout masks
    assert float(jnp.abs(model.bn.mean.value).sum()) > 0
    model.eval()
    mean = model.bn.mean.value
    np.testing.assert_allclose(model(x), model(x))
    assert model.bn.mean.value is mean  # eval never touches batch statistics


def test_lora_surgery_shares_the_original_linears():
    rngs = nn.Rngs(0)
    model = MLP(2, 32, 5, rngs=rngs)
    original = model.linear1
    model.linear1 = LoraLinear(model.linear1, 4, rngs=rngs)
    model.linear2 = LoraLinear(model.linear2, 4, rngs=rngs)
    y = model(x=jnp.ones((3, 2)))
    assert y.shape == (3, 5)
    assert model.linear1.linear is original
    _, lora, rest = nn.split(model, LoraParam, ...)
    assert set(lora.flat_state()) == {
        ("linear1", "A"),
        ("linear1", "B"),
        ("linear2", "A"),
        ("linear2", "B"),
    }
    assert ("linear1", "linear", "w") in rest.flat_state()
    # LoraParam is a Param too: a Param filter sees both.
    assert ("linear1", "A") in nn.state(model, nn.Param).flat_state()


def test_stateful_linear_split_merge_update_under_jax_jit():
    model = StatefulLinear(din=3, dout=5, rngs=nn.Rngs(0))
    model(jnp.ones((1, 3)))
    assert int(model.count.value) == 1
    graphdef, state = nn.split(model)

    @jax.jit
    def forward(graphdef: nn.GraphDef, state: nn.State, x):
        model = nn.merge(graphdef, state)
        y = model(x)
        _, state = nn.split(model)
        return y, state

    y, state = forward(graphdef, state, x=jnp.ones((1, 3)))
    nn.update(model, state)
    assert y.shape == (1, 5)
    assert int(model.count.value) == 2
    assert model.count.value.dtype == jnp.uint32


def test_filters_split_params_and_counts_and_merge_back():
    model = StatefulLinear(din=3, dout=5, rngs=nn.Rngs(0))
    graphdef, params, counts = nn.split(model, nn.Param, Count)
    assert set(params) == {"w", "b"} and set(counts) == {"count"}
    model2 = nn.merge(graphdef, params, counts)
    nn.update(model, params, counts)
    np.testing.assert_array_equal(model2.w.value, model.w.value)


def test_a_training_step_with_plain_jax_grad():
    model = MLP(2, 16, 1, rngs=nn.Rngs(0))
    graphdef, params, rest = nn.split(model, nn.Param, ...)
    x = jax.random.normal(jax.random.key(1), (32, 2))
    y = x.sum(1, keepdims=True)

    @jax.jit
    def step(params, rest):
        def loss_fn(params):
            m = nn.merge(graphdef, params, rest)
            loss = jnp.mean((m(x) - y) ** 2)
            return loss, nn.split(m, nn.Param, ...)[2]

        (loss, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        params = jax.tree.map(lambda p, g: p - 0.05 * g, params, grads)
        return loss, params, new_rest

    w_before = model.linear1.w.value
    losses = []
    for _ in range(30):
        loss, params, rest = step(params, rest)
        losses.append(float(loss))
    nn.update(model, params, rest)
    assert losses[-1] < losses[0] * 0.5
    assert isinstance(model.linear1.w, nn.Param)
    assert not np.allclose(model.linear1.w.value, w_before)
