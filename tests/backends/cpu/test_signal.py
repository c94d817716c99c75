"""Signal kernels (DFT, STFT, windows, MelWeightMatrix, CumSum, CumProd) against onnx.reference.

Where onnx.reference cannot run a case (bfloat16 inputs, symmetric windows of length 1) the
oracle is numpy on the same values in float64, or ONNX Runtime.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from oracle import assert_close, check_kernel, onnxruntime, reference

from pyflame_rt.backends.cpu.signal import (
    blackman_window,
    cum_prod,
    cum_sum,
    dft_17,
    dft_20,
    hamming_window,
    hann_window,
    mel_weight_matrix,
    stft,
)
from pyflame_rt.ops import lookup

RNG = np.random.default_rng(99)
FFT_TOL = {"rtol": 1e-4, "atol": 1e-4}


def test_registered_versions():
    assert lookup("DFT", opset=17).fn is dft_17
    assert lookup("DFT", opset=19).fn is dft_17
    assert lookup("DFT", opset=20).fn is dft_20
    assert lookup("STFT", opset=17).fn is stft
    assert lookup("CumSum", opset=11).fn is cum_sum
    assert lookup("CumSum", opset=14).fn is cum_sum
    assert lookup("CumProd", opset=26).fn is cum_prod
    for op, fn in (("HannWindow", hann_window), ("HammingWindow", hamming_window),
                   ("BlackmanWindow", blackman_window), ("MelWeightMatrix", mel_weight_matrix)):
        assert lookup(op, opset=17).fn is fn


# ------------------------------------------------------------------------------------ DFT


def _signal(shape, complex_, dtype=np.float32):
    return RNG.standard_normal((*shape, 2 if complex_ else 1)).astype(dtype)


# A onesided forward DFT is defined for real input only.
@pytest.mark.parametrize("complex_,inverse,onesided", [(False, 0, 0), (False, 1, 0),
                                                       (False, 0, 1), (True, 0, 0),
                                                       (True, 1, 0)])
@pytest.mark.parametrize("axis", [1, 2, -2, -3])
@pytest.mark.parametrize("length", [None, 4, 9])
def test_dft_20(complex_, inverse, onesided, axis, length):
    x = _signal((2, 6, 5), complex_)
    inputs = [x, None if length is None else np.array(length, np.int64),
              np.array(axis, np.int64)]
    check_kernel(dft_20, "DFT", inputs, {"inverse": inverse, "onesided": onesided}, opset=20,
                 **FFT_TOL)


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("length", [None, 8, 11])
def test_dft_20_irfft(complex_, length):
    spectrum = _signal((3, 5), complex_)
    # The axis input is given: onnx.reference's DFT-20 fails when it is omitted.
    inputs = [spectrum, None if length is None else np.array(length, np.int64),
              np.array(-2, np.int64)]
    check_kernel(dft_20, "DFT", inputs, {"inverse": 1, "onesided": 1}, opset=20, **FFT_TOL)


@pytest.mark.parametrize("axis", [1, 2, -2])
@pytest.mark.parametrize("inverse,onesided", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_dft_17(axis, inverse, onesided):
    x = _signal((2, 6, 4), complex_=bool(inverse))
    check_kernel(dft_17, "DFT", [x, np.array(7, np.int32)],
                 {"axis": axis, "inverse": inverse, "onesided": onesided}, opset=17, **FFT_TOL)
    check_kernel(dft_17, "DFT", [x], {"axis": axis, "inverse": inverse, "onesided": onesided},
                 opset=19, **FFT_TOL)


def test_dft_default_axis_and_dtypes():
    x = _signal((2, 8), complex_=True, dtype=np.float64)
    check_kernel(dft_20, "DFT", [x], opset=20, rtol=1e-12, atol=1e-12)
    check_kernel(dft_17, "DFT", [_signal((2, 8, 3), False)], opset=17, **FFT_TOL)
    half = _signal((2, 8), complex_=False, dtype=np.float16)
    check_kernel(dft_20, "DFT", [half], opset=20, rtol=1e-2, atol=1e-2)
    # bfloat16: onnx.reference cannot feed it; compare with numpy's FFT of the same values.
    bf = _signal((2, 8), complex_=False).astype(ml_dtypes.bfloat16)
    got = dft_20(bf)
    assert got.dtype == ml_dtypes.bfloat16 and got.shape == (2, 8, 2)
    spec = np.fft.fft(bf.astype(np.float64)[..., 0], axis=-1)
    assert_close(got.astype(np.float64), np.stack([spec.real, spec.imag], -1), rtol=2e-2,
                 atol=5e-2)


def test_dft_round_trip_and_errors():
    x = _signal((3, 10), complex_=True)
    back = dft_20(dft_20(x), inverse=1)
    assert_close(back, x, rtol=1e-5, atol=1e-5)
    real = _signal((3, 10), complex_=False)
    assert_close(dft_20(dft_20(real, onesided=1), inverse=1, onesided=1), real,
                 rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="last axis"):
        dft_20(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="out of range"):
        dft_20(x, None, np.array(-1))


# ----------------------------------------------------------------------------------- STFT


# A onesided STFT needs a real signal.
@pytest.mark.parametrize("complex_,onesided", [(False, 0), (False, 1), (True, 0)])
@pytest.mark.parametrize("step,flen", [(2, 8), (3, 5), (16, 16)])
@pytest.mark.parametrize("with_window", [False, True])
def test_stft(complex_, onesided, step, flen, with_window):
    x = _signal((2, 16), complex_)
    window = np.hanning(flen).astype(np.float32) if with_window else None
    inputs = [x, np.array(step, np.int64), window, np.array(flen, np.int64)]
    check_kernel(stft, "STFT", inputs, {"onesided": onesided}, opset=17, **FFT_TOL)


def test_stft_frame_length_defaults():
    x = _signal((1, 12), False)
    window = np.hamming(6).astype(np.float32)
    check_kernel(stft, "STFT", [x, np.array(3, np.int64), window], opset=17, **FFT_TOL)
    check_kernel(stft, "STFT", [x, np.array(4, np.int64)], opset=17, **FFT_TOL)
    check_kernel(stft, "STFT", [x.astype(np.float64), np.array(2, np.int64), None,
                                np.array(5, np.int64)], opset=17, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="must match"):
        stft(x, np.array(3), window, np.array(5))


# -------------------------------------------------------------------------------- windows

WINDOWS = [("HannWindow", hann_window), ("HammingWindow", hamming_window),
           ("BlackmanWindow", blackman_window)]


@pytest.mark.parametrize("op,fn", WINDOWS)
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("size", [2, 7, 10])
@pytest.mark.parametrize("dtype", [1, 11, 10, 6, 7])
def test_windows(op, fn, periodic, size, dtype):
    check_kernel(fn, op, [np.array(size, np.int64)],
                 {"periodic": periodic, "output_datatype": dtype}, opset=17,
                 rtol=1e-3 if dtype == 10 else 1e-6, atol=1e-3 if dtype == 10 else 1e-6)


@pytest.mark.parametrize("op,fn", WINDOWS)
def test_windows_degenerate_sizes(op, fn):
    assert fn(np.array(0, np.int32)).shape == (0,)
    # A symmetric window of one point is its peak, 1 (numpy's hanning/hamming/blackman(1)).
    assert_close(fn(np.array(1, np.int32), periodic=0), np.ones(1, np.float32))
    expected = onnxruntime(op, [np.array(1, np.int64)], {"periodic": 1}, opset=17)[0]
    assert_close(fn(np.array(1, np.int64), periodic=1), expected, atol=1e-6)
    with pytest.raises(ValueError, match="output_datatype"):
        fn(np.array(4), output_datatype=8)


def test_windows_match_numpy_symmetric():
    assert_close(hann_window(np.array(9), periodic=0, output_datatype=11), np.hanning(9))
    assert_close(blackman_window(np.array(9), periodic=0, output_datatype=11), np.blackman(9),
                 atol=1e-12)


@pytest.mark.parametrize("params", [(8, 64, 16000, 0.0, 8000.0), (10, 512, 22050, 20.0, 4000.0),
                                    (3, 16, 8000, 100.0, 3000.0), (40, 128, 16000, 0.0, 8000.0)])
@pytest.mark.parametrize("dtype", [1, 11, 10])
def test_mel_weight_matrix(params, dtype):
    nmel, nfft, rate, low, high = params
    inputs = [np.array(nmel, np.int64), np.array(nfft, np.int64), np.array(rate, np.int64),
              np.array(low, np.float32), np.array(high, np.float32)]
    check_kernel(mel_weight_matrix, "MelWeightMatrix", inputs, {"output_datatype": dtype},
                 opset=17)


def test_mel_weight_matrix_against_onnxruntime():
    inputs = [np.array(8, np.int32), np.array(32, np.int32), np.array(16000, np.int32),
              np.array(0.0, np.float32), np.array(8000.0, np.float32)]
    expected = onnxruntime("MelWeightMatrix", inputs, opset=17)[0]
    assert_close(mel_weight_matrix(*inputs), expected)


# ----------------------------------------------------------------------- CumSum / CumProd

CUM_DTYPES = [np.float32, np.float64, np.int32, np.int64, np.uint32, np.uint64, np.float16]


@pytest.mark.parametrize("op,fn,opset", [("CumSum", cum_sum, 14), ("CumProd", cum_prod, 26)])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1, -3])
@pytest.mark.parametrize("dtype", CUM_DTYPES)
def test_cumulative(op, fn, opset, exclusive, reverse, axis, dtype):
    if np.issubdtype(dtype, np.integer):
        x = RNG.integers(1, 4, size=(3, 4, 5)).astype(dtype)
    else:
        x = RNG.uniform(0.5, 1.5, size=(3, 4, 5)).astype(dtype)
    tol = {"rtol": 2e-3, "atol": 2e-3} if dtype == np.float16 else {}
    check_kernel(fn, op, [x, np.array(axis, np.int32)],
                 {"exclusive": exclusive, "reverse": reverse}, opset=opset, **tol)


def test_cumsum_opset11_and_axis_forms():
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    check_kernel(cum_sum, "CumSum", [x, np.array(1, np.int64)], {"exclusive": 1}, opset=11)
    # A one-element 1-D axis tensor is accepted like a scalar (as ONNX Runtime accepts it).
    assert_close(cum_sum(x, np.array([0])), np.cumsum(x, axis=0))
    with pytest.raises(ValueError, match="out of range"):
        cum_sum(x, np.array(2))


def test_cumulative_bfloat16_and_empty():
    x = RNG.uniform(0.5, 1.5, size=(6,)).astype(ml_dtypes.bfloat16)
    got = cum_sum(x, np.array(0), reverse=1)
    assert got.dtype == ml_dtypes.bfloat16
    expected = np.cumsum(x.astype(np.float64)[::-1])[::-1]
    assert_close(got.astype(np.float64), expected, rtol=2e-2, atol=2e-2)
    got = cum_prod(x, np.array(0), exclusive=1)
    expected = np.concatenate([[1.0], np.cumprod(x.astype(np.float64))[:-1]])
    assert_close(got.astype(np.float64), expected, rtol=2e-2, atol=2e-2)
    empty = np.zeros((0, 3), np.float32)
    assert cum_sum(empty, np.array(0), exclusive=1).shape == (0, 3)
    assert cum_prod(empty, np.array(1), exclusive=1, reverse=1).shape == (0, 3)


def test_cumulative_does_not_modify_input():
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    before = x.copy()
    cum_sum(x, np.array(1), exclusive=1, reverse=1)
    cum_prod(x, np.array(0), reverse=1)
    np.testing.assert_array_equal(x, before)
    exp = reference("CumSum", [x, np.array(1, np.int64)], {"reverse": 1}, opset=14)[0]
    assert_close(cum_sum(x, np.array(1), reverse=1), exp)
