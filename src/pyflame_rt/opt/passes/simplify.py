"""Eliminate nodes that do nothing, and collapse chains of layout ops.

Each simplification is a :class:`~pyflame_rt.opt.pattern.Rule` (so it is traced, counted and
can be switched off by name):

* ``eliminate_identity``: ``Identity(x) ==> x``.
* ``eliminate_dropout``: ``Dropout(x)`` in inference (no ``training_mode`` or a constant
  false one, mask output unused) ``==> x``.
* ``eliminate_noop_cast``: ``Cast(x, to=dtype(x))`` / ``CastLike`` of the same type ``==> x``.
* ``eliminate_noop_reshape``: ``Reshape``/``Flatten``/``Squeeze``/``Unsqueeze`` whose output
  shape equals the input shape ``==> x`` (shapes from inference; symbolic dims must agree).
* ``eliminate_noop_transpose``: ``Transpose`` with the identity permutation ``==> x``.
* ``eliminate_noop_expand``, ``eliminate_noop_slice`` (step 1 and same shape),
  ``eliminate_noop_pad`` (all pads 0), ``eliminate_noop_tile`` (all repeats 1),
  ``eliminate_single_input`` (``Concat``/``Sum``/``Max``/``Min``/``Mean`` of one input),
  ``eliminate_neutral_elementwise`` (``x+0``, ``x-0``, ``x*1``, ``x/1`` without broadcasting).
* ``fuse_transpose_pair``: ``Transpose(Transpose(x, p1), p2) ==> Transpose(x, p1[p2])``, or
  ``x`` when that is the identity.
* ``fuse_reshape_chain``: ``Reshape(Reshape|Flatten|Squeeze|Unsqueeze(x), s) ==> Reshape(x, s)``
  when ``s`` is a constant without 0 entries (0 would copy a dim of the intermediate).

A node whose output is a graph output is bypassed only when its input can take over the
output's name (it is a node output of the same graph, not an input or initializer).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ...ir import Graph, Node, Value
from .._util import get_attr, is_default_domain, rank_of, same_shape
from ..levels import OptLevel
from ..pass_manager import PassContext
from ..pattern import Rule, RuleSet

__all__ = ["SIMPLIFY", "bypass", "simplify_rules"]


def _renamable(value: Value, graph: Graph) -> bool:
    return value.producer is not None and not value.is_graph_output and value.graph is graph


def bypass(graph: Graph, node: Node, src: Value, *, dry_run: bool = False) -> str | None:
    """Make readers of ``node``'s first output read ``src``; remove ``node`` if now unused."""
    out = node.outputs[0]
    if out is None:
        return "the node has no output"
    if out.is_graph_output and not _renamable(src, graph):
        return (f"{out.name!r} is a graph output and {src.name!r} (a graph input, initializer "
                "or output) cannot take its name")
    if dry_run:
        return None
    if src.type is None and out.type is not None:
        src.type = out.type
    out.replace_all_uses_with(src)
    if all(v is None or (not v.uses and not v.is_graph_output) for v in node.outputs):
        graph.remove_node(node)
    return None


class _Eliminate(Rule):
    """Bypass a node when :meth:`reason` finds nothing against it."""

    def __init__(self, name: str, ops: tuple[str, ...]) -> None:
        self.name = name
        self.root_ops = ops

    def reason(self, node: Node, ctx: PassContext) -> str | None:  # pragma: no cover
        raise NotImplementedError

    def source(self, node: Node) -> Value | None:
        return node.inputs[0] if node.inputs else None

    def try_node(self, node: Node, graph: Graph, ctx: PassContext, *,
                 dry_run: bool = False) -> str | None:
        src = self.source(node)
        if src is None:
            return "the data input is omitted"
        why = self.reason(node, ctx)
        if why is not None:
            return why
        return bypass(graph, node, src, dry_run=dry_run)


class _Identity(_Eliminate):
    def reason(self, node: Node, ctx: PassContext) -> str | None:
        return None


