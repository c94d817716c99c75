"""The CPU planner and executor.

``compile_plan`` does all the work once: it picks each node's kernel for the model's opset,
binds attributes, runs kernel specializers (constant inputs and shapes known), numbers every
value with a slot, and records where each value is read for the last time so it can be
released right after. ``CPUPlan.run`` is then the ten-line loop of the house style: read
inputs, call, write outputs, free dead values.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import (
    ExecutionError,
    KernelError,
    MemoryLimitError,
    NotImplementedFeatureError,
    PyFlameRTError,
    RunTerminatedError,
)
from ...ir import Graph, Node, Value
from ...ir.order import _captured
from ...ops import KernelContext, KernelDef, SpecializeContext, lookup
from ..base import CompileOptions, Plan

__all__ = ["CPUPlan", "ProfileEvent", "compile_plan"]

_DEBUG_ENV = "PYFLAME_RT_DEBUG"


@dataclass
class Step:
    """One node of the plan: its bound kernel and the slots it reads, writes and frees."""

    node: Node
    kdef: KernelDef
    fn: Callable[..., Any]
    inputs: tuple[int, ...]  # -1 for an omitted optional input
    outputs: tuple[int, ...]  # -1 for an omitted optional output
    frees: tuple[int, ...]
    takes_ctx: bool
    opset: int


@dataclass
class ProfileEvent:
    """One executed node, as ONNX Runtime's profiler records it."""

    name: str
    op_type: str
    start_ns: int
    dur_ns: int
    input_shapes: list
    output_shapes: list
    thread_id: int
    #: The control-flow node(s) whose body ran this node, outermost first, joined by "/"
    #: ("" at the top level). ONNX Runtime's trace names body nodes unqualified; this keeps
    #: them apart when two bodies reuse a node name.
    parent: str = ""


def _node_opset(graph: Graph, node: Node) -> int | None:
    return graph.opset(node.domain)


def _bind(kdef: KernelDef, node: Node, graph: Graph, opset: int | None,
          constants: Sequence[Any], options: CompileOptions) -> Callable[..., Any]:
    unknown = kdef.check_attrs(node.attrs)
    if unknown:
        raise NotImplementedFeatureError(
            f"{node.describe()}: attribute(s) {', '.join(unknown)} of {node.qualified_op} "
            f"are not supported by its kernel (known: {', '.join(sorted(kdef.attr_names))})")
    specialize = kdef.specialize
    if specialize is None and not kdef.custom:
        specialize = _PLANNER_FAST_PATHS.get((kdef.domain, kdef.op_type))
        if specialize is not None:
            specialize = functools.partial(specialize, fallback=kdef.fn)
    if specialize is not None:
        ctx = SpecializeContext(
            node=node, attrs=dict(node.attrs), input_types=[v.type if v is not None else None
                                                            for v in node.inputs],
            constants=constants, opset=opset or 0,
            options={"intra_op_num_threads": options.intra_op_num_threads, **options.config})
        special = specialize(ctx)
        if special is not None:
            return special
    return functools.partial(kdef.fn, **node.attrs) if node.attrs else kdef.fn


def _fast_matmul(ctx: SpecializeContext, fallback: Callable[..., Any]) -> Any:
    from .codegen.gemm import specialize_matmul

    return specialize_matmul(ctx, fallback)


def _fast_gemm(ctx: SpecializeContext, fallback: Callable[..., Any]) -> Any:
    from .codegen.gemm import specialize_gemm

    return specialize_gemm(ctx, fallback)


def _fast_batch_norm(ctx: SpecializeContext, fallback: Callable[..., Any]) -> Any:
    from .codegen.affine import specialize_batch_norm

    return specialize_batch_norm(ctx, fallback)


#: Compile-time fast paths the planner applies to built-in kernels that have no specializer
#: of their own: float32 MatMul/Gemm with constant weights run as packed GEMMs split over the
#: session's threads (``codegen/gemm.py``), inference BatchNormalization as one per-channel
#: affine pass (``codegen/affine.py``). A kernel registered by the user is never replaced.
_PLANNER_FAST_PATHS: dict[tuple[str, str], Callable[..., Any]] = {
    ("", "MatMul"): _fast_matmul,
    ("", "Gemm"): _fast_gemm,
    ("", "BatchNormalization"): _fast_batch_norm,
}


