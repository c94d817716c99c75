"""Helpers for optimizer tests: build small ONNX models, optimize them, compare outputs.

Every comparison runs the model three ways: PyFlameRT with optimizations off, PyFlameRT at the
level under test, and ONNX Runtime (the oracle), so a rewrite that changes the math fails.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

import pyflame_rt as pf
from pyflame_rt.io.onnx import from_onnx
from pyflame_rt.opt import OptLevel, optimize
from pyflame_rt.types import DType


def make_model(nodes: list, inputs: dict[str, tuple], outputs: list[str] | dict[str, tuple],
               initializers: dict[str, np.ndarray] | None = None, *, opset: int = 17,
               ir_version: int = 10, extra_opsets: dict[str, int] | None = None
               ) -> onnx.ModelProto:
    """``inputs``: name -> (numpy dtype, shape); ``outputs``: names (types left to inference)
    or name -> (dtype, shape)."""
    graph_inputs = [helper.make_tensor_value_info(n, DType.from_numpy(dt).value, list(shape))
                    for n, (dt, shape) in inputs.items()]
    if isinstance(outputs, dict):
        graph_outputs = [helper.make_tensor_value_info(n, DType.from_numpy(dt).value,
                                                       None if shape is None else list(shape))
                         for n, (dt, shape) in outputs.items()]
    else:
        graph_outputs = [helper.make_value_info(n, onnx.TypeProto()) for n in outputs]
    inits = [numpy_helper.from_array(np.asarray(a), n) for n, a in (initializers or {}).items()]
    graph = helper.make_graph(nodes, "test", graph_inputs, graph_outputs, inits)
    opsets = [helper.make_opsetid("", opset)]
    for dom, ver in (extra_opsets or {}).items():
        opsets.append(helper.make_opsetid(dom, ver))
    return helper.make_model(graph, opset_imports=opsets, ir_version=ir_version)


def session(model: Any, level: Any = OptLevel.ALL, **opts: Any) -> pf.InferenceSession:
    so = pf.SessionOptions()
    so.graph_optimization_level = level
    for k, v in opts.items():
        setattr(so, k, v)
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return pf.InferenceSession(data, so)


def ort_run(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime

    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    so = onnxruntime.SessionOptions()
    so.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(data, so, providers=["CPUExecutionProvider"]).run(
        None, feeds)


def optimized(model: onnx.ModelProto | bytes, level: Any = "all", **kwargs: Any):
    """``(graph, report)`` of ``optimize`` applied to a fresh import of ``model``."""
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    m = from_onnx(onnx.load_from_string(data))
    return optimize(m, level, **kwargs)


def op_counts(graph) -> Counter:
    return Counter(n.qualified_op for n in graph.nodes)


def assert_same_outputs(actual: list, expected: list, *, rtol: float = 1e-4, atol: float = 1e-5,
                        what: str = "") -> None:
    assert len(actual) == len(expected), what
    for a, b in zip(actual, expected):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
        assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != {b.dtype}"
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)
        else:
            np.testing.assert_array_equal(a, b, err_msg=what)


def check_rewrite(model: onnx.ModelProto, feeds: dict[str, np.ndarray], *,
                  fired: dict[str, int] | None = None, ops: dict[str, int] | None = None,
                  level: Any = OptLevel.ALL, rtol: float = 1e-4, atol: float = 1e-5,
                  use_ort: bool = True) -> pf.InferenceSession:
    """Optimize through a session; check rule counts, resulting ops and outputs (vs the
    unoptimized session and ONNX Runtime). Returns the optimized session."""
    base = session(model, OptLevel.NONE).run(None, feeds)
    sess = session(model, level)
    got = sess.run(None, feeds)
    report = sess.optimization_report
    for rule, n in (fired or {}).items():
        assert report.rules_fired.get(rule, 0) == n, \
            f"{rule} fired {report.rules_fired.get(rule, 0)}x, expected {n}: {report.summary()}"
    counts = op_counts(sess.graph)
    for op, n in (ops or {}).items():
        assert counts.get(op, 0) == n, f"{op}: {counts.get(op, 0)} != {n} in {dict(counts)}"
    assert_same_outputs(got, base, rtol=rtol, atol=atol, what="optimized vs unoptimized")
    if use_ort:
        assert_same_outputs(got, ort_run(model, feeds), rtol=rtol, atol=atol,
                            what="optimized vs onnxruntime")
    return sess


def refusals(model: onnx.ModelProto, rule: str, level: Any = "all", **kwargs: Any) -> list[str]:
    """The reasons ``rule`` gave for not firing while optimizing ``model``."""
    _, report = optimized(model, level, trace=True, **kwargs)
    return [e.reason for e in report.trace.why(rule)]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randn(*shape: int, seed: int = 0, dtype: Any = np.float32) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)
