"""Topological ordering of a graph's nodes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidGraphError

if TYPE_CHECKING:
    from .graph import Graph, Node

__all__ = ["topological_order", "outer_inputs"]


def outer_inputs(node: Node) -> list:
    """Values read by ``node``: its inputs plus outer-scope values its subgraphs read."""
    values = [v for v in node.inputs if v is not None]
    for sub in node.subgraphs():
        values.extend(_captured(sub))
    return values


def _captured(graph: Graph) -> list:
    """Values a subgraph (and its nested subgraphs) read from enclosing scopes.

    Includes outer values the subgraph returns directly as outputs (an If branch may
    return an enclosing graph's value as is).
    """
    own = {id(v) for v in graph.values()}
    found = []
    for node in graph.nodes:
        for v in outer_inputs(node):
            if id(v) not in own:
                found.append(v)
    found.extend(v for v in graph.outputs if id(v) not in own)
    return found


def topological_order(graph: Graph) -> list[Node]:
    """Nodes in an order where every value is produced before it is read.

    Stable: among ready nodes the one that came first in the current order goes first, so an
    already valid order is kept unchanged. Raises ``InvalidGraphError`` naming a cycle.
    """
    nodes = list(graph.nodes)
    position = {id(n): i for i, n in enumerate(nodes)}
    producers_of: dict[int, set[int]] = {}
    readers: dict[int, list] = {id(n): [] for n in nodes}
    for node in nodes:
        deps = set()
        for v in outer_inputs(node):
            p = v.producer
            if p is not None and id(p) in position and p is not node:
                deps.add(id(p))
            elif p is node:
                raise InvalidGraphError(f"{node.describe()} reads its own output {v.name!r}")
        producers_of[id(node)] = deps
        for d in deps:
            readers[d].append(node)

    import heapq

    pending = {k: len(v) for k, v in producers_of.items()}
    ready = [position[id(n)] for n in nodes if pending[id(n)] == 0]
    heapq.heapify(ready)
    order: list[Node] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        order.append(node)
        for reader in readers[id(node)]:
            pending[id(reader)] -= 1
            if pending[id(reader)] == 0:
                heapq.heappush(ready, position[id(reader)])
    if len(order) != len(nodes):
        stuck = [n for n in nodes if pending[id(n)] > 0]
        names = ", ".join(n.describe() for n in stuck[:5])
        raise InvalidGraphError(
            f"the graph {graph.name!r} has a cycle (or reads values produced later in a "
            f"cycle); nodes involved: {names}{' ...' if len(stuck) > 5 else ''}")
    return order
