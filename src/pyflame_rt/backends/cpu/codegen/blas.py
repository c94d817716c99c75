"""Where numpy's BLAS ``sgemm``/``sgemv`` live, so numba kernels can call them without the GIL.

The parallel kernels (``_nb_par.py``) run whole jobs -- gather, GEMM, epilogue -- inside
numba's parallel loops, so a job never needs the GIL; their GEMMs call the ``cblas_sgemm`` of
the OpenBLAS that numpy itself uses, through a function pointer passed in at run time (a
pointer baked into the code would defeat numba's on-disk cache). This module finds that
symbol (``scipy_cblas_sgemm64_`` in numpy's wheels; plain ``cblas_sgemm`` elsewhere) and
whether the library takes 64-bit integers. Without it the backend keeps its numpy kernels.
"""

from __future__ import annotations

import ctypes
import functools
import logging

__all__ = ["SgemmInfo", "sgemm_info"]

_log = logging.getLogger("pyflame_rt")

# (symbol, 64-bit integers)
_CANDIDATES = (("scipy_cblas_sgemm64_", True), ("cblas_sgemm64_", True),
               ("scipy_cblas_sgemm", False), ("cblas_sgemm", False))


class SgemmInfo:
    """The addresses of ``cblas_sgemm`` and ``cblas_sgemv`` and their integer width."""

    def __init__(self, address: int, ilp64: bool, library: str, gemv: int = 0) -> None:
        self.address = address
        self.ilp64 = ilp64
        self.library = library
        self.gemv = gemv


@functools.cache
def sgemm_info() -> SgemmInfo | None:
    """numpy's ``cblas_sgemm``, or None when it cannot be found."""
    try:
        import numpy  # noqa: F401 - threadpoolctl only sees loaded libraries
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - both are dependencies
        return None
    paths = [i["filepath"] for i in threadpool_info()
             if i.get("user_api") == "blas" and i.get("filepath")]
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name, ilp64 in _CANDIDATES:
            fn = getattr(lib, name, None)
            gemv = getattr(lib, name.replace("sgemm", "sgemv"), None)
            if fn is not None and gemv is not None:
                return SgemmInfo(ctypes.cast(fn, ctypes.c_void_p).value or 0, ilp64, path,
                                 ctypes.cast(gemv, ctypes.c_void_p).value or 0)
    _log.info("pyflame_rt: no cblas_sgemm found in numpy's BLAS (%s); parallel GEMM kernels "
              "are off", ", ".join(paths) or "none loaded")
    return None
