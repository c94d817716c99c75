"""The layout pass (opt/passes/layout.py) extending blocked regions through pooling,
channel concatenation and ChannelAffine (the blocked kernels of backends/cpu/blocked.py).

Graphs are built with random weights, run through a session (the pass at level ALL with the
backend's block, two threads) and compared with ONNX Runtime; the saved optimized graph is
checked for what was converted, how many reorders are left, and what was refused.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from oracle import assert_close

import pyflame_rt as rt
from pyflame_rt.backends.cpu.conv import nchwc
from pyflame_rt.opt import PassContext
from pyflame_rt.opt.passes.layout import LayoutPass

WIDTH = nchwc.vector_width()
pytestmark = pytest.mark.skipif(WIDTH == 0, reason="blocked convolutions need AVX2+FMA")
RNG = np.random.default_rng(5)


class _Net:
    """A tiny ONNX model builder (Conv nodes with random weights)."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []

    def conv(self, x: str, m: int, c: int, k: int = 1, p: int = 0, s: int = 1) -> str:
        i = len(self.nodes)
        w = (RNG.standard_normal((m, c, k, k)) * 0.2).astype(np.float32)
        self.inits += [numpy_helper.from_array(w, f"w{i}"),
                       numpy_helper.from_array(RNG.standard_normal(m).astype(np.float32),
                                               f"b{i}")]
        self.nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"],
                                           kernel_shape=[k, k], pads=[p] * 4, strides=[s, s]))
        return f"c{i}"

    def op(self, op_type: str, *inputs: str, noutputs: int = 1, **attrs) -> str:
        out = f"{op_type.lower()}{len(self.nodes)}"
        outs = [out] + [f"{out}_{j}" for j in range(1, noutputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return out

    def model(self, outputs: list[str], shape) -> bytes:
        graph = helper.make_graph(
            self.nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info(o, TensorProto.INT64 if o.endswith("_1")
                                           else TensorProto.FLOAT, None) for o in outputs],
            self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                 ir_version=9).SerializeToString()


def _run(model: bytes, shape, tmp_path) -> list[str]:
    """Run the session and ONNX Runtime on a random input, compare, return the ops."""
    import onnxruntime as ort

    path = tmp_path / "opt.onnx"
    opts = rt.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.optimized_model_filepath = str(path)
    sess = rt.InferenceSession(model, opts)
    x = RNG.standard_normal(shape).astype(np.float32)
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = sess.run(None, {"x": x})
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_close(g, w, rtol=1e-4, atol=1e-4)
    return [f"{n.domain}.{n.op_type}" if n.domain else n.op_type
            for n in onnx.load(str(path)).graph.node]


def _reorders(ops: list[str]) -> int:
    return sum(op.startswith("pyflame.Reorder") for op in ops)


POOLS = [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("MaxPool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ("AveragePool", {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 0, 1],
                     "count_include_pad": 1}),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
]


@pytest.mark.parametrize(("op", "attrs"), POOLS)
@pytest.mark.parametrize("channels", [32, 24])
@pytest.mark.parametrize("batch", [1, 2])
def test_conv_pool_conv_chain_is_one_region(op, attrs, channels, batch, tmp_path):
    net = _Net()
    t = net.op("Relu", net.conv("x", channels, 16, 3, 1))
    t = net.conv(t, channels, channels)
    t = net.op(op, t, **attrs)
    t = net.op("Relu", net.conv(t, 32, channels, 3, 1))
    out = net.conv(t, 16, 32)
    ops = _run(net.model([out], ["N", 16, 13, 11]), (batch, 16, 13, 11), tmp_path)
    assert ops.count("pyflame.BlockedConv") == 4, ops
    assert ops.count(f"pyflame.Blocked{op}") == 1, ops
    # One reorder in, one out: none around the pool.
    assert _reorders(ops) == 2, ops


@pytest.mark.parametrize("last", [32, 20])
def test_conv_concat_conv_is_one_region(last, tmp_path):
    net = _Net()
    stem = net.op("Relu", net.conv("x", 32, 16, 3, 1))
    a = net.conv(stem, 16, 32)
    b = net.op("Relu", net.conv(stem, last, 32, 3, 1))
    cat = net.op("Concat", a, b, axis=1)
    head = net.conv(cat, 16, 16 + last)
    ops = _run(net.model([head], ["N", 16, 9, 10]), (2, 16, 9, 10), tmp_path)
    assert ops.count("pyflame.BlockedConcat") == 1, ops
    assert ops.count("pyflame.BlockedConv") == 4, ops
    assert _reorders(ops) == 2, ops


