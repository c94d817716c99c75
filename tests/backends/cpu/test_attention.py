"""Attention-family kernels against onnx.reference (and the ops' ONNX function bodies)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator
from oracle import assert_close, check_kernel, one_node_model, reference

import pyflame_rt
from pyflame_rt.backends.cpu.attention import (
    attention_23,
    attention_24,
    attention_25,
    causal_conv_with_state,
    flex_attention,
    linear_attention,
    rotary_embedding,
    swiglu,
    tensor_scatter,
)
from pyflame_rt.ops import KernelContext, lookup
from pyflame_rt.types import DType

BF16 = np.dtype(ml_dtypes.bfloat16)
# float16: one unit in the last place passes (the reference rounds after every numpy step).
TOL = {np.dtype(np.float32): {"rtol": 1e-4, "atol": 1e-5},
       np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-12},
       np.dtype(np.float16): {"rtol": 1e-3, "atol": 1e-4},
       BF16: {"rtol": 2 ** -6, "atol": 1e-2}}


def _ctx(noutputs: int, opset: int = 23) -> KernelContext:
    return KernelContext(node=None, noutputs=noutputs, opset=opset,
                         output_present=[True] * noutputs)


def _rand(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def test_registered_versions():
    assert lookup("Attention", opset=23).fn is attention_23
    assert lookup("Attention", opset=24).fn is attention_24
    assert lookup("Attention", opset=25).fn is attention_25
    assert lookup("Attention", opset=28).fn is attention_25
    assert lookup("RotaryEmbedding", opset=23).fn is rotary_embedding
    assert lookup("SwiGLU", opset=28).fn is swiglu
    assert lookup("TensorScatter", opset=24).fn is tensor_scatter
    assert lookup("LinearAttention", opset=27).fn is linear_attention
    assert lookup("CausalConvWithState", opset=27).fn is causal_conv_with_state
    assert lookup("FlexAttention", "ai.onnx.preview", opset=1).fn is flex_attention


# ------------------------------------------------------------------------------------ Attention

def _check_attention(fn, inputs, attrs, *, opset, noutputs=1, dtype=np.float32):
    tol = TOL[np.dtype(dtype)]
    ctx = _ctx(noutputs, opset) if noutputs > 1 else None
    check_kernel(fn, "Attention", inputs, attrs, noutputs=noutputs, opset=opset, _ctx=ctx,
                 **tol)


ATTENTION_23_CASES = {
    "4d": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), None, {}),
    "4d_diff_v_head": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 10), None, {}),
    "4d_gqa": ((2, 6, 4, 8), (2, 2, 6, 8), (2, 2, 6, 8), None, {}),
    "4d_mqa_causal": ((1, 4, 5, 8), (1, 1, 5, 8), (1, 1, 5, 4), None, {"is_causal": 1}),
    "4d_causal_rect": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), None, {"is_causal": 1}),
    "4d_scaled": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), None, {"scale": 0.1}),
    "4d_softcap": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), None, {"softcap": 2.0}),
    "mask_2d_float": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), ((4, 6), np.float32), {}),
    "mask_3d_heads": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), ((3, 4, 6), np.float32), {}),
    "mask_4d_bool": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), ((2, 3, 4, 6), np.bool_), {}),
    "mask_bool_causal": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), ((4, 6), np.bool_),
                         {"is_causal": 1}),
    "mask_float_causal": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), ((2, 1, 4, 6), np.float32),
                          {"is_causal": 1}),
    "mask_short_padded": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), ((2, 3, 4, 4), np.float32),
                          {}),
    "mask_short_bool": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), ((4, 5), np.bool_), {}),
    "3d": ((2, 4, 24), (2, 6, 24), (2, 6, 24), None, {"q_num_heads": 3, "kv_num_heads": 3}),
    "3d_gqa_causal": ((2, 4, 72), (2, 6, 24), (2, 6, 30), None,
                      {"q_num_heads": 9, "kv_num_heads": 3, "is_causal": 1}),
    "3d_mask_softcap": ((2, 4, 24), (2, 6, 24), (2, 6, 24), ((4, 6), np.float32),
                        {"q_num_heads": 3, "kv_num_heads": 3, "softcap": 3.0}),
}


@pytest.mark.parametrize("case", sorted(ATTENTION_23_CASES))
def test_attention_23_matches_reference(case):
    qs, ks, vs, mask, attrs = ATTENTION_23_CASES[case]
    rng = np.random.default_rng(0)
    inputs = [_rand(rng, qs), _rand(rng, ks), _rand(rng, vs)]
    if mask is not None:
        shape, mdtype = mask
        m = rng.random(shape) > 0.3 if mdtype == np.bool_ else _rand(rng, shape, mdtype)
        inputs.append(m)
    _check_attention(attention_23, inputs, attrs, opset=23)


@pytest.mark.parametrize("dtype", [np.float16, BF16, np.float64])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_dtypes(dtype, causal):
    rng = np.random.default_rng(1)
    inputs = [_rand(rng, (2, 4, 5, 8), dtype), _rand(rng, (2, 2, 7, 8), dtype),
              _rand(rng, (2, 2, 7, 8), dtype), _rand(rng, (5, 7), dtype)]
    _check_attention(attention_23, inputs, {"is_causal": causal}, opset=23, dtype=dtype)


@pytest.mark.parametrize("three_d", [False, True])
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_past_present_and_qk_output(mode, three_d):
    rng = np.random.default_rng(2)
    if three_d:
        q, k, v = _rand(rng, (2, 4, 24)), _rand(rng, (2, 3, 24)), _rand(rng, (2, 3, 30))
        attrs = {"q_num_heads": 3, "kv_num_heads": 3}
    else:
        q, k, v = _rand(rng, (2, 3, 4, 8)), _rand(rng, (2, 3, 3, 8)), _rand(rng, (2, 3, 3, 10))
        attrs = {}
    past_k, past_v = _rand(rng, (2, 3, 5, 8)), _rand(rng, (2, 3, 5, 10))
    mask = _rand(rng, (2, 1, 4, 8))
    attrs.update(qk_matmul_output_mode=mode, is_causal=1)
    # The reference reports the soft-capped scores in mode 0; the spec and the function body
    # report the raw product, so soft cap is only combined with modes 1-3 here.
    if mode:
        attrs["softcap"] = 1.5
    _check_attention(attention_23, [q, k, v, mask, past_k, past_v], attrs, opset=23,
                     noutputs=4)


def _function_body_outputs(op_type, inputs, attrs, *, opset, noutputs, domain=""):
    """Run the op's context-dependent ONNX function body with onnx.reference."""
    model = one_node_model(op_type, inputs, attrs, noutputs=noutputs, opset=opset)
    node = model.graph.node[0]
    types = [helper.make_tensor_type_proto(DType.from_numpy(np.asarray(a).dtype).value, None)
             .SerializeToString() if a is not None else b"" for a in inputs]
    schema = onnx.defs.get_schema(op_type, opset, domain)
    body = onnx.FunctionProto()
    body.ParseFromString(schema.get_context_dependent_function(node.SerializeToString(), types))
    body.domain, body.name = "fnbody", op_type
    node.domain = "fnbody"
    node.input.extend([""] * (len(body.input) - len(node.input)))
    model.functions.append(body)
    model.opset_import.append(helper.make_opsetid("fnbody", 1))
    feeds = {f"in{i}": a for i, a in enumerate(inputs) if a is not None}
    return ReferenceEvaluator(model).run(None, feeds)


