"""ai.onnx.preview.training optimizer kernels (Adagrad, Adam, Momentum) against onnx.reference.

ONNX Runtime's inference build has none of these ops, so onnx.reference is the oracle.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator
from oracle import assert_close, one_node_model

from pyflame_rt.backends.cpu.training import adagrad, adam, momentum
from pyflame_rt.ops import lookup

DOMAIN = "ai.onnx.preview.training"


def _reference(op, inputs, attrs, noutputs):
    model = one_node_model(op, inputs, attrs, noutputs=noutputs, domain=DOMAIN)
    feeds = {f"in{i}": a for i, a in enumerate(inputs)}
    return ReferenceEvaluator(model).run(None, feeds)


def _tensors(n, groups, dtype, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(3,), (2, 4), (5,)][:n]
    out = []
    for g in range(groups):
        for s in shapes:
            t = rng.standard_normal(s).astype(dtype)
            out.append(np.abs(t) if g == groups - 1 else t)  # last group: squared sums >= 0
    return out


def _compare(fn, op, inputs, attrs, noutputs, tol):
    # A model stores float attributes as float32; the kernel sees those rounded values.
    as_stored = {k: float(np.float32(v)) if isinstance(v, float) else v
                 for k, v in attrs.items()}
    got = fn(*inputs, **as_stored)
    expected = _reference(op, inputs, attrs, noutputs)
    assert len(got) == noutputs
    for g, x, e in zip(got, inputs[2:], expected):
        # The spec keeps each tensor's type; onnx.reference's Adam sometimes changes it
        # (numpy promotion with R), so check the type on our side and values at the
        # precision the reference computed in.
        assert g.dtype == x.dtype
        e = np.asarray(e)
        loose = e.dtype != g.dtype or not attrs
        assert_close(g, e.astype(g.dtype), **(TOLS[np.float32] if loose else tol))


# Without attributes each side uses its own copy of the spec defaults (0.9 exactly here,
# float32(0.9) in onnx.reference): float64 results then agree to float32 precision only.
TOLS = {np.float32: {"rtol": 1e-5, "atol": 1e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-12}}


def test_registered_versions():
    assert lookup("Adagrad", domain=DOMAIN, opset=1).fn is adagrad
    assert lookup("Adam", domain=DOMAIN, opset=1).fn is adam
    assert lookup("Momentum", domain=DOMAIN, opset=1).fn is momentum


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("t", [0, 5])
def test_adagrad(dtype, n, t):
    ins = [np.array(0.1, dtype), np.array(t, np.int64)] + _tensors(n, 3, dtype)
    attrs = {"decay_factor": 0.1, "epsilon": 1e-5, "norm_coefficient": 0.001}
    _compare(adagrad, "Adagrad", ins, attrs, 2 * n, TOLS[dtype])
    _compare(adagrad, "Adagrad", ins, {}, 2 * n, TOLS[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("t", [0, 3])
def test_adam(dtype, n, t):
    ins = [np.array(0.1, dtype), np.array(t, np.int64)] + _tensors(n, 4, dtype)
    attrs = {"alpha": 0.95, "beta": 0.85, "epsilon": 1e-2, "norm_coefficient": 0.001,
             "norm_coefficient_post": 0.01}
    # onnx.reference computes (1 - norm_coefficient_post) in float32 (its attributes are
    # numpy float32 scalars), so float64 results agree to ~1e-8 relative only.
    tol = TOLS[dtype] if dtype is np.float32 else {"rtol": 1e-7, "atol": 1e-9}
    _compare(adam, "Adam", ins, attrs, 3 * n, tol)
    _compare(adam, "Adam", ins, {}, 3 * n, TOLS[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["standard", "nesterov"])
@pytest.mark.parametrize("t", [0, 4])
def test_momentum(dtype, mode, t):
    ins = [np.array(0.1, dtype), np.array(t, np.int64)] + _tensors(2, 3, dtype)
    attrs = {"alpha": 0.9, "beta": 0.3, "mode": mode, "norm_coefficient": 0.01}
    _compare(momentum, "Momentum", ins, attrs, 4, TOLS[dtype])


def test_errors():
    r, t = np.array(0.1, np.float32), np.array(0, np.int64)
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="groups"):
        adagrad(r, t, x, x)
    with pytest.raises(ValueError, match="mode"):
        momentum(r, t, x, x, x, alpha=0.9, beta=0.1, mode="heavy", norm_coefficient=0.0)
    with pytest.raises(ValueError, match="alpha"):
        momentum(r, t, x, x, x, beta=0.1, mode="standard", norm_coefficient=0.0)
    with pytest.raises(ValueError, match="mismatched"):
        adam(r, t, x, x, np.zeros(2, np.float32), x)


def test_inputs_not_modified():
    ins = [np.array(0.1, np.float32), np.array(2, np.int64)] + _tensors(2, 4, np.float32)
    before = [a.copy() for a in ins]
    for a in ins:
        a.flags.writeable = False
    adam(*ins)
    for a, b in zip(ins, before):
        np.testing.assert_array_equal(a, b)
