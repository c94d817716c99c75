"""Deep copies of graphs and models (passes edit graphs in place; users' graphs stay intact)."""

from __future__ import annotations

import copy
from typing import Any

from .graph import Graph, Node, Value
from .model import Model

__all__ = ["clone_graph", "clone_model"]


def clone_model(model: Model) -> Model:
    """A copy of ``model`` whose graph can be edited without touching the original.

    Initializer arrays are shared (they are treated as immutable everywhere).
    """
    return Model(
        graph=clone_graph(model.graph),
        ir_version=model.ir_version,
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        domain=model.domain,
        model_version=model.model_version,
        doc_string=model.doc_string,
        metadata_props=dict(model.metadata_props),
    )


def clone_graph(graph: Graph, *, parent: Graph | None = None,
                mapping: dict[int, Value] | None = None) -> Graph:
    """Copy ``graph`` (and its subgraphs); outer-scope values map through ``mapping``."""
    mapping = {} if mapping is None else mapping
    new = Graph(graph.name, parent=parent)
    new.opset_imports = dict(graph.opset_imports)
    new.doc_string = graph.doc_string
    new.value_info = dict(graph.value_info)
    new.meta = copy.copy(graph.meta)

    def copy_value(v: Value) -> Value:
        nv = Value(v.name, v.type, const_value=v.const_value)
        nv.doc_string = v.doc_string
        nv.meta = dict(v.meta)
        mapping[id(v)] = nv
        return nv

    for name, v in graph.initializers.items():
        nv = copy_value(v)
        new.initializers[name] = new._own(nv)
    for v in graph.inputs:
        nv = mapping.get(id(v)) or copy_value(v)
        new._inputs.append(new._own(nv))
        new._input_set.add(nv)
    for node in graph.nodes:
        outputs = [None if v is None else copy_value(v) for v in node.outputs]
        inputs = [None if v is None else mapping[id(v)] for v in node.inputs]
        attrs = {k: _clone_attr(a, new, mapping) for k, a in node.attrs.items()}
        nn = Node(node.op_type, inputs, outputs, attrs, domain=node.domain, name=node.name)
        nn.attr_types = dict(node.attr_types)
        nn.doc_string = node.doc_string
        nn.meta = dict(node.meta)
        new.insert_node(nn)
    new.outputs = [mapping[id(v)] for v in graph.outputs]
    return new


def _clone_attr(value: Any, parent: Graph, mapping: dict[int, Value]) -> Any:
    if isinstance(value, Graph):
        return clone_graph(value, parent=parent, mapping=mapping)
    if isinstance(value, list):
        return [_clone_attr(v, parent, mapping) for v in value]
    return value
