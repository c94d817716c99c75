"""EmbedLayerNormalization: BERT's (and GPT-2's) embedding sum + LayerNorm ``==>`` one node
(EXTENDED level)::

    s = Gather(word, input_ids) + position term [+ Gather(segment, token_type_ids)]
    y = LayerNormalization(s, gamma, beta)              (last axis)

``==> y, s = pyflame.EmbedLayerNormalization(input_ids, segment_ids, word, position,
segment, gamma, beta, position_ids; epsilon)``. The position term is ``Gather(position,
position_ids)`` or, once constant folding has gathered it already, a constant of shape
``[S, hidden]`` (leading 1s allowed) whose ``S`` equals ``input_ids``' last dim: the fused node
then takes it as the position table with no ``position_ids`` (rows ``0 .. S-1``). The sum
stays available as the second output when something else reads it (GPT-2's residual stream,
where the "LayerNorm" is the first block's ``ln_1``). No mask index is produced: our fused
attention takes the padding mask as an additive bias directly.

Every Gather must be along axis 0 of a 2-D table of the input's float dtype, and the sum must
have the shape of the word-embedding Gather (no term widens it). Runs after the LayerNorm
fusion (so decomposed LayerNorms count) and before the SkipLayerNorm fusion (which would
otherwise take the last Add).
"""

from __future__ import annotations

from .._util import get_attr, rank_of, same_shape
from ..pattern import Match, RewriteRule

__all__ = ["embed_layernorm_rules"]

PYFLAME = "pyflame"


def _embed(op, terms: list, gamma, ln_domain: str):
    """``terms``: ``(table, ids)`` pairs (a Gather) or a value (the constant position term);
    two terms are added, three as ``(a + b) + c``."""
    made = [op.Gather(t[0], t[1], _name=f"gather{i}") if isinstance(t, tuple) else t
            for i, t in enumerate(terms)]
    s = op.Add(made[0], made[1], _name="add0")
    if len(made) == 3:
        s = op.Add(s, made[2], _name="add1")
    y = op.LayerNormalization(s, gamma, _allow_other_inputs=True, _domain=ln_domain, _name="ln")
    return y, s


def _patterns(dom: str) -> list:
    """One pattern per sum shape (``g``: a Gather, ``c``: a constant term)."""
    return [
        lambda op, t0, i0, t1, i1, t2, i2, gamma:  # ggg
            _embed(op, [(t0, i0), (t1, i1), (t2, i2)], gamma, dom),
        lambda op, t0, i0, t1, i1, c2, gamma:  # ggc
            _embed(op, [(t0, i0), (t1, i1), c2], gamma, dom),
        lambda op, t0, i0, c1, t2, i2, gamma:  # gcg
            _embed(op, [(t0, i0), c1, (t2, i2)], gamma, dom),
        lambda op, t0, i0, t1, i1, gamma:  # gg
            _embed(op, [(t0, i0), (t1, i1)], gamma, dom),
        lambda op, t0, i0, c1, gamma:  # gc
            _embed(op, [(t0, i0), c1], gamma, dom),
    ]


def _gathers(m: Match) -> list[tuple[str, object, object]]:
    return [(f"gather{i}", m[f"t{i}"], m[f"i{i}"]) for i in range(3) if m.has(f"gather{i}")]


def _check(m: Match):
    ln = m.node("ln")
    s = m.value("add1") if m.has("add1") else m.value("add0")
    x_dtype = s.dtype
    if x_dtype is None or not x_dtype.is_float:
        return m.fail("the embedding sum's dtype is unknown or not float")
    rank = rank_of(s)
    axis = int(get_attr(ln, "axis", -1))
    if rank is None or not (axis == -1 or axis == rank - 1):
        return m.fail(f"LayerNormalization normalizes from axis {axis}, not the last axis only")
    if int(get_attr(ln, "stash_type", 1)) != 1:
        return m.fail("LayerNormalization with stash_type other than float32")
    word = None
    for i, (name, table, ids) in enumerate(_gathers(m)):
        node = m.node(name)
        if int(get_attr(node, "axis", 0)) != 0:
            return m.fail(f"Gather {node.name!r} is not along axis 0")
        if rank_of(table) != 2 or table.dtype is not x_dtype:
            return m.fail(f"Gather {node.name!r} does not read a 2-D table of the sum's dtype")
        if ids.dtype is None or ids.dtype.name not in ("INT32", "INT64"):
            return m.fail(f"Gather {node.name!r} has indices that are not int32/int64")
        if word is None and m.ctx.const(ids) is None:
            word = (name, table, ids)
    if word is None:
        return m.fail("every Gather has constant indices: no input_ids to embed")
    if not same_shape(m.value(word[0]), s):
        return m.fail("a summand widens the sum beyond the word embedding's shape")
    for i in range(3):
        if not m.has(f"c{i}"):
            continue
        arr = m.const(f"c{i}")
        if arr is None:
            return m.fail("the position term is neither a Gather nor a constant")
        seq = word[2].shape[-1] if word[2].shape else None
        width = word[1].shape[-1] if word[1].shape else None
        if arr.ndim < 2 or any(d != 1 for d in arr.shape[:-2]) or \
                not isinstance(seq, int) or tuple(arr.shape[-2:]) != (seq, width):
            return m.fail(f"the constant position term of shape {arr.shape} is not "
                          f"[S, hidden] = [{seq}, {width}]")
        if arr.dtype != x_dtype.numpy:
            return m.fail("the constant position term has another dtype than the sum")
    if len(ln.inputs) > 2 and ln.inputs[2] is not None and rank_of(ln.inputs[2]) != 1 or \
            rank_of(m["gamma"]) != 1:
        return m.fail("scale or bias is not 1-D")
    return m.ok()


def _rewrite(op, m: Match):
    ln = m.node("ln")
    gathers = _gathers(m)
    word_i = next(i for i, (_, _, ids) in enumerate(gathers) if m.ctx.const(ids) is None)
    _, word, input_ids = gathers.pop(word_i)
    position = position_ids = segment = segment_ids = None
    consts = [i for i in range(3) if m.has(f"c{i}")]
    if consts:
        arr = m.const(f"c{consts[0]}")
        position = m[f"c{consts[0]}"] if arr.ndim == 2 else \
            op.initializer(arr.reshape(arr.shape[-2:]), "position_embedding")
    for _, table, ids in gathers:
        # Constant indices mark the position table; the others are segment (token type).
        if position is None and m.ctx.const(ids) is not None:
            position, position_ids = table, ids
        elif segment is None:
            segment, segment_ids = table, ids
        else:
            position, position_ids = table, ids
    s = m.value("add1") if m.has("add1") else m.value("add0")
    need_sum = s.is_graph_output or any(u.node is not ln for u in s.uses)
    beta = ln.inputs[2] if len(ln.inputs) > 2 else None
    outs = op.EmbedLayerNormalization(input_ids, segment_ids, word, position, segment,
                                      m["gamma"], beta, position_ids, _domain=PYFLAME,
                                      _outputs=2 if need_sum else 1, _name="embedlayernorm",
                                      epsilon=float(get_attr(ln, "epsilon", 1e-5)))
    if need_sum:
        return outs[0], outs[1]
    return outs, None


def embed_layernorm_rules() -> list[RewriteRule]:
    return [RewriteRule("fuse_embed_layernorm", pattern, _rewrite, _check)
            for dom in ("", PYFLAME) for pattern in _patterns(dom)]