class _Dropout(_Eliminate):
    def reason(self, node: Node, ctx: PassContext) -> str | None:
        if len(node.outputs) > 1 and node.outputs[1] is not None and \
                (node.outputs[1].uses or node.outputs[1].is_graph_output):
            return "the mask output is used"
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            mode = ctx.const(node.inputs[2])
            if mode is None or bool(np.any(mode)):
                return "training_mode is not a constant false"
        if int(get_attr(node, "is_test", 1) or 0) == 0 and node.graph is not None and \
                (node.graph.opset("") or 7) < 7:
            return "is_test=0: this Dropout trains"
        return None


class _NoopCast(_Eliminate):
    def reason(self, node: Node, ctx: PassContext) -> str | None:
        src = node.inputs[0]
        if node.op_type == "Cast":
            to = node.attrs.get("to")
            if src.dtype is None or to is None:
                return "the input dtype is unknown"
            if int(to) != src.dtype.value:
                return f"casts {src.dtype.name} to another type"
            return None
        target = node.inputs[1] if len(node.inputs) > 1 else None
        if src.dtype is None or target is None or target.dtype is None:
            return "a dtype is unknown"
        return None if src.dtype is target.dtype else "casts to another type"


class _SameShape(_Eliminate):
    def reason(self, node: Node, ctx: PassContext) -> str | None:
        if not same_shape(node.inputs[0], node.outputs[0]):
            return (f"the output shape {node.outputs[0].shape} is not known to equal the input "
                    f"shape {node.inputs[0].shape}")
        return None


class _NoopSlice(_SameShape):
    def reason(self, node: Node, ctx: PassContext) -> str | None:
        if len(node.inputs) > 4 and node.inputs[4] is not None:
            steps = ctx.const(node.inputs[4])
            if steps is None or not np.all(steps == 1):
                return "steps are not all 1"
        return super().reason(node, ctx)


class _NoopTranspose(_Eliminate):
    def reason(self, node: Node, ctx: PassContext) -> str | None:
        perm = get_attr(node, "perm")
        if perm is None:
            rank = rank_of(node.inputs[0])
            return None if rank is not None and rank <= 1 else "reverses the dims"
        return None if list(perm) == list(range(len(perm))) else "permutes the dims"


class _NoopPad(_Eliminate):
    def reason(self, node: Node, ctx: PassContext) -> str | None:
        if len(node.inputs) > 1 and node.inputs[1] is not None:
            pads = ctx.const(node.inputs[1])
        else:
            pads = np.asarray(node.attrs.get("pads", [1]))
        if pads is None:
            return "pads are not constant"
        return None if not np.any(pads) else "pads are not all zero"


class _NoopTile(_Eliminate):
    def reason(self, node: Node, ctx: PassContext) -> str | None:
        reps = ctx.const(node.inputs[1]) if len(node.inputs) > 1 else None
        if reps is None:
            return "repeats are not constant"
        return None if np.all(reps == 1) else "repeats are not all 1"


class _SingleInput(_Eliminate):
    def reason(self, node: Node, ctx: PassContext) -> str | None:
        return None if len([v for v in node.inputs if v is not None]) == 1 else \
            "has several inputs"


class _Neutral(_Eliminate):
    """``x + 0``, ``x - 0``, ``x * 1``, ``x / 1`` where the constant does not broadcast x."""

    _NEUTRAL: ClassVar[dict[str, float]] = {"Add": 0.0, "Sub": 0.0, "Mul": 1.0, "Div": 1.0}

    def _pick(self, node: Node, ctx: PassContext) -> tuple[Value | None, str | None]:
        if len(node.inputs) != 2 or None in node.inputs:
            return None, "needs two inputs"
        neutral = self._NEUTRAL[node.op_type]
        sides = [(0, 1), (1, 0)] if node.op_type in ("Add", "Mul") else [(0, 1)]
        for keep, const in sides:
            arr = ctx.const(node.inputs[const])
            if arr is None or arr.dtype.kind not in "fiu" or not np.all(arr == neutral):
                continue
            x = node.inputs[keep]
            if x.dtype is None or x.dtype.numpy != arr.dtype:
                continue
            if not same_shape(x, node.outputs[0]):
                return None, "the constant may broadcast the other input to a larger shape"
            return x, None
        return None, f"no operand is a neutral constant ({neutral:g})"

    def source(self, node: Node) -> Value | None:
        return node.inputs[0] if node.inputs else None

    def try_node(self, node: Node, graph: Graph, ctx: PassContext, *,
                 dry_run: bool = False) -> str | None:
        if not is_default_domain(node):
            return "not an ONNX op"
        x, why = self._pick(node, ctx)
        if x is None:
            return why
        return bypass(graph, node, x, dry_run=dry_run)


