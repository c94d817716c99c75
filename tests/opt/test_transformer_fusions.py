"""GELU, LayerNormalization, SkipLayerNormalization and attention fusions on hand-built graphs
(the exported-model versions are in test_models.py)."""

from __future__ import annotations

import math

import numpy as np
from onnx import helper
from opt_helpers import check_rewrite, make_model, op_counts, randn, refusals

F32 = np.float32


def _c(v):
    return np.array(v, F32)


def _gelu_erf_nodes(x="x", out="y", div=True):
    arg = helper.make_node("Div", [x, "sqrt2"], ["a"]) if div else \
        helper.make_node("Mul", ["inv_sqrt2", x], ["a"])
    return [arg, helper.make_node("Erf", ["a"], ["e"]),
            helper.make_node("Add", ["one", "e"], ["e1"]),
            helper.make_node("Mul", [x, "half"], ["xh"]),
            helper.make_node("Mul", ["e1", "xh"], [out])]


GELU_CONSTS = {"sqrt2": _c(math.sqrt(2)), "inv_sqrt2": _c(1 / math.sqrt(2)), "one": _c(1.0),
               "half": _c(0.5)}


def test_gelu_erf_forms_fuse():
    for div in (True, False):
        inits = {k: v for k, v in GELU_CONSTS.items() if k != ("inv_sqrt2" if div else "sqrt2")}
        model = make_model(_gelu_erf_nodes(div=div), {"x": (F32, [2, 8])}, ["y"], inits)
        check_rewrite(model, {"x": randn(2, 8) * 3}, fired={"fuse_gelu_erf": 1},
                      ops={"pyflame::Gelu": 1})


def test_gelu_tanh_form_fuses():
    nodes = [helper.make_node("Pow", ["x", "three"], ["x3"]),
             helper.make_node("Mul", ["c", "x3"], ["cx3"]),
             helper.make_node("Add", ["x", "cx3"], ["inner"]),
             helper.make_node("Mul", ["inner", "k"], ["arg"]),
             helper.make_node("Tanh", ["arg"], ["t"]),
             helper.make_node("Add", ["t", "one"], ["t1"]),
             helper.make_node("Mul", ["half", "x"], ["xh"]),
             helper.make_node("Mul", ["xh", "t1"], ["y"])]
    inits = {"three": _c(3.0), "c": _c(0.044715), "k": _c(math.sqrt(2 / math.pi)),
             "one": _c(1.0), "half": _c(0.5)}
    model = make_model(nodes, {"x": (F32, [2, 8])}, ["y"], inits)
    check_rewrite(model, {"x": randn(2, 8) * 3}, fired={"fuse_gelu_tanh": 1},
                  ops={"pyflame::Gelu": 1})


def test_gelu_refused_for_a_wrong_constant():
    inits = dict(GELU_CONSTS, half=_c(0.4))
    model = make_model(_gelu_erf_nodes(), {"x": (F32, [2, 8])}, ["y"], inits)
    assert any("expected the constant 0.5, got 0.4" in r for r in
               refusals(model, "fuse_gelu_erf"))
    check_rewrite(model, {"x": randn(2, 8)}, ops={"Erf": 1})


def test_bias_gelu_fuses_add_and_gelu():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "b"], ["h"])]
    nodes += _gelu_erf_nodes("h")
    model = make_model(nodes, {"x": (F32, [2, 8])}, ["y"], {**GELU_CONSTS, "b": randn(8)})
    check_rewrite(model, {"x": randn(2, 8)}, fired={"fuse_bias_gelu": 1},
                  ops={"pyflame::BiasGelu": 1, "Relu": 1})
    bad = make_model(nodes, {"x": (F32, [2, 8])}, ["y"], {**GELU_CONSTS, "b": randn(2, 8)})
    assert "the bias is not a 1-D constant" in refusals(bad, "fuse_bias_gelu")


def _decomposed_ln(opset, *, square="pow", divide="div", gamma=True, beta=True, axes=(-1,)):
    reduce = (lambda i, o: helper.make_node("ReduceMean", [i, "axes"], [o])) if opset >= 18 else \
        (lambda i, o: helper.make_node("ReduceMean", [i], [o], axes=list(axes)))
    nodes = [reduce("x", "mean"), helper.make_node("Sub", ["x", "mean"], ["d"])]
    nodes.append(helper.make_node("Pow", ["d", "two"], ["sq"]) if square == "pow" else
                 helper.make_node("Mul", ["d", "d"], ["sq"]))
    nodes += [reduce("sq", "var"), helper.make_node("Add", ["var", "eps"], ["ve"]),
              helper.make_node("Sqrt", ["ve"], ["std"])]
    if divide == "div":
        nodes.append(helper.make_node("Div", ["d", "std"], ["n"]))
    else:
        nodes += [helper.make_node("Reciprocal", ["std"], ["rs"]),
                  helper.make_node("Mul", ["d", "rs"], ["n"])]
    last = "n"
    if gamma:
        nodes.append(helper.make_node("Mul", ["n", "gamma"], ["g"]))
        last = "g"
    if beta:
        nodes.append(helper.make_node("Add", [last, "beta"], ["bb"]))
        last = "bb"
    nodes.append(helper.make_node("Relu", [last], ["y"]))
    inits = {"two": _c(2.0), "eps": _c(1e-5), "gamma": randn(8, seed=1) + 1,
             "beta": randn(8, seed=2), "axes": np.array(list(axes), np.int64)}
    return make_model(nodes, {"x": (F32, [2, 3, 8])}, ["y"], inits, opset=opset)