def test_attention_mode0_with_softcap_reports_raw_scores():
    rng = np.random.default_rng(3)
    inputs = [_rand(rng, (1, 2, 3, 4)), _rand(rng, (1, 2, 5, 4)), _rand(rng, (1, 2, 5, 4))]
    attrs = {"softcap": 0.5, "qk_matmul_output_mode": 0}
    expected = _function_body_outputs("Attention", inputs, attrs, opset=23, noutputs=4)
    got = attention_23(*inputs, **attrs, _ctx=_ctx(4))
    for g, e in zip(got, expected):
        if e is not None and np.asarray(e).size:
            assert_close(g, e, rtol=1e-5, atol=1e-6)
    # Raw scores can exceed the soft cap; the capped ones cannot.
    assert np.abs(got[3]).max() > 0.5


def test_attention_softmax_precision_and_fully_masked_rows():
    rng = np.random.default_rng(4)
    q, k, v = (_rand(rng, (1, 2, 3, 8), np.float16) for _ in range(3))
    mask = np.array([[True, False, True], [False, False, False], [True, True, True]])
    attrs = {"qk_matmul_output_mode": 3, "softmax_precision": 1}
    _check_attention(attention_23, [q, k, v, mask], attrs, opset=23, noutputs=4,
                     dtype=np.float16)
    y, _, _, probs = attention_23(q, k, v, mask, **attrs, _ctx=_ctx(4))
    assert not np.isnan(y).any()
    assert (y[:, :, 1] == 0).all() and (probs[:, :, 1] == 0).all()
    assert probs.dtype == np.float16


