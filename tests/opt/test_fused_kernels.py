"""The pyflame-domain kernels against the unfused ONNX subgraphs they replace, evaluated by
``onnx.reference`` (the oracle), plus their error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator
from opt_helpers import make_model, randn

from pyflame_rt.backends.cpu import fused
from pyflame_rt.ops import lookup


def _ref(nodes, feeds, opset=18):
    inputs = {k: (v.dtype, list(v.shape)) for k, v in feeds.items()}
    model = make_model(nodes, inputs, ["y"], opset=opset)
    return ReferenceEvaluator(model).run(None, feeds)[0]


ACTIVATION_NODES = {
    "Relu": lambda: [helper.make_node("Relu", ["z"], ["y"])],
    "LeakyRelu": lambda: [helper.make_node("LeakyRelu", ["z"], ["y"], alpha=0.3)],
    "Sigmoid": lambda: [helper.make_node("Sigmoid", ["z"], ["y"])],
    "Tanh": lambda: [helper.make_node("Tanh", ["z"], ["y"])],
    "HardSigmoid": lambda: [helper.make_node("HardSigmoid", ["z"], ["y"], alpha=0.3, beta=0.4)],
    "HardSwish": lambda: [helper.make_node("HardSwish", ["z"], ["y"])],
    "Clip": lambda: [helper.make_node("Clip", ["z", "lo", "hi"], ["y"])],
    "SiLU": lambda: [helper.make_node("Sigmoid", ["z"], ["s"]),
                     helper.make_node("Mul", ["z", "s"], ["y"])],
    "Gelu": lambda: [helper.make_node("Gelu", ["z"], ["y"])],
    "GeluTanh": lambda: [helper.make_node("Gelu", ["z"], ["y"], approximate="tanh")],
}
PARAMS = {"LeakyRelu": [0.3], "HardSigmoid": [0.3, 0.4], "Clip": [-0.5, 0.7]}


@pytest.mark.parametrize("activation", list(ACTIVATION_NODES))
def test_fused_matmul_activation_matches_the_unfused_graph(activation):
    a, b, c = randn(2, 3, 5), randn(2, 4, 5, seed=1), randn(4, seed=2)
    got = fused.fused_matmul(a, b, c, alpha=0.7, transB=1, activation=activation,
                             activation_params=PARAMS.get(activation))
    nodes = [helper.make_node("Transpose", ["b"], ["bt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["a", "bt"], ["m"]),
             helper.make_node("Mul", ["m", "alpha"], ["ma"]),
             helper.make_node("Add", ["ma", "c"], ["z"])] + ACTIVATION_NODES[activation]()
    feeds = {"a": a, "b": b, "c": c, "alpha": np.array(0.7, np.float32),
             "lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}
    used = {i for n in nodes for i in n.input}
    expected = _ref(nodes, {k: v for k, v in feeds.items() if k in used}, opset=20)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_conv_with_residual_and_activation(dtype):
    x, w, b = randn(2, 4, 5, 5, dtype=dtype), randn(6, 2, 3, 3, seed=1, dtype=dtype), \
        randn(6, seed=2, dtype=dtype)
    z = randn(2, 6, 3, 3, seed=3, dtype=dtype)
    got = fused.fused_conv(x, w, b, z, group=2, strides=[2, 2], pads=[1, 1, 1, 1],
                           activation="Relu")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=2, strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "r"], ["z"]), helper.make_node("Relu", ["z"], ["y"])]
    expected = _ref(nodes, {"x": x, "w": w, "b": b, "r": z})
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_fused_gemm_matches_gemm_then_activation():
    a, b, c = randn(3, 5), randn(4, 5, seed=1), randn(4, seed=2)
    got = fused.fused_gemm(a, b, c, alpha=0.5, beta=2.0, transB=1, activation="HardSwish")
    expected = _ref([helper.make_node("Gemm", ["a", "b", "c"], ["z"], alpha=0.5, beta=2.0,
                                      transB=1), helper.make_node("HardSwish", ["z"], ["y"])],
                    {"a": a, "b": b, "c": c})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_gelu_kernels_and_bias_gelu():
    x, bias = randn(3, 7) * 3, randn(7, seed=1)
    for approx in ("none", "tanh"):
        expected = _ref([helper.make_node("Gelu", ["x"], ["y"], approximate=approx)], {"x": x},
                        opset=20)
        np.testing.assert_allclose(fused.gelu(x, approximate=approx), expected, rtol=1e-5,
                                   atol=1e-6)
        expected = _ref([helper.make_node("Add", ["x", "b"], ["s"]),
                         helper.make_node("Gelu", ["s"], ["y"], approximate=approx)],
                        {"x": x, "b": bias}, opset=20)
        np.testing.assert_allclose(fused.bias_gelu(x, bias, approximate=approx), expected,
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="approximate"):
        fused.gelu(x, approximate="fast")


def test_skip_layernorm_outputs_normalized_sum_and_sum():
    x, skip, g, b, bias = randn(2, 3, 8), randn(2, 3, 8, seed=1), randn(8, seed=2), \
        randn(8, seed=3), randn(8, seed=4)

    class Ctx:
        noutputs = 2

    y, s = fused.skip_layer_normalization(x, skip, g, b, bias, epsilon=1e-6, _ctx=Ctx())
    expected = _ref([helper.make_node("Add", ["x", "k"], ["s0"]),
                     helper.make_node("Add", ["s0", "bias"], ["s"]),
                     helper.make_node("LayerNormalization", ["s", "g", "b"], ["y"],
                                      epsilon=1e-6)],
                    {"x": x, "k": skip, "bias": bias, "g": g, "b": b})
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s, x + skip + bias, rtol=1e-6)
    assert fused.skip_layer_normalization(x, skip, g).shape == x.shape


def _attention_reference(x, w, b, heads, scale, bias=None, keep=None, fill=-1e9):
    batch, seq, _ = x.shape
    width = w.shape[1] // 3
    d = width // heads
    qkv = (x.astype(np.float64) @ w + b).reshape(batch, seq, 3, heads, d)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    s = q @ k.transpose(0, 1, 3, 2) * scale
    if keep is not None:
        s = np.where(keep, s, fill)
    if bias is not None:
        s = s + bias
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ v).transpose(0, 2, 1, 3).reshape(batch, seq, width)


def test_attention_kernel_masks_biases_and_causality():
    x, w, b = randn(2, 5, 8), randn(8, 24, seed=1) * 0.3, randn(24, seed=2) * 0.1
    bias = np.zeros((2, 1, 1, 5), np.float32)
    bias[0, ..., 3:] = -1e4
    tril = np.tril(np.ones((5, 5), bool))
    cases = [
        ({}, {}),
        ({"attention_bias": bias}, {"bias": bias}),
        ({"unidirectional": 1, "mask_filter_value": -1e9}, {"keep": tril}),
        ({"mask": ~tril, "mask_keep": 0, "mask_filter_value": -1e9}, {"keep": tril}),
        ({"mask": tril, "mask_filter_value": -1e9, "attention_bias": bias},
         {"keep": tril, "bias": bias}),
    ]
    for kwargs, ref_kwargs in cases:
        got = fused.attention(x, w, b, kwargs.pop("attention_bias", None), kwargs.pop("mask", None),
                              num_heads=2, scale=0.3, **kwargs)
        expected = _attention_reference(x, w, b, 2, 0.3, **ref_kwargs)
        assert got.dtype == np.float32 and got.shape == (2, 5, 8)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    default_scale = fused.attention(x, w, b, num_heads=2)
    np.testing.assert_allclose(default_scale, _attention_reference(x, w, b, 2, 1 / math.sqrt(4)),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="num_heads"):
        fused.attention(x, w, b)
    with pytest.raises(ValueError, match="not \\[B, S, hidden\\]"):
        fused.attention(x, w[:, :20], num_heads=2)


def test_fused_kernels_are_registered_in_the_pyflame_domain():
    for op in ("FusedConv", "FusedGemm", "FusedMatMul", "Gelu", "BiasGelu",
               "LayerNormalization", "SkipLayerNormalization", "Attention"):
        kdef = lookup(op, "pyflame", 1)
        assert kdef.domain == "pyflame" and kdef.doc.startswith("pyflame ")


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown fused activation 'Swoosh'"):
        fused.apply_activation(np.zeros(3, np.float32), "Swoosh", [])


def test_fused_kernels_do_not_modify_their_inputs():
    a, b, c = randn(3, 4), randn(4, 5, seed=1), randn(5, seed=2)
    copies = [a.copy(), b.copy(), c.copy()]
    fused.fused_matmul(a, b, c, activation="Relu")
    fused.fused_gemm(a, b, c, activation="Sigmoid")
    fused.gelu(a)
    for arr, orig in zip((a, b, c), copies):
        np.testing.assert_array_equal(arr, orig)