def test_decomposed_layernorm_fuses_in_every_written_form():
    x = randn(2, 3, 8) * 2 + 1
    for opset, op in ((14, "pyflame::LayerNormalization"), (18, "LayerNormalization")):
        for kw in ({}, {"square": "mul"}, {"divide": "reciprocal"}, {"beta": False},
                   {"gamma": False, "beta": False}):
            model = _decomposed_ln(opset, **kw)
            check_rewrite(model, {"x": x}, fired={"fuse_layernorm": 1},
                          ops={op: 1, "Relu": 1, "ReduceMean": 0}, rtol=1e-4, atol=1e-5)


def test_layernorm_refused_over_another_axis():
    model = _decomposed_ln(14, axes=(1,))
    assert any("does not reduce (keepdims) the last axis only" in r
               for r in refusals(model, "fuse_layernorm"))
    check_rewrite(model, {"x": randn(2, 3, 8)}, ops={"ReduceMean": 2})


def _skip_ln_model(extra_use: bool):
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Add", ["r", "skip"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"],
                              epsilon=1e-6)]
    outputs = ["y"]
    if extra_use:
        nodes.append(helper.make_node("Neg", ["s"], ["z"]))
        outputs.append("z")
    return make_model(nodes, {"x": (F32, [2, 3, 8]), "skip": (F32, [2, 3, 8])}, outputs,
                      {"gamma": randn(8, seed=1), "beta": randn(8, seed=2)})


def test_skip_layernorm_fuses_and_keeps_the_sum_when_it_is_read():
    feeds = {"x": randn(2, 3, 8), "skip": randn(2, 3, 8, seed=3)}
    sess = check_rewrite(_skip_ln_model(False), feeds, fired={"fuse_skip_layernorm": 1},
                         ops={"pyflame::SkipLayerNormalization": 1, "Add": 0})
    (sln,) = [n for n in sess.graph.nodes if n.op_type == "SkipLayerNormalization"]
    assert len(sln.outputs) == 1
    sess = check_rewrite(_skip_ln_model(True), feeds, fired={"fuse_skip_layernorm": 1},
                         ops={"pyflame::SkipLayerNormalization": 1, "Add": 0, "Neg": 1})
    (sln,) = [n for n in sess.graph.nodes if n.op_type == "SkipLayerNormalization"]
    assert len(sln.outputs) == 2


def test_skip_layernorm_refused_when_the_add_broadcasts():
    model = _skip_ln_model(False)
    model.graph.input[1].type.tensor_type.shape.dim[0].dim_value = 1
    assert any("not known to have the same shape" in r
               for r in refusals(model, "fuse_skip_layernorm"))
    check_rewrite(model, {"x": randn(2, 3, 8), "skip": randn(1, 3, 8)}, ops={"Add": 1})