@pytest.mark.parametrize("precision", [1, 10, 11, 16])
def test_attention_softmax_precision_values(precision):
    rng = np.random.default_rng(5)
    inputs = [_rand(rng, (1, 2, 3, 8)), _rand(rng, (1, 2, 4, 8)), _rand(rng, (1, 2, 4, 8))]
    attrs = {"softmax_precision": precision}
    tol = {10: TOL[np.dtype(np.float16)], 16: TOL[BF16]}.get(precision, TOL[np.dtype("f4")])
    check_kernel(attention_23, "Attention", inputs, attrs, opset=23, **tol)


ATTENTION_24_CASES = {
    "causal_prefill": ((3, 2, 2, 8), (3, 2, 6, 8), None, [2, 4, 6], 1),
    "causal_decode_gqa": ((2, 4, 1, 8), (2, 2, 8, 8), None, [3, 8], 1),
    "negative_offset": ((1, 2, 4, 8), (1, 2, 4, 8), None, [2], 1),
    "mask_composition": ((2, 2, 3, 8), (2, 2, 6, 8), ((2, 1, 3, 6), np.bool_), [4, 6], 1),
    "padded_no_causal": ((2, 3, 4, 8), (2, 3, 6, 8), ((2, 3, 4, 4), np.float32), [4, 3], 0),
}


@pytest.mark.parametrize("case", sorted(ATTENTION_24_CASES))
def test_attention_24_nonpad_kv_seqlen(case):
    qs, ks, mask, lengths, causal = ATTENTION_24_CASES[case]
    rng = np.random.default_rng(6)
    m = None
    if mask is not None:
        shape, mdtype = mask
        m = rng.random(shape) > 0.2 if mdtype == np.bool_ else _rand(rng, shape)
    inputs = [_rand(rng, qs), _rand(rng, ks), _rand(rng, ks), m, None, None,
              np.array(lengths, dtype=np.int64)]
    _check_attention(attention_24, inputs, {"is_causal": causal}, opset=24)


ATTENTION_25_CASES = {
    "left_causal": ({"is_causal": 1, "left_window_size": 2}, None, False, None),
    "bidirectional": ({"left_window_size": 1, "right_window_size": 2}, None, False, None),
    "right_only": ({"right_window_size": 0}, None, False, None),
    "defaults": ({"left_window_size": -1, "right_window_size": -1}, None, False, None),
    "with_past": ({"is_causal": 1, "left_window_size": 2}, None, True, None),
    "ext_cache_mask": ({"is_causal": 1, "left_window_size": 2}, ((1, 8), np.float32), False,
                       [5, 8]),
    "rank1_bool_mask": ({"is_causal": 1, "left_window_size": 2}, ((6,), np.bool_), False, None),
    "gqa_mode3_softcap": ({"is_causal": 1, "left_window_size": 2, "qk_matmul_output_mode": 3,
                           "softcap": 2.0, "softmax_precision": 11}, ((2, 4, 4, 6), np.bool_),
                          False, None),
}