def _passthrough(x: Any) -> Any:
    """A step whose work its producer already did (see :func:`_absorb_activations`)."""
    return x


def _absorb_activations(steps: list[Step], graph: Graph) -> None:
    """Let a specialized producer that can apply an activation itself (``absorb``) take the
    ``Relu`` that is the only reader of its output; the Relu step then passes its input
    through. Saves a pass over the tensor, e.g. DenseNet's BatchNormalization -> Relu."""
    producer: dict[int, Step] = {}
    for step in steps:
        for v in step.node.outputs:
            if v is not None:
                producer[id(v)] = step
    outputs = {id(v) for v in graph.outputs}
    captured = {id(v) for node in graph.nodes for sub in node.subgraphs()
                for v in _captured(sub)}
    for step in steps:
        node = step.node
        if node.op_type != "Relu" or node.domain not in ("", "ai.onnx") or step.kdef.custom:
            continue
        v = node.inputs[0] if node.inputs else None
        src = producer.get(id(v)) if v is not None else None
        if src is None or not hasattr(src.fn, "absorb") or id(v) in outputs or \
                id(v) in captured or len(v.consumers()) != 1:
            continue
        if src.fn.absorb("Relu"):
            step.fn = _passthrough


def _absorb_concats(steps: list[Step], graph: Graph) -> None:
    """Let a specialized step that can read a channel concatenation piece by piece
    (``absorb_concat``) take the Concat whose output only it reads: the Concat step then
    hands over its inputs unjoined (e.g. DenseNet's Concat -> BatchNormalization)."""
    producer = {id(v): step for step in steps for v in step.node.outputs if v is not None}
    outputs = {id(v) for v in graph.outputs}
    captured = {id(v) for node in graph.nodes for sub in node.subgraphs()
                for v in _captured(sub)}
    for step in steps:
        absorb = getattr(step.fn, "absorb_concat", None)
        v = step.node.inputs[0] if step.node.inputs else None
        src = producer.get(id(v)) if v is not None else None
        if (absorb is None or src is None or src.node.op_type != "Concat"
                or src.node.domain not in ("", "ai.onnx") or src.kdef.custom
                or id(v) in outputs or id(v) in captured or len(v.consumers()) != 1
                or sum(x is v for x in step.node.inputs) != 1):
            continue
        fn = absorb(src.fn, src.node.attrs.get("axis"))
        if fn is not None:
            src.fn = fn


