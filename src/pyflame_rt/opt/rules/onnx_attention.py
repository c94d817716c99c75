"""ONNX ``Attention`` (opset 23+) on projections ``==> pyflame.Attention`` (EXTENDED level).

``Attention(x @ Wq + bq, x @ Wk + bk, x @ Wv + bv; q_num_heads=H, kv_num_heads=H, is_causal,
scale, attn_mask)  ==>  pyflame.Attention(x, [Wq|Wk|Wv], [bq|bk|bv]; num_heads=H, scale,
unidirectional=is_causal)`` — the three projections packed into one weight, as the decomposed
attention fusion does. The projections may also be one packed ``x @ Wqkv + b`` split in three
equal parts along the features (q, k, v order).

Fused only where the two ops mean the same thing; otherwise the rule refuses with the reason
and the ONNX kernel runs the node:

* Q, K and V are 3-D ``[B, S, heads * D]`` projections of the same tensor with constant
  weights, each read only by this node, with ``q_num_heads == kv_num_heads`` (no GQA/MQA);
  or 4-D ``[B, heads, S, D]`` heads split off such projections by ``Reshape`` +
  ``Transpose(0, 2, 1, 3)`` whose output is merged back by ``Transpose(0, 2, 1, 3)`` +
  ``Reshape [B, S, heads * D]`` (what torch's dynamo exporter writes for
  ``scaled_dot_product_attention`` at opset 23; the fused node replaces that Reshape's
  output). Cross-attention, graph inputs and other layouts are refused; q, k and v need one
  head size;
* no KV cache (``past_key``/``past_value``, opset 24's ``nonpad_kv_seqlen``), no
  ``present_*``/``qk_matmul_output`` output read, ``softcap == 0``, opset 25's window sizes
  ``-1``, ``softmax_precision`` absent or the input's own type;
* ``attn_mask`` must be a constant (boolean: kept as the fused node's ``mask``; float: its
  ``attention_bias``) broadcasting to ``[.., S, S]`` that, together with ``is_causal``, leaves
  every query at least one key. ONNX defines a fully masked row as a zero output row, the fused
  kernel's softmax gives NaN there, so a mask fed at run time (which could mask a whole row) is
  refused.
"""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Node, Value
from .._util import get_attr, rank_of, static_shape
from ..pass_manager import PassContext
from ..pattern import Rule, replace_and_erase
from .attention import _heads, _projection, _Refuse, _split_slot, _Walk

__all__ = ["OnnxAttentionFusion", "onnx_attention_rules"]

PYFLAME = "pyflame"


