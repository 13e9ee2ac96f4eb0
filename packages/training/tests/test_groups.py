"""Per-group optimizers: each filter's parameters get their own optax transformation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from training_models import Net, assert_trees_close, batch, by_hand, gradients, params_of

from ramie import core
from ramie.training import Optimizer, OptState, TrainingError
from ramie.training import _errors as E

KERNEL, BIAS = core.PathContains("kernel"), core.PathContains("bias")


def one_step(optimizer, model, seed=0):
    before = params_of(model)
    _, grads = gradients(model, *batch(seed))
    optimizer.update(grads)
    return before, core.to_pure_dict(grads)


@pytest.mark.parametrize("as_pairs", [False, True], ids=["mapping", "pairs"])
def test_each_group_has_its_own_learning_rate(as_pairs):
    groups = {KERNEL: optax.sgd(0.1), BIAS: optax.sgd(0.01)}
    model = Net()
    optimizer = Optimizer(model, list(groups.items()) if as_pairs else groups)
    before, grads = one_step(optimizer, model)
    after = params_of(model)
    for i in range(2):
        b, g, a = before["layers"][i], grads["layers"][i], after["layers"][i]
        np.testing.assert_allclose(a["kernel"], b["kernel"] - 0.1 * g["kernel"], rtol=1e-6)
        np.testing.assert_allclose(a["bias"], b["bias"] - 0.01 * g["bias"], rtol=1e-6)


def test_groups_equal_optax_multi_transform_by_hand():
    model = Net()
    before = params_of(model)
    optimizer = Optimizer(model, {KERNEL: optax.adam(1e-2), BIAS: optax.sgd(0.1, momentum=0.9)})
    used = []
    for i in range(4):
        used.append(one_step(optimizer, model, seed=i)[1])
    labels = jax.tree_util.tree_map_with_path(
        lambda keys, _: "k" if keys[-1].key == "kernel" else "b", before
    )
    by_optax = optax.multi_transform(
        {"k": optax.adam(1e-2), "b": optax.sgd(0.1, momentum=0.9)}, labels
    )
    assert_trees_close(params_of(model), by_hand(before, by_optax, used))
    # each group's state is in the optimizer, labelled by position
    paths = set(core.state(optimizer, OptState).flat_state())
    assert ("opt_state", 0, "group0", 0, 0, 1, "layers", 0, "kernel") in paths  # adam mu
    assert ("opt_state", 0, "group1", 0, 0, 0, "layers", 1, "bias") in paths  # momentum trace


class Embedding(core.Param):
    """A kind of parameter of its own, to select a group by type."""


class WithTable(Net):
    def __init__(self):
        super().__init__()
        self.table = Embedding(jnp.ones((4, 3)))


def test_group_by_type_and_by_callable_first_match_wins():
    model = WithTable()
    is_matrix = lambda path, leaf: leaf.value.ndim == 2  # noqa: E731
    groups = [(Embedding, optax.sgd(1.0)), (is_matrix, optax.sgd(0.1)), (..., optax.sgd(0.0))]
    optimizer = Optimizer(model, groups)
    graphdef, params, rest = core.split(model, core.Param, ...)
    grads = jax.tree.map(jnp.ones_like, params)
    before = params_of(model)
    optimizer.update(grads)
    np.testing.assert_allclose(model.table.value, before["table"] - 1.0)  # type, not matrix
    np.testing.assert_allclose(model.layers[0].kernel.value, before["layers"][0]["kernel"] - 0.1)
    np.testing.assert_allclose(model.layers[0].bias.value, before["layers"][0]["bias"])  # frozen


def test_error_parameters_no_group_matches_are_named():
    with pytest.raises(TrainingError) as info:
        Optimizer(Net(), {KERNEL: optax.sgd(0.1)})
    assert str(info.value) == E.UNMATCHED_PARAMETERS.format(
        count=2,
        groups="PathContains(key='kernel')",
        paths="  - layers/0/bias (Param)\n  - layers/1/bias (Param)",
    )


def test_freezing_a_group_with_set_to_zero():
    model = Net()
    optimizer = Optimizer(model, {KERNEL: optax.sgd(0.1), core.Everything: optax.set_to_zero()})
    before, _ = one_step(optimizer, model)
    for i, layer in enumerate(model.layers):
        np.testing.assert_array_equal(layer.bias.value, before["layers"][i]["bias"])
        assert not np.allclose(layer.kernel.value, before["layers"][i]["kernel"])


def test_errors_malformed_groups():
    with pytest.raises(TrainingError) as info:
        Optimizer(Net(), {})
    assert str(info.value) == E.BAD_GROUPS.format(problem="no group was given")
    with pytest.raises(TrainingError) as info:
        Optimizer(Net(), [KERNEL, optax.sgd(0.1)])
    assert str(info.value) == E.BAD_GROUPS.format(
        problem="found the item PathContains(key='kernel')"
    )
    with pytest.raises(TrainingError) as info:
        Optimizer(Net(), {KERNEL: 0.1})
    assert str(info.value) == E.BAD_GROUPS.format(
        problem="the group PathContains(key='kernel') was given a float, not an optax "
        "GradientTransformation"
    )