@pytest.mark.parametrize("case", sorted(ATTENTION_25_CASES))
def test_attention_25_windows(case):
    attrs, mask, past, lengths = ATTENTION_25_CASES[case]
    rng = np.random.default_rng(7)
    kv_len = 8 if lengths else (2 if past else 6)
    q = _rand(rng, (2, 4, 4, 8))
    k, v = _rand(rng, (2, 2, kv_len, 8)), _rand(rng, (2, 2, kv_len, 6))
    m = None
    if mask is not None:
        shape, mdtype = mask
        m = rng.random(shape) > 0.2 if mdtype == np.bool_ else _rand(rng, shape)
    pk = pv = None
    if past:
        pk, pv = _rand(rng, (2, 2, 4, 8)), _rand(rng, (2, 2, 4, 6))
    nl = None if lengths is None else np.array(lengths, dtype=np.int64)
    noutputs = 4 if attrs.get("qk_matmul_output_mode") else (3 if past else 1)
    _check_attention(attention_25, [q, k, v, m, pk, pv, nl], attrs, opset=25,
                     noutputs=noutputs)


BLOCKED_CASES = {
    "causal_gqa": (24, (3, 4, 9, 8), (3, 2, 9, 8), None, None, None, {"is_causal": 1}),
    "causal_one_batch": (23, (1, 2, 11, 4), (1, 2, 11, 4), ((11, 11), np.float32), None, None,
                         {"is_causal": 1, "softcap": 1.0}),
    "causal_past_mask": (23, (2, 2, 7, 8), (2, 2, 3, 8), ((2, 1, 7, 10), np.float32), 7, None,
                         {"is_causal": 1}),
    "nonpad_dead_rows": (24, (2, 2, 8, 8), (2, 2, 8, 8), None, None, [3, 8], {"is_causal": 1}),
    "window_bool_mask": (25, (2, 4, 9, 8), (2, 2, 12, 8), ((4, 9, 12), np.bool_), None, None,
                         {"left_window_size": 2, "right_window_size": 1}),
    "plain_mask_3d": (23, (2, 3, 5, 4), (2, 3, 6, 4), ((3, 5, 6), np.float32), None, None, {}),
}


@pytest.mark.parametrize("block", [1, 40, 200])
@pytest.mark.parametrize("case", sorted(BLOCKED_CASES))
def test_attention_in_small_blocks(case, block, monkeypatch):
    """Blocks of rows/batches (and causal key-range skipping) give the unblocked result."""
    import pyflame_rt.backends.cpu.attention as attention_module

    monkeypatch.setattr(attention_module, "_BLOCK_ELEMENTS", block)
    monkeypatch.setattr(attention_module, "_MIN_BLOCK_ROWS", 1)
    opset, qs, ks, mask, past, lengths, attrs = BLOCKED_CASES[case]
    rng = np.random.default_rng(20)
    m = None
    if mask is not None:
        shape, mdtype = mask
        m = rng.random(shape) > 0.3 if mdtype == np.bool_ else _rand(rng, shape)
    pk = pv = None
    if past:
        pk, pv = _rand(rng, (*ks[:2], past, ks[3])), _rand(rng, (*ks[:2], past, ks[3]))
    inputs = [_rand(rng, qs), _rand(rng, ks), _rand(rng, ks), m, pk, pv]
    if opset >= 24:
        inputs.append(None if lengths is None else np.array(lengths, dtype=np.int64))
    fn = {23: attention_23, 24: attention_24, 25: attention_25}[opset]
    _check_attention(fn, inputs, attrs, opset=opset)


