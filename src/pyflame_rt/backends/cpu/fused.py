"""CPU kernels of the ``pyflame`` domain: the ops the optimizer's fusions create.

Each is documented in ``docs/fused_ops.md``. They compute exactly what the subgraph they
replace computes (the heavy part goes through our own ONNX kernels: Conv, Gemm, MatMul, Erf,
LayerNormalization), then apply the epilogue in place on the freshly computed result, which
saves the intermediate tensors and the per-node dispatch of the unfused graph.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...ops import kernel, lookup

__all__ = [
    "apply_activation",
    "attention",
    "bias_gelu",
    "fused_conv",
    "fused_gemm",
    "fused_matmul",
    "gelu",
    "layer_normalization",
    "skip_layer_normalization",
]

ACTIVATIONS = ("", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Clip",
               "SiLU", "Gelu", "GeluTanh")


@functools.cache
def _onnx(op_type: str):
    return lookup(op_type, "", None).fn


def _fresh(y: np.ndarray, *inputs: Any) -> np.ndarray:
    """``y`` if it is safe to write into (not a view of an input), else a copy."""
    if not y.flags.writeable or any(isinstance(a, np.ndarray) and np.may_share_memory(y, a)
                                    for a in inputs):
        return y.copy()
    return y


def _sigmoid_inplace(y: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        np.negative(y, out=y)
        np.exp(y, out=y)
    y += 1
    np.reciprocal(y, out=y)
    return y


def _erf(x: np.ndarray) -> np.ndarray:
    if x.dtype in (np.float32, np.float64):
        return _onnx("Erf")(x)
    return _onnx("Erf")(x.astype(np.float32)).astype(x.dtype)


def _gelu(y: np.ndarray, approximate: str) -> np.ndarray:
    """GELU of ``y`` (a fresh array, overwritten)."""
    if approximate == "tanh":
        inner = y * y
        inner *= 0.044715
        inner += 1
        inner *= y
        inner *= math.sqrt(2.0 / math.pi)
        np.tanh(inner, out=inner)
    else:
        inner = _erf(y * np.asarray(1.0 / math.sqrt(2.0), dtype=y.dtype))
    inner += 1
    inner *= 0.5
    y *= inner
    return y


def apply_activation(y: np.ndarray, activation: str, params: Sequence[float] | None
                     ) -> np.ndarray:
    """Apply a fused op's activation to ``y`` in place (``y`` must be the op's own result)."""
    p = list(params or ())
    if not activation:
        return y
    dt = y.dtype
    if activation == "Relu":
        np.maximum(y, 0, out=y)
    elif activation == "LeakyRelu":
        alpha = p[0] if p else 0.01
        np.multiply(y, np.asarray(alpha, dt), out=y, where=y < 0)
    elif activation == "Sigmoid":
        _sigmoid_inplace(y)
    elif activation == "Tanh":
        np.tanh(y, out=y)
    elif activation == "HardSigmoid":
        alpha, beta = (p + [0.2, 0.5][len(p):])[:2]
        y *= np.asarray(alpha, dt)
        y += np.asarray(beta, dt)
        np.clip(y, 0, 1, out=y)
    elif activation == "HardSwish":
        gate = y * np.asarray(1.0 / 6.0, dt)
        gate += np.asarray(0.5, dt)
        np.clip(gate, 0, 1, out=gate)
        y *= gate
    elif activation == "Clip":
        lo, hi = (p + [-np.inf, np.inf][len(p):])[:2]
        np.clip(y, np.asarray(lo, dt), np.asarray(hi, dt), out=y)
    elif activation == "SiLU":
        y *= _sigmoid_inplace(y.copy())
    elif activation in ("Gelu", "GeluTanh"):
        _gelu(y, "tanh" if activation == "GeluTanh" else "none")
    else:
        raise ValueError(f"unknown fused activation {activation!r}; known: "
                         f"{', '.join(a for a in ACTIVATIONS if a)}")
    return y


def _specialize_fused_conv(ctx: Any) -> Any:
    """Compile-time fast path for float32 1-D/2-D convolutions with constant weights."""
    from .conv import specialize_conv

    return specialize_conv(ctx, fused_conv)


@kernel("FusedConv", since=1, domain="pyflame", specialize=_specialize_fused_conv)
def fused_conv(X: np.ndarray, W: np.ndarray, B: np.ndarray | None = None,
               Z: np.ndarray | None = None, *, auto_pad: str = "NOTSET",
               dilations: Sequence[int] | None = None, group: int = 1,
               kernel_shape: Sequence[int] | None = None, pads: Sequence[int] | None = None,
               strides: Sequence[int] | None = None, activation: str = "",
               activation_params: Sequence[float] | None = None) -> np.ndarray:
    """pyflame FusedConv-1: Y = activation(Conv(X, W, B) + Z)."""
    y = _onnx("Conv")(X, W, B, auto_pad=auto_pad, dilations=dilations, group=group,
                      kernel_shape=kernel_shape, pads=pads, strides=strides)
    y = _fresh(y, X, W, B, Z)
    if Z is not None:
        y += Z
    return apply_activation(y, activation, activation_params)


@kernel("FusedGemm", since=1, domain="pyflame")
def fused_gemm(A: np.ndarray, B: np.ndarray, C: np.ndarray | None = None, *,
               alpha: float = 1.0, beta: float = 1.0, transA: int = 0, transB: int = 0,
               activation: str = "", activation_params: Sequence[float] | None = None
               ) -> np.ndarray:
    """pyflame FusedGemm-1: Y = activation(alpha * A' @ B' + beta * C)."""
    y = _onnx("Gemm")(A, B, C, alpha=alpha, beta=beta, transA=transA, transB=transB)
    return apply_activation(_fresh(y, A, B, C), activation, activation_params)


def _swap(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2) if x.ndim >= 2 else x


@kernel("FusedMatMul", since=1, domain="pyflame")
def fused_matmul(A: np.ndarray, B: np.ndarray, C: np.ndarray | None = None, *,
                 alpha: float = 1.0, transA: int = 0, transB: int = 0, activation: str = "",
                 activation_params: Sequence[float] | None = None) -> np.ndarray:
    """pyflame FusedMatMul-1: Y = activation(alpha * A' @ B' + C), ' swapping the last two axes."""
    a = _swap(A) if transA else A
    b = _swap(B) if transB else B
    y = _fresh(np.asarray(_onnx("MatMul")(a, b)), A, B, C)
    if alpha != 1.0:
        y *= np.asarray(alpha, y.dtype)
    if C is not None:
        y += C
    return apply_activation(y, activation, activation_params)


