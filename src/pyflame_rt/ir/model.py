"""``Model``: a top-level graph plus the model-level metadata ONNX carries."""

from __future__ import annotations

from dataclasses import dataclass, field

from .graph import Graph

__all__ = ["Model"]


@dataclass
class Model:
    """A graph with its model metadata (what ``ModelProto`` holds besides the graph).

    The opset imports live on ``graph.opset_imports`` (subgraphs look them up through
    ``graph.root``). ``metadata_props`` is ONNX's ``metadata_props`` (ORT's
    ``custom_metadata_map``).
    """

    graph: Graph
    ir_version: int = 10
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int = 0
    doc_string: str = ""
    metadata_props: dict[str, str] = field(default_factory=dict)

    @property
    def opset_imports(self) -> dict[str, int]:
        return self.graph.opset_imports
