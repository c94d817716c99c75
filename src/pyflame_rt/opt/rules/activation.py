"""Activations fused into the op before them (EXTENDED level).

``Act(Conv(x, W, B)) ==> pyflame.FusedConv(x, W, B, activation="Act")``, and the same for
``Gemm -> pyflame.FusedGemm`` and ``MatMul -> pyflame.FusedMatMul``; a fused op without an
activation takes one the same way. Activations: ``Relu``, ``LeakyRelu``, ``Sigmoid``,
``Tanh``, ``HardSigmoid``, ``HardSwish``, ``Clip`` (Relu6 included; constant bounds only),
SiLU/Swish written as ``x * Sigmoid(x)``, and GELU (``Gelu`` of ONNX-20 or ``pyflame.Gelu``).
Their parameters travel in ``activation_params`` (see ``docs/fused_ops.md``).

Also here: ``fuse_conv_add_sum``: ``Add(Conv(x, W, B), z) ==> pyflame.FusedConv(x, W, B, z)``
(the residual add of ResNet blocks; ``z`` has the Conv output's shape) and
``fuse_bias_gelu``: ``Gelu(Add(x, b)) ==> pyflame.BiasGelu(x, b)`` for a 1-D constant ``b``
left over after the MatMul fusions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._util import get_attr, rank_of, same_shape
from ..pattern import Match, RewriteRule

__all__ = ["ACTIVATIONS", "Activation", "activation_rules"]

PYFLAME = "pyflame"
_FLOAT = ("FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16")


@dataclass
class Activation:
    """An activation the fused ops can apply: its pattern on ``y`` and its parameters."""

    key: str
    pattern: Callable[[Any, Any], Any]
    params: Callable[[Match], tuple[str, list[float]] | str]


def _simple(name: str) -> Callable[[Match], tuple[str, list[float]]]:
    return lambda m: (name, [])


def _leaky(m: Match):
    return "LeakyRelu", [float(get_attr(m.node("act"), "alpha", 0.01))]


def _hard_sigmoid(m: Match):
    act = m.node("act")
    return "HardSigmoid", [float(get_attr(act, "alpha", 0.2)), float(get_attr(act, "beta", 0.5))]


def _clip(m: Match):
    act = m.node("act")
    lo, hi = float("-inf"), float("inf")
    if len(act.inputs) > 1:  # Clip-11+: bounds are inputs
        for i, name in ((1, "min"), (2, "max")):
            v = act.inputs[i] if i < len(act.inputs) else None
            if v is None:
                continue
            arr = m.ctx.const(v)
            if arr is None or arr.size != 1:
                return f"the Clip {name} is not a constant scalar"
            if i == 1:
                lo = float(arr.reshape(()))
            else:
                hi = float(arr.reshape(()))
    else:
        lo = float(act.attrs.get("min", lo))
        hi = float(act.attrs.get("max", hi))
    return "Clip", [lo, hi]


def _gelu(m: Match):
    approx = str(get_attr(m.node("act"), "approximate", "none"))
    return ("GeluTanh" if approx == "tanh" else "Gelu"), []


ACTIVATIONS: list[Activation] = [
    Activation("relu", lambda op, y: op.Relu(y, _name="act"), _simple("Relu")),
    Activation("leakyrelu", lambda op, y: op.LeakyRelu(y, _name="act"), _leaky),
    Activation("sigmoid", lambda op, y: op.Sigmoid(y, _name="act"), _simple("Sigmoid")),
    Activation("tanh", lambda op, y: op.Tanh(y, _name="act"), _simple("Tanh")),
    Activation("hardsigmoid", lambda op, y: op.HardSigmoid(y, _name="act"), _hard_sigmoid),
    Activation("hardswish", lambda op, y: op.HardSwish(y, _name="act"), _simple("HardSwish")),
    Activation("clip", lambda op, y: op.Clip(y, _allow_other_inputs=True, _name="act"), _clip),
    Activation("silu", lambda op, y: op.Mul(y, op.Sigmoid(y), _name="act"), _simple("SiLU")),
    Activation("gelu", lambda op, y: op.Gelu(y, _domain=PYFLAME, _name="act"), _gelu),
    Activation("onnxgelu", lambda op, y: op.Gelu(y, _name="act"), _gelu),
]


def _no_activation(value: Any) -> bool:
    return value in (None, "", b"")


@dataclass
class _Base:
    key: str           # rule-name part: conv, gemm, matmul
    op_type: str
    domain: str
    fused: str         # the pyflame op it becomes


_BASES = [
    _Base("conv", "Conv", "", "FusedConv"),
    _Base("conv", "FusedConv", PYFLAME, "FusedConv"),
    _Base("gemm", "Gemm", "", "FusedGemm"),
    _Base("gemm", "FusedGemm", PYFLAME, "FusedGemm"),
    _Base("matmul", "MatMul", "", "FusedMatMul"),
    _Base("matmul", "FusedMatMul", PYFLAME, "FusedMatMul"),
]


def _make_rule(base: _Base, act: Activation) -> RewriteRule:
    extra = {"activation": _no_activation} if base.domain == PYFLAME else {}

    def pattern(op, x, w):
        y = getattr(op, base.op_type)(x, w, _allow_other_inputs=True, _domain=base.domain,
                                      _name="base", **extra)
        return act.pattern(op, y)

    def check(m: Match):
        y = m.value("base")
        if y.dtype is not None and y.dtype.name not in _FLOAT:
            return m.fail(f"{base.op_type} computes {y.dtype.name}; fused activations are "
                          "float only")
        params = act.params(m)
        if isinstance(params, str):
            return m.fail(params)
        return m.ok()

    def rewrite(op, m: Match):
        node = m.node("base")
        name, params = act.params(m)
        attrs = dict(node.attrs)
        attrs["activation"] = name
        if params:
            attrs["activation_params"] = [float(p) for p in params]
        return getattr(op, base.fused)(*node.inputs, _domain=PYFLAME,
                                        _name=node.name or base.fused.lower(), **attrs)

    return RewriteRule(f"fuse_{base.key}_{act.key}", pattern, rewrite, check)


# -- Conv + residual Add -------------------------------------------------------------------------
def _conv_sum_pattern(op_name: str):
    def pattern(op, x, w, z):
        conv = op.Conv(x, w, _allow_other_inputs=True, _name="conv")
        return getattr(op, op_name)(conv, z, _name="add")
    return pattern


def _conv_sum_check(m: Match):
    conv = m.node("conv")
    if len(conv.inputs) > 3:
        return m.fail("the Conv has more than 3 inputs")
    if not (same_shape(m["z"], m.value("add")) and same_shape(m.value("conv"), m.value("add"))):
        return m.fail("the added tensor's shape is not known to equal the Conv output's")
    if m["z"].dtype is not m.value("conv").dtype:
        return m.fail("the added tensor has another dtype")
    return m.ok()


def _conv_sum_rewrite(op, m: Match):
    conv = m.node("conv")
    inputs = list(conv.inputs) + [None] * (3 - len(conv.inputs))
    return op.FusedConv(*inputs, m["z"], _domain=PYFLAME, _name=conv.name or "fusedconv",
                        **conv.attrs)


# -- Add + Gelu ------------------------------------------------------------------------------------
def _bias_gelu_pattern(op, x, b):
    return op.Gelu(op.Add(x, b, _name="add"), _domain=PYFLAME, _name="gelu")


def _bias_gelu_check(m: Match):
    b = m.const("b")
    if b is None or b.ndim != 1:
        return m.fail("the bias is not a 1-D constant")
    x = m["x"]
    if rank_of(x) is None or not x.shape or x.shape[-1] != b.shape[0]:
        return m.fail(f"the bias of length {b.shape[0]} does not match the last dim of "
                      f"{x.shape}")
    if x.dtype is None or x.dtype.numpy != b.dtype:
        return m.fail("the bias dtype differs from the input's")
    return m.ok()


def _bias_gelu_rewrite(op, m: Match):
    return op.BiasGelu(m["x"], m["b"], _domain=PYFLAME, _name="biasgelu",
                       approximate=get_attr(m.node("gelu"), "approximate", "none"))


def activation_rules() -> list[RewriteRule]:
    rules = [RewriteRule("fuse_conv_add_sum", _conv_sum_pattern(op), _conv_sum_rewrite,
                         _conv_sum_check) for op in ("Add", "Sum")]
    rules += [_make_rule(base, act) for base in _BASES for act in ACTIVATIONS]
    rules.append(RewriteRule("fuse_bias_gelu", _bias_gelu_pattern, _bias_gelu_rewrite,
                             _bias_gelu_check))
    return rules
