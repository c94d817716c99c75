"""Dead-code elimination: nodes nobody reads, unused initializers, unused IR-3 weight inputs.

ONNX Runtime keeps a node whose outputs nobody uses; we remove it (ONNX ops have no side
effects). Real graph inputs (the ones the caller feeds) are never removed, so the model's
interface does not change; an initializer that is also a graph input is removed only when it
is not overridable (IR version < 4, where every initializer had to be listed as an input).
"""

from __future__ import annotations

from ...ir import Graph
from .._util import graphs_of
from ..levels import OptLevel
from ..pass_manager import Pass, PassContext, PassResult

__all__ = ["DeadCodeElimination"]


class DeadCodeElimination(Pass):
    """Remove nodes, initializers and non-real inputs that do not reach a graph output."""

    name = "dead_code_elimination"
    level = OptLevel.BASIC

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        result = PassResult()
        # Subgraphs first: dropping a node inside a body may leave an outer value unread.
        graphs = list(graphs_of(graph))
        # A subgraph may return an outer-scope value directly: that is a use the value's own
        # use list does not show.
        returned = {id(v) for g in graphs for v in g.outputs}
        for g in reversed(graphs):
            self._sweep(g, ctx, result, returned)
        return result

    def _sweep(self, graph: Graph, ctx: PassContext, result: PassResult,
               returned: set[int]) -> None:
        for node in reversed(graph.nodes):
            if all(v is None or (not v.uses and id(v) not in returned) for v in node.outputs):
                graph.remove_node(node)
                result.add("dead_nodes")
        for value in list(graph.initializers.values()):
            if value.uses or id(value) in returned:
                continue
            if value.is_graph_input and ctx.is_overridable(value):
                continue
            graph.remove_initializer(value)
            result.add("dead_initializers")
