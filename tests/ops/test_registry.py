"""The operator registry: registration, version selection, custom ops, helpful errors."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import pyflame_rt as ort
from pyflame_rt.ops import all_kernels, kernel, lookup, register_op, registered_ops, unregister_op


@pytest.fixture
def clean_custom():
    yield
    for name in ("TestOp", "MyRelu", "TwoOut", "Versioned"):
        unregister_op(name, domain="com.test")


def test_version_selection_picks_highest_since_not_above_opset(clean_custom):
    @register_op("Versioned", domain="com.test", since=1)
    def v1(x):
        return x + 1

    @register_op("Versioned", domain="com.test", since=5)
    def v5(x):
        return x + 5

    assert lookup("Versioned", "com.test", 1).fn is v1
    assert lookup("Versioned", "com.test", 4).fn is v1
    assert lookup("Versioned", "com.test", 5).fn is v5
    assert lookup("Versioned", "com.test", 99).fn is v5
    assert lookup("Versioned", "com.test", None).fn is v5
    assert registered_ops()[("com.test", "Versioned")] == [1, 5]


def test_opset_below_first_version_is_unsupported(clean_custom):
    register_op("Versioned", lambda x: x, domain="com.test", since=3)
    with pytest.raises(ort.UnsupportedOperatorError, match="opset 2.*from opset versions 3"):
        lookup("Versioned", "com.test", 2)


def test_missing_op_lists_similar_names():
    with pytest.raises(ort.UnsupportedOperatorError) as info:
        lookup("Conv2d", "", 17)
    message = str(info.value)
    assert "ai.onnx::Conv2d" in message and "Conv" in message and "register_op" in message


def test_onnx_default_domain_aliases():
    assert lookup("Relu", "ai.onnx", 14) is lookup("Relu", "", 14)


def test_kernel_attrs_are_read_from_the_signature(clean_custom):
    @register_op("TestOp", domain="com.test")
    def test_op(x, y=None, *, alpha: float = 1.0, mode: str = "a", _ctx=None):
        """Custom TestOp."""
        return x

    kdef = lookup("TestOp", "com.test")
    assert kdef.attr_names == {"alpha", "mode"}
    assert kdef.takes_ctx and kdef.custom and kdef.doc == "Custom TestOp."
    assert kdef.check_attrs({"alpha": 2.0, "beta": 1}) == ["beta"]


def test_register_op_rejects_non_callables():
    with pytest.raises(TypeError, match="callable"):
        register_op("Bad", 42, domain="com.test")


def test_builtin_kernels_are_registered_with_docstrings():
    kernels = all_kernels()
    assert len({(k.domain, k.op_type) for k in kernels}) > 100
    undocumented = [f"{k.op_type}-{k.since}" for k in kernels if not k.custom and not k.doc]
    assert not undocumented, f"kernels without a docstring: {undocumented}"


def test_kernel_decorator_returns_the_function():
    def f(x):
        """Doc."""
        return x

    assert kernel("IdentityForTest", domain="com.test")(f) is f
    unregister_op("IdentityForTest", domain="com.test")
    assert ("com.test", "IdentityForTest") in registered_ops()  # built-in kind stays


def _custom_model(op, domain="com.test", noutputs=1, **attrs):
    outs = [f"y{i}" for i in range(noutputs)]
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], outs, domain=domain, name="custom", **attrs)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [3]) for o in outs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid(domain, 1)])


def test_custom_op_runs_in_a_session(clean_custom):
    @ort.register_op("MyRelu", domain="com.test")
    def my_relu(x, *, alpha: float = 0.0):
        """Leaky ReLU as a custom op."""
        return np.where(x > 0, x, alpha * x).astype(x.dtype)

    sess = ort.InferenceSession(_custom_model("MyRelu", alpha=0.5))
    x = np.array([-2.0, 0.0, 3.0], np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], [-1.0, 0.0, 3.0])


def test_custom_op_with_two_outputs_and_ctx(clean_custom):
    seen = {}

    @ort.register_op("TwoOut", domain="com.test")
    def two_out(x, *, _ctx=None):
        seen["noutputs"] = _ctx.noutputs
        return x * 2, x * 3

    sess = ort.InferenceSession(_custom_model("TwoOut", noutputs=2))
    a, b = sess.run(None, {"x": np.ones(3, np.float32)})
    np.testing.assert_allclose(a, 2.0)
    np.testing.assert_allclose(b, 3.0)
    assert seen["noutputs"] == 2


def test_unknown_attribute_is_refused_at_build_time(clean_custom):
    register_op("MyRelu", lambda x, *, alpha=0.0: x, domain="com.test")
    with pytest.raises(ort.NotImplementedFeatureError, match="attribute.*beta"):
        ort.InferenceSession(_custom_model("MyRelu", beta=1.0))


def test_custom_op_errors_are_wrapped_with_the_node(clean_custom):
    @ort.register_op("MyRelu", domain="com.test")
    def broken(x):
        raise ZeroDivisionError("boom")

    sess = ort.InferenceSession(_custom_model("MyRelu"))
    with pytest.raises(ort.KernelError, match=r"ZeroDivisionError: boom.*custom"):
        sess.run(None, {"x": np.ones(3, np.float32)})
