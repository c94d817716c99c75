"""CPU kernels for normalization ops.

BatchNormalization, InstanceNormalization, LayerNormalization, GroupNormalization, LRN,
MeanVarianceNormalization, RMSNormalization and LpNormalization. Statistics are computed in
float32 for 16-bit inputs (float64 for float64 inputs); inference-mode BatchNormalization folds
its four parameter vectors into one scale and one shift, so it is two passes over the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...ops import kernel
from ...types import DType
from .nn import compute_dtype, output_wanted

__all__ = [
    "batch_normalization_7",
    "batch_normalization_9",
    "batch_normalization_14",
    "group_normalization_18",
    "group_normalization_21",
    "instance_normalization",
    "layer_normalization",
    "lp_normalization",
    "lrn",
    "mean_variance_normalization",
    "rms_normalization",
]


def _noutputs(_ctx: Any) -> int:
    """How many leading outputs to return: 1 unless an output after Y is actually wanted."""
    if _ctx is None:
        return 1
    n = int(getattr(_ctx, "noutputs", 1))
    return n if any(output_wanted(_ctx, i) for i in range(1, n)) else 1


def _channel_shape(x: np.ndarray) -> tuple[int, ...]:
    """Broadcast shape of a per-channel vector against (N, C, D1, ...)."""
    return (1, -1) + (1,) * (x.ndim - 2)


def _stat_dtype(*arrays: np.ndarray) -> np.dtype:
    """float64 if any operand is float64, else float32 (statistics never run in 16 bits)."""
    return np.dtype(np.float64) if any(a.dtype == np.float64 for a in arrays) else \
        np.dtype(np.float32)


def _bn_inference(X: np.ndarray, scale: np.ndarray, B: np.ndarray, mean: np.ndarray,
                  var: np.ndarray, epsilon: float, per_activation: bool = False) -> np.ndarray:
    if X.ndim < 2:
        raise ValueError(f"BatchNormalization: X must be (N, C, ...), got shape {X.shape}")
    ct = compute_dtype(X.dtype)
    # Fold (x - mean) / sqrt(var + eps) * scale + B into x * a + b, parameters in float64.
    inv = 1.0 / np.sqrt(var.astype(np.float64) + epsilon)
    a = scale.astype(np.float64) * inv
    b = B.astype(np.float64) - mean.astype(np.float64) * a
    if per_activation and a.ndim > 1:
        shape: tuple[int, ...] = (1, *a.shape)
    else:
        shape = _channel_shape(X)
    y = X.astype(ct) * a.astype(ct).reshape(shape)
    y += b.astype(ct).reshape(shape)
    return y.astype(X.dtype, copy=False)


def _bn_batch_stats(X: np.ndarray, axes: tuple[int, ...], *params: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch mean and population variance over ``axes`` (keepdims) and x in the stat dtype."""
    st = _stat_dtype(X, *params)
    x = X.astype(st, copy=False)
    m = x.mean(axis=axes, keepdims=True)
    d = x - m
    v = np.mean(d * d, axis=axes, keepdims=True)
    return x, m, v


def _bn_training(X: np.ndarray, scale: np.ndarray, B: np.ndarray, mean: np.ndarray,
                 var: np.ndarray, epsilon: float, momentum: float, axes: tuple[int, ...]
                 ) -> tuple[np.ndarray, ...]:
    x, m, v = _bn_batch_stats(X, axes, scale, B, mean, var)
    pshape = m.shape
    inv = 1.0 / np.sqrt(v + np.asarray(epsilon, dtype=v.dtype))
    sc = scale.astype(x.dtype).reshape(pshape)
    bi = B.astype(x.dtype).reshape(pshape)
    y = ((x - m) * (inv * sc) + bi).astype(X.dtype, copy=False)
    mflat = m.reshape(mean.shape)
    vflat = v.reshape(var.shape)
    mom = np.asarray(momentum, dtype=x.dtype)
    run_mean = (mean.astype(x.dtype) * mom + mflat * (1 - mom)).astype(mean.dtype)
    run_var = (var.astype(x.dtype) * mom + vflat * (1 - mom)).astype(var.dtype)
    saved_inv_std = inv.reshape(var.shape).astype(var.dtype)
    return y, run_mean, run_var, mflat.astype(mean.dtype), saved_inv_std


