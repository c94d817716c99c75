"""CPU kernels for pooling ops: MaxPool, AveragePool, LpPool, their Global forms, MaxUnpool.

float32 1-D/2-D MaxPool (without Indices) and AveragePool run a numba kernel
(``codegen/_nb_pool.py``) over planes split across the session's threads. The other cases pad
the input once (with -inf / the dtype minimum for max, 0 for sums) and then accumulate one
strided view per kernel tap, so every pass is a whole-tensor vectorized numpy op and no
(window x output) buffer is built. Output sizes, ``auto_pad`` and ``ceil_mode`` follow the
ONNX rules in :func:`.nn.resolve_padding` (the same ones ONNX Runtime uses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...ops import kernel
from . import threads
from .codegen import kernels, par
from .nn import (
    compute_dtype,
    output_wanted,
    pad_spatial,
    resolve_padding,
    spatial_ints,
    tap_view,
)

__all__ = [
    "average_pool",
    "global_average_pool",
    "global_lp_pool",
    "global_max_pool",
    "lp_pool",
    "max_pool",
    "max_unpool",
]


class _Window:
    """Geometry of one pooling call: kernel, strides, dilations, pads and output shape."""

    def __init__(self, X: np.ndarray, op: str, kernel_shape: Any, strides: Any, pads: Any,
                 dilations: Any, auto_pad: Any, ceil_mode: int) -> None:
        if X.ndim < 3:
            raise ValueError(f"{op}: X must be (N, C, D1, ...) with at least one spatial axis, "
                             f"got shape {X.shape}")
        if kernel_shape is None:
            raise ValueError(f"{op}: the 'kernel_shape' attribute is required")
        nsp = X.ndim - 2
        self.in_shape = tuple(X.shape[2:])
        self.kernel = spatial_ints(kernel_shape, nsp, 1, "kernel_shape")
        if any(k <= 0 for k in self.kernel):
            raise ValueError(f"{op}: kernel_shape must be positive, got {list(self.kernel)}")
        self.strides = spatial_ints(strides, nsp, 1, "strides")
        self.dilations = spatial_ints(dilations, nsp, 1, "dilations")
        self.begin, self.end, self.out = resolve_padding(
            auto_pad, self.in_shape, self.kernel, self.strides, self.dilations, pads, ceil_mode)
        # ceil_mode can make the last window reach past the end padding: pad up to its end.
        need = [(o - 1) * s + (k - 1) * d + 1
                for o, s, k, d in zip(self.out, self.strides, self.kernel, self.dilations)]
        self.end_eff = tuple(max(e, n - i - b)
                             for e, n, i, b in zip(self.end, need, self.in_shape, self.begin))

    def taps(self) -> list[list[int]]:
        """Offsets into the padded input of every kernel element."""
        return [[t * d for t, d in zip(tap, self.dilations)] for tap in np.ndindex(*self.kernel)]

    def positions(self, axis: int) -> np.ndarray:
        """(out, kernel) input coordinates (unpadded) that each window of ``axis`` covers."""
        o = np.arange(self.out[axis])[:, None] * self.strides[axis] - self.begin[axis]
        return o + np.arange(self.kernel[axis])[None, :] * self.dilations[axis]

    def counts(self, include_pad: bool) -> np.ndarray:
        """Per output position, how many window elements are averaged over (shape ``out``)."""
        total = np.ones((), dtype=np.int64)
        for a, n in enumerate(self.in_shape):
            pos = self.positions(a)
            lo, hi = (-self.begin[a], n + self.end[a]) if include_pad else (0, n)
            cnt = ((pos >= lo) & (pos < hi)).sum(axis=1)
            total = np.multiply.outer(total, cnt)
        return total


#: Output elements times window size per parallel job of the numba pooling kernel.
_POOL_JOB = 1 << 17


def _axis_counts(win: _Window, axis: int, include_pad: bool) -> np.ndarray:
    pos = win.positions(axis)
    n = win.in_shape[axis]
    lo, hi = (-win.begin[axis], n + win.end[axis]) if include_pad else (0, n)
    return ((pos >= lo) & (pos < hi)).sum(axis=1).astype(np.int64)


_FAST_PLANS: dict[tuple, tuple] = {}


def _fast_plan(X: np.ndarray, win: _Window, include_pad: bool, nthreads: int) -> tuple:
    one_d = X.ndim == 3

    def two(v: tuple) -> tuple:
        return (1 if one_d else v[0], v[-1])

    h, w = two(win.in_shape) if not one_d else (1, win.in_shape[0])
    oh, ow = (1, win.out[0]) if one_d else win.out
    kh, kw = two(win.kernel)
    sh, sw = two(win.strides)
    dh, dw = two(win.dilations)
    pt, pl = (0, win.begin[0]) if one_d else win.begin
    if one_d:
        hp, wp = 1, win.begin[0] + w + win.end_eff[0]
        cnt_h = np.ones(1, np.int64)
    else:
        hp, wp = (b + i + e for b, i, e in zip(win.begin, win.in_shape, win.end_eff))
        cnt_h = _axis_counts(win, 0, include_pad)
    cnt_w = _axis_counts(win, len(win.in_shape) - 1, include_pad)
    planes = X.shape[0] * X.shape[1]
    per = max(1, _POOL_JOB // max(oh * ow * kh * kw, 1))
    if nthreads > 1:
        per = min(per, max(1, -(-planes // (4 * nthreads))))
    parts = np.array([(a, min(planes, a + per)) for a in range(0, planes, per)],
                     np.int64).reshape(-1, 2)
    return parts, (h, w, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, hp, wp), cnt_h, cnt_w


def _fast_pool(X: np.ndarray, win: _Window, is_max: bool, include_pad: bool) -> np.ndarray | None:
    """float32 1-D/2-D pooling with the numba kernel, planes split over the session's threads
    (None when the fast path does not apply). The job table of each (shape, window) is kept,
    so a model's pools pay the Python set-up once."""
    if X.dtype != np.float32 or X.ndim not in (3, 4) or not par.available():
        return None
    nthreads = threads.current_threads()
    key = (X.shape, win.kernel, win.strides, win.dilations, win.begin, win.end, win.out,
           include_pad, nthreads)
    plan = _FAST_PLANS.get(key)
    if plan is None:
        plan = _fast_plan(X, win, include_pad, nthreads)
        if len(_FAST_PLANS) > 256:
            _FAST_PLANS.clear()
        _FAST_PLANS[key] = plan
    parts, dims, cnt_h, cnt_w = plan
    x = np.ascontiguousarray(X)
    y = np.empty((x.shape[0], x.shape[1], *win.out), np.float32)
    par.run("pool", parts, x.reshape(-1), y.reshape(-1), *dims, is_max, cnt_h, cnt_w)
    return y


