"""Sequence and optional kernels: SequenceConstruct ... SequenceMap, Optional*.

A sequence is a Python ``list`` of numpy arrays; an empty optional is ``None`` (the executor
also passes ``None`` for an omitted optional input, which every op here treats the same way:
OptionalHasElement-18 says "not provided or empty" both give false). Kernels return new lists
and never change the input list, so a sequence a caller fed in stays as it was.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np

from ...ops import KernelContext, kernel

__all__ = [
    "concat_from_sequence",
    "optional",
    "optional_get_element",
    "optional_has_element",
    "sequence_at",
    "sequence_construct",
    "sequence_empty",
    "sequence_erase",
    "sequence_insert",
    "sequence_length",
    "sequence_map",
    "split_to_sequence",
]


def _as_sequence(seq: Any, op: str) -> list:
    if not isinstance(seq, (list, tuple)):
        raise TypeError(f"{op} expects a sequence input, got {type(seq).__name__}")
    return list(seq)


def _position(position: Any, op: str) -> int:
    pos = np.asarray(position)
    if pos.size != 1 or pos.dtype.kind not in "iu":
        raise ValueError(f"{op}: position must be a scalar int32/int64 tensor, got "
                         f"{pos.dtype}{list(pos.shape)}")
    return int(pos.reshape(-1)[0])


def _elem_type(x: Any) -> np.dtype:
    dt = np.asarray(x).dtype
    # Fed string tensors may be numpy unicode/bytes arrays; they are all tensor(string).
    return np.dtype(object) if dt.kind in "USO" else dt


def _check_index(index: int, low: int, high: int, op: str, length: int) -> int:
    """``index`` in ``[low, high]`` (both inclusive), negative ones counted from the end."""
    if not low <= index <= high:
        raise ValueError(f"{op}: position {index} is out of range [{low}, {high}] for a "
                         f"sequence of length {length}")
    return index + length if index < 0 else index


@kernel("SequenceConstruct", since=11)
def sequence_construct(*inputs):
    """ONNX SequenceConstruct-11: a sequence holding the input tensors, in order."""
    if inputs:
        first = _elem_type(inputs[0])
        for x in inputs[1:]:
            if _elem_type(x) != first:
                raise ValueError("SequenceConstruct: all inputs must have the same element "
                                 f"type, got {first} and {_elem_type(x)}")
    return list(inputs)


@kernel("SequenceEmpty", since=11)
def sequence_empty(*, dtype: int | None = None):
    """ONNX SequenceEmpty-11: an empty sequence (``dtype`` only types it, default float)."""
    return []


@kernel("SequenceAt", since=11)
def sequence_at(input_sequence, position):
    """ONNX SequenceAt-11: the tensor at ``position`` (negative counts from the back)."""
    seq = _as_sequence(input_sequence, "SequenceAt")
    n = len(seq)
    index = _check_index(_position(position, "SequenceAt"), -n, n - 1, "SequenceAt", n)
    return seq[index]


@kernel("SequenceInsert", since=11)
def sequence_insert(input_sequence, tensor, position=None):
    """ONNX SequenceInsert-11: a copy of the sequence with ``tensor`` inserted (default: at the end)."""
    seq = _as_sequence(input_sequence, "SequenceInsert")
    n = len(seq)
    if seq and _elem_type(seq[0]) != _elem_type(tensor):
        raise ValueError(f"SequenceInsert: the tensor's type {_elem_type(tensor)} differs "
                         f"from the sequence's element type {_elem_type(seq[0])}")
    index = n if position is None else \
        _check_index(_position(position, "SequenceInsert"), -n, n, "SequenceInsert", n)
    seq.insert(index, tensor)
    return seq


@kernel("SequenceErase", since=11)
def sequence_erase(input_sequence, position=None):
    """ONNX SequenceErase-11: a copy of the sequence without the tensor at ``position`` (default: last)."""
    seq = _as_sequence(input_sequence, "SequenceErase")
    n = len(seq)
    if n == 0:
        raise ValueError("SequenceErase: cannot erase from an empty sequence")
    index = n - 1 if position is None else \
        _check_index(_position(position, "SequenceErase"), -n, n - 1, "SequenceErase", n)
    del seq[index]
    return seq


@kernel("SequenceLength", since=11)
def sequence_length(input_sequence):
    """ONNX SequenceLength-11: the number of tensors in the sequence, as an int64 scalar."""
    return np.asarray(len(_as_sequence(input_sequence, "SequenceLength")), dtype=np.int64)


@kernel("SplitToSequence", since=11)
def split_to_sequence(input, split=None, *, axis: int = 0, keepdims: int = 1):
    """ONNX SplitToSequence-11/24: split along ``axis`` into a sequence (chunk size or sizes)."""
    x = np.asarray(input)
    if x.ndim == 0:
        raise ValueError("SplitToSequence: the input must have rank >= 1")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"SplitToSequence: axis {axis} is out of range for rank {x.ndim}")
    axis %= x.ndim
    dim = x.shape[axis]
    if split is None:
        # Pieces of length 1; keepdims decides whether the split axis stays.
        pieces = [np.take(x, i, axis=axis) for i in range(dim)] if not keepdims else \
            [x[(slice(None),) * axis + (slice(i, i + 1),)] for i in range(dim)]
        return [np.ascontiguousarray(p) for p in pieces]
    sizes = np.asarray(split)
    if sizes.dtype.kind not in "iu":
        raise ValueError(f"SplitToSequence: split must be int32/int64, got {sizes.dtype}")
    if sizes.ndim == 0:
        chunk = int(sizes)
        if chunk <= 0:
            raise ValueError(f"SplitToSequence: a scalar split must be positive, got {chunk}")
        bounds = list(range(0, dim, chunk)) + [dim]
    elif sizes.ndim == 1:
        if (sizes < 0).any() or int(sizes.sum()) != dim:
            raise ValueError(f"SplitToSequence: split {sizes.tolist()} must be non-negative "
                             f"and sum to the axis length {dim}")
        bounds = [0, *np.cumsum(sizes).tolist()]
    else:
        raise ValueError(f"SplitToSequence: split must be a scalar or 1-D, got rank "
                         f"{sizes.ndim}")
    lead = (slice(None),) * axis
    return [np.ascontiguousarray(x[lead + (slice(a, b),)]) for a, b in pairwise(bounds)]


@kernel("ConcatFromSequence", since=11)
def concat_from_sequence(input_sequence, *, axis: int | None = None, new_axis: int = 0):
    """ONNX ConcatFromSequence-11: concatenate (``new_axis=1``: stack) the sequence's tensors."""
    if axis is None:
        raise ValueError("ConcatFromSequence requires the axis attribute")
    seq = [np.asarray(t) for t in _as_sequence(input_sequence, "ConcatFromSequence")]
    if not seq:
        raise ValueError("ConcatFromSequence: the input sequence is empty; there is nothing to "
                         "infer the output's shape and type from")
    rank = seq[0].ndim + (1 if new_axis else 0)
    if not -rank <= axis < rank:
        raise ValueError(f"ConcatFromSequence: axis {axis} is out of range for rank {rank}")
    if new_axis:
        return np.stack(seq, axis=axis)
    if seq[0].ndim == 0:
        raise ValueError("ConcatFromSequence: cannot concatenate scalars without new_axis=1")
    return np.concatenate(seq, axis=axis)


