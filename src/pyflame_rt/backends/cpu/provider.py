"""``CPUExecutionProvider``: the CPU backend (numpy + numba kernels, compiled plans)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import UnsupportedOperatorError
from ...ir import Graph, Node
from ...ops import lookup
from ..base import Backend, CompileOptions, MemoryInfo, Plan, register_backend
from .executor import CPUPlan, compile_plan
from .threads import thread_limit

__all__ = ["CPUExecutionProvider"]


@register_backend
class CPUExecutionProvider(Backend):
    """Runs every registered CPU kernel; the default provider."""

    name = "CPUExecutionProvider"

    def __init__(self) -> None:
        self.options = CompileOptions()
        self._plans: list[CPUPlan] = []

    def initialize(self, options: CompileOptions) -> None:
        self.options = options

    def shutdown(self) -> None:
        self._plans.clear()

    def layout_block(self, options: CompileOptions) -> int:
        """The host's vector width in floats (16 with AVX-512, 8 with AVX2) when the
        generated blocked convolutions are available; 0 when a session forces another conv
        tactic (``session.pyflame.conv_tactic``), so that choice is honoured."""
        from .conv import chooser, nchwc

        forced = chooser.forced_tactic(options.config)
        if forced and forced.partition(":")[0] != "nchwc":
            return 0
        return nchwc.vector_width()

    def supports_op(self, node: Node, opset: int | None) -> bool:
        try:
            lookup(node.op_type, node.domain, opset)
        except UnsupportedOperatorError:
            return False
        return True

    def unsupported_nodes(self, graph: Graph) -> list[Node]:
        """Nodes (subgraphs included) that have no kernel at the model's opset."""
        return [n for n in graph.all_nodes() if not self.supports_op(n, graph.opset(n.domain))]

    def compile(self, graph: Graph, options: CompileOptions | None = None) -> CPUPlan:
        options = options or self.options
        missing = self.unsupported_nodes(graph)
        if missing:
            # Name every missing op at once (first node of each), with the registry's hint.
            seen: dict[tuple[str, str], Node] = {}
            for n in missing:
                seen.setdefault((n.domain, n.op_type), n)
            details = []
            for (domain, op_type), n in seen.items():
                try:
                    lookup(op_type, domain, graph.opset(domain))
                except UnsupportedOperatorError as exc:
                    details.append(f"- {exc} (first used by node {n.name!r})")
            raise UnsupportedOperatorError(
                f"{len(seen)} operator(s) in this model have no CPU kernel:\n" +
                "\n".join(details))
        plan = compile_plan(graph, options)
        self._plans.append(plan)
        return plan

    def execute(self, plan: Plan, feeds: Mapping[str, Any], fetches: Sequence[str] | None = None,
                run_options: Any = None) -> list[Any]:
        with thread_limit(self.options.intra_op_num_threads):
            return plan.run(feeds, fetches, run_options)

    def memory_info(self) -> MemoryInfo:
        return MemoryInfo(
            constant_bytes=sum(p.constant_bytes for p in self._plans),
            peak_activation_bytes=max((p.peak_bytes for p in self._plans), default=0))
