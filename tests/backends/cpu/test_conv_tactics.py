"""Convolution tactics (backends/cpu/conv/) against onnx.reference on odd shapes.

Every tactic that applies to a geometry must agree with the reference Conv (plus the fused
epilogue, computed here with numpy from the reference result) for pads, strides, dilations,
groups, tiny and large channel counts, batches, and on one thread and two.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from oracle import assert_close, reference

import pyflame_rt as ort
from pyflame_rt.backends.cpu import threads
from pyflame_rt.backends.cpu.conv import ConvRunner, chooser
from pyflame_rt.backends.cpu.conv.geometry import ConvGeometry, split_range
from pyflame_rt.backends.cpu.conv.tactics import (
    Epilogue,
    PackedWeights,
    Tactic,
    applicable_tactics,
    build,
)
from pyflame_rt.backends.cpu.conv.winograd import transform_weights, winograd_matrices
from pyflame_rt.backends.cpu.nn import resolve_padding

RNG = np.random.default_rng(7)

# (x shape, w shape, attrs): odd sizes, asymmetric pads, strides, dilations, groups.
CASES = [
    ((1, 3, 9, 11), (5, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((2, 4, 7, 6), (6, 2, 3, 2), {"group": 2, "strides": [2, 1], "dilations": [1, 2],
                                  "pads": [1, 0, 2, 1]}),
    ((1, 8, 10, 10), (8, 1, 3, 3), {"group": 8, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 8, 10, 10), (16, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}),
    ((1, 8, 5, 5), (8, 1, 5, 5), {"group": 8, "pads": [2, 2, 2, 2]}),
    ((1, 16, 5, 7), (32, 16, 1, 1), {}),
    ((3, 6, 5, 7), (4, 3, 1, 1), {"group": 2, "strides": [2, 2]}),
    ((1, 300, 6, 6), (70, 300, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 8, 9, 9), (8, 1, 3, 3), {"group": 8, "dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ((1, 8, 4, 4), (8, 1, 3, 3), {"group": 8, "strides": [2, 2], "pads": [0, 0, 1, 1]}),
    ((1, 2, 40, 33), (3, 2, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((2, 32, 9, 9), (32, 1, 3, 3), {"group": 32, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 6, 9, 8), (12, 1, 3, 2), {"group": 6, "strides": [2, 1], "dilations": [1, 2],
                                   "pads": [1, 0, 2, 2]}),
    ((1, 6, 30, 40), (6, 1, 3, 3), {"group": 6, "strides": [1, 2], "pads": [1, 1, 1, 1]}),
    ((3, 5, 7, 9), (6, 5, 3, 3), {"pads": [1, 0, 0, 1]}),
    ((4, 16, 14, 14), (8, 16, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 1, 1, 1), (1, 1, 1, 1), {}),
    ((1, 3, 20, 20), (4, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
]


def _geometry(x_shape, w_shape, attrs) -> ConvGeometry:
    strides = tuple(attrs.get("strides", [1, 1]))
    dil = tuple(attrs.get("dilations", [1, 1]))
    begin, _, out = resolve_padding("NOTSET", x_shape[2:], w_shape[2:], strides, dil,
                                    attrs.get("pads"))
    return ConvGeometry(x_shape[0], x_shape[1], x_shape[2], x_shape[3], w_shape[0],
                        attrs.get("group", 1), w_shape[2], w_shape[3], strides[0], strides[1],
                        dil[0], dil[1], begin[0], begin[1], out[0], out[1])


def _expected(x, w, b, z, attrs, act: str) -> np.ndarray:
    y = reference("Conv", [x, w, b], attrs)[0].astype(np.float64)
    if z is not None:
        y = y + z
    if act == "Relu":
        y = np.maximum(y, 0)
    elif act == "Sigmoid":
        y = 1 / (1 + np.exp(-y))
    elif act == "Clip":
        y = np.clip(y, 0, 6)
    return y.astype(np.float32)


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_every_tactic_matches_reference(case, nthreads):
    x_shape, w_shape, attrs = CASES[case]
    geo = _geometry(x_shape, w_shape, attrs)
    x = RNG.standard_normal(x_shape).astype(np.float32)
    w = RNG.standard_normal(w_shape).astype(np.float32)
    b = RNG.standard_normal(w_shape[0]).astype(np.float32)
    z = RNG.standard_normal((geo.n, geo.m, geo.oh, geo.ow)).astype(np.float32)
    act, code = ("Relu", 1) if case % 3 == 0 else ("Sigmoid", 3) if case % 3 == 1 else \
        ("Clip", 7)
    epi = Epilogue(code, 0.0, 6.0) if act == "Clip" else Epilogue(code)
    expected = _expected(x, w, b, z if case % 2 else None, attrs, act)
    tactics = applicable_tactics(geo)
    assert tactics[-1].name == "reference"
    with threads.thread_limit(nthreads):
        for tactic in tactics:
            run = build(tactic, geo, PackedWeights(w, geo.g), epi, nthreads)
            got = run(x, b, z if case % 2 else None)
            # Winograd F(4x4) multiplies by transform entries up to 8: looser, scaled.
            scale = float(np.abs(expected).max()) or 1.0
            tol = 3e-5 * scale if tactic.name == "winograd" else 1e-5 * scale
            assert_close(got, expected, rtol=1e-4, atol=tol)


def test_tactics_cover_the_expected_algorithms():
    assert {t.name for t in applicable_tactics(_geometry((1, 16, 8, 8), (16, 16, 1, 1), {}))} \
        >= {"gemm", "im2col", "im2col_full", "reference"}
    depthwise = _geometry((1, 8, 8, 8), (8, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]})
    assert "depthwise" in {t.name for t in applicable_tactics(depthwise)}
    wino = applicable_tactics(_geometry((1, 16, 8, 8), (16, 16, 3, 3), {"pads": [1, 1, 1, 1]}))
    assert Tactic("winograd", 2) in wino and Tactic("winograd", 4) in wino
    strided = _geometry((1, 16, 8, 8), (16, 16, 3, 3), {"strides": [2, 2]})
    assert "winograd" not in {t.name for t in applicable_tactics(strided)}


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_weight_transform_is_g_w_gt(m):
    w = RNG.standard_normal((5, 3, 3, 3)).astype(np.float32)
    _, g, _ = winograd_matrices(m)
    expected = np.einsum("ik,mckl,jl->ijmc", g, w.astype(np.float64), g)
    assert_close(transform_weights(w, m), expected.reshape((m + 2) ** 2, 5, 3).astype(
        np.float32), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_tile_transforms_match_matrices(m):
    from pyflame_rt.backends.cpu.codegen import _nb_wino

    bt, _, at = winograd_matrices(m)
    a = m + 2
    # One channel, one tile row of 3 tiles: the input kernel reads xp[0, :a, :3m+2].
    xp = RNG.standard_normal((1, a, 3 * m + 2)).astype(np.float32)
    v = np.zeros((a * a, 3), np.float32)
    getattr(_nb_wino, f"wino{m}_in")(xp, v, 0, 1, 0, 1, 3, 3, 0)
    for t in range(3):
        d = xp[0, :, t * m:t * m + a].astype(np.float64)
        assert_close(v[:, t], (bt @ d @ bt.T).reshape(-1).astype(np.float32), rtol=1e-5,
                     atol=1e-5)
    prod = RNG.standard_normal((a * a, 3)).astype(np.float32)
    y = np.zeros((1, m, 3 * m - 1), np.float32)  # the last tile column is cropped by one
    bias = np.array([0.5], np.float32)
    getattr(_nb_wino, f"wino{m}_out")(prod, 0, y, 0, 1, 0, 1, 3, 3, 0, m, 3 * m - 1, bias)
    for t in range(3):
        o = at @ prod[:, t].astype(np.float64).reshape(a, a) @ at.T + 0.5
        width = min(m, 3 * m - 1 - t * m)
        assert_close(y[0, :, t * m:t * m + width], o[:, :width].astype(np.float32),
                     rtol=1e-5, atol=1e-4)


def test_split_range():
    assert split_range(10, 3) == [(0, 4), (4, 8), (8, 10)]
    assert split_range(100, 4, align=16) == [(0, 32), (32, 64), (64, 96), (96, 100)]
    assert split_range(10, 8, minimum=4) == [(0, 5), (5, 10)]
    assert split_range(5, 1) == [(0, 5)]


# -- the runner, the chooser and the timing cache --------------------------------------------


def _conv_model(x_shape, w, b, attrs, *, dynamic_batch=False, act=None):
    from onnx import TensorProto, helper, numpy_helper

    x_dims = ["N", *x_shape[1:]] if dynamic_batch else list(x_shape)
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c" if act else "y"], **attrs)]
    if act:
        nodes.append(helper.make_node(act, ["c"], ["y"]))
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=9).SerializeToString()


def _runner(sess) -> ConvRunner:
    runners = [s.fn for s in sess._plan.steps if isinstance(s.fn, ConvRunner)]
    assert runners, "the Conv was not specialized"
    return runners[0]


@pytest.mark.parametrize("tactic", ["gemm", "im2col", "im2col_full", "winograd:2",
                                    "winograd:4", "reference"])
def test_session_with_forced_tactic(tactic):
    x_shape = (2, 8, 10, 10)
    kernel = 1 if tactic == "gemm" else 3
    w = RNG.standard_normal((12, 8, kernel, kernel)).astype(np.float32)
    b = RNG.standard_normal(12).astype(np.float32)
    attrs = {} if kernel == 1 else {"pads": [1, 1, 1, 1]}
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.pyflame.conv_tactic", tactic)
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(_conv_model(x_shape, w, b, attrs, act="Relu"), opts)
    x = RNG.standard_normal(x_shape).astype(np.float32)
    got = sess.run(None, {"x": x})[0]
    assert _runner(sess).tactic_for(x_shape).label.split(":")[0] == tactic.split(":")[0]
    assert _runner(sess).tactic_for(x_shape).label.startswith(tactic)
    assert_close(got, _expected(x, w, b, None, attrs, "Relu"), rtol=1e-4, atol=3e-5)


def test_dynamic_batch_plans_per_shape_and_keeps_lru():
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(4).astype(np.float32)
    attrs = {"pads": [1, 1, 1, 1]}
    sess = ort.InferenceSession(_conv_model((1, 3, 6, 6), w, b, attrs, dynamic_batch=True))
    runner = _runner(sess)
    for n in (1, 3, 2, 5, 4, 6, 7, 8, 9, 10):
        x = RNG.standard_normal((n, 3, 6, 6)).astype(np.float32)
        assert_close(sess.run(None, {"x": x})[0], _expected(x, w, b, None, attrs, ""),
                     rtol=1e-4, atol=1e-5)
    assert len(runner._plans) == 8  # bounded: the oldest shapes were dropped
    assert (10, 3, 6, 6) in runner._plans and (1, 3, 6, 6) not in runner._plans


def test_1d_convolution_runs_as_2d():
    from onnx import TensorProto, helper, numpy_helper

    w = RNG.standard_normal((6, 4, 3)).astype(np.float32)
    b = RNG.standard_normal(6).astype(np.float32)
    attrs = {"pads": [2, 1], "strides": [2], "dilations": [2]}
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W", "B"], ["y"], **attrs)], "c1",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 17])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    sess = ort.InferenceSession(model.SerializeToString())
    x = RNG.standard_normal((2, 4, 17)).astype(np.float32)
    assert _runner(sess).one_d
    assert_close(sess.run(None, {"x": x})[0], reference("Conv", [x, w, b], attrs)[0],
                 rtol=1e-4, atol=1e-5)


def test_weights_fed_at_run_time_use_the_generic_kernel():
    # An initializer that is also a graph input can be overridden: the packed copy must
    # not be used then.
    from onnx import TensorProto, helper, numpy_helper

    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])], "c",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5]),
         helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    sess = ort.InferenceSession(model.SerializeToString())
    x = RNG.standard_normal((1, 3, 5, 5)).astype(np.float32)
    w2 = -w
    attrs = {"pads": [1, 1, 1, 1]}
    assert_close(sess.run(None, {"x": x})[0], reference("Conv", [x, w], attrs)[0],
                 rtol=1e-4, atol=1e-5)
    assert_close(sess.run(None, {"x": x, "W": w2})[0], reference("Conv", [x, w2], attrs)[0],
                 rtol=1e-4, atol=1e-5)


def test_timing_picks_a_verified_tactic_and_caches_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PYFLAME_RT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(chooser, "TIMING_MIN_FLOPS", 0)
    chooser._caches.clear()
    geo = _geometry((1, 16, 12, 12), (16, 16, 3, 3), {"pads": [1, 1, 1, 1]})
    pack = PackedWeights(RNG.standard_normal((16, 16, 3, 3)).astype(np.float32), 1)
    calls = []
    real = chooser.measure

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(chooser, "measure", counting)
    tactic = chooser.choose(geo, pack, 1, {})
    assert tactic in applicable_tactics(geo)
    files = list(tmp_path.glob("conv-tactics-*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert list(data["entries"].values()) == [tactic.label]
    # A second choice (even in a fresh process: cache reloaded from disk) measures nothing.
    chooser._caches.clear()
    assert chooser.choose(geo, pack, 1, {}) == tactic
    assert len(calls) == 1
    chooser._caches.clear()


def test_reference_is_never_chosen_over_a_working_tactic(tmp_path, monkeypatch):
    # The reference runs its epilogue as numpy passes that the timing leaves out, so it must
    # not win by measurement (nor stay chosen from an older cache entry).
    monkeypatch.setenv("PYFLAME_RT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(chooser, "TIMING_MIN_FLOPS", 0)
    chooser._caches.clear()
    geo = _geometry((1, 16, 9, 9), (24, 16, 1, 1), {})
    pack = PackedWeights(RNG.standard_normal((24, 16, 1, 1)).astype(np.float32), 1)
    key = f"{geo.key()}|n1|t1"
    chooser.timing_cache().put(key, "reference")

    def reference_fastest(geo_, pack_, nthreads, candidates=None):
        return {t.label: (1e-6 if t.name == "reference" else 1e-3)
                for t in candidates or applicable_tactics(geo_)}

    monkeypatch.setattr(chooser, "measure", reference_fastest)
    tactic = chooser.choose(geo, pack, 1, {})
    assert tactic.name != "reference" and tactic in applicable_tactics(geo)
    assert chooser.timing_cache().get(key) == tactic.label
    chooser._caches.clear()


def test_inaccurate_tactic_is_rejected(monkeypatch):
    geo = _geometry((1, 8, 10, 10), (8, 8, 3, 3), {"pads": [1, 1, 1, 1]})
    pack = PackedWeights(RNG.standard_normal((8, 8, 3, 3)).astype(np.float32), 1)
    from pyflame_rt.backends.cpu.conv import tactics

    real_build = tactics.build

    def broken(tactic, *args):
        run = real_build(tactic, *args)
        if tactic.name != "im2col_full":
            return run
        return lambda x, b, z: run(x, b, z) + 1.0  # wrong result, and fast

    monkeypatch.setattr(chooser, "build", broken)
    results = chooser.measure(geo, pack, 1)
    assert results["im2col_full"] == float("inf")
    assert np.isfinite(results["reference"])


def test_heuristic_and_forced_setting():
    pw = _geometry((1, 16, 8, 8), (32, 16, 1, 1), {})
    assert chooser.heuristic(pw) == Tactic("gemm")
    dw = _geometry((1, 8, 8, 8), (8, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]})
    assert chooser.heuristic(dw) == Tactic("depthwise")
    big = _geometry((1, 64, 56, 56), (64, 64, 3, 3), {"pads": [1, 1, 1, 1]})
    assert chooser.heuristic(big) == Tactic("winograd", 4)
    forced = chooser.choose(big, PackedWeights(np.zeros((64, 64, 3, 3), np.float32), 1), 1,
                            {"session.pyflame.conv_tactic": "im2col_full"})
    assert forced == Tactic("im2col_full")
    # A forced tactic that does not apply falls back to the rules.
    assert chooser.choose(pw, PackedWeights(np.zeros((32, 16, 1, 1), np.float32), 1), 1,
                          {"session.pyflame.conv_tactic": "depthwise"}) == Tactic("gemm")


def test_timing_cache_ignores_corrupt_files(tmp_path):
    path = tmp_path / "conv-tactics-x.json"
    path.write_text("{not json")
    cache = chooser.TimingCache(path)
    assert cache.get("k") is None
    cache.put("k", "im2col")
    cache.save()
    assert chooser.TimingCache(path).get("k") == "im2col"


# The depthwise tactic computes output rows in 8-lane vectors: 3x3 kernels at column stride 1
# or 2 from a zero-bordered copy of each plane, wide stride-2 planes (>= 64 columns) straight
# from the input with masked loads at the borders, other kernels through a generic vector
# loop, column strides above 2 through scalar loops; Relu/Clip are applied in registers, the
# other activations (and a residual) after. Widths around 8 and 64 hit every tail.
DEPTHWISE_CASES = [
    ((1, 4, 9, 64), (4, 1, 3, 3), {"group": 4, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((2, 3, 8, 67), (3, 1, 3, 3), {"group": 3, "strides": [2, 2], "pads": [0, 0, 1, 1]}),
    ((1, 2, 7, 70), (2, 1, 3, 3), {"group": 2, "strides": [1, 2], "pads": [1, 0, 1, 2]}),
    ((1, 3, 5, 65), (6, 1, 3, 3), {"group": 3, "strides": [2, 2]}),
    ((1, 5, 6, 37), (5, 1, 3, 3), {"group": 5, "pads": [1, 1, 1, 1]}),
    ((1, 4, 9, 17), (4, 1, 5, 5), {"group": 4, "strides": [2, 2], "pads": [2, 2, 2, 2]}),
    ((1, 4, 10, 23), (4, 1, 3, 3), {"group": 4, "strides": [1, 3], "pads": [1, 1, 1, 1]}),
    ((2, 2, 12, 9), (2, 1, 3, 3), {"group": 2, "dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ((1, 6, 8, 8), (6, 1, 3, 3), {"group": 6, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 1, 1), (2, 1, 1, 1), {"group": 2}),
]
DEPTHWISE_EPILOGUES = [("Relu", 1, 0.0, 0.0), ("Clip", 7, -0.5, 0.75),
                       ("LeakyRelu", 2, 0.1, 0.0), ("Sigmoid", 3, 0.0, 0.0), ("", 0, 0.0, 0.0)]


def _activate(y: np.ndarray, name: str, a0: float, a1: float) -> np.ndarray:
    if name == "Relu":
        return np.maximum(y, 0)
    if name == "Clip":
        return np.clip(y, a0, a1)
    if name == "LeakyRelu":
        return np.where(y >= 0, y, a0 * y)
    if name == "Sigmoid":
        return 1 / (1 + np.exp(-y))
    return y


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("case", range(len(DEPTHWISE_CASES)))
def test_depthwise_vector_paths(case, nthreads):
    x_shape, w_shape, attrs = DEPTHWISE_CASES[case]
    geo = _geometry(x_shape, w_shape, attrs)
    assert geo.depthwise or geo.g == geo.c
    rng = np.random.default_rng(40 + case)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    z = rng.standard_normal((geo.n, geo.m, geo.oh, geo.ow)).astype(np.float32)
    conv = reference("Conv", [x, w, b], attrs)[0].astype(np.float64)
    scale = float(np.abs(conv).max()) + float(np.abs(z).max())
    with threads.thread_limit(nthreads):
        for i, (name, code, a0, a1) in enumerate(DEPTHWISE_EPILOGUES):
            with_z = (case + i) % 2 == 1
            run = build(Tactic("depthwise"), geo, PackedWeights(w, geo.g),
                        Epilogue(code, a0, a1), nthreads)
            got = run(x, b, z if with_z else None)
            expected = _activate(conv + z if with_z else conv, name, a0, a1)
            assert_close(got, expected.astype(np.float32), rtol=1e-4, atol=1e-5 * scale)
