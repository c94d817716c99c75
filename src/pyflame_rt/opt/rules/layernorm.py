"""LayerNormalization from its decomposed form, and SkipLayerNormalization (EXTENDED level).

* ``fuse_layernorm``: ``mean = ReduceMean(x); d = x - mean;
  y = d / Sqrt(ReduceMean(d^2) + eps) * gamma + beta  ==>  LayerNormalization(x, gamma, beta)``
  over the last axis. ``d^2`` may be ``Pow(d, 2)`` or ``d * d``, the division a
  ``Mul(Reciprocal)``; ``gamma``/``beta`` may be missing. The result is ONNX's
  ``LayerNormalization`` from opset 17, ``pyflame.LayerNormalization`` below.
* ``fuse_skip_layernorm``: ``LayerNormalization(a + b) ==> pyflame.SkipLayerNormalization(a,
  b)`` when ``a`` and ``b`` have the same shape; the sum stays available as the fused node's
  second output when something else reads it (pre-LN transformers' residual stream).
"""

from __future__ import annotations

import numpy as np

from .._util import get_attr, node_opset, rank_of, same_shape, scalar_of
from ..passes.constant_folding import DEFAULT_MAX_ELEMENTS
from ..pattern import Match, RewriteRule

__all__ = ["layernorm_rules"]

PYFLAME = "pyflame"


def _norm_core(op, x, eps, square: str, divide: str):
    d = op.Sub(x, op.ReduceMean(x, _allow_other_inputs=True, _name="mean"), _name="sub")
    sq = op.Pow(d, 2.0) if square == "pow" else op.Mul(d, d)
    std = op.Sqrt(op.Add(op.ReduceMean(sq, _allow_other_inputs=True, _name="var"), eps))
    return op.Div(d, std) if divide == "div" else op.Mul(d, op.Reciprocal(std))


def _pattern(square: str, divide: str, tail: str):
    if tail == "both":
        def pattern(op, x, eps, gamma, beta):
            return op.Add(op.Mul(_norm_core(op, x, eps, square, divide), gamma), beta)
    elif tail == "scale":
        def pattern(op, x, eps, gamma):
            return op.Mul(_norm_core(op, x, eps, square, divide), gamma)
    else:
        def pattern(op, x, eps):
            return _norm_core(op, x, eps, square, divide)
    return pattern


def _reduce_axes(m: Match, name: str) -> list[int] | None:
    node = m.node(name)
    if int(get_attr(node, "keepdims", 1)) != 1:
        return None
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = m.ctx.const(node.inputs[1])
        return None if axes is None else [int(a) for a in axes.reshape(-1)]
    axes = node.attrs.get("axes")
    return None if axes is None else [int(a) for a in axes]


def _last_dim(x) -> int | None:
    if x.shape is None or not x.shape or not isinstance(x.shape[-1], int):
        return None
    return x.shape[-1]


def _vector(m: Match, name: str, size: int | None) -> str | None:
    """Refusal reason unless ``name`` is a per-feature vector of the normalized axis."""
    if not m.has(name):
        return None
    v = m[name]
    arr = m.const(name)
    if arr is not None:
        if arr.size != (size if size is not None else arr.shape[-1] if arr.ndim else 1) or \
                (arr.ndim and arr.shape[-1] != arr.size):
            return f"{name} of shape {arr.shape} is not a vector over the last axis"
        return None
    if rank_of(v) != 1:
        return f"{name} is not a constant and not 1-D"
    return None


