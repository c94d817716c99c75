"""CPU kernels for convolution-style neural-network ops: Conv, ConvTranspose, ConvInteger, Dropout.

Convolutions run as im2col + one batched matmul for all groups (BLAS through ``numpy.matmul``),
with two specialised paths: a 1x1 kernel without padding is a plain matmul, and a depthwise
convolution (one input channel per group) is a shift-and-accumulate over the kernel taps, which
needs no im2col buffer (channels-first for long rows, channels-last when there are many more
channels than output columns). ConvTranspose is one matmul plus a strided scatter-add per
kernel tap. float16/bfloat16 are computed in float32 and cast back.

The padding/output-size helpers here (:func:`resolve_padding`, :func:`pad_spatial`) are shared
with ``pooling.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ...ops import kernel

__all__ = [
    "compute_dtype",
    "conv",
    "conv_integer",
    "conv_transpose",
    "dropout_7",
    "dropout_10",
    "dropout_12",
    "output_wanted",
    "pad_spatial",
    "resolve_padding",
    "spatial_ints",
    "tap_view",
]

# Largest im2col buffer (in elements) built in one piece; bigger convolutions are done in
# chunks of output rows so memory stays bounded (~64 MiB of float32).
_IM2COL_BUDGET = 16 * 1024 * 1024

# Elements of output per channel block in the depthwise path (~256 KiB of float32: L2-sized).
_DEPTHWISE_BLOCK = 64 * 1024

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype arithmetic runs in: float32 for 16-bit and 8-bit floats, else ``dtype`` itself."""
    dtype = np.dtype(dtype)
    if dtype == np.float16 or dtype.name.startswith(("bfloat16", "float8", "float4")):
        return np.dtype(np.float32)
    return dtype


def _to_compute(x: np.ndarray) -> np.ndarray:
    ct = compute_dtype(x.dtype)
    return x if x.dtype == ct else x.astype(ct)


def spatial_ints(value: Any, n: int, default: int, name: str) -> tuple[int, ...]:
    """An ints attribute with ``n`` values (``default`` repeated when absent)."""
    if value is None:
        return (default,) * n
    vals = tuple(int(v) for v in np.asarray(value).reshape(-1))
    if len(vals) != n:
        raise ValueError(f"{name} has {len(vals)} values but the input has {n} spatial axes; "
                         f"give one value per spatial axis")
    return vals


def _auto_pad_str(auto_pad: Any) -> str:
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    auto_pad = str(auto_pad) if auto_pad is not None else "NOTSET"
    if auto_pad not in _AUTO_PADS:
        raise ValueError(f"auto_pad={auto_pad!r} is not one of {', '.join(_AUTO_PADS)}")
    return auto_pad


