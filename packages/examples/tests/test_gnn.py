"""gnn: the karate club graph, both routes learning alike, no ramie transform in the pure one."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jraph
import optax
import pytest
from example_runs import run

from ramie import nn, transforms
from ramie.examples import gnn


def test_karate_club_graph():
    graph, labels, mask = gnn.karate_club(3)
    assert isinstance(graph, jraph.GraphsTuple)
    assert graph.nodes.shape == (34, 34) and int(graph.n_edge[0]) == 2 * 78
    assert int(labels.sum()) == 17  # 17 members followed the officer
    assert int(mask.sum()) == 6 and int(labels[mask].sum()) == 3


def test_both_routes_reach_the_same_accuracy_band(capsys):
    last, lines = run(capsys, "gnn", [])
    assert last["ramie_test_accuracy"] >= 0.85 and last["pure_test_accuracy"] >= 0.85
    assert abs(last["ramie_test_accuracy"] - last["pure_test_accuracy"]) <= 0.05
    assert last["ramie_loss"] == pytest.approx(last["pure_loss"], rel=1e-3, abs=1e-4)


def test_the_pure_route_runs_no_ramie_transform():
    transforms_dir = str(Path(transforms.__file__).parent)
    graph, labels, mask = gnn.karate_club(3)
    tx = optax.adam(1e-2)
    graphdef, params = nn.split(gnn.GCN(34, 8, 2, rngs=nn.Rngs(0)))
    opt_state = tx.init(params)
    entered = []

    def watch(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(transforms_dir):
            entered.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    sys.setprofile(watch)
    try:
        pure_step = gnn.make_pure_step(graphdef, tx)
        for _ in range(3):
            params, opt_state, loss = pure_step(params, opt_state, graph, labels, mask)
        jax.block_until_ready(loss)
    finally:
        sys.setprofile(None)
    assert entered == []
    assert float(loss) > 0

    # The watch does see a ramie transform when one runs.
    model = gnn.GCN(34, 8, 2, rngs=nn.Rngs(0))
    sys.setprofile(watch)
    try:
        gnn.train_step(model, nn.Optimizer(model, tx), graph, labels, mask)
    finally:
        sys.setprofile(None)
    assert entered
