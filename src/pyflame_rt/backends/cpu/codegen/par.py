"""Run a ``_nb_par`` driver on the running session's threads (see :mod:`..threads`)."""

from __future__ import annotations

import importlib.util
from typing import Any

from .. import threads
from . import kernels
from .blas import sgemm_info

__all__ = ["available", "blas", "gemv", "run"]

_nb = kernels("par")
_state: dict[str, Any] = {}


def blas() -> tuple[int, bool]:
    """(sgemm address, 64-bit ints) for the kernels (see :func:`available`)."""
    info = sgemm_info()
    if info is None:
        raise RuntimeError("no cblas_sgemm in numpy's BLAS; check par.available() first")
    return info.address, info.ilp64


def gemv() -> int:
    """The address of ``cblas_sgemv`` (same library and integer width as :func:`blas`)."""
    info = sgemm_info()
    if info is None:
        raise RuntimeError("no cblas_sgemv in numpy's BLAS; check par.available() first")
    return info.gemv


def available() -> bool:
    """Whether the numba kernels can run (numba importable and numpy's BLAS found)."""
    ok = _state.get("available")
    if ok is None:
        # find_spec, not import: importing numba costs ~0.5 s and ~70 MB, which a session
        # whose plan never runs a numba kernel should not pay at build time.
        ok = importlib.util.find_spec("numba") is not None and sgemm_info() is not None
        _state["available"] = ok
    return bool(ok)


def run(name: str, *args: Any) -> None:
    """Run the driver ``name`` of ``_nb_par`` with ``args`` (after its control arguments)."""
    threads.run_parallel(_nb.DRIVERS[name], *args)
