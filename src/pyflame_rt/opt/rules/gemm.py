"""``MatMul + Add ==> Gemm`` and transposes folded into ``Gemm`` (BASIC level).

* ``fuse_matmul_add_gemm``: ``Add(MatMul(a, b), c) ==> Gemm(a, b, c)`` when ``a`` and ``b``
  are 2-D (as ONNX Runtime: Gemm is 2-D only) and ``c`` broadcasts to the product's shape
  without growing it (Gemm's unidirectional broadcast).
* ``fuse_transpose_gemm_a`` / ``_b``: ``Gemm(Transpose(a), b) ==> Gemm(a, b, transA=1)``.
"""

from __future__ import annotations

from .._util import get_attr, rank_of, same_shape
from ..pattern import Match, RewriteRule

__all__ = ["gemm_rules"]

_GEMM_DTYPES = ("FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16")


def _mm_add_pattern(op, a, b, c):
    return op.Add(op.MatMul(a, b, _name="mm"), c, _name="add")


def _mm_add_check(m: Match):
    a, b, c = m["a"], m["b"], m["c"]
    if rank_of(a) != 2 or rank_of(b) != 2:
        return m.fail(f"MatMul inputs have ranks {rank_of(a)} and {rank_of(b)}; Gemm needs 2-D "
                      "(FusedMatMul covers N-D)")
    rc = rank_of(c)
    if rc is None or rc > 2:
        return m.fail(f"the added tensor has rank {rc}; Gemm's C must be at most 2-D")
    if not same_shape(m.value("add"), m.value("mm")):
        return m.fail("the added tensor would broadcast the product to a larger shape")
    if a.dtype is None or a.dtype.name not in _GEMM_DTYPES or c.dtype is not a.dtype:
        return m.fail(f"dtypes {a.dtype} / {c.dtype} are not a float type Gemm takes")
    return m.ok()


def _mm_add_rewrite(op, m: Match):
    return op.Gemm(m["a"], m["b"], m["c"], _name="gemm")


def _swap2(perm) -> bool:
    return perm is None or list(perm) == [1, 0]


def _transpose_a_pattern(op, a, b):
    return op.Gemm(op.Transpose(a, perm=_swap2, _name="t"), b, _allow_other_inputs=True,
                   _name="gemm")


def _transpose_b_pattern(op, a, b):
    return op.Gemm(a, op.Transpose(b, perm=_swap2, _name="t"), _allow_other_inputs=True,
                   _name="gemm")


def _transpose_rewrite(which: str):
    def rewrite(op, m: Match):
        gemm = m.node("gemm")
        attrs = dict(gemm.attrs)
        key = "transA" if which == "a" else "transB"
        attrs[key] = 1 - int(get_attr(gemm, key, 0))
        inputs = [m["a"], m["b"], *gemm.inputs[2:]]
        return op.Gemm(*inputs, _name=gemm.name or "gemm", **attrs)
    return rewrite


def gemm_rules() -> list[RewriteRule]:
    return [
        RewriteRule("fuse_matmul_add_gemm", _mm_add_pattern, _mm_add_rewrite, _mm_add_check),
        RewriteRule("fuse_transpose_gemm_a", _transpose_a_pattern, _transpose_rewrite("a")),
        RewriteRule("fuse_transpose_gemm_b", _transpose_b_pattern, _transpose_rewrite("b")),
    ]