def _ln_check(m: Match):
    x = m["x"]
    if x.dtype is None or not x.dtype.is_float:
        return m.fail("the input dtype is unknown or not float")
    rank = rank_of(x)
    for name in ("mean", "var"):
        axes = _reduce_axes(m, name)
        if axes is None or len(axes) != 1 or not (axes[0] == -1 or (rank is not None and
                                                                     axes[0] == rank - 1)):
            return m.fail(f"ReduceMean {name!r} does not reduce (keepdims) the last axis only")
    eps = scalar_of(m.const("eps"))
    if eps is None or eps < 0:
        return m.fail("epsilon is not a non-negative scalar constant")
    size = _last_dim(x)
    for name in ("gamma", "beta"):
        why = _vector(m, name, size)
        if why:
            return m.fail(why)
        if m.has(name) and m[name].dtype is not x.dtype:
            return m.fail(f"{name} has another dtype than the input")
    if not m.has("gamma") and (size is None or size > DEFAULT_MAX_ELEMENTS):
        # The rewrite materialises a scale of ones from the declared size: never trust a
        # huge declared dim with an allocation (a hostile 700-byte model could ask for GBs).
        return m.fail("without a scale, the size of the last dim must be known and modest")
    return m.ok()


def _as_vector(op, m: Match, name: str):
    arr = m.const(name)
    if arr is None:
        return m[name]
    if arr.ndim == 1:
        return m[name]
    return op.initializer(arr.reshape(-1), f"{name}_vec")


def _ln_rewrite(op, m: Match):
    x = m["x"]
    if m.has("gamma"):
        gamma = _as_vector(op, m, "gamma")
    else:
        gamma = op.initializer(np.ones(_last_dim(x), dtype=x.dtype.numpy), "ln_scale")
    beta = _as_vector(op, m, "beta") if m.has("beta") else None
    eps = scalar_of(m.const("eps"))
    if node_opset(m.root) >= 17:
        return op.LayerNormalization(x, gamma, beta, _name="layernorm", axis=-1, epsilon=eps)
    return op.LayerNormalization(x, gamma, beta, _domain=PYFLAME, _name="layernorm", axis=-1,
                                 epsilon=eps)


# -- SkipLayerNormalization ---------------------------------------------------------------------
def _skip_pattern(domain: str):
    def pattern(op, a, b, gamma):
        s = op.Add(a, b, _name="add")
        y = op.LayerNormalization(s, gamma, _allow_other_inputs=True, _domain=domain,
                                  _name="ln")
        return y, s
    return pattern


def _skip_check(m: Match):
    ln = m.node("ln")
    rank = rank_of(m["a"])
    axis = int(get_attr(ln, "axis", -1))
    if not (axis == -1 or (rank is not None and axis == rank - 1)):
        return m.fail(f"LayerNormalization normalizes from axis {axis}, not the last axis only")
    if not same_shape(m["a"], m["b"]):
        return m.fail("the two summands are not known to have the same shape")
    if rank_of(m["gamma"]) != 1 or (len(ln.inputs) > 2 and ln.inputs[2] is not None and
                                    rank_of(ln.inputs[2]) != 1):
        return m.fail("scale or bias is not 1-D")
    if m["a"].dtype is None or m["a"].dtype is not m["b"].dtype:
        return m.fail("the summands' dtypes differ or are unknown")
    return m.ok()


def _skip_rewrite(op, m: Match):
    ln = m.node("ln")
    s = m.value("add")
    need_sum = bool(s.uses) and any(u.node is not ln for u in s.uses) or s.is_graph_output
    beta = ln.inputs[2] if len(ln.inputs) > 2 else None
    outs = op.SkipLayerNormalization(m["a"], m["b"], m["gamma"], beta, _domain=PYFLAME,
                                     _outputs=2 if need_sum else 1, _name="skiplayernorm",
                                     epsilon=float(get_attr(ln, "epsilon", 1e-5)))
    if need_sum:
        return outs[0], outs[1]
    return outs, None


def layernorm_rules() -> list[RewriteRule]:
    rules = []
    for tail in ("both", "scale", "none"):
        for square in ("pow", "mul"):
            for divide in ("div", "reciprocal"):
                rules.append(RewriteRule("fuse_layernorm", _pattern(square, divide, tail),
                                         _ln_rewrite, _ln_check))
    return rules


def skip_layernorm_rules() -> list[RewriteRule]:
    return [RewriteRule("fuse_skip_layernorm", _skip_pattern(d), _skip_rewrite, _skip_check)
            for d in ("", PYFLAME)]
