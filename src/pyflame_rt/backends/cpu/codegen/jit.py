"""numba, imported lazily, cached on disk, never silent on a cold compile.

``numba`` costs ~0.4 s to import and ~0.6 s to set up its compiler on first use, and a cold
compile costs ~0.2-1 s per kernel, so nothing numba happens at ``import pyflame_rt`` or while
a session is built: the modules holding numba kernels (``codegen/_nb_*.py``) are imported
through :func:`lazy_import`, i.e. on the first attribute access, which happens on a plan's
first run. When their kernels are not in the on-disk cache yet (see :mod:`..threads` for its
location), one log record (logger ``pyflame_rt``, level WARNING) says that a one-time
compilation is happening; nothing is printed from a run. :func:`warmup` compiles every kernel
ahead of time (``pyflame-rt warmup``).

Kernels are compiled ``nogil`` and never use numba's threading layer: parallelism comes from
the pool of :mod:`..threads`, which runs the drivers of ``_nb_par.py`` on several threads.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .. import threads as _threads  # noqa: F401 - points numba's cache dir before import

__all__ = ["KERNEL_MODULES", "announce_if_cold", "lazy_import", "njit", "warmup"]

_log = logging.getLogger("pyflame_rt")
_announced = False

#: Modules of numba kernels, each with a ``warm()`` that compiles its signatures.
KERNEL_MODULES = ("_nb_vmath", "_nb_epilogue", "_nb_conv", "_nb_wino", "_nb_pool", "_nb_norm",
                  "_nb_sync", "_nb_par", "_nb_blocked")


def lazy_import(name: str) -> ModuleType:
    """The module ``name``, imported on its first attribute access."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def njit(*args: Any, **kwargs: Any) -> Any:
    """``numba.njit`` with the backend's settings: cached, ``nogil``, no bounds checks.

    ``fastmath`` defaults to ``{"contract", "arcp", "nsz", "reassoc"}``: FMA contraction and
    reassociation for vectorized reductions, but NaN and inf keep their IEEE meaning.
    """
    import numba

    kwargs.setdefault("cache", True)
    kwargs.setdefault("nogil", True)
    kwargs.setdefault("fastmath", {"contract", "arcp", "nsz", "reassoc"})
    kwargs.setdefault("error_model", "numpy")
    kwargs.setdefault("boundscheck", False)
    return numba.njit(*args, **kwargs)


def announce_if_cold(*dispatchers: Any) -> None:
    """Log once per process if none of ``dispatchers`` (cached numba functions of one module)
    is on disk yet, i.e. the module's kernels are about to be compiled for the first time."""
    global _announced
    if _announced:
        return
    try:
        indexes = [d._cache._cache_file._index_path for d in dispatchers]
    except AttributeError:  # pragma: no cover - numba internals moved; stay quiet
        return
    if indexes and not any(os.path.exists(i) for i in indexes):
        _announced = True
        _log.warning("pyflame_rt: compiling CPU kernels with numba (first use only, up to a "
                     "minute in all; cached in %s). `pyflame-rt warmup` does it ahead of time.",
                     os.path.dirname(indexes[0]))


def warmup(progress: Callable[[str, float], None] | None = None) -> float:
    """Compile (or load from the cache) every numba kernel; returns the seconds spent.

    ``progress(module, seconds)`` is called after each kernel module, then once more for
    the generated blocked-layout convolutions (``"nchwc"``, see :func:`..conv.nchwc.warm`).
    """
    start = time.perf_counter()
    for name in KERNEL_MODULES:
        t0 = time.perf_counter()
        module = importlib.import_module(f"{__package__}.{name}")
        module.warm()
        if progress is not None:
            progress(name, time.perf_counter() - t0)
    # The blocked-layout convolutions are generated LLVM IR, not numba: compiled per variant.
    from ..conv import nchwc

    t0 = time.perf_counter()
    nchwc.warm()
    if progress is not None:
        progress("nchwc", time.perf_counter() - t0)
    return time.perf_counter() - start
