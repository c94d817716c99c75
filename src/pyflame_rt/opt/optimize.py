"""``optimize(graph, level)``: run the registered passes for a level and report what changed."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..ir import Graph
from .levels import OptLevel, to_opt_level

__all__ = ["OptimizationReport", "optimize"]


@dataclass
class OptimizationReport:
    """What an optimization run did.

    Attributes:
        level: The level that ran.
        passes: Names of the passes run, in order.
        rules_fired: Rule or pass name -> how many times it changed the graph.
        nodes_before: Node count before (subgraphs included).
        nodes_after: Node count after.
        seconds: Pass name -> time spent.
    """

    level: OptLevel
    passes: list[str] = field(default_factory=list)
    rules_fired: dict[str, int] = field(default_factory=dict)
    nodes_before: int = 0
    nodes_after: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        fired = ", ".join(f"{k}×{v}" for k, v in self.rules_fired.items()) or "nothing fired"
        return (f"level {self.level.name}: {self.nodes_before} -> {self.nodes_after} nodes; "
                f"{fired}")


def _count(graph: Graph) -> int:
    return sum(1 for _ in graph.all_nodes())


def optimize(graph: Graph, level: Any = OptLevel.ALL, *,
             disabled_optimizers: Iterable[str] = ()) -> tuple[Graph, OptimizationReport]:
    """Optimize ``graph`` in place at ``level``; return it with a report."""
    lvl = to_opt_level(level)
    report = OptimizationReport(level=lvl, nodes_before=_count(graph))
    start = time.perf_counter()
    disabled = set(disabled_optimizers)
    del disabled  # no passes are registered yet (issue #4 adds them)
    report.seconds["total"] = time.perf_counter() - start
    report.nodes_after = _count(graph)
    return graph, report
