"""The built-in passes: shape inference/folding, constant folding, simplifications, CSE, DCE,
and the layout pass (added by the session with its backend's block size)."""

from __future__ import annotations

from .constant_folding import ConstantFolding
from .cse import CommonSubexpressionElimination
from .dce import DeadCodeElimination
from .layout import LayoutPass
from .shapes import ShapeFolding, ShapeInference
from .simplify import simplify_rules

__all__ = ["CommonSubexpressionElimination", "ConstantFolding", "DeadCodeElimination",
           "LayoutPass", "ShapeFolding", "ShapeInference", "simplify_rules"]
