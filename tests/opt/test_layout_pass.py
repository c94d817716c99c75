"""The NCHWc layout pass (opt/passes/layout.py) and its blocked ops (conv/nchwc.py).

The pass is not in the default pipeline yet (the CPU backend decides the block size), so
these tests register it for the session they build. Outputs are compared with ONNX
Runtime; the rewritten graph is checked for what was converted and what was refused.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from oracle import assert_close, reference

import pyflame_rt as rt
from pyflame_rt.backends.cpu.conv import nchwc
from pyflame_rt.backends.cpu.provider import CPUExecutionProvider
from pyflame_rt.opt.passes.layout import LayoutPass, blocked_shape

WIDTH = nchwc.vector_width()
pytestmark = pytest.mark.skipif(WIDTH == 0, reason="blocked convolutions need AVX2+FMA")
RNG = np.random.default_rng(3)


class _Net:
    """A tiny ONNX model builder (Conv nodes with random weights)."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []

    def conv(self, x: str, m: int, c: int, k: int, s: int = 1, p: int = 0, g: int = 1) -> str:
        i = len(self.nodes)
        w = (RNG.standard_normal((m, c // g, k, k)) * 0.2).astype(np.float32)
        self.inits += [numpy_helper.from_array(w, f"w{i}"),
                       numpy_helper.from_array(RNG.standard_normal(m).astype(np.float32),
                                               f"b{i}")]
        self.nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"],
                                           kernel_shape=[k, k], strides=[s, s],
                                           pads=[p] * 4, group=g))
        return f"c{i}"

    def op(self, op_type: str, *inputs: str, **attrs) -> str:
        out = f"{op_type.lower()}{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def model(self, outputs: list[str], shape) -> bytes:
        graph = helper.make_graph(
            self.nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
            self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                 ir_version=9).SerializeToString()


def _resnet_like() -> tuple[bytes, list[str]]:
    net = _Net()
    stem = net.op("Relu", net.conv("x", 24, 3, 7, 2, 3))
    pool = net.op("MaxPool", stem, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    t = net.op("Relu", net.conv(pool, 20, 24, 1))
    t = net.op("Relu", net.conv(t, 20, 20, 3, 1, 1))
    t = net.conv(t, 24, 20, 1)
    block = net.op("Relu", net.op("Add", t, pool))
    down = net.conv(block, 40, 24, 1, 2)
    t = net.op("Relu", net.conv(block, 40, 24, 3, 2, 1))
    t = net.op("Relu", net.op("Add", net.conv(t, 40, 40, 3, 1, 1), down))
    head = net.op("GlobalAveragePool", t)
    return net.model([head, block], ["N", 3, 37, 30]), [head, block]


def _session(model: bytes, block: int | None, path: str | None = None) -> rt.InferenceSession:
    opts = rt.SessionOptions()
    opts.intra_op_num_threads = 2
    if path:
        opts.optimized_model_filepath = path
    # The session adds the layout pass with its backend's block size: pin that size.
    saved = CPUExecutionProvider.layout_block
    CPUExecutionProvider.layout_block = lambda self, options: int(block or 0)
    try:
        return rt.InferenceSession(model, opts)
    finally:
        CPUExecutionProvider.layout_block = saved


def _ops(path) -> list[str]:
    return [f"{n.domain}.{n.op_type}" if n.domain else n.op_type
            for n in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("batch", [1, 3])
def test_resnet_like_chain_runs_blocked_and_matches_onnxruntime(batch, tmp_path):
    import onnxruntime as ort

    model, _ = _resnet_like()
    path = tmp_path / "opt.onnx"
    sess = _session(model, WIDTH, str(path))
    ops = _ops(path)
    # The stem, its MaxPool, the six convolutions after it and the head's pooling form one
    # blocked region: the stem reads the 3-channel input as NCHW, no reorder in.
    assert ops.count("pyflame.BlockedConv") == 7, ops
    assert ops.count("pyflame.BlockedMaxPool") == 1, ops
    assert ops.count("pyflame.BlockedGlobalAveragePool") == 1, ops
    assert ops.count("pyflame.ReorderToBlocked") == 0, ops
    assert ops.count("pyflame.ReorderFromBlocked") == 2, ops  # the head and an output
    assert "Conv" not in ops and "pyflame.FusedConv" not in ops
    x = RNG.standard_normal((batch, 3, 37, 30)).astype(np.float32)
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = sess.run(None, {"x": x})
    for g, w in zip(got, want):
        assert_close(g, w, rtol=1e-4, atol=1e-4)
    # The saved optimized model (pyflame ops inside) loads and runs again.
    again = rt.InferenceSession(str(path)).run(None, {"x": x})
    for g, w in zip(again, want):
        assert_close(g, w, rtol=1e-4, atol=1e-4)


def test_pass_counts_and_graph_without_dead_nodes():
    from pyflame_rt.io.onnx import load_onnx
    from pyflame_rt.opt import PassContext, optimize
    from pyflame_rt.opt.levels import OptLevel

    model, _ = _resnet_like()
    graph = load_onnx(model).graph
    optimize(graph, OptLevel.EXTENDED, ir_version=9)
    result = LayoutPass(WIDTH).run(graph, PassContext(ir_version=9))
    assert result.counts == {"blocked_conv": 7, "blocked_maxpool": 1,
                             "blocked_globalaveragepool": 1, "reorder_from_blocked": 2}
    ops = [n.op_type for n in graph.nodes]
    assert ops.count("ReorderFromBlocked") == 2
    assert sum(op in ("Conv", "FusedConv") for op in ops) == 0  # the stem joined too
    # Every node's output is read (nothing left for DCE) and the pass is idempotent.
    assert all(v.uses or v.is_graph_output for n in graph.nodes for v in n.outputs)
    assert not LayoutPass(WIDTH).run(graph, PassContext(ir_version=9)).modified


def test_stem_with_few_channels_reads_nchw(tmp_path):
    net = _Net()
    t = net.op("Relu", net.conv("x", 32, 3, 3, 2, 1))
    t = net.op("Relu", net.conv(t, 16, 32, 3, 1, 1))
    t = net.conv(t, 16, 16, 1)
    model = net.model([t], [2, 3, 16, 16])
    path = tmp_path / "opt.onnx"
    sess = _session(model, WIDTH, str(path))
    graph = onnx.load(str(path)).graph
    first = next(n for n in graph.node if n.op_type == "BlockedConv")
    assert first.input[0] == "x"  # no ReorderToBlocked in front of a 3-channel input
    assert "pyflame.ReorderToBlocked" not in _ops(path)
    x = RNG.standard_normal((2, 3, 16, 16)).astype(np.float32)
    w0 = numpy_helper.to_array(net.inits[0])
    b0 = numpy_helper.to_array(net.inits[1])
    y0 = np.maximum(reference("Conv", [x, w0, b0], {"strides": [2, 2], "pads": [1] * 4})[0], 0)
    y1 = np.maximum(reference("Conv", [y0, numpy_helper.to_array(net.inits[2]),
                                       numpy_helper.to_array(net.inits[3])],
                              {"pads": [1] * 4})[0], 0)
    want = reference("Conv", [y1, numpy_helper.to_array(net.inits[4]),
                              numpy_helper.to_array(net.inits[5])], {})[0]
    assert_close(sess.run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-4)


def test_pair_with_both_ends_outside_is_not_worth_converting(tmp_path):
    # pool -> conv -> conv -> pool: converted, it would pay a reorder in and one out, as
    # many passes as the two convolutions' own input reorders.
    net = _Net()
    pooled = net.op("MaxPool", "x", kernel_shape=[2, 2])
    t = net.op("Relu", net.conv(pooled, 32, 32, 1))
    t = net.conv(t, 32, 32, 3, 1, 1)
    model = net.model([net.op("MaxPool", t, kernel_shape=[2, 2])], [1, 32, 12, 12])
    path = tmp_path / "opt.onnx"
    _session(model, WIDTH, str(path))
    assert "pyflame.BlockedConv" not in _ops(path)


def test_refused_cases(tmp_path):
    net = _Net()
    lone = net.conv("x", 16, 16, 3, 1, 1)  # isolated: keeps its tactic choice
    pooled = net.op("MaxPool", lone, kernel_shape=[2, 2])
    grouped = net.conv(pooled, 24, 16, 3, 1, 1, g=4)  # 6 outputs per group: no blocks
    last = net.conv(grouped, 16, 24, 1)
    model = net.model([last], [1, 16, 10, 10])
    path = tmp_path / "opt.onnx"
    _session(model, WIDTH, str(path))
    assert not any(op.startswith("pyflame.Reorder") or op == "pyflame.BlockedConv"
                   for op in _ops(path))
    # A block size of 0 (no vector unit) turns the pass off.
    model, _ = _resnet_like()
    _session(model, 0, str(path))
    assert "pyflame.BlockedConv" not in _ops(path)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_reorder_ops_round_trip(dtype):
    x = (RNG.standard_normal((2, 21, 5, 3)) * 10).astype(dtype)
    blocked = nchwc.reorder_to_blocked(x, block=8)
    assert blocked.shape == blocked_shape(x.shape, 8) == (2, 3, 5, 3, 8)
    assert blocked.dtype == x.dtype
    np.testing.assert_array_equal(blocked[:, 2, :, :, 5:], 0)  # channels 21..23
    np.testing.assert_array_equal(blocked[1, 1, 2, 1], x[1, 8:16, 2, 1])
    np.testing.assert_array_equal(nchwc.reorder_from_blocked(blocked, channels=21), x)
    with pytest.raises(ValueError, match="channels"):
        nchwc.reorder_from_blocked(blocked, channels=25)


def test_blocked_conv_generic_kernel_matches_reference():
    x = RNG.standard_normal((2, 12, 7, 6)).astype(np.float32)
    w = RNG.standard_normal((10, 12, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(10).astype(np.float32)
    z = RNG.standard_normal((2, 10, 4, 6)).astype(np.float32)
    attrs = {"strides": [2, 1], "pads": [1, 1, 1, 1]}
    want = np.maximum(reference("Conv", [x, w, b], attrs)[0] + z, 0)
    for block in (4, 8):
        got = nchwc.blocked_conv(nchwc.to_blocked(x, block), w, b, nchwc.to_blocked(z, block),
                                 activation="Relu", block=block, **attrs)
        assert got.shape == blocked_shape(want.shape, block)
        assert_close(nchwc.from_blocked(got, 10), want, rtol=1e-4, atol=1e-4)
    # NCHW X (few channels): only the output is blocked.
    got = nchwc.blocked_conv(x, w, b, None, block=8, **attrs)
    assert_close(nchwc.from_blocked(got, 10), reference("Conv", [x, w, b], attrs)[0],
                 rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="blocks"):
        nchwc.blocked_conv(nchwc.to_blocked(x, 8)[:, :1], w, b, block=8, **attrs)
