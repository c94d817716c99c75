"""The kernels of backends/cpu/fused_extra.py against the unfused ONNX subgraphs they replace,
evaluated by ``onnx.reference`` (the oracle), in every float dtype the fusions accept."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator
from opt_helpers import make_model

from pyflame_rt.backends.cpu import fused_extra

FLOATS = [np.float32, np.float64, np.float16]
TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-10, 1e-12), np.float16: (3e-3, 3e-3)}


def _ref(nodes, feeds, opset=23):
    inputs = {k: (v.dtype, list(v.shape)) for k, v in feeds.items()}
    return ReferenceEvaluator(make_model(nodes, inputs, ["y"], opset=opset)).run(None, feeds)[0]


def _close(got, want, dtype):
    assert got.dtype == np.dtype(dtype) and got.shape == want.shape
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol,
                               atol=atol)


def _rand(*shape, dtype=np.float32, seed=0, scale=2.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_quick_gelu(dtype):
    x = _rand(3, 7, dtype=dtype) * dtype(4)
    x.flat[0] = dtype(-80)  # exp(1.702 * 80) overflows: the result must be -0, not NaN
    alpha = np.array(1.702, dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # the reference's own exp overflow
        want = _ref([helper.make_node("Mul", ["x", "a"], ["ax"]),
                     helper.make_node("Sigmoid", ["ax"], ["s"]),
                     helper.make_node("Mul", ["x", "s"], ["y"])], {"x": x, "a": alpha})
    before = x.copy()
    _close(fused_extra.quick_gelu(x, alpha=1.702), want, dtype)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", [-1, 1])
def test_rms_normalization_matches_the_onnx_op(dtype, axis):
    x = _rand(2, 3, 8, dtype=dtype)
    scale = _rand(*x.shape[axis % 3:], dtype=dtype, seed=1)
    want = _ref([helper.make_node("RMSNormalization", ["x", "s"], ["y"], axis=axis,
                                  epsilon=1e-5)], {"x": x, "s": scale})
    _close(fused_extra.rms_normalization(x, scale, axis=axis, epsilon=1e-5), want, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_bias_softmax(dtype):
    x = _rand(2, 3, 4, 5, dtype=dtype)
    b = _rand(2, 1, 1, 5, dtype=dtype, seed=1)
    for axis in (-1, 2):
        want = _ref([helper.make_node("Add", ["x", "b"], ["s"]),
                     helper.make_node("Softmax", ["s"], ["y"], axis=axis)], {"x": x, "b": b})
        _close(fused_extra.bias_softmax(x, b, axis=axis), want, dtype)
    with pytest.raises(ValueError, match="widens X"):
        fused_extra.bias_softmax(b, x)


def test_embed_layer_normalization_with_every_input():
    r = np.random.default_rng(3)
    word, pos, seg = (r.standard_normal((n, 8)).astype(np.float32) for n in (20, 6, 2))
    gamma, beta = r.standard_normal(8).astype(np.float32), r.standard_normal(8).astype(np.float32)
    ids = r.integers(-20, 20, (2, 4))
    types = r.integers(0, 2, (2, 4))
    pos_ids = np.array([[3, 2, 1, 0]])
    feeds = {"w": word, "p": pos, "g": seg, "ids": ids, "t": types, "pi": pos_ids,
             "gamma": gamma, "beta": beta}
    nodes = [helper.make_node("Gather", ["w", "ids"], ["we"]),
             helper.make_node("Gather", ["p", "pi"], ["pe"]),
             helper.make_node("Gather", ["g", "t"], ["te"]),
             helper.make_node("Add", ["we", "pe"], ["s0"]),
             helper.make_node("Add", ["s0", "te"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"],
                              epsilon=1e-12)]
    want = _ref(nodes, feeds)

    class Ctx:
        noutputs = 2

    y, s = fused_extra.embed_layer_normalization(ids, types, word, pos, seg, gamma, beta,
                                                 pos_ids, epsilon=1e-12, _ctx=Ctx())
    _close(y, want, np.float32)
    want_s = ReferenceEvaluator(make_model(nodes[:5], {k: (v.dtype, list(v.shape)) for k, v in
                                                       feeds.items() if k not in ("gamma",
                                                                                  "beta")},
                                           ["s"], opset=23)).run(None, {
        k: v for k, v in feeds.items() if k not in ("gamma", "beta")})[0]
    _close(s, want_s, np.float32)
    # Without position_ids: the first seq rows of the table.
    y2 = fused_extra.embed_layer_normalization(ids, None, word, pos, None, gamma, beta,
                                               epsilon=1e-12)
    want2 = _ref([nodes[0], helper.make_node("Add", ["we", "p4"], ["s"]), nodes[5]],
                 {"w": word, "ids": ids, "p4": pos[:4], "gamma": gamma, "beta": beta})
    _close(y2, want2, np.float32)
    with pytest.raises(ValueError, match="positions but only"):
        fused_extra.embed_layer_normalization(np.zeros((1, 9), np.int64), None, word, pos,
                                              None, gamma)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("activation,params,tail", [
    ("Relu", None, [helper.make_node("Relu", ["z"], ["y"])]),
    # (ONNX float attributes are float32: the fused node's parameter is that same value.)
    ("LeakyRelu", [float(np.float32(0.3))],
     [helper.make_node("LeakyRelu", ["z"], ["y"], alpha=0.3)]),
    ("", None, [helper.make_node("Identity", ["z"], ["y"])])])
def test_channel_affine_is_batchnorm_then_activation(dtype, activation, params, tail):
    x = _rand(2, 3, 4, 5, dtype=dtype)
    g, b, mean = (_rand(3, dtype=dtype, seed=s) for s in (1, 2, 3))
    var = (np.abs(_rand(3, dtype=dtype, seed=4)) + dtype(0.5)).astype(dtype)
    want = _ref([helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["z"]),
                 *tail], {"x": x, "g": g, "b": b, "m": mean, "v": var}, opset=17)
    s64 = g.astype(np.float64) / np.sqrt(var.astype(np.float64) + 1e-5)
    t64 = b.astype(np.float64) - mean.astype(np.float64) * s64
    got = fused_extra.channel_affine(x, s64.astype(dtype), t64.astype(dtype),
                                     activation=activation, activation_params=params)
    _close(got, want, dtype)
    with pytest.raises(ValueError, match="channels"):
        fused_extra.channel_affine(x, s64[:2].astype(dtype), t64.astype(dtype))
