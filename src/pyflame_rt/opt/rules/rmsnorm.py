"""RMSNorm, as PyTorch (``nn.RMSNorm``, LLaMA's ``LlamaRMSNorm``) exports it written out
(EXTENDED level)::

    ms = ReduceMean(x^2, axes=[-1], keepdims=1)          x^2 as Pow(x, 2) or x * x
    r  = Sqrt(ms + eps)
    y  = x / r      or  x * Reciprocal(r)  or  x * (1 / r)     (torch.rsqrt's export)
    y  = y * gamma                                              (optional)

``==> RMSNormalization(x, gamma, axis=-1, epsilon=eps)``: ONNX's RMSNormalization-23 when the
model imports opset 23 or later, ``pyflame.RMSNormalization`` (same math, output in x's dtype)
below. Without ``gamma`` a scale of ones is added. A model that already holds an ONNX
RMSNormalization node runs it on its own kernel; nothing to fuse.
"""

from __future__ import annotations

import numpy as np

from .._util import node_opset, rank_of, scalar_of
from ..passes.constant_folding import DEFAULT_MAX_ELEMENTS
from ..pattern import Match, RewriteRule
from .layernorm import _last_dim, _reduce_axes, _vector

__all__ = ["rmsnorm_rules"]

PYFLAME = "pyflame"


def _core(op, x, eps, square: str, divide: str):
    sq = op.Pow(x, 2.0) if square == "pow" else op.Mul(x, x)
    r = op.Sqrt(op.Add(op.ReduceMean(sq, _allow_other_inputs=True, _name="ms"), eps))
    if divide == "div":
        return op.Div(x, r)
    if divide == "reciprocal":
        return op.Mul(x, op.Reciprocal(r))
    return op.Mul(x, op.Div(1.0, r))


def _pattern(square: str, divide: str, scaled: bool):
    if scaled:
        def pattern(op, x, eps, gamma):
            return op.Mul(_core(op, x, eps, square, divide), gamma)
    else:
        def pattern(op, x, eps):
            return _core(op, x, eps, square, divide)
    return pattern


def _check(m: Match):
    x = m["x"]
    if x.dtype is None or not x.dtype.is_float:
        return m.fail("the input dtype is unknown or not float")
    axes = _reduce_axes(m, "ms")
    rank = rank_of(x)
    if axes is None or len(axes) != 1 or not (axes[0] == -1 or (rank is not None and
                                                                 axes[0] == rank - 1)):
        return m.fail("the ReduceMean does not reduce (keepdims) the last axis only")
    eps = scalar_of(m.const("eps"))
    if eps is None or eps < 0:
        return m.fail("epsilon is not a non-negative scalar constant")
    size = _last_dim(x)
    if m.has("gamma"):
        why = _vector(m, "gamma", size)
        if why:
            return m.fail(why)
        if m["gamma"].dtype is not x.dtype:
            return m.fail("gamma has another dtype than the input")
    elif size is None or size > DEFAULT_MAX_ELEMENTS:
        # The rewrite materialises a scale of ones from the declared size.
        return m.fail("without a scale, the size of the last dim must be known and modest")
    return m.ok()


def _rewrite(op, m: Match):
    x = m["x"]
    if m.has("gamma"):
        arr = m.const("gamma")
        gamma = m["gamma"] if arr is None or arr.ndim == 1 else \
            op.initializer(arr.reshape(-1), "rms_scale")
    else:
        gamma = op.initializer(np.ones(_last_dim(x), dtype=x.dtype.numpy), "rms_scale")
    eps = float(scalar_of(m.const("eps")))
    if node_opset(m.root) >= 23:
        return op.RMSNormalization(x, gamma, _name="rmsnorm", axis=-1, epsilon=eps)
    return op.RMSNormalization(x, gamma, _domain=PYFLAME, _name="rmsnorm", axis=-1,
                               epsilon=eps)


def rmsnorm_rules() -> list[RewriteRule]:
    rules = []
    for scaled in (True, False):
        for square in ("pow", "mul"):
            for divide in ("div", "reciprocal", "one_div"):
                rules.append(RewriteRule("fuse_rmsnorm", _pattern(square, divide, scaled),
                                         _rewrite, _check))
    return rules