@kernel("Gelu", since=1, domain="pyflame")
def gelu(X: np.ndarray, *, approximate: str = "none") -> np.ndarray:
    """pyflame Gelu-1: 0.5 * X * (1 + erf(X / sqrt(2))), or the tanh form (approximate="tanh")."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"Gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _gelu(X.copy(), approximate)


@kernel("BiasGelu", since=1, domain="pyflame")
def bias_gelu(X: np.ndarray, B: np.ndarray, *, approximate: str = "none") -> np.ndarray:
    """pyflame BiasGelu-1: Gelu(X + B)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"BiasGelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _gelu(X + B, approximate)


@kernel("LayerNormalization", since=1, domain="pyflame")
def layer_normalization(X: np.ndarray, Scale: np.ndarray, B: np.ndarray | None = None, *,
                        axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1
                        ) -> np.ndarray:
    """pyflame LayerNormalization-1: ONNX LayerNormalization-17 (output Y only), any opset."""
    return _onnx("LayerNormalization")(X, Scale, B, axis=axis, epsilon=epsilon,
                                       stash_type=stash_type)


@kernel("SkipLayerNormalization", since=1, domain="pyflame")
def skip_layer_normalization(X: np.ndarray, Skip: np.ndarray, gamma: np.ndarray,
                             beta: np.ndarray | None = None, bias: np.ndarray | None = None,
                             *, epsilon: float = 1e-5, _ctx: Any = None) -> Any:
    """pyflame SkipLayerNormalization-1: S = X + Skip (+ bias); Y = LayerNorm(S) over the last
    axis; outputs (Y, S)."""
    s = X + Skip
    if bias is not None:
        s += bias
    calc = np.float64 if s.dtype == np.float64 else np.float32
    x = s.astype(calc, copy=True)
    mean = x.mean(axis=-1, keepdims=True)
    x -= mean
    var = np.mean(x * x, axis=-1, keepdims=True)
    var += np.asarray(epsilon, calc)
    x /= np.sqrt(var)
    x *= gamma.astype(calc, copy=False)
    if beta is not None:
        x += beta.astype(calc, copy=False)
    y = x.astype(s.dtype, copy=False)
    if _ctx is not None and _ctx.noutputs > 1:
        return y, s
    return y


