"""``sgemm`` callable from numba code: an intrinsic that calls cblas through an address.

``sgemm(fptr, ilp64, transb, m, n, k, a, aoff, lda, b, boff, ldb, c, coff, ldc, beta)``
computes, row-major, C[m, n] = A[m, k] @ B'[k, n] + beta * C with B' = B or B^T; ``a``,
``b``, ``c`` are float32 arrays and ``*off`` element offsets into them; ``fptr`` is the
address from :func:`.blas.sgemm_info` (a run-time argument, so compiled kernels stay
cacheable) and ``ilp64`` whether the library takes 64-bit integers.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic

from .jit import njit

__all__ = ["sgemm", "sgemv"]

_ROW_MAJOR = 101
_NO_TRANS = 111
_TRANS = 112


def _call(width: int):
    @intrinsic
    def call(typingctx, fptr, transb, m, n, k, a, aoff, lda, b, boff, ldb, c, coff, ldc, beta):
        sig = types.void(types.int64, types.int64, types.int64, types.int64, types.int64,
                         a, types.int64, types.int64, b, types.int64, types.int64, c,
                         types.int64, types.int64, types.float32)

        def codegen(context, builder, signature, args):
            (fp, tb, m_, n_, k_, av, ao, lda_, bv, bo, ldb_, cv, co, ldc_, beta_) = args
            i32 = ir.IntType(32)
            iw = ir.IntType(width)
            fptr_ty = ir.FloatType().as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, iw, iw, iw, ir.FloatType(),
                                                   fptr_ty, iw, fptr_ty, iw, ir.FloatType(),
                                                   fptr_ty, iw])

            def data(aty, val, off):
                arr = context.make_array(aty)(context, builder, val)
                return builder.gep(arr.data, [off])

            def cast(v):
                return builder.trunc(v, iw) if width < 64 else v

            trans_b = builder.select(builder.icmp_signed("!=", tb, ir.Constant(tb.type, 0)),
                                     ir.Constant(i32, _TRANS), ir.Constant(i32, _NO_TRANS))
            func = builder.inttoptr(fp, fnty.as_pointer())
            builder.call(func, [ir.Constant(i32, _ROW_MAJOR), ir.Constant(i32, _NO_TRANS),
                                trans_b, cast(m_), cast(n_), cast(k_),
                                ir.Constant(ir.FloatType(), 1.0),
                                data(signature.args[5], av, ao), cast(lda_),
                                data(signature.args[8], bv, bo), cast(ldb_), beta_,
                                data(signature.args[11], cv, co), cast(ldc_)])
            return context.get_dummy_value()

        return sig, codegen

    return call


_call64 = _call(64)
_call32 = _call(32)


def _gemv_call(width: int):
    @intrinsic
    def call(typingctx, fptr, trans, m, n, a, aoff, lda, x, xoff, y, yoff):
        sig = types.void(types.int64, types.int64, types.int64, types.int64, a, types.int64,
                         types.int64, x, types.int64, y, types.int64)

        def codegen(context, builder, signature, args):
            (fp, tr, m_, n_, av, ao, lda_, xv, xo, yv, yo) = args
            i32 = ir.IntType(32)
            iw = ir.IntType(width)
            f32 = ir.FloatType()
            fptr_ty = f32.as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [i32, i32, iw, iw, f32, fptr_ty, iw, fptr_ty,
                                                   iw, f32, fptr_ty, iw])

            def data(aty, val, off):
                arr = context.make_array(aty)(context, builder, val)
                return builder.gep(arr.data, [off])

            def cast(v):
                return builder.trunc(v, iw) if width < 64 else v

            trans_a = builder.select(builder.icmp_signed("!=", tr, ir.Constant(tr.type, 0)),
                                     ir.Constant(i32, _TRANS), ir.Constant(i32, _NO_TRANS))
            func = builder.inttoptr(fp, fnty.as_pointer())
            builder.call(func, [ir.Constant(i32, _ROW_MAJOR), trans_a, cast(m_), cast(n_),
                                ir.Constant(f32, 1.0), data(signature.args[4], av, ao),
                                cast(lda_), data(signature.args[7], xv, xo),
                                ir.Constant(iw, 1), ir.Constant(f32, 0.0),
                                data(signature.args[9], yv, yo), ir.Constant(iw, 1)])
            return context.get_dummy_value()

        return sig, codegen

    return call


_gemv64 = _gemv_call(64)
_gemv32 = _gemv_call(32)


@njit
def sgemv(fptr, ilp64, trans, m, n, a, aoff, lda, x, xoff, y, yoff):
    """y[yoff:] = A' @ x[xoff:] for A [m, n] row-major (leading dimension lda); A' = A, or
    A^T with ``trans`` (then x has m elements and y n)."""
    if m <= 0 or n <= 0:
        return
    if ilp64:
        _gemv64(fptr, trans, m, n, a, aoff, lda, x, xoff, y, yoff)
    else:
        _gemv32(fptr, trans, m, n, a, aoff, lda, x, xoff, y, yoff)


@njit
def sgemm(fptr, ilp64, transb, m, n, k, a, aoff, lda, b, boff, ldb, c, coff, ldc, beta):
    """C[coff:] = A[aoff:] @ B'[boff:] + beta * C (row-major, leading dimensions given)."""
    if m <= 0 or n <= 0:
        return
    if ilp64:
        _call64(fptr, transb, m, n, k, a, aoff, lda, b, boff, ldb, c, coff, ldc,
                np.float32(beta))
    else:
        _call32(fptr, transb, m, n, k, a, aoff, lda, b, boff, ldb, c, coff, ldc,
                np.float32(beta))
