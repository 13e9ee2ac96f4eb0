"""Recurrent cells (LSTMCell, GRUCell, SimpleCell) and the RNN / Bidirectional drivers.

``RNN`` runs a cell over the time axis with ``jax.lax.scan``: the cell is split
into a GraphDef and its State once, the State travels in the scan carry, and
each step merges it back into a cell (at trace time only), so Variables the
cell changes (a counter, an RNG stream) come out updated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax.nn import initializers

from ramie.core import Module, Rngs, RngStream, merge, split, update

from . import _errors
from ._common import EMPTY, Array, Dtype, as_rngs, default_kernel_init, describe, is_key
from ._linear import Linear

Initializer = Callable[..., Array]
Carry = Any


def _orthogonal(key: Array, shape: tuple, dtype: Dtype = jnp.float32) -> Array:
    """An orthogonal matrix drawn in float32, then cast (safe for half precision)."""
    return initializers.orthogonal()(key, shape).astype(dtype)


class _Cell(Module):
    """What the cells share: carry creation and the number of feature axes."""

    num_feature_axes = 1

    def _carry_key(self, rngs: Any) -> jax.Array:
        if isinstance(rngs, Rngs):
            return rngs.carry()
        if isinstance(rngs, RngStream):
            return rngs()
        if is_key(rngs):
            return rngs
        raise _errors.LayerError(_errors.CARRY_NEEDS_RNGS.format(where=describe(self)))

    def _zeros_or(self, shape: tuple, rngs: Any, carry_init: Initializer | None) -> Array:
        # The carry is kept in the compute dtype (so a bfloat16 cell stays bfloat16).
        dtype = self.param_dtype if self.dtype is None else self.dtype
        if carry_init is None:
            return jnp.zeros(shape, dtype)
        return carry_init(self._carry_key(rngs), shape, dtype)

    def _check(self, inputs: Array) -> None:
        if inputs.shape[-1:] != (self.in_features,):
            raise _errors.LayerError(
                _errors.FEATURES_MISMATCH.format(
                    where=describe(self),
                    expected=self.in_features,
                    shape=tuple(inputs.shape),
                    found=inputs.shape[-1] if inputs.ndim else "none",
                    arg="in_features",
                )
            )


def _dense(fin, fout, use_bias, kernel_init, bias_init, dtype, param_dtype, rngs, meta):
    """A projection; ``meta`` is ``(kernel_metadata, bias_metadata)``."""
    return Linear(
        fin,
        fout,
        use_bias=use_bias,
        kernel_init=kernel_init,
        bias_init=bias_init,
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
        kernel_metadata=meta[0],
        bias_metadata=meta[1],
    )


class LSTMCell(_Cell):
    """A long short-term memory cell; the carry is ``(c, h)``.

    Input projections ``ii``, ``if_``, ``ig``, ``io`` (no bias) and hidden
    projections ``hi``, ``hf``, ``hg``, ``ho`` (with bias), one per gate.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import LSTMCell
    >>> cell = LSTMCell(3, 4, rngs=Rngs(0))
    >>> carry = cell.initialize_carry((2, 3))
    >>> (c, h), y = cell(carry, jnp.ones((2, 3)))
    >>> h.shape, bool((y == h).all())
    ((2, 4), True)
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        gate_fn: Callable[[Array], Array] = jax.nn.sigmoid,
        activation_fn: Callable[[Array], Array] = jnp.tanh,
        kernel_init: Initializer = default_kernel_init,
        recurrent_kernel_init: Initializer = _orthogonal,
        bias_init: Initializer = initializers.zeros,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: Any,
        kernel_metadata: Mapping[str, Any] = EMPTY,
        recurrent_kernel_metadata: Mapping[str, Any] = EMPTY,
        bias_metadata: Mapping[str, Any] = EMPTY,
    ):
        rngs = as_rngs(rngs, type(self).__name__)
        self.in_features = in_features
        self.hidden_features = hidden_features
        self.gate_fn = gate_fn
        self.activation_fn = activation_fn
        self.dtype = dtype
        self.param_dtype = param_dtype
        inits = (kernel_init, recurrent_kernel_init, bias_init)
        metas = ((kernel_metadata, EMPTY), (recurrent_kernel_metadata, bias_metadata))
        self._projections(inits, (dtype, param_dtype, rngs), metas)

    def _projections(self, inits: tuple, args: tuple, metas: tuple) -> None:
        """One input and one hidden projection per gate (the hidden ones with the bias)."""
        fin, hidden = self.in_features, self.hidden_features
        kernel_init, recurrent_kernel_init, bias_init = inits
        for name in ("ii", "if_", "ig", "io"):
            setattr(self, name, _dense(fin, hidden, False, kernel_init, None, *args, metas[0]))
        for name in ("hi", "hf", "hg", "ho"):
            dense = _dense(hidden, hidden, True, recurrent_kernel_init, bias_init, *args, metas[1])
            setattr(self, name, dense)

    def __call__(self, carry: tuple[Array, Array], inputs: Array) -> tuple[Carry, Array]:
        self._check(inputs)
        c, h = carry
        i = self.gate_fn(self.ii(inputs) + self.hi(h))
        f = self.gate_fn(self.if_(inputs) + self.hf(h))
        g = self.activation_fn(self.ig(inputs) + self.hg(h))
        o = self.gate_fn(self.io(inputs) + self.ho(h))
        new_c = f * c + i * g
        new_h = o * self.activation_fn(new_c)
        return (new_c, new_h), new_h

    def initialize_carry(
        self, input_shape: tuple[int, ...], rngs: Any = None, carry_init: Initializer | None = None
    ) -> tuple[Array, Array]:
        """The initial ``(c, h)`` for inputs of ``input_shape`` (zeros unless ``carry_init``)."""
        shape = tuple(input_shape[:-1]) + (self.hidden_features,)
        return self._zeros_or(shape, rngs, carry_init), self._zeros_or(shape, rngs, carry_init)


