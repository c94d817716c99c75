"""``verify(graph)``: structural checks with messages that say what is wrong and where."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidGraphError
from .order import topological_order

if TYPE_CHECKING:
    from .graph import Graph, Value

__all__ = ["verify"]


def verify(graph: Graph, *, _scope: dict[str, Value] | None = None) -> None:
    """Check ``graph`` (and its subgraphs) and raise ``InvalidGraphError`` on the first problem.

    Checks: unique value names, every node input defined (graph input, initializer, an
    earlier node's output or an enclosing graph's value), nodes in a valid execution order and
    no cycles, use lists that match node inputs (no dangling uses), graph outputs defined.
    """
    scope: dict[str, Value] = dict(_scope or {})
    own: dict[str, Value] = {}

    def define(v: Value, what: str) -> None:
        if not v.name:
            raise InvalidGraphError(f"graph {graph.name!r}: {what} has an empty name")
        other = own.get(v.name)
        if other is not None and other is not v:
            raise InvalidGraphError(
                f"graph {graph.name!r}: duplicate value name {v.name!r} ({what}); every value "
                f"must have a unique name — rename one of them")
        own[v.name] = v
        scope[v.name] = v

    for v in graph.inputs:
        define(v, "graph input")
    for name, v in graph.initializers.items():
        if name != v.name:
            raise InvalidGraphError(f"initializer registered as {name!r} is named {v.name!r}")
        if v not in graph._input_set:
            define(v, "initializer")
    order = topological_order(graph)  # raises on cycles
    if [id(n) for n in order] != [id(n) for n in graph.nodes]:
        for node in graph.nodes:
            for v in node.inputs:
                if v is not None and v.producer is not None and v.producer.graph is graph:
                    if graph.nodes.index(v.producer) > graph.nodes.index(node):
                        raise InvalidGraphError(
                            f"{node.describe()} reads {v.name!r} before it is produced by "
                            f"{v.producer.describe()}; call graph.sort()")
    use_sets: dict[int, set] = {}

    def uses_of(v: Value) -> set:
        found = use_sets.get(id(v))
        if found is None:
            found = use_sets[id(v)] = set(v._uses)
        return found

    for node in graph.nodes:
        if node.graph is not graph:
            raise InvalidGraphError(f"{node.describe()} is listed in graph {graph.name!r} but "
                                    "belongs to another graph")
        for index, v in enumerate(node.inputs):
            if v is None:
                continue
            if scope.get(v.name) is not v:
                raise InvalidGraphError(
                    f"{node.describe()}: input {index} {v.name!r} is not defined in graph "
                    f"{graph.name!r} or an enclosing scope (no graph input, initializer or "
                    "earlier node produces it)")
            if (node, index) not in uses_of(v):
                raise InvalidGraphError(
                    f"{node.describe()}: input {index} {v.name!r} is missing from the value's "
                    "use list (edges edited outside the IR?)")
        for sub in node.subgraphs():
            if sub.parent is not graph:
                raise InvalidGraphError(
                    f"{node.describe()}: subgraph {sub.name!r} does not name this graph as "
                    "its parent")
            verify(sub, _scope=scope)
        for v in node.outputs:
            if v is not None:
                if v.producer is not node:
                    raise InvalidGraphError(f"{node.describe()}: output {v.name!r} names "
                                            "another producer")
                define(v, f"output of {node.op_type}")
    for v in own.values():
        for use in v._uses:
            user = use.node
            inputs = user._inputs
            if user.graph is None or use.index >= len(inputs) or inputs[use.index] is not v:
                raise InvalidGraphError(
                    f"value {v.name!r} has a dangling use by a node that no longer reads it "
                    f"({user.op_type} {user.name!r}); remove uses through the IR API")
    for v in graph.outputs:
        if scope.get(v.name) is not v:
            raise InvalidGraphError(
                f"graph {graph.name!r}: output {v.name!r} is not produced by any node, input "
                "or initializer")
