"""Multi-head self-attention ``==> pyflame.Attention`` (EXTENDED level).

The block PyTorch exporters emit for BERT, GPT-2 and ViT::

    q, k, v = projections of x            (three MatMul+Add, or one whose output is split:
                                           Split along the features (GPT-2) or reshaped to
                                           [B, S, 3, heads, D] and unbound (timm's ViT))
    qh, vh  = heads(q), heads(v)          Reshape [B, S, heads, D] + Transpose -> [B, heads, S, D]
    kt      = heads(k) transposed         -> [B, heads, D, S]
    s       = (qh @ kt) * scale           (Div/Mul by constants, on the product or on q and k)
    s       = Where(causal, s, fill)      (optional; GPT-2)
    s       = s + bias                    (optional; BERT's additive padding mask, SDPA's mask)
    y       = Softmax(s) @ vh -> Transpose [B, S, heads, D] -> Reshape [B, S, heads * D]

``==> y = pyflame.Attention(x, W_qkv, b_qkv, bias, mask; num_heads, scale,
mask_filter_value, mask_keep, unidirectional)`` with the three weight matrices packed into one
(``[hidden, 3 * heads * D]``). A constant causal (lower-triangular) ``Where`` condition becomes
``unidirectional=1``. The rule is written by hand (the shapes vary too much for one declarative
pattern) but follows the same contract: every intermediate must be read only inside the block,
weights must be constants, and each refusal says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...ir import Graph, Node, Value
from .._util import get_attr, is_default_domain, rank_of, scalar_of
from ..pass_manager import PassContext
from ..pattern import Rule, replace_and_erase

__all__ = ["AttentionFusion", "attention_rules"]

PYFLAME = "pyflame"


class _Refuse(Exception):
    pass


@dataclass
class _Walk:
    nodes: list[Node] = field(default_factory=list)
    scale: float = 1.0

    def add(self, node: Node) -> None:
        if all(n is not node for n in self.nodes):
            self.nodes.append(node)


def _producer(v: Value | None, op_types: tuple[str, ...], graph: Graph) -> Node | None:
    if v is None or v.producer is None:
        return None
    node = v.producer
    if node.op_type in op_types and is_default_domain(node) and node.graph is graph:
        return node
    return None


def _scalar_operand(node: Node, ctx: PassContext) -> tuple[Value, float] | None:
    """For ``Mul(x, c)``/``Mul(c, x)``/``Div(x, c)`` with a scalar constant: ``(x, factor)``."""
    if len(node.inputs) != 2 or None in node.inputs:
        return None
    sides = [(0, 1), (1, 0)] if node.op_type == "Mul" else [(0, 1)]
    for keep, const in sides:
        arr = ctx.const(node.inputs[const])
        c = scalar_of(arr)
        if c is None or arr.ndim > 1 or c == 0.0:
            continue
        return node.inputs[keep], (c if node.op_type == "Mul" else 1.0 / c)
    return None


def _heads(v: Value, graph: Graph, ctx: PassContext, walk: _Walk, want: list[str],
           allow_scale: bool) -> tuple[Value, int, int, int | None]:
    """Trace a head tensor back to its projection.

    Returns ``(projected, heads, head_dim, slot)``: ``projected`` is ``[B, S, heads * D]``
    (``slot`` None) or ``[B, S, 3 * heads * D]`` whose ``slot``-th third this head uses.
    ``want`` names the required axis order of ``v`` (``b``, ``h``, ``s``, ``d``).
    """
    ops: list[tuple[str, object]] = []
    cur = v
    while True:
        node = cur.producer
        if node is None or node.graph is not graph or not is_default_domain(node):
            raise _Refuse(f"{cur.name!r} is not computed from a head reshape")
        if node.op_type == "Transpose":
            perm = get_attr(node, "perm")
            if perm is None:
                raise _Refuse("a Transpose without perm")
            ops.append(("perm", [int(p) for p in perm]))
            walk.add(node)
            cur = node.inputs[0]
        elif node.op_type in ("Mul", "Div") and allow_scale:
            found = _scalar_operand(node, ctx)
            if found is None:
                raise _Refuse(f"{node.op_type} {node.name!r} on a head is not by a scalar "
                              "constant")
            cur, factor = found
            walk.scale *= factor
            walk.add(node)
        elif node.op_type == "Squeeze":
            axes = ctx.const(node.inputs[1]) if len(node.inputs) > 1 and \
                node.inputs[1] is not None else np.asarray(node.attrs.get("axes", [0]))
            if axes is None or [int(a) for a in axes.reshape(-1)] != [0]:
                raise _Refuse("a Squeeze of another axis than 0")
            split = _producer(node.inputs[0], ("Split",), graph)
            if split is None or int(get_attr(split, "axis", 0)) != 0 or \
                    len(split.outputs) != 3:
                raise _Refuse("a Squeeze not fed by a 3-way Split along axis 0")
            ops.append(("select", split.outputs.index(node.inputs[0])))
            walk.add(node)
            walk.add(split)
            cur = split.inputs[0]
        elif node.op_type == "Gather":
            idx = ctx.const(node.inputs[1])
            if int(get_attr(node, "axis", 0)) != 0 or idx is None or idx.ndim != 0:
                raise _Refuse("a Gather that does not pick one index of axis 0")
            ops.append(("select", int(idx)))
            walk.add(node)
            cur = node.inputs[0]
        elif node.op_type == "Reshape":
            break
        else:
            raise _Refuse(f"{node.op_type} {node.name!r} between the projection and the heads")
    reshape = cur.producer
    walk.add(reshape)
    dims = reshape.outputs[0].shape
    projected = reshape.inputs[0]
    if dims is None or len(dims) not in (4, 5) or not all(isinstance(d, int)
                                                          for d in dims[-2:]):
        raise _Refuse(f"the head Reshape's output shape {dims} is not [B, S, (3,) heads, D]")
    names = ["b", "s", "h", "d"] if len(dims) == 4 else ["b", "s", "3", "h", "d"]
    if len(dims) == 5 and dims[2] != 3:
        raise _Refuse("a 5-D head Reshape whose third dim is not 3")
    slot = None
    for kind, arg in reversed(ops):
        if kind == "perm":
            if len(arg) != len(names):
                raise _Refuse("a Transpose of unexpected rank")
            names = [names[p] for p in arg]
        else:
            if names[0] != "3":
                raise _Refuse("the q/k/v selection is not along the packed axis")
            slot = int(arg)
            names = names[1:]
    if names != want:
        raise _Refuse(f"head axes are ordered {names}, attention needs {want}")
    if rank_of(projected) != 3:
        raise _Refuse("the projected tensor is not 3-D [batch, sequence, features]")
    heads, head_dim = int(dims[-2]), int(dims[-1])
    if len(dims) == 4:
        split = _producer(projected, ("Split",), graph)
        if split is not None:
            slot = _split_slot(split, projected, ctx)
            walk.add(split)
            projected = split.inputs[0]
    return projected, heads, head_dim, slot


def _split_slot(split: Node, part: Value, ctx: PassContext) -> int:
    rank = rank_of(split.inputs[0])
    axis = int(get_attr(split, "axis", 0))
    if not (axis == -1 or (rank is not None and axis == rank - 1)) or len(split.outputs) != 3:
        raise _Refuse("the projection is split along another axis than the features, or not "
                      "in three")
    sizes = None
    if len(split.inputs) > 1 and split.inputs[1] is not None:
        sizes = ctx.const(split.inputs[1])
        if sizes is None:
            raise _Refuse("the split sizes are not constant")
    elif "split" in split.attrs:
        sizes = np.asarray(split.attrs["split"])
    if sizes is not None and len({int(s) for s in sizes.reshape(-1)}) != 1:
        raise _Refuse("q, k and v have different sizes")
    return split.outputs.index(part)


def _projection(p: Value, graph: Graph, ctx: PassContext, walk: _Walk
                ) -> tuple[Value, np.ndarray, np.ndarray | None]:
    """``(x, W, b)`` with ``p = x @ W + b`` (MatMul+Add or FusedMatMul, constant W and b)."""
    node = p.producer
    if node is None or node.graph is not graph:
        raise _Refuse(f"{p.name!r} is not a projection")
    bias = None
    if node.op_type == "Add" and is_default_domain(node):
        for i in (0, 1):
            mm = _producer(node.inputs[i], ("MatMul",), graph)
            b = ctx.const(node.inputs[1 - i])
            if mm is not None and b is not None:
                walk.add(node)
                node, bias = mm, b
                break
        else:
            raise _Refuse(f"Add {node.name!r} is not MatMul + constant bias")
    if node.op_type == "MatMul" and is_default_domain(node):
        x, w = node.inputs[0], ctx.const(node.inputs[1])
    elif node.op_type == "FusedMatMul" and node.domain == PYFLAME and bias is None:
        if any(float(node.attrs.get(k, d)) != d for k, d in (("alpha", 1.0), ("transA", 0),
                                                              ("transB", 0))) or \
                node.attrs.get("activation") not in (None, ""):
            raise _Refuse("the FusedMatMul projection is scaled, transposed or activated")
        x, w = node.inputs[0], ctx.const(node.inputs[1])
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            bias = ctx.const(node.inputs[2])
            if bias is None:
                raise _Refuse("the projection bias is not constant")
    else:
        raise _Refuse(f"{node.op_type} {node.name!r} is not a MatMul projection")
    if w is None or w.ndim != 2:
        raise _Refuse("the projection weight is not a constant matrix")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != w.shape[1]):
        raise _Refuse(f"the projection bias of shape {bias.shape} is not a vector over the "
                      "outputs")
    walk.add(node)
    return x, w, bias


class AttentionFusion(Rule):
    """Tried at every ``Softmax``; see the module docstring."""

    name = "fuse_attention"
    root_ops = ("Softmax",)

    def try_node(self, node: Node, graph: Graph, ctx: PassContext, *,
                 dry_run: bool = False) -> str | None:
        try:
            plan = self._match(node, graph, ctx)
        except _Refuse as exc:
            return str(exc)
        if dry_run:
            return None
        self._rewrite(graph, plan)
        return None

    # -- matching ---------------------------------------------------------------------------
    def _match(self, softmax: Node, graph: Graph, ctx: PassContext) -> dict:
        walk = _Walk()
        walk.add(softmax)
        rank = rank_of(softmax.outputs[0])
        axis = int(get_attr(softmax, "axis", -1))
        if rank != 4 or axis not in (-1, 3):
            raise _Refuse(f"Softmax over axis {axis} of a rank-{rank} tensor, not the last "
                          "axis of [B, heads, S, S]")
        if (graph.opset("") or 13) < 13 and axis != 3:
            raise _Refuse("Softmax-1/11 over a flattened axis")
        # Forward: probs @ vh -> Transpose(0, 2, 1, 3) -> Reshape [B, S, heads * D].
        ctx_mm = self._only_consumer(softmax.outputs[0], "MatMul", 0)
        walk.add(ctx_mm)
        tr = self._only_consumer(ctx_mm.outputs[0], "Transpose", 0)
        if [int(p) for p in get_attr(tr, "perm") or []] != [0, 2, 1, 3]:
            raise _Refuse("the attention output is not transposed back to [B, S, heads, D]")
        walk.add(tr)
        out_reshape = self._only_consumer(tr.outputs[0], "Reshape", 0)
        walk.add(out_reshape)
        if rank_of(out_reshape.outputs[0]) != 3:
            raise _Refuse("the attention output is not reshaped to [B, S, features]")
        # Backward: the score chain down to qh @ kt.
        chain: list[tuple[str, object]] = []
        qk = self._scores(softmax.inputs[0], graph, ctx, walk, chain)
        # Heads and projections.
        qp, heads, dim, q_slot = _heads(qk.inputs[0], graph, ctx, walk, ["b", "h", "s", "d"],
                                        True)
        kp, k_heads, k_dim, k_slot = _heads(qk.inputs[1], graph, ctx, walk,
                                            ["b", "h", "d", "s"], True)
        v_walk = _Walk(walk.nodes)
        vp, v_heads, v_dim, v_slot = _heads(ctx_mm.inputs[1], graph, ctx, v_walk,
                                            ["b", "h", "s", "d"], False)
        if (k_heads, k_dim, v_heads, v_dim) != (heads, dim, heads, dim):
            raise _Refuse("q, k and v do not have the same number of heads and head size")
        slots = (q_slot, k_slot, v_slot)
        if all(s is None for s in slots):
            xs, ws, bs = zip(*(_projection(p, graph, ctx, walk) for p in (qp, kp, vp)))
            if not (xs[0] is xs[1] is xs[2]):
                raise _Refuse("query, key and value are projected from different tensors "
                              "(cross-attention is not fused)")
            x = xs[0]
            w = np.concatenate(ws, axis=1)
            if any(b is not None for b in bs):
                b = np.concatenate([bb if bb is not None else np.zeros(ww.shape[1], ww.dtype)
                                    for bb, ww in zip(bs, ws)])
            else:
                b = None
        elif slots == (0, 1, 2) and qp is kp is vp:
            x, w, b = _projection(qp, graph, ctx, walk)
        else:
            raise _Refuse(f"q/k/v take parts {slots} of their projections; expected one packed "
                          "projection in q, k, v order or three separate ones")
        if w.shape[1] != 3 * heads * dim:
            raise _Refuse(f"projection width {w.shape[1]} is not 3 x {heads} heads x {dim}")
        if x.dtype is None or not x.dtype.is_float or w.dtype != x.dtype.numpy:
            raise _Refuse("the input is not a float tensor of the weights' dtype")
        scale, fill, mask, keep, bias = self._canonical(chain, walk.scale)
        self._check_private(walk, out_reshape)
        causal = mask is not None and self._causal(mask, keep, ctx)
        return {"causal": causal, "walk": walk, "out": out_reshape.outputs[0], "x": x, "w": w, "b": b,
                "heads": heads, "scale": scale, "fill": fill, "mask": mask, "keep": keep,
                "bias": bias, "dim": dim}

    @staticmethod
    def _only_consumer(v: Value, op_type: str, index: int) -> Node:
        uses = v.uses
        if v.is_graph_output or len(uses) != 1 or uses[0].node.op_type != op_type or \
                uses[0].index != index or not is_default_domain(uses[0].node):
            raise _Refuse(f"{v.name!r} is not read only by a {op_type} (as input {index})")
        return uses[0].node

    def _scores(self, v: Value, graph: Graph, ctx: PassContext, walk: _Walk,
                chain: list) -> Node:
        node = v.producer
        if node is None or node.graph is not graph or not is_default_domain(node):
            raise _Refuse(f"the scores {v.name!r} are not computed by q @ k")
        walk.add(node)
        if node.op_type == "MatMul":
            return node
        if node.op_type in ("Mul", "Div"):
            found = _scalar_operand(node, ctx)
            if found is None:
                raise _Refuse(f"the scores are scaled by {node.op_type} {node.name!r} with a "
                              "non-scalar")
            chain.append(("scale", found[1]))
            return self._scores(found[0], graph, ctx, walk, chain)
        if node.op_type == "Where":
            cond, a, b = node.inputs
            fb, fa = scalar_of(ctx.const(b)), scalar_of(ctx.const(a))
            if fb is not None:
                chain.append(("where", (cond, True, fb)))
                return self._scores(a, graph, ctx, walk, chain)
            if fa is not None:
                chain.append(("where", (cond, False, fa)))
                return self._scores(b, graph, ctx, walk, chain)
            raise _Refuse("the Where on the scores has no constant fill value")
        if node.op_type == "Add":
            last = None
            for i in (0, 1):
                trial: list = []
                sub = _Walk(list(walk.nodes), walk.scale)
                try:
                    mm = self._scores(node.inputs[i], graph, ctx, sub, trial)
                except _Refuse as exc:
                    last = exc
                    continue
                chain.append(("add", node.inputs[1 - i]))
                chain.extend(trial)
                walk.nodes[:] = sub.nodes
                return mm
            raise last or _Refuse("neither summand of the scores' Add leads to q @ k")
        raise _Refuse(f"{node.op_type} {node.name!r} on the scores is not a scale, mask or "
                      "bias")

    @staticmethod
    def _canonical(chain: list, head_scale: float):
        """Rewrite the score ops (applied last-to-first) as: scale, then mask, then bias."""
        scale, fill, mask, keep, bias = head_scale, None, None, True, None
        for kind, arg in reversed(chain):
            if kind == "scale":
                if bias is not None:
                    raise _Refuse("the scores are scaled after the bias is added")
                scale *= arg
                if fill is not None:
                    fill *= arg
            elif kind == "where":
                if bias is not None or mask is not None:
                    raise _Refuse("the mask is applied after the bias, or twice")
                mask, keep, fill = arg
            else:
                if bias is not None:
                    raise _Refuse("two biases are added to the scores")
                bias = arg
        return scale, fill, mask, keep, bias

    @staticmethod
    def _check_private(walk: _Walk, last: Node) -> None:
        inside = {id(n) for n in walk.nodes}
        for n in walk.nodes:
            if n is last:
                continue
            for v in n.outputs:
                if v is None:
                    continue
                if v.is_graph_output:
                    raise _Refuse(f"{v.name!r} inside the attention block is a graph output")
                for use in v.uses:
                    if id(use.node) not in inside:
                        raise _Refuse(f"{v.name!r} inside the attention block is also read by "
                                      f"{use.node.op_type} {use.node.name!r}")

    # -- rewriting --------------------------------------------------------------------------
    @staticmethod
    def _causal(mask: Value, keep: bool, ctx: PassContext) -> bool:
        arr = ctx.const(mask)
        if arr is None or arr.ndim < 2 or arr.dtype != np.bool_ or \
                arr.shape[-1] != arr.shape[-2] or any(d != 1 for d in arr.shape[:-2]):
            return False
        tril = np.tril(np.ones(arr.shape[-2:], dtype=bool))
        square = arr.reshape(arr.shape[-2:])
        return bool(np.array_equal(square, tril if keep else ~tril))

    def _rewrite(self, graph: Graph, plan: dict) -> None:
        out: Value = plan["out"]
        x: Value = plan["x"]
        w_val = graph.add_initializer(graph.unique_name("attention_qkv_weight"),
                                      np.ascontiguousarray(plan["w"]))
        b_val = None
        if plan["b"] is not None:
            b_val = graph.add_initializer(graph.unique_name("attention_qkv_bias"),
                                          np.ascontiguousarray(plan["b"].astype(plan["w"].dtype)))
        attrs = {"num_heads": plan["heads"], "scale": float(plan["scale"])}
        mask = plan["mask"]
        if mask is not None:
            attrs["mask_filter_value"] = float(plan["fill"])
            if plan["causal"]:
                attrs["unidirectional"] = 1
                mask = None
            elif not plan["keep"]:
                attrs["mask_keep"] = 0
        ctx_inputs = [x, w_val, b_val, plan["bias"], mask]
        while ctx_inputs and ctx_inputs[-1] is None:
            ctx_inputs.pop()
        fused = graph.make_node("Attention", ctx_inputs, 1, attrs, domain=PYFLAME,
                                name="attention", before=plan["out"].producer)
        new = fused.outputs[0]
        new.type = out.type
        replace_and_erase(graph, plan["walk"].nodes, [out], [new], fresh=[new])


def attention_rules() -> list[Rule]:
    return [AttentionFusion()]