class OptimizedLSTMCell(LSTMCell):
    """``LSTMCell``'s function with the four gates fused: two matrix products per step.

    Parameters as Flax NNX's ``OptimizedLSTMCell``: ``dense_i`` (kernel
    ``(in, 4 * hidden)``, no bias) and ``dense_h`` (kernel ``(hidden, 4 *
    hidden)`` and bias); the gates ``i, f, g, o`` are the four slices of their
    sum. The carry is ``(c, h)``.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import OptimizedLSTMCell
    >>> cell = OptimizedLSTMCell(3, 4, rngs=Rngs(0))
    >>> cell.dense_i.kernel.shape, cell.dense_h.kernel.shape
    ((3, 16), (4, 16))
    >>> (c, h), y = cell(cell.initialize_carry((2, 3)), jnp.ones((2, 3)))
    >>> h.shape
    (2, 4)
    """

    def _projections(self, inits: tuple, args: tuple, metas: tuple) -> None:
        """``dense_i`` and ``dense_h``, each projecting to all four gates at once."""
        fin, hidden = self.in_features, self.hidden_features
        kernel_init, recurrent_kernel_init, bias_init = inits
        self.dense_i = _dense(fin, 4 * hidden, False, kernel_init, None, *args, metas[0])
        self.dense_h = _dense(
            hidden, 4 * hidden, True, recurrent_kernel_init, bias_init, *args, metas[1]
        )

    def __call__(self, carry: tuple[Array, Array], inputs: Array) -> tuple[Carry, Array]:
        self._check(inputs)
        c, h = carry
        i, f, g, o = jnp.split(self.dense_i(inputs) + self.dense_h(h), 4, axis=-1)
        new_c = self.gate_fn(f) * c + self.gate_fn(i) * self.activation_fn(g)
        new_h = self.gate_fn(o) * self.activation_fn(new_c)
        return (new_c, new_h), new_h


