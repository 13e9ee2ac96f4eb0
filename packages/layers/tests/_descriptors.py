"""The one list of layer descriptors that drives the conformance and Flax-equivalence tests.

Each ``Case`` builds a layer from a library namespace ``L`` (``ramie.layers``,
or ``flax.nnx`` for the equivalence tests: constructor names and arguments are
the same) and gives example inputs. ``conformance=False`` marks configuration
variants that only the equivalence tests use (padding modes, masks, ...).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Case:
    name: str  # the public layer it covers
    make: Callable[..., Any]  # make(L, rngs, **dtype_kwargs) -> layer
    inputs: Callable[[Any], tuple]  # inputs(float_dtype) -> positional args
    call: Callable[..., Any] | None = None  # call(layer, *inputs) -> array; default layer(*inputs)
    variant: str = ""
    dtype_kwargs: bool = True  # does make() accept dtype / param_dtype?
    conformance: bool = True
    flax: bool = True  # does Flax NNX have this layer (with this configuration)?

    @property
    def id(self) -> str:
        return f"{self.name}-{self.variant}" if self.variant else self.name

    def apply(self, layer: Any, *inputs: Any) -> Any:
        return layer(*inputs) if self.call is None else self.call(layer, *inputs)


def _normal(*shape: int, seed: int = 0) -> Callable[[Any], tuple]:
    def make(dtype):
        return (jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype),)

    return make


def _indices(*shape: int, high: int) -> Callable[[Any], tuple]:
    def make(dtype):
        return (jnp.asarray(np.random.default_rng(0).integers(0, high, size=shape), jnp.int32),)

    return make


def _cell_call(hidden: int, lstm: bool) -> Callable[..., Any]:
    def call(cell, x):
        h = jnp.zeros(x.shape[:-1] + (hidden,), x.dtype)
        carry = (h, h + 0.5) if lstm else h + 0.5
        new_carry, y = cell(carry, x)
        return jax.tree.reduce(lambda a, b: a + b.sum(), new_carry, y)

    return call


def _masked_mha(layer, x):
    valid = jnp.arange(x.shape[1]) < 3
    mask = valid[None, None, None, :] & valid[None, None, :, None]
    return layer(x, mask=jnp.broadcast_to(mask, (x.shape[0], 1, x.shape[1], x.shape[1])))


def _seq_lengths_rnn(rnn, x):
    carry, y = rnn(x, seq_lengths=jnp.array([2, 5]), return_carry=True)
    return y, carry


def _embed_attend(embed, ids):
    return embed.attend(embed(ids))


def to_bfloat16(args: tuple, *, dtype: Any = None, inexact: bool = True) -> tuple:
    """A ``promote_dtype`` hook: compute in bfloat16 whatever the layer's dtype."""
    return tuple(None if a is None else jnp.asarray(a, jnp.bfloat16) for a in args)


_BF16_F32 = dict(dtype=jnp.bfloat16, preferred_element_type=jnp.float32)


def _masked(layer, x):
    return layer(x, mask=x > -0.5)


def _causal(layer, x):
    return layer(x, is_causal=True)


