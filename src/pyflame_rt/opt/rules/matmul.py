"""``pyflame.FusedMatMul``: MatMul with transposed inputs, a scale and a bias (EXTENDED level).

``FusedMatMul(A, B, C; alpha, transA, transB) = alpha * A' @ B' + C`` where ``'`` swaps the
last two axes when the flag is set. Rules:

* ``fuse_matmul_bias``: ``Add(MatMul(a, b), c) ==> FusedMatMul(a, b, c)`` for a constant ``c``
  that does not grow the product's shape (N-D; the 2-D case became ``Gemm`` at BASIC level).
* ``fuse_matmul_transpose_a`` / ``_b``: ``MatMul(Transpose(a), b)`` whose transpose swaps the
  last two axes ``==> FusedMatMul(a, b, transA=1)``.
* ``fuse_matmul_scale``: ``Mul/Div(MatMul(a, b), s)`` and ``MatMul(Mul(a, s), b)`` for a
  scalar constant ``s`` ``==> FusedMatMul(a, b, alpha=s)``.

Each applies to a ``FusedMatMul`` made earlier too, as long as its flags allow it (a bias
cannot be scaled afterwards, an activation ends the chain).
"""

from __future__ import annotations

from .._util import rank_of, same_shape, scalar_of
from ..pattern import Match, RewriteRule

__all__ = ["matmul_rules"]

PYFLAME = "pyflame"
_FLOAT = ("FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16")


def _plain(value) -> bool:
    return value in (None, "", b"")


def _swap_last(perm) -> bool:
    if perm is None:
        return False
    p = [int(i) for i in perm]
    n = len(p)
    return n >= 2 and p == list(range(n - 2)) + [n - 1, n - 2]


def _mm_pattern(op, a, b, fused: bool):
    if fused:
        return op.FusedMatMul(a, b, _domain=PYFLAME, _allow_other_inputs=True, _name="mm",
                              activation=_plain)
    return op.MatMul(a, b, _name="mm")


def _attrs(m: Match) -> dict:
    node = m.node("mm")
    return dict(node.attrs) if node.domain == PYFLAME else {}


def _float_check(m: Match):
    y = m.value("mm")
    if y.dtype is not None and y.dtype.name not in _FLOAT:
        return f"the product is {y.dtype.name}; FusedMatMul is float only"
    return None


# -- bias ------------------------------------------------------------------------------------------
def _bias_pattern(fused: bool):
    def pattern(op, a, b, c):
        return op.Add(_mm_pattern(op, a, b, fused), c, _name="add")
    return pattern


def _bias_check(m: Match):
    why = _float_check(m)
    if why:
        return m.fail(why)
    mm = m.node("mm")
    if len([v for v in mm.inputs if v is not None]) > 2:
        return m.fail("the FusedMatMul already has a bias")
    c = m.const("c")
    if c is None:
        return m.fail("the added tensor is not a constant")
    if not same_shape(m.value("add"), m.value("mm")):
        return m.fail("the added constant would broadcast the product to a larger shape "
                      "(or shapes are unknown)")
    if rank_of(m["a"]) == 2 and rank_of(m["b"]) == 2 and mm.domain != PYFLAME:
        return m.fail("2-D MatMul+Add is Gemm's job")
    if m.value("mm").dtype is not None and c.dtype != m.value("mm").dtype.numpy:
        return m.fail("the bias dtype differs from the product's")
    return m.ok()


def _bias_rewrite(op, m: Match):
    return op.FusedMatMul(m["a"], m["b"], m["c"], _domain=PYFLAME, _name="fusedmatmul",
                          **_attrs(m))


# -- transposed inputs --------------------------------------------------------------------------------
def _transpose_pattern(which: str, fused: bool):
    def pattern(op, a, b):
        t = op.Transpose(a if which == "a" else b, perm=_swap_last, _name="t")
        if which == "a":
            return _mm_pattern(op, t, b, fused)
        return _mm_pattern(op, a, t, fused)
    return pattern


def _transpose_check(m: Match):
    why = _float_check(m)
    if why:
        return m.fail(why)
    if rank_of(m.node("t").inputs[0]) is None:
        return m.fail("the transposed input's rank is unknown")
    return m.ok()


def _transpose_rewrite(which: str):
    def rewrite(op, m: Match):
        node = m.node("mm")
        attrs = _attrs(m)
        key = "transA" if which == "a" else "transB"
        attrs[key] = 1 - int(attrs.get(key, 0))
        src = m.node("t").inputs[0]
        a, b = (src, m["b"]) if which == "a" else (m["a"], src)
        return op.FusedMatMul(a, b, *node.inputs[2:], _domain=PYFLAME, _name="fusedmatmul",
                              **attrs)
    return rewrite


# -- scale -------------------------------------------------------------------------------------------
def _scale_out_pattern(op_name: str, fused: bool):
    def pattern(op, a, b, s):
        return getattr(op, op_name)(_mm_pattern(op, a, b, fused), s, _name="scale")
    return pattern


def _scale_in_pattern(fused: bool):
    def pattern(op, a, b, s):
        return _mm_pattern(op, op.Mul(a, s, _name="scale"), b, fused)
    return pattern


def _scale_check(m: Match):
    why = _float_check(m)
    if why:
        return m.fail(why)
    y = m.value("mm")
    if y.dtype is None or y.dtype.name not in ("FLOAT", "DOUBLE"):
        # In 16-bit floats, moving the scale across the product changes the rounding by
        # more than the format's precision.
        return m.fail("the product is not float32/float64 (16-bit floats would round "
                      "differently)")
    s = m.const("s")
    if scalar_of(s) is None or s.ndim > 1:
        return m.fail("the scale is not a scalar constant")
    if len([v for v in m.node("mm").inputs if v is not None]) > 2:
        return m.fail("the FusedMatMul has a bias, which the scale would have to scale too")
    if scalar_of(s) == 0.0:
        return m.fail("the scale is zero")
    return m.ok()


def _scale_rewrite(inside: bool):
    def rewrite(op, m: Match):
        node = m.node("mm")
        attrs = _attrs(m)
        s = scalar_of(m.const("s"))
        if m.node("scale").op_type == "Div":
            s = 1.0 / s
        attrs["alpha"] = float(attrs.get("alpha", 1.0)) * s
        a = m["a"]
        return op.FusedMatMul(a, m["b"], *node.inputs[2:], _domain=PYFLAME,
                              _name="fusedmatmul", **attrs)
    return rewrite


def matmul_rules() -> list[RewriteRule]:
    rules = []
    for fused in (False, True):
        rules.append(RewriteRule("fuse_matmul_bias", _bias_pattern(fused), _bias_rewrite,
                                 _bias_check))
        for which in ("a", "b"):
            rules.append(RewriteRule(f"fuse_matmul_transpose_{which}",
                                     _transpose_pattern(which, fused),
                                     _transpose_rewrite(which), _transpose_check))
        for op_name in ("Mul", "Div"):
            rules.append(RewriteRule("fuse_matmul_scale", _scale_out_pattern(op_name, fused),
                                     _scale_rewrite(False), _scale_check))
        rules.append(RewriteRule("fuse_matmul_scale", _scale_in_pattern(fused),
                                 _scale_rewrite(True), _scale_check))
    return rules
