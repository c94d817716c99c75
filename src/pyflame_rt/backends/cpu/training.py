"""CPU kernels for the ``ai.onnx.preview.training`` domain: Adagrad, Adam, Momentum, Gradient.

Each optimizer updates any number of tensors at once: after the learning rate ``R`` and update
count ``T`` come all the X's, then all their gradients, then each per-tensor state (H, V), and
the outputs are grouped the same way. Scalar coefficients are folded in Python floats so the
element-wise work stays in the tensors' own float type.

``Gradient`` differentiates the enclosing graph by reverse mode: it finds the nodes between
``xs``/``zs`` and ``y`` (by tensor name), re-runs them forward at the values given as the
node's inputs, then propagates ``dy = 1`` back through a table of vector-Jacobian products
for common differentiable ops (element-wise arithmetic, MatMul, activations).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...errors import NotImplementedFeatureError
from ...ops import KernelContext, kernel, lookup

__all__ = ["adagrad", "adam", "gradient", "momentum"]

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


# -- Gradient ----------------------------------------------------------------------------------

def _unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` over the axes numpy broadcasting added or stretched to reach ``shape``."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _mT(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _matmul_vjp(a: np.ndarray, b: np.ndarray, g: np.ndarray) -> list[np.ndarray]:
    if a.ndim < 2 or b.ndim < 2:
        raise NotImplementedFeatureError("Gradient: MatMul with 1-D operands is not supported")
    return [g @ _mT(b), _mT(a) @ g]


# op -> vjp(inputs, output, output gradient) -> one gradient (or None) per input.
_VJP: dict[str, Callable[[list[np.ndarray], np.ndarray, np.ndarray], list[Any]]] = {
    "Add": lambda x, y, g: [g, g],
    "Sub": lambda x, y, g: [g, -g],
    "Mul": lambda x, y, g: [g * x[1], g * x[0]],
    "Div": lambda x, y, g: [g / x[1], -g * x[0] / (x[1] * x[1])],
    "Neg": lambda x, y, g: [-g],
    "Identity": lambda x, y, g: [g],
    "MatMul": lambda x, y, g: _matmul_vjp(x[0], x[1], g),
    "Relu": lambda x, y, g: [g * (x[0] > 0)],
    "Sigmoid": lambda x, y, g: [g * y * (1 - y)],
    "Tanh": lambda x, y, g: [g * (1 - y * y)],
    "Exp": lambda x, y, g: [g * y],
    "Log": lambda x, y, g: [g / x[0]],
    "Sqrt": lambda x, y, g: [g * 0.5 / y],
    "Abs": lambda x, y, g: [g * np.sign(x[0])],
    "Pow": lambda x, y, g: [g * x[1] * np.power(x[0], x[1] - 1),
                            g * y * np.log(np.where(x[0] > 0, x[0], 1))],
}


def _path(graph: Any, y: Any, stops: set[int]) -> list[Any]:
    """The nodes computing ``y`` from the ``stops`` values (and constants), in run order."""
    order: list[Any] = []
    seen: set[int] = set()
    stack: list[tuple[Any, bool]] = [(y.producer, False)] if y.producer is not None else []
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for v in node.inputs:
            if v is None or id(v) in stops or v.producer is None:
                continue
            stack.append((v.producer, False))
    return order


@kernel("Gradient", since=1, domain=TRAINING)
def gradient(*inputs: np.ndarray, xs: Sequence[str] | None = None, y: str | None = None,
             zs: Sequence[str] | None = None, _ctx: Any = None) -> tuple[np.ndarray, ...]:
    """ONNX Gradient-1 (preview.training): dy/dx for each x in xs, by reverse-mode autodiff."""
    if xs is None or y is None:
        raise ValueError("Gradient: the xs and y attributes are required")
    node = getattr(_ctx, "node", None)
    graph = getattr(node, "graph", None)
    if graph is None:
        raise ValueError("Gradient needs the graph it belongs to (run it inside a model)")
    x_names = [_text(n) for n in xs]
    z_names = [_text(n) for n in (zs or [])]
    if len(inputs) != len(x_names) + len(z_names):
        raise ValueError(f"Gradient: {len(inputs)} inputs for {len(x_names)} xs and "
                         f"{len(z_names)} zs; give one input per name, xs first")
    values: dict[int, np.ndarray] = {}
    leaves = []
    for name, arr in zip(x_names + z_names, inputs):
        v = graph.find_value(name)
        if v is None:
            raise ValueError(f"Gradient: no tensor named {name!r} in the graph")
        values[id(v)] = np.asarray(arr)
        leaves.append(v)
    target = graph.find_value(_text(y))
    if target is None:
        raise ValueError(f"Gradient: no tensor named {_text(y)!r} (attribute y) in the graph")

    def value_of(v: Any) -> np.ndarray | None:
        if v is None:
            return None
        if id(v) in values:
            return values[id(v)]
        if v.const_value is not None:
            return np.asarray(v.const_value)
        raise ValueError(f"Gradient: {v.name!r} feeds {_text(y)!r} but is neither in xs/zs "
                         "nor a constant; list it in zs")

    order = _path(graph, target, {id(v) for v in leaves})
    records = []
    for n in order:
        if len(n.outputs) != 1 and n.op_type in _VJP:
            raise NotImplementedFeatureError(f"Gradient: {n.op_type} with several outputs")
        args = [value_of(v) for v in n.inputs]
        kdef = lookup(n.op_type, domain=n.domain, opset=graph.opset(n.domain))
        extra = {}
        if kdef.takes_ctx:
            extra["_ctx"] = KernelContext(node=n, noutputs=len(n.outputs),
                                          opset=graph.opset(n.domain) or 1,
                                          rng=getattr(_ctx, "rng", None))
        out = kdef.fn(*args, **n.attrs, **extra)
        outs = out if isinstance(out, tuple) else (out,)
        for v, o in zip(n.outputs, outs):
            if v is not None:
                values[id(v)] = np.asarray(o)
        records.append((n, args))

    y_val = value_of(target)
    grads: dict[int, np.ndarray] = {id(target): np.ones_like(y_val)}
    for n, args in reversed(records):
        g = grads.get(id(n.outputs[0]))
        if g is None:
            continue
        vjp = _VJP.get(n.op_type)
        if vjp is None:
            raise NotImplementedFeatureError(
                f"Gradient: no derivative for {n.op_type} (on the path from xs to "
                f"{_text(y)!r}); differentiable ops: {', '.join(sorted(_VJP))}. If the graph "
                "optimizer fused it, run with graph_optimization_level=ORT_DISABLE_ALL")
        for v, a, gi in zip(n.inputs, args, vjp(args, values[id(n.outputs[0])], g)):
            if v is None or gi is None or a is None or a.dtype.kind != "f":
                continue
            gi = _unbroadcast(np.asarray(gi), a.shape).astype(a.dtype, copy=False)
            grads[id(v)] = grads[id(v)] + gi if id(v) in grads else gi
    result = []
    for v, arr in zip(leaves[:len(x_names)], inputs):
        g = grads.get(id(v))
        result.append(np.zeros_like(np.asarray(arr)) if g is None else g)
    return tuple(result)
