"""CPU kernels for shape and layout ops: Reshape, Transpose, Concat, Split, Slice, Cast, Pad, ...

Kernels that only re-describe their input (Reshape, Squeeze, Unsqueeze, Flatten, Transpose,
Slice, Split, Identity, Cast to the same type) return numpy *views* of the input rather than
copies; they never write to them. Gather/scatter style ops live in ``indexing.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np

from ...ops import KernelContext, kernel
from ...types import DType

__all__ = [
    "cast",
    "cast_array",
    "cast_like",
    "center_crop_pad",
    "concat",
    "concat_1",
    "constant",
    "constant_of_shape",
    "depth_to_space",
    "expand",
    "eye_like",
    "flatten",
    "identity",
    "pad_1",
    "pad_2",
    "pad_11",
    "range_",
    "reshape",
    "reshape_1",
    "shape",
    "size",
    "slice_1",
    "slice_10",
    "space_to_depth",
    "split_1",
    "split_2",
    "split_13",
    "split_18",
    "squeeze_1",
    "squeeze_13",
    "tile",
    "tile_1",
    "transpose",
    "trilu",
    "unsqueeze_1",
    "unsqueeze_13",
]


# --------------------------------------------------------------------------------- helpers

def _ints(x: Any) -> list[int]:
    """An int64 tensor (or a list attribute) as a list of Python ints."""
    return [int(v) for v in np.asarray(x).reshape(-1).tolist()]


def _scalar_int(x: Any, what: str) -> int:
    arr = np.asarray(x)
    if arr.size != 1:
        raise ValueError(f"{what} must hold exactly one value, got shape {arr.shape}")
    return int(arr.reshape(-1)[0])


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` in ``[-rank, rank-1]`` mapped to ``[0, rank-1]``; ValueError otherwise."""
    if not -rank <= axis < rank:
        raise ValueError(f"{what}={axis} is out of range for a tensor of rank {rank} "
                         f"(valid: [{-rank}, {rank - 1}])")
    return axis + rank if axis < 0 else axis


def _normalize_axes(axes: Sequence[int], rank: int, what: str = "axes") -> list[int]:
    out = [normalize_axis(int(a), rank, what) for a in axes]
    if len(set(out)) != len(out):
        raise ValueError(f"{what} {list(axes)} repeats an axis (rank {rank})")
    return out


def _zero_of(dtype: np.dtype) -> Any:
    """The spec's default fill value: 0, empty string or False."""
    return "" if dtype == object else np.zeros((), dtype=dtype)


# ------------------------------------------------------------------------- Reshape & co.

def _reshape_target(in_shape: tuple[int, ...], size: int, shape: list[int],
                    allowzero: int) -> list[int]:
    out = list(shape)
    if not allowzero:
        for i, s in enumerate(shape):
            if s == 0:
                if i >= len(in_shape):
                    raise ValueError(f"Reshape: shape {shape} has 0 at position {i} (copy the "
                                     f"input dim) but the input {in_shape} has rank "
                                     f"{len(in_shape)}")
                out[i] = in_shape[i]
    elif 0 in shape and -1 in shape:
        raise ValueError(f"Reshape: shape {shape} has both 0 and -1 with allowzero=1; the "
                         "-1 dim cannot be inferred")
    if any(s < -1 for s in out):
        raise ValueError(f"Reshape: shape {shape} has a negative dim other than -1")
    if out.count(-1) > 1:
        raise ValueError(f"Reshape: shape {shape} has more than one -1 dim")
    known = math.prod(s for s in out if s != -1)
    if -1 in out:
        if known == 0 or size % known:
            raise ValueError(f"Reshape: cannot infer the -1 dim of {shape} for an input of "
                             f"shape {in_shape} ({size} elements)")
        out[out.index(-1)] = size // known
    elif known != size:
        raise ValueError(f"Reshape: input of shape {in_shape} ({size} elements) cannot be "
                         f"reshaped to {out} ({known} elements)")
    return out


@kernel("Reshape", since=1)
def reshape_1(data: np.ndarray, *, shape: Sequence[int] | None = None,
              consumed_inputs: Sequence[int] | None = None) -> np.ndarray:
    """ONNX Reshape-1: the target shape is the ``shape`` attribute (0 copies, -1 infers)."""
    if shape is None:
        raise ValueError("Reshape-1 requires the 'shape' attribute")
    return data.reshape(_reshape_target(data.shape, data.size, _ints(shape), 0))


@kernel("Reshape", since=5)
@kernel("Reshape", since=14)
def reshape(data: np.ndarray, shape: np.ndarray, *, allowzero: int = 0) -> np.ndarray:
    """ONNX Reshape-5/13/14/19/21/23: reshape to the ``shape`` input (0 copies unless allowzero)."""
    return data.reshape(_reshape_target(data.shape, data.size, _ints(shape), allowzero))


