"""NNX's submodule spellings: `from flax.nnx import graph, traversals` -> ramie.nn."""

import importlib

import jax.numpy as jnp

from ramie import nn


def test_nn_graph_and_traversals_are_modules_reachable_every_way():
    from ramie.nn import graph, traversals

    assert nn.graph is graph is importlib.import_module("ramie.nn.graph")
    assert nn.traversals is traversals is importlib.import_module("ramie.nn.traversals")
    assert {"graph", "traversals"} <= set(nn.__all__) and "graph" in dir(nn)


def test_nn_graph_names_are_the_core_functions():
    for name in nn.graph.__all__:
        assert getattr(nn.graph, name) is getattr(nn, name), name


def test_an_nnx_style_program_using_the_submodules():
    class Block(nn.Module):
        def __init__(self, rngs):
            self.linear = nn.Linear(2, 3, rngs=rngs)
            self.drop = nn.Dropout(0.5, rngs=rngs)

        def __call__(self, x):
            return self.drop(self.linear(x))

    model = Block(nn.Rngs(0, dropout=1))
    graphdef, params, rest = nn.graph.split(model, nn.Param, ...)
    flat = nn.traversals.flatten_mapping(nn.to_pure_dict(params))
    assert sorted(flat) == [("linear", "bias"), ("linear", "kernel")]
    restored = nn.traversals.unflatten_mapping({k: v * 0 for k, v in flat.items()})
    nn.replace_by_pure_dict(params, restored)
    new = nn.graph.merge(graphdef, params, rest)
    assert float(jnp.abs(new.linear.kernel.value).sum()) == 0.0
    # 'dropout' selects the Dropout's RNG stream (its key and count carry the tag)
    assert sorted(nn.state(model, "dropout").flat_state()) == [
        ("drop", "rngs", "count"),
        ("drop", "rngs", "key"),
    ]
    evaluate = nn.view(model, deterministic=True)
    x = jnp.ones((4, 2))
    assert (evaluate(x) == model.linear(x)).all()  # no dropout in the eval view
    assert evaluate.linear.kernel is model.linear.kernel
