"""CPU kernels for the ONNX Reduce* ops and ArgMax / ArgMin.

Every Reduce op exists in two forms: ``axes`` as an attribute (ReduceSum before opset 13, the
others before 18) and ``axes`` as an optional second input with ``noop_with_empty_axes``. Both
resolve the axes, then share one implementation per op. Reducing over no axes (the noop case)
still applies the op's elementwise part (ReduceL1 gives |X|, ReduceSumSquare X*X), as the spec
and the reference do; reducing an empty set gives the op's identity (0 for sums, 1 for
products, -inf / the smallest integer for ReduceMax, -inf for the logarithmic ones).

Sums of float16 and bfloat16 accumulate in float32. Integer inputs of the ops whose math is
real-valued (mean, L2, log) are computed in float64 and truncated back, like C++ casts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...ops import kernel
from .math import _cast, _widen, _widen16

__all__ = [
    "arg_max",
    "arg_min",
    "reduce_l1_1",
    "reduce_l1_18",
    "reduce_l2_1",
    "reduce_l2_18",
    "reduce_log_sum_1",
    "reduce_log_sum_18",
    "reduce_log_sum_exp_1",
    "reduce_log_sum_exp_18",
    "reduce_max_1",
    "reduce_max_18",
    "reduce_mean_1",
    "reduce_mean_18",
    "reduce_min_1",
    "reduce_min_18",
    "reduce_prod_1",
    "reduce_prod_18",
    "reduce_sum_1",
    "reduce_sum_13",
    "reduce_sum_square_1",
    "reduce_sum_square_18",
]

# ---------------------------------------------------------------------------------------------
# Axes


def _normalize_axes(axes: Sequence[int], rank: int, op: str) -> tuple[int, ...]:
    out = []
    for axis in axes:
        axis = int(axis)
        if not -rank <= axis < rank:
            raise ValueError(f"{op}: axis {axis} is out of range for a rank-{rank} input "
                             f"(expected values in [-{rank}, {rank - 1}])")
        out.append(axis + rank if axis < 0 else axis)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axes {list(axes)} name the same axis more than once")
    return tuple(out)


def _attr_axes(axes: Sequence[int] | None, rank: int, op: str) -> tuple[int, ...] | None:
    """Axes from the attribute form: unset or empty means all axes."""
    if axes is None or len(axes) == 0:
        return None
    return _normalize_axes(axes, rank, op)


def _input_axes(axes: np.ndarray | None, rank: int, noop_with_empty_axes: int,
                op: str) -> tuple[int, ...] | None:
    """Axes from the input form: omitted or empty means all axes, or none with noop set."""
    if axes is None or np.size(axes) == 0:
        return () if noop_with_empty_axes else None
    return _normalize_axes(np.asarray(axes).reshape(-1).tolist(), rank, op)


def _count(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> int:
    """How many elements each output element reduces."""
    return math.prod(shape if axes is None else (shape[a] for a in axes))


def _real(data: np.ndarray) -> np.ndarray:
    """``data`` as a float array to compute real-valued math in (integers: float64)."""
    return data.astype(np.float64) if data.dtype.kind in "iu" else _widen16(data)


# ---------------------------------------------------------------------------------------------
# One implementation per op, on resolved axes


def _sum(data: np.ndarray, axes, keepdims: int) -> np.ndarray:
    w = _widen16(data)
    return _cast(np.sum(w, axis=axes, keepdims=bool(keepdims), dtype=w.dtype), data.dtype)


def _mean(data: np.ndarray, axes, keepdims: int) -> np.ndarray:
    w = _real(data)
    total = np.sum(w, axis=axes, keepdims=bool(keepdims), dtype=w.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty reduction is 0/0 = NaN
        return _cast(total / _count(data.shape, axes), data.dtype)


def _extreme(data: np.ndarray, axes, keepdims: int, *, largest: bool) -> np.ndarray:
    w = _widen(data)
    # The identity of the reduction is the result for an empty axis (numpy raises instead).
    if w.dtype == np.bool_:
        initial = not largest
    elif w.dtype.kind == "f":
        initial = -np.inf if largest else np.inf
    else:
        info = np.iinfo(w.dtype)
        initial = info.min if largest else info.max
    fn = np.max if largest else np.min
    return _cast(fn(w, axis=axes, keepdims=bool(keepdims), initial=initial), data.dtype)


def _prod(data: np.ndarray, axes, keepdims: int) -> np.ndarray:
    w = _widen16(data)
    with np.errstate(over="ignore"):
        return _cast(np.prod(w, axis=axes, keepdims=bool(keepdims), dtype=w.dtype), data.dtype)


def _l1(data: np.ndarray, axes, keepdims: int) -> np.ndarray:
    w = _widen16(data)
    return _cast(np.sum(np.abs(w), axis=axes, keepdims=bool(keepdims), dtype=w.dtype),
                 data.dtype)


def _l2(data: np.ndarray, axes, keepdims: int) -> np.ndarray:
    w = _real(data)
    return _cast(np.sqrt(np.sum(w * w, axis=axes, keepdims=bool(keepdims))), data.dtype)


def _log_sum(data: np.ndarray, axes, keepdims: int) -> np.ndarray:
    w = _real(data)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _cast(np.log(np.sum(w, axis=axes, keepdims=bool(keepdims))), data.dtype)


def _log_sum_exp(data: np.ndarray, axes, keepdims: int) -> np.ndarray:
    w = _real(data)
    # Stable: log(sum(exp(x - m))) + m with m the maximum (0 where it is infinite, so that
    # all -inf gives log(0) = -inf and +inf gives +inf instead of NaN).
    m = np.max(w, axis=axes, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0).astype(w.dtype)
    shifted = w - m
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        np.exp(shifted, out=shifted)
        out = np.log(np.sum(shifted, axis=axes, keepdims=True)) + m
    if not keepdims:
        out = np.squeeze(out, axis=axes)  # axes=None: every axis was reduced to 1
    return _cast(out, data.dtype)


def _sum_square(data: np.ndarray, axes, keepdims: int) -> np.ndarray:
    w = _widen16(data)
    return _cast(np.sum(w * w, axis=axes, keepdims=bool(keepdims), dtype=w.dtype), data.dtype)


# ---------------------------------------------------------------------------------------------
# Registered kernels: attribute form (opset 1..) and input form (ReduceSum 13.., others 18..)


@kernel("ReduceSum", since=1)
def reduce_sum_1(data: np.ndarray, *, axes: list[int] | None = None,
                 keepdims: int = 1) -> np.ndarray:
    """ONNX ReduceSum-1/11: sum over the attribute `axes` (all axes when unset)."""
    return _sum(data, _attr_axes(axes, data.ndim, "ReduceSum"), keepdims)


@kernel("ReduceSum", since=13)
def reduce_sum_13(data: np.ndarray, axes: np.ndarray | None = None, *, keepdims: int = 1,
                  noop_with_empty_axes: int = 0) -> np.ndarray:
    """ONNX ReduceSum-13: sum over the optional input `axes`."""
    return _sum(data, _input_axes(axes, data.ndim, noop_with_empty_axes, "ReduceSum"),
                keepdims)


@kernel("ReduceMean", since=1)
def reduce_mean_1(data: np.ndarray, *, axes: list[int] | None = None,
                  keepdims: int = 1) -> np.ndarray:
    """ONNX ReduceMean-1/11/13: mean over the attribute `axes` (integers truncate)."""
    return _mean(data, _attr_axes(axes, data.ndim, "ReduceMean"), keepdims)


@kernel("ReduceMean", since=18)
def reduce_mean_18(data: np.ndarray, axes: np.ndarray | None = None, *, keepdims: int = 1,
                   noop_with_empty_axes: int = 0) -> np.ndarray:
    """ONNX ReduceMean-18: mean over the optional input `axes` (integers truncate)."""
    return _mean(data, _input_axes(axes, data.ndim, noop_with_empty_axes, "ReduceMean"),
                 keepdims)


@kernel("ReduceMax", since=1)
def reduce_max_1(data: np.ndarray, *, axes: list[int] | None = None,
                 keepdims: int = 1) -> np.ndarray:
    """ONNX ReduceMax-1/11/12/13: maximum over the attribute `axes`."""
    return _extreme(data, _attr_axes(axes, data.ndim, "ReduceMax"), keepdims, largest=True)


@kernel("ReduceMax", since=18)
def reduce_max_18(data: np.ndarray, axes: np.ndarray | None = None, *, keepdims: int = 1,
                  noop_with_empty_axes: int = 0) -> np.ndarray:
    """ONNX ReduceMax-18/20: maximum over the optional input `axes`."""
    return _extreme(data, _input_axes(axes, data.ndim, noop_with_empty_axes, "ReduceMax"),
                    keepdims, largest=True)


@kernel("ReduceMin", since=1)
def reduce_min_1(data: np.ndarray, *, axes: list[int] | None = None,
                 keepdims: int = 1) -> np.ndarray:
    """ONNX ReduceMin-1/11/12/13: minimum over the attribute `axes`."""
    return _extreme(data, _attr_axes(axes, data.ndim, "ReduceMin"), keepdims, largest=False)


@kernel("ReduceMin", since=18)
def reduce_min_18(data: np.ndarray, axes: np.ndarray | None = None, *, keepdims: int = 1,
                  noop_with_empty_axes: int = 0) -> np.ndarray:
    """ONNX ReduceMin-18/20: minimum over the optional input `axes`."""
    return _extreme(data, _input_axes(axes, data.ndim, noop_with_empty_axes, "ReduceMin"),
                    keepdims, largest=False)


@kernel("ReduceProd", since=1)
def reduce_prod_1(data: np.ndarray, *, axes: list[int] | None = None,
                  keepdims: int = 1) -> np.ndarray:
    """ONNX ReduceProd-1/11/13: product over the attribute `axes`."""
    return _prod(data, _attr_axes(axes, data.ndim, "ReduceProd"), keepdims)


@kernel("ReduceProd", since=18)
def reduce_prod_18(data: np.ndarray, axes: np.ndarray | None = None, *, keepdims: int = 1,
                   noop_with_empty_axes: int = 0) -> np.ndarray:
    """ONNX ReduceProd-18: product over the optional input `axes`."""
    return _prod(data, _input_axes(axes, data.ndim, noop_with_empty_axes, "ReduceProd"),
                 keepdims)


@kernel("ReduceL1", since=1)
def reduce_l1_1(data: np.ndarray, *, axes: list[int] | None = None,
                keepdims: int = 1) -> np.ndarray:
    """ONNX ReduceL1-1/11/13: sum of |X| over the attribute `axes`."""
    return _l1(data, _attr_axes(axes, data.ndim, "ReduceL1"), keepdims)


@kernel("ReduceL1", since=18)
def reduce_l1_18(data: np.ndarray, axes: np.ndarray | None = None, *, keepdims: int = 1,
                 noop_with_empty_axes: int = 0) -> np.ndarray:
    """ONNX ReduceL1-18: sum of |X| over the optional input `axes`."""
    return _l1(data, _input_axes(axes, data.ndim, noop_with_empty_axes, "ReduceL1"), keepdims)


@kernel("ReduceL2", since=1)
def reduce_l2_1(data: np.ndarray, *, axes: list[int] | None = None,
                keepdims: int = 1) -> np.ndarray:
    """ONNX ReduceL2-1/11/13: sqrt(sum(X * X)) over the attribute `axes`."""
    return _l2(data, _attr_axes(axes, data.ndim, "ReduceL2"), keepdims)


@kernel("ReduceL2", since=18)
def reduce_l2_18(data: np.ndarray, axes: np.ndarray | None = None, *, keepdims: int = 1,
                 noop_with_empty_axes: int = 0) -> np.ndarray:
    """ONNX ReduceL2-18: sqrt(sum(X * X)) over the optional input `axes`."""
    return _l2(data, _input_axes(axes, data.ndim, noop_with_empty_axes, "ReduceL2"), keepdims)


@kernel("ReduceLogSum", since=1)
def reduce_log_sum_1(data: np.ndarray, *, axes: list[int] | None = None,
                     keepdims: int = 1) -> np.ndarray:
    """ONNX ReduceLogSum-1/11/13: log(sum(X)) over the attribute `axes`."""
    return _log_sum(data, _attr_axes(axes, data.ndim, "ReduceLogSum"), keepdims)


@kernel("ReduceLogSum", since=18)
def reduce_log_sum_18(data: np.ndarray, axes: np.ndarray | None = None, *, keepdims: int = 1,
                      noop_with_empty_axes: int = 0) -> np.ndarray:
    """ONNX ReduceLogSum-18/28: log(sum(X)) over the optional input `axes`."""
    return _log_sum(data, _input_axes(axes, data.ndim, noop_with_empty_axes, "ReduceLogSum"),
                    keepdims)


@kernel("ReduceLogSumExp", since=1)
def reduce_log_sum_exp_1(data: np.ndarray, *, axes: list[int] | None = None,
                         keepdims: int = 1) -> np.ndarray:
    """ONNX ReduceLogSumExp-1/11/13: log(sum(exp(X))) over the attribute `axes`, stably."""
    return _log_sum_exp(data, _attr_axes(axes, data.ndim, "ReduceLogSumExp"), keepdims)


@kernel("ReduceLogSumExp", since=18)
def reduce_log_sum_exp_18(data: np.ndarray, axes: np.ndarray | None = None, *,
                          keepdims: int = 1, noop_with_empty_axes: int = 0) -> np.ndarray:
    """ONNX ReduceLogSumExp-18/28: log(sum(exp(X))) over the optional input `axes`, stably."""
    return _log_sum_exp(
        data, _input_axes(axes, data.ndim, noop_with_empty_axes, "ReduceLogSumExp"), keepdims)


@kernel("ReduceSumSquare", since=1)
def reduce_sum_square_1(data: np.ndarray, *, axes: list[int] | None = None,
                        keepdims: int = 1) -> np.ndarray:
    """ONNX ReduceSumSquare-1/11/13: sum(X * X) over the attribute `axes`."""
    return _sum_square(data, _attr_axes(axes, data.ndim, "ReduceSumSquare"), keepdims)


@kernel("ReduceSumSquare", since=18)
def reduce_sum_square_18(data: np.ndarray, axes: np.ndarray | None = None, *,
                         keepdims: int = 1, noop_with_empty_axes: int = 0) -> np.ndarray:
    """ONNX ReduceSumSquare-18: sum(X * X) over the optional input `axes`."""
    return _sum_square(
        data, _input_axes(axes, data.ndim, noop_with_empty_axes, "ReduceSumSquare"), keepdims)


# ---------------------------------------------------------------------------------------------
# ArgMax / ArgMin


def _arg_extreme(data: np.ndarray, axis: int, keepdims: int, select_last_index: int, *,
                 largest: bool, op: str) -> np.ndarray:
    (axis,) = _normalize_axes([axis], data.ndim, op)
    if data.shape[axis] == 0:
        raise ValueError(f"{op} over axis {axis} of an input of shape {data.shape}: the axis is "
                         "empty, so there is no index to return")
    w = _widen(data)
    fn = np.argmax if largest else np.argmin
    if select_last_index:
        # The first extreme of the reversed axis is the last one of the original.
        index = data.shape[axis] - 1 - fn(np.flip(w, axis), axis=axis)
    else:
        index = fn(w, axis=axis)
    if keepdims:
        index = np.expand_dims(index, axis)
    return np.asarray(index, dtype=np.int64)


@kernel("ArgMax", since=1)
def arg_max(data: np.ndarray, *, axis: int = 0, keepdims: int = 1,
            select_last_index: int = 0) -> np.ndarray:
    """ONNX ArgMax-1/11/12/13: int64 index of the maximum along `axis` (first, or last)."""
    return _arg_extreme(data, axis, keepdims, select_last_index, largest=True, op="ArgMax")


@kernel("ArgMin", since=1)
def arg_min(data: np.ndarray, *, axis: int = 0, keepdims: int = 1,
            select_last_index: int = 0) -> np.ndarray:
    """ONNX ArgMin-1/11/12/13: int64 index of the minimum along `axis` (first, or last)."""
    return _arg_extreme(data, axis, keepdims, select_last_index, largest=False, op="ArgMin")
