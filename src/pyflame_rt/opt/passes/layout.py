"""Layout pass (level ALL): keep chains of convolutions in a channel-blocked layout.

A blocked-layout convolution reads and writes tensors ``[N, ceil(C/B), H, W, B]`` (``B``
channels of one pixel contiguous: one vector register), which is what a register-blocked
direct convolution wants; converting every convolution's input and output between NCHW and
that layout costs a pass over the activations each time (measured: about a quarter of a
1x1 convolution's time on ResNet-50's 56x56 layers). This pass finds groups of convolutions
connected to each other (one's output is another's input ``X`` or residual ``Z``) and rewrites
them::

    Conv / pyflame.FusedConv (x, W, B, Z)  ==>  pyflame.BlockedConv(bx, W, B, bz)

with explicit reorders at the group's boundary only:

* ``pyflame.ReorderToBlocked(x)`` (attribute ``block``): ``[N, C, H, W] -> [N, ceil(C/block),
  H, W, block]``, channels past ``C`` zero;
* ``pyflame.ReorderFromBlocked(bx)`` (attribute ``channels``): the inverse, keeping the first
  ``channels`` channels; inserted where a converted convolution's output is read by anything
  else (or is a graph output).

``pyflame.BlockedConv`` has ``pyflame.FusedConv``'s inputs and attributes (``activation``,
``activation_params`` included); its ``X``, ``Z`` and output are blocked, ``W`` and ``B`` are
the plain ONNX ones. Channels past the real count in its output are zero (finite in any
case), and the weights of those channels are zero for a reader, so they never matter.

The group grows through the ops found between convolutions in CNNs, when they touch another
member (an input produced by one, or an output read by one), each replaced by a blocked form
with the same attributes plus ``block`` (``docs/fused_ops.md``): ``MaxPool`` (without a used
``Indices`` output) -> ``pyflame.BlockedMaxPool``, ``AveragePool`` ->
``pyflame.BlockedAveragePool`` (both 2-D), ``GlobalAveragePool`` ->
``pyflame.BlockedGlobalAveragePool``, a channel ``Concat`` whose inputs but the last fill whole
blocks -> ``pyflame.BlockedConcat`` (blocks simply follow each other), and
``pyflame.ChannelAffine`` with constant scale/bias -> ``pyflame.BlockedChannelAffine`` (which
absorbs a converted Concat read by nothing else: its inputs follow ``bias``). Their
inputs from outside the group count as reorders in the cost rule below; run alone they cost
none.

A convolution is converted only when the backend can run it blocked: float32, 2-D, a
constant 4-D ``W``, a known input shape, and for grouped ones whole blocks of channels per
group; and only inside a group of at least two, so an isolated convolution keeps its
tactic choice (e.g. Winograd). The block size comes from the backend (``LayoutPass(block)``;
``None`` or 0 disables the pass): the vector width of the CPU (16 floats with AVX-512).
"""

from __future__ import annotations

from typing import Any

from ...ir import Graph, Node, Value
from ...ir.shape_inference import ShapeContext, register_shape_function
from ...types import DType, TensorInfo, ValueType
from ..levels import OptLevel
from ..pass_manager import Pass, PassContext, PassResult

__all__ = ["LayoutPass", "blocked_shape"]

_CONV_OPS = {("", "Conv"), ("ai.onnx", "Conv"), ("pyflame", "FusedConv")}


