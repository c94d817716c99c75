"""Kernels generated as LLVM IR from Python and JIT-compiled for the host CPU.

numba cannot keep a block of accumulators in vector registers, so the kernels that need
it (the blocked direct convolution of ``conv/nchwc.py``) are written here as explicit
``<16 x float>`` (AVX-512) or ``<8 x float>`` (AVX2) FMA code with ``llvmlite.ir``
(:mod:`.irb` helpers, :mod:`.conv` generators), compiled once for the host by
:mod:`.engine`, which keeps the object code in the user cache directory.
"""

from __future__ import annotations

from .engine import compile_generated, compile_ir, host_cpu, vector_width

__all__ = ["compile_generated", "compile_ir", "host_cpu", "vector_width"]