# -- attention ------------------------------------------------------------------------------------
def _attention_model(*, heads=2, dim=4, seq=5, batch=2, mask="bias", scale_on="scores",
                     packed=False, shared_k=False):
    hidden = heads * dim
    r = np.random.default_rng(7)
    inits = {"sh4": np.array([batch, seq, heads, dim], np.int64),
             "sh3": np.array([batch, seq, hidden], np.int64),
             "scale": _c(math.sqrt(dim))}
    nodes = []
    if packed:
        inits["wqkv"] = r.normal(size=(hidden, 3 * hidden)).astype(F32) * 0.3
        inits["bqkv"] = r.normal(size=3 * hidden).astype(F32) * 0.1
        inits["split"] = np.array([hidden] * 3, np.int64)
        nodes += [helper.make_node("MatMul", ["x", "wqkv"], ["pm"]),
                  helper.make_node("Add", ["pm", "bqkv"], ["p"]),
                  helper.make_node("Split", ["p", "split"], ["q", "k", "v"], axis=2)]
    else:
        for n in "qkv":
            inits[f"w{n}"] = r.normal(size=(hidden, hidden)).astype(F32) * 0.3
            inits[f"b{n}"] = r.normal(size=hidden).astype(F32) * 0.1
            nodes += [helper.make_node("MatMul", ["x", f"w{n}"], [f"{n}m"]),
                      helper.make_node("Add", [f"b{n}", f"{n}m"], [n])]
    for n in "qkv":
        nodes.append(helper.make_node("Reshape", [n, "sh4"], [f"{n}r"]))
    nodes += [helper.make_node("Transpose", ["qr"], ["qh"], perm=[0, 2, 1, 3]),
              helper.make_node("Transpose", ["kr"], ["kt"], perm=[0, 2, 3, 1]),
              helper.make_node("Transpose", ["vr"], ["vh"], perm=[0, 2, 1, 3])]
    if scale_on == "scores":
        nodes += [helper.make_node("MatMul", ["qh", "kt"], ["s0"]),
                  helper.make_node("Div", ["s0", "scale"], ["s1"])]
    else:  # scale q and k by the fourth root each, as SDPA's export does
        inits["qk_scale"] = _c(dim ** -0.25)
        nodes += [helper.make_node("Mul", ["qh", "qk_scale"], ["qs"]),
                  helper.make_node("Mul", ["kt", "qk_scale"], ["ks"]),
                  helper.make_node("MatMul", ["qs", "ks"], ["s1"])]
    inputs = {"x": (F32, [batch, seq, hidden])}
    if mask == "bias":
        inputs["bias"] = (F32, [batch, 1, 1, seq])
        nodes.append(helper.make_node("Add", ["s1", "bias"], ["s2"]))
    elif mask == "causal":
        inits["causal"] = np.tril(np.ones((seq, seq), bool)).reshape(1, 1, seq, seq)
        inits["fill"] = _c(-1e9)
        nodes.append(helper.make_node("Where", ["causal", "s1", "fill"], ["s2"]))
    else:
        nodes.append(helper.make_node("Identity", ["s1"], ["s2"]))
    nodes += [helper.make_node("Softmax", ["s2"], ["prob"], axis=-1),
              helper.make_node("MatMul", ["prob", "vh"], ["c"]),
              helper.make_node("Transpose", ["c"], ["ct"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ct", "sh3"], ["y"])]
    outputs = ["y"]
    if shared_k:
        nodes.append(helper.make_node("Neg", ["kt"], ["present"]))
        outputs.append("present")
    return make_model(nodes, inputs, outputs, inits)


def _feeds(mask="bias", batch=2, seq=5, hidden=8):
    feeds = {"x": randn(batch, seq, hidden)}
    if mask == "bias":
        b = np.zeros((batch, 1, 1, seq), F32)
        b[1, ..., -2:] = -10000.0
        feeds["bias"] = b
    return feeds


def test_attention_with_padding_bias_fuses_to_one_node():
    sess = check_rewrite(_attention_model(), _feeds(), fired={"fuse_attention": 1})
    assert op_counts(sess.graph) == {"pyflame::Attention": 1}
    (att,) = sess.graph.nodes
    assert att.attrs["num_heads"] == 2 and att.inputs[1].const_value.shape == (8, 24)


def test_causal_attention_with_packed_projection_becomes_unidirectional():
    sess = check_rewrite(_attention_model(mask="causal", packed=True), _feeds("causal"),
                         fired={"fuse_attention": 1})
    assert op_counts(sess.graph) == {"pyflame::Attention": 1}
    (att,) = sess.graph.nodes
    assert att.attrs.get("unidirectional") == 1 and len(att.inputs) == 3


def test_attention_with_scales_on_q_and_k_and_no_mask():
    sess = check_rewrite(_attention_model(mask="none", scale_on="qk"), _feeds("none"),
                         fired={"fuse_attention": 1})
    assert op_counts(sess.graph) == {"pyflame::Attention": 1}
    (att,) = sess.graph.nodes
    assert att.attrs["scale"] == np.float32(0.5) or abs(att.attrs["scale"] - 0.5) < 1e-6


def test_attention_refused_when_a_head_tensor_escapes():
    model = _attention_model(shared_k=True)
    reasons = refusals(model, "fuse_attention")
    assert any("'kt' inside the attention block is also read by Neg" in r for r in reasons)
    # The refused block's mask add + softmax still fuse, as BiasSoftmax.
    check_rewrite(model, _feeds(), ops={"Softmax": 0, "pyflame::BiasSoftmax": 1})


def test_attention_refused_for_cross_attention():
    model = _attention_model()
    # Key and value projections read another tensor.
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in ("wk", "wv"):
            node.input[0] = "mem"
    model.graph.input.append(helper.make_tensor_value_info("mem", 1, [2, 5, 8]))
    assert any("cross-attention" in r for r in refusals(model, "fuse_attention"))
    check_rewrite(model, {**_feeds(), "mem": randn(2, 5, 8, seed=4)},
                  ops={"Softmax": 0, "pyflame::BiasSoftmax": 1})
