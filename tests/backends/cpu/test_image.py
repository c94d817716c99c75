"""Image kernels against onnx.reference and ONNX Runtime.

onnx.reference is the oracle for Resize-11+, GridSample, AffineGrid, RoiAlign-16+, Col2Im,
DeformConv and NonMaxSuppression. It has no implementation of the pre-11 Resize/Upsample
semantics (asymmetric coordinates, ONNX Runtime's "round up when downsampling" nearest) or of
RoiAlign-10 and MaxRoiPool, so those are checked against ONNX Runtime. ImageDecoder is checked
on images we encode ourselves (round trip) and on the images shipped with the ONNX backend
tests, whose expected pixels were decoded by Pillow.
"""

from __future__ import annotations

import itertools
import struct
import time
import warnings
import zlib

import ml_dtypes
import numpy as np
import pytest
from oracle import assert_close, check_kernel, onnxruntime, reference

from pyflame_rt.backends.cpu.image import (
    affine_grid,
    col2im,
    deform_conv,
    grid_sample,
    image_decoder,
    max_roi_pool,
    non_max_suppression,
    resize,
    resize_10,
    roi_align_10,
    roi_align_16,
    upsample_7,
    upsample_9,
)
from pyflame_rt.errors import NotImplementedFeatureError
from pyflame_rt.ops import lookup

RNG = np.random.default_rng(1234)
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def test_registered_versions():
    assert lookup("Resize", opset=10).fn is resize_10
    for opset in (11, 13, 18, 19, 21):
        assert lookup("Resize", opset=opset).fn is resize
    assert lookup("Upsample", opset=7).fn is upsample_7
    assert lookup("Upsample", opset=9).fn is upsample_9
    assert lookup("Upsample", opset=10).fn is upsample_9
    for opset in (16, 20, 22):
        assert lookup("GridSample", opset=opset).fn is grid_sample
    assert lookup("RoiAlign", opset=10).fn is roi_align_10
    assert lookup("RoiAlign", opset=16).fn is roi_align_16
    assert lookup("RoiAlign", opset=22).fn is roi_align_16
    assert lookup("NonMaxSuppression", opset=10).fn is non_max_suppression
    assert lookup("NonMaxSuppression", opset=11).fn is non_max_suppression
    assert lookup("DeformConv", opset=22).fn is deform_conv
    assert lookup("MaxRoiPool", opset=22).fn is max_roi_pool
    assert lookup("Col2Im", opset=18).fn is col2im
    assert lookup("AffineGrid", opset=20).fn is affine_grid
    assert lookup("ImageDecoder", opset=20).fn is image_decoder


# ---------------------------------------------------------------------------------- Resize

COORD_MODES = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
               "asymmetric"]
SCALES = [[1, 1, 2.0, 3.0], [1, 1, 0.6, 0.8], [1, 1, 1.7, 0.45], [1, 1, 1.0, 2.5]]


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("coord", COORD_MODES)
@pytest.mark.parametrize("scales", SCALES)
def test_resize_scales_modes(mode, coord, scales):
    # Width 8: widths 7 and 9 put a half_pixel_symmetric source coordinate one ulp above an
    # integer at these scales, where onnx.reference picks the wrong neighbours (see below).
    x = _rand(2, 3, 5, 8)
    s = np.array(scales, dtype=np.float32)
    check_kernel(resize, "Resize", [x, None, s],
                 {"mode": mode, "coordinate_transformation_mode": coord}, opset=19, **TOL)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_resize_ramp_is_reproduced_at_float_noise_coordinates(mode):
    # half_pixel_symmetric, width 7, scale 0.8 maps output 2 to 3.0000000000000004. The
    # interpolant of a linear ramp is the ramp itself, so the answer is 3; onnx.reference
    # returns 2 here (its neighbour search rounds the coordinate, its weights do not) and
    # ONNX Runtime returns 3.
    ramp = np.arange(7, dtype=np.float32).reshape(1, 1, 1, 7)
    s = np.array([1, 1, 1, 0.8], dtype=np.float32)
    got = resize(ramp, None, s, mode=mode, coordinate_transformation_mode="half_pixel_symmetric")
    assert got.shape == (1, 1, 1, 5)
    assert got[0, 0, 0, 2] == pytest.approx(3.0, abs=1e-6)
    expected = onnxruntime("Resize", [ramp, None, s],
                           {"mode": mode, "coordinate_transformation_mode":
                            "half_pixel_symmetric"}, opset=19)[0]
    assert_close(got, expected, **TOL)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("coord", COORD_MODES)
@pytest.mark.parametrize("sizes", [[2, 3, 9, 4], [2, 3, 1, 1], [2, 3, 3, 13]])
def test_resize_sizes_modes(mode, coord, sizes):
    x = _rand(2, 3, 5, 7)
    check_kernel(resize, "Resize", [x, None, None, np.array(sizes, dtype=np.int64)],
                 {"mode": mode, "coordinate_transformation_mode": coord}, opset=19, **TOL)


NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
@pytest.mark.parametrize("coord", COORD_MODES)
def test_resize_nearest_modes(nearest_mode, coord):
    x = _rand(1, 2, 4, 6)
    for sizes in ([1, 2, 8, 9], [1, 2, 3, 4], [1, 2, 7, 12]):
        check_kernel(resize, "Resize", [x, None, None, np.array(sizes, dtype=np.int64)],
                     {"mode": "nearest", "nearest_mode": nearest_mode,
                      "coordinate_transformation_mode": coord}, opset=13, **TOL)


