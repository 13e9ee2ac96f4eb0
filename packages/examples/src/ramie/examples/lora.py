"""LoRA by model surgery: train an MLP, freeze it, then fine-tune only low-rank adapters.

1. Train a small MLP on the 8x8 digits (the base task).
2. The shifted task: the same digits moved ``--move`` pixels right and down.
   The frozen MLP does worse on it.
3. Model surgery: wrap each ``Linear`` in ``nn.LoRA(..., base_module=linear)``,
   in place, then fine-tune with ``nn.Optimizer(model, tx, wrt=nn.LoRAParam)``:
   only the adapters move, a small fraction of the parameters; the base
   weights stay exactly as they were.

::

    python -m ramie.examples.lora              # about 10 s on 2 CPU cores
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax

from ramie import nn
from ramie.examples import common
from ramie.serialization import CheckpointManager


class MLP(nn.Module):
    def __init__(self, din: int, dhidden: int, dout: int, *, rngs: nn.Rngs):
        self.linear1 = nn.Linear(din, dhidden, rngs=rngs)
        self.linear2 = nn.Linear(dhidden, dout, rngs=rngs)

    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)  # flatten the images
        return self.linear2(nn.relu(self.linear1(x)))


def loss_fn(model, images, labels):
    logits = model(images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits


@nn.jit
def train_step(model, optimizer, metrics, images, labels):
    # Differentiate exactly what the optimizer trains: Param first, LoRAParam after surgery.
    grad_fn = nn.value_and_grad(loss_fn, has_aux=True, wrt=optimizer.wrt)
    (loss, logits), grads = grad_fn(model, images, labels)
    optimizer.update(grads)
    metrics.update(loss=loss, logits=logits, labels=labels)


@nn.jit
def eval_step(model, metrics, images, labels):
    loss, logits = loss_fn(model, images, labels)
    metrics.update(loss=loss, logits=logits, labels=labels)


def move(images, pixels):
    """The shifted task's images: every digit moved ``pixels`` right and down."""
    moved = np.zeros_like(images)
    moved[:, pixels:, pixels:] = images[:, : images.shape[1] - pixels, : images.shape[2] - pixels]
    return moved


def surgery(model, rank, rngs):
    """Wrap both Linear layers of ``model`` in LoRA adapters, in place (the seed's surgery)."""
    for name in ("linear1", "linear2"):
        linear = getattr(model, name)
        adapter = nn.LoRA(
            linear.in_features, rank, linear.out_features, base_module=linear, rngs=rngs
        )
        setattr(model, name, adapter)


def count(model, kind):
    return sum(v.size for v in jax.tree.leaves(nn.to_pure_dict(nn.state(model, kind))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        "python -m ramie.examples.lora",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=10, help="training of the base MLP")
    parser.add_argument("--finetune-epochs", type=int, default=10, help="training of LoRA")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--move", type=int, default=1, help="the shift of the new task, pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="save a checkpoint there after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --workdir's latest")
    parser.add_argument("--plot", metavar="PATH", help="write the training curves to a PNG")
    args = parser.parse_args(argv)
    if args.resume and not args.workdir:
        parser.error("--resume needs --workdir")
    return args


def evaluate(model, metrics, data):
    eval_step(model, metrics, data["image"], data["label"])
    result = {name: float(value) for name, value in metrics.compute().items()}
    metrics.reset()
    return result


def run_epoch(model, optimizer, metrics, train, tests, args, epoch):
    """Train one epoch on ``train``, evaluate on each of ``tests``, log; returns the row."""
    total = args.epochs + args.finetune_epochs
    order = common.batches(len(train["label"]), args.batch_size, seed=args.seed, epoch=epoch)
    bar = common.progress(order, epoch, total)
    for step, batch in enumerate(bar):
        train_step(model, optimizer, metrics, train["image"][batch], train["label"][batch])
        if step % 10 == 0:
            bar.set_postfix(loss=f"{float(metrics.loss.compute()):.4f}", refresh=False)
    row = {f"train_{name}": float(value) for name, value in metrics.compute().items()}
    metrics.reset()
    for prefix, data in tests.items():
        row |= {f"{prefix}_{name}": value for name, value in evaluate(model, metrics, data).items()}
    common.log_epoch(epoch, row)
    return row


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    start_time = time.perf_counter()
    train, test = common.digits()
    shifted_train = {"image": move(train["image"], args.move), "label": train["label"]}
    tests = {  # both tasks are evaluated after every epoch
        "test": test,
        "shifted_test": {"image": move(test["image"], args.move), "label": test["label"]},
    }
    rngs = nn.Rngs(args.seed)
    model = MLP(64, args.hidden, 10, rngs=rngs)
    metrics = nn.metrics.MultiMetric(
        loss=nn.metrics.Average("loss"), accuracy=nn.metrics.Accuracy()
    )
    total = args.epochs + args.finetune_epochs

    history, done = [], 0
    manager = CheckpointManager(args.workdir, max_to_keep=2) if args.workdir else None
    if args.resume and manager.latest_step() is not None:
        done = manager.latest_step()
        history = manager.metadata()["history"]
        print(f"resumed from {args.workdir} after epoch {done}")

    # 1. The base task: every Param trains.
    optimizer = nn.Optimizer(model, optax.adam(args.learning_rate))
    if 0 < done <= args.epochs:
        nn.update(optimizer, manager.restore(target=nn.state(optimizer)))
    for epoch in range(done + 1, args.epochs + 1):
        history.append(run_epoch(model, optimizer, metrics, train, tests, args, epoch))
        if manager:
            manager.save(epoch, nn.state(optimizer), metadata={"history": history})

    # 2. Surgery, then only the adapters train, on the shifted task.
    surgery(model, args.rank, rngs)
    optimizer = nn.Optimizer(model, optax.adam(args.learning_rate), wrt=nn.LoRAParam)
    if done > args.epochs:
        nn.update(optimizer, manager.restore(target=nn.state(optimizer)))
    base_before = jax.tree.map(np.array, nn.to_pure_dict(nn.state(model, nn.Not(nn.LoRAParam))))
    for epoch in range(max(done, args.epochs) + 1, total + 1):
        history.append(run_epoch(model, optimizer, metrics, shifted_train, tests, args, epoch))
        if manager:
            manager.save(epoch, nn.state(optimizer), metadata={"history": history})
    base_after = nn.to_pure_dict(nn.state(model, nn.Not(nn.LoRAParam)))
    unchanged = all(jax.tree.leaves(jax.tree.map(np.array_equal, base_before, base_after)))

    if args.plot:
        common.plot(history, args.plot, f"lora: epochs 1-{args.epochs} base, then adapters")
    trainable, params = count(model, nn.LoRAParam), count(model, nn.Param)
    print(f"trainable parameters: {trainable:,} of {params:,} ({trainable / params:.1%})")
    print(f"base weights unchanged by fine-tuning: {unchanged}")
    frozen, tuned = history[args.epochs - 1], history[-1]
    print(f"base task: test accuracy {frozen['test_accuracy']:.1%} after training the MLP")
    print(f"{total} epochs, {time.perf_counter() - start_time:.1f} s in this run")
    before, after = frozen["shifted_test_accuracy"], tuned["shifted_test_accuracy"]
    print(f"shifted task: test accuracy {before:.1%} frozen -> {after:.1%} with LoRA")
    return {"frozen": before, "lora": after, "trainable": trainable, "total": params}


if __name__ == "__main__":
    main()