@kernel("SequenceMap", since=17)
def sequence_map(input_sequence, *additional_inputs, body=None, _ctx: KernelContext):
    """ONNX SequenceMap-17: run ``body`` on each element (sequences sliced, tensors as they are)."""
    if body is None:
        raise ValueError("SequenceMap requires the body attribute")
    seq = _as_sequence(input_sequence, "SequenceMap")
    n = len(seq)
    for k, extra in enumerate(additional_inputs):
        if isinstance(extra, (list, tuple)) and len(extra) != n:
            raise ValueError(f"SequenceMap: input {k + 1} is a sequence of length {len(extra)} "
                             f"but the first input has length {n}")
    outputs: list[list[Any]] = [[] for _ in range(_ctx.noutputs)]
    for i in range(n):
        args = [seq[i]] + [extra[i] if isinstance(extra, (list, tuple)) else extra
                           for extra in additional_inputs]
        results = _ctx.run_graph(body, args)
        for k in range(_ctx.noutputs):
            outputs[k].append(results[k])
    return tuple(outputs)


@kernel("Optional", since=15)
def optional(input=None, *, type: Any = None):
    """ONNX Optional-15/28: wrap ``input`` in an optional, or make an empty one of ``type``."""
    if input is None and type is None:
        raise ValueError("Optional: without an input the type attribute is required")
    return input


@kernel("OptionalHasElement", since=15)
def optional_has_element(input=None):
    """ONNX OptionalHasElement-15/18/28: whether the optional holds a value (absent: false)."""
    return np.asarray(input is not None)


@kernel("OptionalGetElement", since=15)
def optional_get_element(input=None):
    """ONNX OptionalGetElement-15/18/28: the optional's value (a plain tensor/sequence as is)."""
    if input is None:
        raise ValueError("OptionalGetElement: the optional input is empty; guard the read with "
                         "OptionalHasElement")
    return input
