"""Fast float32 1-D/2-D convolutions: compile-time specialization of Conv and FusedConv.

``specialize_conv`` is the ``specialize=`` hook of the ``Conv`` and ``pyflame.FusedConv``
kernels. When the weights are a constant (the usual case after Conv+BatchNorm folding) it
packs them once and returns a :class:`ConvRunner`, which for each new input shape resolves
the geometry, picks a tactic (:mod:`.chooser`: timing cache, measurement or heuristic),
builds it, and keeps it in a small LRU of per-shape plans. Anything the fast path does not
cover (other dtypes, 3-D convolutions, weights fed at run time) goes to the generic numpy
kernel unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import threads
from ..codegen.activations import act_params
from .geometry import ConvGeometry
from .tactics import Epilogue, PackedWeights, Tactic, build

__all__ = ["ConvGeometry", "ConvRunner", "specialize_conv"]

_log = logging.getLogger("pyflame_rt")

#: Per-shape plans kept by one runner (dynamic shapes: one entry per shape seen).
_PLAN_CACHE = 8


class ConvRunner:
    """A Conv/FusedConv node with packed constant weights; same signature as the kernel."""

    def __init__(self, fallback: Callable[..., Any], attrs: Mapping[str, Any], w: np.ndarray,
                 b: np.ndarray | None, epi: Epilogue, options: Mapping[str, Any],
                 one_d: bool) -> None:
        self.fallback = fallback
        self.attrs = dict(attrs)
        self.w_source = w
        self.b_source = b
        self.one_d = one_d
        w4 = w[:, :, None, :] if one_d else w
        self.pack = PackedWeights(np.ascontiguousarray(w4, dtype=np.float32),
                                  int(attrs.get("group", 1) or 1))
        self.bias = (np.zeros(0, np.float32) if b is None
                     else np.ascontiguousarray(b, dtype=np.float32).reshape(-1))
        self.epi = epi
        self.options = dict(options)
        self.threads = int(self.options.get("intra_op_num_threads") or 0) or \
            threads.default_num_threads()
        self._plans: OrderedDict[tuple, tuple[Tactic, Callable]] = OrderedDict()
        self._lock = threading.Lock()

    # The kernel's positional signature: (X, W, B=None, Z=None).
    def __call__(self, X: np.ndarray, W: np.ndarray, B: np.ndarray | None = None,
                 Z: np.ndarray | None = None) -> np.ndarray:
        if (W is not self.w_source or X.dtype != np.float32 or X.ndim != W.ndim
                or X.size == 0  # empty batches: the reference path handles them
                or (B is not None and B is not self.b_source and B.dtype != np.float32)):
            return self.fallback(X, W, B, Z, **self.attrs)
        x = X[:, :, None, :] if self.one_d else X
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        run = self._plan(x.shape)
        if run is None:
            return self.fallback(X, W, B, Z, **self.attrs)
        bias = self.bias if B is self.b_source else \
            np.ascontiguousarray(B, dtype=np.float32).reshape(-1)
        z = None
        if Z is not None:
            zz = Z[:, :, None, :] if self.one_d and Z.ndim == 3 else Z
            out_shape = (x.shape[0], self.pack.w.shape[0], *self._out_hw(x.shape))
            if zz.shape != out_shape or zz.dtype != np.float32:
                return self.fallback(X, W, B, Z, **self.attrs)
            z = zz if zz.flags.c_contiguous else np.ascontiguousarray(zz)
        y = run(x, bias, z)
        return y[:, :, 0, :] if self.one_d else y

    def _out_hw(self, shape: tuple[int, ...]) -> tuple[int, int]:
        geo = self.geometry(shape)
        return (geo.oh, geo.ow) if geo is not None else (0, 0)

    def geometry(self, shape: Sequence[int]) -> ConvGeometry | None:
        """The geometry of an NCHW input shape, or None when the fast path does not apply."""
        from ..nn import resolve_padding, spatial_ints

        n, c, h, w = (int(d) for d in shape)
        m, cg, kh, kw = self.pack.w.shape
        g = self.pack.g
        if c != cg * g or m % g:
            return None  # the generic kernel raises the proper error
        a = self.attrs
        nsp = 1 if self.one_d else 2

        def two(name: str, default: int) -> tuple[int, int]:
            vals = spatial_ints(a.get(name), nsp, default, name)
            return (1, vals[0]) if self.one_d else (vals[0], vals[1])

        strides, dil = two("strides", 1), two("dilations", 1)
        pads = a.get("pads")
        if self.one_d and pads is not None:
            p = [int(v) for v in pads]
            pads = [0, p[0], 0, p[1]] if len(p) == 2 else p
        ks = a.get("kernel_shape")
        if ks is not None and tuple(int(k) for k in ks) != ((kw,) if self.one_d else (kh, kw)):
            return None
        try:
            begin, _, out = resolve_padding(a.get("auto_pad", "NOTSET"), (h, w), (kh, kw),
                                            strides, dil, pads)
        except ValueError:
            return None
        return ConvGeometry(n, c, h, w, m, g, kh, kw, strides[0], strides[1], dil[0], dil[1],
                            begin[0], begin[1], out[0], out[1])

    def _plan(self, shape: tuple[int, ...]) -> Callable | None:
        entry = self._plans.get(shape)
        if entry is not None:
            return entry[1]
        with self._lock:
            entry = self._plans.get(shape)
            if entry is None:
                geo = self.geometry(shape)
                if geo is None:
                    return None
                from .chooser import choose

                tactic = choose(geo, self.pack, self.threads, self.options)
                entry = (tactic, build(tactic, geo, self.pack, self.epi, self.threads))
                self._plans[shape] = entry
                while len(self._plans) > _PLAN_CACHE:
                    self._plans.popitem(last=False)
            else:
                self._plans.move_to_end(shape)
        return entry[1]

    def tactic_for(self, shape: Sequence[int]) -> Tactic | None:
        """The tactic used for an input shape (planned on demand); for tests and tools."""
        x_shape = tuple(shape)
        if self.one_d:
            x_shape = (x_shape[0], x_shape[1], 1, x_shape[2])
        if self._plan(x_shape) is None:
            return None
        return self._plans[x_shape][0]

    def prepare(self, shape: Sequence[Any]) -> None:
        """Plan ahead for an input shape with a possibly symbolic batch (taken as 1)."""
        dims = [d if isinstance(d, int) else 1 for d in shape]
        if all(isinstance(d, int) and d > 0 for d in dims):
            if self.one_d:
                dims = [dims[0], dims[1], 1, dims[2]]
            self._plan(tuple(dims))


def specialize_conv(ctx: Any, fallback: Callable[..., Any]) -> ConvRunner | None:
    """The ``specialize=`` hook of Conv/FusedConv: a :class:`ConvRunner` or None."""
    consts = list(ctx.constants) + [None] * 4
    w, b = consts[1], consts[2]
    if not isinstance(w, np.ndarray) or w.dtype != np.float32 or w.ndim not in (3, 4):
        return None
    if b is not None and (not isinstance(b, np.ndarray) or b.dtype != np.float32):
        return None
    xt = ctx.input_types[0] if ctx.input_types else None
    dtype = getattr(getattr(xt, "dtype", None), "numpy", None)
    if dtype is not None and dtype != np.float32:
        return None
    attrs = dict(ctx.attrs)
    try:
        code, a0, a1 = act_params(attrs.get("activation", "") or "",
                                  attrs.get("activation_params"))
    except ValueError:
        return None
    if isinstance(attrs.get("activation"), bytes):
        attrs["activation"] = attrs["activation"].decode()
    runner = ConvRunner(fallback, attrs, w, b, Epilogue(code, a0, a1), ctx.options,
                        one_d=w.ndim == 3)
    shape = getattr(xt, "shape", None)
    if shape is not None and len(shape) == w.ndim:
        try:
            runner.prepare(shape)
        except Exception as exc:  # noqa: BLE001 - planning ahead is an optimization only
            _log.debug("pyflame_rt: could not plan %s ahead: %s", ctx.node, exc)
    return runner
