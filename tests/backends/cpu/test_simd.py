"""The 8-lane vector intrinsics of codegen/_nb_simd.py, lane by lane against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from pyflame_rt.backends.cpu.codegen import kernels
from pyflame_rt.backends.cpu.codegen.jit import njit

simd = kernels("simd")


@njit
def _loads(x, i, n, out):
    simd.vstore(out, 0, simd.vload(x, i))
    simd.vstore(out, 8, simd.vload_n(x, i, n))
    simd.vstore(out, 16, simd.vload_s2(x, i))
    simd.vstore(out, 24, simd.vload_at(x.ctypes.data, i))
    simd.vstore(out, 32, simd.vload_at_n(x.ctypes.data, i, n))


@njit
def _masked_store(x, i, n, out):
    simd.vstore_n(out, i, simd.vload(x, 0), n)


@njit
def _arith(a, b, c, out):
    va, vb, vc = simd.vload(a, 0), simd.vload(b, 0), simd.vload(c, 0)
    simd.vstore(out, 0, simd.vfma(va, vb, vc))
    simd.vstore(out, 8, simd.vadd(va, vb))
    simd.vstore(out, 16, simd.vmul(va, vb))
    simd.vstore(out, 24, simd.vmax(va, vb))
    simd.vstore(out, 32, simd.vmin(va, vb))
    simd.vstore(out, 40, simd.vsplat(c[3]))
    out[48] = simd.vhsum(va)


@pytest.mark.parametrize("i,n", [(0, 8), (3, 5), (7, 1), (1, 0), (5, 7)])
def test_loads(i, n):
    x = np.arange(40, dtype=np.float32) * 1.5 - 7
    out = np.full(40, np.nan, np.float32)
    _loads(x, i, n, out)
    masked = np.zeros(8, np.float32)
    masked[:n] = x[i:i + n]
    np.testing.assert_array_equal(out[0:8], x[i:i + 8])
    np.testing.assert_array_equal(out[8:16], masked)
    np.testing.assert_array_equal(out[16:24], x[i:i + 16:2])
    np.testing.assert_array_equal(out[24:32], x[i:i + 8])
    np.testing.assert_array_equal(out[32:40], masked)


@pytest.mark.parametrize("n", [0, 1, 5, 8])
def test_masked_store_writes_only_n_lanes(n):
    x = np.arange(1, 9, dtype=np.float32)
    out = np.full(12, -1, np.float32)
    _masked_store(x, 2, n, out)
    expected = np.full(12, -1, np.float32)
    expected[2:2 + n] = x[:n]
    np.testing.assert_array_equal(out, expected)


def test_arithmetic_and_nan_semantics():
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(8).astype(np.float32) for _ in range(3))
    a[1] = np.nan  # a NaN in the first operand of max/min stays NaN (as numba's max(x, 0))
    out = np.zeros(49, np.float32)
    _arith(a, b, c, out)
    fma = (a.astype(np.float64) * b + c).astype(np.float32)
    np.testing.assert_allclose(out[0:8], fma, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[8:16], a + b)
    np.testing.assert_allclose(out[16:24], a * b)
    np.testing.assert_array_equal(np.isnan(out[24:40]), np.isnan(np.r_[a, a]))
    ok = ~np.isnan(a)
    np.testing.assert_array_equal(out[24:32][ok], np.maximum(a, b)[ok])
    np.testing.assert_array_equal(out[32:40][ok], np.minimum(a, b)[ok])
    np.testing.assert_array_equal(out[40:48], np.full(8, c[3]))
    assert np.isnan(out[48])
    a[1] = 2.0
    _arith(a, b, c, out)
    assert out[48] == pytest.approx(float(a.astype(np.float64).sum()), rel=1e-6)


@njit
def _range_loads(x, i, lo, hi, out):
    simd.vstore(out, 0, simd.vload_r(x, i, lo, hi))
    simd.vstore(out, 8, simd.vload_s2_r(x, i, lo, hi))


@pytest.mark.parametrize("i,lo,hi", [(4, 0, 8), (3, 1, 5), (0, 2, 16), (5, 0, 0), (6, 3, 11)])
def test_range_loads(i, lo, hi):
    x = np.arange(40, dtype=np.float32) + 1
    out = np.full(16, np.nan, np.float32)
    _range_loads(x, i, lo, hi, out)
    lanes = np.arange(8)
    expected = np.where((lanes >= lo) & (lanes < hi), x[i:i + 8], 0)
    np.testing.assert_array_equal(out[:8], expected)
    j = 2 * lanes
    expected2 = np.where((j >= lo) & (j < hi), x[i:i + 16][j], 0)
    np.testing.assert_array_equal(out[8:], expected2)


def _act_numpy(y: np.ndarray, code: int, a0: float, a1: float) -> np.ndarray:
    return {0: y, 1: np.maximum(y, 0), 2: np.where(y >= 0, y, a0 * y),
            3: 1 / (1 + np.exp(-y)), 7: np.clip(y, a0, a1)}[code]


@pytest.mark.parametrize("cols", [1, 7, 8, 9, 49])
@pytest.mark.parametrize("bias_axis", [None, 0, 1])
@pytest.mark.parametrize("has_z", [False, True])
@pytest.mark.parametrize("act,a0,a1", [(0, 0.0, 0.0), (1, 0.0, 0.0), (2, 0.2, 0.0),
                                       (3, 0.0, 0.0), (7, -0.3, 0.4)])
def test_bias_act_epilogue(cols, bias_axis, has_z, act, a0, a1):
    # Rows of a (rows, cols) block inside a wider buffer (stride 13 + cols), as a GEMM tile.
    epilogue = kernels("epilogue")
    rng = np.random.default_rng(cols)
    rows, stride, base = 3, cols + 13, 5
    y = rng.standard_normal(base + rows * stride).astype(np.float32)
    z = rng.standard_normal(y.size).astype(np.float32)
    bias = (np.zeros(0, np.float32) if bias_axis is None
            else rng.standard_normal(rows if bias_axis == 0 else cols).astype(np.float32))
    block = y[base:base + rows * stride].reshape(rows, stride)[:, :cols].astype(np.float64)
    if bias_axis == 0:
        block = block + bias[:, None]
    elif bias_axis == 1:
        block = block + bias[None, :]
    if has_z:
        block = block + z[base:base + rows * stride].reshape(rows, stride)[:, :cols]
    expected = y.copy()
    expected[base:base + rows * stride].reshape(rows, stride)[:, :cols] = \
        _act_numpy(block, act, a0, a1)
    epilogue.bias_act(y, base, stride, rows, cols, bias, 0, 0 if bias_axis is None else
                      bias_axis, z, base, stride, has_z, act, a0, a1)
    np.testing.assert_allclose(y, expected, rtol=2e-6, atol=2e-6)
