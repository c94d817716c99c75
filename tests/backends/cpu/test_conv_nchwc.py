"""The ``nchwc`` convolution tactic (conv/nchwc.py) against onnx.reference / ONNX Runtime.

Odd shapes (asymmetric pads, strides, dilations, groups, tiny and large channel counts,
channels that are not a multiple of the vector block, batches), every epilogue the kernel
fuses (bias, residual, the activations), both vector widths the host can run (16 floats
with AVX-512, 8 with AVX2) and one or two threads.
"""

from __future__ import annotations

import numpy as np
import pytest
from oracle import assert_close, onnxruntime, reference

import pyflame_rt as rt
from pyflame_rt.backends.cpu import threads
from pyflame_rt.backends.cpu.codegen import kernels
from pyflame_rt.backends.cpu.conv import ConvRunner, nchwc
from pyflame_rt.backends.cpu.conv.geometry import ConvGeometry
from pyflame_rt.backends.cpu.conv.tactics import (
    Epilogue,
    PackedWeights,
    Tactic,
    applicable_tactics,
    build,
)
from pyflame_rt.backends.cpu.nn import resolve_padding

HOST_WIDTH = nchwc.vector_width()
pytestmark = pytest.mark.skipif(HOST_WIDTH == 0,
                                reason="the nchwc tactic needs an x86-64 CPU with AVX2+FMA")
# AVX-512 hosts run the AVX2 (8-float) kernels too.
WIDTHS = [w for w in (16, 8) if w <= HOST_WIDTH]
# Load the pool's numba helpers before any worker thread does: two threads touching a
# lazily imported module at once can see it half-initialized (CPython 3.11's LazyLoader).
kernels("sync").spin_count  # noqa: B018
RNG = np.random.default_rng(11)

