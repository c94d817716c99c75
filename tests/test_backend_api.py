"""pyflame_rt.backend: the onnx.backend API (prepare / run_model / run_node)."""

from __future__ import annotations

import numpy as np
import pytest
from models_util import mlp_model
from onnx import helper

import pyflame_rt
import pyflame_rt.backend as backend


def test_prepare_runs_positional_named_and_single_inputs():
    rep = backend.prepare(mlp_model(), "CPU")
    x = np.ones((2, 4), np.float32)
    by_list = rep.run([x])
    by_dict = rep.run({"x": x})
    single = rep.run(x)
    for a, b, c in zip(by_list, by_dict, single):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    with pytest.raises(pyflame_rt.InvalidArgumentError, match="2 inputs but the model has 1"):
        rep.run([x, x])


def test_run_model_and_options():
    out = backend.run_model(mlp_model(), [np.ones((1, 4), np.float32)],
                            graph_optimization_level=pyflame_rt.OptLevel.NONE)
    assert out[0].shape == (1, 3)


def test_run_node():
    node = helper.make_node("Add", ["a", "b"], ["c"])
    a = np.arange(3, dtype=np.float32)
    (c,) = backend.run_node(node, [a, a])
    np.testing.assert_array_equal(c, a * 2)
    (d,) = backend.run_node(helper.make_node("Relu", ["x"], ["y"]), {"x": a - 1},
                            opset_version=14)
    np.testing.assert_array_equal(d, np.maximum(a - 1, 0))


def test_devices():
    assert backend.supports_device("CPU") and backend.supports_device("cpu:0")
    assert not backend.supports_device("CUDA")
    assert backend.is_compatible(mlp_model())
    with pytest.raises(pyflame_rt.InvalidArgumentError, match="device 'CUDA'"):
        backend.prepare(mlp_model(), "CUDA")
