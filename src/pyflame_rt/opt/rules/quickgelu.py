"""QuickGelu: ``x * Sigmoid(alpha * x)  ==>  pyflame.QuickGelu(x, alpha)`` (EXTENDED level).

CLIP and other OpenAI models write the sigmoid approximation of GELU with ``alpha = 1.702``;
any positive scalar constant ``alpha`` is accepted (``alpha == 1`` is SiLU, which the
activation fusions already take after a Conv/Gemm/MatMul; a lone ``x * Sigmoid(x)`` has no
inner ``Mul`` and is left alone). Both products commute.
"""

from __future__ import annotations

from .._util import scalar_of
from ..pattern import Match, RewriteRule

__all__ = ["quickgelu_rules"]

PYFLAME = "pyflame"


def _pattern(op, x, alpha):
    return op.Mul(x, op.Sigmoid(op.Mul(x, alpha, _name="scale")), _name="mul")


def _check(m: Match):
    x = m["x"]
    if x.dtype is None or not x.dtype.is_float:
        return m.fail("the input dtype is unknown or not float")
    arr = m.const("alpha")
    alpha = scalar_of(arr)
    if alpha is None or arr.ndim > 1:
        return m.fail("the factor inside the Sigmoid is not a scalar constant")
    if alpha <= 0:
        return m.fail(f"the factor {alpha:g} inside the Sigmoid is not positive")
    if arr.dtype != x.dtype.numpy:
        return m.fail("the factor's dtype differs from the input's")
    return m.ok()


def _rewrite(op, m: Match):
    return op.QuickGelu(m["x"], _domain=PYFLAME, _name="quickgelu",
                        alpha=float(scalar_of(m.const("alpha"))))


def quickgelu_rules() -> list[RewriteRule]:
    return [RewriteRule("fuse_quick_gelu", _pattern, _rewrite, _check)]
