"""CPU kernels for ONNX activation functions and Softmax / LogSoftmax / Hardmax.

Single-ufunc activations compute in the input dtype; formulas of several steps compute float16
and the ml_dtypes floats in float32 and round once at the end. No overflow turns into NaN:
Softplus exponentiates ``-|x|``, Softmax subtracts the maximum first, and Sigmoid's ``exp(-x)``
overflows only to inf where ``1 / (1 + inf) = 0`` is the right answer. Large temporaries are
updated in place: on big tensors fresh buffers cost page faults, not just flops.
"""

from __future__ import annotations

import math

import numpy as np

from ...ops import kernel
from .math import _cast, _require_str, _widen, _widen16, erf

__all__ = [
    "celu",
    "elu",
    "gelu",
    "hard_sigmoid",
    "hard_swish",
    "hardmax_1",
    "hardmax_13",
    "leaky_relu",
    "log_softmax_1",
    "log_softmax_13",
    "mish",
    "prelu",
    "relu",
    "selu",
    "shrink",
    "sigmoid",
    "softmax_1",
    "softmax_13",
    "softplus",
    "softsign",
    "swish",
    "tanh",
    "thresholded_relu",
]


def _quiet():
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")


@kernel("Relu", since=6)
def relu(x: np.ndarray) -> np.ndarray:
    """ONNX Relu-6/13/14: max(X, 0)."""
    return _cast(np.maximum(_widen(x), 0), x.dtype)


@kernel("LeakyRelu", since=6)
def leaky_relu(x: np.ndarray, *, alpha: float = 0.01) -> np.ndarray:
    """ONNX LeakyRelu-6/16: X if X >= 0 else alpha * X."""
    # max(x, alpha*x) picks x for x >= 0 and alpha*x below when alpha <= 1; min when alpha > 1.
    # Exact, and without np.where, which is several times slower than a ufunc.
    w, alpha = _widen(x), float(alpha)
    out = w * alpha
    (np.maximum if alpha <= 1 else np.minimum)(out, w, out=out)
    return _cast(out, x.dtype)


@kernel("PRelu", since=7)
def prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """ONNX PRelu-7/9/16: X if X >= 0 else slope * X, slope broadcast to X's shape."""
    try:
        fits = np.broadcast_shapes(x.shape, slope.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"PRelu slope of shape {slope.shape} cannot be broadcast to X's shape "
                         f"{x.shape} (unidirectional broadcasting)")
    w, s = _widen(x), _widen(slope)
    # min(x, 0) * slope + max(x, 0): exact for finite slopes and much faster than np.where.
    out = np.minimum(w, 0) * s
    out += np.maximum(w, 0)
    return _cast(out, x.dtype)


