"""CPU kernels for the ``ai.onnx.preview.training`` optimizers: Adagrad, Adam, Momentum.

Each op updates any number of tensors at once: after the learning rate ``R`` and update count
``T`` come all the X's, then all their gradients, then each per-tensor state (H, V), and the
outputs are grouped the same way. Scalar coefficients are folded in Python floats so the
element-wise work stays in the tensors' own float type.

``Gradient`` (symbolic differentiation of the enclosing graph) is not implemented.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...ops import kernel

__all__ = ["adagrad", "adam", "momentum"]

TRAINING = "ai.onnx.preview.training"


def _text(s: Any) -> str:
    return s.decode("utf-8") if isinstance(s, bytes) else str(s)


def _groups(op: str, tensors: tuple[np.ndarray, ...], per_tensor: int) -> list[list[np.ndarray]]:
    """Split the variadic inputs into ``per_tensor`` equal groups (X's, G's, state...)."""
    if len(tensors) == 0 or len(tensors) % per_tensor:
        names = {2: "X, G", 3: "X, G, H (or V)", 4: "X, G, V, H"}[per_tensor]
        raise ValueError(f"{op}: after R and T the inputs must be {per_tensor} equal groups "
                         f"({names}); got {len(tensors)} tensors")
    n = len(tensors) // per_tensor
    groups = [list(tensors[i * n:(i + 1) * n]) for i in range(per_tensor)]
    for i in range(n):
        shapes = {tuple(np.shape(g[i])) for g in groups}
        if len(shapes) != 1:
            raise ValueError(f"{op}: tensor {i} has mismatched shapes across X/G/state inputs: "
                             f"{sorted(shapes)}")
    return groups


def _scalar(v: np.ndarray, name: str, op: str) -> float:
    arr = np.asarray(v)
    if arr.size != 1:
        raise ValueError(f"{op}: {name} must be a scalar, got shape {list(arr.shape)}")
    return float(arr.reshape(()))


@kernel("Adagrad", since=1, domain=TRAINING)
def adagrad(R: np.ndarray, T: np.ndarray, *inputs: np.ndarray, decay_factor: float = 0.0,
            epsilon: float = 1e-6, norm_coefficient: float = 0.0) -> tuple[np.ndarray, ...]:
    """ONNX Adagrad-1 (preview.training): X_new = X - r * G' / (sqrt(H + G'^2) + epsilon)."""
    xs, gs, hs = _groups("Adagrad", inputs, 3)
    r = _scalar(R, "R", "Adagrad") / (1 + _scalar(T, "T", "Adagrad") * decay_factor)
    x_new, h_new = [], []
    for x, g, h in zip(xs, gs, hs):
        g_reg = norm_coefficient * x + g
        h2 = h + g_reg * g_reg
        x_new.append((x - r * g_reg / (np.sqrt(h2) + epsilon)).astype(x.dtype, copy=False))
        h_new.append(h2.astype(h.dtype, copy=False))
    return tuple(x_new + h_new)


@kernel("Adam", since=1, domain=TRAINING)
def adam(R: np.ndarray, T: np.ndarray, *inputs: np.ndarray, alpha: float = 0.9,
         beta: float = 0.999, epsilon: float = 1e-6, norm_coefficient: float = 0.0,
         norm_coefficient_post: float = 0.0) -> tuple[np.ndarray, ...]:
    """ONNX Adam-1 (preview.training): bias-corrected Adam step with optional L2 terms."""
    xs, gs, vs, hs = _groups("Adam", inputs, 4)
    r = _scalar(R, "R", "Adam")
    t = _scalar(T, "T", "Adam")
    if t > 0:
        r = r * math.sqrt(1 - beta ** t) / (1 - alpha ** t)
    x_new, v_new, h_new = [], [], []
    for x, g, v, h in zip(xs, gs, vs, hs):
        g_reg = norm_coefficient * x + g
        v2 = alpha * v + (1 - alpha) * g_reg
        h2 = beta * h + (1 - beta) * g_reg * g_reg
        x2 = (1 - norm_coefficient_post) * (x - r * v2 / (np.sqrt(h2) + epsilon))
        x_new.append(x2.astype(x.dtype, copy=False))
        v_new.append(v2.astype(v.dtype, copy=False))
        h_new.append(h2.astype(h.dtype, copy=False))
    return tuple(x_new + v_new + h_new)


@kernel("Momentum", since=1, domain=TRAINING)
def momentum(R: np.ndarray, T: np.ndarray, *inputs: np.ndarray, alpha: float | None = None,
             beta: float | None = None, mode: str | None = None,
             norm_coefficient: float | None = None) -> tuple[np.ndarray, ...]:
    """ONNX Momentum-1 (preview.training): standard or Nesterov momentum SGD step."""
    for name, val in (("alpha", alpha), ("beta", beta), ("mode", mode),
                      ("norm_coefficient", norm_coefficient)):
        if val is None:
            raise ValueError(f"Momentum: the {name} attribute is required")
    kind = _text(mode)
    if kind not in ("standard", "nesterov"):
        raise ValueError(f"Momentum: mode must be 'standard' or 'nesterov', got {kind!r}")
    xs, gs, vs = _groups("Momentum", inputs, 3)
    r = _scalar(R, "R", "Momentum")
    # In the first iteration (T == 0) the gradient enters with weight 1.
    b = beta if _scalar(T, "T", "Momentum") > 0 else 1.0
    x_new, v_new = [], []
    for x, g, v in zip(xs, gs, vs):
        g_reg = norm_coefficient * x + g
        v2 = alpha * v + b * g_reg
        step = g_reg + alpha * v2 if kind == "nesterov" else v2
        x_new.append((x - r * step).astype(x.dtype, copy=False))
        v_new.append(v2.astype(v.dtype, copy=False))
    return tuple(x_new + v_new)