@kernel("Transpose", since=1)
def transpose(data: np.ndarray, *, perm: Sequence[int] | None = None) -> np.ndarray:
    """ONNX Transpose-1/13/21/23: permute axes (default: reverse them)."""
    if perm is None:
        return data.transpose()
    perm = [int(p) for p in perm]
    if sorted(perm) != list(range(data.ndim)):
        raise ValueError(f"Transpose: perm {perm} is not a permutation of the {data.ndim} axes "
                         f"of the input of shape {data.shape}")
    return data.transpose(perm)


def _concat(inputs: Sequence[np.ndarray], axis: int) -> np.ndarray:
    if not inputs:
        raise ValueError("Concat needs at least one input")
    rank = inputs[0].ndim
    if rank == 0:
        raise ValueError("Concat: inputs must have rank >= 1, got a scalar")
    ax = normalize_axis(axis, rank)
    for i, x in enumerate(inputs):
        if x.ndim != rank or x.shape[:ax] + x.shape[ax + 1:] != \
                inputs[0].shape[:ax] + inputs[0].shape[ax + 1:]:
            raise ValueError(f"Concat on axis {axis}: input {i} has shape {x.shape}, which does "
                             f"not match input 0's shape {inputs[0].shape} outside that axis")
    return np.concatenate(inputs, axis=ax)


@kernel("Concat", since=1)
def concat_1(*inputs: np.ndarray, axis: int = 1) -> np.ndarray:
    """ONNX Concat-1: concatenate along ``axis`` (default 1)."""
    return _concat(inputs, axis)


@kernel("Concat", since=4)
def concat(*inputs: np.ndarray, axis: int | None = None) -> np.ndarray:
    """ONNX Concat-4/11/13: concatenate along the required ``axis`` (negative from 11)."""
    if axis is None:
        raise ValueError("Concat requires the 'axis' attribute")
    return _concat(inputs, axis)


# ------------------------------------------------------------------------------- Split

def _split_by_sizes(x: np.ndarray, axis: int, sizes: list[int],
                    ctx: KernelContext | None) -> tuple[np.ndarray, ...]:
    if x.ndim == 0:
        raise ValueError("Split: the input must have rank >= 1, got a scalar")
    ax = normalize_axis(axis, x.ndim)
    dim = x.shape[ax]
    if any(s < 0 for s in sizes) or sum(sizes) != dim:
        raise ValueError(f"Split: split sizes {sizes} must be >= 0 and sum to {dim}, the size "
                         f"of axis {axis} of the input of shape {x.shape}")
    if ctx is not None and ctx.noutputs != len(sizes):
        raise ValueError(f"Split: split has {len(sizes)} entries but the node has "
                         f"{ctx.noutputs} outputs")
    lead = (slice(None),) * ax
    outs, start = [], 0
    for s in sizes:
        outs.append(x[lead + (slice(start, start + s),)])
        start += s
    return tuple(outs)


def _noutputs(ctx: KernelContext | None, op: str) -> int:
    if ctx is None:
        raise ValueError(f"{op}: without split sizes the number of outputs decides the split; "
                         "the kernel needs its _ctx")
    return ctx.noutputs


