"""Long runs: thousands of inferences must not grow the process (no leak through per-run state
or through per-shape plan caches, which must stay bounded)."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest
from fuzz_seeds import onnx_seeds
from onnx import TensorProto, helper

import pyflame_rt as ort

RUNS = 5000
WARMUP = 500
MAX_GROWTH = 0.05

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                                reason="reads VmRSS from /proc (Linux only)")


def _rss() -> int:
    gc.collect()
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line in /proc/self/status")


def _check_growth(run_one, runs: int = RUNS) -> None:
    for i in range(WARMUP):
        run_one(i)
    before = _rss()
    for i in range(WARMUP, WARMUP + runs):
        run_one(i)
    after = _rss()
    growth = (after - before) / before
    print(f"RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB over {runs} runs "
          f"({growth:+.2%})")
    assert growth < MAX_GROWTH, f"RSS grew {growth:.1%} over {runs} runs after warm-up"


@pytest.mark.parametrize("seed", [s for s in onnx_seeds() if s.name in ("mlp", "transformer",
                                                                        "control_flow")],
                         ids=lambda s: s.name)
def test_rss_is_flat_over_5000_inferences(seed) -> None:
    sess = ort.InferenceSession(seed.data)
    rng = np.random.default_rng(0)
    feeds = [{k: (rng.standard_normal(v.shape).astype(v.dtype) if v.dtype.kind == "f" else v)
              for k, v in seed.feeds.items()} for _ in range(16)]
    expected = sess.run(None, feeds[0])

    def run_one(i: int) -> None:
        out = sess.run(None, feeds[i % len(feeds)])
        if i % len(feeds) == 0:  # the answer does not drift either
            for o, e in zip(out, expected, strict=True):
                np.testing.assert_array_equal(o, e)

    _check_growth(run_one)


def _two_symbolic_dims_model() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0]),
         helper.make_node("MatMul", ["r", "t"], ["m"]),
         helper.make_node("ReduceSum", ["m"], ["y"], keepdims=0)],
        "shapes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["A", "B"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=8).SerializeToString()


def test_rss_is_flat_when_every_run_has_a_new_shape() -> None:
    """5,500 distinct input shapes: a per-shape plan cache must evict, not grow without end."""
    sess = ort.InferenceSession(_two_symbolic_dims_model())
    shapes = [(a, b) for a in range(1, 81) for b in range(1, 81)]
    order = np.random.default_rng(5).permutation(len(shapes))
    ones = np.ones(80 * 80, np.float32)

    def run_one(i: int) -> None:
        a, b = shapes[order[i]]
        (y,) = sess.run(None, {"x": ones[:a * b].reshape(a, b)})
        assert y == a * a * b  # every entry of the a x a product is b

    _check_growth(run_one)


def test_the_rss_check_catches_a_leak() -> None:
    """The measurement is sensitive enough: a small per-run leak adding up to 10% of the
    process (sized from the current RSS, which depends on what ran before in this process)
    must fail it."""
    kept = []
    per_run = max(4096, int(_rss() * 0.10 / RUNS))

    def leaky(i: int) -> None:
        if i >= WARMUP:
            # Filled, not bytes(n): CPython callocs zeroed bytes, whose pages never count.
            kept.append(b"\x01" * per_run + b"%d" % i)

    with pytest.raises(AssertionError, match="RSS grew"):
        _check_growth(leaky)
    assert len(kept) == RUNS