class GRUCell(_Cell):
    """A gated recurrent unit; the carry is ``h``.

    ``dense_i`` (with bias) and ``dense_h`` (no bias) each project to the
    three gates ``r``, ``z``, ``n`` at once (``3 * hidden_features`` outputs).

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import GRUCell
    >>> cell = GRUCell(3, 4, rngs=Rngs(0))
    >>> h, y = cell(cell.initialize_carry((2, 3)), jnp.ones((2, 3)))
    >>> cell.dense_i.kernel.shape, h.shape
    ((3, 12), (2, 4))
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        gate_fn: Callable[[Array], Array] = jax.nn.sigmoid,
        activation_fn: Callable[[Array], Array] = jnp.tanh,
        kernel_init: Initializer = default_kernel_init,
        recurrent_kernel_init: Initializer = _orthogonal,
        bias_init: Initializer = initializers.zeros,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: Any,
        kernel_metadata: Mapping[str, Any] = EMPTY,
        recurrent_kernel_metadata: Mapping[str, Any] = EMPTY,
        bias_metadata: Mapping[str, Any] = EMPTY,
    ):
        rngs = as_rngs(rngs, type(self).__name__)
        self.in_features = in_features
        self.hidden_features = hidden_features
        self.gate_fn = gate_fn
        self.activation_fn = activation_fn
        self.dtype = dtype
        self.param_dtype = param_dtype
        n = 3 * hidden_features
        args = (dtype, param_dtype, rngs)
        self.dense_i = _dense(
            in_features, n, True, kernel_init, bias_init, *args, (kernel_metadata, bias_metadata)
        )
        self.dense_h = _dense(
            hidden_features,
            n,
            False,
            recurrent_kernel_init,
            None,
            *args,
            (recurrent_kernel_metadata, EMPTY),
        )

    def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
        self._check(inputs)
        h = carry
        xr, xz, xn = jnp.split(self.dense_i(inputs), 3, axis=-1)
        hr, hz, hn = jnp.split(self.dense_h(h), 3, axis=-1)
        r = self.gate_fn(xr + hr)
        z = self.gate_fn(xz + hz)
        n = self.activation_fn(xn + r * hn)
        new_h = (1.0 - z) * n + z * h
        return new_h, new_h

    def initialize_carry(
        self, input_shape: tuple[int, ...], rngs: Any = None, carry_init: Initializer | None = None
    ) -> Array:
        """The initial ``h`` for inputs of ``input_shape`` (zeros unless ``carry_init``)."""
        return self._zeros_or(tuple(input_shape[:-1]) + (self.hidden_features,), rngs, carry_init)


class SimpleCell(_Cell):
    """An Elman cell: ``h' = activation(dense_i(x) + dense_h(h) [+ h])``.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import SimpleCell
    >>> cell = SimpleCell(3, 4, rngs=Rngs(0))
    >>> h, y = cell(cell.initialize_carry((3,)), jnp.ones((3,)))
    >>> h.shape
    (4,)
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        residual: bool = False,
        activation_fn: Callable[[Array], Array] = jnp.tanh,
        kernel_init: Initializer = default_kernel_init,
        recurrent_kernel_init: Initializer = _orthogonal,
        bias_init: Initializer = initializers.zeros,
        rngs: Any,
        kernel_metadata: Mapping[str, Any] = EMPTY,
        recurrent_kernel_metadata: Mapping[str, Any] = EMPTY,
        bias_metadata: Mapping[str, Any] = EMPTY,
    ):
        rngs = as_rngs(rngs, type(self).__name__)
        self.in_features = in_features
        self.hidden_features = hidden_features
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.residual = residual
        self.activation_fn = activation_fn
        args = (dtype, param_dtype, rngs)
        n = hidden_features
        self.dense_h = _dense(
            n, n, False, recurrent_kernel_init, None, *args, (recurrent_kernel_metadata, EMPTY)
        )
        self.dense_i = _dense(
            in_features, n, True, kernel_init, bias_init, *args, (kernel_metadata, bias_metadata)
        )

    def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
        self._check(inputs)
        new = self.dense_i(inputs) + self.dense_h(carry)
        if self.residual:
            new = new + carry
        new = self.activation_fn(new)
        return new, new

    def initialize_carry(
        self, input_shape: tuple[int, ...], rngs: Any = None, carry_init: Initializer | None = None
    ) -> Array:
        """The initial ``h`` for inputs of ``input_shape`` (zeros unless ``carry_init``)."""
        return self._zeros_or(tuple(input_shape[:-1]) + (self.hidden_features,), rngs, carry_init)


def flip_sequences(
    inputs: Array, seq_lengths: Array | None, num_batch_dims: int, time_major: bool
) -> Array:
    """Reverse each sequence along time, keeping its padding at the end.

    >>> import jax.numpy as jnp
    >>> from ramie.layers import flip_sequences
    >>> x = jnp.array([[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    >>> flip_sequences(x, jnp.array([1, 2, 3]), 1, False).tolist()
    [[1, 0, 0], [3, 2, 0], [6, 5, 4]]
    """
    time_axis = 0 if time_major else num_batch_dims
    steps = inputs.shape[time_axis]
    if seq_lengths is None:
        return jnp.flip(inputs, axis=time_axis)
    lengths = jnp.expand_dims(seq_lengths, time_axis)
    idxs = jnp.arange(steps - 1, -1, -1)
    shape = [steps] + [1] * num_batch_dims if time_major else [1] * num_batch_dims + [steps]
    idxs = (jnp.reshape(idxs, shape) + lengths) % steps
    idxs = jnp.reshape(idxs, idxs.shape + (1,) * (inputs.ndim - idxs.ndim))
    return jnp.take_along_axis(inputs, idxs, axis=time_axis)