def _even_sizes(dim: int, n: int, axis: int) -> list[int]:
    if n < 1 or dim % n:
        raise ValueError(f"Split: axis {axis} of size {dim} cannot be split evenly into {n} "
                         "outputs; give the split sizes")
    return [dim // n] * n


@kernel("Split", since=1)
def split_1(x: np.ndarray, split_input: np.ndarray | None = None, *, axis: int = 0,
            split: Sequence[int] | None = None,
            _ctx: KernelContext | None = None) -> tuple[np.ndarray, ...]:
    """ONNX Split-1: sizes from the optional second input or the ``split`` attribute."""
    sizes = split_input if split_input is not None else split
    if sizes is None:
        n = _noutputs(_ctx, "Split")
        sizes = _even_sizes(x.shape[normalize_axis(axis, x.ndim)], n, axis)
    return _split_by_sizes(x, axis, _ints(sizes), _ctx)


@kernel("Split", since=2)
def split_2(x: np.ndarray, *, axis: int = 0, split: Sequence[int] | None = None,
            _ctx: KernelContext | None = None) -> tuple[np.ndarray, ...]:
    """ONNX Split-2/11: sizes from the ``split`` attribute, else equal parts per output."""
    return split_1(x, None, axis=axis, split=split, _ctx=_ctx)


@kernel("Split", since=13)
def split_13(x: np.ndarray, split: np.ndarray | None = None, *, axis: int = 0,
             _ctx: KernelContext | None = None) -> tuple[np.ndarray, ...]:
    """ONNX Split-13: sizes from the optional ``split`` input, else equal parts per output."""
    return split_1(x, split, axis=axis, _ctx=_ctx)


@kernel("Split", since=18)
def split_18(x: np.ndarray, split: np.ndarray | None = None, *, axis: int = 0,
             num_outputs: int | None = None,
             _ctx: KernelContext | None = None) -> tuple[np.ndarray, ...]:
    """ONNX Split-18: ``split`` input or ``num_outputs`` parts (the last one may be smaller)."""
    if split is not None:
        if num_outputs is not None:
            raise ValueError("Split-18: give either the 'split' input or the 'num_outputs' "
                             "attribute, not both")
        return _split_by_sizes(x, axis, _ints(split), _ctx)
    if x.ndim == 0:
        raise ValueError("Split: the input must have rank >= 1, got a scalar")
    n = num_outputs if num_outputs is not None else _noutputs(_ctx, "Split")
    if _ctx is not None and _ctx.noutputs != n:
        raise ValueError(f"Split-18: num_outputs={n} but the node has {_ctx.noutputs} outputs")
    dim = x.shape[normalize_axis(axis, x.ndim)]
    if n < 1:
        raise ValueError(f"Split-18: num_outputs must be >= 1, got {n}")
    # Chunks of ceil(dim / n); the last one takes what is left.
    chunk = -(-dim // n)
    sizes = [chunk] * (n - 1) + [dim - chunk * (n - 1)]
    if sizes[-1] < 0:
        raise ValueError(f"Split-18: axis {axis} of size {dim} cannot be split into {n} "
                         f"chunks of {chunk}")
    return _split_by_sizes(x, axis, sizes, _ctx)


# ------------------------------------------------------------------------------- Slice

def _slice(data: np.ndarray, starts: list[int], ends: list[int], axes: list[int] | None,
           steps: list[int] | None) -> np.ndarray:
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError(f"Slice: starts ({len(starts)}), ends ({len(ends)}), axes "
                         f"({len(axes)}) and steps ({len(steps)}) must have the same length")
    index = [slice(None)] * data.ndim
    for a, start, end, step in zip(_normalize_axes(axes, data.ndim), starts, ends, steps):
        dim = data.shape[a]
        if step == 0:
            raise ValueError(f"Slice: step for axis {a} is 0")
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
            index[a] = slice(start, end, step)
        else:
            # Negative steps clamp start to [0, dim-1] and end to [-1, dim-1]; an end of -1
            # means "through index 0", which Python spells as None.
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
            index[a] = slice(start, None if end < 0 else end, step) if dim else slice(0, 0)
    return data[tuple(index)]


@kernel("Slice", since=1)
def slice_1(data: np.ndarray, *, starts: Sequence[int] | None = None,
            ends: Sequence[int] | None = None,
            axes: Sequence[int] | None = None) -> np.ndarray:
    """ONNX Slice-1: ``starts``/``ends``/``axes`` attributes, step 1."""
    if starts is None or ends is None:
        raise ValueError("Slice-1 requires the 'starts' and 'ends' attributes")
    return _slice(data, _ints(starts), _ints(ends), None if axes is None else _ints(axes), None)


@kernel("Slice", since=10)
def slice_10(data: np.ndarray, starts: np.ndarray, ends: np.ndarray,
             axes: np.ndarray | None = None, steps: np.ndarray | None = None) -> np.ndarray:
    """ONNX Slice-10/11/13: starts/ends/axes/steps inputs, negative steps, clamping."""
    return _slice(data, _ints(starts), _ints(ends), None if axes is None else _ints(axes),
                  None if steps is None else _ints(steps))


# --------------------------------------------------------------------- Squeeze/Unsqueeze

def _squeeze(data: np.ndarray, axes: list[int] | None) -> np.ndarray:
    if axes is None:
        return data.reshape([d for d in data.shape if d != 1])
    axes = _normalize_axes(axes, data.ndim)
    for a in axes:
        if data.shape[a] != 1:
            raise ValueError(f"Squeeze: axis {a} of the input of shape {data.shape} has size "
                             f"{data.shape[a]}, not 1")
    return data.reshape([d for i, d in enumerate(data.shape) if i not in axes])


@kernel("Squeeze", since=1)
def squeeze_1(data: np.ndarray, *, axes: Sequence[int] | None = None) -> np.ndarray:
    """ONNX Squeeze-1/11: drop the size-1 ``axes`` (attribute; all size-1 dims if omitted)."""
    return _squeeze(data, None if axes is None else _ints(axes))


@kernel("Squeeze", since=13)
def squeeze_13(data: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    """ONNX Squeeze-13/21/23: drop the size-1 ``axes`` (input; all size-1 dims if omitted)."""
    return _squeeze(data, None if axes is None else _ints(axes))


def _unsqueeze(data: np.ndarray, axes: list[int]) -> np.ndarray:
    out_rank = data.ndim + len(axes)
    axes = _normalize_axes(axes, out_rank)
    dims = iter(data.shape)
    return data.reshape([1 if i in axes else next(dims) for i in range(out_rank)])


@kernel("Unsqueeze", since=1)
def unsqueeze_1(data: np.ndarray, *, axes: Sequence[int] | None = None) -> np.ndarray:
    """ONNX Unsqueeze-1/11: insert size-1 dims at ``axes`` (attribute) of the output."""
    if axes is None:
        raise ValueError("Unsqueeze requires the 'axes' attribute before opset 13")
    return _unsqueeze(data, _ints(axes))


@kernel("Unsqueeze", since=13)
def unsqueeze_13(data: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """ONNX Unsqueeze-13/21/23: insert size-1 dims at ``axes`` (input) of the output."""
    return _unsqueeze(data, _ints(axes))


@kernel("Flatten", since=1)
def flatten(x: np.ndarray, *, axis: int = 1) -> np.ndarray:
    """ONNX Flatten-1/9/11/13/21/23: 2-D view (prod(dims[:axis]), prod(dims[axis:]))."""
    if not -x.ndim <= axis <= x.ndim:
        raise ValueError(f"Flatten: axis={axis} is out of range for rank {x.ndim} "
                         f"(valid: [{-x.ndim}, {x.ndim}])")
    if axis < 0:
        axis += x.ndim
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@kernel("Expand", since=8)
def expand(x: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """ONNX Expand-8/13: broadcast ``x`` against ``shape`` (bidirectionally)."""
    target = tuple(_ints(shape))
    try:
        out_shape = np.broadcast_shapes(x.shape, target)
    except ValueError:
        raise ValueError(f"Expand: input shape {x.shape} cannot be broadcast with shape "
                         f"{list(target)}") from None
    # A real copy: broadcast views are read-only and alias the input.
    return np.array(np.broadcast_to(x, out_shape))


# ------------------------------------------------------------------------------ constants

def _as_string_array(values: Any) -> np.ndarray:
    def text(v: Any) -> Any:
        return v.decode("utf-8") if isinstance(v, bytes) else v

    if isinstance(values, (list, tuple)):
        out = np.empty(len(values), dtype=object)
        out[:] = [text(v) for v in values]
        return out
    out = np.empty((), dtype=object)
    out[()] = text(values)
    return out


@kernel("Constant", since=1)
def constant(*, value: np.ndarray | None = None, sparse_value: np.ndarray | None = None,
             value_float: float | None = None, value_floats: Sequence[float] | None = None,
             value_int: int | None = None, value_ints: Sequence[int] | None = None,
             value_string: str | bytes | None = None,
             value_strings: Sequence[str | bytes] | None = None) -> np.ndarray:
    """ONNX Constant-1/9/11/12/13/19/21/23: the one value attribute as a tensor."""
    given = {k: v for k, v in (("value", value), ("sparse_value", sparse_value),
                               ("value_float", value_float), ("value_floats", value_floats),
                               ("value_int", value_int), ("value_ints", value_ints),
                               ("value_string", value_string),
                               ("value_strings", value_strings)) if v is not None}
    if len(given) != 1:
        raise ValueError("Constant needs exactly one of value, sparse_value, value_float(s), "
                         f"value_int(s), value_string(s); got {sorted(given) or 'none'}")
    name, v = next(iter(given.items()))
    if name in ("value", "sparse_value"):
        return np.asarray(v)
    if name in ("value_float", "value_floats"):
        return np.array(v, dtype=np.float32)
    if name in ("value_int", "value_ints"):
        return np.array(v, dtype=np.int64)
    return _as_string_array(list(v) if name == "value_strings" else v)


@kernel("ConstantOfShape", since=9)
def constant_of_shape(shape: np.ndarray, *, value: np.ndarray | None = None) -> np.ndarray:
    """ONNX ConstantOfShape-9/20/21/23: a tensor of ``shape`` filled with ``value`` (float 0)."""
    dims = _ints(shape)
    if any(d < 0 for d in dims):
        raise ValueError(f"ConstantOfShape: shape {dims} has a negative dim")
    if value is None:
        return np.zeros(dims, dtype=np.float32)
    value = np.asarray(value)
    if value.size != 1:
        raise ValueError(f"ConstantOfShape: 'value' must hold one element, got shape "
                         f"{value.shape}")
    return np.full(dims, value.reshape(()), dtype=value.dtype)


@kernel("Identity", since=1)
def identity(x: Any) -> Any:
    """ONNX Identity-1/13/14/16/19/21/23: the input itself (tensor, sequence or optional)."""
    return x


# ---------------------------------------------------------------------------------- Cast

_SATURATING_FLOAT8 = {DType.FLOAT8E4M3FN, DType.FLOAT8E4M3FNUZ, DType.FLOAT8E5M2,
                      DType.FLOAT8E5M2FNUZ}
_ML_FLOATS = {np.dtype(t) for t in (ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn,
                                    ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2,
                                    ml_dtypes.float8_e5m2fnuz, ml_dtypes.float8_e8m0fnu,
                                    ml_dtypes.float4_e2m1fn)}
_ML_INTS = {np.dtype(t) for t in (ml_dtypes.int4, ml_dtypes.uint4, ml_dtypes.int2,
                                  ml_dtypes.uint2)}


def _is_float(dt: np.dtype) -> bool:
    return dt.kind == "f" or dt in _ML_FLOATS


def _to_dtype(to: Any) -> DType:
    """``to`` as an ONNX type number, or (Cast-1) as the type's name such as ``"FLOAT"``."""
    if isinstance(to, bytes):
        to = to.decode()
    if isinstance(to, str):
        try:
            return DType[to.upper()]
        except KeyError:
            raise ValueError(f"Cast: unknown type name to={to!r}; use a TensorProto.DataType "
                             "name such as 'FLOAT' or 'INT64'") from None
    return DType.from_onnx(int(to))


def _format_float(v: float) -> str:
    # ONNX Runtime writes floats with "%.8g" and spells the specials INF, -INF and NaN.
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "INF" if v > 0 else "-INF"
    return f"{v:.8g}"


def _to_strings(x: np.ndarray) -> np.ndarray:
    if x.dtype == object:
        return x.copy()
    if x.dtype == np.bool_ or x.dtype.kind in "iu" or x.dtype in _ML_INTS:
        flat = [str(int(v)) for v in x.astype(np.int64 if x.dtype.kind != "u" else np.uint64)
                .reshape(-1).tolist()]
    else:
        flat = [_format_float(v) for v in x.astype(np.float64).reshape(-1).tolist()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(x.shape)


def _parse_float(s: Any) -> float:
    if isinstance(s, bytes):
        s = s.decode()
    try:
        return float(s)  # accepts INF, +INF, -INF, NaN in any case, and 1e-5 style
    except (TypeError, ValueError):
        raise ValueError(f"Cast: string {s!r} is not a number") from None


def _parse_int(s: Any) -> int:
    if isinstance(s, bytes):
        s = s.decode()
    try:
        return int(s)
    except (TypeError, ValueError):
        # The spec leaves "2.718" -> int undefined; truncating is what users expect.
        return int(_parse_float(s))


def _parse_bool(s: Any) -> bool:
    text = s.decode() if isinstance(s, bytes) else str(s)
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    return _parse_float(text) != 0.0


def _from_strings(x: np.ndarray, dtype: DType, saturate: int, round_mode: str) -> np.ndarray:
    flat = x.reshape(-1).tolist()
    target = dtype.numpy
    if dtype is DType.BOOL:
        return np.array([_parse_bool(s) for s in flat], dtype=np.bool_).reshape(x.shape)
    if _is_float(target):
        parsed = np.array([_parse_float(s) for s in flat], dtype=np.float64).reshape(x.shape)
        return cast_array(parsed, dtype, saturate, round_mode)
    ints = [_parse_int(s) for s in flat]
    wide = np.uint64 if ints and min(ints) >= 0 and max(ints) > np.iinfo(np.int64).max \
        else np.int64
    try:
        parsed = np.array(ints, dtype=wide).reshape(x.shape)
    except OverflowError:
        raise ValueError(f"Cast: a string holds an integer outside the range of "
                         f"{dtype.name.lower()}") from None
    return parsed.astype(target)


def _to_float8e8m0(x: np.ndarray, saturate: int, round_mode: str) -> np.ndarray:
    """Powers of two 2**(b-127), b in [0, 254]; 0xFF is NaN (the only special value)."""
    if isinstance(round_mode, bytes):
        round_mode = round_mode.decode()
    if round_mode not in ("up", "down", "nearest"):
        raise ValueError(f"Cast: round_mode must be 'up', 'down' or 'nearest', got "
                         f"{round_mode!r}")
    mag = np.abs(x.astype(np.float64))  # negative inputs are unspecified; use the magnitude
    finite_pos = np.isfinite(mag) & (mag > 0)
    frac, exp = np.frexp(np.where(finite_pos, mag, 1.0))  # mag = frac * 2**exp, frac in [.5, 1)
    biased = exp.astype(np.int64) - 1 + 127  # floor(log2(mag)) + bias
    mant = frac * 2.0  # in [1, 2)
    if round_mode == "up":
        biased += mant > 1.0
    elif round_mode == "nearest":
        biased += mant >= 1.5  # ties (1.5 * 2**e) round up
    big = np.where(saturate, 254, 255)
    small = np.where(saturate, 0, 255)
    bits = np.where(biased > 254, big, np.where(biased < 0, small, biased))
    bits = np.where(np.isnan(mag), 255, bits)
    bits = np.where(np.isinf(mag), big, bits)
    bits = np.where(mag == 0, small, bits)
    return bits.astype(np.uint8).view(ml_dtypes.float8_e8m0fnu)


def cast_array(x: np.ndarray, dtype: DType, saturate: int = 1,
               round_mode: str = "up") -> np.ndarray:
    """Convert ``x`` to ``dtype`` by the ONNX Cast rules (shared by Cast and CastLike)."""
    x = np.asarray(x)
    target = dtype.numpy
    if dtype is DType.STRING:
        return _to_strings(x)
    if x.dtype == object:
        return _from_strings(x, dtype, saturate, round_mode)
    if x.dtype == target:
        return x
    with np.errstate(invalid="ignore", over="ignore"):
        if dtype is DType.FLOAT8E8M0:
            return _to_float8e8m0(x, saturate, round_mode)
        if dtype in _SATURATING_FLOAT8:
            src = x if x.dtype in (np.float16, np.float32, np.float64) else \
                x.astype(np.float32)
            if saturate:
                limit = float(ml_dtypes.finfo(target).max)
                src = np.clip(src, -limit, limit)  # clip keeps NaN, maps +-inf to +-max
            return src.astype(target)
        if x.dtype in _ML_FLOATS and not _is_float(target) and target != np.bool_:
            # Narrow floats to integers go through float32 (ml_dtypes lacks some casts).
            return x.astype(np.float32).astype(target)
        return x.astype(target)


@kernel("Cast", since=1)
def cast(x: np.ndarray, *, to: int | str | None = None, saturate: int = 1,
         round_mode: str = "up") -> np.ndarray:
    """ONNX Cast-1/6/9/13/19/21/23/24/25: convert to type ``to`` (saturate for float8)."""
    if to is None:
        raise ValueError("Cast requires the 'to' attribute")
    return cast_array(x, _to_dtype(to), saturate, round_mode)


@kernel("CastLike", since=15)
def cast_like(x: np.ndarray, target_type: np.ndarray, *, saturate: int = 1,
              round_mode: str = "up") -> np.ndarray:
    """ONNX CastLike-15/19/21/23/24/25: convert ``x`` to the element type of ``target_type``."""
    return cast_array(x, DType.from_numpy(target_type.dtype), saturate, round_mode)


# ------------------------------------------------------------------------- Shape & Size

@kernel("Shape", since=1)
def shape(data: np.ndarray, *, start: int = 0, end: int | None = None) -> np.ndarray:
    """ONNX Shape-1/13/15/19/21/23: the shape as int64, sliced by ``start``/``end`` (15)."""
    # Python slicing clamps exactly like the spec: [0, rank] after adding rank to negatives.
    return np.array(data.shape[start:end], dtype=np.int64)


@kernel("Size", since=1)
def size(data: np.ndarray) -> np.ndarray:
    """ONNX Size-1/13/19/21/23: the number of elements as an int64 scalar."""
    return np.array(data.size, dtype=np.int64)


# ------------------------------------------------------------------------ Tile & Pad & co.

@kernel("Tile", since=1)
def tile_1(x: np.ndarray, tiles: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """ONNX Tile-1: repeat the whole tensor ``tiles`` times along ``axis``."""
    reps = [1] * x.ndim
    reps[normalize_axis(_scalar_int(axis, "Tile: axis"), x.ndim)] = \
        _scalar_int(tiles, "Tile: tiles")
    return tile(x, np.array(reps, dtype=np.int64))


@kernel("Tile", since=6)
def tile(x: np.ndarray, repeats: np.ndarray) -> np.ndarray:
    """ONNX Tile-6/13: repeat the tensor ``repeats[i]`` times along each axis i."""
    reps = _ints(repeats)
    if len(reps) != x.ndim or any(r < 0 for r in reps):
        raise ValueError(f"Tile: repeats {reps} must have one non-negative entry per axis of "
                         f"the input of shape {x.shape}")
    return np.tile(x, reps)


def _pad(data: np.ndarray, pads: list[int], mode: str, value: Any,
         axes: list[int] | None = None) -> np.ndarray:
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ValueError(f"Pad: unknown mode {mode!r} (constant, reflect, edge, wrap)")
    axes = list(range(data.ndim)) if axes is None else _normalize_axes(axes, data.ndim)
    if len(pads) != 2 * len(axes):
        raise ValueError(f"Pad: pads has {len(pads)} values; expected 2 per padded axis "
                         f"({2 * len(axes)}) for the input of shape {data.shape}")
    before, after = [0] * data.ndim, [0] * data.ndim
    for i, a in enumerate(axes):
        before[a], after[a] = pads[i], pads[i + len(axes)]
    # Negative pads crop; crop first, then pad (what ONNX Runtime does for every mode).
    crop = []
    for a, (b, e) in enumerate(zip(before, after)):
        dim = data.shape[a]
        lo, hi = max(-b, 0), dim - max(-e, 0)
        if lo > hi:
            raise ValueError(f"Pad: negative pads ({b}, {e}) remove more than the {dim} "
                             f"elements of axis {a}")
        crop.append(slice(lo, hi))
    data = data[tuple(crop)]
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(before, after)]
    if not any(b or e for b, e in widths):
        return data.copy()
    if mode != "constant":
        for a, (b, e) in enumerate(widths):
            if (b or e) and data.shape[a] == 0:
                raise ValueError(f"Pad: mode {mode!r} cannot pad axis {a} of size 0")
        return np.pad(data, widths, mode={"edge": "edge", "reflect": "reflect",
                                          "wrap": "wrap"}[mode])
    fill = _zero_of(data.dtype) if value is None else np.asarray(value).reshape(-1)[0]
    out = np.full([d + b + e for d, (b, e) in zip(data.shape, widths)], fill, dtype=data.dtype)
    out[tuple(slice(b, b + d) for d, (b, _) in zip(data.shape, widths))] = data
    return out


@kernel("Pad", since=1)
def pad_1(data: np.ndarray, *, paddings: Sequence[int] | None = None, mode: str = "constant",
          value: float = 0.0) -> np.ndarray:
    """ONNX Pad-1: ``paddings`` attribute [x1_begin, x2_begin, ..., x1_end, x2_end, ...]."""
    if paddings is None:
        raise ValueError("Pad-1 requires the 'paddings' attribute")
    return _pad(data, _ints(paddings), mode, value)


@kernel("Pad", since=2)
def pad_2(data: np.ndarray, *, pads: Sequence[int] | None = None, mode: str = "constant",
          value: float = 0.0) -> np.ndarray:
    """ONNX Pad-2: ``pads`` attribute, modes constant/reflect/edge, float ``value``."""
    if pads is None:
        raise ValueError("Pad-2 requires the 'pads' attribute")
    return _pad(data, _ints(pads), mode, value)


@kernel("Pad", since=11)
@kernel("Pad", since=18)
def pad_11(data: np.ndarray, pads: np.ndarray, constant_value: np.ndarray | None = None,
           axes: np.ndarray | None = None, *, mode: str = "constant") -> np.ndarray:
    """ONNX Pad-11/13/18/19/21/23: pads/constant_value/axes (18) inputs, wrap mode (19)."""
    if constant_value is not None and np.asarray(constant_value).size == 0:
        constant_value = None
    return _pad(data, _ints(pads), mode, constant_value,
                None if axes is None else _ints(axes))


@kernel("CenterCropPad", since=18)
def center_crop_pad(input_data: np.ndarray, shape: np.ndarray, *,
                    axes: Sequence[int] | None = None) -> np.ndarray:
    """ONNX CenterCropPad-18: crop or zero-pad ``axes`` around the center to ``shape``."""
    target = _ints(shape)
    axes = list(range(input_data.ndim)) if axes is None else \
        _normalize_axes(_ints(axes), input_data.ndim)
    if len(target) != len(axes):
        raise ValueError(f"CenterCropPad: shape has {len(target)} entries but there are "
                         f"{len(axes)} axes")
    out_shape = list(input_data.shape)
    src, dst = [slice(None)] * input_data.ndim, [slice(None)] * input_data.ndim
    for a, t in zip(axes, target):
        if t < 0:
            raise ValueError(f"CenterCropPad: negative target size {t} for axis {a}")
        dim = input_data.shape[a]
        out_shape[a] = t
        if dim >= t:  # crop: the window starts rounded down
            start = (dim - t) // 2
            src[a] = slice(start, start + t)
        else:  # pad: the odd extra element goes to the end
            start = (t - dim) // 2
            dst[a] = slice(start, start + dim)
    out = np.full(out_shape, _zero_of(input_data.dtype), dtype=input_data.dtype)
    out[tuple(dst)] = input_data[tuple(src)]
    return out


@kernel("Range", since=11)
@kernel("Range", since=27)
def range_(start: np.ndarray, limit: np.ndarray, delta: np.ndarray, *,
           stash_type: int = 1) -> np.ndarray:
    """ONNX Range-11/27: start + i*delta for i < max(ceil((limit-start)/delta), 0)."""
    dtype = np.asarray(start).dtype
    s, lim, d = (np.asarray(v).reshape(-1)[0] for v in (start, limit, delta))
    if d == 0:
        raise ValueError("Range: delta must not be 0")
    if dtype.kind in "iu":
        s, lim, d = int(s), int(lim), int(d)
        n = max(-((s - lim) // d), 0)  # exact integer ceil((lim - s) / d)
        return (s + np.arange(n, dtype=np.int64) * d).astype(dtype)
    compute = np.float32 if dtype in (np.float16, np.dtype(ml_dtypes.bfloat16)) and \
        stash_type == 1 else dtype
    s, lim, d = (np.asarray(v, dtype=compute) for v in (s, lim, d))
    count = float(lim - s) / float(d)
    if not math.isfinite(count):
        raise ValueError(f"Range: start={s}, limit={lim}, delta={d} give no finite count")
    n = max(math.ceil(count), 0)
    return (s + np.arange(n, dtype=compute) * d).astype(dtype)


# ------------------------------------------------------------------- block & matrix ops

def _check_blocks(x: np.ndarray, blocksize: int | None, op: str) -> int:
    if blocksize is None or blocksize < 1:
        raise ValueError(f"{op} requires a positive 'blocksize' attribute, got {blocksize}")
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    return int(blocksize)


@kernel("DepthToSpace", since=1)
def depth_to_space(x: np.ndarray, *, blocksize: int | None = None,
                   mode: str = "DCR") -> np.ndarray:
    """ONNX DepthToSpace-1/11/13: move channel blocks into HxW (mode DCR or CRD, 11)."""
    b = _check_blocks(x, blocksize, "DepthToSpace")
    n, c, h, w = x.shape
    if c % (b * b):
        raise ValueError(f"DepthToSpace: channels {c} are not divisible by blocksize^2 = "
                         f"{b * b}")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    elif mode == "CRD":
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        raise ValueError(f"DepthToSpace: mode must be 'DCR' or 'CRD', got {mode!r}")
    return y.reshape(n, c // (b * b), h * b, w * b)


@kernel("SpaceToDepth", since=1)
def space_to_depth(x: np.ndarray, *, blocksize: int | None = None,
                   mode: str = "DCR") -> np.ndarray:
    """ONNX SpaceToDepth-1/13: move HxW blocks of ``blocksize`` into channels.

    ``mode`` (DCR default, or CRD) is the inverse of DepthToSpace's; the conformance suite's
    ``spacetodepth_*_mode_example`` cases use it.
    """
    b = _check_blocks(x, blocksize, "SpaceToDepth")
    n, c, h, w = x.shape
    if h % b or w % b:
        raise ValueError(f"SpaceToDepth: H={h} and W={w} must be divisible by blocksize {b}")
    if isinstance(mode, bytes):
        mode = mode.decode()
    blocks = x.reshape(n, c, h // b, b, w // b, b)
    if mode == "DCR":
        y = blocks.transpose(0, 3, 5, 1, 2, 4)
    elif mode == "CRD":
        y = blocks.transpose(0, 1, 3, 5, 2, 4)
    else:
        raise ValueError(f"SpaceToDepth: mode must be DCR or CRD, got {mode!r}")
    return y.reshape(n, c * b * b, h // b, w // b)


@kernel("EyeLike", since=9)
def eye_like(x: np.ndarray, *, dtype: int | None = None, k: int = 0) -> np.ndarray:
    """ONNX EyeLike-9/22: ones on diagonal ``k`` of a matrix shaped like the 2-D input."""
    if x.ndim != 2:
        raise ValueError(f"EyeLike: input must be 2-D, got shape {x.shape}")
    out_dtype = x.dtype if dtype is None else DType.from_onnx(dtype).numpy
    if out_dtype == object:
        raise ValueError("EyeLike: output type string is not allowed")
    return np.eye(x.shape[0], x.shape[1], k=k, dtype=np.float32).astype(out_dtype)


@kernel("Trilu", since=14)
def trilu(x: np.ndarray, k: np.ndarray | None = None, *, upper: int = 1) -> np.ndarray:
    """ONNX Trilu-14: keep the upper (or lower) triangle of the last two dims from diagonal k."""
    if x.ndim < 2:
        raise ValueError(f"Trilu: input must have rank >= 2, got shape {x.shape}")
    diag = 0 if k is None else _scalar_int(k, "Trilu: k")
    rows, cols = x.shape[-2:]
    i = np.arange(rows)[:, None]
    j = np.arange(cols)[None, :]
    keep = (j - i >= diag) if upper else (j - i <= diag)
    return np.where(keep, x, np.array(_zero_of(x.dtype), dtype=x.dtype))