@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
def test_resize_tf_half_pixel_for_nn(nearest_mode):
    # Resize-11/13 only; onnx.reference does not implement this mode, ONNX Runtime does.
    x = _rand(1, 2, 4, 6)
    for sizes in ([1, 2, 8, 9], [1, 2, 3, 4], [1, 2, 7, 12]):
        inputs = [x, None, None, np.array(sizes, dtype=np.int64)]
        attrs = {"mode": "nearest", "nearest_mode": nearest_mode,
                 "coordinate_transformation_mode": "tf_half_pixel_for_nn"}
        expected = onnxruntime("Resize", inputs, attrs, opset=13)[0]
        assert_close(resize(*inputs, **attrs), expected, **TOL)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("scales", [[1, 1, 0.6, 0.6], [1, 1, 0.25, 0.3], [1, 1, 2.0, 0.5]])
def test_resize_antialias(mode, scales):
    x = _rand(1, 2, 12, 10)
    check_kernel(resize, "Resize", [x, None, np.array(scales, dtype=np.float32)],
                 {"mode": mode, "antialias": 1}, opset=18, **TOL)


@pytest.mark.parametrize("a", [-0.5, -0.75])
@pytest.mark.parametrize("exclude", [0, 1])
@pytest.mark.parametrize("scales", [[1, 1, 2.0, 2.0], [1, 1, 0.8, 0.7]])
def test_resize_cubic_coeff_and_exclude_outside(a, exclude, scales):
    x = _rand(1, 1, 6, 5)
    check_kernel(resize, "Resize", [x, None, np.array(scales, dtype=np.float32)],
                 {"mode": "cubic", "cubic_coeff_a": a, "exclude_outside": exclude}, opset=13,
                 **TOL)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("extrapolation", [0.0, 10.0])
def test_resize_tf_crop_and_resize(mode, extrapolation):
    x = _rand(1, 2, 6, 6)
    roi = np.array([0, 0, 0.2, -0.3, 1, 1, 0.9, 1.4], dtype=np.float32)
    check_kernel(resize, "Resize", [x, roi, None, np.array([1, 2, 4, 5], dtype=np.int64)],
                 {"mode": mode, "coordinate_transformation_mode": "tf_crop_and_resize",
                  "extrapolation_value": extrapolation}, opset=19, **TOL)


@pytest.mark.parametrize("axes", [[2, 3], [3, 2], [3], [1, 3]])
@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_resize_axes_and_aspect_policy(axes, policy):
    x = _rand(2, 3, 4, 6)
    sizes = np.array([7, 5][: len(axes)], dtype=np.int64)
    check_kernel(resize, "Resize", [x, None, None, sizes],
                 {"mode": "linear", "axes": axes, "keep_aspect_ratio_policy": policy}, opset=18,
                 **TOL)
    scales = np.array([1.5, 0.5][: len(axes)], dtype=np.float32)
    check_kernel(resize, "Resize", [x, None, scales], {"mode": "nearest", "axes": axes},
                 opset=18, **TOL)
    # Negative axes count from the back (onnx.reference does not accept them).
    negative = [a - 4 for a in axes]
    assert_close(resize(x, None, None, sizes, mode="linear", axes=negative,
                        keep_aspect_ratio_policy=policy),
                 resize(x, None, None, sizes, mode="linear", axes=axes,
                        keep_aspect_ratio_policy=policy))


def test_resize_crop_with_axes():
    x = _rand(1, 1, 5, 5)
    roi = np.array([0.6, 0.4, 0.8, 0.6], dtype=np.float32)
    check_kernel(resize, "Resize", [x, roi, None, np.array([3, 3], dtype=np.int64)],
                 {"mode": "linear", "axes": [3, 2],
                  "coordinate_transformation_mode": "tf_crop_and_resize"}, opset=18, **TOL)


@pytest.mark.parametrize("shape,scales", [((7,), [2.5]), ((3, 4, 5), [1.0, 0.5, 1.5]),
                                          ((1, 2, 3, 4, 5), [1, 1, 2.0, 0.7, 1.3])])
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_other_ranks(shape, scales, mode):
    x = _rand(*shape)
    check_kernel(resize, "Resize", [x, None, np.array(scales, dtype=np.float32)],
                 {"mode": mode}, opset=19, **TOL)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.int64, np.uint16,
                                   np.float16, np.float64])
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_dtypes(dtype, mode):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        lo, hi = max(int(info.min), -100), min(int(info.max), 250)
        x = RNG.integers(lo, hi, size=(1, 2, 5, 6)).astype(dtype)
    else:
        x = _rand(1, 2, 5, 6, dtype=dtype)
    tol = {"rtol": 2e-3, "atol": 2e-3} if dtype == np.float16 else TOL
    check_kernel(resize, "Resize", [x, None, np.array([1, 1, 1.6, 0.7], dtype=np.float32)],
                 {"mode": mode}, opset=19, **tol)


