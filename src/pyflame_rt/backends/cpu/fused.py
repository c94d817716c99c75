"""CPU kernels of the ``pyflame`` domain: the ops the optimizer's fusions create.

Each is documented in ``docs/fused_ops.md``. They compute exactly what the subgraph they
replace computes (the heavy part goes through our own ONNX kernels: Conv, Gemm, MatMul, Erf,
LayerNormalization), then apply the epilogue in place on the freshly computed result, which
saves the intermediate tensors and the per-node dispatch of the unfused graph.

float32 has fast paths: FusedConv, FusedGemm, FusedMatMul and Attention with constant weights
are specialized at compile time (``conv/``, ``codegen/gemm.py``: packed weights, GEMMs split
over the session's threads, epilogue fused on cache-hot tiles); Gelu, BiasGelu, the layer
norms, the activations and the attention softmax run numba kernels (``codegen/_nb_norm.py``,
``codegen/_nb_epilogue.py``) over rows split across the threads. Other dtypes take the numpy
code.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...ops import kernel, lookup
from . import threads
from .codegen import par
from .codegen.activations import ACT_CODES, act_params

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

_EMPTY = np.zeros(0, np.float32)

ACTIVATIONS = ("", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Clip",
               "SiLU", "Gelu", "GeluTanh")


#: Elements per parallel job of the elementwise and row kernels.
_ROW_JOB = 1 << 15


@functools.cache
def _onnx(op_type: str):
    return lookup(op_type, "", None).fn


def _fast(*arrays: Any) -> bool:
    """float32 C-contiguous arrays (or None), and the numba kernels available."""
    return all(a is None or (isinstance(a, np.ndarray) and a.dtype == np.float32
                             and a.flags.c_contiguous) for a in arrays) and par.available()


def _row_parts(rows: int, n: int) -> np.ndarray:
    """(r0, r1) blocks of rows of ``n`` elements: a few per thread, none too small."""
    per = max(1, _ROW_JOB // max(n, 1))
    nthreads = threads.current_threads()
    if nthreads > 1:
        per = min(per, max(1, -(-rows // (4 * nthreads))))
    return np.array([(r, min(rows, r + per)) for r in range(0, rows, per)],
                    np.int64).reshape(-1, 2)


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
    if (_fast(y) and y.flags.writeable and activation in ACT_CODES and y.size
            and par.available()):
        code, a0, a1 = act_params(activation, params)
        par.run("activation", _row_parts(y.size, 1), y.reshape(-1), code, a0, a1)
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


def _specialize_fused_gemm(ctx: Any) -> Any:
    """Compile-time fast path: packed constant B, threads, fused bias + activation."""
    from .codegen.gemm import specialize_fused_gemm

    return specialize_fused_gemm(ctx, fused_gemm)


@kernel("FusedGemm", since=1, domain="pyflame", specialize=_specialize_fused_gemm)
def fused_gemm(A: np.ndarray, B: np.ndarray, C: np.ndarray | None = None, *,
               alpha: float = 1.0, beta: float = 1.0, transA: int = 0, transB: int = 0,
               activation: str = "", activation_params: Sequence[float] | None = None
               ) -> np.ndarray:
    """pyflame FusedGemm-1: Y = activation(alpha * A' @ B' + beta * C)."""
    y = _onnx("Gemm")(A, B, C, alpha=alpha, beta=beta, transA=transA, transB=transB)
    return apply_activation(_fresh(y, A, B, C), activation, activation_params)


def _swap(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2) if x.ndim >= 2 else x


def _specialize_fused_matmul(ctx: Any) -> Any:
    """Compile-time fast path: packed constant B, threads, fused bias + activation."""
    from .codegen.gemm import specialize_fused_matmul

    return specialize_fused_matmul(ctx, fused_matmul)


@kernel("FusedMatMul", since=1, domain="pyflame", specialize=_specialize_fused_matmul)
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


def _fast_bias_gelu(X: np.ndarray, B: np.ndarray | None, approximate: str) -> np.ndarray | None:
    n = X.shape[-1] if X.ndim else 1
    if not _fast(X) or X.size == 0 or (B is not None and (not _fast(B) or B.shape != (n,))):
        return None
    y = np.empty_like(X)
    xf, yf = X.reshape(-1), y.reshape(-1)
    bias = B if B is not None else _EMPTY
    approx = approximate == "tanh"
    par.run("rows_bias_gelu", _row_parts(X.size // n, n), xf, yf, bias, B is not None, n,
            approx)
    return y


@kernel("Gelu", since=1, domain="pyflame")
def gelu(X: np.ndarray, *, approximate: str = "none") -> np.ndarray:
    """pyflame Gelu-1: 0.5 * X * (1 + erf(X / sqrt(2))), or the tanh form (approximate="tanh")."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"Gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    fast = _fast_bias_gelu(X, None, approximate)
    if fast is not None:
        return fast
    return _gelu(X.copy(), approximate)