def compile_plan(graph: Graph, options: CompileOptions | None = None, *,
                 captured: Sequence[Value] = ()) -> CPUPlan:
    """Compile ``graph`` for the CPU. ``captured`` lists outer-scope values (subgraphs)."""
    options = options or CompileOptions()
    slot_of: dict[int, int] = {}
    template: list[Any] = []

    def slot(v: Value) -> int:
        s = slot_of.get(id(v))
        if s is None:
            s = slot_of[id(v)] = len(template)
            template.append(None)
        return s

    constant_bytes = 0
    for v in graph.initializers.values():
        arr = v.const_value
        if isinstance(arr, np.ndarray) and arr.flags.writeable:
            # Constants are shared by every run: make them read-only so no kernel (or caller
            # receiving one as an output) can change the model.
            arr = arr.view()
            arr.flags.writeable = False
        template[slot(v)] = arr
        constant_bytes += getattr(arr, "nbytes", 0)
    if options.memory_limit and constant_bytes > options.memory_limit:
        raise MemoryLimitError(
            f"the model's constants need {constant_bytes} bytes, more than memory_limit="
            f"{options.memory_limit}; raise SessionOptions.memory_limit")
    input_slots = [(v.name, slot(v)) for v in graph.inputs]
    captured_slots = [slot(v) for v in captured]

    steps: list[Step] = []
    last_read: dict[int, int] = {}
    for index, node in enumerate(graph.nodes):
        opset = _node_opset(graph, node)
        kdef = lookup(node.op_type, node.domain, opset)
        in_slots = []
        for v in node.inputs:
            if v is None:
                in_slots.append(-1)
                continue
            if id(v) not in slot_of:
                raise ExecutionError(f"{node.describe()}: input {v.name!r} is not defined "
                                     "before this node (graph not verified?)")
            s = slot_of[id(v)]
            in_slots.append(s)
            last_read[s] = index
        for sub in node.subgraphs():
            for v in _captured(sub):
                if id(v) in slot_of:
                    last_read[slot_of[id(v)]] = index
        # Constants are handed over as the very arrays the plan feeds at run time, so a
        # specialized kernel can tell by identity that an input is still its constant (an
        # overridable initializer fed by the user is a different object).
        constants = [None if v is None else _constant(v, slot_of, template)
                     for v in node.inputs]
        fn = _bind(kdef, node, graph, opset, constants, options)
        out_slots = tuple(-1 if v is None else slot(v) for v in node.outputs)
        steps.append(Step(node, kdef, fn, tuple(in_slots), out_slots, (), kdef.takes_ctx,
                          opset or 0))

    _absorb_activations(steps, graph)
    _absorb_concats(steps, graph)
    output_slots = []
    for v in graph.outputs:
        if id(v) not in slot_of:
            raise ExecutionError(f"graph output {v.name!r} is not produced by the graph")
        output_slots.append(slot_of[id(v)])
    keep = set(output_slots) | {s for _, s in input_slots} | set(captured_slots)
    keep |= {slot_of[id(v)] for v in graph.initializers.values()}
    frees: dict[int, list[int]] = {}
    for s, index in last_read.items():
        if s not in keep:
            frees.setdefault(index, []).append(s)
    # A value nobody reads is dropped right after it is produced.
    for index, step in enumerate(steps):
        for s in step.outputs:
            if s >= 0 and s not in keep and s not in last_read:
                frees.setdefault(index, []).append(s)
        step.frees = tuple(frees.get(index, ()))
    return CPUPlan(graph, steps, template, slot_of, input_slots, captured_slots,
                   [v.name for v in graph.outputs], output_slots, options, constant_bytes)


