"""MatMul, Gemm, MatMulInteger, Einsum and Det kernels against onnx.reference / ONNX Runtime."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from oracle import assert_close, check_kernel, onnxruntime, reference

from pyflame_rt.backends.cpu.linalg import det, einsum, gemm_7, gemm_11, matmul, matmul_integer
from pyflame_rt.ops import lookup

BF16 = np.dtype(ml_dtypes.bfloat16)


def _rand(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        lo = 0 if dtype.kind == "u" else -5
        return rng.integers(lo, 6, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _tol(dtype) -> dict[str, float]:
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return {"rtol": 2e-2, "atol": 2e-2}
    if dtype == np.float32:
        return {"rtol": 1e-4, "atol": 1e-5}
    return {"rtol": 1e-10, "atol": 1e-10}


def test_registered_versions():
    assert lookup("MatMul", opset=13).fn is matmul
    assert lookup("Gemm", opset=9).fn is gemm_7
    assert lookup("Gemm", opset=13).fn is gemm_11
    assert lookup("MatMulInteger", opset=21).fn is matmul_integer
    assert lookup("Einsum", opset=23).fn is einsum
    assert lookup("Det", opset=22).fn is det


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 1, 3, 4), (5, 4, 6)),
    ((2, 3, 4), (4, 2)),
    ((7,), (2, 7, 3)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.int64,
                                   np.uint32, np.uint64])
def test_matmul(shapes, dtype):
    rng = np.random.default_rng(0)
    a, b = (_rand(rng, s, dtype) for s in shapes)
    check_kernel(matmul, "MatMul", [a, b], opset=13, **_tol(dtype))


@pytest.mark.parametrize("opset", [1, 9])
def test_matmul_older_opsets(opset):
    rng = np.random.default_rng(1)
    a, b = _rand(rng, (2, 3, 4), np.float32), _rand(rng, (4, 5), np.float32)
    check_kernel(matmul, "MatMul", [a, b], opset=opset, rtol=1e-4, atol=1e-5)


def test_matmul_bfloat16_matches_float32_reference():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 8)).astype(BF16)
    b = rng.standard_normal((8, 2)).astype(BF16)
    expected = reference("MatMul", [a.astype(np.float32), b.astype(np.float32)], opset=13)[0]
    got = matmul(a, b)
    assert got.dtype == BF16
    np.testing.assert_allclose(got.astype(np.float32), expected, rtol=2e-2, atol=2e-2)


def test_matmul_rejects_scalar():
    with pytest.raises(ValueError, match="rank >= 1"):
        matmul(np.float32(1.0) * np.ones((), np.float32), np.ones((2,), np.float32))


def test_matmul_does_not_modify_inputs():
    rng = np.random.default_rng(3)
    a, b = _rand(rng, (3, 4), np.float32), _rand(rng, (4, 5), np.float32)
    a0, b0 = a.copy(), b.copy()
    matmul(a, b)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


C_SHAPES = [None, (), (1,), (5,), (1, 5), (3, 1), (3, 5)]


@pytest.mark.parametrize("trans", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("c_shape", C_SHAPES)
@pytest.mark.parametrize("alpha_beta", [(1.0, 1.0), (0.5, 2.0), (1.5, 0.0)])
def test_gemm_11(trans, c_shape, alpha_beta):
    rng = np.random.default_rng(4)
    ta, tb = trans
    a = _rand(rng, (4, 3) if ta else (3, 4), np.float32)
    b = _rand(rng, (5, 4) if tb else (4, 5), np.float32)
    c = None if c_shape is None else _rand(rng, c_shape, np.float32)
    alpha, beta = alpha_beta
    attrs = {"alpha": alpha, "beta": beta, "transA": ta, "transB": tb}
    for opset in (11, 13):
        check_kernel(gemm_11, "Gemm", [a, b, c], attrs, opset=opset, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", [7, 9])
def test_gemm_7_requires_c(opset):
    rng = np.random.default_rng(5)
    a, b = _rand(rng, (3, 4), np.float64), _rand(rng, (4, 5), np.float64)
    c = _rand(rng, (5,), np.float64)
    check_kernel(gemm_7, "Gemm", [a, b, c], {"alpha": 2.0, "beta": 0.5, "transB": 0},
                 opset=opset, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="C is required"):
        gemm_7(a, b, None)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.int64, np.uint32,
                                   np.uint64])
def test_gemm_dtypes(dtype):
    rng = np.random.default_rng(6)
    a, b, c = _rand(rng, (3, 4), dtype), _rand(rng, (5, 4), dtype), _rand(rng, (3, 5), dtype)
    check_kernel(gemm_11, "Gemm", [a, b, c], {"transB": 1}, opset=13, **_tol(dtype))


def test_gemm_bad_c_shape():
    rng = np.random.default_rng(7)
    a, b = _rand(rng, (3, 4), np.float32), _rand(rng, (4, 5), np.float32)
    with pytest.raises(ValueError, match="broadcastable"):
        gemm_11(a, b, _rand(rng, (4,), np.float32))
    with pytest.raises(ValueError, match="inner dimensions"):
        gemm_11(a, a)


@pytest.mark.parametrize("types", [(np.uint8, np.uint8), (np.uint8, np.int8),
                                   (np.int8, np.uint8), (np.int8, np.int8)])
def test_matmul_integer(types):
    rng = np.random.default_rng(8)
    ta, tb = types
    lo_a, hi_a = (0, 256) if ta == np.uint8 else (-128, 128)
    lo_b, hi_b = (0, 256) if tb == np.uint8 else (-128, 128)
    a = rng.integers(lo_a, hi_a, (4, 7)).astype(ta)
    b = rng.integers(lo_b, hi_b, (7, 3)).astype(tb)
    check_kernel(matmul_integer, "MatMulInteger", [a, b], opset=10)
    azp = np.array(rng.integers(lo_a, hi_a), dtype=ta)
    bzp = np.array(rng.integers(lo_b, hi_b), dtype=tb)
    check_kernel(matmul_integer, "MatMulInteger", [a, b, azp, bzp], opset=10)


def test_matmul_integer_per_row_and_column_zero_points():
    rng = np.random.default_rng(9)
    a = rng.integers(0, 256, (2, 4, 6)).astype(np.uint8)
    b = rng.integers(0, 256, (6, 5)).astype(np.uint8)
    azp = rng.integers(0, 256, (4,)).astype(np.uint8)
    bzp = rng.integers(0, 256, (5,)).astype(np.uint8)
    # Per-column b zero points: both oracles broadcast them along B's last axis.
    check_kernel(matmul_integer, "MatMulInteger", [a, b, None, bzp], opset=10)
    # Per-row a zero points (the spec's M-vector, or [D1, M, 1]) are supported by neither
    # oracle: subtract them as the spec says and let the reference multiply the int32 operands.
    shifted_a = a.astype(np.int32) - azp.astype(np.int32)[:, None]
    shifted_b = b.astype(np.int32) - bzp.astype(np.int32)
    expected = reference("MatMul", [shifted_a, shifted_b], opset=13)[0]
    assert_close(matmul_integer(a, b, azp, bzp), expected)
    azp3 = rng.integers(0, 256, (2, 4, 1)).astype(np.uint8)
    expected = reference("MatMul", [a.astype(np.int32) - azp3.astype(np.int32),
                                    b.astype(np.int32)], opset=13)[0]
    assert_close(matmul_integer(a, b, azp3), expected)


def test_matmul_integer_matches_onnxruntime():
    rng = np.random.default_rng(14)
    a = rng.integers(0, 256, (3, 5)).astype(np.uint8)
    b = rng.integers(-128, 128, (5, 4)).astype(np.int8)
    azp, bzp = np.array(7, np.uint8), np.array(-3, np.int8)
    assert_close(matmul_integer(a, b, azp, bzp),
                 onnxruntime("MatMulInteger", [a, b, azp, bzp], opset=10)[0])


EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("ij->ji", [(3, 4)]),
    ("i,i", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk", [(2, 3, 4), (2, 4, 5)]),
    ("cb,bA", [(2, 3), (3, 5)]),
    ("ij, jk -> ik", [(3, 4), (4, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ("ij->", [(3, 4)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUM_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_einsum(equation, shapes, dtype):
    rng = np.random.default_rng(10)
    inputs = [_rand(rng, s, dtype) for s in shapes]
    check_kernel(einsum, "Einsum", inputs, {"equation": equation}, opset=12, **_tol(dtype))


def test_einsum_float16_and_missing_equation():
    rng = np.random.default_rng(11)
    a, b = _rand(rng, (3, 4), np.float16), _rand(rng, (4, 2), np.float16)
    check_kernel(einsum, "Einsum", [a, b], {"equation": "ij,jk->ik"}, opset=12,
                 **_tol(np.float16))
    with pytest.raises(ValueError, match="equation"):
        einsum(a, b)


@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (2, 1, 2, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_det(shape, dtype):
    rng = np.random.default_rng(12)
    x = _rand(rng, shape, dtype)
    for opset in (11, 22):
        check_kernel(det, "Det", [x], opset=opset, **_tol(dtype))


def test_det_float16_and_shape_check():
    rng = np.random.default_rng(13)
    x = _rand(rng, (2, 3, 3), np.float16)
    expected = reference("Det", [x.astype(np.float32)], opset=11)[0].astype(np.float16)
    got = det(x)
    assert got.dtype == np.float16 and got.shape == (2,)
    np.testing.assert_allclose(got.astype(np.float32), expected.astype(np.float32),
                               rtol=2e-2, atol=2e-2)
    with pytest.raises(ValueError, match="M, M"):
        det(np.ones((2, 3), np.float32))
