"""The built-in passes: shape inference/folding, constant folding, simplifications, CSE, DCE."""

from __future__ import annotations

from .constant_folding import ConstantFolding
from .cse import CommonSubexpressionElimination
from .dce import DeadCodeElimination
from .shapes import ShapeFolding, ShapeInference
from .simplify import simplify_rules

__all__ = ["CommonSubexpressionElimination", "ConstantFolding", "DeadCodeElimination",
           "ShapeFolding", "ShapeInference", "simplify_rules"]