def test_attention_errors():
    rng = np.random.default_rng(8)
    q, k, v = _rand(rng, (1, 4, 3, 8)), _rand(rng, (1, 3, 3, 8)), _rand(rng, (1, 3, 3, 8))
    with pytest.raises(ValueError, match="multiple of the number of key/value heads"):
        attention_23(q, k, v)
    with pytest.raises(ValueError, match="q_num_heads and kv_num_heads"):
        attention_23(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="past_key and past_value"):
        attention_23(k, k, v, None, _rand(rng, (1, 3, 2, 8)), None)
    with pytest.raises(ValueError, match="past_key"):
        attention_23(k, k, v, None, _rand(rng, (1, 3, 2, 4)), _rand(rng, (1, 3, 2, 8)))
    with pytest.raises(ValueError, match="attn_mask shape"):
        attention_23(k, k, v, _rand(rng, (2, 3, 3)))
    with pytest.raises(ValueError, match="cannot be combined"):
        attention_24(k, k, v, None, k, v, np.array([3]))
    with pytest.raises(ValueError, match="only for 3-D"):
        attention_25(k, k, v, q_num_heads=3, kv_num_heads=3)


def test_attention_does_not_modify_inputs():
    rng = np.random.default_rng(9)
    inputs = [_rand(rng, (1, 2, 3, 4)), _rand(rng, (1, 2, 3, 4)), _rand(rng, (1, 2, 3, 4)),
              _rand(rng, (3, 3)), _rand(rng, (1, 2, 2, 4)), _rand(rng, (1, 2, 2, 4))]
    copies = [a.copy() for a in inputs]
    attention_23(*inputs, softcap=1.0, _ctx=_ctx(4))
    for a, c in zip(inputs, copies):
        np.testing.assert_array_equal(a, c)


def test_attention_session_with_omitted_outputs():
    rng = np.random.default_rng(10)
    q, k, v = _rand(rng, (1, 2, 3, 4)), _rand(rng, (1, 2, 5, 4)), _rand(rng, (1, 2, 5, 4))
    node = helper.make_node("Attention", ["q", "k", "v"], ["y", "", "", "qk"],
                            qk_matmul_output_mode=2, is_causal=1)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, list(a.shape))
         for n, a in (("q", q), ("k", k), ("v", v))],
        [helper.make_value_info("y", onnx.TypeProto()),
         helper.make_value_info("qk", onnx.TypeProto())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10)
    feeds = {"q": q, "k": k, "v": v}
    expected = ReferenceEvaluator(model).run(None, feeds)
    got = pyflame_rt.InferenceSession(model.SerializeToString()).run(None, feeds)
    for g, e in zip(got, expected):
        assert_close(g, e, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ RotaryEmbedding

@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16])
@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rot_dim", [0, 4])
@pytest.mark.parametrize("with_pos", [True, False])
def test_rotary_embedding_4d(dtype, interleaved, rot_dim, with_pos):
    rng = np.random.default_rng(11)
    x = _rand(rng, (2, 4, 3, 8), dtype)
    half = (rot_dim or 8) // 2
    if with_pos:
        cos, sin = _rand(rng, (20, half), dtype), _rand(rng, (20, half), dtype)
        pos = rng.integers(0, 20, (2, 3)).astype(np.int64)
    else:
        cos, sin = _rand(rng, (2, 3, half), dtype), _rand(rng, (2, 3, half), dtype)
        pos = None
    attrs = {"interleaved": interleaved, "rotary_embedding_dim": rot_dim}
    check_kernel(rotary_embedding, "RotaryEmbedding", [x, cos, sin, pos], attrs, opset=23,
                 **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_embedding_3d(interleaved):
    rng = np.random.default_rng(12)
    x = _rand(rng, (2, 3, 32))
    cos, sin = _rand(rng, (10, 2)), _rand(rng, (10, 2))
    pos = rng.integers(0, 10, (2, 3)).astype(np.int64)
    attrs = {"num_heads": 4, "interleaved": interleaved, "rotary_embedding_dim": 4}
    check_kernel(rotary_embedding, "RotaryEmbedding", [x, cos, sin, pos], attrs, opset=23)


def test_rotary_embedding_errors():
    x = np.zeros((1, 3, 8), np.float32)
    cache = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="num_heads"):
        rotary_embedding(x, cache, cache, np.zeros((1, 3), np.int64))
    with pytest.raises(ValueError, match="position_ids"):
        rotary_embedding(x, cache, cache, np.full((1, 3), 9, np.int64), num_heads=2)
    with pytest.raises(ValueError, match="last dimension"):
        rotary_embedding(x, cache, cache, np.zeros((1, 3), np.int64), num_heads=1)


