"""CPU kernels for gather/scatter and index-producing ops: Gather*, Scatter*, TopK, Unique, ...

Indices may be negative (counted from the end of their axis) wherever the spec allows it; an
index outside ``[-dim, dim-1]`` raises ``ValueError`` naming the index and the valid range.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from ...ops import kernel
from .tensor import _scalar_int, normalize_axis

__all__ = [
    "compress",
    "gather",
    "gather_elements",
    "gather_nd",
    "non_zero",
    "one_hot",
    "reverse_sequence",
    "scatter",
    "scatter_elements",
    "scatter_nd",
    "top_k",
    "top_k_1",
    "top_k_10",
    "unique",
]

_ML_FLOATS = {np.dtype(t) for t in (ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn,
                                    ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2,
                                    ml_dtypes.float8_e5m2fnuz)}


def _indices(idx: np.ndarray, dim: int, op: str, where: str = "") -> np.ndarray:
    """Integer indices checked against ``[-dim, dim-1]`` and made non-negative (int64)."""
    idx = np.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise ValueError(f"{op}: indices must be integers, got {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)
    if idx.size == 0:
        return idx
    bad = (idx < -dim) | (idx >= dim)
    if bad.any():
        first = int(idx[bad].reshape(-1)[0])
        raise ValueError(f"{op}: index {first}{where} is out of range for an axis of size "
                         f"{dim} (valid: [{-dim}, {dim - 1}])")
    return np.where(idx < 0, idx + dim, idx) if (idx < 0).any() else idx


# ------------------------------------------------------------------------------ gathers

@kernel("Gather", since=1)
def gather(data: np.ndarray, indices: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """ONNX Gather-1/11/13: take entries of ``data`` along ``axis`` (negative indices ok)."""
    if data.ndim == 0:
        raise ValueError("Gather: data must have rank >= 1, got a scalar")
    ax = normalize_axis(axis, data.ndim)
    idx = _indices(indices, data.shape[ax], "Gather")
    return np.asarray(np.take(data, idx, axis=ax))


def _check_same_rank(data: np.ndarray, indices: np.ndarray, ax: int, op: str) -> None:
    if indices.ndim != data.ndim:
        raise ValueError(f"{op}: indices of shape {indices.shape} must have the rank of data "
                         f"{data.shape}")
    for a, (d, i) in enumerate(zip(data.shape, indices.shape)):
        if a != ax and i > d:
            raise ValueError(f"{op}: indices dim {a} ({i}) exceeds the data dim ({d}); shapes "
                             f"{indices.shape} vs {data.shape}")


@kernel("GatherElements", since=11)
def gather_elements(data: np.ndarray, indices: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """ONNX GatherElements-11/13: out[i][j] = data[indices[i][j]][j] (for axis 0)."""
    ax = normalize_axis(axis, data.ndim)
    _check_same_rank(data, indices, ax, "GatherElements")
    idx = _indices(indices, data.shape[ax], "GatherElements")
    # Outside `axis`, indices may be smaller than data: only that leading block is read.
    window = tuple(slice(None) if a == ax else slice(0, n) for a, n in enumerate(idx.shape))
    return np.take_along_axis(data[window], idx, axis=ax)


@kernel("GatherND", since=11)
@kernel("GatherND", since=12)
def gather_nd(data: np.ndarray, indices: np.ndarray, *, batch_dims: int = 0) -> np.ndarray:
    """ONNX GatherND-11/12/13: gather slices addressed by the last dim of ``indices``."""
    b = batch_dims
    if indices.ndim < 1 or b < 0 or b >= min(data.ndim, indices.ndim):
        raise ValueError(f"GatherND: batch_dims={b} must be < rank of data {data.shape} and of "
                         f"indices {indices.shape}, and indices must have rank >= 1")
    m = indices.shape[-1]
    if data.shape[:b] != indices.shape[:b]:
        raise ValueError(f"GatherND: the first {b} dims of data {data.shape} and indices "
                         f"{indices.shape} must match")
    if m > data.ndim - b:
        raise ValueError(f"GatherND: indices.shape[-1]={m} exceeds the rank of data {data.shape}"
                         f" minus batch_dims={b}")
    nbatch = math.prod(data.shape[:b])
    nidx = math.prod(indices.shape[b:-1])
    flat_data = data.reshape((nbatch,) + data.shape[b:])
    flat_idx = indices.reshape(nbatch, nidx, m)
    key = [np.broadcast_to(np.arange(nbatch)[:, None], (nbatch, nidx))]
    for j in range(m):
        key.append(_indices(flat_idx[..., j], data.shape[b + j], "GatherND",
                            f" (entry {j} of the index tuples)"))
    out = flat_data[tuple(key)]  # (nbatch, nidx) + data.shape[b+m:]
    return out.reshape(indices.shape[:-1] + data.shape[b + m:])


# ----------------------------------------------------------------------------- scatters

_REDUCE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_into(data: np.ndarray, key: tuple, updates: np.ndarray, reduction: str,
                  op: str) -> np.ndarray:
    if isinstance(reduction, bytes):
        reduction = reduction.decode()
    if reduction != "none" and reduction not in _REDUCE:
        raise ValueError(f"{op}: reduction must be none, add, mul, max or min, got "
                         f"{reduction!r}")
    if reduction == "none":
        out = data.copy()
        out[key] = updates
        return out
    if data.dtype == object:
        raise ValueError(f"{op}: reduction {reduction!r} is not defined for strings")
    # Reduce narrow floats in float32: numpy's ufunc.at does not know ml_dtypes.
    work = np.float32 if data.dtype in _ML_FLOATS or data.dtype == np.float16 else data.dtype
    out = data.astype(work, copy=True)
    _REDUCE[reduction].at(out, key, updates.astype(work, copy=False))
    return out.astype(data.dtype, copy=False)


@kernel("ScatterElements", since=11)
def scatter_elements(data: np.ndarray, indices: np.ndarray, updates: np.ndarray, *,
                     axis: int = 0, reduction: str = "none") -> np.ndarray:
    """ONNX ScatterElements-11/13/16/18: write (or reduce, 16/18) updates at element indices."""
    ax = normalize_axis(axis, data.ndim)
    _check_same_rank(data, indices, ax, "ScatterElements")
    if updates.shape != indices.shape:
        raise ValueError(f"ScatterElements: updates shape {updates.shape} must equal indices "
                         f"shape {indices.shape}")
    idx = _indices(indices, data.shape[ax], "ScatterElements")
    key = list(np.indices(idx.shape, sparse=True))
    key[ax] = idx
    return _scatter_into(data, tuple(key), updates, reduction, "ScatterElements")


@kernel("Scatter", since=9)
def scatter(data: np.ndarray, indices: np.ndarray, updates: np.ndarray, *,
            axis: int = 0) -> np.ndarray:
    """ONNX Scatter-9/11 (deprecated): ScatterElements without reduction."""
    return scatter_elements(data, indices, updates, axis=axis)


@kernel("ScatterND", since=11)
def scatter_nd(data: np.ndarray, indices: np.ndarray, updates: np.ndarray, *,
               reduction: str = "none") -> np.ndarray:
    """ONNX ScatterND-11/13/16/18: write (or reduce, 16/18) slices at index tuples."""
    if indices.ndim < 1:
        raise ValueError("ScatterND: indices must have rank >= 1")
    k = indices.shape[-1]
    if k > data.ndim:
        raise ValueError(f"ScatterND: indices.shape[-1]={k} exceeds the rank of data "
                         f"{data.shape}")
    expected = indices.shape[:-1] + data.shape[k:]
    if updates.shape != expected:
        raise ValueError(f"ScatterND: updates shape {updates.shape} must be {expected} "
                         f"(indices.shape[:-1] + data.shape[{k}:])")
    key = tuple(_indices(indices[..., j], data.shape[j], "ScatterND",
                         f" (entry {j} of the index tuples)") for j in range(k))
    return _scatter_into(data, key, updates, reduction, "ScatterND")


# ------------------------------------------------------------------------------ OneHot

@kernel("OneHot", since=9)
def one_hot(indices: np.ndarray, depth: np.ndarray, values: np.ndarray, *,
            axis: int = -1) -> np.ndarray:
    """ONNX OneHot-9/11: one-hot along ``axis``; indices in [-depth, depth-1], others all off."""
    # OneHot-9's text leaves negative indices "off", but ONNX Runtime and onnx.reference wrap
    # them at opset 9 too (as OneHot-11 specifies); models rely on that, so we do the same.
    dep = np.asarray(depth).reshape(-1)
    if dep.size != 1:
        raise ValueError(f"OneHot: depth must hold one value, got shape {np.shape(depth)}")
    n = int(dep[0])  # a float depth is truncated, as ONNX Runtime does
    if n < 0:
        raise ValueError(f"OneHot: depth must be >= 0, got {n}")
    vals = np.asarray(values).reshape(-1)
    if vals.size != 2:
        raise ValueError(f"OneHot: values must be [off_value, on_value], got {vals.size} "
                         "elements")
    out_rank = indices.ndim + 1
    if not -out_rank <= axis < out_rank:
        raise ValueError(f"OneHot: axis={axis} is out of range for output rank {out_rank}")
    idx = np.asarray(indices)
    idx = (np.trunc(idx) if idx.dtype.kind == "f" else idx).astype(np.int64)
    idx = np.where(idx < 0, idx + n, idx)
    # Indices outside [0, depth) match no position and give an all-off row.
    hot = idx[..., None] == np.arange(n, dtype=np.int64)
    out = np.where(hot, vals[1], vals[0]).astype(vals.dtype, copy=False)
    return np.moveaxis(out, -1, axis)


# -------------------------------------------------------------------------------- TopK

def _top_k(x: np.ndarray, k: int, axis: int, largest: int) -> tuple[np.ndarray, np.ndarray]:
    ax = normalize_axis(axis, x.ndim)
    n = x.shape[ax]
    if not 0 <= k <= n:
        raise ValueError(f"TopK: k={k} must be in [0, {n}] (the size of axis {axis} of the "
                         f"input of shape {x.shape})")
    keys = x.astype(np.float32) if x.dtype in _ML_FLOATS else x
    if largest:
        # A stable ascending sort of the reversed axis, read backwards, is descending with
        # ties in increasing index order.
        order = np.argsort(np.flip(keys, axis=ax), axis=ax, kind="stable")
        order = np.flip(order, axis=ax)
        top = (n - 1) - np.take(order, np.arange(k), axis=ax)
    else:
        order = np.argsort(keys, axis=ax, kind="stable")
        top = np.take(order, np.arange(k), axis=ax)
    top = top.astype(np.int64, copy=False)
    return np.take_along_axis(x, top, axis=ax), top


@kernel("TopK", since=1)
def top_k_1(x: np.ndarray, *, axis: int = -1, k: int | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """ONNX TopK-1: the ``k`` (attribute) largest values along ``axis`` and their indices."""
    if k is None:
        raise ValueError("TopK-1 requires the 'k' attribute")
    return _top_k(x, int(k), axis, 1)


@kernel("TopK", since=10)
def top_k_10(x: np.ndarray, k: np.ndarray, *, axis: int = -1
             ) -> tuple[np.ndarray, np.ndarray]:
    """ONNX TopK-10: the ``k`` (input) largest values along ``axis`` and their indices."""
    return _top_k(x, _scalar_int(k, "TopK: K"), axis, 1)


@kernel("TopK", since=11)
def top_k(x: np.ndarray, k: np.ndarray, *, axis: int = -1, largest: int = 1,
          sorted: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """ONNX TopK-11/24: k largest (or smallest) along ``axis``; ties keep the lower index."""
    # sorted=0 leaves the order unspecified; sorted output is a valid (and the reference's)
    # choice.
    return _top_k(x, _scalar_int(k, "TopK: K"), axis, largest)


# ------------------------------------------------------------------ selection & ordering

@kernel("NonZero", since=9)
def non_zero(x: np.ndarray) -> np.ndarray:
    """ONNX NonZero-9/13: indices of the non-zero elements, shape (rank, count), int64."""
    mask = x.astype(np.float32) != 0 if x.dtype in _ML_FLOATS else x.astype(bool)
    if x.ndim == 0:  # rank 0: (0, count), as ONNX shape inference says
        return np.zeros((0, int(bool(mask))), dtype=np.int64)
    return np.array(np.nonzero(mask), dtype=np.int64).reshape(x.ndim, -1)


@kernel("Compress", since=9)
def compress(x: np.ndarray, condition: np.ndarray, *, axis: int | None = None) -> np.ndarray:
    """ONNX Compress-9/11: keep the slices along ``axis`` (or flat elements) where true."""
    cond = np.asarray(condition).astype(bool).reshape(-1)
    if axis is None:
        data, ax = x.reshape(-1), 0
    else:
        data, ax = x, normalize_axis(axis, x.ndim)
    # A condition longer than the axis: the extra entries select nothing (as in ONNX Runtime).
    cond = cond[:data.shape[ax]]
    return np.compress(cond, data, axis=ax)


@kernel("Unique", since=11)
def unique(x: np.ndarray, *, axis: int | None = None, sorted: int = 1
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ONNX Unique-11: unique values (or slices along ``axis``), first indices, inverse, counts."""
    if axis is None:
        keys, data, ax = x.reshape(-1), x.reshape(-1), 0
    else:
        ax = normalize_axis(axis, x.ndim)
        data = x
        keys = x
        if x.dtype == object or x.dtype in _ML_FLOATS:
            # numpy's unique-by-axis cannot compare strings; compare order-preserving codes.
            _, codes = np.unique(x.reshape(-1), return_inverse=True)
            keys = codes.reshape(x.shape)
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True,
                                          return_counts=True, axis=None if axis is None else ax)
    inverse = inverse.reshape(-1)
    if not sorted:
        # Reorder unique entries by first occurrence; remap inverse accordingly.
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    y = np.take(data, first, axis=ax)
    return (y, first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64))


