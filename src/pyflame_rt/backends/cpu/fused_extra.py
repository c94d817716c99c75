"""More CPU kernels of the ``pyflame`` domain: QuickGelu, RMSNormalization, BiasSoftmax,
EmbedLayerNormalization and ChannelAffine (each documented in ``docs/fused_ops.md``).

Like ``fused.py`` they compute exactly what the subgraph they replace computes, in fewer
passes over memory. float16/bfloat16 inputs are computed in float32 and cast back, as the
unfused graph's kernels do. ChannelAffine (BatchNormalization folded with its activation)
reuses the planner's per-channel affine numba pass (``codegen/affine.py``) for float32.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...ops import kernel, lookup

__all__ = [
    "bias_softmax",
    "channel_affine",
    "embed_layer_normalization",
    "quick_gelu",
    "rms_normalization",
]


def _work_dtype(dt: np.dtype) -> np.dtype:
    """float64 stays float64; every other float is computed in float32."""
    return np.dtype(np.float64) if dt == np.float64 else np.dtype(np.float32)


@functools.cache
def _layer_norm():
    return lookup("LayerNormalization", "pyflame", 1).fn


@kernel("QuickGelu", since=1, domain="pyflame")
def quick_gelu(X: np.ndarray, *, alpha: float = 1.702) -> np.ndarray:
    """pyflame QuickGelu-1: Y = X * Sigmoid(alpha * X)."""
    work = _work_dtype(X.dtype)
    x = X.astype(work, copy=False)
    z = x * np.asarray(-alpha, work)
    with np.errstate(over="ignore"):
        np.exp(z, out=z)  # exp(-alpha x) may overflow to inf: the sigmoid is then 0
    z += 1
    y = np.divide(x, z, out=z)
    return y.astype(X.dtype, copy=False)


@kernel("RMSNormalization", since=1, domain="pyflame")
def rms_normalization(X: np.ndarray, scale: np.ndarray, *, axis: int = -1,
                      epsilon: float = 1e-5) -> np.ndarray:
    """pyflame RMSNormalization-1: X / Sqrt(ReduceMean(X^2 over [axis, rank)) + epsilon) *
    scale, computed in float32 (float64 for float64), output in X's dtype."""
    rank = X.ndim
    ax = axis + rank if axis < 0 else axis
    if not 0 <= ax < max(rank, 1):
        raise ValueError(f"RMSNormalization: axis {axis} is out of range for rank {rank}")
    work = _work_dtype(X.dtype)
    x = X.astype(work, copy=False)
    inner = int(np.prod(X.shape[ax:], dtype=np.int64))
    rows = x.reshape(-1, inner) if inner else x.reshape(0, 0)
    # Sum of squares per row without a squared temporary.
    ms = np.einsum("ij,ij->i", rows, rows) if rows.size else np.zeros(rows.shape[0], work)
    ms /= max(inner, 1)
    ms += np.asarray(epsilon, work)
    inv = 1.0 / np.sqrt(ms)
    y = rows * inv[:, None]
    y *= np.broadcast_to(scale.astype(work, copy=False), X.shape[ax:]).reshape(1, -1)
    return y.reshape(X.shape).astype(X.dtype, copy=False)


