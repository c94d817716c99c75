"""The declarative pattern matcher, ``RewriteRule(pattern, check, rewrite)`` and the tracer.

A pattern is a small Python function over an op builder; its parameters (after ``op``) are
pattern variables that bind to any value::

    def pattern(op, x, w):
        return op.Relu(op.Conv(x, w, _allow_other_inputs=True, _name="conv"))

``check(m)`` looks at the :class:`Match` and returns ``m.ok()`` or ``m.fail(reason)``;
``rewrite(op, m)`` builds the replacement with a second op builder and returns the new
value(s), one per pattern output. The matcher is *safe by default*: it refuses a match when a
value computed inside the pattern is also read outside it (fusing would then compute it twice)
or is a graph output. Binary ops that commute (``Add``, ``Mul``, ...) match in either input
order. Every refusal has a reason, so :class:`Tracer` can say why a rule did not fire.

Options on a pattern node (keyword arguments starting with ``_``): ``_domain``, ``_name`` (so
``check``/``rewrite`` can say ``m.node("conv")``), ``_outputs`` (number of outputs, returns a
tuple when > 1), ``_allow_other_inputs`` (extra trailing inputs may be present),
``_allow_other_attrs`` (default True: attributes not named are not checked), ``_commute``.
Other keyword arguments constrain attributes: a plain value must be equal (the schema default
counts when the attribute is absent), a callable must return True.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ir import Graph, Node, Value
from ..types import DType, TensorInfo
from ._util import get_attr, graphs_of, scalar_of
from .levels import OptLevel
from .pass_manager import Pass, PassContext, PassResult

__all__ = [
    "ConstantPattern",
    "Match",
    "MatchResult",
    "NodeOutputPattern",
    "NodePattern",
    "PatternBuilder",
    "RewriteBuilder",
    "RewriteRule",
    "Rule",
    "RuleSet",
    "TraceEntry",
    "Tracer",
    "ValuePattern",
]

COMMUTATIVE_OPS = frozenset({"Add", "Mul", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor",
                             "Equal", "BitwiseAnd", "BitwiseOr", "BitwiseXor"})


# ==============================================================================================
# Pattern objects
# ==============================================================================================
class ValuePattern:
    """Matches any value and binds it to ``name`` (the same name must bind the same value)."""

    def __init__(self, name: str | None) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ValuePattern({self.name!r})"


class ConstantPattern:
    """Matches a constant (initializer or ``Constant`` output) with one element equal to
    ``value`` within ``rtol``/``atol``."""

    def __init__(self, value: float, rtol: float = 1e-4, atol: float = 1e-7) -> None:
        self.value = float(value)
        self.rtol = rtol
        self.atol = atol

    def __repr__(self) -> str:
        return f"ConstantPattern({self.value})"


class NodePattern:
    """One pattern node: op type, domain, input patterns, attribute constraints."""

    def __init__(self, op_type: str, domain: str, inputs: Sequence[Any],
                 attrs: dict[str, Any], *, name: str | None = None, num_outputs: int = 1,
                 allow_other_inputs: bool = False, allow_other_attrs: bool = True,
                 commute: bool | None = None) -> None:
        self.op_type = op_type
        self.domain = "" if domain == "ai.onnx" else domain
        self.inputs = [_as_input_pattern(i) for i in inputs]
        self.attrs = attrs
        self.name = name
        self.num_outputs = num_outputs
        self.allow_other_inputs = allow_other_inputs
        self.allow_other_attrs = allow_other_attrs
        self.commute = (op_type in COMMUTATIVE_OPS and len(self.inputs) == 2 and not domain) \
            if commute is None else commute

    def __repr__(self) -> str:
        return f"NodePattern({self.op_type}{' ' + self.name if self.name else ''})"


class NodeOutputPattern:
    """Output ``index`` of a pattern node."""

    def __init__(self, node: NodePattern, index: int) -> None:
        self.node = node
        self.index = index

    def __repr__(self) -> str:
        return f"{self.node!r}[{self.index}]"


def _as_input_pattern(x: Any) -> Any:
    if x is None or isinstance(x, (ValuePattern, ConstantPattern, NodeOutputPattern)):
        return x
    if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool):
        return ConstantPattern(float(x))
    raise TypeError(f"a pattern input must be a pattern variable, a node output or a number, "
                    f"got {type(x).__name__}")


class PatternBuilder:
    """The ``op`` given to a pattern function: ``op.Conv(x, w)`` makes a pattern node."""

    def __init__(self) -> None:
        self.nodes: list[NodePattern] = []

    def __getattr__(self, op_type: str) -> Callable[..., Any]:
        if op_type.startswith("_"):
            raise AttributeError(op_type)

        def make(*inputs: Any, _domain: str = "", _name: str | None = None,
                 _outputs: int = 1, _allow_other_inputs: bool = False,
                 _allow_other_attrs: bool = True, _commute: bool | None = None,
                 **attrs: Any) -> Any:
            node = NodePattern(op_type, _domain, inputs, attrs, name=_name,
                               num_outputs=_outputs, allow_other_inputs=_allow_other_inputs,
                               allow_other_attrs=_allow_other_attrs, commute=_commute)
            self.nodes.append(node)
            if _outputs == 1:
                return NodeOutputPattern(node, 0)
            return tuple(NodeOutputPattern(node, i) for i in range(_outputs))

        return make

    @staticmethod
    def constant(value: float, rtol: float = 1e-4, atol: float = 1e-7) -> ConstantPattern:
        """A constant input equal to ``value`` (tolerances for exporters' float32 rounding)."""
        return ConstantPattern(value, rtol, atol)


# ==============================================================================================
# Matches
# ==============================================================================================
@dataclass
class MatchResult:
    """``check``'s answer: success, or failure with the reason."""

    success: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.success


@dataclass
class _Bindings:
    nodes: dict[int, tuple[NodePattern, Node]] = field(default_factory=dict)
    values: dict[str, Value | None] = field(default_factory=dict)

    def with_node(self, pn: NodePattern, node: Node) -> _Bindings:
        nodes = dict(self.nodes)
        nodes[id(pn)] = (pn, node)
        return _Bindings(nodes, self.values)

    def with_value(self, name: str | None, value: Value | None) -> _Bindings:
        if name is None:
            return self
        values = dict(self.values)
        values[name] = value
        return _Bindings(self.nodes, values)


class Match:
    """A structural match of a rule's pattern, handed to ``check`` and ``rewrite``.

    Attributes:
        graph: The graph matched in.
        ctx: The pass context (constants, overridability).
        root: The node producing the first pattern output.
        outputs: The values the pattern's outputs matched.
    """

    def __init__(self, graph: Graph, ctx: PassContext, bindings: _Bindings,
                 outputs: list[Value]) -> None:
        self.graph = graph
        self.ctx = ctx
        self._bindings = bindings
        self.outputs = outputs
        self.root = outputs[0].producer
        self._by_name = {pn.name: node for pn, node in bindings.nodes.values()
                         if pn.name is not None}

    @property
    def nodes(self) -> list[Node]:
        """Every matched node."""
        return [node for _, node in self._bindings.nodes.values()]

    def node(self, name: str) -> Node:
        """The node matched by the pattern node named ``name`` (``_name=``)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"the pattern has no node named {name!r}") from None

    def has(self, name: str) -> bool:
        return name in self._bindings.values or name in self._by_name

    def value(self, name: str) -> Value | None:
        """The value bound to variable ``name``, or output 0 of the node named ``name``."""
        if name in self._bindings.values:
            return self._bindings.values[name]
        if name in self._by_name:
            return self._by_name[name].outputs[0]
        raise KeyError(f"the pattern has no variable or node named {name!r}")

    def __getitem__(self, name: str) -> Value | None:
        return self.value(name)

    def const(self, name: str) -> np.ndarray | None:
        """The constant array behind ``name`` (``None`` when it is not a constant)."""
        return self.ctx.const(self.value(name))

    def is_shared(self, name: str | Value) -> bool:
        """True when the value (or the value bound to ``name``) is read outside the match."""
        v = name if isinstance(name, Value) else self.value(name)
        if v is None:
            return False
        matched = {id(n) for n in self.nodes}
        return v.is_graph_output or any(id(u.node) not in matched for u in v.uses)

    def attr(self, node_name: str, attr: str, default: Any = None) -> Any:
        """Attribute ``attr`` of the node named ``node_name`` (schema default included)."""
        return get_attr(self.node(node_name), attr, default)

    @staticmethod
    def ok() -> MatchResult:
        return MatchResult(True)

    @staticmethod
    def fail(reason: str) -> MatchResult:
        return MatchResult(False, reason)


class _Matcher:
    """Backtracking structural matcher; remembers the reason of the deepest failure."""

    def __init__(self, graph: Graph, ctx: PassContext) -> None:
        self.graph = graph
        self.ctx = ctx
        self.best_depth = -1
        self.reason = "no match"

    def _fail(self, b: _Bindings, reason: str) -> None:
        # The failure that got furthest is the informative one; among equals, the first
        # (the operand order as written in the pattern).
        depth = 1000 * len(b.nodes) + len(b.values)
        if depth > self.best_depth:
            self.best_depth = depth
            self.reason = reason

    def match_value(self, p: Any, v: Value | None, b: _Bindings, where: str
                    ) -> Iterator[_Bindings]:
        if isinstance(p, ValuePattern):
            if p.name is not None and p.name in b.values:
                if b.values[p.name] is v:
                    yield b
                else:
                    bound = b.values[p.name]
                    self._fail(b, f"{where}: variable {p.name!r} is bound to "
                                  f"{_vname(bound)} but this input is {_vname(v)}")
                return
            if v is None:
                self._fail(b, f"{where}: the input is omitted")
                return
            yield b.with_value(p.name, v)
            return
        if p is None:
            if v is None:
                yield b
            else:
                self._fail(b, f"{where}: expected an omitted input, got {v.name!r}")
            return
        if isinstance(p, ConstantPattern):
            arr = self.ctx.const(v)
            val = scalar_of(arr)
            if val is None:
                what = "not a constant" if arr is None else f"a constant of shape {arr.shape}"
                self._fail(b, f"{where}: expected the constant {p.value:g}, got "
                              f"{_vname(v)} ({what})")
                return
            if arr.ndim > 1 or not np.isclose(val, p.value, rtol=p.rtol, atol=p.atol):
                self._fail(b, f"{where}: expected the constant {p.value:g}, got {val:g}"
                              + (f" of rank {arr.ndim}" if arr.ndim > 1 else ""))
                return
            yield b
            return
        assert isinstance(p, NodeOutputPattern)
        if v is None:
            self._fail(b, f"{where}: the input is omitted, pattern wants {p.node.op_type}")
            return
        producer = v.producer
        if producer is None:
            kind = "an initializer" if v.const_value is not None else "a graph input"
            self._fail(b, f"{where}: {v.name!r} is {kind}, pattern wants the output of "
                          f"{p.node.op_type}")
            return
        if v.producer_index != p.index:
            self._fail(b, f"{where}: {v.name!r} is output {v.producer_index} of "
                          f"{producer.op_type}, pattern wants output {p.index}")
            return
        yield from self.match_node(p.node, producer, b, where)

    def match_node(self, pn: NodePattern, node: Node, b: _Bindings, where: str = ""
                   ) -> Iterator[_Bindings]:
        prefix = f"{where}: " if where else ""
        bound = b.nodes.get(id(pn))
        if bound is not None:
            if bound[1] is node:
                yield b
            else:
                self._fail(b, f"{prefix}pattern node {pn.op_type} already matched "
                              f"{bound[1].name!r}, here it meets {node.name!r}")
            return
        if node.op_type != pn.op_type or (node.domain or "") not in _domains(pn.domain):
            self._fail(b, f"{prefix}{_vname_node(node)} is {node.qualified_op}, pattern "
                          f"wants {pn.op_type}")
            return
        if node.graph is not self.graph:
            self._fail(b, f"{prefix}{_vname_node(node)} belongs to another graph")
            return
        if any(other is node for _, other in b.nodes.values()):
            self._fail(b, f"{prefix}{_vname_node(node)} is already part of the match")
            return
        for attr, want in pn.attrs.items():
            have = get_attr(node, attr)
            ok = want(have) if callable(want) else _attr_equal(have, want)
            if not ok:
                shown = "a condition" if callable(want) else repr(want)
                self._fail(b, f"{prefix}{node.op_type} {node.name!r} has {attr}={have!r}, "
                              f"pattern wants {shown}")
                return
        inputs = list(node.inputs)
        while inputs and inputs[-1] is None:
            inputs.pop()
        n = len(pn.inputs)
        if len(inputs) < n and not all(p is None for p in pn.inputs[len(inputs):]):
            self._fail(b, f"{prefix}{node.op_type} {node.name!r} has {len(inputs)} inputs, "
                          f"pattern wants {n}")
            return
        if len(inputs) > n and not pn.allow_other_inputs:
            self._fail(b, f"{prefix}{node.op_type} {node.name!r} has {len(inputs)} inputs, "
                          f"pattern wants exactly {n}")
            return
        inputs += [None] * (n - len(inputs))
        for i, out in enumerate(node.outputs):
            if i >= pn.num_outputs and out is not None and (out.uses or out.is_graph_output):
                self._fail(b, f"{prefix}{node.op_type} {node.name!r} output {i} "
                              f"({out.name!r}) is used; the pattern does not cover it")
                return
        b2 = b.with_node(pn, node)
        orders: list[list[int]] = [list(range(n))]
        if pn.commute and n == 2:
            orders.append([1, 0])
        for order in orders:
            yield from self._match_inputs(pn, node, [pn.inputs[i] for i in order],
                                          [inputs[i] for i in range(n)], b2, 0)

    def _match_inputs(self, pn: NodePattern, node: Node, pins: list, vals: list,
                      b: _Bindings, k: int) -> Iterator[_Bindings]:
        if k == len(pins):
            yield b
            return
        where = f"input {k} of {node.op_type} {node.name!r}"
        for b2 in self.match_value(pins[k], vals[k], b, where):
            yield from self._match_inputs(pn, node, pins, vals, b2, k + 1)


def _domains(domain: str) -> tuple[str, ...]:
    return ("", "ai.onnx") if domain in ("", "ai.onnx") else (domain,)


def _attr_equal(have: Any, want: Any) -> bool:
    if isinstance(want, (list, tuple)):
        return have is not None and list(np.asarray(have).reshape(-1)) == list(want)
    if isinstance(want, float) and isinstance(have, (int, float)):
        return bool(np.isclose(have, want, rtol=1e-6))
    return have == want


def _vname(v: Value | None) -> str:
    return "<omitted>" if v is None else repr(v.name)


def _vname_node(node: Node) -> str:
    return f"{node.op_type} {node.name!r}" if node.name else node.op_type


# ==============================================================================================
# Rewriting
# ==============================================================================================
@dataclass
class _PendingNode:
    op_type: str
    inputs: list[Value | None]
    outputs: list[Value]
    attrs: dict[str, Any]
    domain: str
    name: str


class RewriteBuilder:
    """The ``op`` given to ``rewrite``: ``op.Gemm(a, b, c, transB=1)`` returns the new value.

    Numpy arrays given as inputs become new initializers; ``op.initializer(array)`` makes one
    explicitly. Nodes are inserted into the graph only when the rule's rewrite succeeds.
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.pending: list[_PendingNode] = []
        self.initializers: list[Value] = []

    def initializer(self, array: Any, name: str = "const", dtype: DType | None = None) -> Value:
        """Add a new constant tensor to the graph (removed again if the rewrite fails)."""
        arr = np.ascontiguousarray(array)
        value = self.graph.add_initializer(self.graph.unique_name(name), arr, dtype=dtype)
        self.initializers.append(value)
        return value

    def __getattr__(self, op_type: str) -> Callable[..., Any]:
        if op_type.startswith("_"):
            raise AttributeError(op_type)

        def make(*inputs: Any, _domain: str = "", _outputs: int = 1, _name: str | None = None,
                 _types: Sequence[Any] | None = None, **attrs: Any) -> Any:
            ins: list[Value | None] = []
            for x in inputs:
                if isinstance(x, np.ndarray):
                    x = self.initializer(x)
                if x is not None and not isinstance(x, Value):
                    raise TypeError(f"{op_type}: inputs must be Values, numpy arrays or None, "
                                    f"got {type(x).__name__}")
                ins.append(x)
            name = self.graph.unique_name(_name or f"{op_type.lower()}_fused")
            outs = [Value(self.graph.unique_name(f"{name}_out{i}" if _outputs > 1
                                                 else f"{name}_out"))
                    for i in range(_outputs)]
            for i, t in enumerate(_types or ()):
                if i < len(outs):
                    outs[i].type = t
            self.pending.append(_PendingNode(op_type, ins, outs,
                                             {k: v for k, v in attrs.items() if v is not None},
                                             _domain, name))
            return outs[0] if _outputs == 1 else tuple(outs)

        return make

    def _commit(self, before: Node) -> list[Node]:
        created = []
        for p in self.pending:
            node = Node(p.op_type, p.inputs, p.outputs, p.attrs, domain=p.domain, name=p.name)
            self.graph.insert_node(node, before=before)
            created.append(node)
        return created

    def _abort(self) -> None:
        for v in self.initializers:
            if not v.uses:
                self.graph.remove_initializer(v)


def replace_and_erase(graph: Graph, matched: Iterable[Node], olds: Sequence[Value],
                      news: Sequence[Value | None], *, fresh: Iterable[Value] = ()) -> None:
    """Redirect each old output to its new value, then erase matched nodes left unused.

    ``fresh`` lists the values the rewrite created: each of them that replaces an old value
    whose producer was erased takes the old value's name, so fusing never renames a tensor
    the user can see (an intermediate asked for as an output, a saved optimized model).
    Values that existed before the rewrite keep their own names.
    """
    for old, new in zip(olds, news):
        if new is None:
            continue
        if new.type is None and old.type is not None:
            new.type = old.type
        old.replace_all_uses_with(new)
    remaining = [n for n in matched if n.graph is graph]
    progress = True
    while remaining and progress:
        progress = False
        for node in list(remaining):
            if all(v is None or (not v.uses and not v.is_graph_output) for v in node.outputs):
                graph.remove_node(node)
                remaining.remove(node)
                progress = True
    created = {id(v) for v in fresh}
    for old, new in zip(olds, news):
        if new is None or id(new) not in created or new.name == old.name:
            continue
        if old.producer is not None and old.producer.graph is graph:
            continue  # the old value is still computed (a kept multi-output node): it keeps it
        if new.is_graph_output or new.producer is None or new.producer.graph is not graph:
            continue
        # The old name is free now: nothing in the graph produces it any more. Give the old
        # value the new value's (unique) name so no stale object shares it.
        old.name, new.name = new.name, old.name


# ==============================================================================================
# Rules
# ==============================================================================================
@dataclass
class TraceEntry:
    """One attempt of a rule at a node: fired, or refused with the reason."""

    rule: str
    node: str
    fired: bool
    reason: str = ""

    def __str__(self) -> str:
        status = "fired" if self.fired else f"refused: {self.reason}"
        return f"{self.rule} at {self.node}: {status}"


class Tracer:
    """Records every rule attempt (at nodes whose op matches the rule's root op).

    ``tracer.why("fuse_conv_relu")`` lists the refusals of that rule; ``str(tracer)`` prints
    all of them.
    """

    def __init__(self, rules: Iterable[str] | None = None) -> None:
        self.only = set(rules) if rules is not None else None
        self.entries: list[TraceEntry] = []

    def record(self, rule: str, node: Node, fired: bool, reason: str = "") -> None:
        if self.only is None or rule in self.only:
            self.entries.append(TraceEntry(rule, node.describe(), fired, reason))

    def why(self, rule: str | None = None) -> list[TraceEntry]:
        """Refusals (of ``rule``, or of every rule)."""
        return [e for e in self.entries if not e.fired and (rule is None or e.rule == rule)]

    def fired(self, rule: str | None = None) -> list[TraceEntry]:
        return [e for e in self.entries if e.fired and (rule is None or e.rule == rule)]

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.entries) or "no rule was tried"


