"""Shape-driven folding: ``Shape``/``Size`` of values whose dims are known become constants.

Exporters compute reshape targets at run time (``Shape -> Gather -> Unsqueeze -> Concat``)
even when every dim is fixed. After shape inference, ``Shape(x)`` with a static ``x`` is a
constant, and so is ``Gather(Shape(x), i)`` / ``Slice(Shape(x), ...)`` when only the selected
dims are known (a dynamic batch dim does not stop the other dims from folding); constant
folding then folds the rest of the chain. :class:`ShapeInference` (re)annotates types before.
"""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Node, Value
from ...types import DType, TensorInfo
from .._util import get_attr, graphs_of, is_default_domain
from ..levels import OptLevel
from ..pass_manager import Pass, PassContext, PassResult

__all__ = ["ShapeFolding", "ShapeInference", "run_shape_inference"]


def run_shape_inference(graph: Graph) -> bool:
    """Annotate types with ``ir.shape_inference.infer_shapes``; False when unavailable/failed.

    Inference problems never stop optimization: passes that need a shape simply do not fire.
    """
    try:
        from ...ir.shape_inference import infer_shapes
    except ImportError:  # pragma: no cover - inference module not built yet
        return False
    try:
        infer_shapes(graph.root)
    except Exception:  # noqa: BLE001 - a model ONNX cannot infer is still optimizable
        return False
    return True


class ShapeInference(Pass):
    """An analysis step: refreshes value types; never counts as a change."""

    name = "shape_inference"
    level = OptLevel.BASIC
    analysis = True

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        if ctx.state.get("shapes_generation") != ctx.generation:
            run_shape_inference(graph)
            ctx.state["shapes_generation"] = ctx.generation
        return PassResult()


def _dims(value: Value | None) -> tuple | None:
    if value is None or not isinstance(value.type, TensorInfo) or value.type.shape is None:
        return None
    return tuple(value.type.shape)


def _known(d: object) -> bool:
    return isinstance(d, int) and d >= 0


def _shape_range(node: Node, rank: int) -> tuple[int, int]:
    start = int(get_attr(node, "start", 0) or 0)
    end = get_attr(node, "end", None)
    end = rank if end is None else int(end)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return start, end


