"""CPU kernels for quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
QLinearMatMul, QLinearConv and BitCast.

Quantized types include the narrow ``ml_dtypes`` ones (int4/uint4, int2/uint2, float8 variants,
float4e2m1, float8e8m0 scales). Arithmetic never runs on those types directly: integer codes
are widened to int64 (exact zero-point subtraction), float codes to float32, and the result is
cast back once. Scales and zero points are per tensor (scalar), per axis (1-D along ``axis``)
or blocked (same rank as the input, each entry repeated ``block_size`` times along ``axis``).
Rounding is half-to-even (``numpy.rint``), as the spec asks.
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_dtypes
import numpy as np

from ...ops import kernel
from ...types import DType
from .nn import conv_integer

__all__ = [
    "bit_cast",
    "dequantize_linear",
    "dynamic_quantize_linear",
    "qlinear_conv",
    "qlinear_matmul",
    "quantize_linear",
]

_SUB_BYTE_BITS = {
    np.dtype(ml_dtypes.int4): 4,
    np.dtype(ml_dtypes.uint4): 4,
    np.dtype(ml_dtypes.float4_e2m1fn): 4,
    np.dtype(ml_dtypes.int2): 2,
    np.dtype(ml_dtypes.uint2): 2,
}

_ML_INTS = {np.dtype(t) for t in (ml_dtypes.int4, ml_dtypes.uint4, ml_dtypes.int2,
                                  ml_dtypes.uint2)}

# Float targets that always saturate (no inf/NaN encoding to overflow to). For float8 with
# saturate=0 the plain ml_dtypes cast already gives the spec's NaN (no-inf types) or +-inf (e5m2).
_SATURATING_ONLY = {np.dtype(ml_dtypes.float4_e2m1fn)}

# Types QuantizeLinear's division may run in (the scale's type or the `precision` attribute).
_DIVISION_TYPES = {np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float32),
                   np.dtype(np.float64), np.dtype(np.int32)}


def _is_int(dt: np.dtype) -> bool:
    return dt.kind in "iu" or dt in _ML_INTS


def _is_float(dt: np.dtype) -> bool:
    return dt.kind == "f" or (dt.kind == "V" and dt not in _ML_INTS)


def _onnx_dtype(code: int, what: str) -> np.dtype:
    try:
        return DType.from_onnx(int(code)).numpy
    except ValueError:
        raise ValueError(f"{what}={code} is not an ONNX tensor element type") from None


def _param(p: np.ndarray | None, x_shape: Sequence[int], axis: int, block_size: int,
           op: str, name: str) -> np.ndarray | None:
    """A scale or zero point reshaped/repeated so it broadcasts against ``x``."""
    if p is None:
        return None
    p = np.asarray(p)
    rank = len(x_shape)
    if block_size > 0:
        if p.ndim != rank:
            raise ValueError(f"{op}: blocked quantization needs {name} with the input's rank "
                             f"{rank}, got shape {list(p.shape)}")
        ax = _axis(axis, rank, op)
        expected = list(x_shape)
        expected[ax] = -(-x_shape[ax] // block_size)
        if list(p.shape) != expected:
            raise ValueError(f"{op}: {name} has shape {list(p.shape)}; for input shape "
                             f"{list(x_shape)}, axis {axis} and block_size {block_size} it must "
                             f"be {expected}")
        rep = np.repeat(p, block_size, axis=ax)
        return rep[(slice(None),) * ax + (slice(0, x_shape[ax]),)]
    if p.size == 1 and p.ndim <= 1:
        return p.reshape(())
    if p.ndim == 1:
        ax = _axis(axis, rank, op)
        if p.shape[0] != x_shape[ax]:
            raise ValueError(f"{op}: per-axis {name} has {p.shape[0]} values but the input has "
                             f"{x_shape[ax]} along axis {axis}")
        shape = [1] * rank
        shape[ax] = -1
        return p.reshape(shape)
    raise ValueError(f"{op}: {name} of shape {list(p.shape)} is neither a scalar, a 1-D per-axis "
                     "tensor, nor a blocked tensor (set block_size for blocked quantization)")


def _axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < rank:
        raise ValueError(f"{op}: axis {axis} is out of range for an input of rank {rank}")
    return axis % rank


def _saturate_cast(v: np.ndarray, out_dtype: np.dtype, saturate: int) -> np.ndarray:
    """Float values (already scaled, zero point added) to the quantized type."""
    if _is_int(out_dtype):
        info = ml_dtypes.iinfo(out_dtype)
        v = np.clip(np.rint(v), info.min, info.max)
        # Through int64: ml_dtypes' float -> int4 casts wrap rather than saturate.
        return np.nan_to_num(v, nan=0.0).astype(np.int64).astype(out_dtype)
    if saturate or out_dtype in _SATURATING_ONLY:
        top = float(ml_dtypes.finfo(out_dtype).max)
        v = np.clip(v, -top, top)  # +-inf and overflow -> +-max; NaN stays NaN
    return v.astype(out_dtype)


@kernel("QuantizeLinear", since=10)
def quantize_linear(x: np.ndarray, y_scale: np.ndarray, y_zero_point: np.ndarray | None = None,
                    *, axis: int = 1, block_size: int = 0, output_dtype: int = 0,
                    precision: int = 0, saturate: int = 1) -> np.ndarray:
    """ONNX QuantizeLinear-10..25/28 (no float6): y = saturate(round(x / y_scale) + y_zero_point)."""
    op = "QuantizeLinear"
    x = np.asarray(x)
    if y_zero_point is not None:
        out_dtype = np.asarray(y_zero_point).dtype
        if output_dtype and _onnx_dtype(output_dtype, "output_dtype") != out_dtype:
            raise ValueError(f"{op}: output_dtype {output_dtype} does not match y_zero_point's "
                             f"type {out_dtype}; they must agree")
    elif output_dtype:
        out_dtype = _onnx_dtype(output_dtype, "output_dtype")
    else:
        out_dtype = np.dtype(np.uint8)
    if not (_is_int(out_dtype) or _is_float(out_dtype)) or out_dtype.itemsize > 2:
        raise ValueError(f"{op}: cannot quantize to {out_dtype}")
    scale = _param(y_scale, x.shape, axis, block_size, op, "y_scale")
    zp = _param(y_zero_point, x.shape, axis, block_size, op, "y_zero_point")

    # The division runs in the precision of y_scale (or of `precision`): 16-bit floats are
    # emulated by rounding operands and quotient to that type; int32 scales divide in float64.
    prec = _onnx_dtype(precision, "precision") if precision else scale.dtype
    if prec not in _DIVISION_TYPES:
        prec = np.dtype(np.float32)  # float8e8m0 scales (powers of two) divide exactly in float32
    if prec.kind in "iu":
        q = x.astype(np.float64) / scale.astype(np.float64)
    else:
        ct = np.dtype(np.float64) if prec == np.float64 else np.dtype(np.float32)
        xs, ss = x.astype(prec).astype(ct), scale.astype(prec).astype(ct)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = xs / ss
        if prec != ct:
            q = q.astype(prec).astype(ct)
    if _is_int(out_dtype):
        q = np.rint(q)
        if zp is not None:
            q = q + zp.astype(np.int64)
        return _saturate_cast(q, out_dtype, saturate)
    if zp is not None:
        q = q + zp.astype(np.float32)
    return _saturate_cast(q, out_dtype, saturate)


@kernel("DequantizeLinear", since=10)
def dequantize_linear(x: np.ndarray, x_scale: np.ndarray, x_zero_point: np.ndarray | None = None,
                      *, axis: int = 1, block_size: int = 0,
                      output_dtype: int = 0) -> np.ndarray:
    """ONNX DequantizeLinear-10..25/28 (no float6): y = (x - x_zero_point) * x_scale."""
    op = "DequantizeLinear"
    x = np.asarray(x)
    scale_in = np.asarray(x_scale)
    if output_dtype:
        out_dtype = _onnx_dtype(output_dtype, "output_dtype")
    else:
        out_dtype = scale_in.dtype
        if out_dtype == np.dtype(ml_dtypes.float8_e8m0fnu):
            raise ValueError(f"{op}: x_scale is float8e8m0, which cannot be the output type; "
                             "set output_dtype (float, float16 or bfloat16)")
    scale = _param(scale_in, x.shape, axis, block_size, op, "x_scale")
    zp = _param(x_zero_point, x.shape, axis, block_size, op, "x_zero_point")
    if _is_int(x.dtype):
        # Integer codes: subtract the zero point exactly in int64, then scale in float.
        v = x.astype(np.int64)
        if zp is not None:
            v = v - zp.astype(np.int64)
    elif _is_float(x.dtype):
        v = x.astype(np.float32)
        if zp is not None:
            v = v - zp.astype(np.float32)
    else:
        raise ValueError(f"{op}: cannot dequantize {x.dtype}")
    ct = np.float64 if out_dtype == np.float64 else np.float32
    y = v.astype(ct) * scale.astype(ct)
    return y.astype(out_dtype)


@kernel("DynamicQuantizeLinear", since=11)
def dynamic_quantize_linear(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX DynamicQuantizeLinear-11: uint8 quantization with scale/zero point from x's range."""
    x = np.asarray(x, dtype=np.float32)
    if x.size and not np.all(np.isnan(x)):
        lo = min(0.0, float(np.nanmin(x)))
        hi = max(0.0, float(np.nanmax(x)))
    else:
        lo = hi = 0.0
    scale = np.float32(np.float32(hi) - np.float32(lo)) / np.float32(255.0)
    if scale == 0:
        # All zeros: any scale represents them; ONNX Runtime reports 1.0 (the formula gives 0).
        scale = np.float32(1.0)
    zp = np.clip(np.rint(np.float32(0.0) - np.float32(lo) / scale), 0, 255)
    y = np.clip(np.rint(x / scale) + zp, 0, 255)
    y = np.nan_to_num(y, nan=0.0).astype(np.uint8)
    return y, np.asarray(scale, dtype=np.float32), np.asarray(zp, dtype=np.uint8)