def test_resize_bfloat16_and_strings():
    x = _rand(1, 1, 3, 4)
    s = np.array([1, 1, 2.0, 1.5], dtype=np.float32)
    got = resize(x.astype(ml_dtypes.bfloat16), None, s, mode="linear")
    expected = reference("Resize", [x, None, s], {"mode": "linear"}, opset=19)[0]
    assert got.dtype == ml_dtypes.bfloat16
    assert_close(got.astype(np.float32), expected, rtol=1e-2, atol=1e-2)
    words = np.array([["a", "b"], ["c", "d"]], dtype=object)
    out = resize(words, None, np.array([2.0, 1.0], dtype=np.float32), mode="nearest")
    assert out.tolist() == [["a", "b"], ["a", "b"], ["c", "d"], ["c", "d"]]


def test_resize_11_requires_roi_input_slot():
    x = _rand(1, 1, 3, 3)
    empty = np.zeros((0,), dtype=np.float32)
    check_kernel(resize, "Resize", [x, empty, np.array([1, 1, 2, 2], dtype=np.float32)],
                 {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, opset=11,
                 **TOL)


def test_resize_errors():
    x = _rand(1, 1, 3, 3)
    with pytest.raises(ValueError, match="either 'scales' or 'sizes'"):
        resize(x, None, None, None)
    with pytest.raises(ValueError, match="only one"):
        resize(x, None, np.ones(4, np.float32), np.ones(4, np.int64))
    with pytest.raises(ValueError, match="has 2 values"):
        resize(x, None, np.ones(2, np.float32))
    with pytest.raises(ValueError, match="coordinate_transformation_mode"):
        resize(x, None, np.ones(4, np.float32) * 2, coordinate_transformation_mode="bogus")
    with pytest.raises(ValueError, match="positive"):
        resize(x, None, np.array([1, 1, 0, 1], np.float32))


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 3], [1, 1, 0.5, 0.6], [1, 1, 1.7, 0.8],
                                    [1, 1, 1.5, 2.5]])
def test_resize_10_against_onnxruntime(mode, scales):
    x = _rand(1, 2, 5, 7)
    s = np.array(scales, dtype=np.float32)
    expected = onnxruntime("Resize", [x, s], {"mode": mode}, opset=10)[0]
    assert_close(resize_10(x, s, mode=mode), expected, **TOL)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.5, 2.5]])
def test_upsample_against_onnxruntime(mode, scales):
    x = _rand(1, 2, 5, 7)
    s = np.array(scales, dtype=np.float32)
    expected = onnxruntime("Upsample", [x, s], {"mode": mode}, opset=9)[0]
    assert_close(upsample_9(x, s, mode=mode), expected, **TOL)
    expected7 = onnxruntime("Upsample", [x], {"mode": mode, "scales": scales}, opset=7)[0]
    assert_close(upsample_7(x, mode=mode, scales=scales), expected7, **TOL)
    with pytest.raises(ValueError, match="at least 1"):
        upsample_9(x, np.array([1, 1, 0.5, 1], np.float32))


def test_resize_is_vectorized():
    # A segmentation-head upsample: 21 classes, 64x64 -> 512x512, bilinear.
    x = _rand(1, 21, 64, 64)
    start = time.perf_counter()
    y = resize(x, None, None, np.array([1, 21, 512, 512], np.int64), mode="linear")
    elapsed = time.perf_counter() - start
    assert y.shape == (1, 21, 512, 512)
    # Cheap spot-check against the reference on a corner of the same geometry.
    small = resize(x[:, :2, :8, :8], None, None, np.array([1, 2, 64, 64], np.int64),
                   mode="linear")
    assert_close(small, reference("Resize", [x[:, :2, :8, :8], None, None,
                                             np.array([1, 2, 64, 64], np.int64)],
                                  {"mode": "linear"}, opset=19)[0], **TOL)
    assert elapsed < 5.0, f"bilinear 64->512 resize took {elapsed:.2f} s"


# ------------------------------------------------------------------------------ GridSample


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample_2d(mode, padding, align):
    x = _rand(2, 2, 4, 5)
    grid = RNG.uniform(-1.6, 1.6, size=(2, 3, 4, 2)).astype(np.float32)
    grid[0, 0, 0] = [-1.0, 1.0]
    grid[0, 0, 1] = [0.25, -0.5]  # lands exactly between pixels
    check_kernel(grid_sample, "GridSample", [x, grid],
                 {"mode": mode, "padding_mode": padding, "align_corners": align}, opset=20,
                 **TOL)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample_3d(mode, padding, align):
    x = _rand(1, 2, 3, 4, 3)
    grid = RNG.uniform(-1.4, 1.4, size=(1, 2, 2, 3, 3)).astype(np.float32)
    check_kernel(grid_sample, "GridSample", [x, grid],
                 {"mode": mode, "padding_mode": padding, "align_corners": align}, opset=22,
                 **TOL)


