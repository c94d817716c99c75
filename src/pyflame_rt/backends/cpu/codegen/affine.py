"""Inference BatchNormalization as one pass: y = act(x * scale[c] + shift[c]).

:func:`specialize_batch_norm` is the planner's fast path for float32 ``BatchNormalization``
with constant parameters and one output: the four parameter vectors are folded once, at
compile time, into ``scale = gamma / sqrt(var + eps)`` and ``shift = beta - mean * scale``
(in float64), and the run is one numba pass over the planes, split across the session's
threads. The planner may hand it the activation that follows (``absorb``), e.g. the ReLU of
DenseNet's pre-activation BN-ReLU-Conv blocks, which then costs nothing, and the channel
Concat before it (``absorb_concat``): DenseNet concatenates every earlier feature map before
each BatchNormalization, and reading the pieces where they lie saves building that growing
tensor once per layer (measured: up to a fifth of DenseNet-121's run time).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import threads
from . import par
from .activations import ACT_CODES

__all__ = ["ChannelAffine", "ConcatPieces", "specialize_batch_norm"]

#: Elements per parallel job.
_JOB = 1 << 16


class ConcatPieces:
    """A channel (axis 1) concatenation that was not built: what an absorbed Concat step
    returns to the one consumer that reads it piece by piece (:meth:`ChannelAffine.__call__`).
    """

    nbytes = 0  # the pieces are accounted for where they were produced

    def __init__(self, pieces: tuple[np.ndarray, ...]) -> None:
        self.pieces = pieces
        first = pieces[0]
        self.dtype = first.dtype
        self.shape = (first.shape[0], sum(p.shape[1] for p in pieces), *first.shape[2:])

    def materialize(self) -> np.ndarray:
        return np.concatenate(self.pieces, axis=1)


def _deferred_concat(concat: Callable[..., Any], axis: int) -> Callable[..., Any]:
    """A Concat step that returns its inputs unjoined when they are float32 arrays of one
    rank >= 3 that agree outside the channel axis they are joined on; anything else goes to
    the Concat kernel (which raises the errors)."""

    def run(*inputs: Any) -> Any:
        first = inputs[0] if inputs else None
        if (isinstance(first, np.ndarray) and first.dtype == np.float32 and first.ndim >= 3
                and axis in (1, 1 - first.ndim)):
            rank, batch, spatial = first.ndim, first.shape[0], first.shape[2:]
            for x in inputs:
                if (not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != rank
                        or x.shape[0] != batch or x.shape[2:] != spatial):
                    return concat(*inputs)
            return ConcatPieces(inputs)
        return concat(*inputs)

    return run


_recent = threading.local()


def _addresses(pieces: list[np.ndarray]) -> np.ndarray:
    """The data addresses of ``pieces`` (int64). Reading one costs microseconds
    (``ndarray.ctypes``), and DenseNet's consecutive concatenations share all their pieces
    but the last, so the addresses of the previous call are reused for the pieces that are
    still the very same array objects (weak references: a dead array is never matched)."""
    refs, known = getattr(_recent, "pieces", ((), None))
    same = 0
    for ref, p in zip(refs, pieces):
        if ref() is not p:
            break
        same += 1
    addrs = np.empty(len(pieces), np.int64)
    if same:
        addrs[:same] = known[:same]
    for i in range(same, len(pieces)):
        addrs[i] = pieces[i].ctypes.data
    _recent.pieces = (tuple(refs[:same]) + tuple(weakref.ref(p) for p in pieces[same:]), addrs)
    return addrs


class ChannelAffine:
    """The specialized BatchNormalization: same positional signature as the kernel."""

    def __init__(self, scale: np.ndarray, shift: np.ndarray, sources: tuple,
                 fallback: Callable[..., Any]) -> None:
        self.scale = np.ascontiguousarray(scale, dtype=np.float32)
        self.shift = np.ascontiguousarray(shift, dtype=np.float32)
        self.sources = sources
        self.fallback = fallback
        self.act, self.a0, self.a1 = 0, 0.0, 0.0
        self.absorbed: str | None = None
        self._tables: dict[tuple[int, ...], tuple[np.ndarray, ...]] = {}

    def absorb(self, activation: str) -> bool:
        """Apply ``activation`` (a fused-op activation name) to the output too."""
        if self.absorbed is not None or activation not in ACT_CODES or not activation:
            return False
        self.act = ACT_CODES[activation]
        self.absorbed = activation
        return True

    def absorb_concat(self, concat: Callable[..., Any], axis: Any) -> Callable[..., Any] | None:
        """The replacement of a Concat step (kernel ``concat``, attribute ``axis``) whose
        output only this BatchNormalization reads: it hands over the pieces unjoined."""
        if axis is None or not isinstance(axis, (int, np.integer)):
            return None
        return _deferred_concat(concat, int(axis))

    def __call__(self, X: Any, *params: Any, _ctx: Any = None) -> np.ndarray:
        c = self.scale.size
        if isinstance(X, ConcatPieces):
            if (X.shape[1] == c and par.available()
                    and all(p is s for p, s in zip(params, self.sources))):
                return self._pieces(X)
            X = X.materialize()
        if (X.dtype != np.float32 or X.ndim < 2 or X.shape[1] != c or not par.available()
                or any(p is not s for p, s in zip(params, self.sources))):
            y = self.fallback(X, *params, _ctx=_ctx)
            if self.absorbed:
                from ..fused import apply_activation

                y = apply_activation(np.array(y, copy=True), self.absorbed, [])
            return y
        x = X if X.flags.c_contiguous else np.ascontiguousarray(X)
        y = np.empty(x.shape, np.float32)
        parts, plane = self._parts(x.shape)
        par.run("channel_affine", parts, x.reshape(-1), y.reshape(-1), self.scale, self.shift,
                c, plane, self.act, self.a0, self.a1)
        return y

    def _parts(self, shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
        c = self.scale.size
        planes = shape[0] * c
        plane = math.prod(shape[2:])
        per = max(1, _JOB // max(plane, 1))
        nthreads = threads.current_threads()
        if nthreads > 1:
            per = min(per, max(1, -(-planes // (4 * nthreads))))
        parts = np.array([(a, min(planes, a + per)) for a in range(0, planes, per)],
                         np.int64).reshape(-1, 2)
        return parts, plane

    def _pieces(self, X: ConcatPieces) -> np.ndarray:
        pieces = [p if p.flags.c_contiguous else np.ascontiguousarray(p) for p in X.pieces]
        key = tuple(p.shape[1] for p in pieces)
        tables = self._tables.get(key)
        if tables is None:
            piece = np.repeat(np.arange(len(key), dtype=np.int64), key)
            starts = np.cumsum((0,) + key[:-1], dtype=np.int64)
            pci = np.arange(piece.size, dtype=np.int64) - starts[piece]
            tables = self._tables[key] = (piece, np.array(key, np.int64), pci)
        piece, pch, pci = tables
        y = np.empty(X.shape, np.float32)
        parts, plane = self._parts(X.shape)
        addrs = _addresses(pieces)
        # ``pieces`` keeps every source alive until the kernel has read it.
        par.run("channel_affine_pieces", parts, addrs, piece, pch, pci, y.reshape(-1),
                self.scale, self.shift, self.scale.size, plane, self.act, self.a0, self.a1)
        return y


def specialize_batch_norm(ctx: Any, fallback: Callable[..., Any]) -> ChannelAffine | None:
    """A :class:`ChannelAffine` for inference BatchNormalization with constant parameters."""
    attrs = ctx.attrs
    if attrs.get("training_mode", 0) or not attrs.get("spatial", 1):
        return None
    if len([v for v in ctx.node.outputs if v is not None]) != 1:
        return None
    types = list(ctx.input_types)
    dtype = getattr(getattr(types[0] if types else None, "dtype", None), "numpy", None)
    if dtype is not None and dtype != np.float32:
        return None
    consts = list(ctx.constants)
    if len(consts) != 5 or any(not isinstance(c, np.ndarray) or c.dtype != np.float32
                               or c.ndim != 1 for c in consts[1:]):
        return None
    gamma, beta, mean, var = (c.astype(np.float64) for c in consts[1:])
    if not (gamma.size == beta.size == mean.size == var.size):
        return None
    eps = float(attrs.get("epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mean * scale
    bound = {k: v for k, v in attrs.items() if k in ("epsilon", "momentum", "spatial",
                                                      "training_mode")}

    def generic(X: np.ndarray, *params: Any, _ctx: Any = None) -> Any:
        return fallback(X, *params, _ctx=_ctx, **bound)

    return ChannelAffine(scale, shift, tuple(consts[1:]), generic)