class RNN(Module):
    """Run ``cell`` over the time axis of ``(batch..., time, features)`` inputs with ``scan``.

    Returns the outputs at every step, or ``(carry, outputs)`` with
    ``return_carry=True``. ``seq_lengths`` (one per sequence) picks the carry
    at each sequence's last valid step; ``reverse`` runs backwards (keeping
    padding at the end), ``keep_order`` flips the outputs back.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import RNN, GRUCell
    >>> rnn = RNN(GRUCell(3, 5, rngs=Rngs(0)))
    >>> rnn(jnp.ones((2, 7, 3))).shape
    (2, 7, 5)
    """

    def __init__(
        self,
        cell: Module,
        *,
        time_major: bool = False,
        return_carry: bool = False,
        reverse: bool = False,
        keep_order: bool = False,
        unroll: int = 1,
    ):
        self.cell = cell
        self.time_major = time_major
        self.return_carry = return_carry
        self.reverse = reverse
        self.keep_order = keep_order
        self.unroll = unroll

    def __call__(
        self,
        inputs: Array,
        *,
        initial_carry: Carry | None = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        reverse: bool | None = None,
        keep_order: bool | None = None,
        rngs: Any = None,
    ) -> Any:
        return_carry = self.return_carry if return_carry is None else return_carry
        time_major = self.time_major if time_major is None else time_major
        reverse = self.reverse if reverse is None else reverse
        keep_order = self.keep_order if keep_order is None else keep_order
        n_features = self.cell.num_feature_axes
        time_axis = 0 if time_major else inputs.ndim - (n_features + 1)
        n_batch = inputs.ndim - n_features - 1
        if reverse:
            inputs = flip_sequences(inputs, seq_lengths, n_batch, time_major)
        if initial_carry is None:
            step_shape = inputs.shape[:time_axis] + inputs.shape[time_axis + 1 :]
            initial_carry = self.cell.initialize_carry(step_shape, rngs)
        xs = jnp.moveaxis(inputs, time_axis, 0)
        keep_carries = seq_lengths is not None and return_carry
        graphdef, state = split(self.cell)

        def step(loop, x):
            cell_state, carry = loop
            cell = merge(graphdef, cell_state)
            carry, y = cell(carry, x)
            out = (carry, y) if keep_carries else y
            return (split(cell)[1], carry), out

        (state, carry), ys = jax.lax.scan(step, (state, initial_carry), xs, unroll=self.unroll)
        update(self.cell, state)
        if keep_carries:
            carries, ys = ys
            last = seq_lengths - 1
            carry = jax.tree.map(lambda c: c[last, jnp.arange(c.shape[1])], carries)
        outputs = jax.tree.map(lambda y: jnp.moveaxis(y, 0, time_axis), ys)
        if reverse and keep_order:
            outputs = flip_sequences(outputs, seq_lengths, n_batch, time_major)
        return (carry, outputs) if return_carry else outputs


def _concatenate(a: Array, b: Array) -> Array:
    return jnp.concatenate([a, b], axis=-1)


class Bidirectional(Module):
    """Run one RNN forwards and another backwards and merge their outputs (concatenate).

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import RNN, Bidirectional, LSTMCell
    >>> rngs = Rngs(0)
    >>> bi = Bidirectional(RNN(LSTMCell(3, 4, rngs=rngs)), RNN(LSTMCell(3, 4, rngs=rngs)))
    >>> bi(jnp.ones((2, 6, 3))).shape
    (2, 6, 8)
    """

    def __init__(
        self,
        forward_rnn: RNN,
        backward_rnn: RNN,
        *,
        merge_fn: Callable[[Array, Array], Array] = _concatenate,
        time_major: bool = False,
        return_carry: bool = False,
    ):
        self.forward_rnn = forward_rnn
        self.backward_rnn = backward_rnn
        self.merge_fn = merge_fn
        self.time_major = time_major
        self.return_carry = return_carry

    def __call__(
        self,
        inputs: Array,
        *,
        initial_carry: tuple[Carry, Carry] | None = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        rngs: Any = None,
    ) -> Any:
        time_major = self.time_major if time_major is None else time_major
        return_carry = self.return_carry if return_carry is None else return_carry
        fwd0, bwd0 = initial_carry if initial_carry is not None else (None, None)
        common = dict(seq_lengths=seq_lengths, return_carry=True, time_major=time_major, rngs=rngs)
        carry_f, out_f = self.forward_rnn(inputs, initial_carry=fwd0, reverse=False, **common)
        carry_b, out_b = self.backward_rnn(
            inputs, initial_carry=bwd0, reverse=True, keep_order=True, **common
        )
        outputs = jax.tree.map(self.merge_fn, out_f, out_b)
        return ((carry_f, carry_b), outputs) if return_carry else outputs
