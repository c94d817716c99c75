"""ai.onnx.preview.training kernels: Adagrad, Adam, Momentum against onnx.reference; Gradient
against finite differences of the forward graph run by onnx.reference.

ONNX Runtime's inference build has none of these ops.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator
from oracle import assert_close, one_node_model

import pyflame_rt
from pyflame_rt.backends.cpu.training import adagrad, adam, gradient, momentum
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
    assert lookup("Gradient", domain=DOMAIN, opset=1).fn is gradient


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


# -- Gradient ----------------------------------------------------------------------------------

def _forward_and_gradient_models(nodes, inputs, y, xs, zs=(), initializers=None):
    """A model computing y from the inputs plus Gradient(xs, zs) -> dy/dx, and the same graph
    in float64 without the Gradient node (for finite differences with onnx.reference)."""
    from onnx import helper, numpy_helper

    initializers = initializers or {}
    grads = [f"d_{x}" for x in xs]
    extra = {"zs": list(zs)} if zs else {}
    gnode = helper.make_node("Gradient", list(xs) + list(zs), grads, domain=DOMAIN,
                             xs=list(xs), y=y, **extra)
    out_y = helper.make_value_info(y, onnx.TypeProto())
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)]

    def graph(graph_nodes, elem, np_type, outs):
        ins = [helper.make_tensor_value_info(n, elem, list(a.shape)) for n, a in inputs.items()]
        inits = [numpy_helper.from_array(v.astype(np_type), k) for k, v in initializers.items()]
        return helper.make_graph(graph_nodes, "g", ins, outs, initializer=inits)

    outs = [out_y] + [helper.make_value_info(g, onnx.TypeProto()) for g in grads]
    full = helper.make_model(graph(nodes + [gnode], 1, np.float32, outs),
                             opset_imports=opsets, ir_version=10)
    fwd = helper.make_model(graph(nodes, 11, np.float64, [out_y]), opset_imports=opsets[:1],
                            ir_version=10)
    return full, fwd


def _numeric_gradient(fwd, feeds, x, eps=1e-6):
    """d(sum y)/dx by central differences through onnx.reference, in float64."""
    ref = ReferenceEvaluator(fwd)
    base = {k: v.astype(np.float64) for k, v in feeds.items()}
    g = np.zeros_like(base[x])
    for i in np.ndindex(base[x].shape):
        hi, lo = dict(base), dict(base)
        hi[x], lo[x] = base[x].copy(), base[x].copy()
        hi[x][i] += eps
        lo[x][i] -= eps
        g[i] = (np.sum(ref.run(None, hi)[0]) - np.sum(ref.run(None, lo)[0])) / (2 * eps)
    return g


def _session(model):
    # Gradient names tensors of the forward graph; graph fusions (MatMul + Add -> FusedGemm)
    # would replace the ops it differentiates, so these tests run the graph as written.
    opts = pyflame_rt.SessionOptions()
    opts.graph_optimization_level = pyflame_rt.GraphOptimizationLevel.ORT_DISABLE_ALL
    return pyflame_rt.InferenceSession(model.SerializeToString(), opts)


def _check_gradient(nodes, inputs, y, xs, zs=(), initializers=None):
    full, fwd = _forward_and_gradient_models(nodes, inputs, y, xs, zs, initializers)
    sess = _session(full)
    outs = sess.run(None, inputs)
    for x, got in zip(xs, outs[1:]):
        assert got.dtype == inputs[x].dtype and got.shape == inputs[x].shape
        expected = _numeric_gradient(fwd, inputs, x)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_gradient_elementwise_chain():
    from onnx import helper

    rng = np.random.default_rng(0)
    inputs = {"a": rng.uniform(0.5, 2, (2, 3)).astype(np.float32),
              "b": rng.uniform(0.5, 2, (3,)).astype(np.float32)}
    nodes = [helper.make_node("Add", ["a", "b"], ["c"]),
             helper.make_node("Mul", ["c", "a"], ["d"]),
             helper.make_node("Div", ["d", "b"], ["e"]),
             helper.make_node("Sqrt", ["e"], ["f"]),
             helper.make_node("Sub", ["f", "a"], ["y"])]
    _check_gradient(nodes, inputs, "y", ["a", "b"])


def test_gradient_matmul_activations_with_zs_and_constant():
    from onnx import helper

    rng = np.random.default_rng(1)
    inputs = {"x": rng.standard_normal((4, 3)).astype(np.float32),
              "w": rng.standard_normal((3, 5)).astype(np.float32)}
    bias = {"bias": rng.standard_normal(5).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Add", ["h", "bias"], ["hb"]),
             helper.make_node("Tanh", ["hb"], ["t"]),
             helper.make_node("Sigmoid", ["t"], ["s"]),
             helper.make_node("Exp", ["s"], ["y"])]
    # Differentiate with respect to w only; x is a non-differentiated input (zs).
    _check_gradient(nodes, inputs, "y", ["w"], zs=["x"], initializers=bias)


def test_gradient_unsupported_op_is_reported():
    from onnx import helper

    inputs = {"a": np.ones((3,), np.float32)}
    nodes = [helper.make_node("Softmax", ["a"], ["y"])]
    full, _ = _forward_and_gradient_models(nodes, inputs, "y", ["a"])
    sess = _session(full)
    with pytest.raises(Exception, match="no derivative for Softmax"):
        sess.run(None, inputs)
