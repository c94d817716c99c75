"""Explicit 8-lane float32 vectors for numba kernels (imported lazily).

numba leaves vectorization to LLVM, which vectorizes long unit-stride loops well but not the
short rows of small feature maps (a 7-wide row runs entirely in the scalar remainder loop)
nor code whose loads and stores might alias. These intrinsics give numba code a value type
``f32x8`` (LLVM ``<8 x float>``, one AVX register) and the handful of operations the
depthwise and pooling kernels need: unaligned and masked loads and stores, a stride-2 load,
broadcast, fused multiply-add, min/max. An ``f32x8`` lives in registers like any scalar
local, so accumulators stay there across a kernel's taps.

Masked loads and stores (``*_n``) touch only the first ``n`` lanes: a row's tail is read and
written without going past the end of an array.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.core.datamodel import models
from numba.extending import intrinsic, register_model

from .jit import njit

__all__ = ["LANES", "f32x8", "vadd", "vfma", "vhsum", "vload", "vload_at", "vload_at_n", "vload_n",
           "vload_r", "vload_s2", "vload_s2_r", "vmax", "vmin", "vmul", "vsplat", "vstore",
           "vstore_n"]

#: Lanes of an ``f32x8``.
LANES = 8

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_VEC = ir.VectorType(_F32, LANES)
_VEC2 = ir.VectorType(_F32, 2 * LANES)
_IVEC = ir.VectorType(_I32, LANES)
_MASK = ir.VectorType(ir.IntType(1), LANES)


class F32x8(types.Type):
    """numba type of an 8-lane float32 vector."""

    def __init__(self) -> None:
        super().__init__(name="f32x8")


f32x8 = F32x8()


@register_model(F32x8)
class _F32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _vec_ptr(context, builder, aty, arr, idx, vec=_VEC):
    data = context.make_array(aty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [idx]), vec.as_pointer())


def _lane_mask(builder, n):
    """<8 x i1>: lane i is on when i < n."""
    n32 = builder.trunc(n, _I32) if n.type.width > 32 else n
    v = builder.insert_element(ir.Constant(_IVEC, ir.Undefined), n32, ir.Constant(_I32, 0))
    v = builder.shuffle_vector(v, ir.Constant(_IVEC, ir.Undefined),
                               ir.Constant(_IVEC, [0] * LANES))
    return builder.icmp_signed("<", ir.Constant(_IVEC, list(range(LANES))), v)


def _range_mask(builder, lo, hi, lanes):
    """<lanes x i1>: lane i is on when lo <= i < hi."""
    ivec = ir.VectorType(_I32, lanes)

    def splat(x):
        x32 = builder.trunc(x, _I32) if x.type.width > 32 else x
        v = builder.insert_element(ir.Constant(ivec, ir.Undefined), x32, ir.Constant(_I32, 0))
        return builder.shuffle_vector(v, ir.Constant(ivec, ir.Undefined),
                                      ir.Constant(ivec, [0] * lanes))

    iota = ir.Constant(ivec, list(range(lanes)))
    return builder.and_(builder.icmp_signed(">=", iota, splat(lo)),
                        builder.icmp_signed("<", iota, splat(hi)))


def _intrinsic_fn(builder, name, ret, args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


@intrinsic
def vload(typingctx, arr, idx):
    """``arr[idx:idx + 8]`` (float32 array, any alignment)."""
    sig = f32x8(arr, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _vec_ptr(context, builder, signature.args[0], args[0], args[1])
        return builder.load(ptr, align=4, typ=_VEC)

    return sig, codegen


@intrinsic
def vstore(typingctx, arr, idx, v):
    """``arr[idx:idx + 8] = v``."""
    sig = types.void(arr, types.intp, f32x8)

    def codegen(context, builder, signature, args):
        ptr = _vec_ptr(context, builder, signature.args[0], args[0], args[1])
        builder.store(args[2], ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def vload_n(typingctx, arr, idx, n):
    """``arr[idx:idx + n]`` in the first ``n`` lanes (n <= 8), zeros in the others; reads
    nothing past ``idx + n``."""
    sig = f32x8(arr, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _vec_ptr(context, builder, signature.args[0], args[0], args[1])
        fn = _intrinsic_fn(builder, "llvm.masked.load.v8f32.p0v8f32", _VEC,
                           [_VEC.as_pointer(), _I32, _MASK, _VEC])
        return builder.call(fn, [ptr, ir.Constant(_I32, 4), _lane_mask(builder, args[2]),
                                 ir.Constant(_VEC, [0.0] * LANES)])

    return sig, codegen


@intrinsic
def vstore_n(typingctx, arr, idx, v, n):
    """``arr[idx:idx + n] = v[:n]`` (n <= 8); writes nothing else."""
    sig = types.void(arr, types.intp, f32x8, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _vec_ptr(context, builder, signature.args[0], args[0], args[1])
        fn = _intrinsic_fn(builder, "llvm.masked.store.v8f32.p0v8f32", ir.VoidType(),
                           [_VEC, _VEC.as_pointer(), _I32, _MASK])
        builder.call(fn, [args[2], ptr, ir.Constant(_I32, 4), _lane_mask(builder, args[3])])
        return context.get_dummy_value()

    return sig, codegen


def _addr_ptr(builder, addr, idx, vec=_VEC):
    base = builder.inttoptr(addr, _F32.as_pointer())
    return builder.bitcast(builder.gep(base, [idx]), vec.as_pointer())


@intrinsic
def vload_at(typingctx, addr, idx):
    """8 floats at ``idx`` floats past the address ``addr`` (an int: a numpy array's
    ``ctypes.data``, for kernels reading a variable number of arrays; the caller keeps them
    alive)."""
    sig = f32x8(types.intp, types.intp)

    def codegen(context, builder, signature, args):
        return builder.load(_addr_ptr(builder, args[0], args[1]), align=4, typ=_VEC)

    return sig, codegen


@intrinsic
def vload_at_n(typingctx, addr, idx, n):
    """:func:`vload_at` of the first ``n`` lanes only (others 0)."""
    sig = f32x8(types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        fn = _intrinsic_fn(builder, "llvm.masked.load.v8f32.p0v8f32", _VEC,
                           [_VEC.as_pointer(), _I32, _MASK, _VEC])
        return builder.call(fn, [_addr_ptr(builder, args[0], args[1]), ir.Constant(_I32, 4),
                                 _lane_mask(builder, args[2]), ir.Constant(_VEC, [0.0] * LANES)])

    return sig, codegen


@intrinsic
def vload_r(typingctx, arr, idx, lo, hi):
    """Lanes ``lo <= i < hi`` of ``arr[idx:idx + 8]``, zeros in the others, which are not
    read (so ``idx`` may point before the array's start or near its end)."""
    sig = f32x8(arr, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _vec_ptr(context, builder, signature.args[0], args[0], args[1])
        fn = _intrinsic_fn(builder, "llvm.masked.load.v8f32.p0v8f32", _VEC,
                           [_VEC.as_pointer(), _I32, _MASK, _VEC])
        mask = _range_mask(builder, args[2], args[3], LANES)
        return builder.call(fn, [ptr, ir.Constant(_I32, 4), mask,
                                 ir.Constant(_VEC, [0.0] * LANES)])

    return sig, codegen


@intrinsic
def vload_s2_r(typingctx, arr, idx, lo, hi):
    """:func:`vload_s2` reading only the elements ``idx + j`` with ``lo <= j < hi`` (j < 16);
    lanes whose element is not read are 0."""
    sig = f32x8(arr, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _vec_ptr(context, builder, signature.args[0], args[0], args[1], _VEC2)
        mask_t = ir.VectorType(ir.IntType(1), 2 * LANES)
        fn = _intrinsic_fn(builder, "llvm.masked.load.v16f32.p0v16f32", _VEC2,
                           [_VEC2.as_pointer(), _I32, mask_t, _VEC2])
        mask = _range_mask(builder, args[2], args[3], 2 * LANES)
        wide = builder.call(fn, [ptr, ir.Constant(_I32, 4), mask,
                                 ir.Constant(_VEC2, [0.0] * 2 * LANES)])
        return builder.shuffle_vector(wide, ir.Constant(_VEC2, ir.Undefined),
                                      ir.Constant(_IVEC, list(range(0, 2 * LANES, 2))))

    return sig, codegen


@intrinsic
def vload_s2(typingctx, arr, idx):
    """``arr[idx:idx + 16:2]``: one 16-wide load and an even-lane shuffle."""
    sig = f32x8(arr, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _vec_ptr(context, builder, signature.args[0], args[0], args[1], _VEC2)
        wide = builder.load(ptr, align=4, typ=_VEC2)
        return builder.shuffle_vector(wide, ir.Constant(_VEC2, ir.Undefined),
                                      ir.Constant(_IVEC, list(range(0, 2 * LANES, 2))))

    return sig, codegen


@intrinsic
def vsplat(typingctx, x):
    """Every lane ``x`` (a float32)."""
    sig = f32x8(types.float32)

    def codegen(context, builder, signature, args):
        v = builder.insert_element(ir.Constant(_VEC, ir.Undefined), args[0],
                                   ir.Constant(_I32, 0))
        return builder.shuffle_vector(v, ir.Constant(_VEC, ir.Undefined),
                                      ir.Constant(_IVEC, [0] * LANES))

    return sig, codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` lane by lane, one rounding (``llvm.fma``)."""
    sig = f32x8(f32x8, f32x8, f32x8)

    def codegen(context, builder, signature, args):
        fn = _intrinsic_fn(builder, "llvm.fma.v8f32", _VEC, [_VEC] * 3)
        return builder.call(fn, list(args))

    return sig, codegen


@intrinsic
def vhsum(typingctx, a):
    """The sum of the lanes (a float32; in any order)."""
    sig = types.float32(f32x8)

    def codegen(context, builder, signature, args):
        fn = _intrinsic_fn(builder, "llvm.vector.reduce.fadd.v8f32", _F32, [_F32, _VEC])
        # reassoc: a tree of shuffles and adds, not eight serial adds.
        return builder.call(fn, [ir.Constant(_F32, 0.0), args[0]], fastmath=("reassoc",))

    return sig, codegen


def _arith(name: str):
    @intrinsic
    def op(typingctx, a, b):
        sig = f32x8(f32x8, f32x8)

        def codegen(context, builder, signature, args):
            return getattr(builder, name)(args[0], args[1])

        return sig, codegen

    return op


#: Lane-wise ``a + b`` and ``a * b``.
vadd = _arith("fadd")
vmul = _arith("fmul")


def _select(pred: str):
    @intrinsic
    def op(typingctx, a, b):
        sig = f32x8(f32x8, f32x8)

        def codegen(context, builder, signature, args):
            take_b = builder.fcmp_ordered(pred, args[0], args[1])
            return builder.select(take_b, args[1], args[0])

        return sig, codegen

    return op


#: Lane-wise max / min as ``b if a < b else a`` (resp. ``>``): a NaN in ``a`` stays NaN, as
#: the scalar kernels' ``max(x, 0)`` does (one ``vmaxps`` / ``vminps``).
vmax = _select("<")
vmin = _select(">")


@njit
def _selftest(x, y):
    a = vload(x, 0)
    vstore(y, 0, vadd(vmul(a, a), vfma(a, vsplat(x[1]), vload_s2(x, 0))))
    vstore_n(y, 8, vmin(vmax(vload_n(x, 3, 5), vsplat(x[0])), vsplat(x[2])), 5)
    y[15] = vhsum(vadd(vload_at(x.ctypes.data, 0), vload_at_n(x.ctypes.data, 0, 1)))


def warm() -> None:
    import numpy as np

    _selftest(np.arange(32, dtype=np.float32), np.zeros(16, np.float32))
