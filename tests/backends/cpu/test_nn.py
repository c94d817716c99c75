"""Conv, ConvTranspose, ConvInteger and Dropout kernels against onnx.reference / ONNX Runtime."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from oracle import assert_close, check_kernel, onnxruntime, reference

from pyflame_rt.backends.cpu import nn
from pyflame_rt.backends.cpu.nn import (
    conv,
    conv_integer,
    conv_transpose,
    dropout_7,
    dropout_10,
    dropout_12,
    resolve_padding,
)
from pyflame_rt.ops import KernelContext, lookup

F32_TOL = {"rtol": 1e-4, "atol": 1e-5}
TOL = {np.float32: F32_TOL, np.float64: {"rtol": 1e-10, "atol": 1e-10},
       np.float16: {"rtol": 1e-2, "atol": 1e-2}}


def _ctx(noutputs: int = 1, seed: int = 0) -> KernelContext:
    return KernelContext(node=None, noutputs=noutputs, opset=21,
                         rng=np.random.default_rng(seed))


def _check_ort(fn, op_type, inputs, attrs, *, opset=21, rtol=1e-4, atol=1e-5):
    expected = onnxruntime(op_type, inputs, attrs, opset=opset)[0]
    assert_close(fn(*inputs, **attrs), expected, rtol=rtol, atol=atol)


def test_registered_versions():
    for opset in (7, 11, 22):
        assert lookup("Conv", opset=opset).fn is conv
        assert lookup("ConvTranspose", opset=opset).fn is conv_transpose
    assert lookup("ConvInteger", opset=10).fn is conv_integer
    assert lookup("Dropout", opset=7).fn is dropout_7
    assert lookup("Dropout", opset=11).fn is dropout_10
    for opset in (12, 13, 22):
        assert lookup("Dropout", opset=opset).fn is dropout_12


# --------------------------------------------------------------------------------------- Conv

def _conv_inputs(rng, x_shape, c_out, group, kernel, dtype=np.float32, bias=True):
    c_in = x_shape[1]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((c_out, c_in // group, *kernel)).astype(dtype)
    b = rng.standard_normal((c_out,)).astype(dtype) if bias else None
    return [x, w, b]


# (x shape, out channels, group, kernel): plain, grouped, depthwise, depthwise x2, 1x1.
CONV_LAYOUTS_2D = [
    ((2, 4, 7, 6), 6, 1, (3, 2)),
    ((1, 4, 6, 7), 6, 2, (3, 3)),
    ((2, 4, 6, 5), 4, 4, (3, 3)),
    ((1, 3, 5, 6), 6, 3, (2, 3)),
    ((2, 6, 5, 4), 4, 1, (1, 1)),
    ((1, 4, 5, 5), 6, 2, (1, 1)),
]

CONV_ATTRS_2D = [
    {},
    {"pads": [1, 1, 1, 1]},
    {"pads": [1, 0, 2, 1], "strides": [2, 1]},
    {"strides": [2, 3], "dilations": [1, 2], "pads": [0, 2, 1, 0]},
    {"dilations": [2, 2], "pads": [2, 2, 2, 2]},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"auto_pad": "SAME_LOWER", "strides": [2, 1]},
    {"auto_pad": "SAME_UPPER"},
    {"auto_pad": "VALID", "strides": [2, 2]},
    {"auto_pad": "NOTSET", "strides": [1, 2]},
]


@pytest.mark.parametrize("layout", CONV_LAYOUTS_2D)
@pytest.mark.parametrize("attrs", CONV_ATTRS_2D)
def test_conv_2d(layout, attrs):
    x_shape, c_out, group, kernel = layout
    rng = np.random.default_rng(0)
    inputs = _conv_inputs(rng, x_shape, c_out, group, kernel)
    check_kernel(conv, "Conv", inputs, {**attrs, "group": group}, opset=11, **F32_TOL)


@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 2], "strides": [2], "dilations": [2]},
                                   {"auto_pad": "SAME_LOWER", "strides": [3]},
                                   {"auto_pad": "VALID", "dilations": [3]}])
@pytest.mark.parametrize("group,c_out", [(1, 4), (2, 4), (4, 8)])
def test_conv_1d(attrs, group, c_out):
    rng = np.random.default_rng(1)
    inputs = _conv_inputs(rng, (2, 4, 11), c_out, group, (3,))
    check_kernel(conv, "Conv", inputs, {**attrs, "group": group}, opset=22, **F32_TOL)


@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 0, 1, 0, 1, 1], "strides": [2, 1, 2]},
                                   {"dilations": [1, 2, 1], "auto_pad": "SAME_UPPER"},
                                   {"auto_pad": "VALID", "strides": [1, 2, 2]}])
@pytest.mark.parametrize("group,c_out,kernel", [(1, 3, (2, 3, 2)), (2, 4, (3, 1, 2)),
                                                (4, 4, (2, 2, 2)), (1, 3, (1, 1, 1))])
def test_conv_3d(attrs, group, c_out, kernel):
    rng = np.random.default_rng(2)
    inputs = _conv_inputs(rng, (1, 4, 5, 4, 6), c_out, group, kernel)
    check_kernel(conv, "Conv", inputs, {**attrs, "group": group}, opset=11, **F32_TOL)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
@pytest.mark.parametrize("group,c_out,kernel", [(1, 3, (3, 3)), (4, 4, (3, 3)),
                                                (2, 4, (1, 1))])
def test_conv_dtypes(dtype, group, c_out, kernel):
    rng = np.random.default_rng(3)
    inputs = _conv_inputs(rng, (1, 4, 6, 5), c_out, group, kernel, dtype=dtype)
    check_kernel(conv, "Conv", inputs, {"group": group, "pads": [1, 0, 0, 1]}, opset=22,
                 **TOL[dtype])


def test_conv_bfloat16_matches_float32_reference():
    rng = np.random.default_rng(4)
    x, w, b = _conv_inputs(rng, (1, 3, 6, 6), 4, 1, (3, 3))
    bf = np.dtype(ml_dtypes.bfloat16)
    xb, wb, bb = x.astype(bf), w.astype(bf), b.astype(bf)
    expected = reference("Conv", [xb.astype(np.float32), wb.astype(np.float32),
                                  bb.astype(np.float32)], {"pads": [1, 1, 1, 1]}, opset=22)[0]
    got = conv(xb, wb, bb, pads=[1, 1, 1, 1])
    assert got.dtype == bf
    np.testing.assert_allclose(got.astype(np.float32), expected, rtol=3e-2, atol=5e-2)


@pytest.mark.parametrize("opset", [1, 11, 22])
def test_conv_opsets_no_bias_explicit_kernel_shape(opset):
    rng = np.random.default_rng(5)
    x, w, _ = _conv_inputs(rng, (2, 3, 6, 6), 5, 1, (3, 2), bias=False)
    check_kernel(conv, "Conv", [x, w], {"kernel_shape": [3, 2], "strides": [1, 2]},
                 opset=opset, **F32_TOL)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("strides,dilations", [([1, 1], [2, 2]), ([2, 1], [2, 3]),
                                               ([3, 2], [1, 2])])
def test_conv_same_with_dilations(auto_pad, strides, dilations):
    # ONNX Runtime refuses SAME with dilations; the spec pads for the dilated kernel: out =
    # ceil(in / stride), total pad = (out - 1) * stride + (k - 1) * d + 1 - in. Compare with the
    # reference run on those explicit pads.
    rng = np.random.default_rng(6)
    x, w, b = _conv_inputs(rng, (1, 2, 7, 6), 3, 1, (3, 2))
    pads_begin, pads_end = [], []
    for size, k, s, d in zip(x.shape[2:], w.shape[2:], strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small = total // 2
        begin = small if auto_pad == "SAME_UPPER" else total - small
        pads_begin.append(begin)
        pads_end.append(total - begin)
    expected = reference("Conv", [x, w, b], {"strides": strides, "dilations": dilations,
                                             "pads": pads_begin + pads_end}, opset=11)[0]
    got = conv(x, w, b, auto_pad=auto_pad, strides=strides, dilations=dilations)
    assert_close(got, expected, **F32_TOL)
    assert got.shape[2:] == tuple(-(-n // s) for n, s in zip(x.shape[2:], strides))


@pytest.mark.parametrize("x_shape,mult,kernel,attrs", [
    ((1, 16, 5, 3), 1, (3, 3), {"pads": [1, 1, 1, 1]}),
    ((2, 12, 6, 4), 2, (3, 2), {"strides": [2, 1], "dilations": [1, 2], "pads": [1, 0, 2, 1]}),
    ((1, 16, 7, 5), 1, (5, 5), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((2, 16, 5), 1, (3,), {"pads": [2, 1], "dilations": [2]}),
    ((1, 12, 3, 4, 3), 2, (2, 3, 2), {"pads": [1, 1, 0, 0, 1, 1], "strides": [1, 2, 1]}),
])
def test_conv_depthwise_channels_last_path(monkeypatch, x_shape, mult, kernel, attrs):
    # Many channels and short rows select the channels-last depthwise loop.
    calls = []
    real = nn._depthwise_channels_last
    monkeypatch.setattr(nn, "_depthwise_channels_last",
                        lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(nn, "_DEPTHWISE_BLOCK", 64)  # several row blocks even here
    rng = np.random.default_rng(24)
    c = x_shape[1]
    inputs = _conv_inputs(rng, x_shape, c * mult, c, kernel)
    check_kernel(conv, "Conv", inputs, {**attrs, "group": c}, opset=11, **F32_TOL)
    assert calls, "the channels-last depthwise path was not taken"


def test_conv_depthwise_channels_first_path_blocks(monkeypatch):
    monkeypatch.setattr(nn, "_DEPTHWISE_BLOCK", 40)  # one channel per block
    rng = np.random.default_rng(25)
    inputs = _conv_inputs(rng, (2, 3, 9, 11), 6, 3, (3, 3))
    check_kernel(conv, "Conv", inputs, {"group": 3, "pads": [1, 2, 0, 1], "strides": [1, 2]},
                 opset=11, **F32_TOL)


def test_conv_chunked_im2col(monkeypatch):
    # Force the memory-bounded path (im2col in row chunks) on a small conv.
    monkeypatch.setattr(nn, "_IM2COL_BUDGET", 200)
    rng = np.random.default_rng(7)
    inputs = _conv_inputs(rng, (2, 4, 9, 7), 6, 2, (3, 3))
    check_kernel(conv, "Conv", inputs, {"group": 2, "pads": [1, 1, 1, 1], "strides": [1, 2]},
                 opset=11, **F32_TOL)


def test_conv_against_onnxruntime_resnet_like():
    rng = np.random.default_rng(8)
    inputs = _conv_inputs(rng, (1, 16, 14, 14), 16, 1, (3, 3))
    _check_ort(conv, "Conv", inputs, {"pads": [1, 1, 1, 1]})
    inputs = _conv_inputs(rng, (1, 16, 14, 14), 16, 16, (3, 3))
    _check_ort(conv, "Conv", inputs, {"pads": [1, 1, 1, 1], "group": 16, "strides": [2, 2]})


def test_conv_does_not_modify_inputs():
    rng = np.random.default_rng(9)
    inputs = _conv_inputs(rng, (1, 4, 5, 5), 4, 4, (3, 3))
    before = [a.copy() for a in inputs]
    conv(*inputs, group=4, pads=[1, 1, 1, 1])
    conv(inputs[0], np.ones((3, 4, 1, 1), np.float32))
    for a, b in zip(inputs, before):
        np.testing.assert_array_equal(a, b)


def test_conv_errors():
    x = np.ones((1, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match="channels"):
        conv(x, np.ones((2, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="divisible"):
        conv(x, np.ones((3, 2, 3, 3), np.float32), group=2)
    with pytest.raises(ValueError, match="kernel_shape"):
        conv(x, np.ones((2, 4, 3, 3), np.float32), kernel_shape=[2, 2])
    with pytest.raises(ValueError, match="does not fit"):
        conv(x, np.ones((2, 4, 7, 7), np.float32))
    with pytest.raises(ValueError, match="pads"):
        conv(x, np.ones((2, 4, 3, 3), np.float32), pads=[1, 1])
    with pytest.raises(ValueError, match="auto_pad"):
        conv(x, np.ones((2, 4, 3, 3), np.float32), auto_pad="SAME")


def test_resolve_padding_ceil_mode_drops_window_starting_in_padding():
    # in=5, k=2, s=2, pads 1/1: ceil gives 4 windows but the 4th starts in the end padding.
    begin, end, out = resolve_padding("NOTSET", [5], [2], [2], [1], [1, 1], ceil_mode=1)
    assert (begin, end, out) == ((1,), (1,), (3,))
    assert resolve_padding("NOTSET", [5], [2], [2], [1], [1, 1])[2] == (3,)
    assert resolve_padding("NOTSET", [7], [2], [2], [1], [0, 0], ceil_mode=1)[2] == (4,)
    assert resolve_padding("NOTSET", [7], [2], [2], [1], [0, 0], ceil_mode=0)[2] == (3,)


# ------------------------------------------------------------------------------ ConvTranspose

def _ct_inputs(rng, x_shape, m_per_group, group, kernel, dtype=np.float32, bias=True):
    c = x_shape[1]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((c, m_per_group, *kernel)).astype(dtype)
    b = rng.standard_normal((m_per_group * group,)).astype(dtype) if bias else None
    return [x, w, b]


CT_ATTRS_2D = [
    {},
    {"strides": [2, 2]},
    {"strides": [2, 3], "pads": [1, 0, 0, 2]},
    {"strides": [2, 2], "output_padding": [1, 0]},
    {"strides": [3, 2], "dilations": [2, 1], "pads": [1, 1, 2, 0], "output_padding": [2, 1]},
    {"dilations": [2, 2]},
    {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"strides": [2, 1], "auto_pad": "SAME_LOWER"},
    {"strides": [2, 2], "auto_pad": "VALID"},
    {"strides": [2, 2], "auto_pad": "SAME_UPPER", "output_shape": [7, 9]},
    {"strides": [2, 2], "auto_pad": "SAME_LOWER", "output_shape": [7, 9]},
    {"strides": [2, 2], "output_shape": [8, 7]},
    {"strides": [2, 3], "output_shape": [9, 12], "output_padding": [1, 1]},
    {"strides": [2, 2], "output_shape": [8, 8], "pads": [1, 1, 1, 1]},  # pads are ignored
]


@pytest.mark.parametrize("attrs", CT_ATTRS_2D)
@pytest.mark.parametrize("group,m_per_group,kernel", [(1, 3, (3, 3)), (1, 2, (2, 3)),
                                                      (2, 2, (3, 2)), (4, 1, (3, 3))])
def test_conv_transpose_2d_against_onnxruntime(attrs, group, m_per_group, kernel):
    # onnx.reference mishandles group > 1 and output_shape without auto_pad; ONNX Runtime
    # follows the opset-11 text (odd padding at the end only for SAME_UPPER).
    rng = np.random.default_rng(10)
    inputs = _ct_inputs(rng, (2, 4, 4, 4), m_per_group, group, kernel)
    _check_ort(conv_transpose, "ConvTranspose", inputs, {**attrs, "group": group})


@pytest.mark.parametrize("attrs", [a for a in CT_ATTRS_2D if "output_shape" not in a
                                   and a.get("auto_pad", "NOTSET") in ("NOTSET", "VALID")])
def test_conv_transpose_1x1_kernel_smaller_than_stride(attrs):
    # Gaps between the scattered inputs are zero (+ bias). (With SAME padding ONNX Runtime
    # departs from the spec's output size in*stride here, so only explicit pads are compared.)
    rng = np.random.default_rng(22)
    inputs = _ct_inputs(rng, (1, 3, 4, 4), 2, 1, (1, 1))
    _check_ort(conv_transpose, "ConvTranspose", inputs, attrs)


def test_conv_transpose_same_upper_output_is_input_times_stride():
    rng = np.random.default_rng(23)
    x, w, b = _ct_inputs(rng, (1, 2, 4, 3), 2, 1, (1, 1))
    got = conv_transpose(x, w, b, strides=[2, 2], auto_pad="SAME_UPPER")
    assert got.shape == (1, 2, 8, 6)
    # The data covers the first 7 x 5 positions; the rest is only the bias.
    inner = onnxruntime("ConvTranspose", [x, w, b], {"strides": [2, 2]})[0]
    assert_close(got[:, :, :7, :5], inner, **F32_TOL)
    assert_close(got[:, :, 7, :], np.broadcast_to(b[None, :, None], (1, 2, 6)), **F32_TOL)


@pytest.mark.parametrize("attrs", [a for a in CT_ATTRS_2D
                                   if "output_shape" not in a or "auto_pad" in a])
def test_conv_transpose_2d_against_reference(attrs):
    rng = np.random.default_rng(11)
    inputs = _ct_inputs(rng, (1, 3, 4, 5), 2, 1, (3, 2))
    check_kernel(conv_transpose, "ConvTranspose", inputs, attrs, opset=11, **F32_TOL)


@pytest.mark.parametrize("attrs", [{}, {"strides": [2], "pads": [1, 0]},
                                   {"strides": [3], "dilations": [2], "output_padding": [2]},
                                   {"strides": [2], "auto_pad": "SAME_LOWER"}])
@pytest.mark.parametrize("group", [1, 2])
def test_conv_transpose_1d(attrs, group):
    rng = np.random.default_rng(12)
    inputs = _ct_inputs(rng, (2, 4, 6), 3, group, (3,))
    _check_ort(conv_transpose, "ConvTranspose", inputs, {**attrs, "group": group})


@pytest.mark.parametrize("attrs", [{}, {"strides": [2, 1, 2], "pads": [1, 0, 0, 0, 1, 1]},
                                   {"strides": [2, 2, 2], "output_padding": [1, 0, 1]},
                                   {"dilations": [1, 2, 1], "auto_pad": "SAME_UPPER"}])
def test_conv_transpose_3d(attrs):
    rng = np.random.default_rng(13)
    inputs = _ct_inputs(rng, (1, 2, 3, 4, 3), 2, 1, (2, 3, 2))
    check_kernel(conv_transpose, "ConvTranspose", inputs, attrs, opset=22, **F32_TOL)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_conv_transpose_dtypes(dtype):
    rng = np.random.default_rng(14)
    inputs = _ct_inputs(rng, (1, 3, 4, 4), 2, 1, (3, 3), dtype=dtype)
    check_kernel(conv_transpose, "ConvTranspose", inputs, {"strides": [2, 2], "pads": [1] * 4},
                 opset=22, **TOL[dtype])


@pytest.mark.parametrize("opset", [1, 11])
def test_conv_transpose_opsets_no_bias(opset):
    rng = np.random.default_rng(15)
    x, w, _ = _ct_inputs(rng, (1, 2, 3, 3), 3, 1, (3, 3), bias=False)
    check_kernel(conv_transpose, "ConvTranspose", [x, w],
                 {"strides": [2, 2], "kernel_shape": [3, 3]}, opset=opset, **F32_TOL)


def test_conv_transpose_output_shape_with_batch_and_channels():
    # Some exporters write output_shape with N and C; only the spatial part counts.
    rng = np.random.default_rng(16)
    x, w, b = _ct_inputs(rng, (1, 2, 3, 3), 3, 1, (3, 3))
    spatial = conv_transpose(x, w, b, strides=[2, 2], output_shape=[6, 6])
    full = conv_transpose(x, w, b, strides=[2, 2], output_shape=[1, 3, 6, 6])
    assert_close(full, spatial)
    assert_close(spatial, onnxruntime("ConvTranspose", [x, w, b],
                                      {"strides": [2, 2], "output_shape": [6, 6]})[0],
                 **F32_TOL)


def test_conv_transpose_errors():
    x = np.ones((1, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="input channels"):
        conv_transpose(x, np.ones((3, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="divisible"):
        conv_transpose(x, np.ones((4, 2, 3, 3), np.float32), group=3)
    with pytest.raises(ValueError, match="not positive"):
        conv_transpose(x, np.ones((4, 2, 3, 3), np.float32), pads=[3, 3, 3, 3])


# -------------------------------------------------------------------------------- ConvInteger

@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 1, 1, 1]},
                                   {"strides": [2, 1], "dilations": [1, 2], "pads": [0, 1, 1, 0]},
                                   {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
                                   {"group": 2}])
@pytest.mark.parametrize("wtype", [np.uint8, np.int8])
def test_conv_integer(attrs, wtype):
    rng = np.random.default_rng(17)
    x = rng.integers(0, 256, (1, 4, 6, 5)).astype(np.uint8)
    lo, hi = (0, 256) if wtype == np.uint8 else (-128, 128)
    w = rng.integers(lo, hi, (4, 4 // attrs.get("group", 1), 3, 3)).astype(wtype)
    xzp = np.array(rng.integers(0, 256), dtype=np.uint8)
    wzp = np.array(rng.integers(lo, hi), dtype=wtype)
    check_kernel(conv_integer, "ConvInteger", [x, w], attrs, opset=10)
    check_kernel(conv_integer, "ConvInteger", [x, w, xzp, wzp], attrs, opset=10)
    check_kernel(conv_integer, "ConvInteger", [x, w, xzp], attrs, opset=10)


def test_conv_integer_int8_input_against_onnxruntime():
    rng = np.random.default_rng(18)
    x = rng.integers(0, 256, (2, 3, 5, 5)).astype(np.uint8)
    w = rng.integers(0, 256, (4, 3, 2, 2)).astype(np.uint8)
    zp = [np.array(100, np.uint8), np.array(3, np.uint8)]
    expected = onnxruntime("ConvInteger", [x, w, *zp], {"pads": [1, 0, 0, 1]}, opset=10)[0]
    assert_close(conv_integer(x, w, *zp, pads=[1, 0, 0, 1]), expected)
    xs = rng.integers(-128, 128, (1, 2, 4, 4)).astype(np.int8)
    ws = rng.integers(-128, 128, (2, 2, 3, 3)).astype(np.int8)
    check_kernel(conv_integer, "ConvInteger", [xs, ws], {"pads": [1, 1, 1, 1]}, opset=10)


# ------------------------------------------------------------------------------------ Dropout

@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_dropout_inference_versions(dtype):
    rng = np.random.default_rng(19)
    x = rng.standard_normal((3, 4)).astype(dtype)
    x0 = x.copy()
    for opset, fn in ((7, dropout_7), (10, dropout_10), (12, dropout_12), (13, dropout_12)):
        check_kernel(fn, "Dropout", [x], opset=opset)
        got = fn(x, _ctx=_ctx(2))
        expected = reference("Dropout", [x], noutputs=2, opset=opset)
        assert_close(got[0], expected[0])
        # Opset < 10 types the mask like the data (T); from 10 on it is bool. All kept.
        assert got[1].dtype == (x.dtype if opset < 10 else np.bool_)
        assert got[1].shape == x.shape and bool(np.all(got[1] == 1))
        np.testing.assert_array_equal(np.asarray(expected[1], dtype=bool), got[1] == 1)
    np.testing.assert_array_equal(x, x0)


def test_dropout_12_inputs_inference():
    rng = np.random.default_rng(20)
    x = rng.standard_normal((2, 5)).astype(np.float32)
    ratio = np.array(0.3, np.float32)
    off = np.array(False)
    check_kernel(dropout_12, "Dropout", [x, ratio, off], opset=13, _ctx=_ctx(1))
    check_kernel(dropout_12, "Dropout", [x, ratio, off], noutputs=2, opset=13, _ctx=_ctx(2))
    # ratio 0 in training mode keeps everything.
    check_kernel(dropout_12, "Dropout", [x, np.array(0.0, np.float32), np.array(True)],
                 noutputs=2, opset=13, _ctx=_ctx(2))
    np.testing.assert_array_equal(dropout_12(x, ratio), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_dropout_training(dtype):
    rng = np.random.default_rng(21)
    x = (rng.standard_normal((64, 64)) + 3).astype(dtype)
    x0 = x.copy()
    ratio = np.array(0.25, np.float32)
    on = np.array(True)
    y, mask = dropout_12(x, ratio, on, seed=7, _ctx=_ctx(2))
    assert y.dtype == x.dtype and mask.dtype == np.bool_ and mask.shape == x.shape
    kept = mask.mean()
    assert 0.7 < kept < 0.8  # about 1 - ratio of 4096 elements
    expected = np.where(mask, x.astype(np.float64) / 0.75, 0.0)
    np.testing.assert_allclose(y.astype(np.float64), expected, rtol=2e-3)
    # Same seed, same mask; the mask does not depend on _ctx.rng when a seed is given.
    y2, mask2 = dropout_12(x, ratio, on, seed=7, _ctx=_ctx(2, seed=99))
    np.testing.assert_array_equal(mask, mask2)
    np.testing.assert_array_equal(y, y2)
    # Without a seed the context's generator is used.
    _, m_a = dropout_12(x, ratio, on, _ctx=_ctx(2, seed=1))
    _, m_b = dropout_12(x, ratio, on, _ctx=_ctx(2, seed=1))
    _, m_c = dropout_12(x, ratio, on, _ctx=_ctx(2, seed=2))
    np.testing.assert_array_equal(m_a, m_b)
    assert not np.array_equal(m_a, m_c)
    # One output requested: only the data comes back.
    assert isinstance(dropout_12(x, ratio, on, seed=3, _ctx=_ctx(1)), np.ndarray)
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.75])
def test_dropout_seeded_training_matches_reference(dtype, ratio):
    # A seeded node draws the same mask as onnx.reference (and the ONNX backend test data).
    rng = np.random.default_rng(26)
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    inputs = [x, np.array(ratio, np.float32), np.array(True)]
    # (The reference forms 1 / (1 - ratio) in float32, the ratio's type: ~1e-7 apart.)
    for opset in (12, 13, 22):
        check_kernel(dropout_12, "Dropout", inputs, {"seed": 5}, noutputs=2, opset=opset,
                     _ctx=_ctx(2), rtol=1e-6, atol=1e-7)
        check_kernel(dropout_12, "Dropout", inputs, {"seed": 5}, opset=opset, _ctx=_ctx(1),
                     rtol=1e-6, atol=1e-7)


def test_dropout_omitted_mask_output():
    x = np.ones((2, 3), np.float32)
    ctx = KernelContext(node=None, noutputs=2, opset=13, output_present=[True, False])
    got = dropout_12(x, np.array(0.5, np.float32), np.array(True), seed=1, _ctx=ctx)
    assert isinstance(got, np.ndarray) and got.shape == x.shape


def test_dropout_bad_ratio():
    x = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="ratio"):
        dropout_12(x, np.array(1.5, np.float32), np.array(True))

