"""Random generator kernels: shapes, types, seeding and distributions.

Random values cannot be compared with another runtime (ONNX leaves the generator open), so
these tests check what the spec fixes: output shape and type, the range/moments of the
distribution (with enough samples and a fixed seed, so they are not flaky), that a seed makes
the output reproducible, and that without a seed the session's generator is used.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from oracle import one_node_model, reference

import pyflame_rt
from pyflame_rt.backends.cpu.random import (
    bernoulli,
    multinomial,
    random_normal,
    random_normal_like,
    random_uniform,
    random_uniform_like,
)
from pyflame_rt.ops import KernelContext, lookup

FLOAT_CODES = {1: np.float32, 10: np.float16, 11: np.float64, 16: ml_dtypes.bfloat16}


def _ctx(seed: int = 0) -> KernelContext:
    return KernelContext(node=None, noutputs=1, opset=22, rng=np.random.default_rng(seed))


def test_registered_versions():
    assert lookup("RandomNormal", opset=22).fn is random_normal
    assert lookup("RandomUniform", opset=1).fn is random_uniform
    assert lookup("RandomNormalLike", opset=22).fn is random_normal_like
    assert lookup("RandomUniformLike", opset=22).fn is random_uniform_like
    assert lookup("Multinomial", opset=7).fn is multinomial
    assert lookup("Bernoulli", opset=15).fn is bernoulli


@pytest.mark.parametrize("code", FLOAT_CODES)
def test_random_normal_moments_and_dtype(code):
    y = random_normal(dtype=code, mean=2.0, scale=3.0, seed=5.0, shape=[200, 100])
    assert y.dtype == np.dtype(FLOAT_CODES[code]) and y.shape == (200, 100)
    v = y.astype(np.float64)
    assert abs(v.mean() - 2.0) < 0.05 and abs(v.std() - 3.0) < 0.05


@pytest.mark.parametrize("code", FLOAT_CODES)
def test_random_uniform_range_and_dtype(code):
    y = random_uniform(dtype=code, low=-1.0, high=3.0, seed=1.0, shape=[20000])
    assert y.dtype == np.dtype(FLOAT_CODES[code]) and y.shape == (20000,)
    v = y.astype(np.float64)
    assert v.min() >= -1.0 and v.max() <= 3.0
    assert abs(v.mean() - 1.0) < 0.05
    # Roughly flat: each quarter of [low, high) gets about a quarter of the samples.
    counts = np.histogram(v, bins=4, range=(-1.0, 3.0))[0]
    assert np.all(np.abs(counts / v.size - 0.25) < 0.02)


def test_seed_makes_output_reproducible():
    a = random_normal(seed=3.0, shape=[5, 4])
    b = random_normal(seed=3.0, shape=[5, 4])
    c = random_normal(seed=4.0, shape=[5, 4])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(random_uniform(seed=0.5, shape=[3]),
                                  random_uniform(seed=0.5, shape=[3]))


def test_unseeded_uses_context_generator():
    a = random_uniform(shape=[8], _ctx=_ctx(7))
    b = random_uniform(shape=[8], _ctx=_ctx(7))
    np.testing.assert_array_equal(a, b)
    ctx = _ctx(7)
    assert not np.array_equal(random_uniform(shape=[8], _ctx=ctx),
                              random_uniform(shape=[8], _ctx=ctx))


@pytest.mark.parametrize("like", [np.zeros((3, 4), np.float16), np.zeros((2, 5), np.float64),
                                  np.zeros((7,), ml_dtypes.bfloat16)], ids=str)
def test_like_ops_follow_input(like):
    for fn in (random_normal_like, random_uniform_like):
        y = fn(like, seed=0.0)
        assert y.shape == like.shape and y.dtype == like.dtype
    y = random_uniform_like(np.zeros((2, 3), np.int64), dtype=1, seed=2.0)
    assert y.dtype == np.float32 and y.shape == (2, 3)


def test_like_ops_need_float_type():
    with pytest.raises(ValueError, match="float"):
        random_normal_like(np.zeros((2,), np.int32))
    with pytest.raises(ValueError, match="float"):
        random_uniform(dtype=6, shape=[2])
    with pytest.raises(ValueError, match="shape"):
        random_normal()


def test_shapes_match_onnx_reference():
    # The reference's values are its own draws, but shape and type are fixed by the spec.
    exp = reference("RandomUniformLike", [np.zeros((2, 3), np.float32)], {"dtype": 11},
                    opset=22)[0]
    got = random_uniform_like(np.zeros((2, 3), np.float32), dtype=11)
    assert got.shape == exp.shape and got.dtype == exp.dtype


@pytest.mark.parametrize("code,dtype", [(6, np.int32), (7, np.int64)])
def test_multinomial_frequencies(code, dtype):
    with np.errstate(divide="ignore"):
        logits = np.log(np.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]], dtype=np.float32))
    y = multinomial(logits, dtype=code, sample_size=20000, seed=3.0)
    assert y.dtype == np.dtype(dtype) and y.shape == (2, 20000)
    freq0 = np.bincount(y[0], minlength=3) / y.shape[1]
    freq1 = np.bincount(y[1], minlength=3) / y.shape[1]
    np.testing.assert_allclose(freq0, [0.1, 0.2, 0.7], atol=0.015)
    np.testing.assert_allclose(freq1, [0.5, 0.5, 0.0], atol=0.015)
    assert np.all(y[1] != 2)  # probability exactly 0 (log 0 = -inf) is never drawn


def test_multinomial_unnormalized_logits_and_errors():
    logits = np.array([[10.0, 10.0 + np.log(3.0)]], dtype=np.float64)
    y = multinomial(logits, sample_size=8000, seed=1.0)
    assert abs(np.mean(y == 1) - 0.75) < 0.02
    with pytest.raises(ValueError, match="batch_size"):
        multinomial(np.zeros((3,), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        multinomial(np.zeros((1, 3), np.float32), dtype=1)


@pytest.mark.parametrize("code,dtype", [(None, None), (9, np.bool_), (6, np.int32),
                                        (11, np.float64), (10, np.float16)])
def test_bernoulli_types_and_rate(code, dtype):
    p = np.full((4000,), 0.3, dtype=np.float32)
    p[:10] = 0.0
    p[10:20] = 1.0
    attrs = {} if code is None else {"dtype": code}
    y = bernoulli(p, seed=2.0, **attrs)
    assert y.dtype == np.dtype(dtype or np.float32) and y.shape == p.shape
    v = y.astype(np.float64)
    assert set(np.unique(v)) <= {0.0, 1.0}
    assert np.all(v[:10] == 0) and np.all(v[10:20] == 1)
    assert abs(v[20:].mean() - 0.3) < 0.03


def _session(model: onnx.ModelProto) -> pyflame_rt.InferenceSession:
    return pyflame_rt.InferenceSession(model.SerializeToString())


def test_through_session_seeded_and_unseeded():
    seeded = one_node_model("RandomNormal", [], {"shape": [3, 4], "seed": 11.0}, opset=22)
    sess = _session(seeded)
    a, b = sess.run(None, {})[0], sess.run(None, {})[0]
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 4) and a.dtype == np.float32
    unseeded = one_node_model("RandomUniform", [], {"shape": [16]}, opset=22)
    sess = _session(unseeded)
    assert not np.array_equal(sess.run(None, {})[0], sess.run(None, {})[0])