@kernel("Elu", since=6)
def elu(x: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
    """ONNX Elu-6/22: X if X >= 0 else alpha * (exp(X) - 1)."""
    w = _widen16(x)
    # One of the two terms is always 0 (expm1(0) == 0), so their sum is exact.
    out = np.expm1(np.minimum(w, 0))
    out *= float(alpha)
    out += np.maximum(w, 0)
    return _cast(out, x.dtype)


@kernel("Selu", since=6)
def selu(x: np.ndarray, *, alpha: float = 1.67326319217681884765625,
         gamma: float = 1.05070102214813232421875) -> np.ndarray:
    """ONNX Selu-6/22: gamma * (X if X > 0 else alpha * (exp(X) - 1))."""
    w = _widen16(x)
    out = np.expm1(np.minimum(w, 0))  # as in Elu, one of the two terms is 0
    out *= float(alpha)
    out += np.maximum(w, 0)
    out *= float(gamma)
    return _cast(out, x.dtype)


@kernel("Celu", since=12)
def celu(x: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
    """ONNX Celu-12/28: max(0, X) + min(0, alpha * (exp(X / alpha) - 1))."""
    alpha = float(alpha)
    if alpha == 0:
        raise ValueError("Celu attribute 'alpha' must be nonzero")
    w = _widen16(x)
    with _quiet():
        negative = alpha * np.expm1(np.minimum(w, 0) / alpha)
    return _cast(np.maximum(w, 0) + np.minimum(negative, 0), x.dtype)


def _sigmoid(w: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-x)): exp overflows to inf only where the result is below the smallest
    # normal float anyway, and 1 / inf = 0 is then right.
    out = np.negative(w)
    with _quiet():
        np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


@kernel("Sigmoid", since=6)
def sigmoid(x: np.ndarray) -> np.ndarray:
    """ONNX Sigmoid-6/13: 1 / (1 + exp(-X))."""
    return _cast(_sigmoid(_widen16(x)), x.dtype)


@kernel("HardSigmoid", since=6)
def hard_sigmoid(x: np.ndarray, *, alpha: float = 0.2, beta: float = 0.5) -> np.ndarray:
    """ONNX HardSigmoid-6/22: max(0, min(1, alpha * X + beta))."""
    w = _widen16(x)
    return _cast(np.clip(w * float(alpha) + float(beta), 0, 1), x.dtype)


@kernel("HardSwish", since=14)
def hard_swish(x: np.ndarray) -> np.ndarray:
    """ONNX HardSwish-14/22: X * max(0, min(1, X / 6 + 0.5))."""
    w = _widen16(x)
    out = w * (1 / 6)
    out += 0.5
    np.clip(out, 0, 1, out=out)
    out *= w
    return _cast(out, x.dtype)


@kernel("Tanh", since=6)
def tanh(x: np.ndarray) -> np.ndarray:
    """ONNX Tanh-6/13: hyperbolic tangent."""
    return _cast(np.tanh(_widen(x)), x.dtype)


def _softplus(w: np.ndarray) -> np.ndarray:
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|.
    out = np.abs(w)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += np.maximum(w, 0)
    return out


@kernel("Softplus", since=1)
def softplus(x: np.ndarray) -> np.ndarray:
    """ONNX Softplus-1/22: log(1 + exp(X))."""
    with _quiet():
        return _cast(_softplus(_widen16(x)), x.dtype)


@kernel("Softsign", since=1)
def softsign(x: np.ndarray) -> np.ndarray:
    """ONNX Softsign-1/22: X / (1 + |X|)."""
    w = _widen16(x)
    return _cast(w / (1 + np.abs(w)), x.dtype)


@kernel("ThresholdedRelu", since=10)
def thresholded_relu(x: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
    """ONNX ThresholdedRelu-10/22: X if X > alpha else 0."""
    w = _widen(x)
    return _cast(np.where(w > float(alpha), w, 0), x.dtype)


@kernel("Shrink", since=9)
def shrink(x: np.ndarray, *, bias: float = 0.0, lambd: float = 0.5) -> np.ndarray:
    """ONNX Shrink-9: X + bias if X < -lambd, X - bias if X > lambd, else 0."""
    # Integers are computed in float64 and truncated back, as C++ casts would do.
    w = x.astype(np.float64) if x.dtype.kind in "iu" else _widen16(x)
    bias, lambd = float(bias), float(lambd)
    out = np.where(w < -lambd, w + bias, np.where(w > lambd, w - bias, 0))
    return _cast(out, x.dtype)


@kernel("Gelu", since=20)
def gelu(x: np.ndarray, *, approximate: str = "none") -> np.ndarray:
    """ONNX Gelu-20: 0.5 * X * (1 + erf(X / sqrt(2))), or the tanh approximation."""
    approximate = _require_str(approximate, "approximate", ("none", "tanh"))
    w = _widen16(x)
    if approximate == "tanh":
        out = w * w
        out *= 0.044715
        out += 1
        out *= w
        out *= math.sqrt(2 / math.pi)
        np.tanh(out, out=out)
    else:
        out = erf(w * (1 / math.sqrt(2)))
    out += 1
    out *= w
    out *= 0.5
    return _cast(out, x.dtype)


@kernel("Mish", since=18)
def mish(x: np.ndarray) -> np.ndarray:
    """ONNX Mish-18/22: X * tanh(softplus(X))."""
    w = _widen16(x)
    with _quiet():
        out = _softplus(w)
    np.tanh(out, out=out)
    out *= w
    return _cast(out, x.dtype)


@kernel("Swish", since=24)
def swish(x: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
    """ONNX Swish-24: X * sigmoid(alpha * X)."""
    w = _widen16(x)
    return _cast(w * _sigmoid(w * float(alpha)), x.dtype)


# ---------------------------------------------------------------------------------------------
# Softmax family. Before opset 13 the input is coerced to 2-D, [prod(shape[:axis]),
# prod(shape[axis:])], and the op runs along the second dim; from 13 on it runs along `axis`.


def _norm_axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < rank:
        raise ValueError(f"{op} attribute 'axis'={axis} is out of range for a rank-{rank} input "
                         f"(expected [-{rank}, {rank - 1}])")
    return axis + rank if axis < 0 else axis


def _as_2d(x: np.ndarray, axis: int, op: str) -> np.ndarray:
    axis = _norm_axis(axis, x.ndim, op)
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def _softmax(x: np.ndarray, axis: int, *, log: bool) -> np.ndarray:
    if x.size == 0:
        return x.copy()
    w = _widen16(x)
    shifted = w - np.max(w, axis=axis, keepdims=True)  # stable: every exponent is <= 0
    if x.dtype == np.float16 and not log:
        # Round to float16 after each step, as the ONNX spec's float16 arithmetic (and the
        # conformance data) does; rounding once at the end differs by one unit in the last
        # place, enough to break downstream attention checks.
        def r(a: np.ndarray) -> np.ndarray:
            return a.astype(np.float16).astype(np.float32)

        with _quiet():
            e = r(np.exp(r(shifted)))
            return (e / r(e.sum(axis=axis, keepdims=True))).astype(np.float16)
    with _quiet():
        if log:
            shifted -= np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        else:
            np.exp(shifted, out=shifted)
            shifted /= np.sum(shifted, axis=axis, keepdims=True)
    return _cast(shifted, x.dtype)


def _hardmax(x: np.ndarray, axis: int) -> np.ndarray:
    out = np.zeros(x.shape, dtype=x.dtype)
    if x.size == 0:
        return out
    index = np.expand_dims(np.argmax(_widen(x), axis=axis), axis)  # first maximum wins
    np.put_along_axis(out, index, np.ones((), dtype=x.dtype), axis=axis)
    return out


@kernel("Softmax", since=1)
def softmax_1(x: np.ndarray, *, axis: int = 1) -> np.ndarray:
    """ONNX Softmax-1/11: softmax over the input coerced to 2-D at `axis`."""
    return _softmax(_as_2d(x, axis, "Softmax"), 1, log=False).reshape(x.shape)


@kernel("Softmax", since=13)
def softmax_13(x: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """ONNX Softmax-13: exp(X) / sum(exp(X)) along `axis`."""
    return _softmax(x, _norm_axis(axis, x.ndim, "Softmax"), log=False)


@kernel("LogSoftmax", since=1)
def log_softmax_1(x: np.ndarray, *, axis: int = 1) -> np.ndarray:
    """ONNX LogSoftmax-1/11: log-softmax over the input coerced to 2-D at `axis`."""
    return _softmax(_as_2d(x, axis, "LogSoftmax"), 1, log=True).reshape(x.shape)


@kernel("LogSoftmax", since=13)
def log_softmax_13(x: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """ONNX LogSoftmax-13: X - log(sum(exp(X))) along `axis`."""
    return _softmax(x, _norm_axis(axis, x.ndim, "LogSoftmax"), log=True)


@kernel("Hardmax", since=1)
def hardmax_1(x: np.ndarray, *, axis: int = 1) -> np.ndarray:
    """ONNX Hardmax-1/11: one-hot of the first maximum over the input coerced to 2-D at `axis`."""
    return _hardmax(_as_2d(x, axis, "Hardmax"), 1).reshape(x.shape)


@kernel("Hardmax", since=13)
def hardmax_13(x: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """ONNX Hardmax-13: one-hot of the first maximum along `axis`."""
    return _hardmax(x, _norm_axis(axis, x.ndim, "Hardmax"))