@kernel("BiasSoftmax", since=1, domain="pyflame")
def bias_softmax(X: np.ndarray, B: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """pyflame BiasSoftmax-1: Y = Softmax-13(X + B, axis) (B broadcasts to X's shape)."""
    s = np.add(X, B)
    if s.shape != X.shape:
        raise ValueError(f"BiasSoftmax: the bias of shape {B.shape} widens X {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        # Narrow floats: exactly the unfused Add + Softmax-13 (rounding included).
        return lookup("Softmax", "", 13).fn(s, axis=axis)
    if s.ndim == 0:
        s = s.reshape(1)
    ax = axis + s.ndim if axis < 0 else axis
    if not 0 <= ax < s.ndim:
        raise ValueError(f"BiasSoftmax: axis {axis} is out of range for rank {s.ndim}")
    with np.errstate(invalid="ignore", over="ignore"):
        s -= np.max(s, axis=ax, keepdims=True)  # an all -inf row gives NaN, as Softmax does
        np.exp(s, out=s)
        s /= np.sum(s, axis=ax, keepdims=True)
    return s.reshape(X.shape).astype(X.dtype, copy=False)


def _gather_rows(table: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    n = table.shape[0]
    if ids.size and (int(ids.max()) >= n or int(ids.min()) < -n):
        raise ValueError(f"EmbedLayerNormalization: {what} ids must lie in [{-n}, {n - 1}] for "
                         f"a table of {n} rows; got values from {int(ids.min())} to "
                         f"{int(ids.max())}")
    return np.take(table, ids, axis=0)


@kernel("EmbedLayerNormalization", since=1, domain="pyflame")
def embed_layer_normalization(input_ids: np.ndarray, segment_ids: np.ndarray | None,
                              word_embedding: np.ndarray,
                              position_embedding: np.ndarray | None = None,
                              segment_embedding: np.ndarray | None = None,
                              gamma: np.ndarray | None = None, beta: np.ndarray | None = None,
                              position_ids: np.ndarray | None = None, *,
                              epsilon: float = 1e-5, _ctx: Any = None) -> Any:
    """pyflame EmbedLayerNormalization-1: S = word[input_ids] + position term + segment[
    segment_ids]; Y = LayerNormalization(S, gamma, beta) over the last axis; outputs (Y, S)."""
    if gamma is None:
        raise ValueError("EmbedLayerNormalization: the gamma input is required")
    if word_embedding.ndim != 2:
        raise ValueError(f"EmbedLayerNormalization: word_embedding must be 2-D, got shape "
                         f"{word_embedding.shape}")
    s = _gather_rows(word_embedding, input_ids, "input")
    if position_embedding is not None:
        if position_ids is not None:
            pos = _gather_rows(position_embedding, position_ids, "position")
        else:
            # No ids: rows 0 .. S-1 (S = input_ids' last dim), broadcast over the batch.
            seq = input_ids.shape[-1] if input_ids.ndim else 1
            if position_embedding.shape[0] < seq:
                raise ValueError(f"EmbedLayerNormalization: {seq} positions but only "
                                 f"{position_embedding.shape[0]} position embeddings")
            pos = position_embedding[:seq]
        s = s + pos
    if segment_embedding is not None and segment_ids is not None:
        s = s + _gather_rows(segment_embedding, segment_ids, "segment")
    elif not s.flags.writeable or s.base is not None:
        s = s.copy()
    y = _layer_norm()(s, gamma, beta, axis=-1, epsilon=epsilon)
    if _ctx is not None and _ctx.noutputs > 1:
        return y, s
    return y


def _channel_view(v: np.ndarray, rank: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (rank - 2))


def _specialize_channel_affine(ctx: Any) -> Any:
    """float32 with constant scale/bias: the planner's per-channel numba pass, activation
    applied in the same pass."""
    from .codegen.activations import ACT_CODES, act_params
    from .codegen.affine import ChannelAffine

    consts = list(ctx.constants) + [None] * 3
    scale, bias = consts[1], consts[2]
    types = list(ctx.input_types)
    dtype = getattr(getattr(types[0] if types else None, "dtype", None), "numpy", None)
    if dtype != np.float32 or not all(isinstance(c, np.ndarray) and c.dtype == np.float32
                                      and c.ndim == 1 for c in (scale, bias)):
        return None
    activation = ctx.attrs.get("activation", "") or ""
    if isinstance(activation, bytes):
        activation = activation.decode()
    if activation not in ACT_CODES:
        return None
    params = ctx.attrs.get("activation_params")
    attrs = dict(ctx.attrs)

    def generic(X: np.ndarray, *inputs: Any, _ctx: Any = None) -> np.ndarray:
        return channel_affine(X, *inputs, **attrs)

    affine = ChannelAffine(scale, bias, (scale, bias), generic)
    affine.act, affine.a0, affine.a1 = act_params(activation, params)

    # A plain function, not the ChannelAffine object: its activation is already set, so the
    # planner must not offer it a following Relu to absorb.
    def run(X: np.ndarray, scale_in: np.ndarray, bias_in: np.ndarray) -> np.ndarray:
        return affine(X, scale_in, bias_in)

    # It may still read a channel Concat piece by piece (executor ``_absorb_concats``).
    run.absorb_concat = affine.absorb_concat  # type: ignore[attr-defined]
    return run


@kernel("ChannelAffine", since=1, domain="pyflame", specialize=_specialize_channel_affine)
def channel_affine(X: np.ndarray, scale: np.ndarray, bias: np.ndarray, *,
                   activation: str = "", activation_params: Sequence[float] | None = None
                   ) -> np.ndarray:
    """pyflame ChannelAffine-1: Y = activation(X * scale[c] + bias[c]), c the axis-1 channel
    (BatchNormalization folded with the activation after it)."""
    from .fused import apply_activation

    if X.ndim < 2 or scale.size != X.shape[1] or bias.size != X.shape[1]:
        raise ValueError(f"ChannelAffine: X of shape {X.shape} needs scale and bias of "
                         f"{X.shape[1] if X.ndim > 1 else '?'} channels, got {scale.shape} and "
                         f"{bias.shape}")
    work = _work_dtype(X.dtype)
    y = X.astype(work, copy=True)
    y *= _channel_view(scale.astype(work, copy=False), X.ndim)
    y += _channel_view(bias.astype(work, copy=False), X.ndim)
    y = apply_activation(y, activation, activation_params)
    return y.astype(X.dtype, copy=False)
