"""Compiled building blocks of the CPU backend.

numba kernels live in ``_nb_*.py`` modules that are imported lazily (numba's import and
compiler set-up cost about a second, paid on a plan's first run, never at ``import
pyflame_rt``); :mod:`.jit` holds the shared settings, the cold-compile notice and
:func:`.jit.warmup`. :mod:`.scratch` hands out per-thread work buffers.
"""

from __future__ import annotations

from .jit import lazy_import, warmup

__all__ = ["kernels", "lazy_import", "warmup"]


def kernels(name: str):
    """The lazily imported numba kernel module ``codegen._nb_<name>``."""
    return lazy_import(f"{__name__}._nb_{name}")
