"""``Pass``, ``PassResult``, ``PassContext`` and the ``PassManager`` that runs them.

A pass gets a graph, changes it in place and returns a :class:`PassResult` saying whether it
changed anything and how often each of its rules fired. The manager runs the passes of each
level (BASIC, then EXTENDED, then ALL) in dependency order, repeating a level until nothing
changes (a fixed point, bounded by ``max_iterations``). In debug mode
(``PYFLAME_RT_DEBUG=1`` or ``debug=True``) it verifies the graph after every pass and, when a
pass breaks it, names that pass and the ones that ran before it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidArgumentError, InvalidGraphError, PyFlameRTError
from ..ir import Graph, Value, verify
from .levels import OptLevel

if TYPE_CHECKING:
    from .pattern import Tracer

__all__ = ["FunctionPass", "Pass", "PassContext", "PassManager", "PassResult"]

_DEBUG_ENV = "PYFLAME_RT_DEBUG"


@dataclass
class PassResult:
    """What one pass run did.

    Attributes:
        modified: Whether the graph changed.
        counts: Rule (or pass) name -> how many times it changed the graph.
    """

    modified: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n: int = 1) -> None:
        """Record ``n`` changes made by ``name``."""
        if n:
            self.counts[name] = self.counts.get(name, 0) + n
            self.modified = True

    def merge(self, other: PassResult) -> None:
        for name, n in other.counts.items():
            self.add(name, n)
        self.modified = self.modified or other.modified


@dataclass
class PassContext:
    """What passes may need besides the graph.

    Attributes:
        level: The optimization level being run.
        disabled: Names of passes/rules switched off (``SessionOptions.disabled_optimizers``).
        ir_version: The model's IR version. Below 4, initializers listed as graph inputs are
            plain constants (ONNX IR 3 required every initializer to be an input); from 4 on
            they are *overridable* and never treated as constants. ``None``: unknown, treated
            as overridable (the safe choice).
        tracer: Collects why rules did not fire, when set.
        debug: Verify after every pass.
    """

    level: OptLevel = OptLevel.ALL
    disabled: frozenset[str] = frozenset()
    ir_version: int | None = None
    tracer: Tracer | None = None
    debug: bool = False
    #: Bumped by the manager whenever a pass changes the graph (analyses use it to skip
    #: recomputing results that are still current).
    generation: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    def enabled(self, name: str) -> bool:
        return name not in self.disabled

    def is_overridable(self, value: Value) -> bool:
        """True for an initializer a caller may replace by feeding it (so not a constant)."""
        if not value.is_graph_input:
            return False
        return self.ir_version is None or self.ir_version >= 4

    def const(self, value: Value | None) -> np.ndarray | None:
        """The constant array behind ``value``, or ``None`` when it is not a known constant.

        Constants are non-overridable initializers and outputs of ``Constant`` nodes.
        """
        if value is None:
            return None
        if value.producer is None:
            if value.const_value is None or self.is_overridable(value):
                return None
            arr = value.const_value
            return arr if isinstance(arr, np.ndarray) else None
        node = value.producer
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            return constant_node_value(node)
        return None


def constant_node_value(node: Any) -> np.ndarray | None:
    """The tensor a ``Constant`` node produces (any of its value attributes), or ``None``."""
    attrs = node.attrs
    if "value" in attrs:
        arr = attrs["value"]
        return arr if isinstance(arr, np.ndarray) else None
    if "value_float" in attrs:
        return np.asarray(attrs["value_float"], dtype=np.float32)
    if "value_floats" in attrs:
        return np.asarray(attrs["value_floats"], dtype=np.float32).reshape(-1)
    if "value_int" in attrs:
        return np.asarray(attrs["value_int"], dtype=np.int64)
    if "value_ints" in attrs:
        return np.asarray(attrs["value_ints"], dtype=np.int64).reshape(-1)
    return None


class Pass:
    """A graph transformation.

    Subclasses set ``name`` and ``level`` and implement :meth:`run`. ``after`` / ``before``
    name passes this one must run after / before when both are scheduled.
    """

    name: str = "pass"
    level: OptLevel = OptLevel.BASIC
    after: tuple[str, ...] = ()
    before: tuple[str, ...] = ()
    #: An analysis (e.g. shape inference) updates annotations only: it never keeps the
    #: fixed-point loop going.
    analysis: bool = False

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:  # pragma: no cover
        raise NotImplementedError

    def rule_names(self) -> list[str]:
        """Names that ``disabled_optimizers`` may use to switch parts of this pass off."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, level={self.level.name})"