def _lowest(dtype: np.dtype) -> Any:
    if dtype.kind in "iu":
        return np.iinfo(dtype).min
    return -np.inf


def _max_with_indices(x: np.ndarray, win: _Window, storage_order: int) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    n, c = x.shape[:2]
    nsp = len(win.in_shape)
    xf = x if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else x.astype(np.float32)
    xp = pad_spatial(xf, win.begin, win.end_eff, -np.inf)
    best = np.full((n, c, *win.out), -np.inf, dtype=xf.dtype)
    idx = np.zeros((n, c, *win.out), dtype=np.int64)
    # Flat index of a spatial position: row-major, or column-major for storage_order=1.
    if storage_order:
        st = [math.prod(win.in_shape[:a]) for a in range(nsp)]
    else:
        st = [math.prod(win.in_shape[a + 1:]) for a in range(nsp)]
    base = [(np.arange(o) * s - b) * stride
            for o, s, b, stride in zip(win.out, win.strides, win.begin, st)]
    upd = np.empty(best.shape, dtype=np.bool_)
    for tap, off in zip(np.ndindex(*win.kernel), win.taps()):
        sl = tap_view(xp, off, win.strides, win.out)
        np.greater(sl, best, out=upd)
        np.copyto(best, sl, where=upd)
        pos = np.zeros((), dtype=np.int64)
        for a in range(nsp):
            pos = np.add.outer(pos, base[a] + tap[a] * win.dilations[a] * st[a])
        np.copyto(idx, pos, where=upd)
    plane = math.prod(win.in_shape)
    idx += ((np.arange(n)[:, None] * c + np.arange(c)[None, :]) * plane).reshape(
        (n, c) + (1,) * nsp)
    return best.astype(x.dtype, copy=False), idx


