"""The compiled pyflame Attention kernel (``fused._attention_fast``) against onnx.reference.

The reference is the unfused ONNX subgraph the optimizer replaces (MatMul -> split heads ->
scaled Q K^T -> mask -> Softmax -> P V -> merge heads), run by ``ReferenceEvaluator``. The
cases cover what the kernel's job split and mask handling depend on: odd sequence lengths,
few heads (query-row blocks), causal blocks, masks broadcast over batch/heads/queries,
boolean keep/drop masks, batch > 1, one thread and two.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from oracle import assert_close

from pyflame_rt.backends.cpu import fused, threads
from pyflame_rt.backends.cpu.codegen import par

RNG = np.random.default_rng(11)

pytestmark = pytest.mark.skipif(not par.available(),
                                reason="numba or numpy's cblas missing: no compiled path")


def _reference(x, w, b, heads, *, bias=None, keep=None, causal=False, scale=None):
    """The unfused attention subgraph, evaluated by onnx.reference."""
    batch, seq, _ = x.shape
    width = w.shape[1] // 3
    dim = width // heads
    scale = 1.0 / math.sqrt(dim) if scale is None else scale
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
             numpy_helper.from_array(np.array([batch, seq, 3, heads, dim], np.int64), "shp"),
             numpy_helper.from_array(np.array([batch, seq, width], np.int64), "out_shp"),
             numpy_helper.from_array(np.array(scale, np.float32), "scale"),
             numpy_helper.from_array(np.array(-np.inf, np.float32), "ninf")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]),
             helper.make_node("Add", ["xw", "b"], ["qkv0"]),
             helper.make_node("Reshape", ["qkv0", "shp"], ["qkv"]),
             helper.make_node("Transpose", ["qkv"], ["t"], perm=[2, 0, 3, 1, 4]),
             helper.make_node("Split", ["t"], ["q5", "k5", "v5"], axis=0, num_outputs=3),
             helper.make_node("Squeeze", ["q5", "zero"], ["q"]),
             helper.make_node("Squeeze", ["k5", "zero"], ["k"]),
             helper.make_node("Squeeze", ["v5", "zero"], ["v"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["s0"]),
             helper.make_node("Mul", ["s0", "scale"], ["s"])]
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "zero"))
    last = "s"
    if causal:
        future = np.triu(np.ones((seq, seq), bool), 1)
        inits.append(numpy_helper.from_array(future, "future"))
        nodes.append(helper.make_node("Where", ["future", "ninf", last], ["s_causal"]))
        last = "s_causal"
    if keep is not None:
        inits.append(numpy_helper.from_array(keep, "keep"))
        nodes.append(helper.make_node("Where", ["keep", last, "ninf"], ["s_keep"]))
        last = "s_keep"
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "bias"))
        nodes.append(helper.make_node("Add", [last, "bias"], ["s_bias"]))
        last = "s_bias"
    nodes += [helper.make_node("Softmax", [last], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "v"], ["o"]),
              helper.make_node("Transpose", ["o"], ["o2"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["o2", "out_shp"], ["y"])]
    graph = helper.make_graph(
        nodes, "attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return ReferenceEvaluator(model).run(None, {"x": x})[0]


def _inputs(batch, seq, hidden):
    x = RNG.standard_normal((batch, seq, hidden)).astype(np.float32)
    w = (RNG.standard_normal((hidden, 3 * hidden)) / math.sqrt(hidden)).astype(np.float32)
    b = (RNG.standard_normal(3 * hidden) / 4).astype(np.float32)
    return x, w, b


def _fast(x, w, b, heads, nthreads, **kw):
    with threads.thread_limit(nthreads):
        return fused.attention(x, w, b, kw.pop("bias", None), kw.pop("keep", None),
                               num_heads=heads, **kw)


SHAPES = {
    "vit_like_odd_seq_few_heads": (1, 197, 48, 3),
    "batch3_odd": (3, 37, 32, 4),
    "long_two_heads": (2, 130, 32, 2),
    "tiny": (2, 5, 8, 2),
    "batch8": (8, 16, 16, 2),
}


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_unmasked_and_causal(shape, causal, nthreads):
    batch, seq, hidden, heads = SHAPES[shape]
    x, w, b = _inputs(batch, seq, hidden)
    got = _fast(x, w, b, heads, nthreads, unidirectional=int(causal))
    assert_close(got, _reference(x, w, b, heads, causal=causal), rtol=1e-4, atol=1e-5)


def _padding_bias(batch, seq):
    lengths = seq - (np.arange(batch) * 7) % max(seq - 1, 1)
    keep = np.arange(seq)[None, :] < lengths[:, None]
    return np.where(keep, 0.0, -10000.0).astype(np.float32).reshape(batch, 1, 1, seq)


BIAS_SHAPES = ("padding_b11s", "per_query_1ss", "full_bhss", "per_head_1h1s", "keys_only_s")


def _bias(kind, batch, heads, seq):
    if kind == "padding_b11s":
        return _padding_bias(batch, seq)
    shape = {"per_query_1ss": (1, 1, seq, seq), "full_bhss": (batch, heads, seq, seq),
             "per_head_1h1s": (1, heads, 1, seq), "keys_only_s": (seq,)}[kind]
    return (RNG.standard_normal(shape) * 2).astype(np.float32)


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", BIAS_SHAPES)
def test_additive_bias(kind, causal, nthreads):
    batch, seq, hidden, heads = 3, 67, 24, 3
    x, w, b = _inputs(batch, seq, hidden)
    bias = _bias(kind, batch, heads, seq)
    got = _fast(x, w, b, heads, nthreads, bias=bias, unidirectional=int(causal))
    expected = _reference(x, w, b, heads, bias=bias, causal=causal)
    assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("mask_keep", [1, 0])
@pytest.mark.parametrize("mask_shape", [(2, 1, 45, 45), (45, 45), (2, 3, 1, 45)])
def test_boolean_mask(mask_shape, mask_keep, nthreads):
    batch, seq, hidden, heads = 2, 45, 24, 3
    x, w, b = _inputs(batch, seq, hidden)
    keep = RNG.random(mask_shape) < 0.6
    keep[..., 0] = True  # every row keeps a key: no all-masked row
    mask = keep if mask_keep else ~keep
    bias = _padding_bias(batch, seq)
    bias[..., 0] = 0.0
    with threads.thread_limit(nthreads):
        got = fused.attention(x, w, b, bias, mask, num_heads=heads, mask_keep=mask_keep)
    expected = _reference(x, w, b, heads, bias=bias, keep=keep)
    assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_scale_attribute_and_no_bias_input():
    batch, seq, hidden, heads = 2, 33, 16, 2
    x, w, _ = _inputs(batch, seq, hidden)
    with threads.thread_limit(2):
        got = fused.attention(x, w, None, None, None, num_heads=heads, scale=0.3)
    zero = np.zeros(3 * hidden, np.float32)
    assert_close(got, _reference(x, w, zero, heads, scale=0.3), rtol=1e-4, atol=1e-5)


def test_fully_masked_row_gives_nan_like_softmax():
    """A query with no visible key: NaN for that row (as the unfused Softmax of all -inf),
    the other rows unaffected."""
    batch, seq, hidden, heads = 1, 40, 16, 2
    x, w, b = _inputs(batch, seq, hidden)
    keep = np.ones((1, 1, seq, seq), bool)
    keep[0, 0, 7] = False
    with threads.thread_limit(2):
        got = fused.attention(x, w, b, None, keep, num_heads=heads)
    assert np.isnan(got[0, 7]).all()
    rows = np.arange(seq) != 7
    expected = _reference(x, w, b, heads, keep=np.where(keep, True, True))
    assert_close(got[0, rows], expected[0, rows], rtol=1e-4, atol=1e-5)


def test_large_logits_stay_finite():
    """Scores far from zero (hundreds): the max subtraction keeps exp in range."""
    batch, seq, hidden, heads = 2, 50, 16, 2
    x, w, b = _inputs(batch, seq, hidden)
    x *= 30
    got = _fast(x, w, b, heads, 2)
    assert np.isfinite(got).all()
    assert_close(got, _reference(x, w, b, heads), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("batch,heads,seq,causal", [(1, 3, 197, False), (1, 12, 128, False),
                                                    (8, 12, 128, False), (1, 2, 64, True),
                                                    (1, 1, 31, True)])
def test_row_blocks_cover_every_query(batch, heads, seq, causal, nthreads):
    """The job split (query-row blocks) tiles each head exactly."""
    with threads.thread_limit(nthreads):
        rows = fused._attention_rows(batch, heads, seq, causal)
    assert 1 <= rows <= seq
    if rows < seq:
        assert rows % 8 == 0 and rows >= fused._ATTN_MIN_ROWS
    if causal and seq >= 2 * fused._ATTN_MIN_ROWS:
        assert rows < seq  # the first block skips the keys it cannot see


def test_cases_take_the_compiled_path(monkeypatch):
    """The cases above exercise the numba kernel, not the numpy fallback."""
    calls = []
    original = fused._attention_fast

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(fused, "_attention_fast", spy)
    batch, seq, hidden, heads = 2, 45, 24, 3
    x, w, b = _inputs(batch, seq, hidden)
    _fast(x, w, b, heads, 2, bias=_padding_bias(batch, seq), keep=np.ones((seq, seq), bool))
    assert calls == [True]


@pytest.mark.parametrize("fill", [np.float32(np.finfo(np.float32).min), -np.inf])
def test_constant_causal_bias_runs_as_unidirectional(fill, monkeypatch):
    """GPT-2's exported causal mask (a constant additive bias) gives the same result as the
    bias itself, through the causal kernel (which skips the masked keys)."""
    from test_fused_fastpaths import _one_op_session

    batch, seq, hidden, heads = 2, 70, 24, 3
    x, w, b = _inputs(batch, seq, hidden)
    bias = np.where(np.triu(np.ones((seq, seq), bool), 1), fill, 0).astype(np.float32)
    bias = bias.reshape(1, 1, seq, seq)
    assert fused._is_causal_bias(bias)
    assert not fused._is_causal_bias(bias.T.copy())
    seen = []
    original = fused._attention_fast

    def spy(qkv, batch, seq, heads, dim, attention_bias, mask, scale, unidirectional, *rest):
        seen.append((attention_bias is None, unidirectional))
        return original(qkv, batch, seq, heads, dim, attention_bias, mask, scale,
                        unidirectional, *rest)

    monkeypatch.setattr(fused, "_attention_fast", spy)
    sess, feeds = _one_op_session("Attention", [x, w, b, bias], [False, True, True, True],
                                  {"num_heads": heads}, domain="pyflame", nthreads=2)
    got = sess.run(None, feeds)[0]
    assert seen == [(True, 1)]
    assert_close(got, _reference(x, w, b, heads, bias=bias), rtol=1e-4, atol=1e-5)