def _centered(q: np.ndarray, zp: np.ndarray | None) -> np.ndarray:
    """Quantized codes minus zero point, as float64 (exact for 8-bit codes) or float32."""
    q = np.asarray(q)
    ct = np.float64 if _is_int(q.dtype) else np.float32
    v = q.astype(ct)
    if zp is not None:
        v = v - np.asarray(zp).astype(ct)
    return v


def _row_param(p: np.ndarray, a: np.ndarray) -> np.ndarray:
    """A per-row parameter of A as a column vector (a 1-D one has one value per row)."""
    p = np.asarray(p)
    if p.ndim == 1 and p.size > 1 and a.ndim >= 2:
        return p.reshape(-1, 1)
    return p


def _multiplier(x_scale: np.ndarray, w_scale: np.ndarray, y_scale: np.ndarray) -> np.ndarray:
    """x_scale * w_scale / y_scale in the scales' own precision (float16 stays float16), as
    float64 so the integer accumulator is multiplied without a further rounding."""
    st = np.result_type(np.asarray(x_scale).dtype, np.asarray(w_scale).dtype,
                        np.asarray(y_scale).dtype)
    ct = np.float64 if st == np.float64 else np.float32
    m = np.asarray(x_scale).astype(ct) * np.asarray(w_scale).astype(ct)
    if st != ct:
        m = m.astype(st).astype(ct)
    m = m / np.asarray(y_scale).astype(ct)
    if st != ct:
        m = m.astype(st).astype(ct)
    return m.astype(np.float64)


