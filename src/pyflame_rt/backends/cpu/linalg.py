"""CPU kernels for linear-algebra ops: MatMul, Gemm, MatMulInteger, Einsum, Det.

Float products go through ``numpy.matmul`` (BLAS). float16/bfloat16 are multiplied in float32 and
cast back (numpy's float16 matmul has no BLAS path); integer types use numpy's exact integer
matmul, which wraps on overflow like ONNX Runtime.
"""

from __future__ import annotations

import numpy as np

from ...ops import kernel
from .nn import compute_dtype

__all__ = ["det", "einsum", "gemm_7", "gemm_11", "matmul", "matmul_integer"]


def _to_compute(x: np.ndarray) -> np.ndarray:
    ct = compute_dtype(x.dtype)
    return x if x.dtype == ct else x.astype(ct)


@kernel("MatMul", since=1)
def matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """ONNX MatMul-1/9/13: numpy.matmul semantics (N-D broadcasting, 1-D operands)."""
    if A.ndim == 0 or B.ndim == 0:
        raise ValueError(f"MatMul: operands must have rank >= 1, got shapes {A.shape} and "
                         f"{B.shape}")
    if A.dtype != B.dtype:
        raise ValueError(f"MatMul: A is {A.dtype} but B is {B.dtype}; both must have one type")
    y = np.matmul(_to_compute(A), _to_compute(B))
    return np.asarray(y).astype(A.dtype, copy=False)


def _gemm(A: np.ndarray, B: np.ndarray, C: np.ndarray | None, alpha: float, beta: float,
          transA: int, transB: int) -> np.ndarray:
    if A.ndim != 2 or B.ndim != 2:
        raise ValueError(f"Gemm: A and B must be 2-D, got shapes {A.shape} and {B.shape}")
    a = _to_compute(A)
    b = _to_compute(B)
    a = a.T if transA else a
    b = b.T if transB else b
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"Gemm: inner dimensions differ: A' is {a.shape}, B' is {b.shape} "
                         f"(transA={transA}, transB={transB})")
    y = np.matmul(a, b)
    integer = y.dtype.kind in "iu"
    if integer and (alpha != 1.0 or (C is not None and beta not in (0.0, 1.0))):
        # Integer Gemm with fractional scalars: scale in float64, truncate back like a Cast.
        y = y.astype(np.float64)
    if alpha != 1.0:
        y *= np.asarray(alpha, dtype=y.dtype)
    if C is not None and beta != 0.0:
        c = _to_compute(C).astype(y.dtype, copy=False)
        try:
            np.broadcast_to(c, y.shape)
        except ValueError:
            raise ValueError(f"Gemm: C of shape {C.shape} is not unidirectionally broadcastable "
                             f"to the result shape {y.shape}") from None
        if beta != 1.0:
            c = c * np.asarray(beta, dtype=y.dtype)
        y += c
    return y.astype(A.dtype, copy=False)


@kernel("Gemm", since=7)
def gemm_7(A: np.ndarray, B: np.ndarray, C: np.ndarray | None = None, *, alpha: float = 1.0,
           beta: float = 1.0, transA: int = 0, transB: int = 0) -> np.ndarray:
    """ONNX Gemm-7/9: Y = alpha * A' @ B' + beta * C (C required, unidirectional broadcast)."""
    if C is None:
        raise ValueError("Gemm: input C is required before opset 11; give a C input (zeros of "
                         "shape (N,) for no bias) or convert the model to opset >= 11")
    return _gemm(A, B, C, alpha, beta, transA, transB)


@kernel("Gemm", since=11)
def gemm_11(A: np.ndarray, B: np.ndarray, C: np.ndarray | None = None, *, alpha: float = 1.0,
            beta: float = 1.0, transA: int = 0, transB: int = 0) -> np.ndarray:
    """ONNX Gemm-11/13: Y = alpha * A' @ B' + beta * C (C optional, unidirectional broadcast)."""
    return _gemm(A, B, C, alpha, beta, transA, transB)


@kernel("MatMulInteger", since=10)
def matmul_integer(A: np.ndarray, B: np.ndarray, a_zero_point: np.ndarray | None = None,
                   b_zero_point: np.ndarray | None = None) -> np.ndarray:
    """ONNX MatMulInteger-10: (A - a_zero_point) @ (B - b_zero_point) with int32 accumulation."""
    # float64 holds every partial sum of 8-bit products exactly and multiplies through BLAS.
    a = A.astype(np.float64)
    b = B.astype(np.float64)
    if a_zero_point is not None:
        azp = np.asarray(a_zero_point).astype(np.float64)
        if azp.size > 1 and azp.ndim == 1:
            # Per-row zero points: one per row of A (its second-to-last axis).
            azp = azp.reshape(-1, 1)
        a = a - azp
    if b_zero_point is not None:
        bzp = np.asarray(b_zero_point).astype(np.float64)
        b = b - bzp  # a 1-D zero point is per column: broadcasts along B's last axis
    y = np.matmul(a, b)
    # int64 -> int32 wraps like 32-bit accumulation overflow.
    return np.asarray(np.rint(y)).astype(np.int64).astype(np.int32)


@kernel("Einsum", since=12)
def einsum(*Inputs: np.ndarray, equation: str | None = None) -> np.ndarray:
    """ONNX Einsum-12/28: numpy.einsum (explicit/implicit output, ellipsis broadcasting)."""
    if equation is None:
        raise ValueError("Einsum: the 'equation' attribute is required")
    if isinstance(equation, bytes):
        equation = equation.decode()
    eq = equation.replace(" ", "")
    if not Inputs:
        raise ValueError("Einsum: needs at least one input")
    dtype = Inputs[0].dtype
    ops = [_to_compute(x) for x in Inputs]
    # optimize=True contracts pairs through tensordot (BLAS); one operand needs no plan.
    y = np.einsum(eq, *ops, optimize=len(ops) > 1)
    return np.asarray(y).astype(dtype, copy=False)


@kernel("Det", since=11)
def det(X: np.ndarray) -> np.ndarray:
    """ONNX Det-11/22: determinant of the trailing square matrices, shape [*]."""
    if X.ndim < 2 or X.shape[-1] != X.shape[-2]:
        raise ValueError(f"Det: input must be [*, M, M], got shape {X.shape}")
    x = _to_compute(X)
    return np.asarray(np.linalg.det(x)).astype(X.dtype, copy=False)