@kernel("BatchNormalization", since=7)
def batch_normalization_7(X: np.ndarray, scale: np.ndarray, B: np.ndarray, mean: np.ndarray,
                          var: np.ndarray, *, epsilon: float = 1e-5, momentum: float = 0.9,
                          spatial: int = 1, _ctx: Any = None) -> Any:
    """ONNX BatchNormalization-7: inference; with >1 outputs, training (as ONNX Runtime).

    Training outputs are Y, running mean, running var, saved mean and (like ONNX Runtime)
    the saved inverse standard deviation. ``spatial=0`` normalizes per activation: the
    parameters then have shape (C, D1, ...).
    """
    nout = _noutputs(_ctx)
    per_act = not spatial
    if nout == 1:
        return _bn_inference(X, scale, B, mean, var, epsilon, per_activation=per_act)
    axes = (0,) if per_act else (0, *range(2, X.ndim))
    return _bn_training(X, scale, B, mean, var, epsilon, momentum, axes)[:nout]


@kernel("BatchNormalization", since=9)
def batch_normalization_9(X: np.ndarray, scale: np.ndarray, B: np.ndarray, mean: np.ndarray,
                          var: np.ndarray, *, epsilon: float = 1e-5, momentum: float = 0.9,
                          _ctx: Any = None) -> Any:
    """ONNX BatchNormalization-9: per-channel; with >1 outputs, training (as ONNX Runtime)."""
    nout = _noutputs(_ctx)
    if nout == 1:
        return _bn_inference(X, scale, B, mean, var, epsilon)
    axes = (0, *range(2, X.ndim))
    return _bn_training(X, scale, B, mean, var, epsilon, momentum, axes)[:nout]


@kernel("BatchNormalization", since=14)
def batch_normalization_14(X: np.ndarray, scale: np.ndarray, B: np.ndarray,
                           input_mean: np.ndarray, input_var: np.ndarray, *,
                           epsilon: float = 1e-5, momentum: float = 0.9, training_mode: int = 0,
                           _ctx: Any = None) -> Any:
    """ONNX BatchNormalization-14/15: training_mode outputs Y, running_mean, running_var."""
    nout = _noutputs(_ctx)
    if not training_mode:
        y = _bn_inference(X, scale, B, input_mean, input_var, epsilon)
        # Extra outputs are invalid in inference mode; pass the statistics through if asked.
        return y if nout == 1 else (y, input_mean, input_var)[:nout]
    axes = (0, *range(2, X.ndim))
    res = _bn_training(X, scale, B, input_mean, input_var, epsilon, momentum, axes)
    return res[0] if nout == 1 else res[:min(nout, 3)]


@kernel("InstanceNormalization", since=6)
def instance_normalization(X: np.ndarray, scale: np.ndarray, B: np.ndarray, *,
                           epsilon: float = 1e-5) -> np.ndarray:
    """ONNX InstanceNormalization-6/22: normalize each (n, c) over its spatial axes."""
    x_in = X
    if x_in.ndim < 3:
        raise ValueError(f"InstanceNormalization: input must be (N, C, D1, ...), got shape "
                         f"{x_in.shape}")
    st = _stat_dtype(x_in, scale, B)
    x = x_in.astype(st, copy=False)
    axes = tuple(range(2, x.ndim))
    d = x - x.mean(axis=axes, keepdims=True)
    var = np.mean(d * d, axis=axes, keepdims=True)
    a = scale.astype(st).reshape(_channel_shape(x)) / np.sqrt(var + np.asarray(epsilon, st))
    d *= a
    d += B.astype(st).reshape(_channel_shape(x))
    return d.astype(x_in.dtype, copy=False)


def _axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < rank:
        raise ValueError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def _stash(stash_type: int, x: np.ndarray, op: str) -> tuple[np.dtype, np.dtype]:
    """(dtype the statistics are computed in, dtype of the Mean/InvStdDev outputs)."""
    try:
        out_dt = DType.from_onnx(stash_type).numpy
    except ValueError:
        raise ValueError(f"{op}: stash_type={stash_type} is not an ONNX element type") from None
    if out_dt.kind != "f" and not out_dt.name.startswith("bfloat16"):
        raise ValueError(f"{op}: stash_type={stash_type} is not a floating-point type")
    calc = np.dtype(np.float64) if np.float64 in (x.dtype, out_dt) else np.dtype(np.float32)
    return calc, out_dt