# --------------------------------------------------------------------------------------- SwiGLU

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, BF16])
@pytest.mark.parametrize("alpha", [1.0, 0.5, 1.702])
def test_swiglu(dtype, alpha):
    rng = np.random.default_rng(13)
    a, b = _rand(rng, (3, 5, 7), dtype) * 4, _rand(rng, (3, 5, 7), dtype)
    check_kernel(swiglu, "SwiGLU", [a, b], {"alpha": alpha}, opset=28, **TOL[np.dtype(dtype)])


def test_swiglu_rejects_broadcasting():
    with pytest.raises(ValueError, match="one shape"):
        swiglu(np.zeros((2, 3), np.float32), np.zeros((1, 3), np.float32))


# -------------------------------------------------------------------------------- TensorScatter

@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_, np.float16])
@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("axis", [-2, 1, 2, -1])
def test_tensor_scatter(dtype, mode, axis):
    rng = np.random.default_rng(14)
    cache_shape = [2, 3, 6, 4]
    upd_shape = list(cache_shape)
    ax = axis % 4
    upd_shape[ax] = 2
    cache = (rng.standard_normal(cache_shape) * 5).astype(dtype)
    update = (rng.standard_normal(upd_shape) * 5).astype(dtype)
    cap = cache_shape[ax]
    starts = [cap - 1, 0] if mode == "circular" else [cap - 2, 1]
    inputs = [cache, update, np.array(starts, dtype=np.int64)]
    check_kernel(tensor_scatter, "TensorScatter", inputs, {"axis": axis, "mode": mode},
                 opset=24)


def test_tensor_scatter_default_indices_and_no_aliasing():
    cache = np.zeros((2, 5, 3), np.float32)
    update = np.ones((2, 2, 3), np.float32)
    check_kernel(tensor_scatter, "TensorScatter", [cache, update, None], {"axis": 1}, opset=24)
    out = tensor_scatter(cache, update, axis=1)
    assert (cache == 0).all() and out[:, :2].all() and not out[:, 2:].any()


def test_tensor_scatter_errors():
    cache, update = np.zeros((2, 4, 3), np.float32), np.ones((2, 2, 3), np.float32)
    with pytest.raises(ValueError, match="linear TensorScatter"):
        tensor_scatter(cache, update, np.array([3, 0]), axis=1)
    with pytest.raises(ValueError, match="non-batch axis"):
        tensor_scatter(cache, update, axis=0)
    with pytest.raises(ValueError, match="mode"):
        tensor_scatter(cache, update, mode="ring", axis=1)


# ------------------------------------------------------------------------------ LinearAttention

LINEAR_CASES = {
    "linear": ("linear", 4, 4, False, None, None),
    "gated": ("gated", 4, 4, False, "dim", None),
    "gated_per_head": ("gated", 4, 4, True, "head", None),
    "delta": ("delta", 4, 4, False, None, "head"),
    "gated_delta": ("gated_delta", 4, 4, True, "dim", "head"),
    "gated_delta_beta_scalar": ("gated_delta", 4, 4, False, "dim", "one"),
    "gqa": ("gated_delta", 8, 4, True, "head", "head"),
    "mqa": ("gated_delta", 8, 1, False, "dim", "one"),
}


