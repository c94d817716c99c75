"""BiasSoftmax: ``Softmax(x + b)  ==>  pyflame.BiasSoftmax(x, b, axis)`` (EXTENDED level).

The additive mask before a softmax that the attention fusion did not take (an attention
block it refused, or a plain masked softmax). ``b`` may be any tensor that broadcasts to
``x``'s shape without widening it (the sum must have ``x``'s shape); the sum must not be read
elsewhere. Softmax-1/11 normalize over the flattened axes ``[axis, rank)``: they are fused
only when ``axis`` is the last axis, where both definitions agree. Runs after the attention
fusion so it never takes an attention block's mask.
"""

from __future__ import annotations

from .._util import get_attr, node_opset, rank_of, same_shape
from ..pattern import Match, RewriteRule

__all__ = ["bias_softmax_rules"]

PYFLAME = "pyflame"


def _pattern(op, x, b):
    return op.Softmax(op.Add(x, b, _name="add"), _name="softmax")


def _check(m: Match):
    s = m.value("add")
    if s.dtype is None or not s.dtype.is_float:
        return m.fail("the sum's dtype is unknown or not float")
    # The Add commutes, so the matcher also offers the operands swapped: X is the summand
    # with the sum's shape.
    if not same_shape(m["x"], s):
        return m.fail("the summand is not known to have the sum's shape (the Add broadcasts "
                      "both ways, or shapes are unknown)")
    softmax = m.node("softmax")
    axis = int(get_attr(softmax, "axis", -1))
    rank = rank_of(s)
    if node_opset(softmax) < 13 and not (axis == -1 or (rank is not None and axis == rank - 1)):
        return m.fail(f"Softmax-{node_opset(softmax)} over the flattened axes from {axis}: only "
                      "the last axis is fused")
    return m.ok()


def _rewrite(op, m: Match):
    return op.BiasSoftmax(m["x"], m["b"], _domain=PYFLAME, _name="biassoftmax",
                          axis=int(get_attr(m.node("softmax"), "axis", -1)))


def bias_softmax_rules() -> list[RewriteRule]:
    return [RewriteRule("fuse_bias_softmax", _pattern, _rewrite, _check)]
