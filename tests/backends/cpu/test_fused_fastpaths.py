"""float32 fast paths of the fused ops and the planner's GEMMs, against onnx.reference.

The fused ops' generic (numpy) forms are tested in tests/opt/test_fused_kernels.py; here the
compiled paths -- packed-weight GEMMs with epilogues, numba LayerNorm/SkipLayerNorm/GELU,
the attention kernel, the vectorized transcendentals -- are checked on one thread and two,
through sessions (where the planner specializes them) and directly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from oracle import assert_close, reference

import pyflame_rt as ort
from pyflame_rt.backends.cpu import fused, threads
from pyflame_rt.backends.cpu.codegen import _nb_vmath
from pyflame_rt.backends.cpu.codegen.gemm import PackedGemm

RNG = np.random.default_rng(3)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x.astype(np.float64))


@pytest.mark.parametrize("name", _nb_vmath.FUNCS)
def test_vectorized_transcendentals(name):
    x = np.concatenate([np.linspace(-30, 30, 20001), np.linspace(-2, 2, 4001),
                        [0.0, -0.0, 1e-30, -1e-30]]).astype(np.float32)
    d = x.astype(np.float64)
    expected = {
        "exp": np.exp(np.clip(d, -80, 80)),
        "tanh": np.tanh(d),
        "sigmoid": 1 / (1 + np.exp(-d)),
        "erf": _erf(d),
        "gelu": 0.5 * d * (1 + _erf(d / math.sqrt(2))),
        "gelu_tanh": 0.5 * d * (1 + np.tanh(math.sqrt(2 / math.pi) * (d + 0.044715 * d ** 3))),
    }[name]
    if name == "exp":
        x = np.clip(x, -80, 80)
    got = _nb_vmath.apply(name, x).astype(np.float64)
    np.testing.assert_allclose(got, expected, rtol=3e-6, atol=3e-7)
    nan = _nb_vmath.apply(name, np.array([np.nan], np.float32))
    assert np.isnan(nan).all()


def test_exp_saturates_like_float32():
    got = _nb_vmath.apply("exp", np.array([-np.inf, -200, 89.0, np.inf], np.float32))
    assert got[0] == 0 and got[1] == 0 and np.isinf(got[2]) and np.isinf(got[3])


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("rows", [1, 3, 70, 300])
def test_packed_gemm(rows, trans_b, nthreads):
    k, n = 96, 200
    b = RNG.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    bias = RNG.standard_normal(n).astype(np.float32)
    a = RNG.standard_normal((rows, k)).astype(np.float32)
    expected = reference("Gemm", [a, b, bias], {"transB": int(trans_b)})[0]
    with threads.thread_limit(nthreads):
        got = PackedGemm(b, bias, 1, 0.0, 0.0, trans_b)(a)
    assert_close(got, np.maximum(expected, 0), rtol=1e-4, atol=1e-4)


def _one_op_session(op_type, inputs, consts, attrs, domain="", nthreads=2, noutputs=1):
    from onnx import TensorProto, helper, numpy_helper

    names, graph_inputs, inits = [], [], []
    for i, (arr, const) in enumerate(zip(inputs, consts)):
        if arr is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        if const:
            inits.append(numpy_helper.from_array(arr, name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                              list(arr.shape)))
    outs = [f"out{i}" for i in range(noutputs)]
    node = helper.make_node(op_type, names, outs, domain=domain, **attrs)
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                               for o in outs], inits)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets, ir_version=9)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = nthreads
    opts.graph_optimization_level = ort.OptLevel.NONE
    sess = ort.InferenceSession(model.SerializeToString(), opts)
    feeds = {f"in{i}": a for i, (a, c) in enumerate(zip(inputs, consts))
             if a is not None and not c}
    return sess, feeds


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("shape", [(5, 16), (2, 7, 16), (64,)])
def test_matmul_with_constant_weights(shape, nthreads):
    a = RNG.standard_normal(shape).astype(np.float32)
    b = RNG.standard_normal((shape[-1], 130)).astype(np.float32)
    sess, feeds = _one_op_session("MatMul", [a, b], [False, True], {}, nthreads=nthreads)
    assert_close(sess.run(None, feeds)[0], reference("MatMul", [a, b])[0], rtol=1e-4,
                 atol=1e-4)


@pytest.mark.parametrize("attrs", [{}, {"transB": 1}, {"transB": 1, "beta": 0.5}])
def test_gemm_with_constant_weights(attrs):
    a = RNG.standard_normal((9, 40)).astype(np.float32)
    b = RNG.standard_normal((33, 40) if attrs.get("transB") else (40, 33)).astype(np.float32)
    c = RNG.standard_normal(33).astype(np.float32)
    sess, feeds = _one_op_session("Gemm", [a, b, c], [False, True, True], attrs)
    assert_close(sess.run(None, feeds)[0], reference("Gemm", [a, b, c], attrs)[0],
                 rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation", ["Relu", "Gelu", "GeluTanh", "Sigmoid", "HardSwish"])
def test_fused_matmul_epilogue(activation):
    a = RNG.standard_normal((2, 5, 24)).astype(np.float32)
    b = RNG.standard_normal((24, 40)).astype(np.float32)
    c = RNG.standard_normal(40).astype(np.float32)
    sess, feeds = _one_op_session("FusedMatMul", [a, b, c], [False, True, True],
                                  {"activation": activation}, domain="pyflame")
    assert sess._plan.steps[0].fn.__qualname__.startswith("_matmul_runner")  # specialized
    y = (a.astype(np.float64) @ b + c)
    expected = {
        "Relu": np.maximum(y, 0),
        "Gelu": 0.5 * y * (1 + _erf(y / math.sqrt(2))),
        "GeluTanh": 0.5 * y * (1 + np.tanh(math.sqrt(2 / math.pi) * (y + 0.044715 * y ** 3))),
        "Sigmoid": 1 / (1 + np.exp(-y)),
        "HardSwish": y * np.clip(y / 6 + 0.5, 0, 1),
    }[activation]
    assert_close(sess.run(None, feeds)[0], expected.astype(np.float32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("nthreads", [1, 2])
def test_layer_norms_and_gelu(nthreads):
    x = RNG.standard_normal((3, 50, 64)).astype(np.float32) * 3 + 1
    skip = RNG.standard_normal((3, 50, 64)).astype(np.float32)
    gamma = RNG.standard_normal(64).astype(np.float32)
    beta = RNG.standard_normal(64).astype(np.float32)
    bias = RNG.standard_normal(64).astype(np.float32)
    with threads.thread_limit(nthreads):
        y = fused.layer_normalization(x, gamma, beta, epsilon=1e-5)
        assert_close(y, reference("LayerNormalization", [x, gamma, beta],
                                  {"epsilon": 1e-5})[0], rtol=1e-4, atol=1e-4)
        y, s = fused.skip_layer_normalization(
            x, skip, gamma, beta, bias, epsilon=1e-6,
            _ctx=type("Ctx", (), {"noutputs": 2})())
        s_ref = x + skip + bias
        assert_close(s, s_ref, rtol=1e-6, atol=1e-6)
        assert_close(y, reference("LayerNormalization", [s_ref, gamma, beta],
                                  {"epsilon": 1e-6})[0], rtol=1e-4, atol=1e-4)
        g = fused.bias_gelu(x, bias, approximate="none")
        d = (x + bias).astype(np.float64)
        assert_close(g, (0.5 * d * (1 + _erf(d / math.sqrt(2)))).astype(np.float32),
                     rtol=1e-5, atol=1e-5)
        g = fused.gelu(x, approximate="tanh")
        assert_close(g, reference("Gelu", [x], {"approximate": "tanh"}, opset=20)[0],
                     rtol=1e-5, atol=1e-5)


def _attention_reference(x, w, b, heads, mask_bias=None, causal=False):
    batch, seq, _ = x.shape
    qkv = (x.astype(np.float64) @ w + b).reshape(batch, seq, 3, heads, -1)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.triu(np.ones((seq, seq), bool), 1), -np.inf, s)
    if mask_bias is not None:
        s = s + mask_bias
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ v).transpose(0, 2, 1, 3).reshape(batch, seq, -1).astype(np.float32)


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_fast_path(causal, nthreads):
    batch, seq, hidden, heads = 2, 9, 24, 3
    x = RNG.standard_normal((batch, seq, hidden)).astype(np.float32)
    w = (RNG.standard_normal((hidden, 3 * hidden)) / 5).astype(np.float32)
    b = RNG.standard_normal(3 * hidden).astype(np.float32)
    mask_bias = np.where(RNG.random((batch, 1, 1, seq)) < 0.2, -10000.0, 0.0).astype(np.float32)
    sess, feeds = _one_op_session("Attention", [x, w, b, mask_bias], [False, True, True, False],
                                  {"num_heads": heads, "unidirectional": int(causal)},
                                  domain="pyflame", nthreads=nthreads)
    expected = _attention_reference(x, w, b, heads, mask_bias, causal)
    assert_close(sess.run(None, feeds)[0], expected, rtol=1e-4, atol=1e-5)


def test_attention_boolean_mask_matches_numpy_path():
    batch, seq, hidden, heads = 1, 6, 8, 2
    x = RNG.standard_normal((batch, seq, hidden)).astype(np.float32)
    w = RNG.standard_normal((hidden, 3 * hidden)).astype(np.float32)
    mask = RNG.random((batch, 1, seq, seq)) < 0.7
    mask[..., 0] = True  # every row keeps one key
    with threads.thread_limit(2):
        fast = fused.attention(x, w, None, None, mask, num_heads=heads)
    keep_bias = np.where(mask, 0.0, -np.inf)
    expected = _attention_reference(x, w, np.zeros(3 * hidden), heads, keep_bias)
    assert_close(fast, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation,params", [("Relu", []), ("LeakyRelu", [0.1]),
                                               ("Clip", [-1.0, 2.0]), ("SiLU", []),
                                               ("HardSigmoid", [0.3, 0.4]), ("Tanh", [])])
def test_apply_activation_fast_path(activation, params):
    y = RNG.standard_normal(10_000).astype(np.float32) * 4
    d = y.astype(np.float64)
    expected = {
        "Relu": np.maximum(d, 0), "LeakyRelu": np.where(d >= 0, d, 0.1 * d),
        "Clip": np.clip(d, -1, 2), "SiLU": d / (1 + np.exp(-d)),
        "HardSigmoid": np.clip(0.3 * d + 0.4, 0, 1), "Tanh": np.tanh(d),
    }[activation]
    with threads.thread_limit(2):
        got = fused.apply_activation(y.copy(), activation, params)
    assert_close(got, expected.astype(np.float32), rtol=1e-5, atol=1e-6)


def _bn_relu_model(also_output_bn: bool):
    from onnx import TensorProto, helper, numpy_helper

    c = 5
    params = [RNG.standard_normal(c).astype(np.float32) for _ in range(3)]
    params.append((RNG.random(c) + 0.5).astype(np.float32))
    inits = [numpy_helper.from_array(p, n) for p, n in zip(params, ["g", "b", "m", "v"])]
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["bn"],
                              epsilon=1e-3),
             helper.make_node("Relu", ["bn"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if also_output_bn:
        outputs.append(helper.make_tensor_value_info("bn", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "bnrelu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [2, c, 4, 3])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=9)
    return model.SerializeToString(), params


@pytest.mark.parametrize("also_output_bn", [False, True])
def test_batch_norm_fast_path_absorbs_the_relu(also_output_bn):
    from pyflame_rt.backends.cpu.codegen.affine import ChannelAffine
    from pyflame_rt.backends.cpu.executor import _passthrough

    data, (g, b, m, v) = _bn_relu_model(also_output_bn)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.OptLevel.NONE
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(data, opts)
    bn_step, relu_step = sess._plan.steps
    assert isinstance(bn_step.fn, ChannelAffine)
    # The ReLU is folded into the BatchNormalization only when nobody else reads its input.
    assert (relu_step.fn is _passthrough) == (not also_output_bn)
    x = RNG.standard_normal((2, 5, 4, 3)).astype(np.float32)
    bn = reference("BatchNormalization", [x, g, b, m, v], {"epsilon": 1e-3}, opset=15)[0]
    got = sess.run(None, {"x": x})
    assert_close(got[0], np.maximum(bn, 0), rtol=1e-5, atol=1e-5)
    if also_output_bn:
        assert_close(got[1], bn, rtol=1e-5, atol=1e-5)


def _concat_bn_model(widths, shape_rest, axis, extra_use: str):
    """Concat(x0, x1, ...) on the channel axis -> BatchNormalization -> Relu (DenseNet's
    pre-activation); ``extra_use``: "" or "output" (the Concat is also a graph output) or
    "consumer" (another node reads it too)."""
    from onnx import TensorProto, helper, numpy_helper

    c = sum(widths)
    params = [RNG.standard_normal(c).astype(np.float32) for _ in range(3)]
    params.append((RNG.random(c) + 0.5).astype(np.float32))
    inits = [numpy_helper.from_array(p, n) for p, n in zip(params, ["g", "b", "m", "v"])]
    names = [f"x{i}" for i in range(len(widths))]
    nodes = [helper.make_node("Concat", names, ["cat"], axis=axis),
             helper.make_node("BatchNormalization", ["cat", "g", "b", "m", "v"], ["bn"],
                              epsilon=1e-3),
             helper.make_node("Relu", ["bn"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_use == "output":
        outputs.append(helper.make_tensor_value_info("cat", TensorProto.FLOAT, None))
    elif extra_use == "consumer":
        nodes.append(helper.make_node("Neg", ["cat"], ["neg"]))
        outputs.append(helper.make_tensor_value_info("neg", TensorProto.FLOAT, None))
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [shape_rest[0], w,
                                                                   *shape_rest[1:]])
              for n, w in zip(names, widths)]
    graph = helper.make_graph(nodes, "catbn", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=9)
    return model.SerializeToString(), params


@pytest.mark.parametrize("level", ["NONE", "ALL"])
@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("widths,rest,axis", [
    ((3, 5, 1, 8), (1, 7, 5), 1),
    ((16, 32, 32), (2, 9, 11), 1),
    ((4, 2), (3, 13), -2),
    ((6,), (2, 3, 3), 1),
    ((2, 3, 4), (1, 2, 3, 2), 1),
])
def test_concat_batch_norm_reads_the_pieces(widths, rest, axis, nthreads, level):
    from pyflame_rt.backends.cpu.codegen.affine import ConcatPieces

    data, (g, b, m, v) = _concat_bn_model(widths, rest, axis, "")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.OptLevel, level)
    opts.intra_op_num_threads = nthreads
    sess = ort.InferenceSession(data, opts)
    xs = [RNG.standard_normal((rest[0], w, *rest[1:])).astype(np.float32) for w in widths]
    feeds = {f"x{i}": x for i, x in enumerate(xs)}
    cat_steps = [s for s in sess._plan.steps if s.node.op_type == "Concat"]
    cat = np.concatenate(xs, axis=1)
    if len(widths) == 1 and level == "ALL":
        assert not cat_steps  # the optimizer drops a one-input Concat
    else:
        # The Concat step hands its inputs over unjoined to the BatchNormalization...
        assert isinstance(cat_steps[0].fn(*xs), ConcatPieces)
        # ... but inputs it cannot hand over (float64 here) are joined as usual.
        wide = cat_steps[0].fn(*[x.astype(np.float64) for x in xs])
        assert isinstance(wide, np.ndarray) and wide.shape == cat.shape
    bn = reference("BatchNormalization", [cat, g, b, m, v], {"epsilon": 1e-3}, opset=15)[0]
    got = sess.run(None, feeds)
    assert len(got) == 1
    assert_close(got[0], np.maximum(bn, 0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("extra_use", ["output", "consumer"])
def test_concat_read_elsewhere_is_built(extra_use):
    from pyflame_rt.backends.cpu.codegen.affine import ConcatPieces

    data, (g, b, m, v) = _concat_bn_model((3, 4), (2, 5, 5), 1, extra_use)
    sess = ort.InferenceSession(data)
    xs = [RNG.standard_normal((2, w, 5, 5)).astype(np.float32) for w in (3, 4)]
    cat_step = next(s for s in sess._plan.steps if s.node.op_type == "Concat")
    assert not isinstance(cat_step.fn(*xs), ConcatPieces)
    got = sess.run(None, {"x0": xs[0], "x1": xs[1]})
    cat = np.concatenate(xs, axis=1)
    bn = reference("BatchNormalization", [cat, g, b, m, v], {"epsilon": 1e-3}, opset=15)[0]
    assert_close(got[0], np.maximum(bn, 0), rtol=1e-5, atol=1e-5)
    assert_close(got[1], cat if extra_use == "output" else -cat)


def test_concat_pieces_survive_dead_inputs_and_repeat_runs():
    # Consecutive calls reuse the data addresses of pieces that are the same array objects;
    # new arrays (even at a recycled id) must be read afresh.
    data, (g, b, m, v) = _concat_bn_model((4, 4, 4), (1, 6, 6), 1, "")
    sess = ort.InferenceSession(data)
    for seed in range(4):
        xs = [np.random.default_rng(seed + i).standard_normal((1, 4, 6, 6)).astype(np.float32)
              for i in range(3)]
        got = sess.run(None, {f"x{i}": x for i, x in enumerate(xs)})[0]
        cat = np.concatenate(xs, axis=1)
        bn = reference("BatchNormalization", [cat, g, b, m, v], {"epsilon": 1e-3}, opset=15)[0]
        assert_close(got, np.maximum(bn, 0), rtol=1e-5, atol=1e-5)
        del xs
