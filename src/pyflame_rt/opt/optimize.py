"""``optimize(graph, level)``: run the registered passes for a level and report what changed.

The default pipeline (each level includes the ones below it)::

    BASIC     shape_inference, shape_folding, constant_folding, simplify, cse,
              basic_fusions (Conv+BatchNormalization/Add/Mul, MatMul+Add->Gemm,
              Transpose->Gemm, Pad->Conv), dead_code_elimination
    EXTENDED  gelu_fusion, quickgelu_fusion, layernorm_fusion, rmsnorm_fusion,
              embed_layernorm_fusion, attention_fusion, onnx_attention_fusion,
              bias_softmax_fusion, skip_layernorm_fusion, matmul_fusion,
              batchnorm_activation_fusion, activation_fusion (Conv/Gemm/MatMul + activation)
    ALL       layout passes (none yet)

Users add passes with :func:`register_pass` and fusion rules with :func:`register_rule`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidGraphError
from ..ir import Graph, Model, verify
from .levels import OptLevel, to_opt_level
from .pass_manager import Pass, PassContext, PassManager
from .pattern import Rule, RuleSet, Tracer

__all__ = [
    "OptimizationReport",
    "available_optimizers",
    "default_passes",
    "optimize",
    "register_pass",
    "register_rule",
    "unregister",
]


@dataclass
class OptimizationReport:
    """What an optimization run did.

    Attributes:
        level: The level that ran.
        passes: Names of the passes run, in order (one entry per run of a pass).
        rules_fired: Rule or pass name -> how many times it changed the graph.
        nodes_before: Node count before (subgraphs included).
        nodes_after: Node count after.
        seconds: Pass name -> time spent (``total`` for the whole run).
        trace: The :class:`Tracer` when tracing was asked for (``optimize(..., trace=True)``).
        skipped_reason: Why nothing ran although the level asked for passes (else ``""``).
    """

    level: OptLevel
    passes: list[str] = field(default_factory=list)
    rules_fired: dict[str, int] = field(default_factory=dict)
    nodes_before: int = 0
    nodes_after: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    trace: Tracer | None = None
    skipped_reason: str = ""

    def summary(self) -> str:
        """One line: level, node counts, what fired."""
        fired = ", ".join(f"{k}×{v}" for k, v in self.rules_fired.items()) or "nothing fired"
        return (f"level {self.level.name}: {self.nodes_before} -> {self.nodes_after} nodes; "
                f"{fired}")

    def format(self) -> str:
        """A multi-line report (what ``pyflame-rt optimize`` prints)."""
        head = (f"optimization level {self.level.name}: {self.nodes_before} -> "
                f"{self.nodes_after} nodes ({self.nodes_after - self.nodes_before:+d}) in "
                f"{self.seconds.get('total', 0.0) * 1e3:.1f} ms")
        lines = [head]
        runs: dict[str, int] = {}
        for name in self.passes:
            runs[name] = runs.get(name, 0) + 1
        if runs:
            lines.append("passes:")
            for name, n in runs.items():
                lines.append(f"  {name:<36} ran {n}x  {self.seconds.get(name, 0.0) * 1e3:8.1f} ms")
        if self.rules_fired:
            lines.append("rules fired:")
            for name, n in sorted(self.rules_fired.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"  {name:<36} {n}")
        else:
            lines.append("rules fired: none")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _count(graph: Graph) -> int:
    return sum(1 for _ in graph.all_nodes())


_USER_PASSES: list[Pass] = []
_USER_RULES: dict[OptLevel, list[Rule]] = {}


def register_pass(pass_: Pass) -> Pass:
    """Add a pass to every later ``optimize`` run (and every session built after)."""
    if not isinstance(pass_, Pass):
        raise TypeError(f"register_pass expects a pyflame_rt.opt.Pass, got "
                        f"{type(pass_).__name__}")
    _USER_PASSES.append(pass_)
    return pass_


def register_rule(rule: Rule, level: Any = OptLevel.EXTENDED) -> Rule:
    """Add a rewrite rule (e.g. a :class:`~pyflame_rt.opt.RewriteRule`) at ``level``.

    User rules run after the built-in fusions of the same level.
    """
    if not isinstance(rule, Rule):
        raise TypeError(f"register_rule expects a pyflame_rt.opt.Rule, got "
                        f"{type(rule).__name__}")
    _USER_RULES.setdefault(to_opt_level(level), []).append(rule)
    return rule


def unregister(name: str) -> None:
    """Remove a user pass or rule registered under ``name``."""
    _USER_PASSES[:] = [p for p in _USER_PASSES if p.name != name]
    for rules in _USER_RULES.values():
        rules[:] = [r for r in rules if r.name != name]


def default_passes() -> list[Pass]:
    """The built-in pipeline, fresh objects in scheduling order."""
    from .passes.constant_folding import ConstantFolding
    from .passes.cse import CommonSubexpressionElimination
    from .passes.dce import DeadCodeElimination
    from .passes.shapes import ShapeFolding, ShapeInference
    from .passes.simplify import simplify_rules
    from .rules import basic_rule_set, extended_rule_sets

    passes: list[Pass] = [
        ShapeInference(),
        ShapeFolding(),
        ConstantFolding(),
        RuleSet(simplify_rules(), name="simplify", level=OptLevel.BASIC,
                after=("constant_folding",)),
        CommonSubexpressionElimination(),
        basic_rule_set(),
        DeadCodeElimination(),
    ]
    passes[-1].after = tuple(p.name for p in passes[:-1])
    passes.extend(extended_rule_sets())
    passes.extend(_USER_PASSES)
    for lvl, rules in sorted(_USER_RULES.items()):
        if rules:
            passes.append(RuleSet(list(rules), name=f"user_rules_{lvl.name.lower()}", level=lvl))
    return passes


def available_optimizers() -> dict[str, list[str]]:
    """Pass name -> names of its rules: everything ``disabled_optimizers`` accepts."""
    return {p.name: p.rule_names() for p in default_passes()}


def _refers_by_name(graph: Graph) -> bool:
    return any(n.op_type == "Gradient" and n.domain == "ai.onnx.preview.training"
               for n in graph.all_nodes())


def optimize(graph: Graph | Model, level: Any = OptLevel.ALL, *,
             disabled_optimizers: Iterable[str] = (), ir_version: int | None = None,
             debug: bool | None = None, trace: bool = False,
             passes: Iterable[Pass] | None = None,
             extra_passes: Iterable[Pass] = ()) -> tuple[Graph, OptimizationReport]:
    """Optimize ``graph`` in place at ``level``; return it with a report.

    Args:
        graph: The graph (or a ``Model``, whose IR version is then used) to rewrite in place.
        level: ``OptLevel``, ORT's ``GraphOptimizationLevel``, an int or a name.
        disabled_optimizers: Pass or rule names to skip (ONNX Runtime's keyword); see
            :func:`available_optimizers`.
        ir_version: The model's IR version; below 4, initializers listed as graph inputs are
            constants (``None``: taken from ``graph.meta["ir_version"]`` when the importer
            recorded it, else they are treated as overridable and left alone).
        debug: Verify after every pass (default: when ``PYFLAME_RT_DEBUG`` is set).
        trace: Record every rule attempt and refusal in ``report.trace``.
        passes: Run these passes instead of the default pipeline.
        extra_passes: Passes added to the pipeline, e.g. a backend's layout pass
            (``InferenceSession`` adds :class:`~.passes.layout.LayoutPass` with the
            backend's block size).

    Returns:
        ``(graph, report)``.

    Raises:
        InvalidGraphError: a pass broke the graph; the message names it and the passes
            before it.
    """
    if isinstance(graph, Model):
        ir_version = ir_version if ir_version is not None else graph.ir_version
        graph = graph.graph
    lvl = to_opt_level(level)
    if ir_version is None:
        ir_version = graph.meta.get("ir_version")
    report = OptimizationReport(level=lvl, nodes_before=_count(graph))
    start = time.perf_counter()
    disabled = frozenset(disabled_optimizers)
    if lvl > OptLevel.NONE and _refers_by_name(graph):
        # Gradient names the tensors it differentiates in attributes (y/xs/zs), not through
        # edges: removing or fusing the nodes on that path would break it. Leave such graphs
        # exactly as written.
        report.skipped_reason = ("the graph has a Gradient node (ai.onnx.preview.training), "
                                 "which names tensors by attribute; nothing was rewritten")
        lvl = OptLevel.NONE
    if lvl > OptLevel.NONE:
        dbg = bool(os.environ.get("PYFLAME_RT_DEBUG")) if debug is None else debug
        ctx = PassContext(level=lvl, disabled=disabled, ir_version=ir_version,
                          tracer=Tracer() if trace else None, debug=dbg)
        pipeline = list(default_passes() if passes is None else passes) + list(extra_passes)
        manager = PassManager(pipeline, lvl,
                              disabled=disabled, debug=dbg)
        run = manager.run(graph, ctx)
        report.passes = run.passes_run
        report.rules_fired = run.counts
        report.seconds.update(run.seconds)
        report.trace = ctx.tracer
        if not dbg:
            try:
                verify(graph)
            except InvalidGraphError as exc:
                raise InvalidGraphError(
                    f"the optimized graph is invalid: {exc}. Rerun with PYFLAME_RT_DEBUG=1 to "
                    "find the pass responsible, or lower graph_optimization_level.") from exc
    report.seconds["total"] = time.perf_counter() - start
    report.nodes_after = _count(graph)
    return graph, report