def test_grid_sample_1d_and_16_names():
    x = _rand(1, 2, 6)
    grid = RNG.uniform(-1.2, 1.2, size=(1, 5, 1)).astype(np.float32)
    check_kernel(grid_sample, "GridSample", [x, grid], {"mode": "cubic"}, opset=20, **TOL)
    x4 = _rand(1, 1, 3, 3)
    g4 = RNG.uniform(-1, 1, size=(1, 2, 2, 2)).astype(np.float32)
    assert_close(grid_sample(x4, g4, mode="bilinear"), grid_sample(x4, g4, mode="linear"))
    assert_close(grid_sample(x4, g4, mode="bicubic"), grid_sample(x4, g4, mode="cubic"))
    expected = onnxruntime("GridSample", [x4, g4], {"mode": "bicubic"}, opset=16)[0]
    assert_close(grid_sample(x4, g4, mode="bicubic"), expected, **TOL)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_grid_sample_float_dtypes(dtype):
    x = _rand(1, 2, 4, 4).astype(dtype)
    grid = RNG.uniform(-1, 1, size=(1, 3, 3, 2)).astype(np.float32)
    tol = {"rtol": 2e-3, "atol": 2e-3} if dtype == np.float16 else TOL
    check_kernel(grid_sample, "GridSample", [x, grid], {"mode": "linear"}, opset=20, **tol)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.int64])
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_grid_sample_integer_dtypes(dtype, mode):
    # The spec: interpolate in floating point, cast to the integer type at the end (ONNX Cast
    # truncates). onnx.reference interpolates with integer weights, so the oracle here is the
    # float64 result of the same sampling (itself checked against the reference above).
    x = RNG.integers(0, 100, size=(1, 2, 4, 4))
    grid = RNG.uniform(-1.2, 1.2, size=(1, 3, 3, 2)).astype(np.float32)
    expected = reference("GridSample", [x.astype(np.float64), grid], {"mode": mode},
                         opset=20)[0].astype(dtype)
    assert_close(grid_sample(x.astype(dtype), grid, mode=mode), expected)


def test_grid_sample_errors():
    with pytest.raises(ValueError, match="grid of shape"):
        grid_sample(_rand(1, 1, 3, 3), _rand(1, 2, 2, 3))
    with pytest.raises(ValueError, match="padding_mode"):
        grid_sample(_rand(1, 1, 3, 3), _rand(1, 2, 2, 2), padding_mode="wrap")


# onnx.reference divides by zero for a length-1 axis with align_corners=1 (and still gives -1).
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.parametrize("align", [0, 1])
@pytest.mark.parametrize("size", [[2, 3, 4, 5], [2, 1, 3, 4, 2], [1, 1, 1, 3]])
def test_affine_grid(align, size):
    r = len(size) - 2
    theta = _rand(size[0], r, r + 1)
    check_kernel(affine_grid, "AffineGrid", [theta, np.array(size, np.int64)],
                 {"align_corners": align}, opset=20, **TOL)


def test_affine_grid_double_and_errors():
    theta = _rand(1, 2, 3, dtype=np.float64)
    size = np.array([1, 1, 3, 4], np.int64)
    got = affine_grid(theta, size, align_corners=1)
    assert got.dtype == np.float64
    expected = onnxruntime("AffineGrid", [theta, size], {"align_corners": 1}, opset=20)[0]
    assert_close(got, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="theta must have shape"):
        affine_grid(_rand(1, 3, 4), size)


# ------------------------------------------------------------------------ RoiAlign & pools

ROIS = np.array([[0, 0, 5, 5], [1.3, 2.2, 8.7, 9.1], [-2, -1, 13, 11], [3, 3, 3.2, 3.1],
                 [9, 7, 14, 12]], dtype=np.float32)
BATCH = np.array([0, 1, 1, 0, 1], dtype=np.int64)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("ratio", [0, 1, 2])
@pytest.mark.parametrize("ctm", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("scale", [1.0, 0.8])
def test_roi_align(mode, ratio, ctm, scale):
    x = _rand(2, 3, 10, 12)
    attrs = {"mode": mode, "output_height": 3, "output_width": 4, "sampling_ratio": ratio,
             "spatial_scale": scale, "coordinate_transformation_mode": ctm}
    check_kernel(roi_align_16, "RoiAlign", [x, ROIS, BATCH], attrs, opset=22, **TOL)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("ratio", [0, 2])
def test_roi_align_10_against_onnxruntime(mode, ratio):
    x = _rand(2, 3, 10, 12)
    attrs = {"mode": mode, "output_height": 2, "output_width": 3, "sampling_ratio": ratio,
             "spatial_scale": 0.8}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = onnxruntime("RoiAlign", [x, ROIS, BATCH], attrs, opset=10)[0]
    assert_close(roi_align_10(x, ROIS, BATCH, **attrs), expected, **TOL)


def test_roi_align_dtypes_and_chunks(monkeypatch):
    from pyflame_rt.backends.cpu import image

    x = _rand(2, 3, 10, 12, dtype=np.float64)
    attrs = {"output_height": 2, "output_width": 2, "sampling_ratio": 0}
    expected = reference("RoiAlign", [x, ROIS.astype(np.float64), BATCH], attrs, opset=22)[0]
    # A tiny chunk size forces one vectorized chunk per ROI.
    monkeypatch.setattr(image, "_ROI_CHUNK_ELEMS", 1)
    assert_close(roi_align_16(x, ROIS.astype(np.float64), BATCH, **attrs), expected, **TOL)
    x16 = x.astype(np.float16)
    got = roi_align_16(x16, ROIS.astype(np.float16), BATCH, **attrs)
    assert got.dtype == np.float16
    assert_close(got.astype(np.float64), expected, rtol=1e-2, atol=1e-2)
    empty = roi_align_16(x, np.zeros((0, 4)), np.zeros((0,), np.int64), **attrs)
    assert empty.shape == (0, 3, 2, 2)
    with pytest.raises(ValueError, match="batch_indices"):
        roi_align_16(x, ROIS, np.array([0, 1, 5, 0, 0]), **attrs)


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.8])
@pytest.mark.parametrize("pooled", [[2, 3], [1, 1], [4, 4]])
def test_max_roi_pool_against_onnxruntime(scale, pooled):
    x = _rand(2, 3, 10, 12)
    rois = np.array([[0, 0, 0, 5, 5], [1, 1.3, 2.2, 8.7, 9.1], [1, -2, -1, 13, 11],
                     [0, 3, 3, 3.2, 3.1], [0, 2.5, 1.5, 6.5, 7.4], [1, 20, 20, 30, 30]],
                    dtype=np.float32)
    attrs = {"pooled_shape": pooled, "spatial_scale": scale}
    expected = onnxruntime("MaxRoiPool", [x, rois], attrs, opset=16)[0]
    assert_close(max_roi_pool(x, rois, **attrs), expected, **TOL)


