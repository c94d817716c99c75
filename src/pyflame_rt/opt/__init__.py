"""The graph optimizer: levels, passes, the pattern matcher and the fusion rules.

``optimize(graph, level)`` runs the built-in pipeline (see :mod:`pyflame_rt.opt.optimize`)
and returns the graph with an :class:`OptimizationReport`. Write a fusion as a
:class:`RewriteRule` (pattern, check, rewrite) and add it with :func:`register_rule`; ask
:meth:`RuleSet.explain` (or ``optimize(..., trace=True)``) why a rule did not fire.
"""

from __future__ import annotations

from .levels import OptLevel, to_opt_level
from .optimize import (
    OptimizationReport,
    available_optimizers,
    default_passes,
    optimize,
    register_pass,
    register_rule,
    unregister,
)
from .pass_manager import FunctionPass, Pass, PassContext, PassManager, PassResult
from .pattern import Match, MatchResult, RewriteRule, Rule, RuleSet, TraceEntry, Tracer

__all__ = [
    "FunctionPass",
    "Match",
    "MatchResult",
    "OptLevel",
    "OptimizationReport",
    "Pass",
    "PassContext",
    "PassManager",
    "PassResult",
    "RewriteRule",
    "Rule",
    "RuleSet",
    "TraceEntry",
    "Tracer",
    "available_optimizers",
    "default_passes",
    "optimize",
    "register_pass",
    "register_rule",
    "to_opt_level",
    "unregister",
]
