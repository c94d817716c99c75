"""One threading policy per run: BLAS (and, later, JIT) pools sized by ``intra_op_num_threads``.

OpenBLAS and numba's pools must not fight for the same cores, so a session that asks for
``n`` threads gets at most ``n`` in each while its kernels run. threadpoolctl changes the
limit process-wide, so concurrent sessions asking for different counts share the last one set
while both run; the default (0) leaves the libraries' own defaults alone.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

__all__ = ["thread_limit"]


@functools.lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def thread_limit(num_threads: int) -> Iterator[None]:
    """Limit BLAS/OpenMP pools to ``num_threads`` inside the block (0 = no change)."""
    if num_threads <= 0:
        yield
        return
    with _controller().limit(limits=num_threads):
        yield
