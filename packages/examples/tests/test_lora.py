"""lora: the surgery keeps the function, only the adapters train, the base stays as it was."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from example_runs import run

from ramie import nn
from ramie.examples import lora
from ramie.serialization import CheckpointManager


def test_surgery_wraps_the_linears_and_keeps_the_function():
    model = lora.MLP(64, 32, 10, rngs=nn.Rngs(0))
    x = jnp.asarray(np.random.default_rng(0).random((5, 8, 8, 1)), jnp.float32)
    kernel = model.linear1.kernel
    before = model(x)
    lora.surgery(model, 3, nn.Rngs(1))
    assert isinstance(model.linear1, nn.LoRA) and model.linear1.base_module.kernel is kernel
    assert model.linear2.lora_a.shape == (32, 3) and model.linear2.lora_b.shape == (3, 10)
    np.testing.assert_allclose(model(x), before, rtol=1e-6)  # lora_b starts at zero
    assert lora.count(model, nn.LoRAParam) == 3 * (64 + 32) + 3 * (32 + 10)


def test_only_the_adapters_train_and_the_counts_are_printed(capsys, tmp_path):
    flags = ["--epochs", "1", "--finetune-epochs", "1", "--hidden", "32", "--rank", "2"]
    result, lines = run(capsys, "lora", [*flags, "--workdir", str(tmp_path)])
    trainable = 2 * (64 + 32) + 2 * (32 + 10)
    total = 64 * 32 + 32 + 32 * 10 + 10 + trainable
    assert (result["trainable"], result["total"]) == (trainable, total)
    assert f"trainable parameters: {trainable:,} of {total:,} ({trainable / total:.1%})" in lines
    assert "base weights unchanged by fine-tuning: True" in lines

    manager = CheckpointManager(tmp_path)
    base, tuned = manager.restore(1)["model"], manager.restore(2)["model"]
    for name in ("linear1", "linear2"):
        for param in ("kernel", "bias"):
            np.testing.assert_array_equal(tuned[name]["base_module"][param], base[name][param])
        assert np.abs(tuned[name]["lora_b"]).max() > 0  # the adapters moved