class Rule:
    """Base of all rewrite rules: tried at nodes whose op type is in ``root_ops``.

    Subclasses implement :meth:`try_node`, returning ``None`` when the rule fired (or would
    fire, with ``dry_run``) and the refusal reason otherwise.
    """

    name: str = "rule"
    root_ops: tuple[str, ...] = ()
    root_domain: str = ""

    def try_node(self, node: Node, graph: Graph, ctx: PassContext, *,
                 dry_run: bool = False) -> str | None:  # pragma: no cover
        raise NotImplementedError

    def apply(self, graph: Graph, ctx: PassContext, *, dry_run: bool = False) -> int:
        """Try the rule at every candidate node of ``graph``; return how often it fired."""
        fired = 0
        domains = _domains(self.root_domain)
        roots = set(self.root_ops)
        for node in graph.nodes:
            if node.graph is not graph or node.op_type not in roots or \
                    (node.domain or "") not in domains:
                continue
            reason = self.try_node(node, graph, ctx, dry_run=dry_run)
            if ctx.tracer is not None:
                ctx.tracer.record(self.name, node, reason is None, reason or "")
            if reason is None:
                fired += 1
        return fired


class RewriteRule(Rule):
    """A (pattern, check, rewrite) fusion rule.

    Args:
        name: Name used in reports, traces and ``disabled_optimizers``.
        pattern: ``pattern(op, *vars)`` returning the output pattern(s).
        rewrite: ``rewrite(op, m)`` returning the replacement value(s) (``None`` for an
            output nobody reads), or ``None`` to decline.
        check: Optional ``check(m)`` returning ``m.ok()``/``m.fail(reason)`` (or a bool).
        allow_escaping: Accept matches whose intermediate values are read outside the
            pattern (the matched nodes producing them then stay in the graph).
    """

    def __init__(self, name: str, pattern: Callable[..., Any], rewrite: Callable[..., Any],
                 check: Callable[[Match], Any] | None = None, *,
                 allow_escaping: bool = False) -> None:
        self.name = name
        self.pattern_fn = pattern
        self.rewrite_fn = rewrite
        self.check_fn = check
        self.allow_escaping = allow_escaping
        builder = PatternBuilder()
        params = list(inspect.signature(pattern).parameters)[1:]
        outs = pattern(builder, *[ValuePattern(p) for p in params])
        self.outputs: list[NodeOutputPattern] = list(outs) if isinstance(outs, tuple) else [outs]
        if not all(isinstance(o, NodeOutputPattern) for o in self.outputs):
            raise TypeError(f"rule {name!r}: the pattern must return node outputs")
        self.root = self.outputs[0].node
        self.root_ops = (self.root.op_type,)
        self.root_domain = self.root.domain

    def find(self, node: Node, graph: Graph, ctx: PassContext) -> Match | str:
        """The first match rooted at ``node`` that passes the safety checks and ``check``."""
        matcher = _Matcher(graph, ctx)
        reason = None
        for b in matcher.match_node(self.root, node, _Bindings()):
            outputs = []
            for o in self.outputs:
                bound = b.nodes.get(id(o.node))
                if bound is None or o.index >= len(bound[1].outputs) or \
                        bound[1].outputs[o.index] is None:
                    outputs = None
                    break
                outputs.append(bound[1].outputs[o.index])
            if outputs is None:
                reason = "a pattern output is not reachable from the root node"
                continue
            m = Match(graph, ctx, b, outputs)
            if not self.allow_escaping:
                escape = _escaping(m)
                if escape:
                    reason = escape
                    continue
            if self.check_fn is not None:
                result = self.check_fn(m)
                if isinstance(result, MatchResult) and not result.success:
                    reason = result.reason or "check failed"
                    continue
                if result is False:
                    reason = "check failed"
                    continue
            return m
        return reason or matcher.reason

    def try_node(self, node: Node, graph: Graph, ctx: PassContext, *,
                 dry_run: bool = False) -> str | None:
        found = self.find(node, graph, ctx)
        if isinstance(found, str):
            return found
        if dry_run:
            return None
        builder = RewriteBuilder(graph)
        try:
            news = self.rewrite_fn(builder, found)
        except Exception:
            builder._abort()
            raise
        if news is None:
            builder._abort()
            return "the rewrite declined this match"
        news = list(news) if isinstance(news, (tuple, list)) else [news]
        if len(news) != len(found.outputs):
            builder._abort()
            raise ValueError(f"rule {self.name!r}: rewrite returned {len(news)} values for "
                             f"{len(found.outputs)} pattern outputs")
        matched = {id(n) for n in found.nodes}
        for old, new in zip(found.outputs, news):
            if new is None and (old.is_graph_output or
                                any(id(u.node) not in matched for u in old.uses)):
                builder._abort()
                return f"the rewrite gave no replacement for {old.name!r}, which is used"
        builder._commit(before=found.root)
        replace_and_erase(graph, found.nodes, found.outputs, news,
                          fresh=[v for p in builder.pending for v in p.outputs])
        return None

    def __repr__(self) -> str:
        return f"RewriteRule({self.name!r})"