@pytest.mark.parametrize("case", sorted(LINEAR_CASES))
@pytest.mark.parametrize("steps", [1, 5])
def test_linear_attention(case, steps):
    rule, hq, hkv, past, decay_kind, beta_kind = LINEAR_CASES[case]
    rng = np.random.default_rng(15)
    b, dk, dv = 2, 4, 3
    q = _rand(rng, (b, steps, hq * dk))
    k = _rand(rng, (b, steps, hkv * dk))
    k /= np.linalg.norm(k.reshape(b, steps, hkv, dk), axis=-1).repeat(dk, -1)
    v = _rand(rng, (b, steps, hkv * dv))
    state = _rand(rng, (b, hkv, dk, dv)) if past else None
    decay = None
    if decay_kind:
        width = hkv if decay_kind == "head" else hkv * dk
        decay = -rng.random((b, steps, width)).astype(np.float32)
    beta = None
    if beta_kind:
        beta = rng.random((b, steps, hkv if beta_kind == "head" else 1)).astype(np.float32)
    attrs = {"update_rule": rule, "q_num_heads": hq, "kv_num_heads": hkv}
    check_kernel(linear_attention, "LinearAttention", [q, k, v, state, decay, beta], attrs,
                 noutputs=2, opset=27, rtol=1e-4, atol=1e-5)


def test_linear_attention_fp16_and_scale():
    rng = np.random.default_rng(16)
    q, k, v = (_rand(rng, (1, 3, 8), np.float16) for _ in range(3))
    decay = -rng.random((1, 3, 2)).astype(np.float16)
    beta = rng.random((1, 3, 2)).astype(np.float16)
    attrs = {"q_num_heads": 2, "kv_num_heads": 2, "scale": 0.25}
    check_kernel(linear_attention, "LinearAttention", [q, k, v, None, decay, beta], attrs,
                 noutputs=2, opset=27, **TOL[np.dtype(np.float16)])


def test_linear_attention_errors():
    x = np.zeros((1, 2, 8), np.float32)
    with pytest.raises(ValueError, match="needs decay"):
        linear_attention(x, x, x, q_num_heads=2, kv_num_heads=2)
    with pytest.raises(ValueError, match="takes no beta"):
        linear_attention(x, x, x, None, None, np.zeros((1, 2, 2), np.float32),
                         update_rule="linear", q_num_heads=2, kv_num_heads=2)
    with pytest.raises(ValueError, match="positive multiple"):
        linear_attention(x, x, x, update_rule="linear", q_num_heads=3, kv_num_heads=2)


# -------------------------------------------------------------------------- CausalConvWithState