@kernel("MaxPool", since=1)
def max_pool(X: np.ndarray, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
             dilations: Sequence[int] | None = None, kernel_shape: Sequence[int] | None = None,
             pads: Sequence[int] | None = None, storage_order: int = 0,
             strides: Sequence[int] | None = None, _ctx: Any = None) -> Any:
    """ONNX MaxPool-1/8/10/11/12/22: N-D max pooling, optional Indices output (int8/uint8 at 12)."""
    win = _Window(X, "MaxPool", kernel_shape, strides, pads, dilations, auto_pad, ceil_mode)
    if output_wanted(_ctx, 1):
        return _max_with_indices(X, win, storage_order)
    fast = _fast_pool(X, win, True, False)
    if fast is not None:
        return fast
    x = X if X.dtype.kind in "fiu" else X.astype(np.float32)
    xp = pad_spatial(x, win.begin, win.end_eff, _lowest(x.dtype))
    y = None
    for off in win.taps():
        sl = tap_view(xp, off, win.strides, win.out)
        if y is None:
            y = sl.copy()
        else:
            np.maximum(y, sl, out=y)
    return y.astype(X.dtype, copy=False)


def _window_sum(x: np.ndarray, win: _Window) -> np.ndarray:
    xp = pad_spatial(x, win.begin, win.end_eff, 0)
    acc = None
    for off in win.taps():
        sl = tap_view(xp, off, win.strides, win.out)
        if acc is None:
            acc = sl.copy()
        else:
            acc += sl
    return acc


@kernel("AveragePool", since=1)
def average_pool(X: np.ndarray, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
                 count_include_pad: int = 0, dilations: Sequence[int] | None = None,
                 kernel_shape: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                 strides: Sequence[int] | None = None) -> np.ndarray:
    """ONNX AveragePool-1/7/10/11/19/22: N-D average pooling (count_include_pad, dilations)."""
    win = _Window(X, "AveragePool", kernel_shape, strides, pads, dilations, auto_pad, ceil_mode)
    fast = _fast_pool(X, win, False, bool(count_include_pad))
    if fast is not None:
        return fast
    x = X.astype(compute_dtype(X.dtype), copy=False)
    acc = _window_sum(x, win)
    cnt = win.counts(bool(count_include_pad))
    if cnt.min() == cnt.max():
        acc *= np.asarray(1.0 / cnt.flat[0], dtype=acc.dtype)
    else:
        # Windows lying entirely in padding (count 0) have sum 0; keep them 0 instead of NaN.
        acc /= np.maximum(cnt, 1).astype(acc.dtype)
    return acc.astype(X.dtype, copy=False)


def _lp_power(x: np.ndarray, p: float) -> np.ndarray:
    if p == 2:
        return x * x
    if p == 1:
        return np.abs(x)
    return np.abs(x) ** np.asarray(p, dtype=x.dtype)


def _lp_root(s: np.ndarray, p: float) -> np.ndarray:
    if p == 2:
        return np.sqrt(s)
    if p == 1:
        return s
    return s ** np.asarray(1.0 / p, dtype=s.dtype)


@kernel("LpPool", since=1)
def lp_pool(X: np.ndarray, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
            dilations: Sequence[int] | None = None, kernel_shape: Sequence[int] | None = None,
            p: float = 2, pads: Sequence[int] | None = None,
            strides: Sequence[int] | None = None) -> np.ndarray:
    """ONNX LpPool-1/2/11/18/22: (sum over the window of |x|^p)^(1/p); padding adds nothing."""
    if p is None or float(p) <= 0:
        raise ValueError(f"LpPool: p must be positive, got {p}")
    win = _Window(X, "LpPool", kernel_shape, strides, pads, dilations, auto_pad, ceil_mode)
    x = X.astype(compute_dtype(X.dtype), copy=False)
    acc = _window_sum(_lp_power(x, float(p)), win)
    return _lp_root(acc, float(p)).astype(X.dtype, copy=False)


def _spatial_axes(X: np.ndarray, op: str) -> tuple[int, ...]:
    if X.ndim < 2:
        raise ValueError(f"{op}: X must be (N, C, D1, ...), got shape {X.shape}")
    return tuple(range(2, X.ndim))


#: Spatial sizes up to which float32 GlobalAveragePool sums in float32 vectors (16 partial
#: sums per plane); larger planes take numpy's pairwise summation.
_GAP_FAST_MAX = 4096