# ----------------------------------------------------------------------- NonMaxSuppression


def _random_boxes(b, n, center):
    xy = RNG.uniform(0, 10, size=(b, n, 2))
    wh = RNG.uniform(0.5, 4, size=(b, n, 2))
    if center:
        return np.concatenate([xy, wh], axis=2).astype(np.float32)
    # Corner form [y1, x1, y2, x2], corners in random order.
    a, c = xy, xy + wh
    flip = RNG.random((b, n, 1)) < 0.5
    return np.concatenate([np.where(flip, c, a), np.where(flip, a, c)], axis=2)[..., [1, 0, 3, 2]] \
        .astype(np.float32)


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("limit,iou,score", [(3, 0.5, None), (10, 0.3, 0.2), (100, 0.0, None),
                                             (2, 0.7, 0.9), (0, 0.5, None)])
def test_non_max_suppression(center, limit, iou, score):
    boxes = _random_boxes(2, 12, center)
    scores = RNG.random((2, 3, 12)).astype(np.float32)
    scores[0, 0, 3] = scores[0, 0, 5]  # a tie: the lower box index goes first
    inputs = [boxes, scores, np.array([limit], np.int64), np.array([iou], np.float32)]
    if score is not None:
        inputs.append(np.array([score], np.float32))
    check_kernel(non_max_suppression, "NonMaxSuppression", inputs,
                 {"center_point_box": center}, opset=11)


def test_non_max_suppression_optional_inputs():
    boxes = _random_boxes(1, 6, 0)
    scores = RNG.random((1, 1, 6)).astype(np.float32)
    # No max_output_boxes_per_class: zero boxes per class.
    assert non_max_suppression(boxes, scores).shape == (0, 3)
    got = non_max_suppression(boxes, scores, np.array([6], np.int64))
    expected = onnxruntime("NonMaxSuppression", [boxes, scores, np.array([6], np.int64)],
                           opset=11)[0]
    assert_close(got, expected)
    # Identical boxes: only the best survives.
    same = np.tile(np.array([[[0, 0, 1, 1]]], np.float32), (1, 4, 1))
    sel = non_max_suppression(same, np.array([[[0.1, 0.9, 0.5, 0.9]]], np.float32),
                              np.array([4], np.int64), np.array([0.5], np.float32))
    assert sel.tolist() == [[0, 0, 1]]


# ---------------------------------------------------------------------------------- Col2Im


@pytest.mark.parametrize("image,block,attrs", [
    ([5, 5], [2, 2], {}),
    ([5, 5], [1, 5], {}),
    ([6, 7], [2, 3], {"strides": [2, 1], "pads": [1, 0, 1, 2], "dilations": [1, 2]}),
    ([4, 5, 3], [2, 2, 2], {"pads": [0, 1, 0, 1, 0, 1]}),
    ([9], [3], {"strides": [2], "dilations": [2]}),
])
def test_col2im(image, block, attrs):
    r = len(image)
    st = attrs.get("strides", [1] * r)
    pd = attrs.get("pads", [0] * 2 * r)
    dl = attrs.get("dilations", [1] * r)
    counts = [(image[d] + pd[d] + pd[r + d] - dl[d] * (block[d] - 1) - 1) // st[d] + 1
              for d in range(r)]
    x = _rand(2, 3 * int(np.prod(block)), int(np.prod(counts)))
    check_kernel(col2im, "Col2Im", [x, np.array(image, np.int64), np.array(block, np.int64)],
                 attrs, opset=18, **TOL)


def test_col2im_int_and_errors():
    x = RNG.integers(-5, 5, size=(1, 4, 16)).astype(np.int32)
    check_kernel(col2im, "Col2Im", [x, np.array([5, 5], np.int64), np.array([2, 2], np.int64)],
                 opset=18)
    with pytest.raises(ValueError, match="blocks"):
        col2im(x, np.array([6, 6]), np.array([2, 2]))


# ------------------------------------------------------------------------------ DeformConv