@kernel("LayerNormalization", since=17)
def layer_normalization(X: np.ndarray, Scale: np.ndarray, B: np.ndarray | None = None, *,
                        axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1,
                        _ctx: Any = None) -> Any:
    """ONNX LayerNormalization-17: normalize over axes [axis, rank); outputs Y, Mean, InvStdDev."""
    ax = _axis(axis, X.ndim, "LayerNormalization")
    calc, stat_dt = _stash(stash_type, X, "LayerNormalization")
    x = X.astype(calc, copy=False)
    axes = tuple(range(ax, X.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    d = x - mean
    var = np.mean(d * d, axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + np.asarray(epsilon, dtype=calc))
    d *= inv
    d *= Scale.astype(calc, copy=False)
    if B is not None:
        d += B.astype(calc, copy=False)
    y = d.astype(X.dtype, copy=False)
    nout = _noutputs(_ctx)
    if nout == 1:
        return y
    return (y, mean.astype(stat_dt), inv.astype(stat_dt))[:nout]


def _group_norm(X: np.ndarray, scale_c: np.ndarray, bias_c: np.ndarray, num_groups: int,
                epsilon: float, calc: np.dtype) -> np.ndarray:
    x = X.astype(calc, copy=False).reshape(X.shape[0], num_groups, -1)
    d = x - x.mean(axis=2, keepdims=True)
    var = np.mean(d * d, axis=2, keepdims=True)
    d *= 1.0 / np.sqrt(var + np.asarray(epsilon, dtype=calc))
    y = d.reshape(X.shape)
    y *= scale_c.astype(calc).reshape(_channel_shape(X))
    y += bias_c.astype(calc).reshape(_channel_shape(X))
    return y.astype(X.dtype, copy=False)


def _check_groups(X: np.ndarray, num_groups: int | None) -> int:
    if num_groups is None:
        raise ValueError("GroupNormalization: the 'num_groups' attribute is required")
    if X.ndim < 2:
        raise ValueError(f"GroupNormalization: X must be (N, C, ...), got shape {X.shape}")
    if num_groups <= 0 or X.shape[1] % num_groups:
        raise ValueError(f"GroupNormalization: num_groups={num_groups} must divide the "
                         f"{X.shape[1]} channels")
    return int(num_groups)


@kernel("GroupNormalization", since=18)
def group_normalization_18(X: np.ndarray, scale: np.ndarray, bias: np.ndarray, *,
                           epsilon: float = 1e-5, num_groups: int | None = None) -> np.ndarray:
    """ONNX GroupNormalization-18: statistics per (n, group); scale and bias per group."""
    g = _check_groups(X, num_groups)
    c = X.shape[1]
    if scale.size == g and bias.size == g:
        per = c // g
        scale_c, bias_c = np.repeat(scale.reshape(-1), per), np.repeat(bias.reshape(-1), per)
    elif scale.size == c and bias.size == c:
        # Per-channel parameters (the opset-21 meaning) were written by exporters that targeted
        # the corrected definition; accept them rather than refuse the model.
        scale_c, bias_c = scale.reshape(-1), bias.reshape(-1)
    else:
        raise ValueError(f"GroupNormalization-18: scale and bias must have num_groups={g} "
                         f"elements, got {scale.size} and {bias.size}")
    return _group_norm(X, scale_c, bias_c, g, epsilon, _stat_dtype(X))


@kernel("GroupNormalization", since=21)
def group_normalization_21(X: np.ndarray, scale: np.ndarray, bias: np.ndarray, *,
                           epsilon: float = 1e-5, num_groups: int | None = None,
                           stash_type: int = 1) -> np.ndarray:
    """ONNX GroupNormalization-21: statistics per (n, group); scale and bias per channel."""
    g = _check_groups(X, num_groups)
    c = X.shape[1]
    if scale.size != c or bias.size != c:
        raise ValueError(f"GroupNormalization-21: scale and bias must have one element per "
                         f"channel ({c}), got {scale.size} and {bias.size}")
    calc, _ = _stash(stash_type, X, "GroupNormalization")
    return _group_norm(X, scale.reshape(-1), bias.reshape(-1), g, epsilon, calc)


@kernel("LRN", since=1)
def lrn(X: np.ndarray, *, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0,
        size: int | None = None) -> np.ndarray:
    """ONNX LRN-1/13: X / (bias + alpha / size * sum of squares over a channel window)^beta."""
    if size is None or size <= 0:
        raise ValueError(f"LRN: the 'size' attribute is required and must be positive, got "
                         f"{size}")
    if X.ndim < 2:
        raise ValueError(f"LRN: X must be (N, C, ...), got shape {X.shape}")
    st = _stat_dtype(X)
    x = X.astype(st, copy=False)
    c = x.shape[1]
    lo = (size - 1) // 2
    hi = size - 1 - lo  # ceil((size - 1) / 2)
    sq = np.zeros((x.shape[0], c + lo + hi, *x.shape[2:]), dtype=st)
    np.multiply(x, x, out=sq[:, lo:lo + c])
    ssum = sq[:, 0:c].copy()
    for j in range(1, size):
        ssum += sq[:, j:j + c]
    ssum *= np.asarray(alpha / size, dtype=st)
    ssum += np.asarray(bias, dtype=st)
    y = x / ssum ** np.asarray(beta, dtype=st)
    return y.astype(X.dtype, copy=False)


@kernel("MeanVarianceNormalization", since=9)
def mean_variance_normalization(X: np.ndarray, *, axes: Sequence[int] = (0, 2, 3)
                                ) -> np.ndarray:
    """ONNX MeanVarianceNormalization-9/13: (X - E[X]) / (sqrt(Var[X]) + 1e-9) over ``axes``."""
    ax = tuple(sorted({_axis(int(a), X.ndim, "MeanVarianceNormalization") for a in axes}))
    st = _stat_dtype(X)
    x = X.astype(st, copy=False)
    d = x - x.mean(axis=ax, keepdims=True)
    # The ONNX function uses E[x^2] - E[x]^2; the two-pass form is the same value without
    # cancellation (and never negative).
    std = np.sqrt(np.mean(d * d, axis=ax, keepdims=True))
    d /= std + np.asarray(1e-9, dtype=st)
    return d.astype(X.dtype, copy=False)


@kernel("RMSNormalization", since=23)
def rms_normalization(X: np.ndarray, scale: np.ndarray, *, axis: int = -1,
                      epsilon: float = 1e-5, stash_type: int = 1) -> np.ndarray:
    """ONNX RMSNormalization-23: X / sqrt(mean(X^2 over [axis, rank)) + epsilon) * scale."""
    ax = _axis(axis, X.ndim, "RMSNormalization")
    calc, _ = _stash(stash_type, X, "RMSNormalization")
    x = X.astype(calc, copy=False)
    axes = tuple(range(ax, X.ndim))
    ms = np.mean(x * x, axis=axes, keepdims=True)
    y = x * (1.0 / np.sqrt(ms + np.asarray(epsilon, dtype=calc)))
    y *= scale.astype(calc, copy=False)
    # The output has the type of scale (type parameter V).
    return y.astype(scale.dtype, copy=False)


@kernel("LpNormalization", since=1)
def lp_normalization(X: np.ndarray, *, axis: int = -1, p: int = 2) -> np.ndarray:
    """ONNX LpNormalization-1/22: input / ||input||_p along ``axis`` (0 where the norm is 0)."""
    x_in = X
    if p not in (1, 2):
        raise ValueError(f"LpNormalization: p must be 1 or 2, got {p}")
    ax = _axis(axis, x_in.ndim, "LpNormalization")
    ct = compute_dtype(x_in.dtype)
    x = x_in.astype(ct, copy=False)
    if p == 1:
        norm = np.sum(np.abs(x), axis=ax, keepdims=True)
    else:
        norm = np.sqrt(np.sum(x * x, axis=ax, keepdims=True))
    zero = norm == 0
    y = x / np.where(zero, np.ones((), dtype=ct), norm)
    if zero.any():
        y = np.where(zero, np.zeros((), dtype=ct), y)
    return y.astype(x_in.dtype, copy=False)