class CPUPlan(Plan):
    """A compiled graph: steps in execution order over a flat list of value slots."""

    def __init__(self, graph: Graph, steps: list[Step], template: list[Any],
                 slot_of: dict[int, int], input_slots: list[tuple[str, int]], captured_slots: list[int],
                 output_names: list[str], output_slots: list[int], options: CompileOptions,
                 constant_bytes: int) -> None:
        self.graph = graph
        self.steps = steps
        self.template = template
        self.slot_of = slot_of
        self.outer_slots: list[int] = []
        self.input_slots = input_slots
        self.captured_slots = captured_slots
        self.output_names = output_names
        self.output_slots = output_slots
        self.options = options
        self.constant_bytes = constant_bytes
        self.peak_bytes = 0
        # Sub-plans (If/Loop/Scan bodies) share their parent's list, so the session's trace
        # holds every executed node; ``profile_parent`` names the node whose body this is.
        self.profile_events: list[ProfileEvent] = []
        self.profile_parent = ""
        self._subplans: dict[int, CPUPlan] = {}
        self._lock = threading.Lock()
        self._debug = bool(os.environ.get(_DEBUG_ENV))
        self._rng = np.random.default_rng()
        self._pruned: dict[tuple[str, ...], list[Step]] = {}

    # -- public ----------------------------------------------------------------------------
    def run(self, feeds: Mapping[str, Any], fetches: Sequence[str] | None = None,
            run_options: Any = None) -> list[Any]:
        """Run with ``feeds`` (input name -> array); return the ``fetches`` (default: all)."""
        env = list(self.template)
        for name, s in self.input_slots:
            if name in feeds:
                env[s] = _readonly(feeds[name])
        steps = self.steps
        if fetches is not None and run_options is not None and \
                getattr(run_options, "only_execute_path_to_fetches", False):
            steps = self._steps_for(tuple(fetches))
        self._execute(steps, env, run_options)
        wanted = self.output_slots if fetches is None else [
            self.output_slots[self.output_names.index(n)] for n in fetches]
        return [_owned(env[s]) for s in wanted]

    def run_slots(self, inputs: Sequence[Any], captured: Sequence[Any],
                  run_options: Any = None) -> list[Any]:
        """Run a subgraph plan with positional graph inputs and outer-scope values."""
        env = list(self.template)
        for (_, s), value in zip(self.input_slots, inputs):
            env[s] = value
        for s, value in zip(self.captured_slots, captured):
            env[s] = value
        self._execute(self.steps, env, run_options)
        return [env[s] for s in self.output_slots]

    # -- the loop --------------------------------------------------------------------------
    def _execute(self, steps: list[Step], env: list[Any], run_options: Any) -> None:
        if self._debug or self.options.enable_profiling or self.options.memory_limit:
            return self._execute_instrumented(steps, env, run_options)
        for step in steps:
            if run_options is not None and run_options.terminate:
                raise RunTerminatedError("the run was terminated by RunOptions.terminate")
            args = [env[i] if i >= 0 else None for i in step.inputs]
            try:
                if step.takes_ctx:
                    result = step.fn(*args, _ctx=self._context(step, env, run_options))
                else:
                    result = step.fn(*args)
            except Exception as exc:
                raise self._kernel_error(step, args, exc) from exc
            self._store(step, result, env)
            for s in step.frees:
                env[s] = None
        return None

    def _execute_instrumented(self, steps: list[Step], env: list[Any], run_options: Any) -> None:
        limit = self.options.memory_limit
        live = 0
        for step in steps:
            if run_options is not None and run_options.terminate:
                raise RunTerminatedError("the run was terminated by RunOptions.terminate")
            args = [env[i] if i >= 0 else None for i in step.inputs]
            start = time.perf_counter_ns()
            try:
                if step.takes_ctx:
                    result = step.fn(*args, _ctx=self._context(step, env, run_options))
                else:
                    result = step.fn(*args)
            except Exception as exc:
                raise self._kernel_error(step, args, exc) from exc
            dur = time.perf_counter_ns() - start
            self._store(step, result, env)
            outs = [env[s] if s >= 0 else None for s in step.outputs]
            if self.options.enable_profiling:
                self._record(step, args, outs, start, dur)
            if self._debug:
                print(f"[pyflame_rt] {step.node.qualified_op} {step.node.name!r}: "
                      f"{_shapes(args)} -> {_shapes(outs)} ({dur / 1e3:.1f} us)",
                      file=sys.stderr)
            if limit:
                live += sum(getattr(o, "nbytes", 0) for o in outs)
                live -= sum(getattr(env[s], "nbytes", 0) for s in step.frees)
                if live > limit:
                    raise MemoryLimitError(
                        f"running {step.node.describe()} needs {live} bytes of activations, "
                        f"more than memory_limit={limit}; raise SessionOptions.memory_limit "
                        "or use a smaller batch")
                self.peak_bytes = max(self.peak_bytes, live)
            for s in step.frees:
                env[s] = None

    # -- helpers ---------------------------------------------------------------------------
    def _store(self, step: Step, result: Any, env: list[Any]) -> None:
        outs = step.outputs
        if len(outs) == 1 and not isinstance(result, tuple):
            if outs[0] >= 0:
                env[outs[0]] = _as_array(result)
            return
        if not isinstance(result, tuple):
            result = (result,)
        for i, s in enumerate(outs):
            if s < 0:
                continue
            if i >= len(result):
                raise KernelError(
                    f"{step.node.describe()}: the kernel returned {len(result)} output(s) but "
                    f"the node asks for output {i}")
            env[s] = _as_array(result[i])

    def _context(self, step: Step, env: list[Any], run_options: Any) -> KernelContext:
        def run_graph(subgraph: Graph, inputs: list) -> list:
            sub = self._subplan(subgraph, step.node)
            captured = [env[s] for s in sub.outer_slots]
            return sub.run_slots(inputs, captured, run_options)

        return KernelContext(node=step.node, noutputs=len(step.outputs), opset=step.opset,
                             run_graph=run_graph, output_present=[s >= 0 for s in step.outputs],
                             rng=self._rng)

    def _subplan(self, subgraph: Graph, owner: Node | None = None) -> CPUPlan:
        sub = self._subplans.get(id(subgraph))
        if sub is None:
            with self._lock:
                sub = self._subplans.get(id(subgraph))
                if sub is None:
                    captured = _unique(_captured(subgraph))
                    sub = compile_plan(subgraph, self.options, captured=captured)
                    sub.outer_slots = [self._slot_of_value(v) for v in captured]
                    sub.profile_events = self.profile_events
                    if owner is not None:
                        name = owner.name or owner.op_type
                        sub.profile_parent = (f"{self.profile_parent}/{name}"
                                              if self.profile_parent else name)
                    self._subplans[id(subgraph)] = sub
        return sub

    def _slot_of_value(self, value: Value) -> int:
        s = self.slot_of.get(id(value))
        if s is None:
            raise ExecutionError(f"a subgraph reads {value.name!r}, which its enclosing graph "
                                 "does not define")
        return s

    def _steps_for(self, fetches: tuple[str, ...]) -> list[Step]:
        pruned = self._pruned.get(fetches)
        if pruned is None:
            needed = {self.output_slots[self.output_names.index(n)] for n in fetches}
            keep: list[Step] = []
            for step in reversed(self.steps):
                if any(s in needed for s in step.outputs):
                    keep.append(step)
                    needed.update(s for s in step.inputs if s >= 0)
                    for sub in step.node.subgraphs():
                        needed.update(self._slot_of_value(v) for v in _captured(sub))
            pruned = self._pruned[fetches] = keep[::-1]
        return pruned

    def _kernel_error(self, step: Step, args: list[Any], exc: Exception) -> PyFlameRTError:
        context = (f"while executing {step.node.describe()} with inputs {_shapes(args)} "
                   f"(kernel {step.kdef.op_type}-{step.kdef.since})")
        if isinstance(exc, PyFlameRTError):
            try:
                return type(exc)(f"{exc} [{context}]")
            except TypeError:
                return KernelError(f"{context}: {exc}")
        return KernelError(f"{type(exc).__name__}: {exc} [{context}]")

    def _record(self, step: Step, args: list[Any], outs: list[Any], start: int, dur: int) -> None:
        self.profile_events.append(ProfileEvent(
            name=step.node.name or step.node.op_type, op_type=step.node.op_type,
            start_ns=start, dur_ns=dur, input_shapes=_shape_list(args),
            output_shapes=_shape_list(outs), thread_id=threading.get_ident(),
            parent=self.profile_parent))