@pytest.mark.parametrize("attrs,with_mask,with_bias", [
    ({}, False, False),
    ({"pads": [1, 1, 1, 1]}, True, True),
    ({"strides": [2, 1], "dilations": [1, 2], "pads": [0, 1, 1, 0]}, True, False),
    ({"group": 2, "offset_group": 2}, True, True),
])
def test_deform_conv(attrs, with_mask, with_bias):
    group, og = attrs.get("group", 1), attrs.get("offset_group", 1)
    x = _rand(1, 4, 4, 5)
    w = _rand(4, 4 // group, 2, 2)
    st, dl = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    pd = attrs.get("pads", [0, 0, 0, 0])
    oh = (4 + pd[0] + pd[2] - dl[0] - 1) // st[0] + 1
    ow = (5 + pd[1] + pd[3] - dl[1] - 1) // st[1] + 1
    offset = RNG.uniform(-1.5, 1.5, size=(1, og * 4 * 2, oh, ow)).astype(np.float32)
    b = _rand(4) if with_bias else None
    mask = RNG.random((1, og * 4, oh, ow)).astype(np.float32) if with_mask else None
    check_kernel(deform_conv, "DeformConv", [x, w, offset, b, mask], attrs, opset=22,
                 rtol=1e-4, atol=1e-5)


def test_deform_conv_zero_offset_is_conv():
    x = _rand(2, 3, 6, 6)
    w = _rand(5, 3, 3, 3)
    offset = np.zeros((2, 18, 4, 4), np.float32)
    expected = reference("Conv", [x, w], {}, opset=21)[0]
    assert_close(deform_conv(x, w, offset), expected, rtol=1e-4, atol=1e-5)
    # 1-D and 3-D deformable convolution reduce to Conv the same way.
    x1, w1 = _rand(1, 2, 7), _rand(3, 2, 3)
    assert_close(deform_conv(x1, w1, np.zeros((1, 3, 5), np.float32)),
                 reference("Conv", [x1, w1], {}, opset=21)[0], rtol=1e-4, atol=1e-5)
    x3, w3 = _rand(1, 2, 4, 4, 4), _rand(2, 2, 2, 2, 2)
    assert_close(deform_conv(x3, w3, np.zeros((1, 24, 3, 3, 3), np.float32)),
                 reference("Conv", [x3, w3], {}, opset=21)[0], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- ImageDecoder


def _png(pixels: np.ndarray, color: int, filters: list[int]) -> bytes:
    """A minimal PNG encoder (8-bit) applying the given filter type to each row."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).astype(np.int32)
    bpp = pixels.shape[2] if pixels.ndim == 3 else 1
    out = bytearray()
    for y in range(h):
        f = filters[y % len(filters)]
        cur = rows[y]
        prev = rows[y - 1] if y else np.zeros_like(cur)
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        if f == 0:
            pred = np.zeros_like(cur)
        elif f == 1:
            pred = left
        elif f == 2:
            pred = prev
        elif f == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - prev), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        out.append(f)
        out += ((cur - pred) % 256).astype(np.uint8).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + \
            struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + \
        chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b"")


def _stream(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, rounded, as Pillow converts RGB to L."""
    v = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.floor(v + 0.5).astype(np.uint8)[..., None]


@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4]])
def test_image_decoder_png_round_trip(filters):
    rgb = RNG.integers(0, 256, size=(7, 9, 3)).astype(np.uint8)
    data = _stream(_png(rgb, 2, filters))
    np.testing.assert_array_equal(image_decoder(data), rgb)
    np.testing.assert_array_equal(image_decoder(data, pixel_format="BGR"), rgb[..., ::-1])
    gray = image_decoder(data, pixel_format="Grayscale")
    assert gray.shape == (7, 9, 1)
    assert np.abs(gray.astype(int) - _luma(rgb).astype(int)).max() <= 1
    rgba = np.concatenate([rgb, RNG.integers(0, 256, size=(7, 9, 1)).astype(np.uint8)], axis=2)
    np.testing.assert_array_equal(image_decoder(_stream(_png(rgba, 6, filters))), rgb)
    g = rgb[..., 0]
    np.testing.assert_array_equal(image_decoder(_stream(_png(g, 0, filters)),
                                                pixel_format="Grayscale")[..., 0], g)


def test_image_decoder_bmp_pnm_tiff_round_trip():
    rgb = RNG.integers(0, 256, size=(5, 6, 3)).astype(np.uint8)
    h, w = rgb.shape[:2]
    stride = (w * 3 + 3) // 4 * 4
    rows = np.zeros((h, stride), np.uint8)
    rows[:, : w * 3] = rgb[::-1, :, ::-1].reshape(h, -1)  # bottom-up BGR
    bmp = b"BM" + struct.pack("<IHHI", 54 + rows.size, 0, 0, 54) + \
        struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, rows.size, 0, 0, 0, 0) + rows.tobytes()
    np.testing.assert_array_equal(image_decoder(_stream(bmp)), rgb)
    ppm = f"P6\n# comment\n{w} {h}\n255\n".encode() + rgb.tobytes()
    np.testing.assert_array_equal(image_decoder(_stream(ppm)), rgb)
    pgm = f"P2 {w} {h} 255\n".encode() + " ".join(map(str, rgb[..., 1].ravel())).encode()
    np.testing.assert_array_equal(image_decoder(_stream(pgm), pixel_format="Grayscale")[..., 0],
                                  rgb[..., 1])
    body = rgb.tobytes()
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 8), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(body))]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", t, typ, n, v) if typ == 4 else struct.pack("<HHIHH", t, typ, n, v, 0)
        for t, typ, n, v in entries) + struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", 8 + len(body)) + body + ifd
    np.testing.assert_array_equal(image_decoder(_stream(tiff)), rgb)