class FunctionPass(Pass):
    """A pass made from a plain function ``fn(graph, ctx) -> PassResult | int | bool``."""

    def __init__(self, name: str, fn: Any, level: OptLevel = OptLevel.BASIC, *,
                 after: Iterable[str] = (), before: Iterable[str] = ()) -> None:
        self.name = name
        self.fn = fn
        self.level = level
        self.after = tuple(after)
        self.before = tuple(before)

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        out = self.fn(graph, ctx)
        if isinstance(out, PassResult):
            return out
        result = PassResult()
        if out:
            result.add(self.name, int(out))
        return result


def _order(passes: list[Pass]) -> list[Pass]:
    """Passes sorted so every ``after``/``before`` constraint holds (stable otherwise)."""
    names = {p.name: i for i, p in enumerate(passes)}
    deps: dict[int, set[int]] = {i: set() for i in range(len(passes))}
    for i, p in enumerate(passes):
        for a in p.after:
            if a in names:
                deps[i].add(names[a])
        for b in p.before:
            if b in names:
                deps[names[b]].add(i)
    order: list[Pass] = []
    done: set[int] = set()
    while len(order) < len(passes):
        ready = [i for i in range(len(passes)) if i not in done and deps[i] <= done]
        if not ready:
            stuck = [passes[i].name for i in range(len(passes)) if i not in done]
            raise InvalidArgumentError(f"optimizer passes have circular ordering constraints: "
                                       f"{stuck}")
        done.add(ready[0])
        order.append(passes[ready[0]])
    return order


@dataclass
class _Run:
    passes_run: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    iterations: dict[str, int] = field(default_factory=dict)


class PassManager:
    """Runs passes level by level to a fixed point.

    Args:
        passes: The candidate passes (each declares its level).
        level: Highest level to run; passes above it are skipped.
        disabled: Pass or rule names to skip (``disabled_optimizers``).
        max_iterations: Bound on repetitions of one level (each pass must make progress to
            keep the loop going, so this only stops a pass that flip-flops).
        debug: Verify after each pass (default: ``PYFLAME_RT_DEBUG`` is set).
    """

    def __init__(self, passes: Iterable[Pass], level: OptLevel = OptLevel.ALL, *,
                 disabled: Iterable[str] = (), max_iterations: int = 10,
                 debug: bool | None = None) -> None:
        self.level = level
        self.disabled = frozenset(disabled)
        self.max_iterations = max_iterations
        self.debug = bool(os.environ.get(_DEBUG_ENV)) if debug is None else debug
        self.passes = _order([p for p in passes if p.name not in self.disabled])

    def stages(self) -> list[tuple[OptLevel, list[Pass]]]:
        """``(level, passes)`` per stage: a stage runs every enabled pass up to its level."""
        out = []
        for lvl in (OptLevel.BASIC, OptLevel.EXTENDED, OptLevel.ALL):
            if lvl > self.level:
                break
            if any(p.level == lvl for p in self.passes):
                out.append((lvl, [p for p in self.passes if p.level <= lvl]))
        return out

    def run(self, graph: Graph, ctx: PassContext) -> _Run:
        run = _Run()
        ctx.debug = ctx.debug or self.debug
        for _lvl, stage in self.stages():
            for _ in range(self.max_iterations):
                changed = False
                for pass_ in stage:
                    start = time.perf_counter()
                    try:
                        result = pass_.run(graph, ctx)
                    except InvalidGraphError as exc:
                        raise self._blame(pass_, run, exc) from exc
                    except PyFlameRTError:
                        raise
                    except Exception as exc:
                        # A malformed node the schema check cannot see (custom domains)
                        # must not escape as a bare Python error.
                        raise self._blame(pass_, run, exc) from exc
                    run.seconds[pass_.name] = run.seconds.get(pass_.name, 0.0) + \
                        time.perf_counter() - start
                    run.passes_run.append(pass_.name)
                    run.iterations[pass_.name] = run.iterations.get(pass_.name, 0) + 1
                    for name, n in result.counts.items():
                        run.counts[name] = run.counts.get(name, 0) + n
                    if result.modified and not pass_.analysis:
                        changed = True
                        ctx.generation += 1
                    if ctx.debug:
                        try:
                            verify(graph)
                        except InvalidGraphError as exc:
                            raise self._blame(pass_, run, exc) from exc
                if not changed:
                    break
        return run

    @staticmethod
    def _blame(pass_: Pass, run: _Run, exc: Exception) -> InvalidGraphError:
        before = list(dict.fromkeys(run.passes_run))
        return InvalidGraphError(
            f"optimizer pass {pass_.name!r} broke the graph (passes run before it: "
            f"{', '.join(before) or 'none'}): {exc}. Switch it off with "
            f"SessionOptions.disabled_optimizers = [{pass_.name!r}] and report the model.")
