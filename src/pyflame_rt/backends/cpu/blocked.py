"""CPU kernels of the layout pass's pooling, concatenation and channel-affine ops on blocked
tensors ``[N, ceil(C/B), H, W, B]`` (``opt/passes/layout.py``, ``docs/fused_ops.md``).

float32 pooling and the channel affine map run the numba drivers of
``codegen/_nb_blocked.py`` on the session's threads; other dtypes (and hosts without numba)
take a numpy path through the plain NCHW kernels. Channels past the real count (the last
block's padding) are pooled like the others: zeros stay zeros, so they never matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...ops import kernel
from . import threads
from .codegen import kernels, par
from .pooling import _axis_counts, _Window, average_pool, max_pool

__all__ = ["blocked_average_pool", "blocked_channel_affine", "blocked_concat",
           "blocked_global_average_pool", "blocked_max_pool"]

#: Jobs per thread to aim for (threads claim them dynamically).
_JOBS_PER_THREAD = 4
_PLANS: dict[tuple, tuple] = {}


def _check(x: np.ndarray, op: str, block: int | None = None) -> None:
    if x.ndim != 5 or (block is not None and x.shape[4] != int(block)):
        raise ValueError(f"{op}: expected a blocked tensor [N, C/B, H, W, B] with B = {block}, "
                         f"got shape {x.shape}")


def _unblock_all(x: np.ndarray) -> np.ndarray:
    """[N, CB, H, W, B] -> [N, CB*B, H, W] (every channel, padding included)."""
    n, cb, h, w, b = x.shape
    return x.transpose(0, 1, 4, 2, 3).reshape(n, cb * b, h, w)


def _reblock(y: np.ndarray, b: int) -> np.ndarray:
    n, c, h, w = y.shape
    return np.ascontiguousarray(y.reshape(n, c // b, b, h, w).transpose(0, 1, 3, 4, 2))


def _row_jobs(planes: int, rows: int, nthreads: int) -> np.ndarray:
    """(plane, r0, r1) rows: a few jobs per thread, whole planes when there are enough."""
    want = _JOBS_PER_THREAD * max(1, nthreads) if nthreads > 1 else 1
    per = rows if planes >= want else max(1, -(-rows * planes // want))
    per = min(per, rows)
    return np.array([(p, r, min(rows, r + per)) for p in range(planes)
                     for r in range(0, rows, per)], np.int64).reshape(-1, 3)


def _fast(x: np.ndarray) -> bool:
    return x.dtype == np.float32 and x.size > 0 and par.available()


def _pool(op: str, X: np.ndarray, is_max: bool, include_pad: bool, attrs: dict[str, Any],
          block: int) -> np.ndarray:
    _check(X, op, block)
    n, cb, h, w, b = X.shape
    # _Window reads only the shape: no unblocked copy.
    shape_only = np.lib.stride_tricks.as_strided(np.zeros(1, X.dtype), (n, cb * b, h, w),
                                                 (0, 0, 0, 0))
    win = _Window(shape_only, op, attrs["kernel_shape"], attrs["strides"], attrs["pads"],
                  attrs["dilations"], attrs["auto_pad"], attrs["ceil_mode"])
    if len(win.kernel) != 2 or not _fast(X):
        ref = max_pool if is_max else average_pool
        if not is_max:
            attrs = {**attrs, "count_include_pad": int(include_pad)}
        return _reblock(ref(np.ascontiguousarray(_unblock_all(X)), **attrs), b)
    nthreads = threads.current_threads()
    key = (X.shape, win.kernel, win.strides, win.dilations, win.begin, win.end, win.out,
           is_max, include_pad, nthreads)
    plan = _PLANS.get(key)
    if plan is None:
        inv_h = (1.0 / np.maximum(_axis_counts(win, 0, include_pad), 1)).astype(np.float32)
        inv_w = (1.0 / np.maximum(_axis_counts(win, 1, include_pad), 1)).astype(np.float32)
        plan = (_row_jobs(n * cb, win.out[0], nthreads), inv_h, inv_w)
        if len(_PLANS) > 256:
            _PLANS.clear()
        _PLANS[key] = plan
    jobs, inv_h, inv_w = plan
    x = np.ascontiguousarray(X)
    oh, ow = win.out
    y = np.empty((n, cb, oh, ow, b), np.float32)
    threads.run_parallel(kernels("blocked").DRIVERS["blocked_pool"], jobs, x.reshape(-1),
                         y.reshape(-1), b, h, w, oh, ow, win.kernel[0], win.kernel[1],
                         win.strides[0], win.strides[1], win.dilations[0], win.dilations[1],
                         win.begin[0], win.begin[1], is_max, inv_h, inv_w)
    return y


@kernel("BlockedMaxPool", since=1, domain="pyflame")
def blocked_max_pool(X: np.ndarray, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
                     dilations: Sequence[int] | None = None,
                     kernel_shape: Sequence[int] | None = None,
                     pads: Sequence[int] | None = None, storage_order: int = 0,
                     strides: Sequence[int] | None = None, block: int = 16) -> np.ndarray:
    """pyflame BlockedMaxPool-1: ONNX MaxPool (Y only) on a blocked [N, C/B, H, W, B] X."""
    attrs = {"auto_pad": auto_pad, "ceil_mode": ceil_mode, "dilations": dilations,
             "kernel_shape": kernel_shape, "pads": pads, "strides": strides}
    return _pool("BlockedMaxPool", X, True, False, attrs, int(block))


@kernel("BlockedAveragePool", since=1, domain="pyflame")
def blocked_average_pool(X: np.ndarray, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
                         count_include_pad: int = 0, dilations: Sequence[int] | None = None,
                         kernel_shape: Sequence[int] | None = None,
                         pads: Sequence[int] | None = None,
                         strides: Sequence[int] | None = None, block: int = 16) -> np.ndarray:
    """pyflame BlockedAveragePool-1: ONNX AveragePool on a blocked [N, C/B, H, W, B] X."""
    attrs = {"auto_pad": auto_pad, "ceil_mode": ceil_mode, "dilations": dilations,
             "kernel_shape": kernel_shape, "pads": pads, "strides": strides}
    return _pool("BlockedAveragePool", X, False, bool(count_include_pad), attrs, int(block))


@kernel("BlockedGlobalAveragePool", since=1, domain="pyflame")
def blocked_global_average_pool(X: np.ndarray, *, block: int = 16) -> np.ndarray:
    """pyflame BlockedGlobalAveragePool-1: ONNX GlobalAveragePool on a blocked X: the mean
    over H and W, shape [N, C/B, 1, 1, B]."""
    _check(X, "BlockedGlobalAveragePool", int(block))
    n, cb, h, w, b = X.shape
    if not _fast(X):
        return X.mean(axis=(2, 3), keepdims=True, dtype=np.float64).astype(X.dtype)
    planes = n * cb
    nthreads = threads.current_threads()
    per = max(1, -(-planes // (_JOBS_PER_THREAD * nthreads))) if nthreads > 1 else planes
    parts = np.array([(p, min(planes, p + per)) for p in range(0, planes, per)],
                     np.int64).reshape(-1, 2)
    x = np.ascontiguousarray(X)
    y = np.empty((n, cb, 1, 1, b), np.float32)
    threads.run_parallel(kernels("blocked").DRIVERS["blocked_global_avg"], parts, x.reshape(-1),
                         y.reshape(-1), b, h * w)
    return y


@kernel("BlockedConcat", since=1, domain="pyflame")
def blocked_concat(*inputs: np.ndarray, block: int = 16) -> np.ndarray:
    """pyflame BlockedConcat-1: ONNX Concat along channels of blocked inputs (every input but
    the last holds whole blocks of real channels, so the blocks just follow each other)."""
    if not inputs:
        raise ValueError("BlockedConcat: needs at least one input")
    for x in inputs:
        _check(x, "BlockedConcat", int(block))
    return np.concatenate(inputs, axis=1)


def _padded_params(v: np.ndarray, cb: int, b: int) -> np.ndarray:
    out = np.zeros(cb * b, np.float32)
    out[:v.size] = v.reshape(-1)
    return out


_PIECE_PLANS: dict[tuple, tuple] = {}


def _pieces_plan(shapes: tuple, nthreads: int) -> tuple:
    """Tables of :func:`blocked_channel_affine` reading concatenated pieces in place."""
    key = (shapes, nthreads)
    plan = _PIECE_PLANS.get(key)
    if plan is None:
        pcbs = np.array([sh[1] for sh in shapes], np.int64)
        pstart = np.concatenate([[0], np.cumsum(pcbs)[:-1]]).astype(np.int64)
        piece = np.repeat(np.arange(len(shapes), dtype=np.int64), pcbs)
        n, _, h, w, _ = shapes[0]
        cbt = int(pcbs.sum())
        jobs = _row_jobs(n * cbt, h * w, nthreads)
        plan = (piece, pstart, pcbs, cbt, jobs)
        if len(_PIECE_PLANS) > 256:
            _PIECE_PLANS.clear()
        _PIECE_PLANS[key] = plan
    return plan


@kernel("BlockedChannelAffine", since=1, domain="pyflame")
def blocked_channel_affine(X: np.ndarray, scale: np.ndarray, bias: np.ndarray,
                           *more: np.ndarray, activation: str = "",
                           activation_params: Sequence[float] | None = None,
                           block: int = 16) -> np.ndarray:
    """pyflame BlockedChannelAffine-1: ChannelAffine (activation(X * scale[c] + bias[c])) on a
    blocked X; inputs after ``bias`` are further pieces concatenated with X along the channel
    blocks first (an absorbed BlockedConcat). Padded channels get activation(0)."""
    from .codegen.activations import act_params
    from .fused import apply_activation

    pieces = (X, *more)
    for x in pieces:
        _check(x, "BlockedChannelAffine", int(block))
    if len({(x.shape[0], *x.shape[2:]) for x in pieces}) != 1:
        raise ValueError(f"BlockedChannelAffine: pieces of shapes {[x.shape for x in pieces]} "
                         f"differ outside the channel blocks")
    n, _, h, w, b = X.shape
    cb = sum(x.shape[1] for x in pieces)
    if scale.size != bias.size or not 0 < scale.size <= cb * b or scale.size <= (cb - 1) * b:
        raise ValueError(f"BlockedChannelAffine: scale and bias must have the channel count of "
                         f"X ({cb} blocks of {b}), got {scale.shape} and {bias.shape}")
    if isinstance(activation, bytes):
        activation = activation.decode()
    s = _padded_params(np.asarray(scale, np.float32), cb, b)
    t = _padded_params(np.asarray(bias, np.float32), cb, b)
    code, a0, a1 = act_params(activation, activation_params)
    fast = all(_fast(x) for x in pieces)
    if more and fast and code <= 1 and b in (8, 16):
        xs = [np.ascontiguousarray(x) for x in pieces]
        piece, pstart, pcbs, cbt, jobs = _pieces_plan(tuple(x.shape for x in xs),
                                                      threads.current_threads())
        addrs = np.array([x.ctypes.data for x in xs], np.int64)
        y = np.empty((n, cbt, h, w, b), np.float32)
        threads.run_parallel(kernels("blocked").DRIVERS["blocked_affine_pieces"], jobs, addrs,
                             piece, pstart, pcbs, y.reshape(-1), s, t, b, cbt, h * w, code)
        del xs  # the arrays behind ``addrs`` lived until here
        return y
    X = np.concatenate(pieces, axis=1) if more else X
    if not fast:
        y = X.astype(np.float32) * s.reshape(1, cb, 1, 1, b) + t.reshape(1, cb, 1, 1, b)
        return apply_activation(y, activation, activation_params).astype(X.dtype, copy=False)
    pixels = h * w
    jobs = _row_jobs(n * cb, pixels, threads.current_threads())
    x = np.ascontiguousarray(X)
    y = np.empty_like(x)
    threads.run_parallel(kernels("blocked").DRIVERS["blocked_affine"], jobs, x.reshape(-1),
                         y.reshape(-1), s, t, b, cb, pixels, code, a0, a1)
    return y