def blocked_shape(shape: tuple | None, block: int) -> tuple | None:
    """``[N, C, H, W]`` -> ``[N, ceil(C/block), H, W, block]`` (``None`` when unknown)."""
    if shape is None or len(shape) != 4 or not isinstance(shape[1], int):
        return None
    return (shape[0], -(-shape[1] // block), shape[2], shape[3], block)


class LayoutPass(Pass):
    """Rewrite connected convolutions to ``pyflame.BlockedConv`` (see the module docstring)."""

    name = "nchwc_layout"
    level = OptLevel.ALL

    def __init__(self, block: int | None = None) -> None:
        self.block = int(block or 0)

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        result = PassResult()
        if self.block <= 0:
            return result
        candidates = [n for n in graph.nodes
                      if self._convertible(n, ctx) or self._blocked_op(n, ctx) is not None]
        candidates = self._adjacent(candidates)
        chosen = self._groups(candidates)
        if not chosen:
            return result
        self._rewrite(graph, chosen, result)
        return result

    # -- which convolutions ------------------------------------------------------------------

    def _convertible(self, node: Node, ctx: PassContext) -> bool:
        if (node.domain, node.op_type) not in _CONV_OPS:
            return False
        ins = list(node.inputs) + [None] * 4
        x, w, b, z = ins[:4]
        y = node.outputs[0] if node.outputs else None
        if x is None or w is None or y is None or len(node.outputs) != 1:
            return False
        wt = ctx.const(w)
        if wt is None or wt.ndim != 4 or wt.dtype.name != "float32":
            return False
        if x.dtype != DType.FLOAT or x.shape is None or len(x.shape) != 4:
            return False
        if y.shape is None or len(y.shape) != 4:
            return False
        if not all(isinstance(d, int) and d > 0 for d in x.shape[1:]):
            return False
        group = int(node.attrs.get("group", 1) or 1)
        m, cg = wt.shape[:2]
        if x.shape[1] != cg * group or m % group:
            return False
        if group > 1 and (cg % self.block or (m // group) % self.block):
            return False
        if b is not None and (ctx.const(b) is None or b.dtype != DType.FLOAT):
            return False  # a bias fed at run time: leave it to the plain kernel
        # A residual must match the output (no broadcasting in the blocked kernel).
        return z is None or z.shape == y.shape

    def _blocked_op(self, node: Node, ctx: PassContext) -> str | None:
        """The blocked op that can replace a pooling / concatenation / affine ``node``."""
        blocked = _BLOCKED_OPS.get((node.domain or "", node.op_type))
        if blocked is None or not node.outputs or node.outputs[0] is None:
            return None
        if any(v is not None and (v.is_graph_output or v.uses) for v in node.outputs[1:]):
            return None  # MaxPool's Indices: not in the blocked kernel
        y = node.outputs[0]
        if not _plain_4d(y):
            return None
        xs = _data_inputs(node)
        if not xs or not all(_plain_4d(x) for x in xs):
            return None
        if node.op_type in ("MaxPool", "AveragePool"):
            ks = node.attrs.get("kernel_shape")
            if ks is None or len(ks) != 2:
                return None
            return blocked
        if node.op_type == "Concat":
            if int(node.attrs.get("axis", 0)) not in (1, -3) or len(xs) != len(node.inputs):
                return None
            # Blocks follow each other: every input but the last must fill whole blocks.
            if any(x.shape[1] % self.block for x in xs[:-1]):
                return None
            return blocked
        if node.op_type == "ChannelAffine":
            ins = list(node.inputs) + [None] * 3
            for v in ins[1:3]:
                c = ctx.const(v)
                if c is None or c.dtype.name != "float32" or c.ndim != 1 \
                        or c.size != xs[0].shape[1]:
                    return None
            return blocked
        return blocked  # GlobalAveragePool

    @staticmethod
    def _adjacent(candidates: list[Node]) -> list[Node]:
        """Drop pooling / concatenation / affine candidates with no candidate next to them
        (repeatedly): converted alone they would only move reorders around."""
        keep = list(candidates)
        while True:
            ids = {id(n) for n in keep}
            drop = set()
            for node in keep:
                if _is_conv(node):
                    continue
                near = any(v.producer is not None and id(v.producer) in ids
                           for v in _data_inputs(node)) or \
                    any(id(u.node) in ids for u in node.outputs[0].uses)
                if not near:
                    drop.add(id(node))
            if not drop:
                return keep
            keep = [n for n in keep if id(n) not in drop]

    def _groups(self, candidates: list[Node]) -> list[Node]:
        """The candidates of the connected groups (through X or Z) worth converting.

        Run alone, each blocked-kernel convolution reorders its input once (its output
        reorder is fused into its epilogue); a converted group instead pays one pass per
        value entering it (``ReorderToBlocked``) and per output leaving it
        (``ReorderFromBlocked``). A group is converted when that is fewer passes -- a chain
        of two with both ends outside is not (measured: MobileNetV2's pairs got slower).
        """
        ids = {id(n): n for n in candidates}
        parent = {k: k for k in ids}

        def root(k: int) -> int:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for node in candidates:
            for v in _data_inputs(node):
                if v.producer is not None and id(v.producer) in ids:
                    parent[root(id(node))] = root(id(v.producer))
        groups: dict[int, list[Node]] = {}
        for node in candidates:
            groups.setdefault(root(id(node)), []).append(node)
        chosen: list[Node] = []
        for members in groups.values():
            if len(members) < 2:
                continue
            inside = {id(n) for n in members}
            entering: set[int] = set()
            leaving = 0
            reordered = 0  # convolutions that would reorder their input when run alone
            for node in members:
                if not _is_conv(node):
                    # A pooling / concatenation / affine op is no reorder when run alone: in
                    # the group, each of its inputs from outside needs one.
                    for v in _data_inputs(node):
                        if v.producer is None or id(v.producer) not in inside:
                            entering.add(id(v))
                    y = node.outputs[0]
                    if y.is_graph_output or any(id(u.node) not in inside for u in y.uses):
                        leaving += 1
                    continue
                x = node.inputs[0]
                outside_x = x.producer is None or id(x.producer) not in inside
                if not self._plain_input(node):
                    reordered += 1
                    if outside_x:
                        entering.add(id(x))
                z = node.inputs[3] if len(node.inputs) > 3 else None
                if z is not None and (z.producer is None or id(z.producer) not in inside):
                    entering.add(id(z))
                y = node.outputs[0]
                if y.is_graph_output or any(id(u.node) not in inside for u in y.uses):
                    leaving += 1
            if len(entering) + leaving < reordered:
                chosen.extend(members)
        return [n for n in candidates if any(n is c for c in chosen)]

    def _plain_input(self, node: Node) -> bool:
        """Few input channels (an image's 3): X stays NCHW, no block of zeros."""
        x = node.inputs[0]
        return x.shape[1] < self.block and int(node.attrs.get("group", 1) or 1) == 1

    # -- rewriting ---------------------------------------------------------------------------

    def _rewrite(self, graph: Graph, chosen: list[Node], result: PassResult) -> None:
        block = self.block
        converted: dict[int, Value] = {}  # id(original output) -> blocked output
        to_blocked: dict[int, Value] = {}  # id(NCHW value) -> its ReorderToBlocked output

        def blocked(v: Value, before: Node) -> Value:
            if id(v) in converted:
                return converted[id(v)]
            if id(v) not in to_blocked:
                after = v.producer
                node = graph.make_node("ReorderToBlocked", [v], attrs={"block": block},
                                       domain="pyflame", name=f"{v.name}_to_blocked",
                                       **({"after": after} if after is not None
                                          and after.graph is graph else {"before": before}))
                out = node.outputs[0]
                out.type = TensorInfo(DType.FLOAT, blocked_shape(v.shape, block))
                to_blocked[id(v)] = out
                result.add("reorder_to_blocked")
            return to_blocked[id(v)]

        # A Concat read only by a ChannelAffine is absorbed: the affine reads its pieces.
        ids = {id(n) for n in chosen}
        absorbed: dict[int, list[Value]] = {}  # id(Concat output) -> its inputs
        for node in chosen:
            x = node.inputs[0] if node.inputs else None
            src = x.producer if x is not None else None
            if (node.op_type == "ChannelAffine" and src is not None and id(src) in ids
                    and src.op_type == "Concat" and len(x.uses) == 1
                    and not x.is_graph_output):
                absorbed[id(x)] = list(src.inputs)
        for node in chosen:
            if node.op_type == "Concat" and id(node.outputs[0]) in absorbed:
                continue
            if not _is_conv(node):
                y = node.outputs[0]
                data = {id(v) for v in _data_inputs(node)}
                if node.op_type == "ChannelAffine" and id(node.inputs[0]) in absorbed:
                    parts = [blocked(v, node) for v in absorbed[id(node.inputs[0])]]
                    ins = [parts[0], *node.inputs[1:3], *parts[1:]]
                    result.add("absorbed_concat")
                else:
                    ins = [blocked(v, node) if v is not None and id(v) in data else v
                           for v in node.inputs]
                new = graph.make_node(
                    _BLOCKED_OPS[(node.domain or "", node.op_type)], ins,
                    attrs={**{k: v for k, v in node.attrs.items()
                              if not (node.op_type == "Concat" and k == "axis")},
                           "block": block}, domain="pyflame",
                    name=f"{node.name or node.op_type.lower()}_blocked", before=node)
                new.outputs[0].type = TensorInfo(DType.FLOAT, blocked_shape(y.shape, block))
                converted[id(y)] = new.outputs[0]
                result.add(f"blocked_{node.op_type.lower()}")
                continue
            ins = list(node.inputs) + [None] * 4
            x, w, b, z = ins[:4]
            y = node.outputs[0]
            attrs = {**node.attrs, "block": block}
            plain_x = id(x) not in converted and self._plain_input(node)
            new = graph.make_node(
                "BlockedConv",
                [x if plain_x else blocked(x, node), w, b,
                 blocked(z, node) if z is not None else None],
                attrs=attrs, domain="pyflame", name=f"{node.name or 'conv'}_blocked",
                before=node)
            yb = new.outputs[0]
            yb.type = TensorInfo(DType.FLOAT, blocked_shape(y.shape, block))
            converted[id(y)] = yb
            result.add("blocked_conv")
        # Readers of the original outputs that stay NCHW get one reorder back each (the
        # original convolutions, about to go, do not count).
        old = tuple(chosen)
        old_ids = {id(n) for n in old}
        for node in chosen:
            y = node.outputs[0]
            if id(y) in absorbed:
                continue
            yb = converted[id(y)]
            if y.is_graph_output or any(id(u.node) not in old_ids for u in y.uses):
                back = graph.make_node("ReorderFromBlocked", [yb],
                                       attrs={"channels": int(y.shape[1])}, domain="pyflame",
                                       name=f"{y.name}_from_blocked", after=yb.producer)
                out = back.outputs[0]
                out.type = y.type
                y.replace_all_uses_with(out, except_nodes=old)
                result.add("reorder_from_blocked")
        for node in reversed(chosen):
            graph.remove_node(node)
        graph.sort()


#: Ops that have a blocked form, and that form (all in the ``pyflame`` domain).
_BLOCKED_OPS = {("", "MaxPool"): "BlockedMaxPool", ("ai.onnx", "MaxPool"): "BlockedMaxPool",
                ("", "AveragePool"): "BlockedAveragePool",
                ("ai.onnx", "AveragePool"): "BlockedAveragePool",
                ("", "GlobalAveragePool"): "BlockedGlobalAveragePool",
                ("ai.onnx", "GlobalAveragePool"): "BlockedGlobalAveragePool",
                ("", "Concat"): "BlockedConcat", ("ai.onnx", "Concat"): "BlockedConcat",
                ("pyflame", "ChannelAffine"): "BlockedChannelAffine"}


def _is_conv(node: Node) -> bool:
    return (node.domain, node.op_type) in _CONV_OPS


def _data_inputs(node: Node) -> list[Value]:
    """The inputs that are (or would be) blocked tensors: a convolution's X and Z, every
    input of a Concat, the first one of the other blocked ops."""
    if _is_conv(node):
        idx: tuple[int, ...] = (0, 3)
    elif node.op_type == "Concat":
        idx = tuple(range(len(node.inputs)))
    else:
        idx = (0,)
    return [node.inputs[i] for i in idx if i < len(node.inputs) and node.inputs[i] is not None]


def _plain_4d(v: Value) -> bool:
    """A float32 NCHW value of known rank and channel count."""
    return (v.dtype == DType.FLOAT and v.shape is not None and len(v.shape) == 4
            and isinstance(v.shape[1], int) and v.shape[1] > 0)


# -- shape inference of the layout ops -----------------------------------------------------------

def _tensor(ctx: ShapeContext, index: int) -> TensorInfo | None:
    t = ctx.input_types[index] if index < len(ctx.input_types) else None
    return t if isinstance(t, TensorInfo) else None


@register_shape_function("pyflame", "ReorderToBlocked")
def _reorder_to_blocked(ctx: ShapeContext) -> list[ValueType | None]:
    x = _tensor(ctx, 0)
    if x is None:
        return [None]
    block = int(ctx.node.attrs.get("block", 16))
    return [TensorInfo(x.dtype, blocked_shape(x.shape, block))]


@register_shape_function("pyflame", "ReorderFromBlocked")
def _reorder_from_blocked(ctx: ShapeContext) -> list[ValueType | None]:
    x = _tensor(ctx, 0)
    if x is None:
        return [None]
    channels = ctx.node.attrs.get("channels")
    if x.shape is None or len(x.shape) != 5 or channels is None:
        return [TensorInfo(x.dtype, None)]
    return [TensorInfo(x.dtype, (x.shape[0], int(channels), x.shape[2], x.shape[3]))]


@register_shape_function("pyflame", "BlockedConv")
def _blocked_conv(ctx: ShapeContext) -> list[ValueType | None]:
    x, w = _tensor(ctx, 0), _tensor(ctx, 1)
    if x is None or w is None or x.shape is None or len(x.shape) not in (4, 5) \
            or w.shape is None:
        return [TensorInfo(DType.FLOAT, None)]
    group = int(ctx.node.attrs.get("group", 1) or 1)
    c = w.shape[1] * group if isinstance(w.shape[1], int) else None
    plain = TensorInfo(x.dtype, (x.shape[0], c, x.shape[2], x.shape[3]))
    skip = {"activation", "activation_params", "block"}
    attrs: dict[str, Any] = {k: v for k, v in ctx.node.attrs.items() if k not in skip}
    out = ctx.infer_onnx("Conv", [plain, w, _tensor(ctx, 2)], attrs)[0]
    if not isinstance(out, TensorInfo):
        return [TensorInfo(DType.FLOAT, None)]
    block = int(ctx.node.attrs.get("block", 16))
    return [TensorInfo(out.dtype, blocked_shape(out.shape, block))]


def _blocked_like(ctx: ShapeContext, op: str, skip: tuple[str, ...] = ()) -> list[ValueType | None]:
    """Shape of a blocked op: the plain ONNX op's on the unblocked input, blocked again."""
    x = _tensor(ctx, 0)
    block = int(ctx.node.attrs.get("block", 16))
    if x is None or x.shape is None or len(x.shape) != 5:
        return [TensorInfo(DType.FLOAT, None)]
    plain = TensorInfo(x.dtype, (x.shape[0], x.shape[1] * block if isinstance(x.shape[1], int)
                                 else None, x.shape[2], x.shape[3]))
    attrs = {k: v for k, v in ctx.node.attrs.items() if k not in ("block",) + skip}
    out = ctx.infer_onnx(op, [plain], attrs)[0]
    if not isinstance(out, TensorInfo):
        return [TensorInfo(x.dtype, None)]
    return [TensorInfo(out.dtype, blocked_shape(out.shape, block))]


@register_shape_function("pyflame", "BlockedMaxPool")
def _blocked_max_pool(ctx: ShapeContext) -> list[ValueType | None]:
    return _blocked_like(ctx, "MaxPool")[:1]


@register_shape_function("pyflame", "BlockedAveragePool")
def _blocked_average_pool(ctx: ShapeContext) -> list[ValueType | None]:
    return _blocked_like(ctx, "AveragePool")


@register_shape_function("pyflame", "BlockedGlobalAveragePool")
def _blocked_global_average_pool(ctx: ShapeContext) -> list[ValueType | None]:
    return _blocked_like(ctx, "GlobalAveragePool")


@register_shape_function("pyflame", "BlockedChannelAffine")
def _blocked_channel_affine(ctx: ShapeContext) -> list[ValueType | None]:
    x = _tensor(ctx, 0)
    if x is None or x.shape is None or len(x.shape) != 5:
        return [TensorInfo(DType.FLOAT, None)]
    # Inputs after scale and bias: further pieces along the channel blocks.
    pieces = [x] + [_tensor(ctx, i) for i in range(3, len(ctx.input_types))]
    blocks = [p.shape[1] if p is not None and p.shape is not None and len(p.shape) == 5
              else None for p in pieces]
    total = sum(blocks) if all(isinstance(b, int) for b in blocks) else None
    return [TensorInfo(x.dtype, (x.shape[0], total, *x.shape[2:]))]


@register_shape_function("pyflame", "BlockedConcat")
def _blocked_concat(ctx: ShapeContext) -> list[ValueType | None]:
    xs = [_tensor(ctx, i) for i in range(len(ctx.input_types))]
    if not xs or any(x is None or x.shape is None or len(x.shape) != 5 for x in xs):
        return [TensorInfo(DType.FLOAT, None)]
    first = xs[0].shape
    blocks = [x.shape[1] for x in xs]
    total = sum(blocks) if all(isinstance(b, int) for b in blocks) else None
    return [TensorInfo(xs[0].dtype, (first[0], total, first[2], first[3], first[4]))]