class OnnxAttentionFusion(Rule):
    """Tried at every ONNX ``Attention`` node; see the module docstring."""

    name = "fuse_onnx_attention"
    root_ops = ("Attention",)

    def try_node(self, node: Node, graph: Graph, ctx: PassContext, *,
                 dry_run: bool = False) -> str | None:
        try:
            plan = self._match(node, graph, ctx)
        except _Refuse as exc:
            return str(exc)
        if not dry_run:
            self._rewrite(graph, node, plan)
        return None

    def _match(self, node: Node, graph: Graph, ctx: PassContext) -> dict:
        inputs = list(node.inputs) + [None] * 7
        q, k, v, mask = inputs[:4]
        if any(x is not None for x in inputs[4:7]):
            raise _Refuse("past_key/past_value/nonpad_kv_seqlen given: a KV cache is not fused")
        for i, out in enumerate(node.outputs[1:], 1):
            if out is not None and (out.uses or out.is_graph_output):
                raise _Refuse(f"output {i} ({out.name!r}) is read; the fused node has only Y")
        if float(get_attr(node, "softcap", 0.0) or 0.0) != 0.0:
            raise _Refuse("softcap is set")
        for attr in ("left_window_size", "right_window_size"):
            if int(get_attr(node, attr, -1)) != -1:
                raise _Refuse(f"{attr} is set (sliding-window attention)")
        ranks = {rank_of(x) for x in (q, k, v)}
        if ranks not in ({3}, {4}):
            raise _Refuse("Q, K and V are neither all 3-D [batch, sequence, heads * head_size] "
                          "nor all 4-D [batch, heads, sequence, head_size]")
        four_d = ranks == {4}
        walk = _Walk()
        if four_d:
            # The dynamo exporter's form: heads split off the projections by Reshape +
            # Transpose(0, 2, 1, 3), and merged back the same way after the op.
            out_node = self._merged_heads(node)
            x, w, b, heads = self._head_projections(q, k, v, graph, ctx, walk)
            walk.add(out_node[0])
            walk.add(out_node[1])
        else:
            heads = get_attr(node, "q_num_heads")
            if heads is None or get_attr(node, "kv_num_heads") != heads:
                raise _Refuse("q_num_heads and kv_num_heads differ (GQA/MQA) or are missing")
            heads = int(heads)
        dtype = q.dtype
        if dtype is None or not dtype.is_float or k.dtype is not dtype or v.dtype is not dtype:
            raise _Refuse("Q, K and V are not float tensors of one dtype")
        precision = get_attr(node, "softmax_precision")
        if precision is not None and int(precision) != dtype.value:
            raise _Refuse(f"softmax_precision={precision} differs from the inputs' type")
        if not four_d:
            x, w, b = self._projections(q, k, v, graph, ctx, walk)
        if x.dtype is not dtype or w.dtype != dtype.numpy:
            raise _Refuse("the projected tensor or the weights have another dtype")
        if w.shape[1] % (3 * heads):
            raise _Refuse(f"projection width {w.shape[1] // 3} is not a multiple of {heads} "
                          "heads")
        for n in walk.nodes:
            for out in n.outputs:
                if out is None:
                    continue
                if out is walk.nodes[-1].outputs[0] and four_d:
                    continue  # the merged heads: the fused node's output
                if out.is_graph_output or any(u.node is not node and
                                              all(u.node is not m for m in walk.nodes)
                                              for u in out.uses):
                    raise _Refuse(f"{out.name!r} (a projection) is also read outside the "
                                  "attention")
        causal = bool(int(get_attr(node, "is_causal", 0)))
        bias = keep = None
        if mask is not None:
            bias, keep = self._mask(mask, x, ctx, causal)
        scale = get_attr(node, "scale")
        dim = w.shape[1] // (3 * heads)
        if four_d:
            merged = walk.nodes[-1].outputs[0].shape
            if isinstance(merged[-1], int) and merged[-1] != heads * dim:
                raise _Refuse(f"the heads are merged into {merged}, not [B, S, {heads * dim}]")
        return {"x": x, "w": w, "b": b, "heads": heads, "causal": causal, "bias": bias,
                "keep": keep, "walk": walk, "out": walk.nodes[-1].outputs[0] if four_d else
                node.outputs[0],
                "scale": float(scale) if scale is not None else 1.0 / float(np.sqrt(dim))}

    @staticmethod
    def _projections(q: Value, k: Value, v: Value, graph: Graph, ctx: PassContext,
                     walk: _Walk) -> tuple[Value, np.ndarray, np.ndarray | None]:
        split = q.producer
        if split is not None and split.op_type == "Split" and split.graph is graph and \
                k.producer is split and v.producer is split:
            slots = tuple(_split_slot(split, t, ctx) for t in (q, k, v))
            if slots != (0, 1, 2):
                raise _Refuse(f"Q, K, V are parts {slots} of one Split; expected 0, 1, 2")
            walk.add(split)
            return _projection(split.inputs[0], graph, ctx, walk)
        found = [_projection(t, graph, ctx, walk) for t in (q, k, v)]
        xs = [f[0] for f in found]
        if not (xs[0] is xs[1] is xs[2]):
            raise _Refuse("Q, K and V are projected from different tensors (cross-attention is "
                          "not fused)")
        ws = [f[1] for f in found]
        if len({w.shape for w in ws}) != 1:
            raise _Refuse("the q, k and v projections have different widths")
        bs = [f[2] for f in found]
        b = None
        if any(x is not None for x in bs):
            b = np.concatenate([x if x is not None else np.zeros(w.shape[1], w.dtype)
                                for x, w in zip(bs, ws)]).astype(ws[0].dtype)
        return xs[0], np.concatenate(ws, axis=1), b

    @staticmethod
    def _merged_heads(node: Node) -> tuple[Node, Node]:
        """Y [B, H, S, D] -> Transpose(0, 2, 1, 3) -> Reshape [B, S, H * D]."""
        y = node.outputs[0]
        uses = y.uses
        if y.is_graph_output or len(uses) != 1 or uses[0].node.op_type != "Transpose" or \
                [int(p) for p in get_attr(uses[0].node, "perm") or []] != [0, 2, 1, 3]:
            raise _Refuse("the 4-D output is not only transposed back to [B, S, heads, D]")
        tr = uses[0].node
        t_out = tr.outputs[0]
        uses = t_out.uses
        if t_out.is_graph_output or len(uses) != 1 or uses[0].node.op_type != "Reshape" or \
                rank_of(uses[0].node.outputs[0]) != 3:
            raise _Refuse("the transposed output is not only reshaped to [B, S, heads * D]")
        return tr, uses[0].node

    @staticmethod
    def _head_projections(q: Value, k: Value, v: Value, graph: Graph, ctx: PassContext,
                          walk: _Walk) -> tuple[Value, np.ndarray, np.ndarray | None, int]:
        want = ["b", "h", "s", "d"]
        found = [_heads(t, graph, ctx, walk, want, False) for t in (q, k, v)]
        (qp, heads, dim, q_slot), (kp, k_heads, k_dim, k_slot), (vp, v_heads, v_dim, v_slot) = \
            found
        if (k_heads, k_dim, v_heads, v_dim) != (heads, dim, heads, dim):
            raise _Refuse("q, k and v do not have the same number of heads and head size "
                          "(GQA/MQA or another value head size)")
        slots = (q_slot, k_slot, v_slot)
        if all(slot is None for slot in slots):
            parts = [_projection(p, graph, ctx, walk) for p in (qp, kp, vp)]
            if not (parts[0][0] is parts[1][0] is parts[2][0]):
                raise _Refuse("Q, K and V are projected from different tensors "
                              "(cross-attention is not fused)")
            ws = [part[1] for part in parts]
            bs = [part[2] for part in parts]
            b = None
            if any(x is not None for x in bs):
                b = np.concatenate([x if x is not None else np.zeros(w.shape[1], w.dtype)
                                    for x, w in zip(bs, ws)]).astype(ws[0].dtype)
            x, w = parts[0][0], np.concatenate(ws, axis=1)
        elif slots == (0, 1, 2) and qp is kp is vp:
            x, w, b = _projection(qp, graph, ctx, walk)
        else:
            raise _Refuse(f"Q/K/V take parts {slots} of their projections; expected one packed "
                          "projection in q, k, v order or three separate ones")
        if w.shape[1] != 3 * heads * dim:
            raise _Refuse(f"projection width {w.shape[1]} is not 3 x {heads} heads x {dim}")
        return x, w, b, heads

    @staticmethod
    def _mask(mask: Value, x: Value, ctx: PassContext, causal: bool
              ) -> tuple[Value | None, Value | None]:
        arr = ctx.const(mask)
        if arr is None:
            raise _Refuse("attn_mask is fed at run time; it could mask a whole query row, which "
                          "ONNX Attention makes a zero row and the fused kernel NaN")
        shape = static_shape(x)
        if shape is None:
            raise _Refuse("the sequence length is not known")
        seq = shape[1]
        if arr.ndim < 1 or arr.ndim > 4 or arr.shape[-1] != seq or \
                (arr.ndim > 1 and arr.shape[-2] not in (1, seq)):
            raise _Refuse(f"attn_mask of shape {arr.shape} does not broadcast to [.., {seq}, "
                          f"{seq}]")
        allowed = arr if arr.dtype == np.bool_ else ~np.isneginf(arr)
        if causal:
            allowed = allowed & np.tril(np.ones((seq, seq), bool))
        if not allowed.any(axis=-1).all():
            raise _Refuse("attn_mask (with is_causal) masks a whole query row")
        if arr.dtype == np.bool_:
            return None, mask
        if arr.dtype != x.dtype.numpy:
            raise _Refuse("the float attn_mask has another dtype than the inputs")
        return mask, None

    def _rewrite(self, graph: Graph, node: Node, plan: dict) -> None:
        w_val = graph.add_initializer(graph.unique_name("attention_qkv_weight"),
                                      np.ascontiguousarray(plan["w"]))
        b_val = None
        if plan["b"] is not None:
            b_val = graph.add_initializer(graph.unique_name("attention_qkv_bias"),
                                          np.ascontiguousarray(plan["b"]))
        attrs = {"num_heads": plan["heads"], "scale": plan["scale"]}
        if plan["causal"]:
            attrs["unidirectional"] = 1
        ins = [plan["x"], w_val, b_val, plan["bias"], plan["keep"]]
        while ins and ins[-1] is None:
            ins.pop()
        fused = graph.make_node("Attention", ins, 1, attrs, domain=PYFLAME, name="attention",
                                before=plan["out"].producer)
        out, new = plan["out"], fused.outputs[0]
        new.type = out.type
        replace_and_erase(graph, [node, *plan["walk"].nodes], [out], [new], fresh=[new])


def onnx_attention_rules() -> list[Rule]:
    return [OnnxAttentionFusion()]