def _constant(v: Value, slot_of: dict[int, int], template: list[Any]) -> Any:
    s = slot_of.get(id(v))
    if s is not None and template[s] is not None:
        return template[s]
    return v.const_value


def _unique(values: list[Value]) -> list[Value]:
    seen: dict[int, Value] = {}
    for v in values:
        seen.setdefault(id(v), v)
    return list(seen.values())


def _as_array(value: Any) -> Any:
    # Kernels return numpy scalars now and then (np.sum of a 0-d array); ONNX wants tensors.
    if isinstance(value, np.generic):
        return np.asarray(value)
    return value


def _readonly(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.flags.writeable:
        view = value.view()
        view.flags.writeable = False
        return view
    return value


def _owned(value: Any) -> Any:
    """A result the caller may keep and edit: copies what still views a feed or a constant."""
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        return value.copy()
    if isinstance(value, list):
        return [_owned(v) for v in value]
    return value


def _shape_of(a: Any) -> str:
    if a is None:
        return "None"
    if isinstance(a, np.ndarray):
        return f"{a.dtype}{list(a.shape)}"
    if isinstance(a, list):
        return f"seq[{len(a)}]"
    return type(a).__name__


def _shapes(arrays: Sequence[Any]) -> str:
    return "(" + ", ".join(_shape_of(a) for a in arrays) + ")"


def _shape_list(arrays: Sequence[Any]) -> list:
    return [list(a.shape) if isinstance(a, np.ndarray) else None for a in arrays]
