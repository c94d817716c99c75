"""The demo task: classify a drawn shape (circle, square, triangle, cross, ring).

``shapes_cnn.onnx`` beside this file is a small CNN (Conv-BatchNorm-Relu-MaxPool blocks,
global average pooling, Gemm, Softmax) trained on images from :func:`draw_shape` by
``tools/train_demo_model.py``. Images are drawn with numpy, so the demo needs no data set.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["CLASSES", "IMAGE_SIZE", "draw_shape", "make_batch", "demo_model_path"]

CLASSES = ("circle", "square", "triangle", "cross", "ring")
IMAGE_SIZE = 32


def demo_model_path() -> str:
    """Path of the shipped demo model."""
    return os.path.join(os.path.dirname(__file__), "shapes_cnn.onnx")


def draw_shape(label: int, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A ``(1, size, size)`` float32 image of shape class ``label`` with random pose and noise."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = rng.uniform(size * 0.35, size * 0.65, size=2)
    r = rng.uniform(size * 0.18, size * 0.3)
    angle = rng.uniform(-0.5, 0.5)
    # Rotate coordinates around the centre so squares, triangles and crosses vary in pose.
    dx, dy = x - cx, y - cy
    rx = np.cos(angle) * dx - np.sin(angle) * dy
    ry = np.sin(angle) * dx + np.cos(angle) * dy
    name = CLASSES[label]
    if name == "circle":
        mask = rx**2 + ry**2 <= r**2
    elif name == "square":
        mask = (np.abs(rx) <= r * 0.85) & (np.abs(ry) <= r * 0.85)
    elif name == "triangle":
        mask = (ry <= r * 0.8) & (ry >= -r) & (np.abs(rx) <= (ry + r) * 0.58)
    elif name == "cross":
        w = r * 0.3
        mask = ((np.abs(rx) <= w) & (np.abs(ry) <= r)) | ((np.abs(ry) <= w) & (np.abs(rx) <= r))
    else:  # ring
        d2 = rx**2 + ry**2
        mask = (d2 <= r**2) & (d2 >= (r * 0.6) ** 2)
    image = mask.astype(np.float32) * rng.uniform(0.6, 1.0)
    image += rng.normal(0.0, 0.08, size=image.shape).astype(np.float32)
    return image[None].astype(np.float32)


def make_batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images ``(n, 1, 32, 32)`` and their labels, reproducibly from ``seed``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), size=n)
    images = np.stack([draw_shape(int(k), rng) for k in labels])
    return images, labels.astype(np.int64)