@kernel("BiasGelu", since=1, domain="pyflame")
def bias_gelu(X: np.ndarray, B: np.ndarray, *, approximate: str = "none") -> np.ndarray:
    """pyflame BiasGelu-1: Gelu(X + B)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"BiasGelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    fast = _fast_bias_gelu(X, B, approximate)
    if fast is not None:
        return fast
    return _gelu(X + B, approximate)


def _fast_layer_norm(X: np.ndarray, scale: np.ndarray, B: np.ndarray | None, axis: int,
                     epsilon: float) -> np.ndarray | None:
    if X.ndim == 0 or not _fast(X, scale, B):
        return None
    n = X.shape[-1]
    if axis not in (-1, X.ndim - 1) or scale.size != n or (B is not None and B.size != n):
        return None
    y = np.empty_like(X)
    xf, yf = X.reshape(-1), y.reshape(-1)
    g = scale.reshape(-1)
    b = B.reshape(-1) if B is not None else _EMPTY
    par.run("rows_layer_norm", _row_parts(X.size // n, n), xf, yf, g, b, B is not None,
            float(epsilon), n)
    return y


@kernel("LayerNormalization", since=1, domain="pyflame")
def layer_normalization(X: np.ndarray, Scale: np.ndarray, B: np.ndarray | None = None, *,
                        axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1
                        ) -> np.ndarray:
    """pyflame LayerNormalization-1: ONNX LayerNormalization-17 (output Y only), any opset."""
    if stash_type == 1 and X.size:
        fast = _fast_layer_norm(X, Scale, B, axis, epsilon)
        if fast is not None:
            return fast
    return _onnx("LayerNormalization")(X, Scale, B, axis=axis, epsilon=epsilon,
                                       stash_type=stash_type)


def _fast_skip_layer_norm(X: np.ndarray, Skip: np.ndarray, gamma: np.ndarray,
                          beta: np.ndarray | None, bias: np.ndarray | None, epsilon: float
                          ) -> tuple[np.ndarray, np.ndarray] | None:
    if X.ndim == 0 or X.size == 0 or not _fast(X, Skip, gamma, beta, bias):
        return None
    n = X.shape[-1]
    if any(v is not None and v.size != n for v in (gamma, beta, bias)):
        return None
    # Skip equal to X's shape, or X's shape without its leading (batch) axes.
    if Skip.shape != X.shape and Skip.shape != X.shape[X.ndim - Skip.ndim:]:
        return None
    if Skip.size == 0 or X.size % Skip.size:
        return None
    y = np.empty_like(X)
    s_out = np.empty_like(X)
    xf, kf, yf, sf = X.reshape(-1), Skip.reshape(-1), y.reshape(-1), s_out.reshape(-1)
    g = gamma.reshape(-1)
    b = beta.reshape(-1) if beta is not None else _EMPTY
    bb = bias.reshape(-1) if bias is not None else _EMPTY
    par.run("rows_skip_layer_norm", _row_parts(X.size // n, n), xf, kf, bb, bias is not None,
            g, b, beta is not None, float(epsilon), yf, sf, n, Skip.size // n)
    return y, s_out


@kernel("SkipLayerNormalization", since=1, domain="pyflame")
def skip_layer_normalization(X: np.ndarray, Skip: np.ndarray, gamma: np.ndarray,
                             beta: np.ndarray | None = None, bias: np.ndarray | None = None,
                             *, epsilon: float = 1e-5, _ctx: Any = None) -> Any:
    """pyflame SkipLayerNormalization-1: S = X + Skip (+ bias); Y = LayerNorm(S) over the last
    axis; outputs (Y, S)."""
    fast = _fast_skip_layer_norm(X, Skip, gamma, beta, bias, epsilon)
    if fast is not None:
        y, s = fast
    else:
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


def _compact_mask(x: np.ndarray, full: tuple[int, int, int, int], dtype: Any
                  ) -> np.ndarray:
    """``x`` (broadcastable to ``full`` = [B, H, S, S]) as a C-contiguous [B|1, H|1, S|1, S]
    array of ``dtype``: broadcast axes stay of size 1 (the kernel indexes them at 0), only the
    key axis is materialized, so every row the kernel reads is unit-stride. Raises ValueError
    when ``x`` does not broadcast."""
    if x.ndim > 4 or np.broadcast_shapes(x.shape, full) != full:
        raise ValueError(f"mask shape {list(x.shape)} does not broadcast to {list(full)}")
    x4 = x.reshape((1,) * (4 - x.ndim) + x.shape) if x.ndim < 4 else x
    shape = tuple(1 if d == 1 else f for d, f in zip(x4.shape[:3], full[:3])) + (full[3],)
    return np.ascontiguousarray(np.broadcast_to(x4, shape), dtype=dtype)


#: Fewest query rows per attention job: smaller GEMMs lose more to call overhead than they
#: gain in balance.
_ATTN_MIN_ROWS = 32


def _attention_rows(batch: int, heads: int, seq: int, causal: bool) -> int:
    """Query rows per attention job: whole heads while there are a few jobs per thread;
    otherwise (few heads, e.g. ViT-tiny's 3 at batch 1) halves, quarters... of them. Causal
    heads are split at least once: the first block then multiplies only half the keys."""
    nthreads = threads.current_threads()

    def split_more(blocks: int) -> bool:
        if seq // (2 * blocks) < _ATTN_MIN_ROWS:
            return False
        if causal and blocks < 2:
            return True
        return nthreads > 1 and batch * heads * blocks < 4 * nthreads

    blocks = 1
    while split_more(blocks):
        blocks *= 2
    rows = -(-seq // blocks)
    return min(seq, -(-rows // 8) * 8)


def _attention_fast(qkv: np.ndarray, batch: int, seq: int, heads: int, dim: int,
                    attention_bias: np.ndarray | None, mask: np.ndarray | None, scale: float,
                    unidirectional: int, mask_filter_value: float, mask_keep: int
                    ) -> np.ndarray | None:
    """Attention over the packed projections qkv [B, S, 3, H, D] (float32), one job per
    (batch, head, block of query rows): q k^T on the generated panel GEMM (cblas without
    it), the numba masked softmax, P v by cblas, the context written straight into its
    [B, S, H * D] slot."""
    full = (batch, heads, seq, seq)
    keep = add = None
    try:
        if mask is not None:
            keep_b = mask.astype(bool, copy=False)
            if not mask_keep:
                keep_b = ~keep_b
            keep = _compact_mask(keep_b, full, np.bool_).view(np.uint8)
        if attention_bias is not None:
            if attention_bias.dtype != np.float32:
                return None
            add = _compact_mask(attention_bias, full, np.float32)
    except ValueError:
        return None  # shapes that do not broadcast: the numpy path raises the error
    width = heads * dim
    ctx = np.empty((batch, seq, width), np.float32)
    fp, ilp64 = par.blas()
    par.run("attention", fp, ilp64, np.ascontiguousarray(qkv), ctx, float(scale),
            bool(unidirectional), float(mask_filter_value),
            keep if keep is not None else _NO_KEEP, keep is not None,
            add if add is not None else _NO_ADD, add is not None,
            _attention_rows(batch, heads, seq, bool(unidirectional)), *_panel_gemm())
    return ctx


def _panel_gemm() -> tuple[int, int]:
    """(address, panel width) of the generated GEMM driver, or (0, 32) to use cblas."""
    from .codegen.gemm_ir import gemm_kernel

    kernel = gemm_kernel()
    return (kernel.address, kernel.nr) if kernel is not None else (0, 32)


_NO_KEEP = np.ones((1, 1, 1, 1), np.uint8)
_NO_ADD = np.zeros((1, 1, 1, 1), np.float32)


#: Bias values that exclude a key as surely as -inf: exp(s - 1e30 - max) is 0 in float32 for
#: any finite score s.
_MASKED_BIAS = -1e30


def _is_causal_bias(bias: Any) -> bool:
    """Whether ``bias`` is a constant float32 [S, S] / [1, S, S] / [1, 1, S, S] causal mask:
    0 on and below the diagonal, <= -1e30 (or -inf) above it."""
    if not isinstance(bias, np.ndarray) or bias.dtype != np.float32 or bias.ndim < 2 \
            or bias.shape[-1] != bias.shape[-2] or any(d != 1 for d in bias.shape[:-2]):
        return False
    sq = bias.reshape(bias.shape[-2:])
    above = np.triu(np.ones(sq.shape, bool), 1)
    return bool(np.all(sq[~above] == 0) and np.all(sq[above] <= _MASKED_BIAS))


def _specialize_attention(ctx: Any) -> Any:
    """Compile-time fast path: the q/k/v projection with packed constant weights and bias."""
    consts = list(ctx.constants) + [None] * 5
    w, b = consts[1], consts[2]
    if not isinstance(w, np.ndarray) or w.dtype != np.float32 or w.ndim != 2:
        return None
    has_b = len(ctx.input_types) > 2 and ctx.input_types[2] is not None
    if has_b and (not isinstance(b, np.ndarray) or b.dtype != np.float32 or b.ndim != 1
                  or b.size != w.shape[1]):
        return None
    from .codegen.gemm import PackedGemm, known_rows

    packed = PackedGemm(w, b if has_b else None, rows=known_rows(ctx))
    attrs = dict(ctx.attrs)
    b_expected = b if has_b else None
    # A constant causal bias (GPT-2's exported mask: 0 on and below the diagonal, -FLT_MAX
    # or -inf above) is the same as unidirectional: the kernel then skips the masked keys.
    causal_bias = consts[3] if _is_causal_bias(consts[3]) else None
    causal_attrs = {**attrs, "unidirectional": 1}

    def run(X: np.ndarray, W: np.ndarray, B: np.ndarray | None = None,
            attention_bias: np.ndarray | None = None, mask: np.ndarray | None = None
            ) -> np.ndarray:
        if (W is not w or B is not b_expected or X.dtype != np.float32 or X.ndim != 3
                or X.shape[-1] != w.shape[0]):
            return attention(X, W, B, attention_bias, mask, **attrs)
        x2 = X.reshape(-1, X.shape[-1])
        if not x2.flags.c_contiguous:
            x2 = np.ascontiguousarray(x2)
        if (attention_bias is causal_bias and causal_bias is not None
                and causal_bias.shape[-1] == X.shape[1]):
            return _attention_impl(X, W, B, None, mask, qkv=packed(x2), **causal_attrs)
        return _attention_impl(X, W, B, attention_bias, mask, qkv=packed(x2), **attrs)

    return run


@kernel("Attention", since=1, domain="pyflame", specialize=_specialize_attention)
def attention(X: np.ndarray, W: np.ndarray, B: np.ndarray | None = None,
              attention_bias: np.ndarray | None = None, mask: np.ndarray | None = None, *,
              num_heads: int | None = None, scale: float | None = None,
              unidirectional: int = 0, mask_filter_value: float = -np.inf,
              mask_keep: int = 1) -> np.ndarray:
    """pyflame Attention-1: multi-head self-attention of X [B, S, hidden] with packed
    q/k/v weights W [hidden, 3 * heads * D]; returns the heads' context [B, S, heads * D]."""
    return _attention_impl(X, W, B, attention_bias, mask, num_heads=num_heads, scale=scale,
                           unidirectional=unidirectional, mask_filter_value=mask_filter_value,
                           mask_keep=mask_keep)


def _attention_impl(X: np.ndarray, W: np.ndarray, B: np.ndarray | None,
                    attention_bias: np.ndarray | None, mask: np.ndarray | None, *,
                    num_heads: int | None = None, scale: float | None = None,
                    unidirectional: int = 0, mask_filter_value: float = -np.inf,
                    mask_keep: int = 1, qkv: np.ndarray | None = None) -> np.ndarray:
    if num_heads is None or num_heads <= 0:
        raise ValueError("Attention: the 'num_heads' attribute is required and must be > 0")
    if X.ndim != 3 or W.ndim != 2 or W.shape[0] != X.shape[-1] or W.shape[1] % (3 * num_heads):
        raise ValueError(f"Attention: X {X.shape} and W {W.shape} are not [B, S, hidden] and "
                         f"[hidden, 3 * {num_heads} * D]")
    batch, seq, _ = X.shape
    width = W.shape[1] // 3
    dim = width // num_heads
    if qkv is None:
        qkv = np.asarray(_onnx("MatMul")(X, W))
        if B is not None:
            qkv = qkv + B
    qkv = qkv.reshape(batch, seq, 3, num_heads, dim)
    sc = 1.0 / math.sqrt(dim) if scale is None else scale
    if qkv.dtype == np.float32 and seq > 0 and dim > 0 and par.available():
        fast = _attention_fast(qkv, batch, seq, num_heads, dim, attention_bias, mask, sc,
                               unidirectional, mask_filter_value, mask_keep)
        if fast is not None:
            return fast
    q = qkv[:, :, 0].transpose(0, 2, 1, 3)
    k = qkv[:, :, 1].transpose(0, 2, 3, 1)
    v = qkv[:, :, 2].transpose(0, 2, 1, 3)
    s = np.matmul(q, k)
    s *= np.asarray(sc, s.dtype)
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