class ShapeFolding(Pass):
    """Replace ``Shape``/``Size``/``Gather(Shape)``/``Slice(Shape)`` of known dims by constants."""

    name = "shape_folding"
    level = OptLevel.BASIC
    after = ("shape_inference",)
    before = ("constant_folding",)

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        result = PassResult()
        for g in graphs_of(graph):
            for node in g.nodes:
                if node.graph is not g or not is_default_domain(node):
                    continue
                folded = None
                if node.op_type == "Shape":
                    folded = self._shape(node)
                elif node.op_type == "Size":
                    dims = _dims(node.inputs[0])
                    if dims is not None and all(_known(d) for d in dims):
                        folded = np.asarray(int(np.prod(dims, dtype=np.int64)), np.int64)
                elif node.op_type in ("Gather", "Slice"):
                    folded = self._select(node, ctx)
                    if folded is None and node.op_type == "Gather" and \
                            self._reroute(g, node, ctx):
                        result.add("reroute_symbolic_dim")
                        continue
                if folded is not None and self._replace(g, node, folded):
                    result.add(f"fold_{node.op_type.lower()}")
        return result

    @staticmethod
    def _reroute(graph: Graph, node: Node, ctx: PassContext) -> bool:
        """``Gather(Shape(t), i)`` of one symbolic dim ==> ``Gather(Shape(x), j)`` for the graph
        input ``x`` whose dim ``j`` declares the same name.

        Exporters read dims off intermediate tensors (``view(x.shape[0], ...)``); reading them
        off the graph input instead frees the intermediate, so fusions around it can fire.
        """
        src = node.inputs[0]
        shape_node = src.producer if src is not None else None
        if shape_node is None or shape_node.op_type != "Shape" or \
                int(get_attr(node, "axis", 0)) != 0:
            return False
        dims = _dims(shape_node.inputs[0])
        idx = ctx.const(node.inputs[1])
        if dims is None or idx is None or idx.size != 1:
            return False
        start, end = _shape_range(shape_node, len(dims))
        vec = dims[start:end]
        i = int(idx.reshape(-1)[0])
        if not -len(vec) <= i < len(vec):
            return False
        name = vec[i]
        if not isinstance(name, str) or not name:
            return False
        if any(shape_node.inputs[0] is inp and inp.const_value is None
               for inp in graph.root.inputs):
            # Already read off a graph input: moving it to another input declaring the same
            # dim name (BERT's three inputs share "batch") would flip-flop forever.
            return False
        for inp in graph.root.inputs:
            if inp.const_value is not None or inp is shape_node.inputs[0]:
                continue
            in_dims = _dims(inp)
            if in_dims and name in in_dims:
                j = list(in_dims).index(name)
                break
        else:
            return False
        if graph is not graph.root and inp.graph is not graph.root:
            return False
        new_shape = graph.make_node("Shape", [inp], 1, before=node, name="shape_of_input")
        new_shape.outputs[0].type = TensorInfo(DType.INT64, (len(in_dims),))
        index = graph.add_initializer(graph.unique_name("dim_index"),
                                      np.asarray(j, np.int64).reshape(idx.shape))
        node.replace_input(0, new_shape.outputs[0])
        node.replace_input(1, index)
        if not shape_node.outputs[0].uses and not shape_node.outputs[0].is_graph_output:
            graph.remove_node(shape_node)
        return True

    @staticmethod
    def _shape(node: Node) -> np.ndarray | None:
        dims = _dims(node.inputs[0])
        if dims is None:
            return None
        start, end = _shape_range(node, len(dims))
        picked = dims[start:end]
        if all(_known(d) for d in picked):
            return np.asarray(picked, dtype=np.int64)
        return None

    @staticmethod
    def _select(node: Node, ctx: PassContext) -> np.ndarray | None:
        src = node.inputs[0]
        if src is None or src.producer is None or src.producer.op_type != "Shape" or \
                not is_default_domain(src.producer):
            return None
        dims = _dims(src.producer.inputs[0])
        if dims is None:
            return None
        start, end = _shape_range(src.producer, len(dims))
        shape_vec = list(dims[start:end])
        # Evaluate the selection on positions, then check every selected dim is known.
        positions = np.arange(len(shape_vec), dtype=np.int64)
        try:
            if node.op_type == "Gather":
                if int(get_attr(node, "axis", 0)) != 0:
                    return None
                idx = ctx.const(node.inputs[1])
                if idx is None:
                    return None
                picked = np.take(positions, idx.astype(np.int64))
            else:
                picked = _slice_positions(node, positions, ctx)
                if picked is None:
                    return None
        except (IndexError, ValueError):
            return None
        values = [shape_vec[int(p)] for p in picked.reshape(-1)]
        if not all(_known(d) for d in values):
            return None
        return np.asarray(values, dtype=np.int64).reshape(picked.shape)

    @staticmethod
    def _replace(graph: Graph, node: Node, array: np.ndarray) -> bool:
        out = node.outputs[0]
        if out is None or out.is_graph_output or not out.uses:
            return False
        init = graph.add_initializer(graph.unique_name(out.name), array, dtype=DType.INT64)
        out.replace_all_uses_with(init)
        if all(v is None or (not v.uses and not v.is_graph_output) for v in node.outputs):
            graph.remove_node(node)
        return True


def _slice_positions(node: Node, positions: np.ndarray, ctx: PassContext) -> np.ndarray | None:
    if len(node.inputs) >= 3:  # Slice-10+: starts, ends, axes, steps as inputs
        parts = [ctx.const(v) if v is not None else None for v in node.inputs[1:5]]
        if parts[0] is None or parts[1] is None:
            return None
        if any(v is not None and p is None for v, p in zip(node.inputs[3:5], parts[2:4])):
            return None
        starts, ends = parts[0], parts[1]
        axes = parts[2] if len(parts) > 2 else None
        steps = parts[3] if len(parts) > 3 else None
    else:
        starts = np.asarray(node.attrs.get("starts", []))
        ends = np.asarray(node.attrs.get("ends", []))
        axes = np.asarray(node.attrs["axes"]) if "axes" in node.attrs else None
        steps = None
    if axes is not None and any(int(a) not in (0, -1) for a in axes.reshape(-1)):
        return None
    if starts.size != 1 or ends.size != 1:
        return None
    step = 1 if steps is None else int(steps.reshape(-1)[0])
    if step == 0:
        return None
    s, e = int(starts.reshape(-1)[0]), int(ends.reshape(-1)[0])
    # Python slicing clamps exactly as ONNX Slice does for these 1-D position vectors.
    big = 1 << 62
    s, e = max(min(s, big), -big), max(min(e, big), -big)
    return positions[slice(s, e, step)]
