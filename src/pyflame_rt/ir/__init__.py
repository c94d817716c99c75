"""The graph IR: values, nodes, graphs, ordering, verification, printing, shape inference."""

from __future__ import annotations

from .clone import clone_graph, clone_model
from .graph import Graph, Node, Use, Value
from .model import Model
from .order import topological_order
from .printer import format_graph
from .shape_inference import infer_shapes, register_shape_function
from .verify import verify

__all__ = ["Model", "Graph", "Node", "Use", "Value", "topological_order", "verify", "format_graph", "clone_graph",
           "clone_model", "infer_shapes", "register_shape_function"]
