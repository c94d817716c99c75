"""Models shipped with the package: the demo's small trained CNN and its input generator."""

from __future__ import annotations

from .shapes import CLASSES, IMAGE_SIZE, demo_model_path, draw_shape, make_batch

__all__ = ["CLASSES", "IMAGE_SIZE", "demo_model_path", "draw_shape", "make_batch"]
