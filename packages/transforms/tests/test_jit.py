"""jit: state propagation, sharing, caching, donation, shardings and its errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from transform_models import MLP, SGD, BatchNorm, Linear

from ramie import core
from ramie.transforms import StructureChangedError, jit
from ramie.transforms import _errors as terrors


class Counter(core.Module):
    def __init__(self):
        self.n = core.Variable(jnp.array(0))


def test_mutations_propagate_batch_stats_and_rng_counters():
    model = MLP(2, 8, 3, rngs=core.Rngs(0))

    @jit
    def forward(model, x):
        return model(x)

    x = jax.random.normal(jax.random.key(1), (16, 2))
    count = int(model.dropout.rngs.dropout.count.value)  # two draws made the kernels
    eager = MLP(2, 8, 3, rngs=core.Rngs(0))
    y_eager = eager(x)
    y = forward(model, x)
    np.testing.assert_allclose(y, y_eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.bn.mean.value, eager.bn.mean.value, rtol=1e-6)
    assert int(model.dropout.rngs.dropout.count.value) == count + 1
    forward(model, x)
    assert int(model.dropout.rngs.dropout.count.value) == count + 2
    assert not np.allclose(model.bn.mean.value, eager.bn.mean.value)


def test_shared_references_across_arguments_stay_shared():
    model = MLP(2, 4, 1, rngs=core.Rngs(0))
    opt = SGD(model)
    assert opt.model is model

    @jit
    def step(model, opt):
        grads = jax.tree.map(jnp.ones_like, core.state(model, core.Param))
        opt.update(grads)

    before = np.asarray(model.linear1.bias.value)
    step(model, opt)
    step(model, opt)
    assert opt.model is model
    np.testing.assert_allclose(model.linear1.bias.value, before - 0.1 * (1 + 1.9), rtol=1e-6)
    assert int(opt.step.value) == 2


def test_traces_once_and_reuses_compilation_after_unrelated_structure_changes():
    traces = []

    @jit
    def f(c, x):
        traces.append(1)
        c.n.value = c.n.value + x
        return c.n.value

    c = Counter()
    for k in range(3):
        f(c, jnp.array(k))
    other = Counter()
    core.flatten(other)
    other.extra = 1  # a structural change elsewhere re-walks c's graph: no retrace
    f(c, jnp.array(5))
    assert len(traces) == 1
    assert int(c.n.value) == 0 + 1 + 2 + 5


def test_structure_change_of_the_argument_retraces():
    traces = []

    @jit
    def f(m, x):
        traces.append(1)
        return m(x)

    m = Linear(2, 3, rngs=core.Rngs(0))
    f(m, jnp.ones((1, 2)))
    m.kernel = core.Param(jnp.ones((2, 5)))
    m.bias = core.Param(jnp.zeros(5))
    assert f(m, jnp.ones((1, 2))).shape == (1, 5)
    assert len(traces) == 2


def test_returns_input_objects_by_identity_and_new_objects_built():
    @jit
    def f(m, x):
        return m, Counter(), x * 2

    m = Counter()
    same, new, y = f(m, 3.0)
    assert same is m
    assert isinstance(new, Counter) and int(new.n.value) == 0
    assert float(y) == 6.0


def test_static_argnums_argnames_kwargs_and_nested_containers():
    @jit(static_argnums=2, static_argnames="scale")
    def f(models, x, n, *, scale):
        for m in models["ms"]:
            m.n.value = m.n.value + n * scale
        return x * n * scale

    a, b = Counter(), Counter()
    out = f({"ms": [a, b]}, jnp.ones(2), 3, scale=2)
    np.testing.assert_array_equal(out, 6 * np.ones(2))
    assert int(a.n.value) == 6 and int(b.n.value) == 6
    f({"ms": [a]}, jnp.ones(2), 1, scale=1)
    assert int(a.n.value) == 7 and int(b.n.value) == 6


def test_method_decorated_with_jit():
    class Acc(core.Module):
        def __init__(self):
            self.total = core.Variable(jnp.array(0.0))

        @jit
        def add(self, x):
            self.total.value = self.total.value + x
            return self.total.value

    acc = Acc()
    acc.add(1.0)
    assert float(acc.add(2.0)) == 3.0 and float(acc.total.value) == 3.0


def test_donation_invalidates_old_buffers_and_keeps_new_ones():
    @jit(donate_argnums=0)
    def f(c, x):
        c.n.value = c.n.value + x
        return c.n.value

    c = Counter()
    old = c.n.value
    f(c, jnp.array(2))
    assert old.is_deleted()
    assert int(c.n.value) == 2
    f(c, jnp.array(3))
    assert int(c.n.value) == 5


def test_donate_argnames_and_mixed_donation():
    @jit(donate_argnames=("x",))
    def f(c, x):
        c.n.value = c.n.value + x.sum()
        return x + 1

    c = Counter()
    x = jnp.ones(3, dtype=jnp.int32)
    old_n = c.n.value
    y = f(c, x)
    assert x.is_deleted() and not old_n.is_deleted()
    np.testing.assert_array_equal(y, [2, 2, 2])


def test_structure_change_inside_jit_is_a_clear_error():
    @jit
    def f(m):
        m.use_running_average = True
        m.bias = jnp.zeros(3)  # a Param replaced by a raw array
        return 0

    m = BatchNorm(3)
    with pytest.raises(StructureChangedError) as info:
        f(m)
    message = str(info.value)
    assert "'args[0]/use_running_average': changed from False to True" in message
    assert "'args[0]/bias': changed from a Param Variable to an array" in message
    assert "Make such changes before calling the transformed function" in message
    assert m.use_running_average is False  # nothing leaked


def test_sow_inside_jit_adds_intermediates():
    class M(core.Module):
        def __call__(self, x):
            self.sow(core.Intermediate, "h", x * 2)
            return x

    m = M()
    jit(lambda m, x: m(x))(m, jnp.ones(2))
    np.testing.assert_array_equal(m.h.value[0], [2.0, 2.0])


def test_mutating_a_captured_object_is_a_clear_error():
    captured = Counter()

    @jit
    def f(x):
        captured.n.value = captured.n.value + x
        return x

    # The read comes first and warns; the write is the error.
    with pytest.warns(core.ClosureReadWarning, match="'n' of the captured"):
        with pytest.raises(core.CapturedMutationError) as info:
            f(jnp.array(1))
    assert "ramie.transforms.jit" in str(info.value)
    assert "not passed to the transformed function" in str(info.value)
    assert int(captured.n.value) == 0


def test_leaked_tracer_is_reported_on_read():
    box = Counter()

    def f(x):
        box.n.value = x  # plain jax.jit: nothing stops the leak
        return x

    jax.jit(f)(jnp.array(1))
    with pytest.raises(core.TraceLeakError):
        _ = box.n.value


def test_in_and_out_shardings():
    mesh = jax.make_mesh((8,), ("x",), axis_types=(jax.sharding.AxisType.Explicit,))
    row = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x"))
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    class V(core.Module):
        def __init__(self):
            self.v = core.Param(jnp.arange(16.0))

    @jit(in_shardings=(row, rep), out_shardings=rep)
    def f(m, k):
        m.v.value = m.v.value * k
        return m.v.value.sum()

    m = V()
    total = f(m, jnp.array(2.0)).block_until_ready()
    assert float(total) == 2 * sum(range(16))
    assert m.v.value.sharding.spec == jax.sharding.PartitionSpec("x")
    assert total.sharding.is_fully_replicated


def test_jit_error_messages_are_the_module_constants():
    assert "{transform}" in terrors.STRUCTURE_CHANGED
    with pytest.raises(StructureChangedError) as info:
        jit(lambda c: c.__delattr__("n"))(Counter())
    assert str(info.value) == terrors.STRUCTURE_CHANGED.format(
        transform="jit", changes="  - 'args[0]/n': removed (a Variable Variable)"
    )


def test_in_shardings_as_a_state_of_shardings_per_leaf():
    mesh = jax.make_mesh((8,), ("x",), axis_types=(jax.sharding.AxisType.Explicit,))
    row = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x"))
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    class Two(core.Module):
        def __init__(self):
            self.big = core.Param(jnp.arange(16.0))
            self.small = core.Param(jnp.arange(3.0))

    m = Two()
    shardings = core.State({"big": row, "small": rep})

    @jit(in_shardings=(shardings,))
    def double(m):
        m.big.value = m.big.value * 2
        m.small.value = m.small.value * 2

    double(m)
    jax.block_until_ready(m.big.value)
    assert m.big.value.sharding.spec == jax.sharding.PartitionSpec("x")
    assert m.small.value.sharding.is_fully_replicated
    np.testing.assert_array_equal(m.small.value, [0.0, 2.0, 4.0])


def test_returning_parts_of_an_input_gives_the_callers_objects():
    model = MLP(2, 4, 1, rngs=core.Rngs(0))

    @jit
    def parts(model, x):
        model(x)
        return model.bn, model.linear1.kernel, [model.linear2]

    bn, kernel, (lin2,) = parts(model, jnp.ones((3, 2)))
    assert bn is model.bn and kernel is model.linear1.kernel and lin2 is model.linear2
    assert float(jnp.abs(bn.mean.value).sum()) > 0  # and they hold the new values


def test_a_jitted_function_does_not_keep_dead_models_state_alive():
    import gc
    import weakref

    f = jit(lambda m, x: m(x))
    model = Linear(3, 2, rngs=core.Rngs(0))
    f(model, jnp.ones((1, 3)))
    f(model, jnp.ones((1, 3)))
    kernel = weakref.ref(model.kernel)
    del model
    gc.collect()
    assert kernel() is None  # neither the call cache nor the structure cache holds it
    other = Linear(3, 2, rngs=core.Rngs(1))
    np.testing.assert_allclose(f(other, jnp.ones((1, 3))), other(jnp.ones((1, 3))), rtol=1e-6)


def test_calls_that_change_argument_kinds_between_calls():
    @jit
    def f(a, b):
        if isinstance(b, core.Module):
            return a(jnp.ones((1, 3))) + b(jnp.ones((1, 3)))
        return a(b)

    m1, m2 = Linear(3, 2, rngs=core.Rngs(0)), Linear(3, 2, rngs=core.Rngs(1))
    x = jnp.ones((1, 3))
    np.testing.assert_allclose(f(m1, x), m1(x), rtol=1e-6)
    np.testing.assert_allclose(f(m1, x), m1(x), rtol=1e-6)  # the remembered fast path
    np.testing.assert_allclose(f(m1, m2), m1(x) + m2(x), rtol=1e-6)  # an object where x was
    np.testing.assert_allclose(f(m2, x), m2(x), rtol=1e-6)  # another object, same position
    m2.bias.value = jnp.ones(2)  # a value change, no structural change: seen by the next call
    np.testing.assert_allclose(f(m2, x), m2(x), rtol=1e-6)
    m2.extra = Linear(3, 3, rngs=core.Rngs(2))  # a structural change: re-walked
    np.testing.assert_allclose(f(m2, x), m2(x), rtol=1e-6)