@kernel("GlobalAveragePool", since=1)
def global_average_pool(X: np.ndarray) -> np.ndarray:
    """ONNX GlobalAveragePool-1/22: mean over all spatial axes, kept as size-1 axes."""
    axes = _spatial_axes(X, "GlobalAveragePool")
    plane = math.prod(X.shape[2:])
    if X.dtype == np.float32 and 0 < plane <= _GAP_FAST_MAX and X.size and par.available():
        # numpy's mean over trailing axes took ~130 us on MobileNet's 1280 x 7 x 7 head.
        x = np.ascontiguousarray(X)
        y = np.empty(X.shape[:2] + (1,) * len(axes), np.float32)
        kernels("pool").global_avg(x.reshape(-1), y.reshape(-1), X.shape[0] * X.shape[1], plane)
        return y
    ct = compute_dtype(X.dtype)
    return np.mean(X, axis=axes, keepdims=True, dtype=ct).astype(X.dtype, copy=False)


@kernel("GlobalMaxPool", since=1)
def global_max_pool(X: np.ndarray) -> np.ndarray:
    """ONNX GlobalMaxPool-1/22: max over all spatial axes, kept as size-1 axes."""
    axes = _spatial_axes(X, "GlobalMaxPool")
    x = X.astype(compute_dtype(X.dtype), copy=False)
    return np.max(x, axis=axes, keepdims=True).astype(X.dtype, copy=False)


@kernel("GlobalLpPool", since=1)
def global_lp_pool(X: np.ndarray, *, p: float = 2) -> np.ndarray:
    """ONNX GlobalLpPool-1/2/22: (sum over spatial axes of |x|^p)^(1/p), kept as size-1 axes."""
    if p is None or float(p) <= 0:
        raise ValueError(f"GlobalLpPool: p must be positive, got {p}")
    axes = _spatial_axes(X, "GlobalLpPool")
    x = X.astype(compute_dtype(X.dtype), copy=False)
    s = np.sum(_lp_power(x, float(p)), axis=axes, keepdims=True)
    return _lp_root(s, float(p)).astype(X.dtype, copy=False)


@kernel("MaxUnpool", since=9)
def max_unpool(X: np.ndarray, I: np.ndarray, output_shape: np.ndarray | None = None, *,
               kernel_shape: Sequence[int] | None = None, pads: Sequence[int] | None = None,
               strides: Sequence[int] | None = None) -> np.ndarray:
    """ONNX MaxUnpool-9/11/22: scatter X to the flat positions I of a zero tensor.

    I indexes the tensor of the default (inferred) unpooled shape; a given ``output_shape``
    holds that tensor at its start and zeros elsewhere, as in the ONNX reference and backend
    test data (ONNX Runtime instead indexes the ``output_shape`` tensor directly).
    """
    if kernel_shape is None:
        raise ValueError("MaxUnpool: the 'kernel_shape' attribute is required")
    if X.ndim < 3:
        raise ValueError(f"MaxUnpool: X must be (N, C, D1, ...), got shape {X.shape}")
    if I.shape != X.shape:
        raise ValueError(f"MaxUnpool: I has shape {I.shape} but X has shape {X.shape}")
    nsp = X.ndim - 2
    k = spatial_ints(kernel_shape, nsp, 1, "kernel_shape")
    s = spatial_ints(strides, nsp, 1, "strides")
    p = spatial_ints(pads, 2 * nsp, 0, "pads")
    inferred = X.shape[:2] + tuple((i - 1) * st + kk - p[a] - p[a + nsp]
                                   for a, (i, st, kk) in enumerate(zip(X.shape[2:], s, k)))
    if any(d <= 0 for d in inferred):
        raise ValueError(f"MaxUnpool: unpooled shape {list(inferred)} is not positive")
    total = math.prod(inferred)
    idx = I.reshape(-1).astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= total):
        raise ValueError(f"MaxUnpool: indices must lie in [0, {total}) for the unpooled shape "
                         f"{list(inferred)}; got range [{idx.min()}, {idx.max()}]")
    y = np.zeros(total, dtype=X.dtype)
    y[idx] = X.reshape(-1)
    y = y.reshape(inferred)
    if output_shape is None:
        return y
    shape = tuple(int(v) for v in np.asarray(output_shape).reshape(-1))
    if len(shape) != X.ndim or any(d < 0 for d in shape):
        raise ValueError(f"MaxUnpool: output_shape {list(shape)} must be {X.ndim} non-negative "
                         "dims")
    if shape == inferred:
        return y
    out = np.zeros(shape, dtype=X.dtype)
    common = tuple(slice(0, min(a, b)) for a, b in zip(shape, inferred))
    out[common] = y[common]
    return out
