"""The ONNX Attention op (opset 23) on q/k/v projections ==> pyflame.Attention, and the cases
it must leave to the ONNX kernel (each with its reason)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from opt_helpers import assert_same_outputs, check_rewrite, make_model, randn, refusals, session

F32 = np.float32
B, S, H, D = 2, 5, 2, 4
HID = H * D


def _model(*, mask=None, causal=0, packed=False, q_heads=H, kv_heads=H, scale=None,
           other_x=False, opset=23, past=False, softcap=None):
    r = np.random.default_rng(11)
    inits, nodes = {}, []
    inputs = {"x": (F32, [B, S, HID])}
    if packed:
        inits["wqkv"] = (r.normal(size=(HID, 3 * HID)) * 0.3).astype(F32)
        inits["bqkv"] = (r.normal(size=3 * HID) * 0.1).astype(F32)
        nodes += [helper.make_node("MatMul", ["x", "wqkv"], ["pm"]),
                  helper.make_node("Add", ["pm", "bqkv"], ["p"]),
                  helper.make_node("Split", ["p"], ["q", "k", "v"], axis=-1, num_outputs=3)]
    else:
        kv_width = HID * kv_heads // q_heads
        for n in "qkv":
            width = HID if n == "q" else kv_width
            src = "x2" if other_x and n != "q" else "x"
            inits[f"w{n}"] = (r.normal(size=(HID, width)) * 0.3).astype(F32)
            inits[f"b{n}"] = (r.normal(size=width) * 0.1).astype(F32)
            nodes += [helper.make_node("MatMul", [src, f"w{n}"], [f"{n}m"]),
                      helper.make_node("Add", [f"{n}m", f"b{n}"], [n])]
        if other_x:
            inputs["x2"] = (F32, [B, S, HID])
    att_in = ["q", "k", "v"]
    if mask is not None:
        if isinstance(mask, str):  # fed at run time
            inputs["mask"] = (np.bool_, [S, S])
        else:
            inits["mask"] = mask
        att_in.append("mask")
    if past:
        att_in = ["q", "k", "v", "mask" if mask is not None else "", "past_k", "past_v"]
        inputs["past_k"] = (F32, [B, kv_heads, 3, D])
        inputs["past_v"] = (F32, [B, kv_heads, 3, D])
    attrs = {"q_num_heads": q_heads, "kv_num_heads": kv_heads, "is_causal": causal}
    if scale is not None:
        attrs["scale"] = scale
    if softcap is not None:
        attrs["softcap"] = softcap
    nodes.append(helper.make_node("Attention", att_in, ["att"], **attrs))
    nodes.append(helper.make_node("Relu", ["att"], ["y"]))
    return make_model(nodes, inputs, {"y": (F32, None)}, inits, opset=opset)


def _feeds(model):
    feeds = {}
    for i in model.graph.input:
        shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
        if i.type.tensor_type.elem_type == TensorProto.BOOL:
            feeds[i.name] = np.tril(np.ones(shape, bool))
        else:
            feeds[i.name] = randn(*shape, seed=len(feeds))
    return feeds


def _check(model, fired=1):
    feeds = _feeds(model)
    ops = {"pyflame::Attention": fired, "Attention": 1 - fired}
    sess = check_rewrite(model, feeds, fired={"fuse_onnx_attention": fired}, ops=ops,
                         use_ort=False)
    # The ONNX reference evaluator is the oracle for opset-23 Attention.
    expected = ReferenceEvaluator(model).run(None, feeds)
    assert_same_outputs(sess.run(None, feeds), expected, rtol=1e-4, atol=1e-5)
    return sess


def test_plain_self_attention_fuses():
    sess = _check(_model())
    node = next(n for n in sess.graph.nodes if n.op_type == "Attention")
    assert node.attrs["num_heads"] == H and node.inputs[0].name == "x"
    assert node.outputs[0].name == "att"  # the replaced value's name


@pytest.mark.parametrize("packed", [False, True])
def test_causal_attention_fuses_as_unidirectional(packed):
    sess = _check(_model(causal=1, packed=packed, scale=0.3))
    node = next(n for n in sess.graph.nodes if n.op_type == "Attention")
    assert node.attrs["unidirectional"] == 1 and node.attrs["scale"] == pytest.approx(0.3)


def test_constant_bool_and_float_masks_fuse():
    keep = np.ones((B, 1, 1, S), bool)
    keep[1, ..., -2:] = False
    _check(_model(mask=keep))
    bias = np.where(keep, 0.0, -10000.0).astype(F32)
    _check(_model(mask=bias))


@pytest.mark.parametrize("kwargs,reason", [
    ({"mask": "fed"}, "attn_mask is fed at run time"),
    ({"q_heads": 2, "kv_heads": 1}, "GQA/MQA"),
    ({"other_x": True}, "cross-attention is not fused"),
    ({"softcap": 5.0}, "softcap is set"),
    ({"mask": np.zeros((S, S), bool)}, "masks a whole query row"),
    ({"past": True}, "KV cache is not fused"),
])
def test_refused_cases_keep_the_onnx_op(kwargs, reason):
    model = _model(**kwargs)
    assert any(reason in r for r in refusals(model, "fuse_onnx_attention")), \
        refusals(model, "fuse_onnx_attention")
    feeds = _feeds(model)
    got = session(model).run(None, feeds)
    assert_same_outputs(got, ReferenceEvaluator(model).run(None, feeds), rtol=1e-4, atol=1e-5)


def test_four_d_graph_inputs_are_refused():
    nodes = [helper.make_node("Attention", ["q", "k", "v"], ["o"]),
             helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["ot", "shape"], ["y"])]
    model = make_model(nodes, {n: (F32, [B, H, S, D]) for n in "qkv"}, {"y": (F32, None)},
                       {"shape": np.array([B, S, HID], np.int64)}, opset=23)
    assert any("'q' is not computed from a head reshape" in r
               for r in refusals(model, "fuse_onnx_attention"))
    bare = make_model(nodes[:1], {n: (F32, [B, H, S, D]) for n in "qkv"}, {"o": (F32, None)},
                      opset=23)
    assert any("not only transposed back" in r for r in refusals(bare, "fuse_onnx_attention"))


def _sdpa_module(torch, causal):
    class SelfAttention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = torch.nn.Linear(32, 96)
            self.out = torch.nn.Linear(32, 32)

        def forward(self, x):
            b, s, _ = x.shape
            q, k, v = self.qkv(x).split(32, -1)

            def heads(t):
                return t.view(b, s, 4, 8).transpose(1, 2)

            y = torch.nn.functional.scaled_dot_product_attention(heads(q), heads(k), heads(v),
                                                                 is_causal=causal)
            return self.out(y.transpose(1, 2).reshape(b, s, 32))

    return SelfAttention()


@pytest.mark.parametrize("causal", [False, True])
def test_dynamo_exported_sdpa_at_opset_23_fuses(causal):
    torch = pytest.importorskip("torch", reason="the exporter test needs PyTorch")
    pytest.importorskip("onnxscript", reason="torch's dynamo exporter needs onnxscript")
    import warnings

    torch.manual_seed(0)
    module = _sdpa_module(torch, causal).eval()
    x = torch.randn(2, 5, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.onnx.export(module, (x,), dynamo=True, opset_version=23,
                                  verbose=False).model_proto
    assert any(n.op_type == "Attention" for n in model.graph.node)
    feeds = {model.graph.input[0].name: x.numpy()}
    sess = check_rewrite(model, feeds, fired={"fuse_onnx_attention": 1},
                         ops={"pyflame::Attention": 1, "Attention": 0, "Transpose": 0},
                         use_ort=False)
    expected = ReferenceEvaluator(model).run(None, feeds)
    assert_same_outputs(sess.run(None, feeds), expected, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(sess.run(None, feeds)[0], module(x).numpy(), rtol=1e-4,
                                   atol=1e-5)