def resolve_padding(auto_pad: Any, in_shape: Sequence[int], kernel_shape: Sequence[int],
                    strides: Sequence[int], dilations: Sequence[int], pads: Any,
                    ceil_mode: int = 0) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Begin pads, end pads and output spatial shape of a conv/pool window (ONNX rules).

    ``SAME_*``: ``out = ceil(in / stride)`` and the total padding needed by the dilated kernel
    is split evenly, the odd element at the end (UPPER) or the beginning (LOWER). ``VALID``: no
    padding. ``NOTSET``: explicit ``pads``; with ``ceil_mode`` the output rounds up, but the
    last window must start inside the input or the left padding (as ONNX Runtime and PyTorch).
    """
    nsp = len(in_shape)
    auto_pad = _auto_pad_str(auto_pad)
    dk = [(k - 1) * d + 1 for k, d in zip(kernel_shape, dilations)]
    if any(s <= 0 for s in strides):
        raise ValueError(f"strides must be positive, got {list(strides)}")
    if any(d <= 0 for d in dilations):
        raise ValueError(f"dilations must be positive, got {list(dilations)}")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = tuple(-(-i // s) for i, s in zip(in_shape, strides))
        total = [max(0, (o - 1) * s + k - i) for o, s, k, i in zip(out, strides, dk, in_shape)]
        if auto_pad == "SAME_UPPER":
            begin = tuple(t // 2 for t in total)
        else:
            begin = tuple(t - t // 2 for t in total)
        end = tuple(t - b for t, b in zip(total, begin))
    else:
        if auto_pad == "VALID" or pads is None:
            p = (0,) * (2 * nsp)
        else:
            p = tuple(int(v) for v in np.asarray(pads).reshape(-1))
            if len(p) != 2 * nsp:
                raise ValueError(f"pads has {len(p)} values; expected {2 * nsp} (begin and end "
                                 f"for each of the {nsp} spatial axes)")
            if any(v < 0 for v in p):
                raise ValueError(f"pads must be non-negative, got {list(p)}")
        begin, end = p[:nsp], p[nsp:]
        out_list = []
        for i, b, e, k, s in zip(in_shape, begin, end, dk, strides):
            span = i + b + e - k
            if span < 0:
                o = 0
            elif ceil_mode:
                o = -(-span // s) + 1
                if (o - 1) * s >= i + b:
                    o -= 1
            else:
                o = span // s + 1
            out_list.append(o)
        out = tuple(out_list)
    if any(o <= 0 for o in out):
        raise ValueError(f"the window (kernel {list(kernel_shape)}, dilations {list(dilations)}) "
                         f"does not fit the padded input {list(in_shape)}: output shape would be "
                         f"{list(out)}")
    return tuple(begin), tuple(end), out


def pad_spatial(x: np.ndarray, begin: Sequence[int], end: Sequence[int],
                value: Any = 0) -> np.ndarray:
    """``x`` with its trailing ``len(begin)`` axes padded by ``value`` (``x`` itself if no pad)."""
    if not any(begin) and not any(end):
        return x
    lead = x.ndim - len(begin)
    shape = x.shape[:lead] + tuple(n + b + e for n, b, e in zip(x.shape[lead:], begin, end))
    out = np.full(shape, value, dtype=x.dtype)
    out[(Ellipsis, *(slice(b, b + n) for b, n in zip(begin, x.shape[lead:])))] = x
    return out


def tap_view(xp: np.ndarray, offsets: Sequence[int], strides: Sequence[int],
             out_shape: Sequence[int]) -> np.ndarray:
    """The strided view ``xp[..., off + s*o]`` for every output position ``o`` (one kernel tap)."""
    return xp[(Ellipsis, *(slice(off, off + s * (o - 1) + 1, s)
                           for off, s, o in zip(offsets, strides, out_shape)))]


def _conv_core(x: np.ndarray, w: np.ndarray, begin: Sequence[int], end: Sequence[int],
               strides: Sequence[int], dilations: Sequence[int], group: int,
               out_shape: Sequence[int]) -> np.ndarray:
    """Y[n, m, o] = sum W[m, c, k] * Xpad[n, g*C/g + c, o*s + k*d]; all arrays one float dtype."""
    n, c = x.shape[:2]
    m = w.shape[0]
    ksp = w.shape[2:]
    nsp = len(ksp)
    cg, mg = c // group, m // group
    kvol = math.prod(ksp)
    ovol = math.prod(out_shape)
    dt = x.dtype

    # 1x1 kernel without padding: the convolution is one matmul over channels.
    if kvol == 1 and not any(begin) and not any(end):
        xs = x[(Ellipsis, *(slice(0, s * (o - 1) + 1, s) for s, o in zip(strides, out_shape)))]
        xs = xs.reshape(n, group, cg, ovol)
        y = np.matmul(w.reshape(group, mg, cg), xs)
        return y.reshape(n, m, *out_shape)

    # Depthwise (one input channel per group): no im2col, accumulate W[:, tap] * shifted X.
    if cg == 1 and group > 1:
        if group * mg >= 2 * out_shape[-1]:
            return _depthwise_channels_last(x, w, begin, end, strides, dilations, out_shape)
        return _depthwise_channels_first(x, w, begin, end, strides, dilations, out_shape)

    # General case: im2col (a strided window view, copied to (N, G, C/G*K, O)) + one matmul.
    xp = pad_spatial(x, begin, end)
    dk = [(k - 1) * d + 1 for k, d in zip(ksp, dilations)]
    win = sliding_window_view(xp, dk, axis=tuple(range(2, 2 + nsp)))
    win = win[(slice(None), slice(None),
               *(slice(0, s * (o - 1) + 1, s) for s, o in zip(strides, out_shape)),
               *(slice(None, None, d) for d in dilations))]
    # (N, C, *out, *k) -> (N, C, *k, *out) so each group's rows are (C/G*K) and columns O.
    perm = (0, 1, *range(2 + nsp, 2 + 2 * nsp), *range(2, 2 + nsp))
    win = win.transpose(perm)
    wg = w.reshape(group, mg, cg * kvol)
    y = np.empty((n, group, mg, *out_shape), dtype=dt)
    rows_total = out_shape[0]
    per_row = c * kvol * (ovol // rows_total)
    if n * per_row * rows_total <= _IM2COL_BUDGET:
        cols = win.reshape(n, group, cg * kvol, ovol)
        y.reshape(n, group, mg, ovol)[...] = np.matmul(wg, cols)
        return y.reshape(n, m, *out_shape)
    rows = max(1, _IM2COL_BUDGET // per_row)
    for b in range(n):
        for r0 in range(0, rows_total, rows):
            r1 = min(rows_total, r0 + rows)
            part = win[(b, slice(None), *(slice(None),) * nsp, slice(r0, r1))]
            cnt = (r1 - r0) * (ovol // rows_total)
            cols = part.reshape(group, cg * kvol, cnt)
            y[b, :, :, r0:r1] = np.matmul(wg, cols).reshape(group, mg, r1 - r0, *out_shape[1:])
    return y.reshape(n, m, *out_shape)


def _depthwise_channels_first(x: np.ndarray, w: np.ndarray, begin: Sequence[int],
                              end: Sequence[int], strides: Sequence[int],
                              dilations: Sequence[int], out_shape: Sequence[int]) -> np.ndarray:
    """Depthwise conv in NCHW order: long rows, so each tap is a few large vector ops.

    Works on a block of channels at a time so the running sum stays in cache between taps.
    """
    n, group = x.shape[:2]
    mult = w.shape[0] // group
    ksp = w.shape[2:]
    nsp = len(ksp)
    xp = pad_spatial(x, begin, end)
    wr = w.reshape(group, mult, -1)
    y = np.empty((n, group, mult, *out_shape), dtype=x.dtype)
    block = max(1, _DEPTHWISE_BLOCK // (mult * math.prod(out_shape)))
    taps = [[k * d for k, d in zip(tap, dilations)] for tap in np.ndindex(*ksp)]
    wshape = (-1, mult) + (1,) * nsp
    for b in range(n):
        for c0 in range(0, group, block):
            c1 = min(group, c0 + block)
            xb = xp[b, c0:c1, None]
            yb = y[b, c0:c1]
            tmp = np.empty_like(yb)
            for t, off in enumerate(taps):
                wt = wr[c0:c1, :, t].reshape(wshape)
                if t == 0:
                    np.multiply(tap_view(xb, off, strides, out_shape), wt, out=yb)
                else:
                    np.multiply(tap_view(xb, off, strides, out_shape), wt, out=tmp)
                    yb += tmp
    return y.reshape(n, group * mult, *out_shape)


def _depthwise_channels_last(x: np.ndarray, w: np.ndarray, begin: Sequence[int],
                             end: Sequence[int], strides: Sequence[int],
                             dilations: Sequence[int], out_shape: Sequence[int]) -> np.ndarray:
    """Depthwise conv in channels-last order: many channels, short rows (late CNN stages).

    The channel axis becomes the contiguous inner loop; blocks of output rows keep the running
    sum in cache.
    """
    n, group = x.shape[:2]
    mult = w.shape[0] // group
    ksp = w.shape[2:]
    nsp = len(ksp)
    in_sp = x.shape[2:]
    # One copy does the NC... -> N...C transpose and the zero padding.
    xp = np.zeros((n, *(i + b + e for i, b, e in zip(in_sp, begin, end)), group, 1),
                  dtype=x.dtype)
    xp[(slice(None), *(slice(b, b + i) for b, i in zip(begin, in_sp)), slice(None), 0)] = \
        x.transpose(0, *range(2, 2 + nsp), 1)
    wr = w.reshape(group, mult, -1)
    y = np.empty((n, *out_shape, group, mult), dtype=x.dtype)
    row = math.prod(out_shape[1:]) * group * mult
    rows = max(1, _DEPTHWISE_BLOCK // row)
    taps = [[k * d for k, d in zip(tap, dilations)] for tap in np.ndindex(*ksp)]
    for r0 in range(0, out_shape[0], rows):
        r1 = min(out_shape[0], r0 + rows)
        yb = y[:, r0:r1]
        tmp = np.empty_like(yb)
        sub_out = (r1 - r0, *out_shape[1:])
        for t, off in enumerate(taps):
            start = [off[0] + strides[0] * r0, *off[1:]]
            sl = xp[(slice(None),
                     *(slice(o, o + s * (k - 1) + 1, s)
                       for o, s, k in zip(start, strides, sub_out)))]
            if t == 0:
                np.multiply(sl, wr[:, :, t], out=yb)
            else:
                np.multiply(sl, wr[:, :, t], out=tmp)
                yb += tmp
    y = y.reshape(n, *out_shape, group * mult)
    return np.ascontiguousarray(y.transpose(0, nsp + 1, *range(1, nsp + 1)))


def _check_conv_shapes(x: np.ndarray, w: np.ndarray, group: int, kernel_shape: Any,
                       op: str) -> tuple[int, ...]:
    if x.ndim < 3:
        raise ValueError(f"{op}: X must be (N, C, D1, ...) with at least one spatial axis, got "
                         f"shape {x.shape}")
    if w.ndim != x.ndim:
        raise ValueError(f"{op}: W has rank {w.ndim} but X has rank {x.ndim}; both must be "
                         "(N/M, C, spatial...)")
    if group < 1:
        raise ValueError(f"{op}: group must be >= 1, got {group}")
    ksp = tuple(w.shape[2:])
    if kernel_shape is not None:
        ks = tuple(int(k) for k in kernel_shape)
        if ks != ksp:
            raise ValueError(f"{op}: kernel_shape {list(ks)} does not match W's spatial shape "
                             f"{list(ksp)}")
    return ksp


def _specialize_conv(ctx: Any) -> Any:
    """Compile-time fast path for float32 1-D/2-D convolutions with constant weights."""
    from .conv import specialize_conv

    def fallback(X: np.ndarray, W: np.ndarray, B: np.ndarray | None = None,
                 Z: np.ndarray | None = None, **attrs: Any) -> np.ndarray:
        return conv(X, W, B, **attrs)

    return specialize_conv(ctx, fallback)


@kernel("Conv", since=1, specialize=_specialize_conv)
def conv(X: np.ndarray, W: np.ndarray, B: np.ndarray | None = None, *, auto_pad: str = "NOTSET",
         dilations: Sequence[int] | None = None, group: int = 1,
         kernel_shape: Sequence[int] | None = None, pads: Sequence[int] | None = None,
         strides: Sequence[int] | None = None) -> np.ndarray:
    """ONNX Conv-1/11/22: N-D grouped convolution with strides, dilations, pads/auto_pad, bias."""
    ksp = _check_conv_shapes(X, W, group, kernel_shape, "Conv")
    nsp = X.ndim - 2
    if X.shape[1] != W.shape[1] * group:
        raise ValueError(f"Conv: X has {X.shape[1]} channels but W expects "
                         f"{W.shape[1]} x group {group} = {W.shape[1] * group}")
    if W.shape[0] % group:
        raise ValueError(f"Conv: {W.shape[0]} output channels are not divisible by group {group}")
    strides_ = spatial_ints(strides, nsp, 1, "strides")
    dil = spatial_ints(dilations, nsp, 1, "dilations")
    begin, end, out_shape = resolve_padding(auto_pad, X.shape[2:], ksp, strides_, dil, pads)
    x = _to_compute(X)
    w = W.astype(x.dtype, copy=False)
    y = _conv_core(x, w, begin, end, strides_, dil, group, out_shape)
    if B is not None:
        y += B.astype(y.dtype, copy=False).reshape((1, -1) + (1,) * nsp)
    return y.astype(X.dtype, copy=False)


def _int_zero_point(zp: np.ndarray | None) -> np.ndarray | int:
    if zp is None:
        return 0
    return np.asarray(zp).astype(np.float64)


@kernel("ConvInteger", since=10)
def conv_integer(x: np.ndarray, w: np.ndarray, x_zero_point: np.ndarray | None = None,
                 w_zero_point: np.ndarray | None = None, *, auto_pad: str = "NOTSET",
                 dilations: Sequence[int] | None = None, group: int = 1,
                 kernel_shape: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                 strides: Sequence[int] | None = None) -> np.ndarray:
    """ONNX ConvInteger-10: Conv of (x - x_zero_point) and (w - w_zero_point), int32 result."""
    ksp = _check_conv_shapes(x, w, group, kernel_shape, "ConvInteger")
    nsp = x.ndim - 2
    if x.shape[1] != w.shape[1] * group or w.shape[0] % group:
        raise ValueError(f"ConvInteger: X channels {x.shape[1]} / W shape {w.shape} do not "
                         f"match group {group}")
    strides_ = spatial_ints(strides, nsp, 1, "strides")
    dil = spatial_ints(dilations, nsp, 1, "dilations")
    begin, end, out_shape = resolve_padding(auto_pad, x.shape[2:], ksp, strides_, dil, pads)
    xzp = _int_zero_point(x_zero_point)
    wzp = _int_zero_point(w_zero_point)
    if isinstance(xzp, np.ndarray) and xzp.size != 1:
        raise ValueError("ConvInteger: x_zero_point must be a scalar (per-tensor)")
    if isinstance(wzp, np.ndarray) and wzp.size not in (1, w.shape[0]):
        raise ValueError(f"ConvInteger: w_zero_point must be a scalar or have one value per "
                         f"output channel ({w.shape[0]}), got {wzp.size}")
    # Subtract zero points first so padding contributes exactly 0; float64 holds every partial
    # sum of 8-bit products exactly, and runs through BLAS.
    xf = x.astype(np.float64) - (xzp.reshape(()) if isinstance(xzp, np.ndarray) else xzp)
    wf = w.astype(np.float64)
    if isinstance(wzp, np.ndarray):
        wf -= wzp.reshape((-1,) + (1,) * (w.ndim - 1)) if wzp.size > 1 else wzp.reshape(())
    y = _conv_core(xf, wf, begin, end, strides_, dil, group, out_shape)
    return np.rint(y).astype(np.int64).astype(np.int32)


@kernel("ConvTranspose", since=1)
def conv_transpose(X: np.ndarray, W: np.ndarray, B: np.ndarray | None = None, *,
                   auto_pad: str = "NOTSET", dilations: Sequence[int] | None = None,
                   group: int = 1, kernel_shape: Sequence[int] | None = None,
                   output_padding: Sequence[int] | None = None,
                   output_shape: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                   strides: Sequence[int] | None = None) -> np.ndarray:
    """ONNX ConvTranspose-1/11/22: grouped transposed convolution (output_padding/output_shape)."""
    ksp = _check_conv_shapes(X, W, group, kernel_shape, "ConvTranspose")
    nsp = X.ndim - 2
    n, c = X.shape[:2]
    in_sp = X.shape[2:]
    if W.shape[0] != c:
        raise ValueError(f"ConvTranspose: W has {W.shape[0]} input channels but X has {c}")
    if c % group:
        raise ValueError(f"ConvTranspose: {c} input channels are not divisible by group {group}")
    mg = W.shape[1]
    m = mg * group
    cg = c // group
    strides_ = spatial_ints(strides, nsp, 1, "strides")
    dil = spatial_ints(dilations, nsp, 1, "dilations")
    out_pad = spatial_ints(output_padding, nsp, 0, "output_padding")
    auto = _auto_pad_str(auto_pad)
    dk = [(k - 1) * d + 1 for k, d in zip(ksp, dil)]
    # Extent of the un-cropped result: every input position scattered through the whole kernel.
    full = [s * (i - 1) + k for s, i, k in zip(strides_, in_sp, dk)]

    if output_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        if output_shape is not None:
            osh = [int(v) for v in output_shape]
            if len(osh) == nsp + 2:  # some exporters include N and C
                osh = osh[2:]
            if len(osh) != nsp:
                raise ValueError(f"ConvTranspose: output_shape {osh} must have one value per "
                                 f"spatial axis ({nsp})")
        else:
            osh = [i * s for i, s in zip(in_sp, strides_)]
        # A requested output larger than the data gets zeros at the end (as ONNX Runtime):
        # negative totals pad nothing.
        total = [max(0, f + op - o) for f, op, o in zip(full, out_pad, osh)]
        # ONNX (opset 11 text) and ONNX Runtime: the odd element goes to the end for
        # SAME_UPPER, to the beginning otherwise.
        if auto == "SAME_UPPER":
            begin = [t // 2 for t in total]
        else:
            begin = [t - t // 2 for t in total]
        out_sp = osh
    else:
        if auto == "VALID" or pads is None:
            p = [0] * (2 * nsp)
        else:
            p = [int(v) for v in pads]
            if len(p) != 2 * nsp:
                raise ValueError(f"ConvTranspose: pads has {len(p)} values, expected {2 * nsp}")
        begin = p[:nsp]
        out_sp = [f + op - b - e for f, op, b, e in zip(full, out_pad, p[:nsp], p[nsp:])]
    if any(o <= 0 for o in out_sp):
        raise ValueError(f"ConvTranspose: output spatial shape {out_sp} is not positive")

    x = _to_compute(X)
    w = W.astype(x.dtype, copy=False)
    kvol = math.prod(ksp)
    ivol = math.prod(in_sp)
    # cols[n, g, (m, k), i] = sum_c W[g*C/G + c, m, k] * X[n, g*C/G + c, i]
    wg = w.reshape(group, cg, mg * kvol).transpose(0, 2, 1)
    cols = np.matmul(wg, x.reshape(n, group, cg, ivol))
    cols = cols.reshape(n, m, *ksp, *in_sp)
    res = np.zeros((n, m, *full), dtype=x.dtype)
    for tap in np.ndindex(*ksp):
        dst = res[(slice(None), slice(None),
                   *(slice(t * d, t * d + s * (i - 1) + 1, s)
                     for t, d, s, i in zip(tap, dil, strides_, in_sp)))]
        dst += cols[(slice(None), slice(None), *tap)]
    # Crop (or zero-extend, for output_padding beyond the data) to [begin, begin + out).
    y = np.zeros((n, m, *out_sp), dtype=x.dtype)
    src, dst_idx = [], []
    for b, o, f in zip(begin, out_sp, full):
        lo, hi = max(b, 0), min(b + o, f)
        if hi <= lo:
            src = None
            break
        src.append(slice(lo, hi))
        dst_idx.append(slice(lo - b, hi - b))
    if src is not None:
        y[(slice(None), slice(None), *dst_idx)] = res[(slice(None), slice(None), *src)]
    if B is not None:
        y += B.astype(y.dtype, copy=False).reshape((1, -1) + (1,) * nsp)
    return y.astype(X.dtype, copy=False)


def output_wanted(_ctx: Any, index: int) -> bool:
    """Whether the node asks for its output ``index`` (present, not an omitted optional)."""
    if _ctx is None or getattr(_ctx, "noutputs", 1) <= index:
        return False
    present = getattr(_ctx, "output_present", ())
    return not present or bool(present[index])


def _want_mask(_ctx: Any) -> bool:
    return output_wanted(_ctx, 1)


@kernel("Dropout", since=7)
def dropout_7(data: np.ndarray, *, ratio: float = 0.5, _ctx: Any = None) -> Any:
    """ONNX Dropout-7: inference only, output is the input; the mask (type T) is all ones."""
    if _want_mask(_ctx):
        return data, np.ones(data.shape, dtype=data.dtype)
    return data


@kernel("Dropout", since=10)
def dropout_10(data: np.ndarray, *, ratio: float = 0.5, _ctx: Any = None) -> Any:
    """ONNX Dropout-10: inference only, output is the input; the bool mask is all True."""
    if _want_mask(_ctx):
        return data, np.ones(data.shape, dtype=np.bool_)
    return data


@kernel("Dropout", since=12)
def dropout_12(data: np.ndarray, ratio: np.ndarray | None = None,
               training_mode: np.ndarray | None = None, *, seed: int | None = None,
               _ctx: Any = None) -> Any:
    """ONNX Dropout-12/13/22: output = data * mask / (1 - ratio) when training_mode, else data."""
    want_mask = _want_mask(_ctx)
    r = 0.5 if ratio is None else float(np.asarray(ratio).reshape(-1)[0])
    training = False if training_mode is None else bool(np.asarray(training_mode).reshape(-1)[0])
    if not training or r == 0.0:
        return (data, np.ones(data.shape, dtype=np.bool_)) if want_mask else data
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"Dropout: ratio must be in [0, 1), got {r}")
    if seed is not None:
        # numpy's legacy generator seeded the same way as the ONNX reference and backend test
        # data, so a seeded node reproduces their masks exactly.
        draws = np.random.RandomState(int(seed) & 0xFFFFFFFF).uniform(0.0, 1.0, data.shape)
    elif _ctx is not None and getattr(_ctx, "rng", None) is not None:
        draws = _ctx.rng.random(data.shape)
    else:
        draws = np.random.default_rng().random(data.shape)
    mask = draws >= r
    x = _to_compute(data)
    if r >= 1.0:
        out = np.zeros(data.shape, dtype=x.dtype)
    else:
        scale = np.asarray(1.0 / (1.0 - r), dtype=x.dtype)
        out = np.where(mask, x * scale, np.zeros((), dtype=x.dtype))
    out = out.astype(data.dtype, copy=False)
    return (out, mask) if want_mask else out
