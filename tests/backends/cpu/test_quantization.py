"""Quantization kernels against onnx.reference and ONNX Runtime.

Covers QuantizeLinear / DequantizeLinear (per-tensor, per-axis, blocked; every quantized type
from uint8 to int2 and the float8/float4 types; saturate; output_dtype; precision),
DynamicQuantizeLinear, QLinearMatMul, QLinearConv and BitCast.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from oracle import assert_close, check_kernel, onnxruntime, reference

from pyflame_rt.backends.cpu.quantization import (
    bit_cast,
    dequantize_linear,
    dynamic_quantize_linear,
    qlinear_conv,
    qlinear_matmul,
    quantize_linear,
)
from pyflame_rt.ops import lookup

RNG = np.random.default_rng(1234)

INT_TYPES = [np.uint8, np.int8, np.uint16, np.int16, ml_dtypes.uint4, ml_dtypes.int4,
             ml_dtypes.uint2, ml_dtypes.int2]
FLOAT8_TYPES = [ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2,
                ml_dtypes.float8_e5m2fnuz]
ALL_TYPES = INT_TYPES + FLOAT8_TYPES + [ml_dtypes.float4_e2m1fn]
ONNX_CODES = {np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.uint16): 4,
              np.dtype(np.int16): 5, np.dtype(ml_dtypes.uint4): 21, np.dtype(ml_dtypes.int4): 22,
              np.dtype(ml_dtypes.float4_e2m1fn): 23, np.dtype(ml_dtypes.uint2): 25,
              np.dtype(ml_dtypes.int2): 26, np.dtype(ml_dtypes.float8_e4m3fn): 17,
              np.dtype(ml_dtypes.float8_e4m3fnuz): 18, np.dtype(ml_dtypes.float8_e5m2): 19,
              np.dtype(ml_dtypes.float8_e5m2fnuz): 20}


def _opset(dtype) -> int:
    """The first opset whose QuantizeLinear accepts ``dtype``."""
    dt = np.dtype(dtype)
    if dt in (np.dtype(ml_dtypes.uint2), np.dtype(ml_dtypes.int2)):
        return 25
    if dt == np.dtype(ml_dtypes.float4_e2m1fn):
        return 23
    return 21


def _x(shape, spread=40.0) -> np.ndarray:
    """Random values plus exact ties (k + 0.5) to exercise round-half-to-even."""
    x = RNG.uniform(-spread, spread, size=shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[: min(6, flat.size)] = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 3.5])[: min(6, flat.size)]
    return x


def _zero_point(dtype, shape=()) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind in "iu" or dt.name.startswith(("int", "uint")):
        info = ml_dtypes.iinfo(dt)
        return RNG.integers(info.min, info.max + 1, size=shape).astype(dt)
    return np.zeros(shape, dtype=dt)


def _close_to_ort(got: np.ndarray, expected: np.ndarray) -> None:
    """ONNX Runtime requantizes in float32 (acc * multiplier rounded to float32 first), the
    spec/onnx.reference in higher precision, so a value within float32 rounding of a .5 tie
    may land one step apart; anything else must be equal."""
    expected = np.asarray(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    diff = np.abs(got.astype(np.int64) - expected.astype(np.int64))
    assert diff.max(initial=0) <= 1, f"differs from ONNX Runtime by {diff.max()}"
    assert np.count_nonzero(diff) <= max(1, diff.size // 100)


def test_registered_versions():
    for opset in (10, 13, 19, 21, 23, 25):
        assert lookup("QuantizeLinear", opset=opset).fn is quantize_linear
        assert lookup("DequantizeLinear", opset=opset).fn is dequantize_linear
    assert lookup("DynamicQuantizeLinear", opset=11).fn is dynamic_quantize_linear
    assert lookup("QLinearMatMul", opset=21).fn is qlinear_matmul
    assert lookup("QLinearConv", opset=10).fn is qlinear_conv
    assert lookup("BitCast", opset=26).fn is bit_cast


# ------------------------------------------------------------------------------ QuantizeLinear

@pytest.mark.parametrize("dtype", ALL_TYPES, ids=lambda t: np.dtype(t).name)
def test_quantize_per_tensor(dtype):
    x = _x((3, 8))
    check_kernel(quantize_linear, "QuantizeLinear",
                 [x, np.array(0.37, np.float32), _zero_point(dtype)], opset=_opset(dtype))


@pytest.mark.parametrize("dtype", ALL_TYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_per_axis(dtype, axis):
    x = _x((3, 4, 5))
    n = x.shape[axis]
    scale = RNG.uniform(0.1, 2.0, size=n).astype(np.float32)
    check_kernel(quantize_linear, "QuantizeLinear", [x, scale, _zero_point(dtype, (n,))],
                 {"axis": axis}, opset=_opset(dtype))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, ml_dtypes.int4,
                                   ml_dtypes.float8_e4m3fn], ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("axis,block", [(1, 2), (1, 3), (0, 2), (-1, 4)])
def test_quantize_blocked(dtype, axis, block):
    x = _x((4, 7, 6))
    shape = list(x.shape)
    shape[axis] = -(-shape[axis] // block)
    scale = RNG.uniform(0.1, 2.0, size=shape).astype(np.float32)
    check_kernel(quantize_linear, "QuantizeLinear", [x, scale, _zero_point(dtype, shape)],
                 {"axis": axis, "block_size": block}, opset=21)


@pytest.mark.parametrize("code,dtype", [(3, np.int8), (5, np.int16), (22, ml_dtypes.int4),
                                        (17, ml_dtypes.float8_e4m3fn)])
def test_quantize_output_dtype_without_zero_point(code, dtype):
    x = _x((2, 6))
    got = quantize_linear(x, np.array(0.25, np.float32), output_dtype=code)
    assert got.dtype == np.dtype(dtype)
    check_kernel(quantize_linear, "QuantizeLinear", [x, np.array(0.25, np.float32)],
                 {"output_dtype": code}, opset=21)


def test_quantize_default_is_uint8():
    x = _x((10,))
    check_kernel(quantize_linear, "QuantizeLinear", [x, np.array(0.5, np.float32)], opset=10)
    assert quantize_linear(x, np.array(0.5, np.float32)).dtype == np.uint8


@pytest.mark.parametrize("dtype", FLOAT8_TYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("saturate", [0, 1])
def test_quantize_float8_saturate(dtype, saturate):
    x = np.array([0.0, -0.0, 1.0, -3.0, 1e5, -1e5, np.inf, -np.inf, 300.0, 1000.0],
                 dtype=np.float32)
    check_kernel(quantize_linear, "QuantizeLinear",
                 [x, np.array(1.0, np.float32), np.zeros((), dtype)], {"saturate": saturate},
                 opset=21)


def test_quantize_float4_saturates_always():
    x = np.array([0.2, 1.2, 5.1, 7.0, 100.0, -100.0, np.inf], dtype=np.float32)
    got = quantize_linear(x, np.array(1.0, np.float32),
                          np.zeros((), ml_dtypes.float4_e2m1fn), saturate=0)
    assert_close(got.astype(np.float32),
                 np.array([0.0, 1.0, 6.0, 6.0, 6.0, -6.0, 6.0], np.float32))


@pytest.mark.parametrize("xtype", [np.float16, ml_dtypes.bfloat16, np.int32])
def test_quantize_input_types(xtype):
    x = _x((12,)).astype(xtype)
    check_kernel(quantize_linear, "QuantizeLinear",
                 [x, np.array(0.5, np.float32), np.array(7, np.uint8)], opset=21)


def test_quantize_float16_scale():
    # The division runs in the scale's precision (float16 here).
    x = _x((16,), spread=200.0)
    check_kernel(quantize_linear, "QuantizeLinear",
                 [x.astype(np.float16), np.array(0.3, np.float16), np.array(0, np.int8)],
                 opset=21)


def test_quantize_precision_attribute():
    x = _x((16,), spread=200.0)
    check_kernel(quantize_linear, "QuantizeLinear",
                 [x, np.array(0.3, np.float16), np.array(3, np.uint8)], {"precision": 1},
                 opset=23)


def test_quantize_e8m0_scale():
    x = _x((3, 8))
    scale = np.array([0.25, 2.0, 8.0], ml_dtypes.float8_e8m0fnu)
    check_kernel(quantize_linear, "QuantizeLinear", [x, scale, np.zeros(3, np.int8)],
                 {"axis": 0}, opset=24)


def test_quantize_matches_onnxruntime():
    x = _x((2, 3, 4))
    scale = RNG.uniform(0.1, 1.0, size=3).astype(np.float32)
    zp = np.array([0, 10, 200], np.uint8)
    expected = onnxruntime("QuantizeLinear", [x, scale, zp], {"axis": 1}, opset=21)[0]
    assert_close(quantize_linear(x, scale, zp, axis=1), expected)


def test_quantize_rejects_bad_shapes():
    x = _x((3, 4))
    with pytest.raises(ValueError, match="per-axis"):
        quantize_linear(x, np.ones(5, np.float32), axis=1)
    with pytest.raises(ValueError, match="block_size 2"):
        quantize_linear(x, np.ones((3, 3), np.float32), axis=1, block_size=2)
    with pytest.raises(ValueError, match="output_dtype"):
        quantize_linear(x, np.ones((), np.float32), np.zeros((), np.uint8), output_dtype=3)


# ---------------------------------------------------------------------------- DequantizeLinear

def _codes(dtype, shape) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind in "iu" or dt.name.startswith(("int", "uint")):
        info = ml_dtypes.iinfo(dt)
        return RNG.integers(info.min, info.max + 1, size=shape).astype(dt)
    return RNG.uniform(-6, 6, size=shape).astype(np.float32).astype(dt)


@pytest.mark.parametrize("dtype", ALL_TYPES + [np.int32], ids=lambda t: np.dtype(t).name)
def test_dequantize_per_tensor(dtype):
    x = _codes(dtype, (4, 5))
    zp = None if dtype is np.int32 else _zero_point(dtype)
    check_kernel(dequantize_linear, "DequantizeLinear", [x, np.array(0.37, np.float32), zp],
                 opset=_opset(dtype))


@pytest.mark.parametrize("dtype", ALL_TYPES, ids=lambda t: np.dtype(t).name)
def test_dequantize_per_axis(dtype):
    x = _codes(dtype, (2, 3, 4))
    scale = RNG.uniform(0.1, 2.0, size=3).astype(np.float32)
    check_kernel(dequantize_linear, "DequantizeLinear", [x, scale, _zero_point(dtype, (3,))],
                 {"axis": 1}, opset=_opset(dtype))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, ml_dtypes.uint4, ml_dtypes.int2,
                                   ml_dtypes.float8_e5m2], ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("axis,block", [(1, 2), (0, 3), (-1, 4)])
def test_dequantize_blocked(dtype, axis, block):
    x = _codes(dtype, (5, 6, 7))
    shape = list(x.shape)
    shape[axis] = -(-shape[axis] // block)
    scale = RNG.uniform(0.1, 2.0, size=shape).astype(np.float32)
    check_kernel(dequantize_linear, "DequantizeLinear", [x, scale, _zero_point(dtype, shape)],
                 {"axis": axis, "block_size": block}, opset=_opset(dtype))


@pytest.mark.parametrize("stype", [np.float16, ml_dtypes.bfloat16])
def test_dequantize_scale_type_is_output_type(stype):
    x = _codes(np.int8, (3, 4))
    check_kernel(dequantize_linear, "DequantizeLinear",
                 [x, np.array(0.37, stype), np.array(-3, np.int8)], opset=21, rtol=1e-2)
    assert dequantize_linear(x, np.array(0.37, stype)).dtype == np.dtype(stype)


def test_dequantize_output_dtype_and_e8m0_scale():
    x = _codes(np.int8, (6,))
    scale = np.array(4.0, ml_dtypes.float8_e8m0fnu)
    check_kernel(dequantize_linear, "DequantizeLinear", [x, scale], {"output_dtype": 10},
                 opset=24)
    with pytest.raises(ValueError, match="output_dtype"):
        dequantize_linear(x, scale)


def test_dequantize_matches_onnxruntime():
    x = _codes(np.uint8, (2, 3, 4))
    scale = RNG.uniform(0.1, 1.0, size=3).astype(np.float32)
    zp = np.array([0, 10, 200], np.uint8)
    expected = onnxruntime("DequantizeLinear", [x, scale, zp], {"axis": 1}, opset=21)[0]
    assert_close(dequantize_linear(x, scale, zp, axis=1), expected)


def test_quantize_dequantize_round_trip():
    x = _x((4, 8), spread=10.0)
    scale = np.array(0.1, np.float32)
    q = quantize_linear(x, scale, np.array(0, np.int16))
    assert_close(dequantize_linear(q, scale, np.array(0, np.int16)), x, rtol=0, atol=0.0501)


# ----------------------------------------------------------------------- DynamicQuantizeLinear

@pytest.mark.parametrize("x", [
    np.array([0.0, 2.0, -3.0, -2.5, 1.34, 0.5], np.float32),
    np.array([-1.0, -2.1, -1.3, -2.5, -3.34, -4.0], np.float32),
    np.array([1.0, 2.1, 1.3, 2.5, 3.34, 4.0, 1.5, 2.6, 3.9, 4.0, 3.0, 2.345],
             np.float32).reshape(3, 4),
    RNG.standard_normal((5, 7)).astype(np.float32),
], ids=["mixed", "negative", "positive", "random"])
def test_dynamic_quantize_linear(x):
    check_kernel(dynamic_quantize_linear, "DynamicQuantizeLinear", [x], noutputs=3, opset=11)
    expected = onnxruntime("DynamicQuantizeLinear", [x], noutputs=3, opset=11)
    for g, e in zip(dynamic_quantize_linear(x), expected):
        assert_close(g, e)


def test_dynamic_quantize_linear_all_zero_matches_onnxruntime():
    x = np.zeros((4,), np.float32)
    expected = onnxruntime("DynamicQuantizeLinear", [x], noutputs=3, opset=11)
    for g, e in zip(dynamic_quantize_linear(x), expected):
        assert_close(g, e)


# ------------------------------------------------------------------------------- QLinearMatMul

def _qmm_inputs(qtype, stype, a_shape, b_shape, per_axis=False):
    info = np.iinfo(qtype)
    a = RNG.integers(info.min, info.max + 1, size=a_shape).astype(qtype)
    b = RNG.integers(info.min, info.max + 1, size=b_shape).astype(qtype)
    m, n = a_shape[-2], b_shape[-1]
    if per_axis:
        a_scale = RNG.uniform(0.01, 0.05, size=m).astype(stype)
        a_zp = RNG.integers(info.min // 2, info.max // 2, size=m).astype(qtype)
        b_scale = RNG.uniform(0.01, 0.05, size=n).astype(stype)
        b_zp = RNG.integers(info.min // 2, info.max // 2, size=n).astype(qtype)
    else:
        a_scale = np.array([0.0066], stype)
        a_zp = np.array([info.min // 2 + 100], qtype)
        b_scale = np.array([0.00705], stype)
        b_zp = np.array([info.max // 2 - 30], qtype)
    y_scale = np.array([0.0107], stype)
    y_zp = np.array([info.max // 2], qtype)
    return [a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp]


@pytest.mark.parametrize("qtype", [np.uint8, np.int8])
@pytest.mark.parametrize("stype", [np.float32, np.float16])
@pytest.mark.parametrize("shapes", [((2, 4), (4, 3)), ((2, 3, 5), (2, 5, 4)), ((3, 6), (6, 2))])
def test_qlinear_matmul(qtype, stype, shapes):
    inputs = _qmm_inputs(qtype, stype, *shapes)
    check_kernel(qlinear_matmul, "QLinearMatMul", inputs, opset=21)
    if stype is np.float32:
        expected = onnxruntime("QLinearMatMul", inputs, opset=21)[0]
        _close_to_ort(qlinear_matmul(*inputs), expected)


@pytest.mark.parametrize("qtype", [np.uint8, np.int8])
def test_qlinear_matmul_per_row_and_column(qtype):
    inputs = _qmm_inputs(qtype, np.float32, (4, 8), (8, 5), per_axis=True)
    # onnx.reference takes per-row parameters of a as a [M, 1] column.
    column = list(inputs)
    column[1], column[2] = inputs[1].reshape(-1, 1), inputs[2].reshape(-1, 1)
    check_kernel(qlinear_matmul, "QLinearMatMul", column, opset=21)
    # The spec's 1-D form [M] means the same thing.
    assert_close(qlinear_matmul(*inputs), qlinear_matmul(*column))


def test_qlinear_matmul_float8():
    # No oracle runs QLinearMatMul on float8; compose it from the reference's
    # DequantizeLinear and QuantizeLinear around a float32 matmul.
    f8 = ml_dtypes.float8_e4m3fn
    a = RNG.uniform(-4, 4, size=(3, 4)).astype(f8)
    b = RNG.uniform(-4, 4, size=(4, 2)).astype(f8)
    z = np.zeros((1,), f8)
    sa, sb, sy = (np.array([v], np.float32) for v in (0.5, 0.25, 0.1))
    inputs = [a, sa, z, b, sb, z, sy, z]
    deq_a = reference("DequantizeLinear", [a, sa, z], {"axis": 0})[0]
    deq_b = reference("DequantizeLinear", [b, sb, z], {"axis": 0})[0]
    expected = reference("QuantizeLinear", [deq_a @ deq_b, sy, z], {"axis": 0})[0]
    assert_close(qlinear_matmul(*inputs), expected)


# --------------------------------------------------------------------------------- QLinearConv

def _qconv_inputs(qtype, wtype, x_shape, w_shape, per_channel=False, bias=True):
    xi, wi = np.iinfo(qtype), np.iinfo(wtype)
    x = RNG.integers(xi.min, xi.max + 1, size=x_shape).astype(qtype)
    w = RNG.integers(wi.min, wi.max + 1, size=w_shape).astype(wtype)
    m = w_shape[0]
    if per_channel:
        w_scale = RNG.uniform(0.001, 0.01, size=m).astype(np.float32)
        w_zp = np.zeros(m, wtype)  # ONNX Runtime needs per-channel zero points to be 0
    else:
        w_scale = np.array(0.004, np.float32)
        w_zp = np.array(wi.max // 3, wtype)
    out = [x, np.array(0.02, np.float32), np.array(xi.max // 2 - 10, qtype), w, w_scale, w_zp,
           np.array(0.3, np.float32), np.array(xi.max // 2, qtype)]
    if bias:
        out.append(RNG.integers(-2000, 2000, size=m).astype(np.int32))
    return out


@pytest.mark.parametrize("qtype,wtype", [(np.uint8, np.uint8), (np.uint8, np.int8),
                                         (np.int8, np.int8)])
@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 1, 1, 1]}, {"strides": [2, 2]},
                                   {"group": 2, "pads": [0, 1, 0, 1]},
                                   {"auto_pad": "SAME_UPPER", "dilations": [2, 1]}],
                         ids=["plain", "pads", "strides", "group", "same_dilated"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_conv(qtype, wtype, attrs, per_channel):
    group = attrs.get("group", 1)
    inputs = _qconv_inputs(qtype, wtype, (2, 4, 7, 6), (6, 4 // group, 3, 3), per_channel)
    check_kernel(qlinear_conv, "QLinearConv", inputs, attrs, opset=10)
    if "dilations" not in attrs:  # ONNX Runtime refuses dilations with SAME padding
        expected = onnxruntime("QLinearConv", inputs, attrs, opset=10)[0]
        _close_to_ort(qlinear_conv(*inputs, **attrs), expected)


def test_qlinear_conv_without_bias_1d():
    inputs = _qconv_inputs(np.uint8, np.uint8, (1, 3, 9), (2, 3, 2), bias=False)
    check_kernel(qlinear_conv, "QLinearConv", inputs, {"strides": [2]}, opset=10)


# ------------------------------------------------------------------------------------ BitCast

@pytest.mark.parametrize("src,dst", [
    (np.float32, np.int32), (np.int32, np.float32), (np.float64, np.int64),
    (np.uint16, np.int16), (np.float16, np.uint16), (np.int8, np.uint8), (np.bool_, np.uint8),
    (ml_dtypes.bfloat16, np.int16), (np.uint8, ml_dtypes.float8_e4m3fn),
    (np.complex64, np.uint64), (np.uint32, np.float32),
])
def test_bitcast_same_width(src, dst):
    x = RNG.integers(0, 255, size=(3, 4)).astype(np.uint8)
    x = np.frombuffer(RNG.bytes(12 * np.dtype(src).itemsize), dtype=np.uint8).view(
        np.uint8 if src is np.bool_ else src).reshape(3, 4)
    if src is np.bool_:
        x = (x & 1).astype(np.bool_)
    code = {np.int32: 6, np.float32: 1, np.int64: 7, np.int16: 5, np.uint16: 4, np.uint8: 2,
            ml_dtypes.float8_e4m3fn: 17, np.uint64: 13}[dst]
    got = bit_cast(x, to=code)
    assert got.dtype == np.dtype(dst) and got.shape == x.shape
    # Same bytes, little endian: compare the raw byte strings.
    assert got.tobytes() == np.ascontiguousarray(x).tobytes()
    if src not in (ml_dtypes.bfloat16, np.complex64) and dst is not ml_dtypes.float8_e4m3fn:
        check_kernel(bit_cast, "BitCast", [x], {"to": code}, opset=26)


def test_bitcast_scalar():
    x = np.array(1.0, np.float32)
    got = bit_cast(x, to=6)
    assert got.shape == () and int(got) == 0x3F800000


def test_bitcast_sub_byte():
    x = np.array([-8, -1, 0, 7], ml_dtypes.int4)
    # Two's complement nibbles: -8 -> 0b1000, -1 -> 0b1111.
    assert bit_cast(x, to=21).astype(np.int64).tolist() == [8, 15, 0, 7]
    u = np.array([0b0001, 0b0110, 0b1111], ml_dtypes.uint4)
    # float4e2m1 nibbles: 0b0001 -> 0.5, 0b0110 -> 4.0, 0b1111 -> -6.0.
    assert bit_cast(u, to=23).astype(np.float32).tolist() == [0.5, 4.0, -6.0]
    i2 = np.array([-2, -1, 0, 1], ml_dtypes.int2)
    assert bit_cast(i2, to=25).astype(np.int64).tolist() == [2, 3, 0, 1]


def test_bitcast_rejects_width_change():
    with pytest.raises(ValueError, match="bit width"):
        bit_cast(np.zeros(3, np.float32), to=7)
    with pytest.raises(ValueError, match="'to'"):
        bit_cast(np.zeros(3, np.float32))


def test_kernels_do_not_modify_inputs():
    x = _x((3, 4))
    x.flags.writeable = False
    scale = np.array([0.5, 0.25, 1.0], np.float32)
    scale.flags.writeable = False
    quantize_linear(x, scale, axis=0)
    dequantize_linear(quantize_linear(x, scale, axis=0), scale, axis=0)
    dynamic_quantize_linear(x)


def test_reference_agrees_on_ties():
    # Sanity check of the oracle itself on round-half-to-even.
    got = reference("QuantizeLinear", [np.array([0.5, 1.5, 2.5, -0.5], np.float32),
                                       np.array(1.0, np.float32), np.array(0, np.int8)])[0]
    assert got.tolist() == [0, 2, 2, 0]
    assert quantize_linear(np.array([0.5, 1.5, 2.5, -0.5], np.float32),
                           np.array(1.0, np.float32), np.array(0, np.int8)).tolist() == [0, 2, 2, 0]
