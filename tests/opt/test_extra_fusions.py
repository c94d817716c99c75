"""QuickGelu, RMSNorm, BiasSoftmax, EmbedLayerNorm and BatchNormalization+activation fusions:
each fires (count), keeps outputs (vs the unoptimized run and ONNX Runtime) and refuses with a
reason where it must."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from opt_helpers import check_rewrite, make_model, optimized, randn, refusals

F32 = np.float32


def _c(v, dtype=F32):
    return np.array(v, dtype)


# -- QuickGelu ---------------------------------------------------------------------------------
def _quick_gelu_model(alpha=1.702, dtype=F32, swap=False):
    inner = ["alpha", "x"] if swap else ["x", "alpha"]
    nodes = [helper.make_node("Mul", inner, ["ax"]),
             helper.make_node("Sigmoid", ["ax"], ["sg"]),
             helper.make_node("Mul", ["sg", "x"] if swap else ["x", "sg"], ["y"])]
    return make_model(nodes, {"x": (dtype, [3, 16])}, ["y"], {"alpha": _c(alpha, dtype)})


@pytest.mark.parametrize("swap", [False, True])
def test_quick_gelu_fuses(swap):
    sess = check_rewrite(_quick_gelu_model(swap=swap), {"x": randn(3, 16) * 4},
                         fired={"fuse_quick_gelu": 1}, ops={"pyflame::QuickGelu": 1, "Mul": 0})
    node = next(n for n in sess.graph.nodes if n.op_type == "QuickGelu")
    assert node.attrs["alpha"] == pytest.approx(1.702, rel=1e-6)


def test_quick_gelu_float16():
    check_rewrite(_quick_gelu_model(dtype=np.float16), {"x": randn(3, 16, dtype=np.float16)},
                  fired={"fuse_quick_gelu": 1}, rtol=2e-3, atol=2e-3)


def test_quick_gelu_refused_for_a_negative_factor():
    model = _quick_gelu_model(alpha=-1.0)
    assert any("-1 inside the Sigmoid is not positive" in r
               for r in refusals(model, "fuse_quick_gelu"))
    check_rewrite(model, {"x": randn(3, 16)}, ops={"Sigmoid": 1})


# -- RMSNorm -----------------------------------------------------------------------------------
def _rms_model(square="pow", divide="div", gamma=True, opset=17, axes=(-1,)):
    nodes = [helper.make_node("Pow", ["x", "two"], ["sq"]) if square == "pow" else
             helper.make_node("Mul", ["x", "x"], ["sq"])]
    if opset >= 18:
        nodes.append(helper.make_node("ReduceMean", ["sq", "axes"], ["ms"]))
    else:
        nodes.append(helper.make_node("ReduceMean", ["sq"], ["ms"], axes=list(axes)))
    nodes += [helper.make_node("Add", ["ms", "eps"], ["mse"]),
              helper.make_node("Sqrt", ["mse"], ["r"])]
    out = "n" if gamma else "y"
    if divide == "div":
        nodes.append(helper.make_node("Div", ["x", "r"], [out]))
    elif divide == "reciprocal":
        nodes += [helper.make_node("Reciprocal", ["r"], ["ir"]),
                  helper.make_node("Mul", ["x", "ir"], [out])]
    else:
        nodes += [helper.make_node("Div", ["one", "r"], ["ir"]),
                  helper.make_node("Mul", ["ir", "x"], [out])]
    inits = {"two": _c(2.0), "eps": _c(1e-6), "one": _c(1.0)}
    if opset >= 18:
        inits["axes"] = np.array(axes, np.int64)
    if gamma:
        nodes.append(helper.make_node("Mul", ["gamma", "n"], ["y"]))
        inits["gamma"] = randn(16, seed=3)
    return make_model(nodes, {"x": (F32, [2, 5, 16])}, ["y"], inits, opset=opset)


@pytest.mark.parametrize("square", ["pow", "mul"])
@pytest.mark.parametrize("divide", ["div", "reciprocal", "one_div"])
def test_rmsnorm_fuses_in_every_written_form(square, divide):
    check_rewrite(_rms_model(square, divide), {"x": randn(2, 5, 16)},
                  fired={"fuse_rmsnorm": 1},
                  ops={"pyflame::RMSNormalization": 1, "ReduceMean": 0, "Mul": 0})


def test_rmsnorm_without_scale_and_onnx_op_at_opset_23():
    check_rewrite(_rms_model(gamma=False), {"x": randn(2, 5, 16)}, fired={"fuse_rmsnorm": 1},
                  ops={"pyflame::RMSNormalization": 1})
    check_rewrite(_rms_model(opset=23), {"x": randn(2, 5, 16)}, fired={"fuse_rmsnorm": 1},
                  ops={"RMSNormalization": 1, "pyflame::RMSNormalization": 0})


def test_rmsnorm_refused_over_another_axis():
    model = _rms_model(axes=(1,))
    assert "the ReduceMean does not reduce (keepdims) the last axis only" in \
        refusals(model, "fuse_rmsnorm")
    check_rewrite(model, {"x": randn(2, 5, 16)}, ops={"ReduceMean": 1})


def test_rmsnorm_exported_from_pytorch():
    torch = pytest.importorskip("torch", reason="the exporter test needs PyTorch")
    import io
    import warnings

    class LlamaRMSNorm(torch.nn.Module):  # as in transformers' LLaMA
        def __init__(self, n):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(n))

        def forward(self, x):
            h = x.to(torch.float32)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
            return self.weight * h.to(x.dtype)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = LlamaRMSNorm(16)
            self.w = torch.nn.Parameter(torch.randn(16))
            self.lin = torch.nn.Linear(16, 16)

        def forward(self, x):
            h = self.lin(self.a(x))
            return h / torch.sqrt((h * h).mean(-1, keepdim=True) + 1e-5) * self.w

    torch.manual_seed(0)
    model = Model().eval()
    x = torch.randn(2, 5, 16)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), f, dynamo=False, opset_version=17, input_names=["x"])
    import onnx

    check_rewrite(onnx.load_from_string(f.getvalue()), {"x": x.numpy()},
                  fired={"fuse_rmsnorm": 2}, ops={"pyflame::RMSNormalization": 2})


# -- BiasSoftmax -------------------------------------------------------------------------------
def _bias_softmax_model(bias_shape=(2, 1, 1, 6), x_shape=(2, 3, 6, 6), axis=-1, opset=17):
    nodes = [helper.make_node("Add", ["mask", "x"], ["s"]),
             helper.make_node("Softmax", ["s"], ["y"], axis=axis)]
    return make_model(nodes, {"x": (F32, list(x_shape)), "mask": (F32, list(bias_shape))},
                      ["y"], opset=opset)


def _mask(shape):
    m = np.zeros(shape, F32)
    m[..., -2:] = -10000.0
    return m


def test_bias_softmax_fuses():
    feeds = {"x": randn(2, 3, 6, 6), "mask": _mask((2, 1, 1, 6))}
    check_rewrite(_bias_softmax_model(), feeds, fired={"fuse_bias_softmax": 1},
                  ops={"pyflame::BiasSoftmax": 1, "Add": 0, "Softmax": 0})
    # Softmax-11 over its last axis means the same thing.
    check_rewrite(_bias_softmax_model(opset=11, axis=3), feeds, fired={"fuse_bias_softmax": 1})


def test_bias_softmax_refused_when_the_add_widens_both_sides():
    model = _bias_softmax_model(bias_shape=(1, 3, 6), x_shape=(2, 1, 6))
    assert any("broadcasts both ways" in r for r in refusals(model, "fuse_bias_softmax"))
    check_rewrite(model, {"x": randn(2, 1, 6), "mask": randn(1, 3, 6)}, ops={"Softmax": 1})
    model = _bias_softmax_model(opset=11, axis=1)
    assert any("only the last axis is fused" in r for r in refusals(model, "fuse_bias_softmax"))


# -- EmbedLayerNorm ----------------------------------------------------------------------------
def _embed_model(*, segments=True, folded_positions=False, ln_axis=-1, extra_use=False):
    r = np.random.default_rng(5)
    inits = {"word": r.normal(size=(30, 16)).astype(F32),
             "pos": r.normal(size=(10, 16)).astype(F32),
             "seg": r.normal(size=(2, 16)).astype(F32),
             "pos_ids": np.arange(6, dtype=np.int64).reshape(1, 6),
             "gamma": r.normal(size=16).astype(F32), "beta": r.normal(size=16).astype(F32)}
    inputs = {"ids": (np.int64, [2, 6])}
    nodes = [helper.make_node("Gather", ["word", "ids"], ["we"])]
    if folded_positions:
        inits["pe"] = inits["pos"][:6][None]
    else:
        nodes.append(helper.make_node("Gather", ["pos", "pos_ids"], ["pe"]))
    nodes.append(helper.make_node("Add", ["we", "pe"], ["s0"]))
    last = "s0"
    if segments:
        inputs["types"] = (np.int64, [2, 6])
        nodes += [helper.make_node("Gather", ["seg", "types"], ["te"]),
                  helper.make_node("Add", ["s0", "te"], ["s1"])]
        last = "s1"
    nodes.append(helper.make_node("LayerNormalization", [last, "gamma", "beta"], ["y"],
                                  axis=ln_axis, epsilon=1e-12))
    outputs = ["y"]
    if extra_use:
        nodes.append(helper.make_node("Neg", [last], ["z"]))
        outputs.append("z")
    return make_model(nodes, inputs, outputs, inits)


def _embed_feeds(segments=True):
    r = np.random.default_rng(9)
    feeds = {"ids": r.integers(-30, 30, (2, 6)).astype(np.int64)}
    if segments:
        feeds["types"] = r.integers(0, 2, (2, 6)).astype(np.int64)
    return feeds


@pytest.mark.parametrize("segments", [True, False])
@pytest.mark.parametrize("folded", [True, False])
def test_embed_layernorm_fuses(segments, folded):
    sess = check_rewrite(_embed_model(segments=segments, folded_positions=folded),
                         _embed_feeds(segments), fired={"fuse_embed_layernorm": 1},
                         ops={"pyflame::EmbedLayerNormalization": 1, "Gather": 0, "Add": 0})
    node = next(n for n in sess.graph.nodes if n.op_type == "EmbedLayerNormalization")
    assert node.inputs[0].name == "ids"
    assert (node.inputs[1] is not None) == segments


def test_embed_layernorm_keeps_the_sum_when_it_is_read():
    check_rewrite(_embed_model(extra_use=True), _embed_feeds(),
                  fired={"fuse_embed_layernorm": 1},
                  ops={"pyflame::EmbedLayerNormalization": 1, "Neg": 1, "Add": 0})


def test_embed_layernorm_refused_for_another_axis():
    model = _embed_model(ln_axis=1)
    assert any("not the last axis only" in r for r in refusals(model, "fuse_embed_layernorm"))
    # (The Gather of the constant positions is folded away.)
    check_rewrite(model, _embed_feeds(), ops={"LayerNormalization": 1, "Gather": 2})


def test_embed_layernorm_rejects_out_of_range_ids():
    from opt_helpers import session

    import pyflame_rt as pf

    sess = session(_embed_model(), pf.OptLevel.ALL)
    feeds = _embed_feeds()
    feeds["ids"][0, 0] = 30
    with pytest.raises(pf.PyFlameRTError, match="input ids must lie in"):
        sess.run(None, feeds)


# -- BatchNormalization + activation -----------------------------------------------------------
def _bn_act_model(act="Relu", const_mean=True, dtype=F32, tail="Conv", **act_attrs):
    r = np.random.default_rng(2)
    c = 4
    inits = {"g": r.normal(size=c).astype(dtype), "b": r.normal(size=c).astype(dtype),
             "var": r.uniform(0.5, 2, size=c).astype(dtype),
             "w": r.normal(size=(3, c, 3, 3)).astype(dtype)}
    inputs = {"x": (dtype, [2, c, 6, 6])}
    if const_mean:
        inits["mean"] = r.normal(size=c).astype(dtype)
    else:
        inputs["mean"] = (dtype, [c])
    nodes = [helper.make_node("Concat", ["x", "x"], ["cat"], axis=0),
             helper.make_node("BatchNormalization", ["cat", "g", "b", "mean", "var"], ["bn"])]
    if act == "SiLU":
        nodes += [helper.make_node("Sigmoid", ["bn"], ["sg"]),
                  helper.make_node("Mul", ["bn", "sg"], ["a"])]
    else:
        nodes.append(helper.make_node(act, ["bn"], ["a"], **act_attrs))
    if tail == "Conv":
        nodes.append(helper.make_node("Conv", ["a", "w"], ["y"], pads=[1, 1, 1, 1]))
    else:  # ONNX Runtime has no float64 Conv
        nodes.append(helper.make_node(tail, ["a"], ["y"]))
    return make_model(nodes, inputs, ["y"], inits)


@pytest.mark.parametrize("act,attrs,rule", [("Relu", {}, "fuse_bn_relu"),
                                            ("LeakyRelu", {"alpha": 0.2}, "fuse_bn_leakyrelu"),
                                            ("SiLU", {}, "fuse_bn_silu")])
def test_batchnorm_activation_fuses(act, attrs, rule):
    sess = check_rewrite(_bn_act_model(act, **attrs), {"x": randn(2, 4, 6, 6)}, fired={rule: 1},
                         ops={"pyflame::ChannelAffine": 1, "BatchNormalization": 0})
    node = next(n for n in sess.graph.nodes if n.op_type == "ChannelAffine")
    assert node.attrs["activation"] == {"SiLU": "SiLU"}.get(act, act)


def test_batchnorm_activation_float64_takes_the_numpy_kernel():
    check_rewrite(_bn_act_model(dtype=np.float64, tail="Neg"), {"x": randn(2, 4, 6, 6, dtype=np.float64)},
                  fired={"fuse_bn_relu": 1}, ops={"pyflame::ChannelAffine": 1})


def test_batchnorm_activation_refused_for_a_fed_mean():
    model = _bn_act_model(const_mean=False)
    assert "the BatchNormalization mean is not a constant" in refusals(model, "fuse_bn_relu")
    feeds = {"x": randn(2, 4, 6, 6), "mean": randn(4, seed=3)}
    check_rewrite(model, feeds, ops={"BatchNormalization": 1, "Relu": 1})


def test_batchnorm_relu_from_a_densenet_like_export():
    torch = pytest.importorskip("torch", reason="the exporter test needs PyTorch")
    import io
    import warnings

    import onnx

    class Dense(torch.nn.Module):  # pre-activation: BN -> ReLU -> Conv on a concatenation
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.bn1 = torch.nn.BatchNorm2d(8)
            self.c1 = torch.nn.Conv2d(8, 4, 3, padding=1)
            self.bn2 = torch.nn.BatchNorm2d(12)
            self.c2 = torch.nn.Conv2d(12, 4, 1)

        def forward(self, x):
            x = self.stem(x)
            x = torch.cat([x, self.c1(torch.relu(self.bn1(x)))], 1)
            return self.c2(torch.relu(self.bn2(x)))

    torch.manual_seed(0)
    model = Dense().eval()
    for bn in (model.bn1, model.bn2):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 8, 8)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), f, dynamo=False, opset_version=17, input_names=["x"])
    check_rewrite(onnx.load_from_string(f.getvalue()), {"x": x.numpy()},
                  fired={"fuse_bn_relu": 2}, ops={"pyflame::ChannelAffine": 2, "Relu": 0},
                  rtol=1e-4, atol=1e-4)


def test_explain_lists_the_new_rules():
    _, report = optimized(_quick_gelu_model(), trace=True)
    assert report.trace.fired("fuse_quick_gelu")