CONV_CASES = {
    "basic": ((2, 4, 8), 4, False, False, "none"),
    "bias_past": ((2, 4, 8), 4, True, True, "none"),
    "decode": ((2, 4, 1), 4, True, True, "none"),
    "k1": ((2, 4, 8), 1, False, False, "none"),
    "short_input": ((2, 4, 2), 5, False, False, "none"),
    "silu_past": ((2, 4, 8), 4, False, True, "silu"),
    "swish": ((1, 1, 6), 3, True, False, "swish"),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_causal_conv_with_state(case, dtype):
    shape, k, with_bias, with_past, act = CONV_CASES[case]
    rng = np.random.default_rng(17)
    b, c, _ = shape
    inputs = [_rand(rng, shape, dtype), _rand(rng, (c, 1, k), dtype),
              _rand(rng, (c,), dtype) if with_bias else None,
              _rand(rng, (b, c, k - 1), dtype) if with_past else None]
    attrs = {"activation": act}
    if dtype == np.float32:
        check_kernel(causal_conv_with_state, "CausalConvWithState", inputs, attrs,
                     noutputs=2, opset=27, **TOL[np.dtype(dtype)])
        return
    # float16: we accumulate taps and bias in float32 and round once; the reference rounds
    # the conv sum before adding the bias, so compare with it run in float32.
    wide = [None if a is None else a.astype(np.float32) for a in inputs]
    expected = reference("CausalConvWithState", wide, attrs, noutputs=2, opset=27)
    y, state = causal_conv_with_state(*inputs, **attrs)
    assert_close(y, expected[0].astype(np.float16), rtol=1e-3, atol=1e-3)
    assert_close(state, expected[1].astype(np.float16), rtol=0, atol=0)


def test_causal_conv_with_state_errors():
    x = np.zeros((1, 2, 4), np.float32)
    with pytest.raises(ValueError, match="activation"):
        causal_conv_with_state(x, np.zeros((2, 1, 3), np.float32), activation="gelu")
    with pytest.raises(ValueError, match="past_state shape"):
        causal_conv_with_state(x, np.zeros((2, 1, 3), np.float32), None,
                               np.zeros((1, 2, 3), np.float32))


# -------------------------------------------------------------------------------- FlexAttention

def _flex_model(shapes, dtype, attrs, score_mod=None, prob_mod=None):
    elem = DType.from_numpy(np.dtype(dtype)).value
    extra = {}
    for name, body in (("score_mod", score_mod), ("prob_mod", prob_mod)):
        if body is None:
            continue
        op, const = body
        sub_elem = onnx.TensorProto.DOUBLE if dtype == np.float64 else onnx.TensorProto.FLOAT
        extra[name] = helper.make_graph(
            [helper.make_node(op, ["s", "c"], ["o"])], name,
            [helper.make_tensor_value_info("s", sub_elem, None)],
            [helper.make_tensor_value_info("o", sub_elem, None)],
            [helper.make_tensor("c", sub_elem, [], [const])])
    node = helper.make_node("FlexAttention", ["Q", "K", "V"], ["Y"], domain="ai.onnx.preview",
                            **attrs, **extra)
    graph = helper.make_graph(
        [node], "flex", [helper.make_tensor_value_info(n, elem, list(s))
                         for n, s in zip("QKV", shapes)],
        [helper.make_tensor_value_info("Y", elem, None)])
    return helper.make_model(graph, ir_version=10, opset_imports=[
        helper.make_opsetid("", 26), helper.make_opsetid("ai.onnx.preview", 1)])


FLEX_CASES = {
    "plain": (((2, 4, 5, 8), (2, 4, 6, 8), (2, 4, 6, 8)), np.float32, {}, None, None),
    "gqa_diff_v": (((2, 6, 3, 8), (2, 2, 4, 8), (2, 2, 4, 5)), np.float32, {}, None, None),
    "scaled": (((1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4)), np.float32, {"scale": 0.3}, None,
               None),
    "score_mod": (((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4)), np.float32, {}, ("Add", 0.5),
                  None),
    "prob_mod": (((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4)), np.float32, {}, None,
                 ("Mul", 0.5)),
    "fp16": (((2, 4, 5, 8), (2, 4, 6, 8), (2, 4, 6, 8)), np.float16, {}, ("Mul", 2.0), None),
    "double": (((2, 4, 5, 8), (2, 4, 6, 8), (2, 4, 6, 8)), np.float64, {}, None, None),
}


@pytest.mark.parametrize("case", sorted(FLEX_CASES))
def test_flex_attention(case):
    shapes, dtype, attrs, score_mod, prob_mod = FLEX_CASES[case]
    rng = np.random.default_rng(18)
    feeds = {n: _rand(rng, s, dtype) for n, s in zip("QKV", shapes)}
    model = _flex_model(shapes, dtype, attrs, score_mod, prob_mod)
    expected = ReferenceEvaluator(model).run(None, feeds)
    got = pyflame_rt.InferenceSession(model.SerializeToString()).run(None, feeds)
    assert_close(got[0], expected[0], **TOL[np.dtype(dtype)])


def test_flex_attention_without_modifiers_runs_directly():
    rng = np.random.default_rng(19)
    q, k, v = _rand(rng, (1, 2, 3, 4)), _rand(rng, (1, 1, 4, 4)), _rand(rng, (1, 1, 4, 4))
    model = _flex_model([q.shape, k.shape, v.shape], np.float32, {})
    expected = ReferenceEvaluator(model).run(None, {"Q": q, "K": k, "V": v})
    assert_close(flex_attention(q, k, v), expected[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="rank-4"):
        flex_attention(q[0], k[0], v[0])