def _softmax_inplace(s: np.ndarray) -> np.ndarray:
    m = np.max(s, axis=-1, keepdims=True)
    # A row masked everywhere (all -inf) gives NaN, as the unfused Softmax does.
    s -= m
    np.exp(s, out=s)
    s /= np.sum(s, axis=-1, keepdims=True)
    return s


@kernel("Attention", since=1, domain="pyflame")
def attention(X: np.ndarray, W: np.ndarray, B: np.ndarray | None = None,
              attention_bias: np.ndarray | None = None, mask: np.ndarray | None = None, *,
              num_heads: int | None = None, scale: float | None = None,
              unidirectional: int = 0, mask_filter_value: float = -np.inf,
              mask_keep: int = 1) -> np.ndarray:
    """pyflame Attention-1: multi-head self-attention of X [B, S, hidden] with packed
    q/k/v weights W [hidden, 3 * heads * D]; returns the heads' context [B, S, heads * D]."""
    if num_heads is None or num_heads <= 0:
        raise ValueError("Attention: the 'num_heads' attribute is required and must be > 0")
    if X.ndim != 3 or W.ndim != 2 or W.shape[0] != X.shape[-1] or W.shape[1] % (3 * num_heads):
        raise ValueError(f"Attention: X {X.shape} and W {W.shape} are not [B, S, hidden] and "
                         f"[hidden, 3 * {num_heads} * D]")
    batch, seq, _ = X.shape
    width = W.shape[1] // 3
    dim = width // num_heads
    qkv = np.asarray(_onnx("MatMul")(X, W))
    if B is not None:
        qkv = qkv + B
    qkv = qkv.reshape(batch, seq, 3, num_heads, dim)
    q = qkv[:, :, 0].transpose(0, 2, 1, 3)
    k = qkv[:, :, 1].transpose(0, 2, 3, 1)
    v = qkv[:, :, 2].transpose(0, 2, 1, 3)
    s = np.matmul(q, k)
    s *= np.asarray(1.0 / math.sqrt(dim) if scale is None else scale, s.dtype)
    fill = np.asarray(mask_filter_value, s.dtype)
    if unidirectional:
        future = np.triu(np.ones((seq, seq), dtype=bool), k=1)
        s[..., future] = fill
    if mask is not None:
        keep = mask.astype(bool, copy=False) if mask_keep else ~mask.astype(bool, copy=False)
        s = np.where(keep, s, fill)
    if attention_bias is not None:
        s = s + attention_bias
    with np.errstate(invalid="ignore", over="ignore"):
        probs = _softmax_inplace(np.array(s, dtype=s.dtype, copy=not s.flags.writeable))
    ctx = np.matmul(probs, v)
    return np.ascontiguousarray(ctx.transpose(0, 2, 1, 3)).reshape(batch, seq, width)