def _requantize(acc: np.ndarray, multiplier: np.ndarray, y_zero_point: np.ndarray) -> np.ndarray:
    """saturate(round(acc * multiplier) + y_zero_point) in y_zero_point's type."""
    y_zero_point = np.asarray(y_zero_point)
    out_dtype = y_zero_point.dtype
    q = acc.astype(np.float64) * multiplier
    if _is_int(out_dtype):
        q = np.rint(q + y_zero_point.astype(np.int64))
    else:
        q = q + y_zero_point.astype(np.float64)
    return _saturate_cast(q, out_dtype, 1)


@kernel("QLinearMatMul", since=10)
def qlinear_matmul(a: np.ndarray, a_scale: np.ndarray, a_zero_point: np.ndarray,
                   b: np.ndarray, b_scale: np.ndarray, b_zero_point: np.ndarray,
                   y_scale: np.ndarray, y_zero_point: np.ndarray) -> np.ndarray:
    """ONNX QLinearMatMul-10/21: quantized matmul, per-tensor or per-row(a)/per-column(b)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim < 1 or b.ndim < 1:
        raise ValueError("QLinearMatMul: a and b must have rank >= 1")
    acc = np.matmul(_centered(a, _row_param(a_zero_point, a)), _centered(b, b_zero_point))
    mult = _multiplier(_row_param(a_scale, a), b_scale, y_scale)
    return _requantize(acc, mult, y_zero_point)


@kernel("QLinearConv", since=10)
def qlinear_conv(x: np.ndarray, x_scale: np.ndarray, x_zero_point: np.ndarray, w: np.ndarray,
                 w_scale: np.ndarray, w_zero_point: np.ndarray, y_scale: np.ndarray,
                 y_zero_point: np.ndarray, B: np.ndarray | None = None, *,
                 auto_pad: str = "NOTSET", dilations: Sequence[int] | None = None,
                 group: int = 1, kernel_shape: Sequence[int] | None = None,
                 pads: Sequence[int] | None = None,
                 strides: Sequence[int] | None = None) -> np.ndarray:
    """ONNX QLinearConv-10: ConvInteger, plus int32 bias, rescaled by x_scale*w_scale/y_scale."""
    w = np.asarray(w)
    m = w.shape[0]
    for name, val in (("w_scale", w_scale), ("w_zero_point", w_zero_point)):
        if np.asarray(val).size not in (1, m):
            raise ValueError(f"QLinearConv: {name} must be a scalar or have one value per output "
                             f"channel ({m}), got {np.asarray(val).size}")
    for name, val in (("x_scale", x_scale), ("x_zero_point", x_zero_point),
                      ("y_scale", y_scale), ("y_zero_point", y_zero_point)):
        if np.asarray(val).size != 1:
            raise ValueError(f"QLinearConv: {name} must be a scalar (per tensor), got shape "
                             f"{list(np.shape(val))}")
    acc = conv_integer(x, w, x_zero_point, w_zero_point, auto_pad=auto_pad, dilations=dilations,
                       group=group, kernel_shape=kernel_shape, pads=pads, strides=strides)
    nsp = acc.ndim - 2
    acc = acc.astype(np.int64)
    if B is not None:
        if np.asarray(B).size != m:
            raise ValueError(f"QLinearConv: B has {np.asarray(B).size} values for {m} output "
                             "channels")
        acc = acc + np.asarray(B).astype(np.int64).reshape((1, -1) + (1,) * nsp)
    ws = np.asarray(w_scale).reshape((1, -1) + (1,) * nsp) if np.size(w_scale) > 1 \
        else np.asarray(w_scale).reshape(())
    mult = _multiplier(np.asarray(x_scale).reshape(()), ws, np.asarray(y_scale).reshape(()))
    return _requantize(acc, mult, np.asarray(y_zero_point).reshape(()))


def _bits(dt: np.dtype) -> int:
    return _SUB_BYTE_BITS.get(dt, dt.itemsize * 8)


@kernel("BitCast", since=26)
def bit_cast(x: np.ndarray, *, to: int | None = None) -> np.ndarray:
    """ONNX BitCast-26: reinterpret each element's bits as type ``to`` (same bit width)."""
    if to is None:
        raise ValueError("BitCast: attribute 'to' (the target element type) is required")
    x = np.asarray(x)
    target = _onnx_dtype(to, "to")
    if x.dtype == object or target == object:
        raise ValueError("BitCast does not support string tensors")
    if _bits(x.dtype) != _bits(target):
        raise ValueError(f"BitCast: {x.dtype} has {_bits(x.dtype)} bits but {target} has "
                         f"{_bits(target)}; BitCast needs types of the same bit width")
    if x.dtype == target:
        return x.copy()
    if x.dtype in _SUB_BYTE_BITS:
        # ml_dtypes keeps a sub-byte value's bits in the low bits of its byte.
        pattern = x.view(np.uint8) & np.uint8((1 << _bits(x.dtype)) - 1)
        return pattern.view(target).copy()
    # A view reinterprets native-order bytes; on the little-endian hosts we run on that is the
    # byte order ONNX specifies.
    src = np.ascontiguousarray(x)
    if target == np.bool_:
        return src.view(np.uint8) != 0
    return src.view(target).reshape(x.shape).copy()
