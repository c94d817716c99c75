"""Test oracles: run a one-node ONNX model through ``onnx.reference`` (and ONNX Runtime).

Kernel tests call our kernel function directly and compare with what these oracles compute
for the same op, inputs and attributes; expected values are never copied from our output.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import onnx
import onnx.defs
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from pyflame_rt.types import DType

DEFAULT_OPSET = 21

BF16 = np.dtype(ml_dtypes.bfloat16)
#: numpy dtype of each ONNX tensor type name (as written in schema type constraints).
NUMPY_OF = {
    "float": np.float32, "double": np.float64, "float16": np.float16, "bfloat16": BF16,
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
    "bool": np.bool_, "string": object,
    "float8e4m3fn": ml_dtypes.float8_e4m3fn, "float8e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "float8e5m2": ml_dtypes.float8_e5m2, "float8e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
}


def schema_types(op: str, version: int, param: str = "T") -> list[np.dtype]:
    """numpy dtypes the schema of ``op``-``version`` allows for type parameter ``param``."""
    schema = onnx.defs.get_schema(op, version)
    (constraint,) = [t for t in schema.type_constraints if t.type_param_str == param]
    names = [s[len("tensor("):-1] for s in constraint.allowed_type_strs]
    return [np.dtype(NUMPY_OF[n]) for n in names if n in NUMPY_OF]


def schema_versions(op: str, first: int) -> list[int]:
    """Every schema version of ``op`` from ``first`` on (the opsets our kernels must serve)."""
    found = {s.since_version for s in onnx.defs.get_all_schemas_with_history()
             if s.name == op and s.domain == "" and s.since_version >= first}
    return sorted(found)


def new_types(op: str, first: int, param: str = "T") -> list[tuple[int, np.dtype]]:
    """(opset, dtype) pairs: each dtype at the first version of ``op`` that allows it."""
    seen, out = set(), []
    for v in schema_versions(op, first):
        for dt in schema_types(op, v, param):
            if dt not in seen:
                seen.add(dt)
                out.append((v, dt))
    return out


def type_params(op: str, first: int, param: str = "T") -> list:
    """:func:`new_types` as pytest params with readable ids."""
    return [pytest.param(v, dt, id=f"{v}-{dt}") for v, dt in new_types(op, first, param)]


def random_array(rng: np.random.Generator, shape, dtype, low: float = -4.0,
                 high: float = 4.0) -> np.ndarray:
    """Random values of ``dtype`` in [low, high] (bools: fair coin; unsigned: from 0)."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        lo = max(int(low), 0) if dtype.kind == "u" else int(low)
        return rng.integers(lo, int(high) + 1, size=shape).astype(dtype)
    return rng.uniform(low, high, size=shape).astype(dtype)


def dtype_tolerance(dtype, bf16: float, f16: float, f32: tuple[float, float]) -> dict:
    """``assert_close`` tolerances by dtype: rtol = atol = ``bf16`` for bfloat16, ``f16`` for
    float16, and ``f32`` = (rtol, atol) for everything else."""
    dtype = np.dtype(dtype)
    if dtype == BF16:
        return {"rtol": bf16, "atol": bf16}
    if dtype == np.float16:
        return {"rtol": f16, "atol": f16}
    return {"rtol": f32[0], "atol": f32[1]}


def one_node_model(op_type: str, inputs: list[np.ndarray | None], attrs: dict[str, Any] | None = None,
                   *, noutputs: int = 1, opset: int = DEFAULT_OPSET, domain: str = "") -> onnx.ModelProto:
    """A model with one node; every non-None input becomes a graph input named ``in{i}``."""
    in_names, graph_inputs = [], []
    for i, arr in enumerate(inputs):
        if arr is None:
            in_names.append("")
            continue
        name = f"in{i}"
        in_names.append(name)
        arr = np.asarray(arr)
        elem = DType.from_numpy(arr.dtype).value
        graph_inputs.append(helper.make_tensor_value_info(name, elem, list(arr.shape)))
    out_names = [f"out{i}" for i in range(noutputs)]
    node = helper.make_node(op_type, in_names, out_names, domain=domain, **(attrs or {}))
    outputs = [helper.make_value_info(n, onnx.TypeProto()) for n in out_names]
    graph = helper.make_graph([node], "one_node", graph_inputs, outputs)
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


def reference(op_type: str, inputs: list[np.ndarray | None], attrs: dict[str, Any] | None = None,
              *, noutputs: int = 1, opset: int = DEFAULT_OPSET) -> list[np.ndarray]:
    """Outputs of ``onnx.reference.ReferenceEvaluator`` for one node."""
    model = one_node_model(op_type, inputs, attrs, noutputs=noutputs, opset=opset)
    feeds = {f"in{i}": np.asarray(a) for i, a in enumerate(inputs) if a is not None}
    return [np.asarray(o) for o in ReferenceEvaluator(model).run(None, feeds)]


def onnxruntime(op_type: str, inputs: list[np.ndarray | None], attrs: dict[str, Any] | None = None,
                *, noutputs: int = 1, opset: int = DEFAULT_OPSET) -> list[np.ndarray]:
    """Outputs of ONNX Runtime (CPU) for one node."""
    import onnxruntime as ort

    model = one_node_model(op_type, inputs, attrs, noutputs=noutputs, opset=opset)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {f"in{i}": np.asarray(a) for i, a in enumerate(inputs) if a is not None}
    return sess.run(None, feeds)


def assert_close(actual: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Same dtype, same shape, values within tolerance (NaN == NaN)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != expected {expected.dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    if actual.dtype == object or actual.dtype.kind in "biuUSO":
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                                   rtol=rtol, atol=atol, equal_nan=True)


def check_kernel(fn, op_type: str, inputs: list[np.ndarray | None], attrs: dict[str, Any] | None = None,
                 *, noutputs: int = 1, opset: int = DEFAULT_OPSET, rtol: float = 1e-5,
                 atol: float = 1e-6, **call_kwargs) -> None:
    """Call kernel ``fn`` and compare every output with ``onnx.reference``."""
    expected = reference(op_type, inputs, attrs, noutputs=noutputs, opset=opset)
    got = fn(*inputs, **(attrs or {}), **call_kwargs)
    if not isinstance(got, (tuple, list)):
        got = [got]
    assert len(got) >= noutputs, f"kernel returned {len(got)} outputs, expected {noutputs}"
    for g, e in zip(got[:noutputs], expected):
        assert_close(g, e, rtol=rtol, atol=atol)
