"""Per-thread scratch buffers, reused across kernels and runs.

A fresh ``np.empty`` of a few MiB is a fresh ``mmap``: every page is zero-filled by the
kernel on first touch, which costs as much as the im2col copy that fills it. Each thread
(caller or pool worker) keeps one growing float32 buffer per named slot instead; a kernel
may use a slot only until it returns, and only from the thread that took it.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["scratch"]

_local = threading.local()
_FLOAT32 = np.dtype(np.float32)


def scratch(slot: str, size: int, dtype: np.dtype = _FLOAT32) -> np.ndarray:
    """A 1-D buffer of at least ``size`` elements for this thread's use of ``slot``."""
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    key = (slot, np.dtype(dtype))
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        # Grow by 1/4 extra so a slightly larger next request does not reallocate.
        buf = bufs[key] = np.empty(max(size, size + size // 4), dtype=dtype)
    return buf[:size]