@kernel("ReverseSequence", since=10)
def reverse_sequence(x: np.ndarray, sequence_lens: np.ndarray, *, batch_axis: int = 1,
                     time_axis: int = 0) -> np.ndarray:
    """ONNX ReverseSequence-10: reverse the first sequence_lens[b] steps of each batch entry."""
    if x.ndim < 2 or {batch_axis, time_axis} != {0, 1}:
        raise ValueError(f"ReverseSequence: batch_axis={batch_axis} and time_axis={time_axis} "
                         f"must be 0 and 1 (in some order) for a rank >= 2 input, got shape "
                         f"{x.shape}")
    lens = np.asarray(sequence_lens).astype(np.int64).reshape(-1)
    nbatch, ntime = x.shape[batch_axis], x.shape[time_axis]
    if lens.size != nbatch or (lens < 0).any() or (lens > ntime).any():
        raise ValueError(f"ReverseSequence: sequence_lens {lens.tolist()} must have one entry "
                         f"in [0, {ntime}] per batch entry ({nbatch})")
    t = np.arange(ntime)[None, :]
    src = np.where(t < lens[:, None], lens[:, None] - 1 - t, t)  # (batch, time)
    if time_axis == 0:
        src = src.T
    src = src.reshape(src.shape + (1,) * (x.ndim - 2))
    return np.take_along_axis(x, np.broadcast_to(src, x.shape), axis=time_axis)
