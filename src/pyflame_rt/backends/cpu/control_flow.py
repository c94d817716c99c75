"""Control-flow kernels: If, Loop, Scan. Their bodies run through ``_ctx.run_graph``.

The plan compiles each body once (on first use) into a sub-plan that sees the enclosing
scope's values, so outer-scope references cost nothing per iteration beyond a list lookup.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ops import KernelContext, kernel

__all__ = ["if_", "loop", "scan", "scan_8"]


def _truth(cond: Any, what: str) -> bool:
    arr = np.asarray(cond)
    if arr.size != 1:
        raise ValueError(f"{what} must hold exactly one element, got shape {list(arr.shape)}")
    return bool(arr.reshape(-1)[0])


@kernel("If", since=1)
def if_(cond, *, then_branch=None, else_branch=None, _ctx: KernelContext):
    """ONNX If-1/11/13/16/19/21/23: run ``then_branch`` or ``else_branch`` by ``cond``."""
    branch = then_branch if _truth(cond, "If condition") else else_branch
    outputs = _ctx.run_graph(branch, [])
    return tuple(outputs)


def _stack(values: list[Any]) -> np.ndarray:
    if not values:
        return np.zeros((0,), dtype=np.float32)
    return np.stack([np.asarray(v) for v in values])


@kernel("Loop", since=1)
def loop(max_trip_count=None, cond=None, *initial, body=None, _ctx: KernelContext):
    """ONNX Loop-1/11/13/16/19/21/23: a for/while loop with carried values and scan outputs."""
    trips = None if max_trip_count is None else int(np.asarray(max_trip_count).reshape(-1)[0])
    keep_going = True if cond is None else _truth(cond, "Loop condition")
    carried = list(initial)
    n_carried = len(carried)
    n_scan = _ctx.noutputs - n_carried
    scans: list[list[Any]] = [[] for _ in range(n_scan)]
    i = 0
    while keep_going and (trips is None or i < trips):
        outs = _ctx.run_graph(body, [np.array(i, dtype=np.int64),
                                     np.array(keep_going, dtype=np.bool_), *carried])
        keep_going = _truth(outs[0], "Loop body condition output")
        carried = list(outs[1:1 + n_carried])
        for k in range(n_scan):
            scans[k].append(outs[1 + n_carried + k])
        i += 1
    scan_outputs = []
    for k in range(n_scan):
        if scans[k]:
            scan_outputs.append(_stack(scans[k]))
        else:
            scan_outputs.append(_empty_scan(body, 1 + n_carried + k))
    return tuple(carried + scan_outputs)


def _empty_scan(body: Any, index: int) -> np.ndarray:
    """A zero-iteration scan output: shape (0, ...) with the body's declared dtype/shape."""
    from ...types import TensorInfo

    vtype = body.outputs[index].type if index < len(body.outputs) else None
    if isinstance(vtype, TensorInfo):
        inner = tuple(d if isinstance(d, int) else 0 for d in (vtype.shape or ()))
        return np.zeros((0, *inner), dtype=vtype.dtype.numpy)
    return np.zeros((0,), dtype=np.float32)


def _run_scan(states: list[Any], scan_inputs: list[np.ndarray], body: Any, n_outputs: int,
              input_axes: list[int], input_dirs: list[int], output_axes: list[int],
              output_dirs: list[int], ctx: KernelContext) -> tuple:
    moved = []
    for x, axis, direction in zip(scan_inputs, input_axes, input_dirs):
        x = np.moveaxis(np.asarray(x), axis % max(1, x.ndim), 0)
        moved.append(x[::-1] if direction else x)
    length = moved[0].shape[0] if moved else 0
    for x in moved:
        if x.shape[0] != length:
            raise ValueError(f"Scan inputs disagree on the scan length: {x.shape[0]} vs "
                             f"{length}")
    n_states = len(states)
    n_scan_out = n_outputs - n_states
    collected: list[list[Any]] = [[] for _ in range(n_scan_out)]
    for t in range(length):
        outs = ctx.run_graph(body, [*states, *[x[t] for x in moved]])
        states = list(outs[:n_states])
        for k in range(n_scan_out):
            collected[k].append(outs[n_states + k])
    results = []
    for k in range(n_scan_out):
        if collected[k]:
            y = np.stack([np.asarray(v) for v in collected[k]])
        else:
            y = _empty_scan(body, n_states + k)
        if output_dirs[k]:
            y = y[::-1]
        axis = output_axes[k] % y.ndim if y.ndim else 0
        results.append(np.ascontiguousarray(np.moveaxis(y, 0, axis)))
    return tuple(states + results)


@kernel("Scan", since=9)
def scan(*inputs, body=None, num_scan_inputs: int | None = None, scan_input_axes=None,
         scan_input_directions=None, scan_output_axes=None, scan_output_directions=None,
         _ctx: KernelContext):
    """ONNX Scan-9/11/16/19/21/23: iterate ``body`` over slices of the scan inputs."""
    if num_scan_inputs is None:
        raise ValueError("Scan requires the num_scan_inputs attribute")
    m = int(num_scan_inputs)
    states, scans = list(inputs[:len(inputs) - m]), list(inputs[len(inputs) - m:])
    n_scan_out = _ctx.noutputs - len(states)
    return _run_scan(
        states, scans, body, _ctx.noutputs,
        list(scan_input_axes or [0] * m), list(scan_input_directions or [0] * m),
        list(scan_output_axes or [0] * n_scan_out),
        list(scan_output_directions or [0] * n_scan_out), _ctx)


@kernel("Scan", since=8)
def scan_8(sequence_lens, *inputs, body=None, num_scan_inputs: int | None = None,
           directions=None, _ctx: KernelContext):
    """ONNX Scan-8: like Scan-9 with a leading batch axis and optional ``sequence_lens``."""
    if num_scan_inputs is None:
        raise ValueError("Scan requires the num_scan_inputs attribute")
    m = int(num_scan_inputs)
    states, scans = list(inputs[:len(inputs) - m]), list(inputs[len(inputs) - m:])
    batch = (scans[0] if scans else states[0]).shape[0]
    n_scan_out = _ctx.noutputs - len(states)
    dirs = list(directions or [0] * m)
    per_batch = []
    for b in range(batch):
        length = None if sequence_lens is None else int(np.asarray(sequence_lens)[b])
        xs = [x[b] if length is None else x[b][:length] for x in scans]
        per_batch.append(_run_scan([s[b] for s in states], xs, body, _ctx.noutputs,
                                   [0] * m, dirs, [0] * n_scan_out, [0] * n_scan_out, _ctx))
    return tuple(np.stack([r[k] for r in per_batch]) for k in range(_ctx.noutputs))
