"""Conv/Gemm/MatMul fusions: BatchNormalization, bias/scale, Pad, activations, residual Add,
MatMul+Add -> Gemm, transposes and scales into FusedMatMul."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from opt_helpers import check_rewrite, make_model, op_counts, randn, refusals

F32 = np.float32
X = {"x": (F32, [2, 3, 6, 6])}


def _conv_inits(seed=0, bias=True):
    inits = {"w": randn(4, 3, 3, 3, seed=seed)}
    if bias:
        inits["b"] = randn(4, seed=seed + 1)
    return inits


def _bn_inits(seed=5):
    r = np.random.default_rng(seed)
    return {"scale": r.uniform(0.5, 1.5, 4).astype(F32), "bias": r.normal(size=4).astype(F32),
            "mean": r.normal(size=4).astype(F32), "var": r.uniform(0.5, 2, 4).astype(F32)}


def test_conv_batchnorm_folds_into_the_conv_weights():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"],
                              epsilon=1e-3)]
    model = make_model(nodes, X, ["y"], {**_conv_inits(), **_bn_inits()})
    check_rewrite(model, {"x": randn(2, 3, 6, 6)}, fired={"fuse_conv_bn": 1},
                  ops={"Conv": 1, "BatchNormalization": 0}, level="basic")
    no_bias = make_model([helper.make_node("Conv", ["x", "w"], ["c"]), nodes[1]], X, ["y"],
                         {**_conv_inits(bias=False), **_bn_inits()})
    check_rewrite(no_bias, {"x": randn(2, 3, 6, 6)}, fired={"fuse_conv_bn": 1}, level="basic")


def test_conv_batchnorm_refused_for_shared_or_non_constant_weights():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Conv", ["x", "w"], ["c2"], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"])]
    model = make_model(nodes, X, ["y", "c2"], {**_conv_inits(bias=False), **_bn_inits()})
    assert any("weight is shared" in r for r in refusals(model, "fuse_conv_bn"))
    check_rewrite(model, {"x": randn(2, 3, 6, 6)}, ops={"BatchNormalization": 1})
    dyn = make_model(nodes[:1] + nodes[2:], {**X, "w": (F32, [4, 3, 3, 3])}, ["y"],
                     _bn_inits())
    assert any("weight is not a constant" in r for r in refusals(dyn, "fuse_conv_bn"))


def test_conv_mul_and_add_by_per_channel_constants_fold():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]),
             helper.make_node("Mul", ["c", "s"], ["m"]),
             helper.make_node("Add", ["k", "m"], ["y"])]
    model = make_model(nodes, X, ["y"], {**_conv_inits(), "s": randn(4, 1, 1, seed=3),
                                         "k": randn(1, 4, 1, 1, seed=4)})
    check_rewrite(model, {"x": randn(2, 3, 6, 6)}, fired={"fuse_conv_mul": 1, "fuse_conv_add": 1},
                  ops={"Conv": 1}, level="basic")
    # Not per channel: a full-size constant would change the math.
    bad = make_model(nodes[:2] + [helper.make_node("Relu", ["m"], ["y"])], X, ["y"],
                     {**_conv_inits(), "s": randn(4, 4, 4, seed=3)})
    assert any("does not broadcast per output channel" in r
               for r in refusals(bad, "fuse_conv_mul"))
    check_rewrite(bad, {"x": randn(2, 3, 6, 6)}, ops={"Mul": 1})


def test_pad_folds_into_conv_pads_unless_it_pads_channels():
    nodes = [helper.make_node("Pad", ["x", "p"], ["xp"]),
             helper.make_node("Conv", ["xp", "w", "b"], ["y"], pads=[0, 1, 0, 1])]
    model = make_model(nodes, X, ["y"], {**_conv_inits(),
                                         "p": np.array([0, 0, 1, 2, 0, 0, 1, 0], np.int64)})
    sess = check_rewrite(model, {"x": randn(2, 3, 6, 6)}, fired={"fuse_pad_conv": 1},
                         ops={"Pad": 0}, level="basic")
    assert list(sess.graph.nodes[0].attrs["pads"]) == [1, 3, 1, 1]
    bad = make_model(nodes, X, ["y"], {**_conv_inits(),
                                       "p": np.array([0, 1, 0, 0, 0, 0, 0, 0], np.int64)})
    bad.graph.node[1].input[1] = "w2"
    bad.graph.initializer.append(helper.make_tensor("w2", 1, [4, 4, 3, 3],
                                                    randn(4, 4, 3, 3).reshape(-1)))
    assert any("pads the batch or channel dim" in r for r in refusals(bad, "fuse_pad_conv"))


ACTS = [
    (helper.make_node("Relu", ["c"], ["y"]), {}, "fuse_conv_relu"),
    (helper.make_node("LeakyRelu", ["c"], ["y"], alpha=0.2), {}, "fuse_conv_leakyrelu"),
    (helper.make_node("Sigmoid", ["c"], ["y"]), {}, "fuse_conv_sigmoid"),
    (helper.make_node("Tanh", ["c"], ["y"]), {}, "fuse_conv_tanh"),
    (helper.make_node("HardSigmoid", ["c"], ["y"], alpha=0.3, beta=0.4), {},
     "fuse_conv_hardsigmoid"),
    (helper.make_node("HardSwish", ["c"], ["y"]), {}, "fuse_conv_hardswish"),
    (helper.make_node("Clip", ["c", "lo", "hi"], ["y"]),
     {"lo": np.array(0.0, F32), "hi": np.array(6.0, F32)}, "fuse_conv_clip"),
    (helper.make_node("Clip", ["c", "", "hi"], ["y"]), {"hi": np.array(0.5, F32)},
     "fuse_conv_clip"),
]


@pytest.mark.parametrize("act,inits,rule", ACTS, ids=[a[2] + str(i) for i, a in enumerate(ACTS)])
def test_conv_activation_becomes_fused_conv(act, inits, rule):
    model = make_model([helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                        act], X, ["y"], {**_conv_inits(), **inits})
    check_rewrite(model, {"x": randn(2, 3, 6, 6)}, fired={rule: 1},
                  ops={"pyflame::FusedConv": 1, "Conv": 0})


def test_silu_and_gemm_activations_fuse():
    silu = make_model([helper.make_node("Conv", ["x", "w", "b"], ["c"]),
                       helper.make_node("Sigmoid", ["c"], ["s"]),
                       helper.make_node("Mul", ["s", "c"], ["y"])], X, ["y"], _conv_inits())
    check_rewrite(silu, {"x": randn(2, 3, 6, 6)}, fired={"fuse_conv_silu": 1},
                  ops={"pyflame::FusedConv": 1})
    gemm = make_model([helper.make_node("Gemm", ["a", "w", "b"], ["g"], transB=1, alpha=0.5),
                       helper.make_node("Relu", ["g"], ["y"])], {"a": (F32, [3, 5])}, ["y"],
                      {"w": randn(4, 5), "b": randn(4, seed=2)})
    check_rewrite(gemm, {"a": randn(3, 5)}, fired={"fuse_gemm_relu": 1},
                  ops={"pyflame::FusedGemm": 1})


def test_activation_refused_when_the_conv_output_is_used_elsewhere():
    model = make_model([helper.make_node("Conv", ["x", "w", "b"], ["c"]),
                        helper.make_node("Relu", ["c"], ["y"]),
                        helper.make_node("Neg", ["c"], ["z"])], X, ["y", "z"], _conv_inits())
    assert any("used by Neg" in r and "outside the pattern" in r
               for r in refusals(model, "fuse_conv_relu"))
    check_rewrite(model, {"x": randn(2, 3, 6, 6)}, ops={"Conv": 1, "Relu": 1})
    clip = make_model([helper.make_node("Conv", ["x", "w", "b"], ["c"]),
                       helper.make_node("Clip", ["c", "lo"], ["y"])],
                      {**X, "lo": (F32, [])}, ["y"], _conv_inits())
    assert "the Clip min is not a constant scalar" in refusals(clip, "fuse_conv_clip")


def test_residual_add_and_relu_fuse_into_one_conv():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["r", "c"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    inputs = {**X, "r": (F32, [2, 4, 6, 6])}
    model = make_model(nodes, inputs, ["y"], _conv_inits())
    check_rewrite(model, {"x": randn(2, 3, 6, 6), "r": randn(2, 4, 6, 6, seed=9)},
                  fired={"fuse_conv_add_sum": 1, "fuse_conv_relu": 1},
                  ops={"pyflame::FusedConv": 1})
    # A residual that broadcasts (here a per-row tensor) is not the Z input's shape.
    bcast = make_model(nodes, {**X, "r": (F32, [6, 1])}, ["y"], _conv_inits())
    assert any("shape is not known to equal" in r for r in refusals(bcast, "fuse_conv_add_sum"))
    check_rewrite(bcast, {"x": randn(2, 3, 6, 6), "r": randn(6, 1)})


# -- Gemm / FusedMatMul -------------------------------------------------------------------------
def test_2d_matmul_add_becomes_gemm_and_nd_becomes_fused_matmul():
    two_d = make_model([helper.make_node("MatMul", ["a", "w"], ["m"]),
                        helper.make_node("Add", ["bias", "m"], ["y"])],
                       {"a": (F32, [3, 5])}, ["y"], {"w": randn(5, 4), "bias": randn(4)})
    check_rewrite(two_d, {"a": randn(3, 5)}, fired={"fuse_matmul_add_gemm": 1}, ops={"Gemm": 1},
                  level="basic")
    three_d = make_model([helper.make_node("MatMul", ["a", "w"], ["m"]),
                          helper.make_node("Add", ["m", "bias"], ["y"])],
                         {"a": (F32, [2, 3, 5])}, ["y"], {"w": randn(5, 4), "bias": randn(4)})
    assert any("Gemm needs 2-D" in r for r in refusals(three_d, "fuse_matmul_add_gemm"))
    check_rewrite(three_d, {"a": randn(2, 3, 5)}, fired={"fuse_matmul_bias": 1},
                  ops={"pyflame::FusedMatMul": 1})


def test_matmul_add_refused_when_the_bias_grows_the_output():
    model = make_model([helper.make_node("MatMul", ["a", "w"], ["m"]),
                        helper.make_node("Add", ["m", "bias"], ["y"])],
                       {"a": (F32, [3, 5])}, ["y"], {"w": randn(5, 4), "bias": randn(2, 3, 4)})
    assert any("rank 3" in r for r in refusals(model, "fuse_matmul_add_gemm"))
    assert any("larger shape" in r for r in refusals(model, "fuse_matmul_bias"))
    check_rewrite(model, {"a": randn(3, 5)}, ops={"MatMul": 1, "Add": 1})


def test_transposes_fold_into_gemm_and_fused_matmul():
    gemm = make_model([helper.make_node("Transpose", ["a"], ["at"], perm=[1, 0]),
                       helper.make_node("Gemm", ["at", "w", "b"], ["y"])],
                      {"a": (F32, [5, 3])}, ["y"], {"w": randn(5, 4), "b": randn(4)})
    sess = check_rewrite(gemm, {"a": randn(5, 3)}, fired={"fuse_transpose_gemm_a": 1},
                         ops={"Transpose": 0, "Gemm": 1}, level="basic")
    assert sess.graph.nodes[0].attrs["transA"] == 1
    mm = make_model([helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
                     helper.make_node("MatMul", ["q", "kt"], ["y"])],
                    {"q": (F32, [2, 3, 4]), "k": (F32, [2, 5, 4])}, ["y"])
    sess = check_rewrite(mm, {"q": randn(2, 3, 4), "k": randn(2, 5, 4, seed=1)},
                         fired={"fuse_matmul_transpose_b": 1}, ops={"pyflame::FusedMatMul": 1})
    assert sess.graph.nodes[0].attrs["transB"] == 1
    other = make_model([helper.make_node("Transpose", ["k"], ["kt"], perm=[2, 1, 0]),
                        helper.make_node("MatMul", ["q", "kt"], ["y"])],
                       {"q": (F32, [2, 3, 4]), "k": (F32, [3, 4, 2])}, ["y"])
    assert any("has perm=" in r for r in refusals(other, "fuse_matmul_transpose_b"))


def test_scales_fold_into_fused_matmul_alpha():
    model = make_model([helper.make_node("Mul", ["q", "s"], ["qs"]),
                        helper.make_node("MatMul", ["qs", "k"], ["m"]),
                        helper.make_node("Div", ["m", "d"], ["y"])],
                       {"q": (F32, [2, 3, 4]), "k": (F32, [2, 4, 5])}, ["y"],
                       {"s": np.array(0.5, F32), "d": np.array(4.0, F32)})
    sess = check_rewrite(model, {"q": randn(2, 3, 4), "k": randn(2, 4, 5, seed=1)},
                         fired={"fuse_matmul_scale": 2}, ops={"pyflame::FusedMatMul": 1})
    assert sess.graph.nodes[0].attrs["alpha"] == pytest.approx(0.125)
    vec = make_model([helper.make_node("MatMul", ["q", "k"], ["m"]),
                      helper.make_node("Mul", ["m", "s"], ["y"])],
                     {"q": (F32, [2, 3, 4]), "k": (F32, [2, 4, 5])}, ["y"],
                     {"s": randn(5)})
    assert any("not a scalar constant" in r for r in refusals(vec, "fuse_matmul_scale"))


def test_matmul_bias_and_gelu_chain_into_one_node():
    model = make_model([helper.make_node("MatMul", ["a", "w"], ["m"]),
                        helper.make_node("Add", ["m", "bias"], ["h"]),
                        helper.make_node("Gelu", ["h"], ["y"])],
                       {"a": (F32, [2, 3, 5])}, ["y"], {"w": randn(5, 4), "bias": randn(4)},
                       opset=20)
    sess = check_rewrite(model, {"a": randn(2, 3, 5)},
                         fired={"fuse_matmul_bias": 1, "fuse_matmul_onnxgelu": 1})
    assert op_counts(sess.graph) == {"pyflame::FusedMatMul": 1}


def test_scale_fusion_refused_in_float16():
    model = make_model([helper.make_node("MatMul", ["q", "k"], ["m"]),
                        helper.make_node("Mul", ["m", "s"], ["y"])],
                       {"q": (np.float16, [2, 3, 4]), "k": (np.float16, [2, 4, 5])}, ["y"],
                       {"s": np.array(0.5, np.float16)})
    assert any("16-bit floats would round differently" in r
               for r in refusals(model, "fuse_matmul_scale"))
    check_rewrite(model, {"q": randn(2, 3, 4, dtype=np.float16),
                          "k": randn(2, 4, 5, seed=1, dtype=np.float16)}, ops={"Mul": 1},
                  rtol=1e-3, atol=1e-3)


def test_per_channel_affine_after_batchnorm_folds_into_it():
    nodes = [helper.make_node("Concat", ["x", "x"], ["cat"], axis=1),
             helper.make_node("BatchNormalization", ["cat", "scale", "bias", "mean", "var"],
                              ["bn"]),
             helper.make_node("Mul", ["bn", "s"], ["m"]),
             helper.make_node("Add", ["m", "c"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    inits = {**{k: np.concatenate([v, v[:2]]) for k, v in _bn_inits().items()},
             "s": randn(6, 1, 1, seed=3), "c": randn(6, 1, 1, seed=4)}
    model = make_model(nodes, X, ["y"], inits)
    check_rewrite(model, {"x": randn(2, 3, 6, 6)}, fired={"fuse_bn_mul": 1, "fuse_bn_add": 1},
                  ops={"BatchNormalization": 1, "Mul": 0, "Add": 0}, level="basic")
    inits["s"] = randn(6, 6, seed=3)
    bad = make_model(nodes, X, ["y"], inits)
    assert any("does not broadcast per channel" in r for r in refusals(bad, "fuse_bn_mul"))
    check_rewrite(bad, {"x": randn(2, 3, 6, 6)}, ops={"Mul": 1})