# (x shape, w shape, attrs)
CASES = [
    ((1, 3, 9, 11), (5, 3, 3, 3), {"pads": [1, 1, 1, 1]}),  # tiny channels: un-blocked input
    ((2, 37, 9, 11), (33, 37, 3, 2), {"strides": [1, 2], "dilations": [2, 1],
                                      "pads": [2, 0, 1, 3]}),  # 37/33: not block multiples
    ((1, 3, 23, 19), (20, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),  # the stem
    ((2, 32, 8, 8), (32, 16, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}),  # blocked groups
    ((1, 12, 6, 5), (32, 3, 3, 3), {"group": 4, "pads": [0, 1, 1, 0]}),  # groups, 3 ch each
    ((3, 64, 5, 7), (80, 64, 1, 1), {}),  # 1x1, batch 3
    ((1, 64, 9, 9), (48, 64, 1, 1), {"strides": [2, 2]}),  # 1x1 stride 2
    ((1, 300, 6, 6), (70, 300, 3, 3), {"pads": [1, 1, 1, 1]}),  # many input channels
    ((1, 16, 4, 40), (16, 16, 1, 5), {"dilations": [1, 3], "pads": [0, 2, 0, 5]}),
    ((1, 1, 1, 1), (1, 1, 1, 1), {}),
    ((2, 8, 3, 3), (130, 8, 3, 3), {"pads": [2, 2, 2, 2], "strides": [3, 3]}),
]


def _geometry(x_shape, w_shape, attrs) -> ConvGeometry:
    strides = tuple(attrs.get("strides", [1, 1]))
    dil = tuple(attrs.get("dilations", [1, 1]))
    begin, _, out = resolve_padding("NOTSET", x_shape[2:], w_shape[2:], strides, dil,
                                    attrs.get("pads"))
    return ConvGeometry(x_shape[0], x_shape[1], x_shape[2], x_shape[3], w_shape[0],
                        attrs.get("group", 1), w_shape[2], w_shape[3], strides[0], strides[1],
                        dil[0], dil[1], begin[0], begin[1], out[0], out[1])


def _activate(y: np.ndarray, code: int, a0: float, a1: float) -> np.ndarray:
    if code == 1:
        return np.maximum(y, 0)
    if code == 2:
        return np.where(y >= 0, y, a0 * y)
    if code == 3:
        return 1 / (1 + np.exp(-y))
    if code == 5:
        return np.clip(a0 * y + a1, 0, 1)
    if code == 6:
        return y * np.clip(y / 6 + 0.5, 0, 1)
    if code == 7:
        return np.clip(y, a0, a1)
    assert code == 0
    return y


def _expected(x, w, b, z, attrs, epi: Epilogue) -> tuple[np.ndarray, float]:
    """The reference output and the absolute tolerance (scaled to the pre-activation)."""
    big = w.size > 20000  # the reference evaluator is slow on wide convolutions
    y = (onnxruntime if big else reference)("Conv", [x, w, b], attrs)[0].astype(np.float64)
    if z is not None:
        y = y + z
    atol = 2e-5 * (float(np.abs(y).max()) or 1.0)
    return _activate(y, epi.act, epi.a0, epi.a1).astype(np.float32), atol


@pytest.fixture(params=WIDTHS, ids=lambda w: f"width{w}")
def width(request, monkeypatch):
    monkeypatch.setattr(nchwc, "vector_width", lambda: request.param)
    return request.param


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_nchwc_matches_reference(case, nthreads, width):
    x_shape, w_shape, attrs = CASES[case]
    geo = _geometry(x_shape, w_shape, attrs)
    x = RNG.standard_normal(x_shape).astype(np.float32)
    w = RNG.standard_normal(w_shape).astype(np.float32)
    b = RNG.standard_normal(w_shape[0]).astype(np.float32)
    z = RNG.standard_normal((geo.n, geo.m, geo.oh, geo.ow)).astype(np.float32)
    # Each (width, input block, activation, residual) is one generated module to compile:
    # the AVX2 kernels are checked with one activation only, to keep cold runs short.
    epi = [Epilogue(1), Epilogue(7, -0.5, 1.5), Epilogue(0)][case % 3 if width == 16 else 0]
    use_z = case % 2 == 1
    expected, atol = _expected(x, w, b, z if use_z else None, attrs, epi)
    tactics = [t for t in applicable_tactics(geo) if t.name == "nchwc"]
    if geo.g > 1 and geo.mg % width:
        assert not tactics  # output channels per group must fill blocks
        return
    assert tactics, f"nchwc should apply to {geo.key()}"
    with threads.thread_limit(nthreads):
        for tactic in tactics + [Tactic("nchwc", 1)]:
            run = build(tactic, geo, PackedWeights(w, geo.g), epi, nthreads)
            got = run(x, b, z if use_z else None)
            assert got.shape == expected.shape
            assert_close(got, expected, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("epi", [Epilogue(0), Epilogue(1), Epilogue(2, 0.1), Epilogue(3),
                                 Epilogue(5, 0.2, 0.5), Epilogue(6), Epilogue(7, 0.0, 6.0)],
                         ids=lambda e: f"act{e.act}")
@pytest.mark.parametrize("with_z", [False, True], ids=["plain", "residual"])
def test_each_epilogue(epi, with_z):
    x_shape, w_shape, attrs = (2, 20, 7, 6), (24, 20, 3, 3), {"pads": [1, 0, 0, 1]}
    geo = _geometry(x_shape, w_shape, attrs)
    x = RNG.standard_normal(x_shape).astype(np.float32)
    w = RNG.standard_normal(w_shape).astype(np.float32) * 0.3
    b = RNG.standard_normal(w_shape[0]).astype(np.float32)
    z = RNG.standard_normal((geo.n, geo.m, geo.oh, geo.ow)).astype(np.float32)
    expected, atol = _expected(x, w, b, z if with_z else None, attrs, epi)
    with threads.thread_limit(2):
        got = build(Tactic("nchwc"), geo, PackedWeights(w, 1), epi, 2)(
            x, b, z if with_z else None)
    assert_close(got, expected, rtol=1e-4, atol=atol)


def test_no_bias_and_huge_channels():
    # 520 in / 1030 out: several chunks of input blocks, a partial last filter set.
    x_shape, w_shape = (1, 520, 3, 4), (1030, 520, 1, 1)
    geo = _geometry(x_shape, w_shape, {})
    x = RNG.standard_normal(x_shape).astype(np.float32)
    w = RNG.standard_normal(w_shape).astype(np.float32)
    expected = np.einsum("mc,nchw->nmhw", w[:, :, 0, 0].astype(np.float64), x)
    for chunk in (0, 3):
        got = build(Tactic("nchwc", chunk), geo, PackedWeights(w, 1), Epilogue(), 1)(
            x, np.zeros(0, np.float32), None)
        assert_close(got, expected.astype(np.float32), rtol=1e-4, atol=1e-3)


def test_not_offered_for_depthwise_and_unfilled_groups():
    depthwise = _geometry((1, 8, 8, 8), (8, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]})
    assert "nchwc" not in {t.name for t in applicable_tactics(depthwise)}
    grouped = _geometry((1, 12, 8, 8), (12, 3, 3, 3), {"group": 4})  # 3 outputs per group
    assert "nchwc" not in {t.name for t in applicable_tactics(grouped)}
    plain = _geometry((1, 5, 8, 8), (7, 5, 3, 3), {})
    assert "nchwc" in {t.name for t in applicable_tactics(plain)}


def _model(x_shape, w, b, attrs) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], **attrs),
             helper.make_node("Add", ["c", "r"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape),
                        helper.make_tensor_value_info("r", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=9).SerializeToString()


def test_session_with_forced_nchwc_matches_onnxruntime():
    import onnxruntime as ort

    x_shape = [2, 24, 15, 13]
    w = RNG.standard_normal((40, 24, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(40).astype(np.float32)
    attrs = {"pads": [1, 2, 0, 1], "strides": [2, 1]}
    model = _model(x_shape, w, b, attrs)
    opts = rt.SessionOptions()
    opts.add_session_config_entry("session.pyflame.conv_tactic", "nchwc")
    opts.intra_op_num_threads = 2
    sess = rt.InferenceSession(model, opts)
    x = RNG.standard_normal(x_shape).astype(np.float32)
    r = RNG.standard_normal((2, 40, 7, 14)).astype(np.float32)
    got = sess.run(None, {"x": x, "r": r})[0]
    runners = [s.fn for s in sess._plan.steps if isinstance(s.fn, ConvRunner)]
    assert runners and runners[0].tactic_for(x_shape).name == "nchwc"
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(
        None, {"x": x, "r": r})[0]
    assert_close(got, want, rtol=1e-4, atol=1e-4)


def _to_blocked(x: np.ndarray, width: int) -> np.ndarray:
    n, c, h, w = x.shape
    cb = -(-c // width)
    padded = np.zeros((n, cb * width, h, w), x.dtype)
    padded[:, :c] = x
    return np.ascontiguousarray(padded.reshape(n, cb, width, h, w).transpose(0, 1, 3, 4, 2))


def _from_blocked(xb: np.ndarray, c: int) -> np.ndarray:
    n, cb, h, w, width = xb.shape
    return xb.transpose(0, 1, 4, 2, 3).reshape(n, cb * width, h, w)[:, :c]


@pytest.mark.parametrize("case", [0, 1, 3, 5, 6, 10])
def test_blocked_in_and_out(case, width):
    x_shape, w_shape, attrs = CASES[case]
    geo = _geometry(x_shape, w_shape, attrs)
    assert nchwc.blocked_supported(geo)
    x = RNG.standard_normal(x_shape).astype(np.float32)
    w = RNG.standard_normal(w_shape).astype(np.float32)
    b = RNG.standard_normal(w_shape[0]).astype(np.float32)
    z = RNG.standard_normal((geo.n, geo.m, geo.oh, geo.ow)).astype(np.float32)
    epi = Epilogue(1) if case % 2 else Epilogue(0)
    use_z = case % 3 == 0
    expected, atol = _expected(x, w, b, z if use_z else None, attrs, epi)
    with threads.thread_limit(2):
        run = nchwc.build_blocked(geo, w, epi, 2)
        got = run(_to_blocked(x, width), b, _to_blocked(z, width) if use_z else None)
    mb = -(-geo.m // width)
    assert got.shape == (geo.n, mb, geo.oh, geo.ow, width)
    assert_close(_from_blocked(got, geo.m), expected, rtol=1e-4, atol=atol)
    # Channels past M are written as zeros (a later convolution reads them).
    np.testing.assert_array_equal(got.transpose(0, 1, 4, 2, 3).reshape(
        geo.n, mb * width, geo.oh, geo.ow)[:, geo.m:], 0)


def test_blocked_refuses_unfilled_groups():
    geo = _geometry((1, 12, 6, 5), (32, 3, 3, 3), {"group": 4})
    assert not nchwc.blocked_supported(geo)


def test_warm_compiles_the_common_kernels():
    seen: list[str] = []
    seconds = nchwc.warm(lambda name, s: seen.append(name))
    assert seconds >= 0
    assert {"nchwc.reorder", "nchwc.unblock", "nchwc.phased"} <= set(seen)
    assert sum(name.startswith("nchwc.conv_") for name in seen) == 16
