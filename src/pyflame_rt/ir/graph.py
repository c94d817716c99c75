"""``Value``, ``Node`` and ``Graph``: the in-memory model, with use-def edges kept by the IR.

Only this package edits edges. Passes call :meth:`Node.replace_input`,
:meth:`Value.replace_all_uses_with`, :meth:`Graph.remove_node` and friends; they never touch
``inputs``/``uses`` lists directly, so the edges can never get out of step.

Subgraphs (If/Loop/Scan bodies) are ``Graph`` objects stored as node attributes; their
``parent`` points at the graph that owns the node. A node inside a subgraph may use a value of
an enclosing graph by reference (outer-scope value); that use is recorded on the outer value.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..errors import InvalidGraphError
from ..types import DType, TensorInfo, ValueType

__all__ = ["Value", "Node", "Graph", "Use"]


class Use(tuple):
    """``(node, input_index)``: one place a value is consumed."""

    __slots__ = ()

    def __new__(cls, node: Node, index: int) -> Use:
        return super().__new__(cls, (node, index))

    @property
    def node(self) -> Node:
        return self[0]

    @property
    def index(self) -> int:
        return self[1]


class Value:
    """A named edge of the graph: a graph input, an initializer or a node output.

    Attributes:
        name: Unique within its graph (and the graphs it can see).
        type: ``TensorInfo``/``SequenceInfo``/... or ``None`` when not inferred yet.
        producer: The node writing it (``None`` for graph inputs and initializers).
        producer_index: Which output of ``producer`` it is.
        const_value: The numpy array of an initializer (``None`` otherwise).
        graph: The graph that owns this value.
    """

    __slots__ = ("name", "type", "producer", "producer_index", "const_value", "graph", "_uses",
                 "doc_string", "meta")

    def __init__(self, name: str, type: ValueType | None = None, *,
                 const_value: np.ndarray | None = None) -> None:
        self.name = name
        self.type = type
        self.producer: Node | None = None
        self.producer_index = 0
        self.const_value = const_value
        self.graph: Graph | None = None
        self._uses: list[Use] = []
        self.doc_string = ""
        self.meta: dict[str, Any] = {}

    # -- reading ---------------------------------------------------------------------------
    @property
    def uses(self) -> tuple[Use, ...]:
        """Every ``(node, input_index)`` that reads this value (subgraph nodes included)."""
        return tuple(self._uses)

    @property
    def is_initializer(self) -> bool:
        return self.const_value is not None and self.producer is None

    @property
    def is_graph_input(self) -> bool:
        return self.graph is not None and self in self.graph._input_set

    @property
    def is_graph_output(self) -> bool:
        return self.graph is not None and any(v is self for v in self.graph.outputs)

    @property
    def dtype(self) -> DType | None:
        return self.type.dtype if isinstance(self.type, TensorInfo) else None

    @property
    def shape(self) -> tuple | None:
        return self.type.shape if isinstance(self.type, TensorInfo) else None

    def consumers(self) -> list[Node]:
        """Distinct nodes reading this value, in first-use order."""
        seen: dict[int, Node] = {}
        for use in self._uses:
            seen.setdefault(id(use.node), use.node)
        return list(seen.values())

    def has_other_uses(self, *allowed: Node) -> bool:
        """True when a node outside ``allowed`` (or a graph output) reads this value."""
        if self.is_graph_output:
            return True
        return any(all(use.node is not a for a in allowed) for use in self._uses)

    # -- editing ---------------------------------------------------------------------------
    def replace_all_uses_with(self, other: Value, *, except_nodes: tuple[Node, ...] = ()
                              ) -> int:
        """Make every reader of this value read ``other``; graph outputs are redirected too.

        Readers in ``except_nodes`` keep reading this value (pass the node that computes
        ``other`` from this value, so it does not end up reading its own output).

        Returns how many uses moved. The graph output keeps its *name*: when this value is a
        graph output, ``other`` takes this value's name (this value is renamed) if ``other``
        is not itself an interface value; otherwise an Identity keeps the name.
        """
        if other is self:
            return 0
        moved = 0
        for node, index in list(self._uses):
            if any(node is n for n in except_nodes):
                continue
            node.replace_input(index, other)
            moved += 1
        graph = self.graph
        if graph is not None and self.is_graph_output:
            keep = self.name
            self.name = graph.unique_name(keep)
            for i, out in enumerate(graph.outputs):
                if out is self:
                    graph._set_output(i, other, keep_name=keep)
                    moved += 1
        return moved

    def __repr__(self) -> str:
        from ..types import type_string

        shape = self.shape
        return f"Value({self.name!r}, {type_string(self.type)}, shape={shape})"


class Node:
    """One operator application.

    Attributes:
        op_type: ONNX op name, e.g. ``Conv``.
        domain: ``""`` for the default ONNX domain, ``"pyflame"`` for fused ops.
        name: Optional node name (kept from the model; generated when empty).
        attrs: Attribute name -> plain Python value, numpy array, ``Graph`` or list of those.
        inputs: Tuple of ``Value`` or ``None`` for an omitted optional input.
        outputs: Tuple of ``Value`` (an omitted optional output is a ``Value`` with name ``""``
            is never created: omitted outputs are simply not present at their index, see
            ``output_names``).
    """

    _ids = itertools.count()

    __slots__ = ("op_type", "domain", "name", "attrs", "_inputs", "_outputs", "graph",
                 "doc_string", "meta", "attr_types", "_id")

    def __init__(self, op_type: str, inputs: Iterable[Value | None] = (),
                 outputs: Iterable[Value | None] = (), attrs: dict[str, Any] | None = None, *,
                 domain: str = "", name: str = "") -> None:
        self.op_type = op_type
        self.domain = domain
        self.name = name
        self.attrs: dict[str, Any] = dict(attrs or {})
        # Exact ONNX attribute types seen on import (name -> AttributeProto.AttributeType), so
        # an export round trip keeps e.g. an empty INTS list typed.
        self.attr_types: dict[str, int] = {}
        self._inputs: list[Value | None] = []
        self._outputs: list[Value | None] = []
        self.graph: Graph | None = None
        self.doc_string = ""
        self.meta: dict[str, Any] = {}
        self._id = next(Node._ids)
        for v in inputs:
            self._append_input(v)
        for v in outputs:
            self._append_output(v)

    # -- reading ---------------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[Value | None, ...]:
        return tuple(self._inputs)

    @property
    def outputs(self) -> tuple[Value | None, ...]:
        return tuple(self._outputs)

    @property
    def qualified_op(self) -> str:
        return f"{self.domain}::{self.op_type}" if self.domain else self.op_type

    def subgraphs(self) -> Iterator[Graph]:
        """Graph-valued attributes (If branches, Loop/Scan bodies)."""
        # A plain loop, not a generator: passes and inference ask every node this many times
        # per build, and almost every node answers "none".
        found: list[Graph] = []
        for value in self.attrs.values():
            if isinstance(value, Graph):
                found.append(value)
            elif isinstance(value, list):
                for g in value:
                    if isinstance(g, Graph):
                        found.append(g)
        return iter(found)

    def describe(self) -> str:
        """``Conv 'conv1' (x[1,3,224,224], w[64,3,7,7]) -> (y)`` for error messages."""
        from ..types import shape_string

        def arg(v: Value | None) -> str:
            return "<none>" if v is None else f"{v.name}{shape_string(v.shape)}"

        label = f" {self.name!r}" if self.name else ""
        ins = ", ".join(arg(v) for v in self._inputs)
        outs = ", ".join("<none>" if v is None else v.name for v in self._outputs)
        return f"{self.qualified_op}{label} ({ins}) -> ({outs})"

    # -- editing ---------------------------------------------------------------------------
    def _append_input(self, value: Value | None) -> None:
        index = len(self._inputs)
        self._inputs.append(value)
        if value is not None:
            value._uses.append(Use(self, index))

    def _append_output(self, value: Value | None) -> None:
        if value is not None:
            if value.producer is not None and value.producer is not self:
                raise InvalidGraphError(
                    f"value {value.name!r} is already produced by {value.producer.describe()}; "
                    f"{self.op_type} cannot produce it too")
            value.producer = self
            value.producer_index = len(self._outputs)
        self._outputs.append(value)

    def replace_input(self, index: int, value: Value | None) -> None:
        """Make input ``index`` read ``value`` (``None`` omits an optional input)."""
        old = self._inputs[index]
        if old is not None:
            old._uses.remove(Use(self, index))
        self._inputs[index] = value
        if value is not None:
            value._uses.append(Use(self, index))

    def set_inputs(self, values: Iterable[Value | None]) -> None:
        """Replace the whole input list, keeping use lists right."""
        self._drop_input_uses()
        self._inputs = []
        for v in values:
            self._append_input(v)

    def append_input(self, value: Value | None) -> None:
        self._append_input(value)

    def _drop_input_uses(self) -> None:
        for i, v in enumerate(self._inputs):
            if v is not None:
                v._uses.remove(Use(self, i))

    def __repr__(self) -> str:
        return f"Node({self.describe()})"


class Graph:
    """A graph: inputs, initializers, nodes (kept in a valid execution order), outputs.

    Attributes:
        name: Graph name.
        inputs: Real graph inputs (values the caller feeds).
        outputs: Graph outputs (may be any value: node output, input or initializer).
        initializers: Name -> initializer ``Value`` (an initializer that is also listed in
            ``inputs`` is an overridable initializer, as in ONNX IR < 4 models).
        opset_imports: Domain -> version (only on the top-level graph; subgraphs see their
            parent's).
        parent: The enclosing graph for a subgraph, else ``None``.
    """

    def __init__(self, name: str = "graph", *, parent: Graph | None = None) -> None:
        self.name = name
        self.parent = parent
        self._inputs: list[Value] = []
        self._input_set: set[Value] = set()
        self.outputs: list[Value] = []
        self.initializers: dict[str, Value] = {}
        self._nodes: list[Node] = []
        self.opset_imports: dict[str, int] = {} if parent is not None else {"": 17}
        self.doc_string = ""
        self.value_info: dict[str, ValueType] = {}
        self.meta: dict[str, Any] = {}
        self._names: set[str] = set()
        self._name_counter = itertools.count()

    # -- reading ---------------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[Value, ...]:
        return tuple(self._inputs)

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(tuple(self._nodes))

    @property
    def root(self) -> Graph:
        g = self
        while g.parent is not None:
            g = g.parent
        return g

    def opset(self, domain: str = "") -> int | None:
        """The opset version imported for ``domain`` (looked up on the top-level graph)."""
        imports = self.root.opset_imports
        if domain in ("ai.onnx",):
            domain = ""
        return imports.get(domain)

    def values(self) -> Iterator[Value]:
        """Every value owned by this graph (inputs, initializers, node outputs)."""
        seen: set[int] = set()
        for v in itertools.chain(self._inputs, self.initializers.values()):
            if id(v) not in seen:
                seen.add(id(v))
                yield v
        for node in self._nodes:
            for v in node.outputs:
                if v is not None and id(v) not in seen:
                    seen.add(id(v))
                    yield v

    def find_value(self, name: str) -> Value | None:
        """The value called ``name`` in this graph or an enclosing one."""
        g: Graph | None = self
        while g is not None:
            for v in g.values():
                if v.name == name:
                    return v
            g = g.parent
        return None

    def all_nodes(self) -> Iterator[Node]:
        """Nodes of this graph and, recursively, of its subgraphs."""
        for node in self._nodes:
            yield node
            for sub in node.subgraphs():
                yield from sub.all_nodes()

    # -- naming ----------------------------------------------------------------------------
    def _claim(self, name: str) -> None:
        self.root._names.add(name)

    def unique_name(self, hint: str = "v") -> str:
        """A value/node name not used anywhere in the model."""
        names = self.root._names
        counter = self.root._name_counter
        base = hint or "v"
        if base not in names:
            names.add(base)
            return base
        while True:
            candidate = f"{base}__{next(counter)}"
            if candidate not in names:
                names.add(candidate)
                return candidate

    # -- building --------------------------------------------------------------------------
    def _own(self, value: Value) -> Value:
        value.graph = self
        self._claim(value.name)
        return value

    def add_input(self, value: Value) -> Value:
        """Append a graph input."""
        self._inputs.append(self._own(value))
        self._input_set.add(value)
        return value

    def remove_input(self, value: Value) -> None:
        """Drop a graph input that nothing reads any more."""
        if value._uses or value.is_graph_output:
            raise InvalidGraphError(
                f"cannot remove graph input {value.name!r}: it is still used by "
                f"{[u.node.describe() for u in value._uses]}")
        self._inputs.remove(value)
        self._input_set.discard(value)

    def add_initializer(self, name: str, array: np.ndarray, *,
                        dtype: DType | None = None) -> Value:
        """Add a constant tensor; its type is taken from the array unless ``dtype`` is given."""
        arr = np.asarray(array)
        dt = dtype or DType.from_numpy(arr.dtype)
        value = Value(name, TensorInfo(dt, tuple(arr.shape)), const_value=arr)
        existing = self.initializers.get(name)
        if existing is not None:
            raise InvalidGraphError(f"duplicate initializer name {name!r}")
        self.initializers[name] = self._own(value)
        return value

    def unlist_initializer_input(self, value: Value) -> None:
        """Stop listing an initializer as a graph input; it stays an initializer.

        Models with IR version < 4 list every initializer as an input; their initializers
        are constants all the same (as ONNX Runtime treats them).
        """
        if value.const_value is None or self.initializers.get(value.name) is not value:
            raise InvalidGraphError(f"{value.name!r} is not an initializer of {self.name!r}")
        if value in self._input_set:
            self._inputs.remove(value)
            self._input_set.discard(value)

    def remove_initializer(self, value: Value) -> None:
        """Drop an initializer nothing reads (an overridable one stays an input if listed)."""
        if value._uses or value.is_graph_output:
            raise InvalidGraphError(f"cannot remove initializer {value.name!r}: still used")
        del self.initializers[value.name]
        if value in self._input_set:
            self._inputs.remove(value)
            self._input_set.discard(value)

    def add_output(self, value: Value) -> None:
        self.outputs.append(value)

    def _set_output(self, index: int, value: Value, keep_name: str | None = None) -> None:
        if keep_name is not None and value.name != keep_name:
            renamable = (value.producer is not None and not value.is_graph_output
                         and value.graph is self)
            if renamable:
                value.name = keep_name
                self.root._names.add(keep_name)
            else:
                # The value is itself an interface value; insert an Identity so the output
                # keeps its name.
                out = Value(keep_name, value.type)
                self.insert_node(Node("Identity", [value], [out], name=self.unique_name(
                    f"{keep_name}_identity")), before=None)
                value = out
        self.outputs[index] = value

    def make_node(self, op_type: str, inputs: Iterable[Value | None], num_outputs: int = 1,
                  attrs: dict[str, Any] | None = None, *, domain: str = "", name: str = "",
                  output_names: Iterable[str] | None = None,
                  before: Node | None = None, after: Node | None = None) -> Node:
        """Create a node with fresh output values and insert it (at the end by default)."""
        node_name = self.unique_name(name or op_type.lower())
        names = list(output_names) if output_names is not None else [
            self.unique_name(f"{node_name}_out{i}" if num_outputs > 1 else f"{node_name}_out")
            for i in range(num_outputs)]
        for n in names:
            self._claim(n)
        outputs = [Value(n) for n in names]
        node = Node(op_type, inputs, outputs, attrs, domain=domain, name=node_name)
        return self.insert_node(node, before=before, after=after)

    def append_node(self, node: Node) -> Node:
        return self.insert_node(node)

    def insert_node(self, node: Node, *, before: Node | None = None,
                    after: Node | None = None) -> Node:
        """Add ``node`` to this graph, at the end or next to another node."""
        node.graph = self
        if node.name:
            self._claim(node.name)
        for v in node.outputs:
            if v is not None:
                self._own(v)
        if before is not None:
            self._nodes.insert(self._nodes.index(before), node)
        elif after is not None:
            self._nodes.insert(self._nodes.index(after) + 1, node)
        else:
            self._nodes.append(node)
        return node

    def remove_node(self, node: Node, *, safe: bool = True) -> None:
        """Remove ``node``; with ``safe`` (default) refuse when any output is still read."""
        if safe:
            for v in node.outputs:
                if v is not None and (v._uses or v.is_graph_output):
                    readers = [u.node.describe() for u in v._uses]
                    where = readers or ["a graph output"]
                    raise InvalidGraphError(
                        f"cannot remove {node.describe()}: its output {v.name!r} is still "
                        f"used by {', '.join(where)}")
        node._drop_input_uses()
        node._inputs = [None] * len(node._inputs)
        self._nodes.remove(node)
        node.graph = None

    def sort(self) -> None:
        """Reorder nodes topologically (stable: keeps the current order where it can).

        Raises ``InvalidGraphError`` naming the nodes on a cycle.
        """
        from .order import topological_order

        self._nodes = topological_order(self)

    def __repr__(self) -> str:
        return (f"Graph({self.name!r}, inputs={[v.name for v in self._inputs]}, "
                f"outputs={[v.name for v in self.outputs]}, nodes={len(self._nodes)})")

    def __str__(self) -> str:
        from .printer import format_graph

        return format_graph(self)