def _keyword_cases() -> list[Case]:
    """Issue 15's layer keywords, each compared numerically with Flax NNX."""
    out = []
    for name, make, shape in [
        ("Linear", lambda L, rngs: L.Linear(3, 4, **_BF16_F32, rngs=rngs), (2, 3)),
        ("LinearGeneral", lambda L, rngs: L.LinearGeneral(3, (2, 2), **_BF16_F32, rngs=rngs),
         (2, 3)),
        ("Einsum", lambda L, rngs: L.Einsum("bd,de->be", (3, 4), (4,), **_BF16_F32, rngs=rngs),
         (2, 3)),
        ("Conv", lambda L, rngs: L.Conv(3, 4, (2, 2), **_BF16_F32, rngs=rngs), (1, 4, 4, 3)),
        ("ConvTranspose", lambda L, rngs: L.ConvTranspose(3, 4, (2, 2), **_BF16_F32, rngs=rngs),
         (1, 3, 3, 3)),
    ]:  # fmt: skip
        out.append(Case(name, make, _normal(*shape), variant="preferred-element-type",
                        dtype_kwargs=False, conformance=False))  # fmt: skip
    for name, make, shape in [
        ("Linear", lambda L, rngs: L.Linear(3, 4, promote_dtype=to_bfloat16, rngs=rngs), (2, 3)),
        ("LayerNorm", lambda L, rngs: L.LayerNorm(4, promote_dtype=to_bfloat16, rngs=rngs),
         (3, 4)),
        ("BatchNorm", lambda L, rngs: L.BatchNorm(4, promote_dtype=to_bfloat16, rngs=rngs),
         (8, 4)),
    ]:  # fmt: skip
        out.append(Case(name, make, _normal(*shape), variant="promote-dtype",
                        dtype_kwargs=False, conformance=False))  # fmt: skip
    for name, make, shape in [
        ("LayerNorm", lambda L, rngs: L.LayerNorm(4, rngs=rngs), (3, 4)),
        ("RMSNorm", lambda L, rngs: L.RMSNorm(4, rngs=rngs), (3, 4)),
        ("BatchNorm", lambda L, rngs: L.BatchNorm(4, rngs=rngs), (8, 4)),
        ("GroupNorm", lambda L, rngs: L.GroupNorm(6, num_groups=3, rngs=rngs), (2, 4, 4, 6)),
        ("InstanceNorm", lambda L, rngs: L.InstanceNorm(3, rngs=rngs), (2, 5, 3)),
    ]:
        out.append(Case(name, make, _normal(*shape), call=_masked, variant="mask",
                        dtype_kwargs=False, conformance=False))  # fmt: skip
    out.append(Case("MultiHeadAttention", lambda L, rngs: _mha(L, rngs), _normal(2, 5, 8),
                    call=_causal, variant="is-causal", dtype_kwargs=False,
                    conformance=False))  # fmt: skip
    return out


def _cell(L, rngs, name, **kw):
    return getattr(L, name)(3, 4, rngs=rngs, **kw)


def _conv(L, rngs, cfg, **kw):
    return L.Conv(4, 6, rngs=rngs, **cfg, **kw)


def _mha(L, rngs, **kw):
    return L.MultiHeadAttention(2, 8, decode=False, rngs=rngs, **kw)


