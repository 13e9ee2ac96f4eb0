"""lm: the KV cache gives the full-prefix logits, scan equals the Python loop, sampling."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from example_runs import run

from ramie import nn
from ramie.examples import lm

FLAGS = ["--layers", "3", "--features", "32", "--heads", "4", "--context", "24"]
FLAGS += ["--sample-length", "10"]


def model_pair():
    """The same initial model twice: layers scanned, and a Python loop over a list."""
    scanned = lm.Transformer(lm.parse_args(FLAGS), rngs=nn.Rngs(3))
    looped = lm.Transformer(lm.parse_args([*FLAGS, "--no-scan-layers"]), rngs=nn.Rngs(3))
    return scanned, looped


def tokens(batch=2, length=24, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, len(lm.VOCAB), (batch, length)))


def test_scan_and_loop_give_the_same_loss_and_gradients():
    scanned, looped = model_pair()
    assert scanned.blocks.up.kernel.value.shape == (3, 32, 128)  # stacked by nn.vmap
    np.testing.assert_array_equal(
        scanned.blocks.up.kernel.value[1], looped.blocks[1].up.kernel.value
    )
    scanned.eval(), looped.eval()
    batch = tokens()
    loss_s, grads_s = nn.value_and_grad(lm.loss_fn)(scanned, batch)
    loss_l, grads_l = nn.value_and_grad(lm.loss_fn)(looped, batch)
    np.testing.assert_allclose(loss_s, loss_l, rtol=1e-6)
    assert 3.5 < float(loss_s) < 6  # about log(96) = 4.56 at initialisation
    np.testing.assert_allclose(
        grads_s["blocks"]["down"]["kernel"].value[2],
        grads_l["blocks"][2]["down"]["kernel"].value,
        rtol=1e-4,
        atol=1e-7,
    )


def test_scan_and_loop_give_the_same_training_loss_with_dropout():
    scanned, looped = model_pair()  # each block's dropout draws from its own key in both
    batch = tokens()
    np.testing.assert_allclose(lm.loss_fn(scanned, batch), lm.loss_fn(looped, batch), rtol=1e-6)
    scanned.eval()
    assert float(lm.loss_fn(scanned, batch)) != pytest.approx(float(lm.loss_fn(looped, batch)))


@pytest.mark.parametrize("scan", [True, False])
def test_cached_decoding_gives_the_full_prefix_logits_step_by_step(scan):
    model = model_pair()[0 if scan else 1]
    model.eval()
    batch = tokens(length=10, seed=1)
    model.init_cache(2, 10)
    for t in range(10):
        cached = lm.decode_step(model, batch[:, t], jnp.array(t))
        full = model(batch[:, : t + 1], jnp.arange(t + 1))[:, -1]
        np.testing.assert_allclose(cached, full, rtol=1e-4, atol=1e-5, err_msg=f"step {t}")
    index = (
        model.blocks.attention.cache_index.value
        if scan
        else model.blocks[0].attention.cache_index.value
    )
    assert np.all(np.asarray(index) == 10)


def test_greedy_sampling_follows_the_argmax_of_the_full_recomputation():
    model = model_pair()[0]
    text = lm.sample(model, "def ", 12, jax.random.key(0), temperature=1.0, top_k=1)
    assert text.startswith("def ") and len(text) == 16
    assert model.blocks.dropout.deterministic is False  # back in training mode
    model.eval()
    ids = lm.encode(text)
    logits = model(jnp.asarray(ids[None, :-1]), jnp.arange(len(ids) - 1))[0]
    np.testing.assert_array_equal(np.argmax(logits[3:], axis=-1), ids[4:])


def test_top_k_sampling_only_picks_among_the_k_likeliest():
    model = model_pair()[1]
    text = lm.sample(model, "def ", 8, jax.random.key(1), temperature=2.0, top_k=3)
    model.eval()
    ids = lm.encode(text)
    logits = np.asarray(model(jnp.asarray(ids[None, :-1]), jnp.arange(len(ids) - 1))[0])
    for position in range(3, len(ids) - 1):
        top3 = np.argsort(logits[position])[-3:]
        assert ids[position + 1] in top3


def test_corpus_is_standard_library_source_in_the_vocabulary():
    text = lm.corpus()
    assert len(text) > 50_000 and "def " in text and set(text) <= set(lm.VOCAB)
    assert lm.decode(lm.encode("def f():\n    return")) == "def f():\n    return"


def test_the_sample_must_fit_in_the_context(capsys):
    with pytest.raises(SystemExit):
        lm.main(["--context", "16", "--sample-length", "13"])
    message = lm.SAMPLE_TOO_LONG.format(length=13, context=16)
    assert f"error: {message}" in capsys.readouterr().err


def test_main_prints_a_sample_then_the_headline(capsys):
    flags = ["--epochs", "1", "--steps-per-epoch", "3", "--features", "16", "--context", "16"]
    result, lines = run(capsys, "lm", [*flags, "--sample-length", "12", "--layers", "1"])
    (start,) = [i for i, line in enumerate(lines) if line.startswith("sample (temperature 0.8")]
    assert "\n".join(lines[start + 1 : -2]) == result["sample"]
    assert result["sample"].startswith(lm.PROMPT) and len(result["sample"]) == 16
    assert re.fullmatch(r"validation bits per character: \d\.\d{3}", lines[-1])
