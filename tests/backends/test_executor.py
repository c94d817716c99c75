"""The CPU plan: slots, freeing after last use, debug printing, backend interface."""

from __future__ import annotations

import numpy as np
import pytest
from models_util import mlp_model

import pyflame_rt as ort
from pyflame_rt.backends.base import CompileOptions, available_backends, get_backend
from pyflame_rt.backends.cpu import CPUExecutionProvider
from pyflame_rt.backends.cpu.executor import compile_plan
from pyflame_rt.ir import Graph, Value
from pyflame_rt.types import DType, TensorInfo


def _chain_graph(n: int = 4) -> Graph:
    g = Graph("chain")
    v = g.add_input(Value("x", TensorInfo(DType.FLOAT, ("N", 2))))
    for i in range(n):
        v = g.make_node("Abs" if i % 2 else "Neg", [v]).outputs[0]
    g.add_output(v)
    return g


def test_values_are_freed_after_their_last_use():
    plan = compile_plan(_chain_graph(4))
    assert len(plan.steps) == 4
    # Each intermediate is freed by the step that reads it last; the graph output never is.
    freed = [s for step in plan.steps for s in step.frees]
    out_slot = plan.output_slots[0]
    assert out_slot not in freed
    assert len(freed) == 3
    result = plan.run({"x": np.array([[1.0, -1.0]], np.float32)})
    np.testing.assert_array_equal(result[0], [[1.0, 1.0]])  # |-|-x|| = |x|


def test_unused_outputs_are_dropped_right_away():
    g = Graph("split")
    x = g.add_input(Value("x", TensorInfo(DType.FLOAT, (4,))))
    split = g.make_node("Split", [x], num_outputs=2, attrs={"axis": 0}, name="split")
    g.add_output(split.outputs[0])
    plan = compile_plan(g)
    assert plan.steps[0].frees == (plan.slot_of[id(split.outputs[1])],)
    np.testing.assert_array_equal(plan.run({"x": np.arange(4, dtype=np.float32)})[0], [0, 1])


def test_debug_env_prints_every_node(monkeypatch, capsys):
    monkeypatch.setenv("PYFLAME_RT_DEBUG", "1")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.OptLevel.NONE  # the model's own five nodes
    sess = ort.InferenceSession(mlp_model().SerializeToString(), opts)
    sess.run(None, {"x": np.ones((2, 4), np.float32)})
    err = capsys.readouterr().err
    assert err.count("[pyflame_rt]") == 5
    assert "Gemm 'fc1': (float32[2, 4], float32[8, 4], float32[8]) -> (float32[2, 8])" in err


def test_backend_interface():
    assert "CPUExecutionProvider" in available_backends()
    assert get_backend("CPUExecutionProvider") is CPUExecutionProvider
    backend = CPUExecutionProvider()
    backend.initialize(CompileOptions(intra_op_num_threads=1))
    g = _chain_graph(2)
    assert all(backend.supports_op(n, 17) for n in g.nodes)
    plan = backend.compile(g)
    out = backend.execute(plan, {"x": np.array([[2.0, -3.0]], np.float32)})
    np.testing.assert_array_equal(out[0], [[2.0, 3.0]])
    info = backend.memory_info()
    assert info.constant_bytes == 0
    backend.shutdown()


def test_unsupported_nodes_are_all_listed():
    g = Graph("bad")
    x = g.add_input(Value("x", TensorInfo(DType.FLOAT, (2,))))
    a = g.make_node("NoSuchOpA", [x])
    b = g.make_node("NoSuchOpB", [a.outputs[0]])
    g.add_output(b.outputs[0])
    with pytest.raises(ort.UnsupportedOperatorError, match="(?s)2 operator.*NoSuchOpA.*NoSuchOpB"):
        CPUExecutionProvider().compile(g)


def test_plan_is_shared_safely_between_threads():
    import concurrent.futures

    sess = ort.InferenceSession(mlp_model().SerializeToString())
    xs = [np.random.default_rng(i).standard_normal((i % 5 + 1, 4)).astype(np.float32)
          for i in range(40)]
    expected = [sess.run(["y"], {"x": x})[0] for x in xs]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda x: sess.run(["y"], {"x": x})[0], xs))
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
