"""Node classification on Zachary's karate club with jraph, two ways side by side.

Which club did each member join after the split? A two-layer graph
convolutional network (``jraph.GraphConvolution``, whose node update functions
are ramie ``Linear`` layers) learns it from a few labelled members. The same
model trains twice, from the same initial weights:

(a) ramie style: the model, an ``nn.Optimizer`` and the metrics go through
    ``nn.jit`` / ``nn.value_and_grad``, which write the updates back in place;
(b) pure JAX: ``nn.split`` once, then plain ``jax.jit``, ``jax.value_and_grad``
    and an optax loop over the parameter State, with ``nn.merge`` inside the
    loss. No ramie transform at all: the model is just a pytree function.

::

    python -m ramie.examples.gnn               # a few seconds on 2 CPU cores
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import jraph  # 0.0.6.dev0: GraphConvolution uses jax.tree_util only, so no jax.tree_map shim
import networkx as nx
import numpy as np
import optax

from ramie import nn
from ramie.examples import common
from ramie.serialization import CheckpointManager


def karate_club(labelled_per_club: int):
    """The graph as a ``jraph.GraphsTuple``, its labels and the train mask (a fixed split)."""
    graph = nx.karate_club_graph()
    n = graph.number_of_nodes()
    edges = np.array(graph.edges(), dtype=np.int32)
    senders = np.concatenate([edges[:, 0], edges[:, 1]])  # both directions: undirected
    receivers = np.concatenate([edges[:, 1], edges[:, 0]])
    labels = np.array([graph.nodes[i]["club"] != "Mr. Hi" for i in range(n)], dtype=np.int32)
    rng = np.random.default_rng(common.SPLIT_SEED)
    train = np.zeros(n, dtype=bool)
    for club in (0, 1):
        train[rng.choice(np.flatnonzero(labels == club), labelled_per_club, replace=False)] = True
    graphs_tuple = jraph.GraphsTuple(
        nodes=jnp.eye(n),  # no features: each member is a one-hot identity
        edges=None,
        senders=jnp.asarray(senders),
        receivers=jnp.asarray(receivers),
        n_node=jnp.array([n]),
        n_edge=jnp.array([len(senders)]),
        globals=None,
    )
    return graphs_tuple, jnp.asarray(labels), jnp.asarray(train)


class GCN(nn.Module):
    """Two graph convolutions; jraph calls our ``Linear`` layers to update the nodes."""

    def __init__(self, din: int, dhidden: int, dout: int, *, rngs: nn.Rngs):
        self.linear1 = nn.Linear(din, dhidden, rngs=rngs)
        self.linear2 = nn.Linear(dhidden, dout, rngs=rngs)

    def __call__(self, graph: jraph.GraphsTuple) -> jax.Array:
        graph = jraph.GraphConvolution(self.linear1, add_self_edges=True)(graph)
        graph = graph._replace(nodes=nn.relu(graph.nodes))
        return jraph.GraphConvolution(self.linear2, add_self_edges=True)(graph).nodes


def loss_fn(model, graph, labels, mask):
    logits = model(graph)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return jnp.sum(losses * mask) / jnp.sum(mask), logits  # only the labelled members count


# (a) ramie: objects in, updates written back.
@nn.jit
def train_step(model, optimizer, graph, labels, mask):
    (loss, _), grads = nn.value_and_grad(loss_fn, has_aux=True)(model, graph, labels, mask)
    optimizer.update(grads)
    return loss


# (b) pure JAX: a GraphDef (static) and a State of parameters (a pytree).
def make_pure_step(graphdef, tx):
    @jax.jit
    def pure_step(params, opt_state, graph, labels, mask):
        def pure_loss(params):
            return loss_fn(nn.merge(graphdef, params), graph, labels, mask)

        (loss, _), grads = jax.value_and_grad(pure_loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return pure_step


def evaluate(metrics, logits, labels, mask):
    """Accuracy over the members whose label was not shown (the test set)."""
    test = ~mask
    metrics.update(logits=logits[test], labels=labels[test])
    accuracy = float(metrics.compute())
    metrics.reset()
    return accuracy


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        "python -m ramie.examples.gnn",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=20, help="full-graph steps")
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--labelled", type=int, default=3, help="labelled members per club")
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="save a checkpoint there after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --workdir's latest")
    parser.add_argument("--plot", metavar="PATH", help="write the training curves to a PNG")
    args = parser.parse_args(argv)
    if args.resume and not args.workdir:
        parser.error("--resume needs --workdir")
    return args


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    start_time = time.perf_counter()
    graph, labels, mask = karate_club(args.labelled)
    n = labels.shape[0]
    tx = optax.adam(args.learning_rate)
    loss_avg = nn.metrics.Average()
    accuracy = nn.metrics.Accuracy()

    # (a) the model and its optimizer, as objects.
    model = GCN(n, args.hidden, 2, rngs=nn.Rngs(args.seed))
    optimizer = nn.Optimizer(model, tx)
    # (b) the same initial weights as a pure (graphdef, params) pair and an optax state.
    graphdef, params = nn.split(GCN(n, args.hidden, 2, rngs=nn.Rngs(args.seed)))
    opt_state = tx.init(params)
    pure_step = make_pure_step(graphdef, tx)

    history, done = [], 0
    manager = CheckpointManager(args.workdir, max_to_keep=2) if args.workdir else None
    if args.resume and manager.latest_step() is not None:
        done = manager.latest_step()
        target = {"ramie": nn.state(optimizer), "pure": {"params": params, "opt": opt_state}}
        restored = manager.restore(target=target)
        nn.update(optimizer, restored["ramie"])
        params, opt_state = restored["pure"]["params"], restored["pure"]["opt"]
        history = manager.metadata()["history"]
        print(f"resumed from {args.workdir} after epoch {done}")

    for epoch in range(done + 1, args.epochs + 1):
        bar = common.progress(range(args.steps_per_epoch), epoch, args.epochs)
        for _ in bar:
            loss_a = train_step(model, optimizer, graph, labels, mask)
            params, opt_state, loss_b = pure_step(params, opt_state, graph, labels, mask)
            loss_avg.update(values=loss_a)
            bar.set_postfix(loss=f"{float(loss_avg.compute()):.4f}", refresh=False)
        loss_avg.reset()
        row = {
            "ramie_loss": float(loss_a),
            "ramie_test_accuracy": evaluate(accuracy, model(graph), labels, mask),
            "pure_loss": float(loss_b),
            "pure_test_accuracy": evaluate(
                accuracy, nn.merge(graphdef, params)(graph), labels, mask
            ),
        }
        history.append(row)
        common.log_epoch(epoch, row)
        if manager:
            state = {"ramie": nn.state(optimizer), "pure": {"params": params, "opt": opt_state}}
            manager.save(epoch, state, metadata={"history": history})

    if args.plot:
        common.plot(history, args.plot, "gnn: (a) ramie transforms, (b) pure JAX")
    print(f"{args.epochs * args.steps_per_epoch} steps, {time.perf_counter() - start_time:.1f} s")
    last = history[-1]
    print(
        f"test accuracy (unlabelled members): {last['ramie_test_accuracy']:.1%} ramie, "
        f"{last['pure_test_accuracy']:.1%} pure JAX"
    )
    return last


if __name__ == "__main__":
    main()
