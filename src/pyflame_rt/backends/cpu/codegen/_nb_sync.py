"""Atomics and spin-waiting for numba code (imported lazily).

The thread pool of :mod:`..threads` hands jobs out through an int64 control array that every
thread updates with atomic fetch-and-add, and its workers wait for work by spinning on a flag
without the GIL; numba has no atomics, so these intrinsics emit them as LLVM IR (``atomicrmw``,
``load atomic``, ``store atomic`` and x86's ``pause`` hint (``llvm.x86.sse2.pause``), a no-op
elsewhere).
"""

from __future__ import annotations

import platform

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

from .jit import njit

__all__ = ["fetch_add", "load", "spin_until_changed", "store"]

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _slot(context, builder, aty, arr, idx):
    data = context.make_array(aty)(context, builder, arr).data
    return builder.gep(data, [idx])


@intrinsic
def fetch_add(typingctx, arr, idx, val):
    """Atomically ``old = arr[idx]; arr[idx] += val``; returns ``old`` (int64 arrays)."""
    sig = types.int64(arr, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _slot(context, builder, signature.args[0], args[0], args[1])
        return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

    return sig, codegen


@intrinsic
def load(typingctx, arr, idx):
    """Atomic (acquire) load of ``arr[idx]``: re-read every time, never hoisted."""
    sig = types.int64(arr, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _slot(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@intrinsic
def store(typingctx, arr, idx, val):
    """Atomic (release) store ``arr[idx] = val``."""
    sig = types.void(arr, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _slot(context, builder, signature.args[0], args[0], args[1])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def pause(typingctx):
    """The spin-loop hint (x86 ``pause``): polite to the sibling hyper-thread."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module,
                                                ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@njit
def spin_until_changed(flags, idx, old, max_spins):
    """Spin until ``flags[idx] != old`` (True) or ``max_spins`` pauses passed (False)."""
    for _ in range(max_spins):
        if load(flags, idx) != old:
            return True
        pause()
    return load(flags, idx) != old


@njit
def spin_count(n):
    """Run ``n`` spin iterations (to calibrate their duration)."""
    flags = np.zeros(1, np.int64)
    return spin_until_changed(flags, 0, 0, n)


def warm() -> None:
    spin_count(10)
