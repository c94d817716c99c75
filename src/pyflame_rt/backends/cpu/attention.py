"""CPU kernels for attention-family ops.

Attention (23/24/25), RotaryEmbedding, SwiGLU, TensorScatter, LinearAttention,
CausalConvWithState and ``ai.onnx.preview`` FlexAttention.

Arithmetic runs in float32 (float64 for double inputs). For 16-bit inputs the ops' function
bodies compute every step in the input type, so we round back to that type at the same points
(after the Q/K scaling, the QK product, the soft cap, the bias add, each softmax step, ...):
this keeps float16 results within one unit in the last place of the spec's own decomposition.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ...ops import KernelContext, kernel
from ...types import DType
from .nn import compute_dtype, output_wanted

__all__ = [
    "attention_23",
    "attention_24",
    "attention_25",
    "causal_conv_with_state",
    "flex_attention",
    "linear_attention",
    "rotary_embedding",
    "swiglu",
    "tensor_scatter",
]

_NEG_INF = -np.inf


def _text(value: Any, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _rounder(dtype: np.dtype) -> Callable[[np.ndarray], np.ndarray]:
    """``x -> x`` rounded to ``dtype`` and back to its compute dtype (identity when equal)."""
    dtype = np.dtype(dtype)
    work = compute_dtype(dtype)
    if work == dtype:
        return lambda x: x
    return lambda x: x.astype(dtype).astype(work)


def _precision_dtype(elem_type: int, what: str) -> np.dtype:
    """The numpy dtype of an ONNX float element type given as an attribute value."""
    try:
        dtype = DType(int(elem_type)).numpy
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{what}={elem_type} is not an ONNX element type") from exc
    dtype = np.dtype(dtype)
    if dtype.kind != "f" and not dtype.name.startswith("bfloat16"):
        raise ValueError(f"{what}={elem_type} ({dtype.name}) must be a floating-point type "
                         "(1 FLOAT, 10 FLOAT16, 11 DOUBLE or 16 BFLOAT16)")
    return dtype


def _softmax_last(x: np.ndarray, rnd: Callable[[np.ndarray], np.ndarray], *,
                  inplace: bool = False) -> np.ndarray:
    """Softmax over the last axis; a row that is all ``-inf`` gives zeros, not NaN.

    ``rnd`` rounds each intermediate to the softmax precision (numpy's 16-bit float ops
    compute in float32 and round after every step, so we do too). With ``inplace`` the
    result may be written into ``x``.
    """
    if x.shape[-1] == 0:
        return x.copy()
    row_max = x.max(axis=-1, keepdims=True)
    row_max[np.isneginf(row_max)] = 0
    if inplace:
        x -= row_max
        e = rnd(x)
    else:
        e = rnd(x - row_max)
    np.exp(e, out=e)
    e = rnd(e)
    total = rnd(e.sum(axis=-1, keepdims=True))
    total[total == 0] = 1
    e /= total
    return rnd(e)


def _heads_4d(x: np.ndarray, num_heads: int, what: str) -> np.ndarray:
    """(B, S, H*D) -> (B, H, S, D)."""
    b, s, hidden = x.shape
    if num_heads <= 0 or hidden % num_heads:
        raise ValueError(f"{what} hidden size {hidden} is not a multiple of the number of "
                         f"heads {num_heads}")
    return x.reshape(b, s, num_heads, hidden // num_heads).transpose(0, 2, 1, 3)


def _part(x: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    """``x[start:stop]`` along ``axis``, unless that axis is a broadcast axis of size 1."""
    if x.shape[axis] == 1:
        return x
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


#: Elements of one block of attention scores (4 MiB in float32): big enough for efficient
#: GEMMs, small enough to bound memory and keep the softmax passes mostly in cache. Row blocks
#: of a causal/windowed attention only multiply the keys their rows can see.
_BLOCK_ELEMENTS = 1 << 20
#: Fewest query rows per block, so each GEMM keeps a useful height however long the keys are.
_MIN_BLOCK_ROWS = 16


def _mask_5d(attn_mask: np.ndarray, shape4: tuple[int, int, int, int], hkv: int,
             work: np.dtype, rnd: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """attn_mask -> (b|1, hkv|1, rep|1, sq|1, skv): bool kept, numbers as T1-rounded bias."""
    batch, hq, sq, skv = shape4
    mask = attn_mask
    if mask.ndim == 0 or mask.ndim > 4 or mask.shape[-1] > skv:
        raise ValueError(f"attn_mask shape {list(mask.shape)} does not broadcast to the "
                         f"attention matrix {[batch, hq, sq, skv]}")
    if mask.dtype != np.bool_:
        mask = rnd(mask.astype(work))
    if mask.shape[-1] < skv:
        # A mask shorter than the keys leaves the extra (padding) keys masked out.
        fill = False if mask.dtype == np.bool_ else _NEG_INF
        pad = [(0, 0)] * (mask.ndim - 1) + [(0, skv - mask.shape[-1])]
        mask = np.pad(mask, pad, constant_values=fill)
    mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
    if any(m not in (1, n) for m, n in zip(mask.shape, shape4)):
        raise ValueError(f"attn_mask shape {list(attn_mask.shape)} does not broadcast to the "
                         f"attention matrix {[batch, hq, sq, skv]}")
    mb, mh, mq, _ = mask.shape
    if mh == 1:
        return mask.reshape(mb, 1, 1, mq, skv)
    return mask.reshape(mb, hkv, hq // hkv, mq, skv)


def _attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, attn_mask: np.ndarray | None,
               past_key: np.ndarray | None, past_value: np.ndarray | None,
               nonpad_kv_seqlen: np.ndarray | None, *, is_causal: int,
               kv_num_heads: int | None, q_num_heads: int | None, qk_matmul_output_mode: int,
               scale: float | None, softcap: float, softmax_precision: int | None,
               left_window_size: int, right_window_size: int, _ctx: Any) -> Any:
    if not (Q.ndim == K.ndim == V.ndim) or Q.ndim not in (3, 4):
        raise ValueError(f"Q, K and V must all be 3-D or all be 4-D, got shapes "
                         f"{list(Q.shape)}, {list(K.shape)}, {list(V.shape)}")
    if (past_key is None) != (past_value is None):
        raise ValueError("past_key and past_value must be given together (or neither)")
    if nonpad_kv_seqlen is not None and past_key is not None:
        raise ValueError("nonpad_kv_seqlen (external KV cache) cannot be combined with "
                         "past_key/past_value (internal KV cache)")
    if qk_matmul_output_mode not in (0, 1, 2, 3):
        raise ValueError(f"qk_matmul_output_mode={qk_matmul_output_mode} must be 0, 1, 2 or 3")
    for name, size in (("left_window_size", left_window_size),
                       ("right_window_size", right_window_size)):
        if size < -1:
            raise ValueError(f"{name}={size} must be -1 (unbounded) or >= 0")
    is_3d = Q.ndim == 3
    if is_3d:
        if q_num_heads is None or kv_num_heads is None:
            raise ValueError("3-D Q/K/V need the q_num_heads and kv_num_heads attributes")
        Q = _heads_4d(Q, q_num_heads, "Q")
        K = _heads_4d(K, kv_num_heads, "K")
        V = _heads_4d(V, kv_num_heads, "V")
    batch, hq, sq, head = Q.shape
    if K.shape[0] != batch or V.shape[0] != batch or K.shape[1] != V.shape[1] or \
            K.shape[3] != head or K.shape[2] != V.shape[2]:
        raise ValueError(f"K {list(K.shape)} and V {list(V.shape)} must match Q "
                         f"{list(Q.shape)} in batch, K must have Q's head size and V as many "
                         "heads and positions as K")
    hkv = K.shape[1]
    if hkv == 0 or hq % hkv:
        raise ValueError(f"the number of query heads ({hq}) must be a multiple of the number "
                         f"of key/value heads ({hkv})")
    rep = hq // hkv

    t1 = Q.dtype
    work = compute_dtype(t1)
    rnd = _rounder(t1)
    sdtype = t1 if softmax_precision is None else _precision_dtype(softmax_precision,
                                                                   "softmax_precision")
    swork = compute_dtype(sdtype)
    srnd = _rounder(sdtype)
    vwork = np.result_type(work, compute_dtype(V.dtype))

    if past_key is not None and (
            past_key.ndim != 4 or past_value.ndim != 4 or
            past_key.shape[:2] != K.shape[:2] or past_key.shape[3] != head or
            past_value.shape[:2] != V.shape[:2] or past_value.shape[3] != V.shape[3] or
            past_key.shape[2] != past_value.shape[2]):
        raise ValueError(f"past_key {list(past_key.shape)} / past_value "
                         f"{list(past_value.shape)} must be (batch, kv_num_heads, past_len, "
                         f"head_size) matching K {list(K.shape)} and V {list(V.shape)}")
    present_key = K if past_key is None else np.concatenate([past_key, K], axis=2)
    present_value = V if past_value is None else np.concatenate([past_value, V], axis=2)
    past_len = 0 if past_key is None else past_key.shape[2]
    skv, dv = present_key.shape[2], present_value.shape[3]
    want_qk = output_wanted(_ctx, 3)

    mask5 = None
    if attn_mask is not None:
        mask5 = _mask_5d(attn_mask, (batch, hq, sq, skv), hkv, work, rnd)

    # Structural mask (causal / sliding window / key padding): query row i of batch b sits
    # at absolute position pos[b, i] and may see keys lo[b, i] <= j <= hi[b, i].
    structural = bool(is_causal) or left_window_size >= 0 or right_window_size >= 0 or \
        nonpad_kv_seqlen is not None
    if structural:
        rows = np.arange(sq, dtype=np.int64)[None, :]
        if nonpad_kv_seqlen is not None:
            lengths = np.asarray(nonpad_kv_seqlen).astype(np.int64).reshape(-1, 1)
            if lengths.shape[0] != batch:
                raise ValueError(f"nonpad_kv_seqlen has {lengths.shape[0]} entries, expected "
                                 f"one per batch ({batch})")
            # External cache: the query block ends at the last valid key of each batch.
            pos = rows + (lengths - sq)
        else:
            lengths = None
            pos = rows + past_len
        lo = np.zeros_like(pos)
        hi = np.full_like(pos, skv - 1)
        if is_causal:
            hi = np.minimum(hi, pos)
        if left_window_size >= 0:
            lo = np.maximum(lo, pos - left_window_size)
        if right_window_size >= 0:
            hi = np.minimum(hi, pos + right_window_size)
        if lengths is not None:
            hi = np.minimum(hi, lengths - 1)
        lo4 = lo[:, None, :, None]  # (b|1, 1, sq, 1) against key columns
        hi4 = hi[:, None, :, None]
        # Keys any batch may see, per query row: a row block only multiplies those.
        row_lo, row_hi = lo.min(axis=0), hi.max(axis=0)

    # Q and K each scaled by sqrt(scale), as the spec's function body does.
    if scale is None:
        scale = 1.0 / math.sqrt(head)
    if scale < 0:
        raise ValueError(f"scale={scale} must be >= 0 (Q and K are each scaled by its root)")
    root = np.asarray(math.sqrt(scale), dtype=t1).astype(work)
    q5 = rnd(Q.astype(work) * root).reshape(batch, hkv, rep, sq, head)
    kt = rnd(present_key.astype(work) * root).swapaxes(-1, -2)[:, :, None]  # (b, hkv, 1, d, skv)
    v5 = present_value.astype(vwork, copy=False)[:, :, None]  # (b, hkv, 1, skv, dv)
    y5 = np.zeros((batch, hkv, rep, sq, dv), dtype=vwork)

    if want_qk:
        # The 4th output needs the whole score matrix: one block, every key.
        batch_step, row_step = batch, sq
        qk_parts: dict[int, np.ndarray] = {}
    else:
        per_row = max(1, hq * skv)
        batch_step = max(1, min(batch, _BLOCK_ELEMENTS // (per_row * sq) or 1))
        row_step = min(sq, max(_MIN_BLOCK_ROWS, _BLOCK_ELEMENTS // (per_row * batch_step)))
    softcap_v = work.type(softcap) if softcap and softcap > 0 else None

    for b0 in range(0, batch, batch_step):
        b1 = min(batch, b0 + batch_step)
        for r0 in range(0, sq, row_step):
            r1 = min(sq, r0 + row_step)
            c0, c1 = 0, skv
            if structural and not want_qk:
                c0 = int(row_lo[r0:r1].min())
                c1 = int(row_hi[r0:r1].max()) + 1
                if c1 <= c0:
                    continue  # no key is visible to these rows: their output stays zero
            bb, rb, cb = b1 - b0, r1 - r0, c1 - c0
            # One GEMM per KV head: its query heads' rows stacked as (rep * rb, d).
            qb = q5[b0:b1, :, :, r0:r1].reshape(bb, hkv, rep * rb, head)
            s = np.matmul(qb, kt[b0:b1, :, 0, :, c0:c1])
            s = rnd(s.reshape(bb, hkv, rep, rb, cb))
            if want_qk:
                qk_parts[0] = s.copy()
            if softcap_v is not None:
                s = rnd(s / softcap_v)
                np.tanh(s, out=s)
                s = rnd(rnd(s) * softcap_v)
            if want_qk:
                qk_parts[1] = s.copy()
            bias = None
            if mask5 is not None:
                mb = _part(_part(_part(mask5, 0, b0, b1), 3, r0, r1), 4, c0, c1)
                if mb.dtype == np.bool_:
                    bias = np.where(mb, work.type(0), work.type(_NEG_INF))
                else:
                    bias = mb
            if structural:
                cols = np.arange(c0, c1, dtype=np.int64)
                lo_b = _part(lo4, 0, b0, b1)[:, :, r0:r1]
                hi_b = _part(hi4, 0, b0, b1)[:, :, r0:r1]
                seen = (cols >= lo_b) & (cols <= hi_b)  # (bb|1, 1, rb, cb)
                seen = seen[:, :, None]  # (bb|1, 1, 1, rb, cb)
                if bias is None:
                    bias = np.where(seen, work.type(0), work.type(_NEG_INF))
                else:
                    bias = np.where(seen, bias, work.type(_NEG_INF))
            if bias is not None:
                s += bias
                s = rnd(s)
            if want_qk:
                qk_parts[2] = s.copy()
            p = _softmax_last(srnd(s.astype(swork, copy=False)), srnd, inplace=True)
            if bias is not None:
                # A row with no attendable key gives zeros (decided on the bias, not logits).
                dead = np.isneginf(bias.max(axis=-1, keepdims=True))
                if dead.any():
                    np.copyto(p, 0, where=np.broadcast_to(dead, p.shape))
            p = rnd(p.astype(work, copy=False)) if sdtype != t1 else p
            if want_qk:
                qk_parts[3] = p
            pb = p.astype(vwork, copy=False).reshape(bb, hkv, rep * rb, cb)
            yb = np.matmul(pb, v5[b0:b1, :, 0, c0:c1])
            y5[b0:b1, :, :, r0:r1] = yb.reshape(bb, hkv, rep, rb, dv)

    y = y5.reshape(batch, hq, sq, dv).astype(t1)
    if is_3d:
        y = y.transpose(0, 2, 1, 3).reshape(batch, sq, hq * dv)
    n = 1 if _ctx is None else max(1, int(getattr(_ctx, "noutputs", 1)))
    if n == 1:
        return y
    outputs: list[Any] = [y, None, None, None]
    if output_wanted(_ctx, 1):
        outputs[1] = present_key
    if output_wanted(_ctx, 2):
        outputs[2] = present_value
    if want_qk:
        qk = qk_parts[qk_matmul_output_mode]
        qk = np.broadcast_to(qk, (batch, hkv, rep, sq, skv)).reshape(batch, hq, sq, skv)
        outputs[3] = qk.astype(t1)
    return tuple(outputs[:n])


@kernel("Attention", since=23)
def attention_23(Q, K, V, attn_mask=None, past_key=None, past_value=None, *,
                 is_causal: int = 0, kv_num_heads: int | None = None,
                 q_num_heads: int | None = None, qk_matmul_output_mode: int = 0,
                 scale: float | None = None, softcap: float = 0.0,
                 softmax_precision: int | None = None, _ctx: KernelContext | None = None):
    """ONNX Attention-23: scaled dot-product attention (MHA/GQA/MQA, masks, KV cache)."""
    return _attention(Q, K, V, attn_mask, past_key, past_value, None, is_causal=is_causal,
                      kv_num_heads=kv_num_heads, q_num_heads=q_num_heads,
                      qk_matmul_output_mode=qk_matmul_output_mode, scale=scale, softcap=softcap,
                      softmax_precision=softmax_precision, left_window_size=-1,
                      right_window_size=-1, _ctx=_ctx)


@kernel("Attention", since=24)
def attention_24(Q, K, V, attn_mask=None, past_key=None, past_value=None,
                 nonpad_kv_seqlen=None, *, is_causal: int = 0, kv_num_heads: int | None = None,
                 q_num_heads: int | None = None, qk_matmul_output_mode: int = 0,
                 scale: float | None = None, softcap: float = 0.0,
                 softmax_precision: int | None = None, _ctx: KernelContext | None = None):
    """ONNX Attention-24: Attention-23 plus ``nonpad_kv_seqlen`` for an external KV cache."""
    return _attention(Q, K, V, attn_mask, past_key, past_value, nonpad_kv_seqlen,
                      is_causal=is_causal, kv_num_heads=kv_num_heads, q_num_heads=q_num_heads,
                      qk_matmul_output_mode=qk_matmul_output_mode, scale=scale, softcap=softcap,
                      softmax_precision=softmax_precision, left_window_size=-1,
                      right_window_size=-1, _ctx=_ctx)


@kernel("Attention", since=25)
def attention_25(Q, K, V, attn_mask=None, past_key=None, past_value=None,
                 nonpad_kv_seqlen=None, *, is_causal: int = 0, kv_num_heads: int | None = None,
                 q_num_heads: int | None = None, qk_matmul_output_mode: int = 0,
                 scale: float | None = None, softcap: float = 0.0,
                 softmax_precision: int | None = None, left_window_size: int = -1,
                 right_window_size: int = -1, _ctx: KernelContext | None = None):
    """ONNX Attention-25: Attention-24 plus sliding-window (left/right_window_size) masking."""
    if Q.ndim == 4 and (q_num_heads is not None or kv_num_heads is not None):
        raise ValueError("q_num_heads/kv_num_heads are only for 3-D Q/K/V; 4-D inputs carry "
                         "the head counts in their shape, so remove these attributes")
    return _attention(Q, K, V, attn_mask, past_key, past_value, nonpad_kv_seqlen,
                      is_causal=is_causal, kv_num_heads=kv_num_heads, q_num_heads=q_num_heads,
                      qk_matmul_output_mode=qk_matmul_output_mode, scale=scale, softcap=softcap,
                      softmax_precision=softmax_precision, left_window_size=left_window_size,
                      right_window_size=right_window_size, _ctx=_ctx)


@kernel("RotaryEmbedding", since=23)
def rotary_embedding(X, cos_cache, sin_cache, position_ids=None, *, interleaved: int = 0,
                     num_heads: int | None = None, rotary_embedding_dim: int = 0):
    """ONNX RotaryEmbedding-23: rotate (halves or interleaved pairs of) each head by position."""
    if X.ndim == 4:
        x = X.transpose(0, 2, 1, 3)  # (B, S, H, D)
    elif X.ndim == 3:
        if not num_heads:
            raise ValueError("a 3-D RotaryEmbedding input needs the num_heads attribute")
        b, s, hidden = X.shape
        if hidden % num_heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of num_heads={num_heads}")
        x = X.reshape(b, s, num_heads, hidden // num_heads)
    else:
        raise ValueError(f"RotaryEmbedding input must be 3-D or 4-D, got shape {list(X.shape)}")
    head = x.shape[3]
    dim = rotary_embedding_dim or head
    if dim > head or dim % 2:
        raise ValueError(f"rotary_embedding_dim={dim} must be even and at most the head size "
                         f"{head}")
    half = dim // 2
    if position_ids is not None:
        pos = position_ids.astype(np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= cos_cache.shape[0]):
            raise ValueError(f"position_ids must lie in [0, {cos_cache.shape[0]}) (the caches' "
                             "first dimension)")
        cos, sin = cos_cache[pos], sin_cache[pos]
    else:
        cos, sin = cos_cache, sin_cache
    if cos.shape[-1] != half or sin.shape[-1] != half:
        raise ValueError(f"the cos/sin caches' last dimension must be rotary_embedding_dim/2 = "
                         f"{half}, got {cos.shape[-1]} and {sin.shape[-1]}")
    work = compute_dtype(X.dtype)
    rnd = _rounder(X.dtype)
    cos = cos.astype(work)[:, :, None, :]
    sin = sin.astype(work)[:, :, None, :]
    rot = x[..., :dim].astype(work)
    if interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
    else:
        x1, x2 = rot[..., :half], rot[..., half:]
    real = rnd(rnd(cos * x1) - rnd(sin * x2))
    imag = rnd(rnd(sin * x1) + rnd(cos * x2))
    out = np.empty(x.shape, dtype=X.dtype)
    if interleaved:
        out[..., 0:dim:2] = real
        out[..., 1:dim:2] = imag
    else:
        out[..., :half] = real
        out[..., half:dim] = imag
    out[..., dim:] = x[..., dim:]
    if X.ndim == 4:
        return np.ascontiguousarray(out.transpose(0, 2, 1, 3))
    return out.reshape(X.shape)


@kernel("SwiGLU", since=28)
def swiglu(A, B, *, alpha: float = 1.0):
    """ONNX SwiGLU-28: Y = A * Sigmoid(alpha * A) * B (Swish-gated linear unit)."""
    if A.shape != B.shape:
        raise ValueError(f"SwiGLU needs A and B of one shape (no broadcasting), got "
                         f"{list(A.shape)} and {list(B.shape)}")
    work = compute_dtype(A.dtype)
    rnd = _rounder(A.dtype)
    a = A.astype(work)
    with np.errstate(over="ignore"):
        # The sigmoid runs in float32 and is rounded once, like Swish; products round after.
        gate = rnd(1.0 / (1.0 + np.exp(work.type(-np.float32(alpha)) * a)))
    return (rnd(a * gate) * B.astype(work)).astype(A.dtype)


@kernel("TensorScatter", since=24)
def tensor_scatter(past_cache, update, write_indices=None, *, axis: int = -2,
                   mode: str = "linear"):
    """ONNX TensorScatter-24: write ``update`` into a copy of the cache along ``axis``."""
    mode = _text(mode, "linear")
    if mode not in ("linear", "circular"):
        raise ValueError(f"mode={mode!r} must be 'linear' or 'circular'")
    rank = past_cache.ndim
    if update.ndim != rank:
        raise ValueError(f"update rank {update.ndim} differs from past_cache rank {rank}")
    ax = axis + rank if axis < 0 else axis
    if not 1 <= ax < rank:
        raise ValueError(f"axis={axis} must name a non-batch axis of a rank-{rank} cache")
    cap, seq = past_cache.shape[ax], update.shape[ax]
    if seq > cap:
        raise ValueError(f"update has {seq} positions on axis {axis}, more than the cache's "
                         f"{cap}")
    batch = past_cache.shape[0]
    if write_indices is None:
        starts = np.zeros(batch, dtype=np.int64)
    else:
        starts = np.asarray(write_indices).astype(np.int64).reshape(-1)
        if starts.shape[0] != batch:
            raise ValueError(f"write_indices has {starts.shape[0]} entries, expected one per "
                             f"batch ({batch})")
    idx = starts[:, None] + np.arange(seq)[None, :]  # (batch, seq)
    if mode == "circular":
        idx %= cap
    elif idx.size and (idx.min() < 0 or idx.max() >= cap):
        raise ValueError(f"linear TensorScatter needs 0 <= write_indices and write_indices + "
                         f"{seq} <= {cap} (the cache length)")
    out = past_cache.copy()
    # Move the sequence axis next to the batch axis so one fancy index writes every row.
    out_v = np.moveaxis(out, ax, 1)
    upd_v = np.moveaxis(update, ax, 1)
    out_v[np.arange(batch)[:, None], idx] = upd_v
    return out


@kernel("LinearAttention", since=27)
def linear_attention(query, key, value, past_state=None, decay=None, beta=None, *,
                     chunk_size: int = 64, kv_num_heads: int | None = None,
                     q_num_heads: int | None = None, scale: float = 0.0,
                     update_rule: str = "gated_delta"):
    """ONNX LinearAttention-27: recurrent linear attention (linear/gated/delta/gated_delta)."""
    del chunk_size  # a tuning hint for chunked kernels; the recurrence below is exact
    rule = _text(update_rule, "gated_delta")
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        raise ValueError(f"update_rule={rule!r} must be one of linear, gated, delta, "
                         "gated_delta")
    if q_num_heads is None or kv_num_heads is None:
        raise ValueError("LinearAttention needs the q_num_heads and kv_num_heads attributes")
    if q_num_heads <= 0 or kv_num_heads <= 0 or q_num_heads % kv_num_heads:
        raise ValueError(f"q_num_heads={q_num_heads} must be a positive multiple of "
                         f"kv_num_heads={kv_num_heads}")
    gated = rule in ("gated", "gated_delta")
    delta = rule in ("delta", "gated_delta")
    if gated != (decay is not None):
        raise ValueError(f"update_rule {rule!r} {'needs' if gated else 'takes no'} decay input")
    if delta != (beta is not None):
        raise ValueError(f"update_rule {rule!r} {'needs' if delta else 'takes no'} beta input")
    for name, arr in (("query", query), ("key", key), ("value", value)):
        if arr.ndim != 3:
            raise ValueError(f"{name} must be 3-D (B, T, H*D), got shape {list(arr.shape)}")
    work = np.float32  # the spec's recurrence runs in float32 for every input type
    b, t, _ = query.shape
    q = _heads_4d(query, q_num_heads, "query").astype(work)  # (B, Hq, T, dk)
    k = _heads_4d(key, kv_num_heads, "key").astype(work)  # (B, Hkv, T, dk)
    v = _heads_4d(value, kv_num_heads, "value").astype(work)  # (B, Hkv, T, dv)
    dk, dv = k.shape[3], v.shape[3]
    if q.shape[3] != dk:
        raise ValueError(f"query head size {q.shape[3]} differs from key head size {dk}")
    group = q_num_heads // kv_num_heads
    if decay is not None:
        if decay.ndim != 3 or decay.shape[-1] not in (kv_num_heads, kv_num_heads * dk):
            raise ValueError(f"decay must be (B, T, {kv_num_heads}) or (B, T, "
                             f"{kv_num_heads * dk}), got {list(decay.shape)}")
        per_head = decay.shape[-1] == kv_num_heads
        g = decay.reshape(b, t, kv_num_heads, 1 if per_head else dk).transpose(0, 2, 1, 3)
        g = np.exp(g.astype(work))  # (B, Hkv, T, 1 or dk)
    if beta is not None:
        if beta.ndim != 3 or beta.shape[-1] not in (kv_num_heads, 1):
            raise ValueError(f"beta must be (B, T, {kv_num_heads}) or (B, T, 1), got "
                             f"{list(beta.shape)}")
        bt = beta.reshape(b, t, beta.shape[-1], 1).transpose(0, 2, 1, 3).astype(work)
    if past_state is not None:
        if past_state.shape != (b, kv_num_heads, dk, dv):
            raise ValueError(f"past_state shape {list(past_state.shape)} must be "
                             f"{[b, kv_num_heads, dk, dv]}")
        state = past_state.astype(work)  # always a fresh array: the input is never touched
        state_dtype = past_state.dtype
    else:
        state = np.zeros((b, kv_num_heads, dk, dv), dtype=work)
        state_dtype = query.dtype
    factor = work(scale if scale else 1.0 / math.sqrt(dk))
    # Queries grouped per KV head: (B, Hkv, group, T, dk), so each state serves its group.
    qg = q.reshape(b, kv_num_heads, group, t, dk)
    out = np.empty((b, kv_num_heads, group, t, dv), dtype=work)
    for i in range(t):
        k_t = k[:, :, i, :]  # (B, Hkv, dk)
        v_t = v[:, :, i, :]  # (B, Hkv, dv)
        if gated:
            state *= g[:, :, i, :, None]
        if delta:
            recalled = np.matmul(k_t[:, :, None, :], state)[:, :, 0, :]  # S^T k
            v_t = bt[:, :, i, :] * (v_t - recalled)
        state += k_t[:, :, :, None] * v_t[:, :, None, :]
        out[:, :, :, i, :] = np.matmul(qg[:, :, :, i, :], state) * factor
    y = out.reshape(b, q_num_heads, t, dv).transpose(0, 2, 1, 3).reshape(b, t, -1)
    return y.astype(query.dtype), state.astype(state_dtype)


@kernel("CausalConvWithState", since=27)
def causal_conv_with_state(input, weight, bias=None, past_state=None, *,
                           activation: str = "none"):
    """ONNX CausalConvWithState-27: stateful causal depthwise conv1d (+ optional SiLU)."""
    act = _text(activation, "none")
    if act not in ("none", "silu", "swish"):
        raise ValueError(f"activation={act!r} must be 'none', 'silu' or 'swish'")
    if input.ndim != 3 or weight.ndim != 3 or weight.shape[1] != 1:
        raise ValueError(f"input must be (B, C, L) and weight (C, 1, k), got "
                         f"{list(input.shape)} and {list(weight.shape)}")
    batch, channels, length = input.shape
    if weight.shape[0] != channels:
        raise ValueError(f"weight has {weight.shape[0]} channels, input has {channels}")
    k = weight.shape[2]
    work = compute_dtype(input.dtype)
    if past_state is None:
        pad = np.zeros((batch, channels, k - 1), dtype=input.dtype)
    else:
        if past_state.shape != (batch, channels, k - 1):
            raise ValueError(f"past_state shape {list(past_state.shape)} must be "
                             f"{[batch, channels, k - 1]}")
        pad = past_state.astype(input.dtype, copy=False)
    padded = np.concatenate([pad, input], axis=2)  # (B, C, L + k - 1)
    xw = padded.astype(work)
    w = weight[:, 0, :].astype(work)  # (C, k)
    y = np.zeros((batch, channels, length), dtype=work)
    for tap in range(k):
        y += xw[:, :, tap:tap + length] * w[None, :, tap:tap + 1]
    if bias is not None:
        y += bias.astype(work)[None, :, None]
    y = y.astype(input.dtype)
    if act != "none":
        # The conv result is rounded to the input type first, then SiLU runs in float32.
        y32 = y.astype(np.float32)
        with np.errstate(over="ignore"):
            y = (y32 / (1.0 + np.exp(-y32))).astype(input.dtype)
    present = padded[:, :, padded.shape[2] - (k - 1):]
    return y, np.ascontiguousarray(present)


@kernel("FlexAttention", since=1, domain="ai.onnx.preview")
def flex_attention(Q, K, V, *, prob_mod=None, scale: float | None = None, score_mod=None,
                   softmax_precision: int | None = None, _ctx: KernelContext | None = None):
    """ONNX preview FlexAttention-1: attention with score_mod/prob_mod subgraphs (rank-4)."""
    if Q.ndim != 4 or K.ndim != 4 or V.ndim != 4:
        raise ValueError(f"FlexAttention needs rank-4 Q, K, V, got shapes {list(Q.shape)}, "
                         f"{list(K.shape)}, {list(V.shape)}")
    batch, hq, sq, head = Q.shape
    hkv, skv = K.shape[1], K.shape[2]
    if K.shape[3] != head or V.shape[1] != hkv or V.shape[2] != skv:
        raise ValueError(f"K {list(K.shape)} / V {list(V.shape)} do not match Q "
                         f"{list(Q.shape)}")
    if hkv == 0 or hq % hkv:
        raise ValueError(f"q heads ({hq}) must be a multiple of kv heads ({hkv})")
    rep = hq // hkv
    t1 = Q.dtype
    if softmax_precision is None:
        sdtype = np.dtype(np.float64 if t1 == np.float64 else np.float32)
    else:
        sdtype = _precision_dtype(softmax_precision, "softmax_precision")
    work = compute_dtype(t1)
    rnd = _rounder(t1)
    if scale is None:
        scale = 1.0 / math.sqrt(head)
    if scale < 0:
        raise ValueError(f"scale={scale} must be >= 0 (Q and K are each scaled by its root)")
    # Scale factor computed in float32 like the function body, then cast to Q's type.
    root = np.asarray(np.sqrt(np.float32(scale)), dtype=t1).astype(work)
    q = rnd(Q.astype(work) * root).reshape(batch, hkv, rep, sq, head)
    k = rnd(K.astype(work) * root)[:, :, None]
    scores = rnd(np.matmul(q, k.swapaxes(-1, -2)).reshape(batch, hq, sq, skv))
    swork = compute_dtype(sdtype)
    srnd = _rounder(sdtype)
    scores = srnd(scores.astype(swork))

    def modify(graph: Any, x: np.ndarray, what: str) -> np.ndarray:
        if _ctx is None or _ctx.run_graph is None:
            raise ValueError(f"FlexAttention {what} needs a graph runner (run it in a session)")
        (out,) = _ctx.run_graph(graph, [x.astype(sdtype)])
        out = np.asarray(out)
        if out.shape != x.shape:
            raise ValueError(f"FlexAttention {what} changed the shape {list(x.shape)} to "
                             f"{list(out.shape)}; it must preserve it")
        return out.astype(swork)

    if score_mod is not None:
        scores = modify(score_mod, scores, "score_mod")
    probs = _softmax_last(scores, srnd)
    if prob_mod is not None:
        probs = modify(prob_mod, probs, "prob_mod")
    vwork = np.result_type(swork, compute_dtype(V.dtype))
    p5 = probs.astype(vwork).reshape(batch, hkv, rep, sq, skv)
    y = np.matmul(p5, V.astype(vwork)[:, :, None])
    return y.reshape(batch, hq, sq, -1).astype(t1)
