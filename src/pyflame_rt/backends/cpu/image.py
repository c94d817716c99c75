"""CPU kernels for image ops: Resize, Upsample, GridSample, AffineGrid, RoiAlign, MaxRoiPool,
NonMaxSuppression, Col2Im, DeformConv, ImageDecoder.

Resize is separable: every resized axis gets a small table of source indices and weights
(one column per filter tap, ``(out_len, taps)``), and the tensor is resized one axis at a time
with one ``np.take`` + multiply-add per tap. Nearest, linear, cubic and the antialiased
(stretched, renormalized) linear/cubic filters all reduce to such tables, so a 2x bilinear
upsample costs two gathers per axis and never builds an ``out x in`` matrix. Coordinates are
computed in float64 the way the ONNX spec (and ``onnx.reference``) writes them.

GridSample and DeformConv sample with per-point indices and weights: the tap tables are built
once per spatial axis and combined over the (2 or 4) ** rank taps with one flat gather each.
RoiAlign vectorizes over chunks of ROIs (each padded to the chunk's largest sampling grid).

ImageDecoder reads baseline JPEG, PNG, BMP, TIFF (uncompressed, Deflate, PackBits) and PNM with
numpy and zlib only. The two inherently sequential loops -- JPEG Huffman decoding and PNG's
Average/Paeth row filters -- are numba-compiled on first use; everything else (IDCT, chroma
upsampling, color conversion) is vectorized. JPEG follows libjpeg's default decoding path
(integer "islow" IDCT, fancy upsampling, fixed-point YCbCr), so pixels equal Pillow's.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np

from ...errors import NotImplementedFeatureError
from ...ops import kernel
from .nn import compute_dtype

__all__ = [
    "affine_grid",
    "col2im",
    "deform_conv",
    "grid_sample",
    "image_decoder",
    "max_roi_pool",
    "non_max_suppression",
    "resize",
    "resize_10",
    "roi_align_10",
    "roi_align_16",
    "upsample_7",
    "upsample_9",
]


# --------------------------------------------------------------------------------- helpers


def _text(value: Any) -> str:
    """A string attribute as ``str`` (attributes may arrive as bytes)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _float_work_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype interpolation arithmetic runs in for data of ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return dtype
    if dtype == np.float64 or dtype.kind in "iu":
        # Integers round at the end: float32 sums would move exact .5 ties.
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def _cast_result(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast interpolated values back to ``dtype``: integers round and saturate, as ONNX does."""
    dtype = np.dtype(dtype)
    if y.dtype == dtype:
        return y
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(y), info.min, info.max).astype(dtype)
    if dtype.kind == "f" or dtype.name.startswith(("bfloat16", "float8")):
        # Saturate like onnx's saturate_cast so cubic overshoot cannot turn into inf.
        info = ml_dtypes.finfo(dtype)
        return np.clip(y, float(info.min), float(info.max)).astype(dtype)
    return y.astype(dtype)


def _optional_values(arr: np.ndarray | None) -> np.ndarray | None:
    """An optional 1-D input: ``None`` when omitted or empty (ONNX allows both)."""
    if arr is None:
        return None
    arr = np.asarray(arr)
    return None if arr.size == 0 else arr.reshape(-1)


def _scalar(arr: Any, name: str, op: str) -> Any:
    arr = np.asarray(arr)
    if arr.size != 1:
        raise ValueError(f"{op}: '{name}' must be a scalar (one element), got shape {arr.shape}")
    return arr.reshape(-1)[0]


# ---------------------------------------------------------------------------------- Resize

_COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize")
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")


def _source_coords(mode: str, out_len: int, in_len: int, scale: float,
                   roi: tuple[float, float]) -> tuple[np.ndarray, np.ndarray | None]:
    """Input coordinate of every output index on one axis, and the extrapolation mask.

    ``out_width`` below is ``scale * in_len`` (fractional when the output size came from a
    scale), as the spec's ``length_resized`` is read by onnx.reference.
    """
    y = np.arange(out_len, dtype=np.float64)
    out_width = scale * in_len
    outside = None
    if mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / out_width)
        x = offset + (y + 0.5) / scale - 0.5
    elif mode == "pytorch_half_pixel":
        x = (y + 0.5) / scale - 0.5 if out_width != 1 else np.full(out_len, -0.5)
    elif mode == "align_corners":
        x = y * (in_len - 1) / (out_width - 1) if out_width != 1 else np.zeros(out_len)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_half_pixel_for_nn":
        x = (y + 0.5) / scale
    elif mode == "tf_crop_and_resize":
        start, end = roi
        if out_width != 1:
            x = y * (end - start) * (in_len - 1) / (out_width - 1)
        else:
            x = np.full(out_len, (end - start) * (in_len - 1) / 2)
        x = x + start * (in_len - 1)
        outside = (x < 0) | (x > in_len - 1)
    else:
        raise ValueError(f"Resize: unknown coordinate_transformation_mode {mode!r}; expected one "
                         f"of {', '.join(_COORD_MODES)}")
    return x, outside


def _nearest_index(x: np.ndarray, nearest_mode: str, downsampling: bool) -> np.ndarray:
    floor = np.floor(x)
    frac = x - floor
    if nearest_mode == "round_prefer_floor":
        idx = np.where(frac <= 0.5, floor, floor + 1)
    elif nearest_mode == "round_prefer_ceil":
        idx = np.where(frac < 0.5, floor, floor + 1)
    elif nearest_mode == "floor":
        idx = floor
    elif nearest_mode == "ceil":
        idx = np.ceil(x)
    elif nearest_mode == "simple":
        # Resize-10 / Upsample had no nearest_mode: ONNX Runtime rounds up when downsampling
        # and truncates when upsampling; models exported for those opsets expect that.
        idx = np.ceil(x) if downsampling else np.trunc(x)
    else:
        raise ValueError(f"Resize: unknown nearest_mode {nearest_mode!r}; expected one of "
                         f"{', '.join(_NEAREST_MODES[:4])}")
    return idx.astype(np.int64)


def _cubic_kernel(d: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel with coefficient ``a`` at distances ``d``."""
    d = np.abs(d)
    d2, d3 = d * d, d * d * d
    near = (a + 2) * d3 - (a + 3) * d2 + 1
    far = a * d3 - 5 * a * d2 + 8 * a * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def _axis_taps(x: np.ndarray, in_len: int, mode: str, scale: float, *, cubic_coeff_a: float,
               antialias: bool, exclude_outside: bool, nearest_mode: str
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """Source indices ``(out, taps)`` (clamped into range) and weights (None for nearest)."""
    if mode == "nearest":
        idx = _nearest_index(x, nearest_mode, scale < 1)
        return np.clip(idx, 0, in_len - 1)[:, None], None
    radius = 1 if mode == "linear" else 2
    # Antialiasing stretches the filter by 1/scale when downsampling (and renormalizes).
    stretch = min(scale, 1.0) if antialias else 1.0
    first = math.floor(-radius / stretch) + 1
    ntaps = 2 - 2 * first
    # The tap window starts left of x; an integer x counts as the right end of its cell.
    base = np.ceil(x).astype(np.int64) - 1
    j = base[:, None] + np.arange(first, first + ntaps)[None, :]
    d = (j - x[:, None]) * stretch
    if mode == "linear":
        w = np.clip(1.0 - np.abs(d), 0.0, 1.0)
    else:
        w = _cubic_kernel(d, cubic_coeff_a)
    if antialias:
        w = w / w.sum(axis=1, keepdims=True)
    if exclude_outside:
        w = np.where((j < 0) | (j >= in_len), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    return np.clip(j, 0, in_len - 1), w


def _apply_taps(x: np.ndarray, axis: int, idx: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Resize ``x`` along ``axis``: ``y[..., o, ...] = sum_t w[o, t] * x[..., idx[o, t], ...]``."""
    if w is None:
        return np.take(x, idx[:, 0], axis=axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    real = np.empty(0, dtype=x.dtype).real.dtype
    w = w.astype(real)
    acc = None
    for t in range(idx.shape[1]):
        col = w[:, t]
        if not col.any():
            continue
        term = np.take(x, idx[:, t], axis=axis)
        term *= col.reshape(shape)
        if acc is None:
            acc = term
        else:
            acc += term
    if acc is None:
        out_shape = list(x.shape)
        out_shape[axis] = idx.shape[0]
        acc = np.zeros(out_shape, dtype=x.dtype)
    return acc


def _resize_nd(X: np.ndarray, scales: Sequence[float], out_shape: Sequence[int],
               rois: Sequence[tuple[float, float]], *, mode: str, coord_mode: str,
               nearest_mode: str, cubic_coeff_a: float = -0.75, exclude_outside: int = 0,
               extrapolation_value: float = 0.0, antialias: int = 0) -> np.ndarray:
    """Resize every axis of ``X`` whose (scale, size, roi) is not the identity."""
    if mode not in ("nearest", "linear", "cubic"):
        raise ValueError(f"Resize: unknown mode {mode!r}; expected nearest, linear or cubic")
    if mode != "nearest" and (X.dtype == object or X.dtype == np.bool_):
        raise ValueError(f"Resize: mode {mode!r} needs numeric data, got {X.dtype}; use "
                         "mode='nearest' for bool and string tensors")
    if any(o < 0 for o in out_shape):
        raise ValueError(f"Resize: negative output shape {list(out_shape)}")
    work = X if mode == "nearest" else X.astype(_float_work_dtype(X.dtype), copy=False)
    plans = []
    for axis, (scale, n_out, roi) in enumerate(zip(scales, out_shape, rois)):
        n_in = X.shape[axis]
        # An axis that keeps its size at scale 1 is copied (even under tf_half_pixel_for_nn,
        # whose formula would shift it by half a pixel; ONNX Runtime copies it too).
        if scale == 1.0 and n_out == n_in and (
                coord_mode != "tf_crop_and_resize" or roi == (0.0, 1.0)):
            continue
        if n_in == 0 or n_out == 0:
            plans.append((n_out / max(n_in, 1), axis, None, None, None))
            continue
        x, outside = _source_coords(coord_mode, n_out, n_in, scale, roi)
        idx, w = _axis_taps(x, n_in, mode, scale, cubic_coeff_a=cubic_coeff_a,
                            antialias=bool(antialias), exclude_outside=bool(exclude_outside),
                            nearest_mode=nearest_mode)
        plans.append((n_out / n_in, axis, idx, w, outside))
    # Shrink first so the later (growing) passes touch as little data as possible; among the
    # growing axes do the innermost first: gathers along the last axis are several times
    # slower per element than along outer axes, so they should run while the data is small.
    last = X.ndim - 1
    plans.sort(key=lambda p: (p[0] > 1, p[1] != last, p[0]))
    masks = []
    for _, axis, idx, w, outside in plans:
        if idx is None:
            shape = list(work.shape)
            shape[axis] = out_shape[axis]
            work = np.zeros(shape, dtype=work.dtype)
            continue
        work = _apply_taps(work, axis, idx, w)
        if outside is not None and outside.any():
            masks.append((axis, outside))
    if masks:
        mask = np.zeros((1,) * work.ndim, dtype=bool)
        for axis, outside in masks:
            shape = [1] * work.ndim
            shape[axis] = -1
            mask = mask | outside.reshape(shape)
        work = np.where(mask, np.asarray(extrapolation_value).astype(work.dtype), work)
    if work is X:
        return X.copy()
    return _cast_result(work, X.dtype)


def _normalize_axes(axes: Any, rank: int) -> list[int]:
    if axes is None:
        return list(range(rank))
    out = []
    for a in (int(v) for v in np.asarray(axes).reshape(-1)):
        if not -rank <= a < rank:
            raise ValueError(f"Resize: axis {a} is out of range for a rank-{rank} input")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ValueError(f"Resize: axes {list(np.asarray(axes).reshape(-1))} repeat an axis")
    return out


@kernel("Resize", since=11)
def resize(X: np.ndarray, roi: np.ndarray | None = None, scales: np.ndarray | None = None,
           sizes: np.ndarray | None = None, *, antialias: int = 0, axes: Any = None,
           coordinate_transformation_mode: str = "half_pixel", cubic_coeff_a: float = -0.75,
           exclude_outside: int = 0, extrapolation_value: float = 0.0,
           keep_aspect_ratio_policy: str = "stretch", mode: str = "nearest",
           nearest_mode: str = "round_prefer_floor") -> np.ndarray:
    """ONNX Resize-11/13/18/19: nearest/linear/cubic resampling by scales or sizes."""
    X = np.asarray(X)
    rank = X.ndim
    mode, coord_mode = _text(mode), _text(coordinate_transformation_mode)
    nearest_mode, policy = _text(nearest_mode), _text(keep_aspect_ratio_policy)
    if nearest_mode not in _NEAREST_MODES[:4]:
        raise ValueError(f"Resize: unknown nearest_mode {nearest_mode!r}; expected one of "
                         f"{', '.join(_NEAREST_MODES[:4])}")
    axis_list = _normalize_axes(axes, rank)
    k = len(axis_list)
    scales_v, sizes_v, roi_v = (_optional_values(scales), _optional_values(sizes),
                                _optional_values(roi))
    if scales_v is None and sizes_v is None:
        raise ValueError("Resize: give either 'scales' or 'sizes' (both are empty or missing)")
    if scales_v is not None and sizes_v is not None:
        raise ValueError("Resize: 'scales' and 'sizes' are both given; pass only one of them "
                         "(leave the other input name empty)")
    given = scales_v if scales_v is not None else sizes_v
    if given.size != k:
        what = "scales" if scales_v is not None else "sizes"
        raise ValueError(f"Resize: '{what}' has {given.size} values but {k} axes are resized "
                         f"(input rank {rank}, axes {axes if axes is not None else 'all'})")
    rois = [(0.0, 1.0)] * rank
    if roi_v is not None and coord_mode == "tf_crop_and_resize":
        if roi_v.size != 2 * k:
            raise ValueError(f"Resize: 'roi' has {roi_v.size} values; expected 2 * {k} "
                             "(all starts, then all ends)")
        for i, a in enumerate(axis_list):
            rois[a] = (float(roi_v[i]), float(roi_v[k + i]))
    scale_all = [1.0] * rank
    out_shape = list(X.shape)
    if scales_v is not None:
        sv = scales_v.astype(np.float64)
        if np.any(sv <= 0) or not np.all(np.isfinite(sv)):
            raise ValueError(f"Resize: scales must be positive and finite, got {scales_v.tolist()}")
        for i, a in enumerate(axis_list):
            scale_all[a] = float(sv[i])
            out_shape[a] = math.floor(X.shape[a] * float(sv[i]))
    else:
        sz = [int(v) for v in sizes_v]
        if any(v < 0 for v in sz):
            raise ValueError(f"Resize: sizes must be non-negative, got {sz}")
        ratios = [sz[i] / X.shape[a] if X.shape[a] else 1.0 for i, a in enumerate(axis_list)]
        if policy == "stretch":
            for i, a in enumerate(axis_list):
                scale_all[a] = ratios[i]
                out_shape[a] = sz[i]
        elif policy in ("not_larger", "not_smaller"):
            s = min(ratios) if policy == "not_larger" else max(ratios)
            for a in axis_list:
                scale_all[a] = s
                out_shape[a] = math.floor(s * X.shape[a] + 0.5)
        else:
            raise ValueError(f"Resize: unknown keep_aspect_ratio_policy {policy!r}; expected "
                             "stretch, not_larger or not_smaller")
    if antialias and mode == "nearest":
        raise ValueError("Resize: antialias=1 needs mode 'linear' or 'cubic'")
    return _resize_nd(X, scale_all, out_shape, rois, mode=mode, coord_mode=coord_mode,
                      nearest_mode=nearest_mode, cubic_coeff_a=float(cubic_coeff_a),
                      exclude_outside=int(exclude_outside),
                      extrapolation_value=float(extrapolation_value),
                      antialias=int(antialias))


def _legacy_resize(X: np.ndarray, scales: Any, mode: str, op: str) -> np.ndarray:
    """Upsample-7/9/10 and Resize-10: asymmetric coordinates, floor(in * scale) sizes."""
    X = np.asarray(X)
    mode = _text(mode).lower()
    if mode == "bilinear":
        mode = "linear"
    if mode not in ("nearest", "linear"):
        raise ValueError(f"{op}: unknown mode {mode!r}; expected 'nearest' or 'linear'")
    if scales is None:
        raise ValueError(f"{op}: 'scales' is required")
    sv = np.asarray(scales, dtype=np.float64).reshape(-1)
    if sv.size != X.ndim:
        raise ValueError(f"{op}: 'scales' has {sv.size} values but the input has rank {X.ndim}")
    if np.any(sv <= 0) or (op == "Upsample" and np.any(sv < 1)):
        least = "at least 1" if op == "Upsample" else "positive"
        raise ValueError(f"{op}: scales must be {least}, got {sv.tolist()}")
    out_shape = [math.floor(n * s) for n, s in zip(X.shape, sv)]
    return _resize_nd(X, [float(s) for s in sv], out_shape, [(0.0, 1.0)] * X.ndim, mode=mode,
                      coord_mode="asymmetric", nearest_mode="simple")


@kernel("Resize", since=10)
def resize_10(X: np.ndarray, scales: np.ndarray, *, mode: str = "nearest") -> np.ndarray:
    """ONNX Resize-10: nearest/linear resampling by scales, asymmetric coordinates."""
    return _legacy_resize(X, scales, mode, "Resize")


@kernel("Upsample", since=7)
def upsample_7(X: np.ndarray, *, mode: str = "nearest", scales: Any = None) -> np.ndarray:
    """ONNX Upsample-7: nearest/linear upsampling by the 'scales' attribute."""
    return _legacy_resize(X, scales, mode, "Upsample")


@kernel("Upsample", since=9)
def upsample_9(X: np.ndarray, scales: np.ndarray, *, mode: str = "nearest") -> np.ndarray:
    """ONNX Upsample-9/10: nearest/linear upsampling by the 'scales' input."""
    return _legacy_resize(X, scales, mode, "Upsample")


# ------------------------------------------------------------------------------ GridSample


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold coordinates outside [lo, hi] back in by repeated reflection at the borders."""
    span = hi - lo
    if span <= 0:
        return np.full_like(x, lo)
    below = x < lo
    above = x > hi
    dx = np.where(below, lo - x, np.where(above, x - hi, 0.0))
    flips = np.floor(dx / span)
    rest = dx - flips * span
    even = np.mod(flips, 2) == 0
    from_low = np.where(even, lo + rest, hi - rest)
    from_high = np.where(even, hi - rest, lo + rest)
    return np.where(below, from_low, np.where(above, from_high, x))


def _keys_weights(frac: np.ndarray, a: float = -0.75) -> list[np.ndarray]:
    """Cubic convolution weights of the taps at floor(x) - 1 .. floor(x) + 2."""
    return [_cubic_kernel(frac + 1, a), _cubic_kernel(frac, a), _cubic_kernel(1 - frac, a),
            _cubic_kernel(2 - frac, a)]


def _grid_axis_taps(x: np.ndarray, size: int, mode: str, padding_mode: str,
                    align_corners: int) -> list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
    """(index, weight or None, in-bounds mask) of every tap along one spatial axis."""
    lo, hi = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
    if mode == "nearest":
        x = np.rint(x)
    out = (x < lo) | (x > hi)
    if padding_mode == "border":
        x = np.where(out, np.clip(x, 0, size - 1), x)
    elif padding_mode == "reflection":
        x = np.where(out, _reflect(x, lo, hi), x)

    def place(i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if padding_mode == "zeros":
            valid = (i >= 0) & (i < size)
        else:
            valid = np.ones(i.shape, dtype=bool)
            if padding_mode == "reflection":
                i = np.trunc(_reflect(i.astype(x.dtype), lo, hi)).astype(np.int64)
        return np.clip(i, 0, size - 1), valid

    if mode == "nearest":
        idx, valid = place(np.trunc(x).astype(np.int64))
        return [(idx, None, valid)]
    base = np.floor(x)
    frac = x - base
    base = base.astype(np.int64)
    if mode == "linear":
        offsets, weights = (0, 1), [1 - frac, frac]
    else:
        offsets, weights = (-1, 0, 1, 2), _keys_weights(frac)
    taps = []
    for off, w in zip(offsets, weights):
        idx, valid = place(base + off)
        taps.append((idx, w, valid))
    return taps


def _sample_points(xf: np.ndarray, spatial: Sequence[int], coords: Sequence[np.ndarray],
                   mode: str, padding_mode: str, align_corners: int, work: np.dtype,
                   point_shape: tuple[int, ...]) -> np.ndarray:
    """Interpolate ``xf`` (B, C, prod(spatial)) at per-batch points: returns (B, C, P).

    ``coords[d]`` holds the (B, P) pixel coordinates along spatial axis d.
    """
    per_axis = [_grid_axis_taps(c, n, mode, padding_mode, align_corners)
                for c, n in zip(coords, spatial)]
    strides = [int(np.prod(spatial[d + 1:], dtype=np.int64)) for d in range(len(spatial))]
    numeric = xf.dtype.kind in "fciu"
    out = None
    for combo in itertools.product(*per_axis):
        flat = combo[0][0] * strides[0]
        valid = combo[0][2]
        weight = combo[0][1]
        for d, (idx, w, ok) in enumerate(combo[1:], start=1):
            flat = flat + idx * strides[d]
            valid = valid & ok
            if w is not None:
                weight = weight * w
        vals = np.take_along_axis(xf, flat.reshape(point_shape)[:, None, :], axis=2)
        if weight is None:
            zero = np.zeros((), dtype=xf.dtype) if numeric or xf.dtype == bool else ""
            term = np.where(valid.reshape(point_shape)[:, None, :], vals, zero)
        else:
            w = np.where(valid, weight, 0.0).astype(work).reshape(point_shape)
            term = vals.astype(work, copy=False) * w[:, None, :]
        out = term if out is None else out + term
    return out


@kernel("GridSample", since=16)
def grid_sample(X: np.ndarray, grid: np.ndarray, *, align_corners: int = 0,
                mode: str = "linear", padding_mode: str = "zeros") -> np.ndarray:
    """ONNX GridSample-16/20/22: sample X at normalized grid positions (N-D, 3 modes)."""
    X, grid = np.asarray(X), np.asarray(grid)
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(_text(mode), _text(mode))
    padding_mode = _text(padding_mode)
    if mode not in ("nearest", "linear", "cubic"):
        raise ValueError(f"GridSample: unknown mode {mode!r}; expected linear, nearest or cubic")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"GridSample: unknown padding_mode {padding_mode!r}; expected zeros, "
                         "border or reflection")
    r = X.ndim - 2
    if r < 1 or grid.ndim != r + 2 or grid.shape[-1] != r or grid.shape[0] != X.shape[0]:
        raise ValueError(f"GridSample: X {X.shape} needs grid of shape (N, D1_out, ..., Dr_out, "
                         f"{max(r, 0)}), got {grid.shape}")
    if mode != "nearest" and X.dtype.kind not in "fciu" and X.dtype != ml_dtypes.bfloat16:
        raise ValueError(f"GridSample: mode {mode!r} needs numeric data, got {X.dtype}")
    n, c = X.shape[:2]
    spatial = X.shape[2:]
    out_sp = grid.shape[1:-1]
    y_shape = (n, c, *out_sp)
    if 0 in y_shape:
        return np.zeros(y_shape, dtype=X.dtype)
    if 0 in spatial:
        raise ValueError(f"GridSample: X has an empty spatial axis, shape {X.shape}")
    # Coordinates in float32 unless the grid is double, like the reference computes them.
    cdt = np.float64 if grid.dtype == np.float64 else np.float32
    g = grid.astype(cdt).reshape(n, -1, r)
    coords = []
    for d, size in enumerate(spatial):
        gd = g[..., r - 1 - d]  # grid vectors list the innermost axis first
        if align_corners:
            coords.append((gd + 1) / 2 * (size - 1))
        else:
            coords.append(((gd + 1) * size - 1) / 2)
    work = _float_work_dtype(X.dtype) if X.dtype.kind in "fiu" or X.dtype == ml_dtypes.bfloat16 \
        else X.dtype
    xf = X.reshape(n, c, -1)
    if mode != "nearest":
        xf = xf.astype(work, copy=False)
    y = _sample_points(xf, spatial, coords, mode, padding_mode, int(align_corners), work,
                       (n, g.shape[1]))
    y = y.reshape(y_shape)
    if y.dtype == X.dtype:
        return y
    # Integer outputs truncate toward zero like the reference's assignment into X's dtype.
    return y.astype(X.dtype)


@kernel("AffineGrid", since=20)
def affine_grid(theta: np.ndarray, size: np.ndarray, *, align_corners: int = 0) -> np.ndarray:
    """ONNX AffineGrid-20: sampling grid (N, [D,] H, W, 2|3) from affine matrices theta."""
    theta = np.asarray(theta)
    dims = [int(v) for v in np.asarray(size).reshape(-1)]
    if len(dims) not in (4, 5):
        raise ValueError(f"AffineGrid: size must be (N, C, H, W) or (N, C, D, H, W), got {dims}")
    r = len(dims) - 2
    n = dims[0]
    if theta.shape != (n, r, r + 1):
        raise ValueError(f"AffineGrid: theta must have shape ({n}, {r}, {r + 1}) for size "
                         f"{dims}, got {theta.shape}")
    axes = []
    for length in dims[2:]:
        if align_corners:
            a = np.linspace(-1.0, 1.0, length) if length > 1 else np.full(length, -1.0)
        else:
            a = (2.0 * np.arange(length) + 1.0) / length - 1.0
        axes.append(a)
    # Homogeneous base positions, innermost axis first: (x, y[, z], 1).
    mesh = np.meshgrid(*axes, indexing="ij")
    base = np.stack([*mesh[::-1], np.ones_like(mesh[0])], axis=-1).reshape(-1, r + 1)
    grid = np.einsum("pk,njk->npj", base, theta.astype(np.float64))
    return grid.reshape(n, *dims[2:], r).astype(theta.dtype)


# -------------------------------------------------------------------------------- RoiAlign

#: Upper bound on the elements one vectorized RoiAlign chunk materializes per corner.
_ROI_CHUNK_ELEMS = 1 << 22


def _roi_axis_samples(start: np.ndarray, bin_size: np.ndarray, grid: np.ndarray, pooled: int,
                      size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          np.ndarray]:
    """Bilinear taps of the sample points along one axis for a chunk of ROIs.

    Returns ``low, high`` indices, ``w_low, w_high`` weights (zero for points outside
    [-1, size]) and the mask of real sample points, each of shape (R, pooled, max(grid)).
    """
    gdt = start.dtype
    gmax = max(int(grid.max()), 1)
    p = np.arange(pooled, dtype=gdt)[None, :, None]
    i = np.arange(gmax)[None, None, :]
    g = np.maximum(grid, 1).astype(gdt)[:, None, None]
    pos = start[:, None, None] + p * bin_size[:, None, None] + \
        (i + 0.5).astype(gdt) * bin_size[:, None, None] / g
    present = np.broadcast_to(i < grid[:, None, None], pos.shape)
    inside = (pos >= -1.0) & (pos <= size)
    pos = np.maximum(pos, 0.0)
    low = np.floor(pos).astype(np.int64)
    at_end = low >= size - 1
    low = np.where(at_end, size - 1, low)
    high = np.where(at_end, size - 1, low + 1)
    pos = np.where(at_end, low, pos)
    frac = pos - low
    w_high = np.where(inside, frac, 0.0)
    w_low = np.where(inside, 1.0 - frac, 0.0)
    return low, high, w_low, w_high, present


def _roi_align(X: np.ndarray, rois: np.ndarray, batch_indices: np.ndarray, *, mode: str,
               output_height: int, output_width: int, sampling_ratio: int,
               spatial_scale: float, half_pixel: bool) -> np.ndarray:
    X, rois = np.asarray(X), np.asarray(rois)
    bidx = np.asarray(batch_indices).reshape(-1).astype(np.int64)
    mode = _text(mode).lower()
    if mode not in ("avg", "max"):
        raise ValueError(f"RoiAlign: unknown mode {mode!r}; expected 'avg' or 'max'")
    if X.ndim != 4:
        raise ValueError(f"RoiAlign: X must be (N, C, H, W), got shape {X.shape}")
    if rois.ndim != 2 or rois.shape[1] != 4 or rois.shape[0] != bidx.shape[0]:
        raise ValueError(f"RoiAlign: rois must be (num_rois, 4) with one batch index per ROI, "
                         f"got rois {rois.shape} and batch_indices {bidx.shape}")
    n, c, h, w = X.shape
    if bidx.size and (bidx.min() < 0 or bidx.max() >= n):
        raise ValueError(f"RoiAlign: batch_indices must be in [0, {n}), got {bidx.tolist()}")
    ph, pw = int(output_height), int(output_width)
    nroi = rois.shape[0]
    work = _float_work_dtype(X.dtype)
    y = np.zeros((nroi, c, ph, pw), dtype=work)
    if nroi == 0 or c == 0:
        return y.astype(X.dtype)
    # Box geometry in the input's precision (float32 unless double), as ONNX Runtime computes
    # it: the adaptive grid size ceil(roi_size / bins) depends on the rounding.
    gdt = np.float64 if X.dtype == np.float64 else np.float32
    r = rois.astype(gdt) * gdt(spatial_scale)
    if half_pixel:
        r = r - gdt(0.5)
    x0, y0, x1, y1 = r[:, 0], r[:, 1], r[:, 2], r[:, 3]
    roi_w, roi_h = x1 - x0, y1 - y0
    if not half_pixel:
        roi_w, roi_h = np.maximum(roi_w, gdt(1)), np.maximum(roi_h, gdt(1))
    bin_h, bin_w = roi_h / gdt(ph), roi_w / gdt(pw)
    if sampling_ratio > 0:
        grid_h = np.full(nroi, int(sampling_ratio), dtype=np.int64)
        grid_w = grid_h.copy()
    else:
        grid_h = np.ceil(bin_h).astype(np.int64)
        grid_w = np.ceil(bin_w).astype(np.int64)
    count = np.maximum(grid_h * grid_w, 1)
    per_roi = c * ph * pw * max(int(grid_h.max()), 1) * max(int(grid_w.max()), 1)
    chunk = max(1, _ROI_CHUNK_ELEMS // max(per_roi, 1))
    xw = X.astype(work, copy=False)
    for s in range(0, nroi, chunk):
        sl = slice(s, min(s + chunk, nroi))
        yl, yh, wyl, wyh, py = _roi_axis_samples(y0[sl], bin_h[sl], grid_h[sl], ph, h)
        xl, xh, wxl, wxh, px = _roi_axis_samples(x0[sl], bin_w[sl], grid_w[sl], pw, w)
        b = bidx[sl][:, None, None, None, None]
        terms = []
        for yi, wy in ((yl, wyl), (yh, wyh)):
            for xi, wx in ((xl, wxl), (xh, wxh)):
                # Advanced indices around the channel slice give (R, ph, gh, pw, gw, C).
                vals = xw[b, :, yi[:, :, :, None, None], xi[:, None, None, :, :]]
                wgt = (wy[:, :, :, None, None] * wx[:, None, None, :, :])[..., None]
                terms.append(vals * wgt.astype(work))
        present = (py[:, :, :, None, None] & px[:, None, None, :, :])[..., None]
        if mode == "avg":
            total = np.where(present, terms[0] + terms[1] + terms[2] + terms[3], 0)
            pooled = total.sum(axis=(2, 4)) / count[sl][:, None, None, None]
        else:
            best = np.maximum(np.maximum(terms[0], terms[1]), np.maximum(terms[2], terms[3]))
            best = np.where(present, best, -np.inf)
            pooled = best.max(axis=(2, 4))
            pooled = np.where(np.isneginf(pooled), 0, pooled)
        y[sl] = pooled.transpose(0, 3, 1, 2)
    return y.astype(X.dtype)


@kernel("RoiAlign", since=10)
def roi_align_10(X: np.ndarray, rois: np.ndarray, batch_indices: np.ndarray, *,
                 mode: str = "avg", output_height: int = 1, output_width: int = 1,
                 sampling_ratio: int = 0, spatial_scale: float = 1.0) -> np.ndarray:
    """ONNX RoiAlign-10: bilinear ROI pooling without the half-pixel shift."""
    return _roi_align(X, rois, batch_indices, mode=mode, output_height=output_height,
                      output_width=output_width, sampling_ratio=sampling_ratio,
                      spatial_scale=spatial_scale, half_pixel=False)


@kernel("RoiAlign", since=16)
def roi_align_16(X: np.ndarray, rois: np.ndarray, batch_indices: np.ndarray, *,
                 coordinate_transformation_mode: str = "half_pixel", mode: str = "avg",
                 output_height: int = 1, output_width: int = 1, sampling_ratio: int = 0,
                 spatial_scale: float = 1.0) -> np.ndarray:
    """ONNX RoiAlign-16/22: bilinear ROI pooling, half_pixel or output_half_pixel coordinates."""
    ctm = _text(coordinate_transformation_mode)
    if ctm not in ("half_pixel", "output_half_pixel"):
        raise ValueError(f"RoiAlign: unknown coordinate_transformation_mode {ctm!r}; expected "
                         "'half_pixel' or 'output_half_pixel'")
    return _roi_align(X, rois, batch_indices, mode=mode, output_height=output_height,
                      output_width=output_width, sampling_ratio=sampling_ratio,
                      spatial_scale=spatial_scale, half_pixel=ctm == "half_pixel")


@kernel("MaxRoiPool", since=1)
def max_roi_pool(X: np.ndarray, rois: np.ndarray, *, pooled_shape: Any = None,
                 spatial_scale: float = 1.0) -> np.ndarray:
    """ONNX MaxRoiPool-1/22: max pooling over quantized ROI bins (Fast R-CNN)."""
    X, rois = np.asarray(X), np.asarray(rois)
    if pooled_shape is None:
        raise ValueError("MaxRoiPool: the 'pooled_shape' attribute is required")
    ph, pw = (int(v) for v in np.asarray(pooled_shape).reshape(-1))
    if X.ndim != 4 or rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(f"MaxRoiPool: need X (N, C, H, W) and rois (num_rois, 5), got "
                         f"{X.shape} and {rois.shape}")
    n, c, h, w = X.shape
    work = _float_work_dtype(X.dtype)
    y = np.zeros((rois.shape[0], c, ph, pw), dtype=work)
    r = rois.astype(np.float64)
    # Box corners are rounded half away from zero, like C's round().
    corners = np.sign(r[:, 1:] * spatial_scale) * np.floor(np.abs(r[:, 1:] * spatial_scale) + 0.5)
    corners = corners.astype(np.int64)
    pyi, pxi = np.arange(ph), np.arange(pw)
    for k in range(rois.shape[0]):  # one vectorized pass per ROI (ROIs differ in size)
        b = int(r[k, 0])
        if not 0 <= b < n:
            raise ValueError(f"MaxRoiPool: ROI {k} has batch index {b}, expected [0, {n})")
        sx, sy, ex, ey = corners[k]
        bh = max(ey - sy + 1, 1) / ph
        bw = max(ex - sx + 1, 1) / pw
        hs = np.clip(np.floor(pyi * bh).astype(np.int64) + sy, 0, h)
        he = np.clip(np.ceil((pyi + 1) * bh).astype(np.int64) + sy, 0, h)
        ws = np.clip(np.floor(pxi * bw).astype(np.int64) + sx, 0, w)
        we = np.clip(np.ceil((pxi + 1) * bw).astype(np.int64) + sx, 0, w)
        if he.max() <= hs.min() or we.max() <= ws.min():
            continue
        top, bottom, left, right = hs.min(), he.max(), ws.min(), we.max()
        crop = X[b, :, top:bottom, left:right].astype(work)
        rows = np.arange(top, bottom)
        cols = np.arange(left, right)
        in_w = (cols[None, :] >= ws[:, None]) & (cols[None, :] < we[:, None])  # (pw, cw)
        in_h = (rows[None, :] >= hs[:, None]) & (rows[None, :] < he[:, None])  # (ph, ch)
        # Max is separable over a rectangle: reduce the columns of each bin, then the rows.
        colmax = np.where(in_w[None, None], crop[:, :, None, :], -np.inf).max(axis=3)
        full = np.where(in_h[None, :, :, None], colmax[:, None, :, :], -np.inf).max(axis=2)
        y[k] = np.where(np.isneginf(full), 0, full)
    return y.astype(X.dtype)


# ------------------------------------------------------------------------ NonMaxSuppression


def _corner_boxes(boxes: np.ndarray, center_point_box: int) -> tuple[np.ndarray, ...]:
    """(y_min, x_min, y_max, x_max) of every box, whatever corner order it came in."""
    b = boxes.astype(np.float64)
    if center_point_box:
        xc, yc, bw, bh = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
        return yc - bh / 2, xc - bw / 2, yc + bh / 2, xc + bw / 2
    return (np.minimum(b[..., 0], b[..., 2]), np.minimum(b[..., 1], b[..., 3]),
            np.maximum(b[..., 0], b[..., 2]), np.maximum(b[..., 1], b[..., 3]))


@kernel("NonMaxSuppression", since=10)
def non_max_suppression(boxes: np.ndarray, scores: np.ndarray,
                        max_output_boxes_per_class: np.ndarray | None = None,
                        iou_threshold: np.ndarray | None = None,
                        score_threshold: np.ndarray | None = None, *,
                        center_point_box: int = 0) -> np.ndarray:
    """ONNX NonMaxSuppression-10/11: greedy per-class IoU suppression, [batch, class, box]."""
    boxes, scores = np.asarray(boxes), np.asarray(scores)
    if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.ndim != 3 or \
            scores.shape[0] != boxes.shape[0] or scores.shape[2] != boxes.shape[1]:
        raise ValueError(f"NonMaxSuppression: need boxes (B, N, 4) and scores (B, C, N), got "
                         f"{boxes.shape} and {scores.shape}")
    limit = 0
    if max_output_boxes_per_class is not None and np.asarray(max_output_boxes_per_class).size:
        limit = max(int(np.asarray(max_output_boxes_per_class).reshape(-1)[0]), 0)
    iou_thr = 0.0
    if iou_threshold is not None and np.asarray(iou_threshold).size:
        iou_thr = float(np.asarray(iou_threshold).reshape(-1)[0])
    score_thr = None
    if score_threshold is not None and np.asarray(score_threshold).size:
        score_thr = float(np.asarray(score_threshold).reshape(-1)[0])
    selected: list[tuple[int, int, int]] = []
    if limit == 0:
        return np.zeros((0, 3), dtype=np.int64)
    y0, x0, y1, x1 = _corner_boxes(boxes, center_point_box)
    area = (y1 - y0) * (x1 - x0)
    for b in range(boxes.shape[0]):
        for cls in range(scores.shape[1]):
            s = scores[b, cls].astype(np.float64)
            cand = np.arange(s.shape[0]) if score_thr is None else np.flatnonzero(s > score_thr)
            # Highest score first; equal scores keep the lower box index first.
            cand = cand[np.argsort(-s[cand], kind="stable")]
            alive = np.ones(cand.shape[0], dtype=bool)
            kept, pos = 0, 0
            while pos < cand.shape[0]:  # one step per *selected* box
                i = cand[pos]
                selected.append((b, cls, int(i)))
                kept += 1
                if kept >= limit:
                    break
                rest = cand[pos + 1:]
                iy0 = np.maximum(y0[b, i], y0[b, rest])
                ix0 = np.maximum(x0[b, i], x0[b, rest])
                iy1 = np.minimum(y1[b, i], y1[b, rest])
                ix1 = np.minimum(x1[b, i], x1[b, rest])
                overlap = (iy1 > iy0) & (ix1 > ix0)
                inter = np.where(overlap, (iy1 - iy0) * (ix1 - ix0), 0.0)
                union = area[b, i] + area[b, rest] - inter
                ok = overlap & (area[b, i] > 0) & (area[b, rest] > 0) & (union > 0) & (inter > 0)
                iou = np.where(ok, inter / np.where(union > 0, union, 1.0), 0.0)
                alive[pos + 1:] &= ~(ok & (iou > iou_thr))
                following = alive[pos + 1:]
                if not following.any():
                    break
                pos += 1 + int(following.argmax())
    if not selected:
        return np.zeros((0, 3), dtype=np.int64)
    return np.asarray(selected, dtype=np.int64)


# ---------------------------------------------------------------------- Col2Im, DeformConv


def _spatial_attr(value: Any, n: int, default: int, name: str, op: str) -> list[int]:
    if value is None:
        return [default] * n
    vals = [int(v) for v in np.asarray(value).reshape(-1)]
    if len(vals) != n:
        raise ValueError(f"{op}: '{name}' has {len(vals)} values; expected {n}")
    return vals


@kernel("Col2Im", since=18)
def col2im(input: np.ndarray, image_shape: np.ndarray, block_shape: np.ndarray, *,
           dilations: Any = None, pads: Any = None, strides: Any = None) -> np.ndarray:
    """ONNX Col2Im-18: sum column blocks (N, C*prod(block), L) back into an image."""
    x = np.asarray(input)
    image = [int(v) for v in np.asarray(image_shape).reshape(-1)]
    block = [int(v) for v in np.asarray(block_shape).reshape(-1)]
    r = len(image)
    if len(block) != r or r == 0:
        raise ValueError(f"Col2Im: image_shape {image} and block_shape {block} must have the "
                         "same, non-zero length")
    dil = _spatial_attr(dilations, r, 1, "dilations", "Col2Im")
    st = _spatial_attr(strides, r, 1, "strides", "Col2Im")
    pd = _spatial_attr(pads, 2 * r, 0, "pads", "Col2Im")
    kprod = int(np.prod(block))
    if x.ndim != 3 or kprod == 0 or x.shape[1] % kprod:
        raise ValueError(f"Col2Im: input must be (N, C * {kprod}, L), got shape {x.shape}")
    counts = [(image[d] + pd[d] + pd[r + d] - dil[d] * (block[d] - 1) - 1) // st[d] + 1
              for d in range(r)]
    if any(cnt <= 0 for cnt in counts) or int(np.prod(counts)) != x.shape[2]:
        raise ValueError(f"Col2Im: input has L={x.shape[2]} blocks but image_shape {image}, "
                         f"block_shape {block}, strides {st}, pads {pd} and dilations {dil} give "
                         f"{counts} = {int(np.prod(counts))}")
    n, c = x.shape[0], x.shape[1] // kprod
    if x.dtype == object:
        raise ValueError("Col2Im: string tensors cannot be summed")
    work = compute_dtype(x.dtype) if x.dtype != np.bool_ else np.dtype(np.int64)
    cols = x.astype(work, copy=False).reshape(n, c, *block, *counts)
    padded = np.zeros((n, c, *(image[d] + pd[d] + pd[r + d] for d in range(r))), dtype=work)
    for tap in np.ndindex(*block):  # one strided add per kernel element
        where = tuple(slice(t * dl, t * dl + s * (cnt - 1) + 1, s)
                      for t, dl, s, cnt in zip(tap, dil, st, counts))
        padded[(slice(None), slice(None), *where)] += cols[(slice(None), slice(None), *tap)]
    crop = tuple(slice(pd[d], pd[d] + image[d]) for d in range(r))
    out = padded[(slice(None), slice(None), *crop)]
    return np.ascontiguousarray(out).astype(x.dtype, copy=False)


@kernel("DeformConv", since=19)
def deform_conv(X: np.ndarray, W: np.ndarray, offset: np.ndarray, B: np.ndarray | None = None,
                mask: np.ndarray | None = None, *, dilations: Any = None, group: int = 1,
                kernel_shape: Any = None, offset_group: int = 1, pads: Any = None,
                strides: Any = None) -> np.ndarray:
    """ONNX DeformConv-19/22: convolution sampling X at offset (and masked) kernel positions."""
    X, W, offset = np.asarray(X), np.asarray(W), np.asarray(offset)
    if X.ndim < 3 or W.ndim != X.ndim:
        raise ValueError(f"DeformConv: X {X.shape} and W {W.shape} must both be (N, C, D1, ...)")
    r = X.ndim - 2
    n, c = X.shape[:2]
    oc = W.shape[0]
    group, offset_group = int(group), int(offset_group)
    ksp = _spatial_attr(kernel_shape, r, 0, "kernel_shape", "DeformConv") \
        if kernel_shape is not None else list(W.shape[2:])
    if list(W.shape[2:]) != ksp:
        raise ValueError(f"DeformConv: kernel_shape {ksp} does not match W's shape {W.shape}")
    if group <= 0 or c != W.shape[1] * group or oc % group:
        raise ValueError(f"DeformConv: X has {c} channels and W is {W.shape}; need "
                         f"C == W.shape[1] * group ({group}) and oC divisible by group")
    if offset_group <= 0 or c % offset_group:
        raise ValueError(f"DeformConv: C={c} must be divisible by offset_group={offset_group}")
    st = _spatial_attr(strides, r, 1, "strides", "DeformConv")
    dil = _spatial_attr(dilations, r, 1, "dilations", "DeformConv")
    pd = _spatial_attr(pads, 2 * r, 0, "pads", "DeformConv")
    spatial = X.shape[2:]
    out_sp = [(spatial[d] + pd[d] + pd[r + d] - dil[d] * (ksp[d] - 1) - 1) // st[d] + 1
              for d in range(r)]
    kprod = int(np.prod(ksp))
    if offset.shape != (n, offset_group * kprod * r, *out_sp):
        raise ValueError(f"DeformConv: offset must have shape "
                         f"{(n, offset_group * kprod * r, *out_sp)}, got {offset.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (n, offset_group * kprod, *out_sp):
            raise ValueError(f"DeformConv: mask must have shape "
                             f"{(n, offset_group * kprod, *out_sp)}, got {mask.shape}")
    work = compute_dtype(X.dtype)
    npts = int(np.prod(out_sp))
    off = offset.astype(np.float64).reshape(n, offset_group, kprod, r, npts)
    # Sampling position = output position * stride - pad + tap * dilation + learned offset.
    grids = np.meshgrid(*(np.arange(o) for o in out_sp), indexing="ij")
    taps = np.array(list(np.ndindex(*ksp)), dtype=np.float64).reshape(kprod, r)
    coords = []
    for d in range(r):
        base = grids[d].reshape(-1) * st[d] - pd[d]
        pos = base[None, None, None, :] + (taps[:, d] * dil[d])[None, None, :, None]
        coords.append((pos + off[:, :, :, d, :]).reshape(n * offset_group, kprod * npts))
    cpg = c // offset_group
    xf = X.astype(work, copy=False).reshape(n * offset_group, cpg, -1)
    cols = _sample_points(xf, spatial, coords, "linear", "zeros", 1, work,
                          (n * offset_group, kprod * npts))
    cols = cols.reshape(n, offset_group, cpg, kprod, npts)
    if mask is not None:
        cols = cols * mask.astype(work).reshape(n, offset_group, 1, kprod, npts)
    cols = cols.reshape(n, group, (c // group) * kprod, npts)
    wg = W.astype(work, copy=False).reshape(group, oc // group, (c // group) * kprod)
    y = np.matmul(wg[None], cols).reshape(n, oc, *out_sp)
    if B is not None:
        y = y + np.asarray(B).astype(work).reshape(1, oc, *([1] * r))
    return y.astype(X.dtype, copy=False)


# ---------------------------------------------------------------------------- ImageDecoder


class _Undecodable(Exception):
    """The stream is not a valid image of a format we read (the op then returns empty)."""


def _png_unfilter_loop(raw, out, height, stride, bpp):  # compiled by numba
    for y in range(height):
        kind = raw[y * (stride + 1)]
        src = y * (stride + 1) + 1
        for x in range(stride):
            a = np.int32(out[y, x - bpp]) if x >= bpp else np.int32(0)
            b = np.int32(out[y - 1, x]) if y > 0 else np.int32(0)
            c = np.int32(out[y - 1, x - bpp]) if (y > 0 and x >= bpp) else np.int32(0)
            v = np.int32(raw[src + x])
            if kind == 1:
                v += a
            elif kind == 2:
                v += b
            elif kind == 3:
                v += (a + b) >> 1
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                v += a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            out[y, x] = np.uint8(v & 255)


_PNG_JIT: list = []


def _png_unfilter(raw: np.ndarray, height: int, stride: int, bpp: int) -> np.ndarray:
    kinds = raw[:: stride + 1][:height]
    if kinds.size and kinds.max() > 4:
        raise _Undecodable("bad PNG filter type")
    rows = raw.reshape(height, stride + 1)[:, 1:]
    if not np.any((kinds == 3) | (kinds == 4)):
        # None / Sub / Up only: each row is one vectorized pass.
        out = np.empty((height, stride), dtype=np.uint8)
        prev = np.zeros(stride, dtype=np.uint8)
        for y in range(height):
            row = rows[y]
            if kinds[y] == 1:
                row = np.cumsum(row.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
            elif kinds[y] == 2:
                row = row + prev
            out[y] = row
            prev = out[y]
        return out
    if not _PNG_JIT:
        import numba  # imported lazily: only PNGs with Average/Paeth rows need the JIT

        _PNG_JIT.append(numba.njit(cache=True, nogil=True)(_png_unfilter_loop))
    out = np.zeros((height, stride), dtype=np.uint8)
    _PNG_JIT[0](np.ascontiguousarray(raw), out, height, stride, bpp)
    return out


def _decode_png(data: bytes) -> tuple[np.ndarray, str]:
    pos, idat, palette, header = 8, [], None, None
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise _Undecodable("truncated PNG chunk")
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"PLTE":
            palette = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise _Undecodable("PNG without IHDR or IDAT")
    width, height, depth, color, _, _, interlace = header
    if interlace:
        raise NotImplementedError("interlaced (Adam7) PNG")
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color)
    if channels is None or depth not in (1, 2, 4, 8, 16) or (depth < 8 and color not in (0, 3)):
        raise _Undecodable(f"PNG color type {color} with bit depth {depth}")
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    except zlib.error as exc:
        raise _Undecodable(str(exc)) from exc
    stride = (width * channels * depth + 7) // 8
    if raw.size < height * (stride + 1):
        raise _Undecodable("PNG image data too short")
    bpp = max(1, channels * depth // 8)
    rows = _png_unfilter(raw[: height * (stride + 1)], height, stride, bpp)
    if depth == 16:
        px = rows.reshape(height, width, channels, 2)[..., 0]  # keep the high byte
    elif depth == 8:
        px = rows.reshape(height, width, channels)
    else:
        bits = np.unpackbits(rows, axis=1).reshape(height, -1, depth)
        vals = (bits * (1 << np.arange(depth - 1, -1, -1, dtype=np.uint8))).sum(axis=2)
        px = vals[:, :width].astype(np.uint8)[..., None]
        if color == 0:
            px = (px.astype(np.uint16) * 255 // ((1 << depth) - 1)).astype(np.uint8)
    if color == 3:
        if palette is None:
            raise _Undecodable("palette PNG without PLTE")
        return palette[np.minimum(px[..., 0], palette.shape[0] - 1)], "RGB"
    if color in (0, 4):
        return px[..., 0], "L"
    return px[..., :3], "RGB"


def _decode_bmp(data: bytes) -> tuple[np.ndarray, str]:
    if len(data) < 26:
        raise _Undecodable("truncated BMP")
    offset, hsize = struct.unpack("<I", data[10:14])[0], struct.unpack("<I", data[14:18])[0]
    if hsize == 12:
        width, height, _, bits = struct.unpack("<hhHH", data[18:26])
        compression, colors, entry = 0, 0, 3
    else:
        width, height, _, bits, compression = struct.unpack("<iiHHI", data[18:34])
        colors = struct.unpack("<I", data[46:50])[0] if hsize >= 40 else 0
        entry = 4
    if compression not in (0, 3) or bits not in (1, 4, 8, 24, 32) or width <= 0 or height == 0:
        raise NotImplementedError(f"BMP with {bits} bits per pixel and compression "
                                  f"{compression}")
    top_down = height < 0
    height = abs(height)
    stride = (width * bits + 31) // 32 * 4
    pixels = np.frombuffer(data, dtype=np.uint8, count=stride * height, offset=offset)
    rows = pixels.reshape(height, stride)
    if not top_down:
        rows = rows[::-1]
    if bits >= 24:
        bgr = rows[:, : width * bits // 8].reshape(height, width, bits // 8)[..., :3]
        return bgr[..., ::-1], "RGB"
    ncolors = colors or (1 << bits)
    pal = np.frombuffer(data, dtype=np.uint8, count=ncolors * entry, offset=14 + hsize)
    pal = pal.reshape(ncolors, entry)[:, 2::-1]
    if bits == 8:
        idx = rows[:, :width]
    else:
        idx = np.unpackbits(rows, axis=1).reshape(height, -1, bits)
        idx = (idx * (1 << np.arange(bits - 1, -1, -1, dtype=np.uint8))).sum(axis=2)[:, :width]
    return pal[np.minimum(idx, ncolors - 1)], "RGB"


def _decode_pnm(data: bytes) -> tuple[np.ndarray, str]:
    kind = data[1:2]
    fields: list[bytes] = []
    pos = 2
    need = 2 if kind in (b"1", b"4") else 3
    while len(fields) < need:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            while pos < len(data) and data[pos:pos + 1] not in (b"\n", b"\r"):
                pos += 1
            continue
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace() and data[pos:pos + 1] != b"#":
            pos += 1
        if start == pos:
            raise _Undecodable("truncated PNM header")
        fields.append(data[start:pos])
    width, height = int(fields[0]), int(fields[1])
    maxval = int(fields[2]) if need == 3 else 1
    channels = 3 if kind in (b"3", b"6") else 1
    count = width * height * channels
    if kind in (b"1", b"2", b"3"):
        text = data[pos:].split(b"#")[0] if kind != b"1" else data[pos:]
        if kind == b"1":
            digits = np.frombuffer(bytes(ch for ch in text if ch in b"01"), dtype=np.uint8)
            vals = digits[:count] - ord("0")
        else:
            vals = np.array(text.split()[:count], dtype=np.int64)
    else:
        pos += 1  # the single whitespace byte after the header
        if kind == b"4":
            rows = np.frombuffer(data, dtype=np.uint8, count=(width + 7) // 8 * height,
                                 offset=pos).reshape(height, -1)
            vals = np.unpackbits(rows, axis=1)[:, :width].reshape(-1)
        elif maxval < 256:
            vals = np.frombuffer(data, dtype=np.uint8, count=count, offset=pos)
        else:
            vals = np.frombuffer(data, dtype=">u2", count=count, offset=pos)
    if vals.size != count:
        raise _Undecodable("PNM pixel data too short")
    if kind in (b"1", b"4"):
        img = np.where(vals.reshape(height, width) == 1, 0, 255).astype(np.uint8)
        return img, "L"
    vals = vals.astype(np.int64)
    if maxval != 255:
        vals = (vals * 255 + maxval // 2) // max(maxval, 1)
    img = np.clip(vals, 0, 255).astype(np.uint8).reshape(height, width, channels)
    return (img, "RGB") if channels == 3 else (img[..., 0], "L")


def _decode_tiff(data: bytes) -> tuple[np.ndarray, str]:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
    codes = {1: "B", 2: "c", 3: "H", 4: "I", 6: "b", 7: "B", 8: "h", 9: "i", 11: "f", 12: "d"}
    tags: dict[int, list] = {}
    for k in range(count):
        base = ifd + 2 + 12 * k
        tag, typ, n = struct.unpack(order + "HHI", data[base:base + 8])
        if typ not in codes:
            continue
        size = sizes[typ] * n
        where = base + 8 if size <= 4 else struct.unpack(order + "I", data[base + 8:base + 12])[0]
        tags[tag] = list(struct.unpack(order + codes[typ] * n, data[where:where + size]))
    width, height = tags[256][0], tags[257][0]
    spp = tags.get(277, [1])[0]
    bits = tags.get(258, [1])
    compression = tags.get(259, [1])[0]
    photometric = tags.get(262, [1])[0]
    if tags.get(284, [1])[0] != 1 or any(b != 8 for b in bits) or \
            compression not in (1, 8, 32946, 32773):
        raise NotImplementedError(f"TIFF with compression {compression}, bits {bits}, "
                                  f"planar configuration {tags.get(284, [1])[0]}")
    chunks = []
    for off, length in zip(tags[273], tags[279]):
        chunk = data[off:off + length]
        if compression in (8, 32946):
            chunk = zlib.decompress(chunk)
        elif compression == 32773:
            chunk = _unpack_bits(chunk)
        chunks.append(chunk)
    raw = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    if raw.size < width * height * spp:
        raise _Undecodable("TIFF strips too short")
    img = raw[: width * height * spp].reshape(height, width, spp)
    if tags.get(317, [1])[0] == 2:  # horizontal differencing predictor
        img = np.cumsum(img, axis=1, dtype=np.uint8)
    if photometric == 3:
        cmap = (np.array(tags[320], dtype=np.uint32).reshape(3, -1).T >> 8).astype(np.uint8)
        return cmap[img[..., 0]], "RGB"
    if photometric in (0, 1):
        gray = img[..., 0]
        return (255 - gray if photometric == 0 else gray), "L"
    if photometric == 2 and spp >= 3:
        return img[..., :3], "RGB"
    raise NotImplementedError(f"TIFF photometric interpretation {photometric}")


def _unpack_bits(chunk: bytes) -> bytes:
    """PackBits run-length decoding (one step per run, not per byte)."""
    out, i = bytearray(), 0
    while i < len(chunk):
        n = chunk[i]
        if n < 128:
            out += chunk[i + 1:i + 2 + n]
            i += 2 + n
        elif n > 128:
            out += chunk[i + 1:i + 2] * (257 - n)
            i += 2
        else:
            i += 1
    return bytes(out)


# JPEG (baseline, Huffman) -- decoded the way libjpeg(-turbo) does by default, so pixels match
# what Pillow/OpenCV give bit for bit: "islow" integer IDCT, fancy (triangle) chroma
# upsampling, 16-bit fixed-point YCbCr -> RGB.


def _zigzag() -> np.ndarray:
    cells = sorted(((r, c) for r in range(8) for c in range(8)),
                   key=lambda rc: (rc[0] + rc[1], rc[0] if (rc[0] + rc[1]) % 2 else -rc[0]))
    return np.array([r * 8 + c for r, c in cells], dtype=np.int64)


_ZIGZAG = _zigzag()


def _jpeg_scan_loop(data, first_mcu, n_mcus, comps, hs, vs, dc_tab, ac_tab, mcus_x, offsets,
                    strides, bw_single, maxcode, mincode, valptr, huffval, coefs):  # numba
    """Huffman-decode ``n_mcus`` MCUs of one restart interval into zigzag coefficients."""
    pos, acc, nbits = 0, 0, 0
    size = data.size
    ncomp = comps.size
    pred = np.zeros(ncomp, dtype=np.int64)
    for m in range(first_mcu, first_mcu + n_mcus):
        for ci in range(ncomp):
            c = comps[ci]
            nb = 1 if ncomp == 1 else hs[c] * vs[c]
            for b in range(nb):
                if ncomp == 1:
                    by, bx = m // bw_single[c], m % bw_single[c]
                else:
                    by = (m // mcus_x) * vs[c] + b // hs[c]
                    bx = (m % mcus_x) * hs[c] + b % hs[c]
                blk = offsets[c] + by * strides[c] + bx
                k = 0
                while k < 64:
                    t = dc_tab[ci] if k == 0 else ac_tab[ci]
                    code, sym = 0, -1
                    for length in range(1, 17):
                        if nbits == 0:
                            acc = data[pos] if pos < size else 0
                            pos += 1
                            nbits = 8
                        nbits -= 1
                        code = (code << 1) | ((acc >> nbits) & 1)
                        if code <= maxcode[t, length]:
                            sym = huffval[t, valptr[t, length] + code - mincode[t, length]]
                            break
                    if sym < 0:
                        return -1
                    run, s = (0, sym) if k == 0 else (sym >> 4, sym & 15)
                    if k > 0 and s == 0:
                        if run == 15:
                            k += 16
                            continue
                        break
                    v = 0
                    for _ in range(s):
                        if nbits == 0:
                            acc = data[pos] if pos < size else 0
                            pos += 1
                            nbits = 8
                        nbits -= 1
                        v = (v << 1) | ((acc >> nbits) & 1)
                    if s > 0 and v < (1 << (s - 1)):
                        v -= (1 << s) - 1
                    if k == 0:
                        pred[ci] += v
                        coefs[blk, 0] = pred[ci]
                        k = 1
                    else:
                        k += run
                        if k > 63:
                            return -1
                        coefs[blk, k] = v
                        k += 1
    return pos


_JPEG_JIT: list = []


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _huffman_table(counts: bytes, values: bytes) -> tuple[np.ndarray, ...]:
    maxcode = np.full(18, -1, dtype=np.int64)
    mincode = np.zeros(18, dtype=np.int64)
    valptr = np.zeros(18, dtype=np.int64)
    code = k = 0
    for length in range(1, 17):
        n = counts[length - 1]
        if n:
            valptr[length], mincode[length] = k, code
            code += n
            k += n
            maxcode[length] = code - 1
        code <<= 1
    huffval = np.zeros(256, dtype=np.int64)
    huffval[: len(values)] = np.frombuffer(values, dtype=np.uint8)
    return maxcode, mincode, valptr, huffval


def _islow_1d(v: list[np.ndarray], shift: int) -> list[np.ndarray]:
    """libjpeg's accurate integer 8-point IDCT (13-bit constants) on 8 coefficient arrays."""
    z1 = (v[2] + v[6]) * 4433
    tmp2 = z1 - v[6] * 15137
    tmp3 = z1 + v[2] * 6270
    tmp0 = (v[0] + v[4]) << 13
    tmp1 = (v[0] - v[4]) << 13
    e10, e13, e11, e12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
    t0, t1, t2, t3 = v[7], v[5], v[3], v[1]
    z5 = (t0 + t2 + t1 + t3) * 9633
    z1 = (t0 + t3) * -7373
    z2 = (t1 + t2) * -20995
    z3 = (t0 + t2) * -16069 + z5
    z4 = (t1 + t3) * -3196 + z5
    o0 = t0 * 2446 + z1 + z3
    o1 = t1 * 16819 + z2 + z4
    o2 = t2 * 25172 + z2 + z3
    o3 = t3 * 12299 + z1 + z4
    half = 1 << (shift - 1)
    return [(x + half) >> shift for x in (e10 + o3, e11 + o2, e12 + o1, e13 + o0,
                                          e13 - o0, e12 - o1, e11 - o2, e10 - o3)]


def _jpeg_idct(blocks: np.ndarray) -> np.ndarray:
    """(B, 8, 8) dequantized coefficients [v, u] -> (B, 8, 8) samples 0..255."""
    cols = _islow_1d([blocks[:, k, :] for k in range(8)], 11)  # pass 1: down each column
    ws = np.stack(cols, axis=1)
    rows = _islow_1d([ws[:, :, k] for k in range(8)], 18)  # pass 2: along each row
    return np.clip(np.stack(rows, axis=2) + 128, 0, 255)


def _fancy_upsample(plane: np.ndarray, hf: int, vf: int) -> np.ndarray:
    """libjpeg's chroma upsampling: triangle filter for 2x, pixel replication otherwise."""
    p = plane.astype(np.int64)
    h, w = p.shape
    if (hf, vf) == (2, 2) and w > 2:
        up = np.concatenate([p[:1], p[:-1]], axis=0)
        down = np.concatenate([p[1:], p[-1:]], axis=0)
        out = np.empty((2 * h, 2 * w), dtype=np.int64)
        for row0, near in ((0, up), (1, down)):
            s = 3 * p + near
            left = np.concatenate([s[:, :1], s[:, :-1]], axis=1)
            right = np.concatenate([s[:, 1:], s[:, -1:]], axis=1)
            even = (3 * s + left + 8) >> 4
            odd = (3 * s + right + 7) >> 4
            even[:, 0] = (4 * s[:, 0] + 8) >> 4
            odd[:, -1] = (4 * s[:, -1] + 7) >> 4
            out[row0::2, 0::2] = even
            out[row0::2, 1::2] = odd
        return out
    if (hf, vf) == (2, 1) and w > 2:
        left = np.concatenate([p[:, :1], p[:, :-1]], axis=1)
        right = np.concatenate([p[:, 1:], p[:, -1:]], axis=1)
        out = np.empty((h, 2 * w), dtype=np.int64)
        out[:, 0::2] = (3 * p + left + 1) >> 2
        out[:, 1::2] = (3 * p + right + 2) >> 2
        out[:, 0] = p[:, 0]
        out[:, -1] = p[:, -1]
        return out
    if (hf, vf) == (1, 2):
        up = np.concatenate([p[:1], p[:-1]], axis=0)
        down = np.concatenate([p[1:], p[-1:]], axis=0)
        out = np.empty((2 * h, w), dtype=np.int64)
        out[0::2] = (3 * p + up + 1) >> 2
        out[1::2] = (3 * p + down + 2) >> 2
        return out
    return np.repeat(np.repeat(p, vf, axis=0), hf, axis=1)


def _decode_jpeg(data: bytes) -> tuple[np.ndarray, str]:
    qt: dict[int, np.ndarray] = {}
    tables: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
    frame = None
    restart = 0
    adobe_transform = None
    coefs = None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise _Undecodable("JPEG marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0xD9:
            break
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        seg = data[pos + 4:pos + 2 + length]
        pos += 2 + length
        if marker in (0xC0, 0xC1):
            prec, height, width, ncomp = struct.unpack(">BHHB", seg[:6])
            if prec != 8 or height == 0:
                raise NotImplementedError(f"JPEG with {prec}-bit samples or a DNL height")
            comps = [(seg[6 + 3 * i], seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 15, seg[8 + 3 * i])
                     for i in range(ncomp)]
            frame = (height, width, comps)
        elif 0xC2 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            raise NotImplementedError("progressive, lossless or arithmetic-coded JPEG")
        elif marker == 0xDB:
            i = 0
            while i < len(seg):
                pq, tq = seg[i] >> 4, seg[i] & 15
                n = 128 if pq else 64
                vals = np.frombuffer(seg[i + 1:i + 1 + n], dtype=">u2" if pq else np.uint8)
                q = np.zeros(64, dtype=np.int64)
                q[_ZIGZAG] = vals.astype(np.int64)
                qt[tq] = q
                i += 1 + n
        elif marker == 0xC4:
            i = 0
            while i < len(seg):
                tc, th = seg[i] >> 4, seg[i] & 15
                counts = seg[i + 1:i + 17]
                total = sum(counts)
                tables[(tc, th)] = _huffman_table(counts, seg[i + 17:i + 17 + total])
                i += 17 + total
        elif marker == 0xDD:
            (restart,) = struct.unpack(">H", seg[:2])
        elif marker == 0xEE and seg[:5] == b"Adobe" and len(seg) >= 12:
            adobe_transform = seg[11]
        elif marker == 0xDA:
            if frame is None:
                raise _Undecodable("JPEG scan before frame header")
            height, width, comps = frame
            hmax = max(c[1] for c in comps)
            vmax = max(c[2] for c in comps)
            mcus_x = _ceil_div(width, 8 * hmax)
            mcus_y = _ceil_div(height, 8 * vmax)
            strides = np.array([mcus_x * c[1] for c in comps], dtype=np.int64)
            rows = [mcus_y * c[2] for c in comps]
            offsets = np.cumsum([0] + [s * r for s, r in zip(strides, rows)])
            if coefs is None:
                coefs = np.zeros((int(offsets[-1]), 64), dtype=np.int64)
            ns = seg[0]
            ids = [c[0] for c in comps]
            scan = np.array([ids.index(seg[1 + 2 * i]) for i in range(ns)], dtype=np.int64)
            dc_sel = np.array([seg[2 + 2 * i] >> 4 for i in range(ns)], dtype=np.int64)
            ac_sel = np.array([4 + (seg[2 + 2 * i] & 15) for i in range(ns)], dtype=np.int64)
            maxcode = np.full((8, 18), -1, dtype=np.int64)
            mincode = np.zeros((8, 18), dtype=np.int64)
            valptr = np.zeros((8, 18), dtype=np.int64)
            huffval = np.zeros((8, 256), dtype=np.int64)
            for (tc, th), tab in tables.items():
                t = th + 4 * tc
                maxcode[t], mincode[t], valptr[t], huffval[t] = tab
            hs = np.array([c[1] for c in comps], dtype=np.int64)
            vs = np.array([c[2] for c in comps], dtype=np.int64)
            # A single-component scan walks that component's own block grid.
            bw_single = np.array([_ceil_div(_ceil_div(width * c[1], hmax), 8) for c in comps],
                                 dtype=np.int64)
            if ns == 1:
                c = comps[scan[0]]
                bh = _ceil_div(_ceil_div(height * c[2], vmax), 8)
                total = int(bw_single[scan[0]]) * bh
            else:
                total = mcus_x * mcus_y
            # The entropy-coded data runs to the next marker other than a restart marker
            # (0xFF 0x00 is a stuffed data byte, 0xFF 0xFF a fill byte).
            segments, start, end = [], pos, pos
            while True:
                end = data.find(b"\xff", end)
                if end < 0 or end + 1 >= len(data):
                    end = len(data)
                    break
                follow = data[end + 1]
                if follow in (0x00, 0xFF):
                    end += 1 if follow == 0xFF else 2
                    continue
                if 0xD0 <= follow <= 0xD7:
                    segments.append(data[start:end])
                    start = end = end + 2
                    continue
                break
            segments.append(data[start:end])
            pos = end
            if not _JPEG_JIT:
                import numba  # imported lazily: only JPEG streams need the JIT

                _JPEG_JIT.append(numba.njit(cache=True, nogil=True)(_jpeg_scan_loop))
            per = restart if restart else total
            for k, chunk in enumerate(segments):
                first = k * per
                count = min(per, total - first)
                if count <= 0:
                    break
                raw = np.frombuffer(chunk.replace(b"\xff\x00", b"\xff"), dtype=np.uint8)
                if _JPEG_JIT[0](raw, first, count, scan, hs, vs, dc_sel, ac_sel, mcus_x,
                                offsets, strides, bw_single, maxcode, mincode, valptr,
                                huffval, coefs) < 0:
                    raise _Undecodable("bad Huffman code in JPEG data")
    if frame is None or coefs is None:
        raise _Undecodable("JPEG without frame or scan")
    height, width, comps = frame
    hmax = max(c[1] for c in comps)
    vmax = max(c[2] for c in comps)
    planes = []
    for i, (_, h, v, tq) in enumerate(comps):
        if tq not in qt or hmax % h or vmax % v:
            raise _Undecodable("JPEG component without its quantization table")
        blocks = coefs[offsets[i]:offsets[i + 1]]
        nat = np.empty_like(blocks)
        nat[:, _ZIGZAG] = blocks
        pix = _jpeg_idct((nat * qt[tq]).reshape(-1, 8, 8))
        nrow, ncol = rows[i], int(strides[i])
        plane = pix.reshape(nrow, ncol, 8, 8).transpose(0, 2, 1, 3).reshape(nrow * 8, ncol * 8)
        ch, cw = _ceil_div(height * v, vmax), _ceil_div(width * h, hmax)
        plane = _fancy_upsample(plane[:ch, :cw], hmax // h, vmax // v)
        planes.append(plane[:height, :width])
    if len(planes) == 1:
        return planes[0].astype(np.uint8), "L"
    if len(planes) != 3:
        raise NotImplementedError(f"JPEG with {len(planes)} color components (CMYK/YCCK)")
    if adobe_transform == 0:
        return np.stack(planes, axis=-1).astype(np.uint8), "RGB"
    y, cb, cr = planes[0], planes[1] - 128, planes[2] - 128
    # 16-bit fixed point with libjpeg's rounding (FIX(x) = round(x * 65536)).
    r = y + ((91881 * cr + 32768) >> 16)
    g = y + ((-22554 * cb + 32768 - 46802 * cr) >> 16)
    b = y + ((116130 * cb + 32768) >> 16)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8), "RGB"


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG", _decode_png),
    (b"BM", "BMP", _decode_bmp),
    (b"II*\x00", "TIFF", _decode_tiff),
    (b"MM\x00*", "TIFF", _decode_tiff),
    (b"\xff\xd8", "JPEG", _decode_jpeg),
)
_UNSUPPORTED = (
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"RIFF", "WebP"),
)


@kernel("ImageDecoder", since=20)
def image_decoder(encoded_stream: np.ndarray, *, pixel_format: str = "RGB") -> np.ndarray:
    """ONNX ImageDecoder-20: decode JPEG, PNG, BMP, TIFF and PNM streams to (H, W, C) uint8."""
    fmt = _text(pixel_format)
    if fmt not in ("RGB", "BGR", "Grayscale"):
        raise ValueError(f"ImageDecoder: unknown pixel_format {fmt!r}; expected RGB, BGR or "
                         "Grayscale")
    data = np.asarray(encoded_stream, dtype=np.uint8).tobytes()
    channels = 1 if fmt == "Grayscale" else 3
    decoder = None
    for magic, _, fn in _SIGNATURES:
        if data.startswith(magic):
            decoder = fn
    if decoder is None and len(data) > 2 and data[:1] == b"P" and data[1:2] in b"123456":
        decoder = _decode_pnm
    if decoder is None:
        for magic, name in _UNSUPPORTED:
            if data.startswith(magic) and (name != "WebP" or data[8:12] == b"WEBP"):
                raise NotImplementedFeatureError(
                    f"ImageDecoder: {name} streams are not supported by the CPU provider (it "
                    "decodes baseline JPEG, PNG, BMP, TIFF and PNM); decode the image before "
                    "the model or convert it to PNG or JPEG")
        return np.zeros((0, 0, channels), dtype=np.uint8)
    try:
        img, mode = decoder(data)
    except NotImplementedError as exc:
        raise NotImplementedFeatureError(f"ImageDecoder: {exc} is not supported; convert the "
                                         "image to 8-bit PNG or baseline JPEG") from exc
    except (_Undecodable, struct.error, ValueError, KeyError, IndexError, TypeError):
        # The spec: a stream that cannot be decoded gives an empty image.
        return np.zeros((0, 0, channels), dtype=np.uint8)
    img = np.ascontiguousarray(img, dtype=np.uint8)
    if fmt == "Grayscale":
        if mode == "L":
            return img[..., None]
        # ITU-R 601 luma in 16-bit fixed point, rounded, as Pillow's RGB -> L conversion.
        rgb = img.astype(np.uint32)
        luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
        return luma.astype(np.uint8)[..., None]
    if mode == "L":
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., ::-1]) if fmt == "BGR" else img