CASES: list[Case] = [
    Case("Linear", lambda L, rngs, **kw: L.Linear(3, 4, rngs=rngs, **kw), _normal(2, 3)),
    Case(
        "Linear",
        lambda L, rngs, **kw: L.Linear(3, 4, use_bias=False, rngs=rngs, **kw),
        _normal(2, 5, 3),
        variant="nobias",
        conformance=False,
    ),
    Case(
        "LinearGeneral",
        lambda L, rngs, **kw: L.LinearGeneral(6, (2, 3), rngs=rngs, **kw),
        _normal(2, 6),
    ),
    Case(
        "LinearGeneral",
        lambda L, rngs, **kw: L.LinearGeneral((2, 3), 4, axis=(-2, -1), rngs=rngs, **kw),
        _normal(5, 2, 3),
        variant="axes",
        conformance=False,
    ),
    Case(
        "Einsum",
        lambda L, rngs, **kw: L.Einsum("btd,dhk->bthk", (4, 2, 3), (2, 3), rngs=rngs, **kw),
        _normal(1, 5, 4),
    ),
    Case("Embed", lambda L, rngs, **kw: L.Embed(10, 4, rngs=rngs, **kw), _indices(2, 3, high=10)),
    Case(
        "Embed",
        lambda L, rngs, **kw: L.Embed(10, 4, rngs=rngs, **kw),
        _indices(2, 3, high=10),
        call=_embed_attend,
        variant="attend",
        conformance=False,
    ),
    Case("Conv", lambda L, rngs, **kw: L.Conv(3, 4, (3, 3), rngs=rngs, **kw), _normal(2, 6, 6, 3)),
    *[
        Case(
            "Conv",
            functools.partial(_conv, cfg=cfg),
            _normal(2, 7, 7, 4),
            variant=variant,
            conformance=False,
        )
        for variant, cfg in [
            ("valid-stride", dict(kernel_size=(3, 3), strides=2, padding="VALID")),
            ("circular", dict(kernel_size=(3, 2), padding="CIRCULAR")),
            ("explicit", dict(kernel_size=(3, 3), padding=((1, 2), (0, 1)))),
            (
                "dilation",
                dict(kernel_size=(2, 2), kernel_dilation=2, input_dilation=(1, 2), padding=1),
            ),
            ("groups", dict(kernel_size=(3, 3), feature_group_count=2)),
        ]
    ],
    Case(
        "Conv",
        lambda L, rngs, **kw: L.Conv(3, 2, 3, padding="CAUSAL", rngs=rngs, **kw),
        _normal(2, 9, 3),
        variant="1d-causal",
        conformance=False,
    ),
    Case(
        "ConvTranspose",
        lambda L, rngs, **kw: L.ConvTranspose(3, 4, (3, 3), strides=2, rngs=rngs, **kw),
        _normal(2, 4, 4, 3),
    ),
    Case(
        "ConvTranspose",
        lambda L, rngs, **kw: L.ConvTranspose(3, 2, (3, 3), padding="CIRCULAR", rngs=rngs, **kw),
        _normal(2, 5, 5, 3),
        variant="circular",
        conformance=False,
    ),
    Case("BatchNorm", lambda L, rngs, **kw: L.BatchNorm(4, rngs=rngs, **kw), _normal(8, 4)),
    Case(
        "BatchNorm",
        lambda L, rngs, **kw: L.BatchNorm(3, axis=1, momentum=0.9, rngs=rngs, **kw),
        _normal(4, 3, 5),
        variant="axis1",
        conformance=False,
    ),
    Case("LayerNorm", lambda L, rngs, **kw: L.LayerNorm(4, rngs=rngs, **kw), _normal(3, 4)),
    Case(
        "BatchNorm",
        lambda L, rngs, **kw: L.BatchNorm(4, use_fast_variance=True, rngs=rngs, **kw),
        _normal(8, 4),
        variant="fast-variance",
        conformance=False,
    ),
    Case("RMSNorm", lambda L, rngs, **kw: L.RMSNorm(4, rngs=rngs, **kw), _normal(3, 4)),
    Case(
        "GroupNorm",
        lambda L, rngs, **kw: L.GroupNorm(6, num_groups=3, rngs=rngs, **kw),
        _normal(2, 4, 4, 6),
    ),
    Case(
        "InstanceNorm", lambda L, rngs, **kw: L.InstanceNorm(3, rngs=rngs, **kw), _normal(2, 5, 3)
    ),
    Case(
        "Dropout",
        lambda L, rngs: L.Dropout(0.5, rngs=rngs),
        _normal(4, 8),
        dtype_kwargs=False,
    ),
    Case(
        "Dropout",
        lambda L, rngs: L.Dropout(0.3, broadcast_dims=(0,), rngs=rngs),
        _normal(4, 8),
        variant="broadcast",
        dtype_kwargs=False,
        conformance=False,
    ),
    Case("MultiHeadAttention", _mha, _normal(2, 5, 8)),
    Case(
        "MultiHeadAttention",
        _mha,
        _normal(2, 5, 8),
        call=_masked_mha,
        variant="mask",
        conformance=False,
    ),
    Case(
        "MultiHeadAttention",
        lambda L, rngs, **kw: L.MultiHeadAttention(
            4, 8, num_kv_heads=2, normalize_qk=True, decode=False, rngs=rngs, **kw
        ),
        _normal(2, 5, 8),
        variant="gqa-normqk",
        conformance=False,
    ),
    Case(
        "MultiHeadAttention",
        lambda L, rngs, **kw: L.MultiHeadAttention(
            2, 8, dropout_rate=0.5, decode=False, rngs=rngs, **kw
        ),
        _normal(2, 5, 8),
        variant="dropout",
        conformance=False,
    ),
    *[
        Case(
            name,
            functools.partial(_cell, name=name),
            _normal(2, 3),
            call=_cell_call(4, lstm=name.endswith("LSTMCell")),
        )
        for name in ("LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell")
    ],  # fmt: skip
    Case("RNN", lambda L, rngs, **kw: L.RNN(L.LSTMCell(3, 4, rngs=rngs, **kw)), _normal(2, 5, 3)),
    Case(
        "RNN",
        lambda L, rngs, **kw: L.RNN(L.GRUCell(3, 4, rngs=rngs, **kw), reverse=True),
        _normal(2, 5, 3),
        call=_seq_lengths_rnn,
        variant="reverse-seq-lengths",
        conformance=False,
    ),
    Case(
        "Bidirectional",
        lambda L, rngs, **kw: L.Bidirectional(
            L.RNN(L.GRUCell(3, 4, rngs=rngs, **kw)), L.RNN(L.SimpleCell(3, 4, rngs=rngs, **kw))
        ),
        _normal(2, 5, 3),
    ),
    Case("LoRA", lambda L, rngs, **kw: L.LoRA(3, 2, 4, rngs=rngs, **kw), _normal(2, 3)),
    Case(
        "LoRA",
        lambda L, rngs, **kw: L.LoRA(3, 2, 4, base_module=L.Linear(3, 4, rngs=rngs), rngs=rngs),
        _normal(2, 3),
        variant="wrapping",
        conformance=False,
    ),
    Case(
        "LoRALinear",
        lambda L, rngs, **kw: L.LoRALinear(
            3,
            4,
            lora_rank=2,
            rngs=rngs,
            lora_dtype=kw.get("dtype"),
            lora_param_dtype=kw.get("param_dtype", jnp.float32),
            **kw,
        ),
        _normal(2, 3),
    ),  # fmt: skip
    Case(
        "Sequential",
        lambda L, rngs, **kw: L.Sequential(
            L.Linear(3, 4, rngs=rngs, **kw), L.relu, L.Linear(4, 2, rngs=rngs, **kw)
        ),
        _normal(2, 3),
    ),
    Case("PReLU", lambda L, rngs, **kw: L.PReLU(-0.2, **kw), _normal(2, 5)),
    # Flax keys the wrappers' per-Param state by tuple paths (and keeps WeightNorm's scales as
    # plain arrays): test_flax_equivalence compares them with a path mapping of its own.
    Case(
        "SpectralNorm",
        lambda L, rngs, **kw: L.SpectralNorm(
            L.Linear(3, 4, rngs=rngs, **kw), n_steps=2, rngs=rngs, **kw
        ),
        _normal(2, 3),
        flax=False,
    ),
    Case(
        "SpectralNorm",
        lambda L, rngs, **kw: L.SpectralNorm(
            L.Conv(3, 4, (2, 2), rngs=rngs, **kw), rngs=rngs, **kw
        ),
        _normal(1, 4, 4, 3),
        variant="conv",
        flax=False,
    ),
    Case(
        "WeightNorm",
        lambda L, rngs, **kw: L.WeightNorm(L.Linear(3, 4, rngs=rngs, **kw), rngs=rngs, **kw),
        _normal(2, 3),
        flax=False,
    ),
    Case(
        "WeightNorm",
        lambda L, rngs, **kw: L.WeightNorm(
            L.Conv(3, 4, (2, 2), rngs=rngs, **kw), feature_axes=None, rngs=rngs, **kw
        ),
        _normal(1, 4, 4, 3),
        variant="conv-whole",
        flax=False,
    ),
    *_keyword_cases(),
]

CONFORMANCE = [c for c in CASES if c.conformance]