def _backend_image(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(encoded stream, Pillow-decoded pixels) of one ONNX backend-test image."""
    from onnx.backend.test.case.node import _image_decoder_data as frozen

    item = getattr(frozen, f"image_decoder_decode_{name}")
    return np.asarray(item.data, dtype=np.uint8), np.asarray(item.output)


# Small JPEGs written by Pillow 13.0 (libjpeg-turbo 3) with the sha256 of the pixels Pillow
# decodes from them (RGB, and its L conversion): an independent decoder as the oracle.
JPEG_FIXTURES = {
    "jpeg_420_odd_size": (
        ("/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIs"
        "IxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIy"
        "MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjL/wAARCAANABUDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
        "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
        "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
        "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
        "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
        "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
        "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
        "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDp9XntrXSFQYLbenHFeU7bm91Ytv8A3eecDj/Pv7VtXepzXl0Y"
        "3yAWxgHgc9cfjW7pel2whjl2DfuIJx9P8aiDeAxXst4seBn7aDwtZXsbOj28Uenosjop9JAc5/A0Vzmr6zPZXQhR"
        "QVUY5+lFdtTLKUpOS6nDLCV6bcIvRf13P//Z"),
        (13, 21, 3),
        "6359f1a44336dba564b6ca557ce590345aca99112d9bd0d74548181bb68aa881",
        "5ccc6019591dbabac715f634d5e1b36d8b0853161523f96ded100bee0dc59a80"),
    "jpeg_422_restart": (
        ("/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoHBwYIDAoMDAsKCwsNDhIQDQ4R"
        "DgsLEBYQERMUFRUVDA8XGBYUGBIUFRT/2wBDAQMEBAUEBQkFBQkUDQsNFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU"
        "FBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBT/wAARCAAQABgDASEAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
        "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
        "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
        "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
        "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
        "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
        "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
        "5ebn6Onq8vP09fb3+Pn6/90ABAAB/9oADAMBAAIRAxEAPwD2z4h6pYaB4EaGFI4n8ssBIB83IBOSM+oxkYPf1+Hl"
        "TU/EHi6J0+7NcFEJbMYHzbRkHtyO46gCuThbEfVMXWy2q9JN+X9f8Od2Wy/tvh+WHk/fj132vt5/p2Z//9D2T4Xa"
        "fa+FfCmZJEnZYxsgdQMOT8q42nB6D0Pr3BXw+fZdLCY+dOztvo5ddb6Nb/icnDmarDYWWHqScXFtbX/r+mf/0fNr"
        "74m6n428UyWULGWN5P3qDOw8n/WZHXsAOxwOle/+CPg/BpejC9nhjmUIsiebtxuJPqScEknj0Nc3EtNZXmdLHUV8"
        "Vtf6f9Kzv1OXhyo8uzergKjtGTt+i/roj//S534sfF+bRb2XS7O4VIYfmVEB2KccdeuDgYz/ABdu5X22My+nmSp4"
        "iLV3FX9d+zPleI8rngMfOEYq0tb97+lux//Z"),
        (16, 24, 3),
        "1cd00ea5b28c3cb80831e29d4dcfe544d4f2a72683f28f1f466764c97860bd68",
        "39aa993323292f63b9a884396503fcff2f676e18a237ddc2266f8f521334836e"),
    "jpeg_444_optimized": (
        ("/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAA0JCgsKCA0LCgsODg0PEyAVExISEyccHhcgLikxMC4pLSwzOko+MzZG"
        "NywtQFdBRkxOUlNSMj5aYVpQYEpRUk//2wBDAQ4ODhMREyYVFSZPNS01T09PT09PT09PT09PT09PT09PT09PT09P"
        "T09PT09PT09PT09PT09PT09PT09PT09PT0//wAARCAAJAAsDAREAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAA"
        "BQb/xAAiEAABAwMDBQAAAAAAAAAAAAABAAIDBCEzBRETMXGBgrH/xAAXAQADAQAAAAAAAAAAAAAAAAABBAUG/8QA"
        "IREAAgEDAwUAAAAAAAAAAAAAAAECAwQREyEyIjEzgcH/2gAMAwEAAhEDEQA/AGq2WOCkLGnZ3mxSMk6UsoFncY6W"
        "Qs9Q7nfdwv0CoxuU1kqaaluVGoY/Qpe/4kCl5H6+A8GIdz9Sq7I0FLgj/9k="),
        (9, 11, 3),
        "85f6ddf4bd2adab5c04d45367df2425eec6dee0029ebe6493b7596cdcd2eabde",
        "f8c17f99d4c6fd9c07fbd9206a1d912f9d318ae96701cd4579fc791a7d57eee6"),
    "jpeg_gray": (
        ("/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAUDBAQEAwUEBAQFBQUGBwwIBwcHBw8LCwkMEQ8SEhEPERETFhwXExQa"
        "FRERGCEYGh0dHx8fExciJCIeJBweHx7/wAALCAAKABMBAREA/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcI"
        "CQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcY"
        "GRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKj"
        "pKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/9oACAEBAAA/APQP"
        "FV7YadoPlQyQosikAY5J4HBx3zz0r52mgv8AUfEqxsFkiB+6GGeTkZz9evXge1e86FpFqmkWyvFHuCDPz/4Vx/jV"
        "2a6CsxZWgYkE8E4FY3g5E/0mXYvmAAhscg7k716ZYkm2XJPVv5mv/9k="),
        (10, 19, 3),
        "0e484433c6edb330640f95dd1f9ef84ffb55d252be8e793fec635b97bbab20b0",
        "a2345fc4281359192c226a84ad68e51b837b63b3cbb0ca68fdec331def0ddca7"),
}


@pytest.mark.parametrize("name", sorted(JPEG_FIXTURES))
def test_image_decoder_jpeg_variants(name):
    import base64
    import hashlib

    b64, shape, rgb_sha, gray_sha = JPEG_FIXTURES[name]
    data = _stream(base64.b64decode(b64))
    rgb = image_decoder(data)
    assert rgb.shape == shape and rgb.dtype == np.uint8
    assert hashlib.sha256(rgb.tobytes()).hexdigest() == rgb_sha
    gray = image_decoder(data, pixel_format="Grayscale")
    assert gray.shape == (*shape[:2], 1)
    assert hashlib.sha256(gray.tobytes()).hexdigest() == gray_sha
    np.testing.assert_array_equal(image_decoder(data, pixel_format="BGR"), rgb[..., ::-1])


@pytest.mark.parametrize("name", ["bmp_rgb", "png_rgb", "pnm_rgb", "tiff_rgb", "jpeg_rgb",
                                  "jpeg_bgr", "jpeg_grayscale"])
def test_image_decoder_backend_images(name):
    encoded, expected = _backend_image(name)
    fmt = {"bgr": "BGR", "grayscale": "Grayscale"}.get(name.split("_")[1], "RGB")
    np.testing.assert_array_equal(image_decoder(encoded, pixel_format=fmt), expected)


def test_image_decoder_unsupported_and_corrupt():
    for name in ("webp_rgb", "jpeg2k_rgb"):
        with pytest.raises(NotImplementedFeatureError, match="not supported"):
            image_decoder(_backend_image(name)[0])
    assert image_decoder(_stream(b"not an image at all")).shape == (0, 0, 3)
    assert image_decoder(_stream(b"\x89PNG\r\n\x1a\ngarbage"),
                         pixel_format="Grayscale").shape == (0, 0, 1)
    with pytest.raises(ValueError, match="pixel_format"):
        image_decoder(_stream(b"BM"), pixel_format="CMYK")


def test_kernels_do_not_modify_inputs():
    x = _rand(1, 2, 4, 4)
    grid = RNG.uniform(-1, 1, size=(1, 2, 2, 2)).astype(np.float32)
    snapshot = [x.copy(), grid.copy(), ROIS.copy()]
    resize(x, None, np.array([1, 1, 2, 2], np.float32), mode="cubic")
    grid_sample(x, grid, padding_mode="reflection")
    roi_align_16(_rand(2, 1, 10, 12), ROIS, BATCH)
    for a, b in zip([x, grid, ROIS], snapshot):
        np.testing.assert_array_equal(a, b)


def test_every_grid_sample_combination_runs_on_5d_cubic():
    # The reference rejects nothing here; cubic 3-D has 64 taps per point.
    x = _rand(1, 1, 3, 3, 3)
    grid = RNG.uniform(-1, 1, size=(1, 1, 2, 2, 3)).astype(np.float32)
    for padding, align in itertools.product(["zeros", "border", "reflection"], [0, 1]):
        check_kernel(grid_sample, "GridSample", [x, grid],
                     {"mode": "cubic", "padding_mode": padding, "align_corners": align},
                     opset=22, **TOL)


def test_bfloat16_versions_22():
    # Opset 22 added bfloat16 to RoiAlign, GridSample, DeformConv and MaxRoiPool. The oracle is
    # onnx.reference on the same (bfloat16-representable) values in float32.
    bf = ml_dtypes.bfloat16
    x = _rand(1, 2, 6, 7).astype(bf).astype(np.float32)
    rois = np.array([[0.5, 0.5, 4.0, 5.5], [1, 1, 6, 3]], np.float32)
    batch = np.array([0, 0], np.int64)
    attrs = {"output_height": 2, "output_width": 3}
    got = roi_align_16(x.astype(bf), rois.astype(bf), batch, **attrs)
    assert got.dtype == bf
    assert_close(got.astype(np.float32),
                 reference("RoiAlign", [x, rois, batch], attrs, opset=22)[0], rtol=1e-2,
                 atol=1e-2)
    grid = np.array([[[[0.25, -0.5], [0.75, 0.5]]]], np.float32)
    got = grid_sample(x.astype(bf), grid.astype(bf), mode="cubic")
    assert got.dtype == bf
    assert_close(got.astype(np.float32),
                 reference("GridSample", [x, grid], {"mode": "cubic"}, opset=22)[0],
                 rtol=1e-2, atol=1e-2)
    w = _rand(3, 2, 2, 2).astype(bf).astype(np.float32)
    offset = (RNG.uniform(-1, 1, size=(1, 8, 5, 6)).astype(bf).astype(np.float32))
    got = deform_conv(x.astype(bf), w.astype(bf), offset.astype(bf))
    assert got.dtype == bf
    assert_close(got.astype(np.float32),
                 reference("DeformConv", [x, w, offset], {}, opset=22)[0], rtol=2e-2, atol=5e-2)
    pooled = max_roi_pool(x.astype(bf), np.array([[0, 1, 1, 5, 4]], bf), pooled_shape=[2, 2])
    assert pooled.dtype == bf
    assert_close(pooled.astype(np.float32),
                 max_roi_pool(x, np.array([[0, 1, 1, 5, 4]], np.float32), pooled_shape=[2, 2]))
