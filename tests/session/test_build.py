"""Session build: the memory a built session keeps for its weights.

A session built from a file must hold each weight once: the loader reads it into one array,
the optimizer and the plan keep using that array (the plan hands kernels read-only views of
the same memory). Checked with ``tracemalloc`` and ``np.shares_memory``; outputs are compared
with ``onnx.reference``.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import pyflame_rt as rt
import pyflame_rt.io.onnx as onnx_io

N = 512  # 1 MiB float32 matrices


def _mlp(tmp_path):
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((N, N)).astype(np.float32) / 16
    w2 = rng.standard_normal((N, N)).astype(np.float32) / 16
    nodes = [helper.make_node("MatMul", ["X", "W1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "W2"], ["Y"])]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["B", N])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["B", N])],
        [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)],
                              ir_version=10)
    path = tmp_path / "mlp.onnx"
    path.write_bytes(model.SerializeToString())
    return model, str(path), w1.nbytes + w2.nbytes


@pytest.mark.parametrize("split", [True, False], ids=["split-load", "whole-load"])
def test_a_built_session_holds_each_weight_once(tmp_path, monkeypatch, split: bool) -> None:
    model, path, weight_bytes = _mlp(tmp_path)
    monkeypatch.setattr(onnx_io, "MIN_SPLIT_FILE_BYTES", 0 if split else 1 << 62)
    rt.InferenceSession(path)  # imports, caches and lazy set-up outside the measurement
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        sess = rt.InferenceSession(path)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Kept: the weights once (plus small bookkeeping), not a second packed or copied set.
    assert kept < 1.25 * weight_bytes, (kept, weight_bytes)
    if split:
        # Loading never needed a second copy of the weights either.
        assert peak < 1.35 * weight_bytes, (peak, weight_bytes)

    inits = {name: v.const_value for name, v in sess.graph.initializers.items()
             if isinstance(v.const_value, np.ndarray) and v.const_value.nbytes >= N * N}
    assert len(inits) == 2
    plan_arrays = [a for a in sess._plan.template if isinstance(a, np.ndarray)]
    for name, arr in inits.items():
        shared = [a for a in plan_arrays if np.shares_memory(a, arr)]
        assert len(shared) == 1, f"{name}: the plan should feed the very same memory"
        assert not shared[0].flags.writeable  # kernels and callers cannot change the model

    x = np.random.default_rng(1).standard_normal((3, N)).astype(np.float32)
    (want,) = ReferenceEvaluator(model).run(None, {"X": x})
    (got,) = sess.run(None, {"X": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