def _escaping(m: Match) -> str | None:
    matched = {id(n) for n in m.nodes}
    outs = {id(v) for v in m.outputs}
    for node in m.nodes:
        for v in node.outputs:
            if v is None or id(v) in outs:
                continue
            if v.is_graph_output:
                return (f"{v.name!r} (output of {node.op_type} {node.name!r}) is a graph "
                        "output, so it must stay")
            for use in v.uses:
                if id(use.node) not in matched:
                    return (f"{v.name!r} (output of {node.op_type} {node.name!r}) is also "
                            f"used by {use.node.op_type} {use.node.name!r} outside the "
                            "pattern; fusing would compute it twice")
    return None


class RuleSet(Pass):
    """A pass that applies rules (in order) to a graph and its subgraphs.

    Args:
        rules: The rules.
        name: Pass name (for reports and ``disabled_optimizers``).
        level: The optimization level the rules belong to.
        after / before: Ordering constraints against other passes.
    """

    def __init__(self, rules: Iterable[Rule], name: str = "rules",
                 level: OptLevel = OptLevel.EXTENDED, *, after: Iterable[str] = (),
                 before: Iterable[str] = ()) -> None:
        self.rules = list(rules)
        self.name = name
        self.level = level
        self.after = tuple(after)
        self.before = tuple(before)

    def rule_names(self) -> list[str]:
        return [r.name for r in self.rules]

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        result = PassResult()
        for g in graphs_of(graph):
            changed = 0
            for rule in self.rules:
                if not ctx.enabled(rule.name):
                    continue
                n = rule.apply(g, ctx)
                result.add(rule.name, n)
                changed += n
            if changed:
                g.sort()
        return result

    def explain(self, graph: Graph, ctx: PassContext | None = None) -> Tracer:
        """Dry run: which rules would fire where, and why the others would not."""
        ctx = ctx or PassContext()
        tracer = Tracer()
        old, ctx.tracer = ctx.tracer, tracer
        try:
            for g in graphs_of(graph):
                for rule in self.rules:
                    rule.apply(g, ctx, dry_run=True)
        finally:
            ctx.tracer = old
        return tracer

    def __repr__(self) -> str:
        return f"RuleSet({self.name!r}, {[r.name for r in self.rules]})"


def tensor_type(dtype: DType, shape: Sequence[Any] | None) -> TensorInfo:
    """Shorthand for rewrites that know an output's type."""
    return TensorInfo(dtype, None if shape is None else tuple(shape))