def test_inception_like_block_with_pool_branch_and_head(tmp_path):
    net = _Net()
    stem = net.op("Relu", net.conv("x", 32, 16, 3, 1))
    stem = net.op("MaxPool", stem, kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    b1 = net.op("Relu", net.conv(stem, 16, 32))
    b2 = net.op("Relu", net.conv(net.op("Relu", net.conv(stem, 16, 32)), 32, 16, 3, 1))
    b3 = net.op("Relu", net.conv(net.op("MaxPool", stem, kernel_shape=[3, 3],
                                        pads=[1, 1, 1, 1]), 16, 32))
    cat = net.op("Concat", b1, b2, b3, axis=1)
    head = net.op("GlobalAveragePool", net.op("Relu", net.conv(cat, 32, 64)))
    ops = _run(net.model([head], ["N", 16, 15, 17]), (2, 16, 15, 17), tmp_path)
    assert ops.count("pyflame.BlockedMaxPool") == 2, ops
    assert ops.count("pyflame.BlockedGlobalAveragePool") == 1, ops
    assert ops.count("pyflame.BlockedConcat") == 1, ops
    assert _reorders(ops) == 2, ops  # the input and the pooled head only


def test_densenet_like_batchnorm_relu_after_concat(tmp_path):
    net = _Net()
    feats = net.conv("x", 32, 16, 3, 1)
    for layer in range(2):
        c = 32 + 16 * layer  # channels so far
        scale = RNG.uniform(0.5, 1.5, c).astype(np.float32)
        i = len(net.nodes)
        net.inits += [numpy_helper.from_array(scale, f"s{i}"),
                      numpy_helper.from_array(RNG.standard_normal(c).astype(np.float32),
                                              f"t{i}"),
                      numpy_helper.from_array(np.zeros(c, np.float32), f"m{i}"),
                      numpy_helper.from_array(np.ones(c, np.float32), f"v{i}")]
        bn = net.op("BatchNormalization", feats, f"s{i}", f"t{i}", f"m{i}", f"v{i}")
        new = net.conv(net.op("Relu", bn), 16, c, 3, 1)
        feats = net.op("Concat", feats, new, axis=1)
    pooled = net.op("AveragePool", net.conv(feats, 32, 64), kernel_shape=[2, 2],
                    strides=[2, 2])
    ops = _run(net.model([pooled], ["N", 16, 8, 8]), (1, 16, 8, 8), tmp_path)
    assert ops.count("pyflame.BlockedChannelAffine") == 2, ops
    assert ops.count("pyflame.BlockedConcat") == 2, ops
    assert ops.count("pyflame.BlockedAveragePool") == 1, ops
    assert _reorders(ops) == 2, ops


def test_refused_cases(tmp_path):
    net = _Net()
    t = net.op("Relu", net.conv("x", 32, 16, 3, 1))
    t = net.conv(t, 32, 32)
    # MaxPool with Indices: the blocked kernel has no Indices output.
    pooled = net.op("MaxPool", t, noutputs=2, kernel_shape=[2, 2], strides=[2, 2])
    cat_in = net.conv(pooled, 20, 32)
    other = net.conv(pooled, 16, 32)
    # 20 channels before the last input: the blocks would not line up.
    cat = net.op("Concat", cat_in, other, axis=1)
    out = net.conv(net.conv(cat, 16, 36), 16, 16)
    model = net.model([out, f"{pooled}_1"], ["N", 16, 8, 8])
    ops = _run(model, (1, 16, 8, 8), tmp_path)
    assert "MaxPool" in ops and "pyflame.BlockedMaxPool" not in ops, ops
    assert "Concat" in ops and "pyflame.BlockedConcat" not in ops, ops


def test_lone_pool_is_not_converted(tmp_path):
    # pool -> conv -> pool: nothing to gain, every blocked op would pay its own reorders.
    net = _Net()
    t = net.op("MaxPool", "x", kernel_shape=[2, 2], strides=[2, 2])
    t = net.op("AveragePool", net.conv(t, 32, 16, 3, 1), kernel_shape=[2, 2])
    ops = _run(net.model([t], ["N", 16, 12, 12]), (1, 16, 12, 12), tmp_path)
    assert not any(op.startswith(("pyflame.Blocked", "pyflame.Reorder")) for op in ops), ops


def test_pass_counts_and_idempotent():
    from pyflame_rt.io.onnx import load_onnx
    from pyflame_rt.opt import optimize
    from pyflame_rt.opt.levels import OptLevel

    net = _Net()
    t = net.op("Relu", net.conv("x", 32, 16, 3, 1))
    t = net.op("MaxPool", net.conv(t, 32, 32), kernel_shape=[2, 2], strides=[2, 2])
    out = net.conv(net.op("Concat", t, net.conv(t, 16, 32), axis=1), 16, 48)
    graph = load_onnx(net.model([out], [1, 16, 8, 8])).graph
    optimize(graph, OptLevel.EXTENDED, ir_version=9)
    result = LayoutPass(WIDTH).run(graph, PassContext(ir_version=9))
    assert result.counts == {"blocked_conv": 4, "blocked_maxpool": 1, "blocked_concat": 1,
                             "reorder_to_blocked": 1, "reorder_from_blocked": 1}
    assert all(v.uses or v.is_graph_output for n in graph.nodes for v in n.outputs)
    assert not LayoutPass(WIDTH).run(graph, PassContext(ir_version=9)).modified


def test_concat_read_only_by_affine_is_absorbed(tmp_path):
    # torchvision's DenseNet: every layer concatenates all features so far, and only its
    # BatchNormalization + ReLU reads that concatenation.
    net = _Net()
    f0 = net.conv("x", 32, 16, 3, 1)
    f1 = net.conv(f0, 16, 32, 3, 1)
    cat = net.op("Concat", f0, f1, axis=1)
    c = 48
    net.inits += [numpy_helper.from_array(RNG.uniform(0.5, 1.5, c).astype(np.float32), "s"),
                  numpy_helper.from_array(RNG.standard_normal(c).astype(np.float32), "t"),
                  numpy_helper.from_array(np.zeros(c, np.float32), "m"),
                  numpy_helper.from_array(np.ones(c, np.float32), "v")]
    t = net.op("Relu", net.op("BatchNormalization", cat, "s", "t", "m", "v"))
    out = net.conv(t, 16, c)
    path = tmp_path / "opt.onnx"
    ops = _run(net.model([out], ["N", 16, 7, 9]), (2, 16, 7, 9), tmp_path)
    assert "pyflame.BlockedConcat" not in ops and "Concat" not in ops, ops
    affine = next(n for n in onnx.load(str(path)).graph.node
                  if n.op_type == "BlockedChannelAffine")
    assert len(affine.input) == 4  # X, scale, bias, then the second piece