class _TransposePair(Rule):
    name = "fuse_transpose_pair"
    root_ops = ("Transpose",)

    def try_node(self, node: Node, graph: Graph, ctx: PassContext, *,
                 dry_run: bool = False) -> str | None:
        src = node.inputs[0]
        first = src.producer if src is not None else None
        if first is None or first.op_type != "Transpose" or not is_default_domain(first) or \
                first.graph is not graph:
            return "the input is not produced by a Transpose"
        rank = rank_of(first.inputs[0])
        p1 = get_attr(first, "perm")
        p2 = get_attr(node, "perm")
        if p1 is None and rank is not None:
            p1 = list(range(rank))[::-1]
        if p2 is None and p1 is not None:
            p2 = list(range(len(p1)))[::-1]
        if p1 is None or p2 is None or len(p1) != len(p2):
            return "a permutation (or the rank) is unknown"
        combined = [int(p1[int(i)]) for i in p2]
        x = first.inputs[0]
        if combined == list(range(len(combined))):
            return bypass(graph, node, x, dry_run=dry_run)
        if dry_run:
            return None
        merged = graph.make_node("Transpose", [x], 1, {"perm": combined}, before=node,
                                 name=node.name or "transpose")
        out = merged.outputs[0]
        out.type = node.outputs[0].type
        old = node.outputs[0]
        old.replace_all_uses_with(out)
        graph.remove_node(node)
        if not out.is_graph_output:
            old.name, out.name = out.name, old.name  # the merged Transpose keeps the name
        if not any(v.uses or v.is_graph_output for v in first.outputs if v is not None):
            graph.remove_node(first)
        return None


class _ReshapeChain(Rule):
    name = "fuse_reshape_chain"
    root_ops = ("Reshape",)
    _SOURCES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")

    def try_node(self, node: Node, graph: Graph, ctx: PassContext, *,
                 dry_run: bool = False) -> str | None:
        if len(node.inputs) < 2:
            return "Reshape-1 (shape attribute) is not handled"
        src = node.inputs[0]
        first = src.producer if src is not None else None
        if first is None or first.op_type not in self._SOURCES or \
                not is_default_domain(first) or first.graph is not graph:
            return "the input is not produced by a Reshape/Flatten/Squeeze/Unsqueeze"
        shape = ctx.const(node.inputs[1])
        if shape is None:
            return "the target shape is not constant"
        if int(get_attr(node, "allowzero", 0) or 0) == 0 and np.any(shape == 0):
            return "the target shape copies a dim (0) of the intermediate"
        if dry_run:
            return None
        node.replace_input(0, first.inputs[0])
        if not any(v.uses or v.is_graph_output for v in first.outputs if v is not None):
            graph.remove_node(first)
        return None


def simplify_rules() -> list[Rule]:
    """The simplification rules, in the order they are tried."""
    return [
        _Identity("eliminate_identity", ("Identity",)),
        _Dropout("eliminate_dropout", ("Dropout",)),
        _NoopCast("eliminate_noop_cast", ("Cast", "CastLike")),
        _SameShape("eliminate_noop_reshape", ("Reshape", "Flatten", "Squeeze", "Unsqueeze")),
        _NoopTranspose("eliminate_noop_transpose", ("Transpose",)),
        _SameShape("eliminate_noop_expand", ("Expand",)),
        _NoopSlice("eliminate_noop_slice", ("Slice",)),
        _NoopPad("eliminate_noop_pad", ("Pad",)),
        _NoopTile("eliminate_noop_tile", ("Tile",)),
        _SingleInput("eliminate_single_input", ("Concat", "Sum", "Max", "Min", "Mean")),
        _Neutral("eliminate_neutral_elementwise", ("Add", "Sub", "Mul", "Div")),
        _TransposePair(),
        _ReshapeChain(),
    ]


#: The BASIC-level simplification pass.
SIMPLIFY = RuleSet(simplify_rules(), name="simplify", level=OptLevel.BASIC,
                   after=("constant_folding",))
