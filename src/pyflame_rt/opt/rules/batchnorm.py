"""BatchNormalization + activation ``==> pyflame.ChannelAffine`` (EXTENDED level).

``Act(BatchNormalization(x, gamma, beta, mean, var)) ==> ChannelAffine(x, s, t,
activation="Act")`` with ``s = gamma / sqrt(var + eps)`` and ``t = beta - mean * s`` folded
once with numpy (float64, cast back to the parameters' dtype). This is the BN -> ReLU of
DenseNet's pre-activation blocks (and any BN a Conv could not absorb) as one pass over the
tensor; the activations are those of the Conv/Gemm fusions (``activation.py``). Only an
inference BN (``training_mode=0``, ``spatial=1``) with constant parameters and one output is
folded. BN after a Conv is folded into the Conv first (BASIC level), so this rule sees only
the BNs that are left. The CPU planner's own BN -> Relu absorption (``executor.py``) still
serves graphs run below EXTENDED.
"""

from __future__ import annotations

import numpy as np

from .._util import get_attr, rank_of
from ..pattern import Match, RewriteRule
from .activation import ACTIVATIONS, Activation

__all__ = ["batchnorm_rules"]

PYFLAME = "pyflame"


def _pattern(act: Activation):
    def pattern(op, x, scale, bias, mean, var):
        return act.pattern(op, op.BatchNormalization(x, scale, bias, mean, var, _name="bn"))
    return pattern


def _params(m: Match) -> tuple[np.ndarray, np.ndarray] | str:
    bn = m.node("bn")
    if int(get_attr(bn, "training_mode", 0) or 0):
        return "BatchNormalization runs in training mode"
    if int(bn.attrs.get("spatial", 1)) != 1:
        return "BatchNormalization with spatial=0 is not per channel"
    arrays = []
    for name in ("scale", "bias", "mean", "var"):
        arr = m.const(name)
        if arr is None:
            return f"the BatchNormalization {name} is not a constant"
        if arr.ndim != 1 or arr.dtype.kind != "f":
            return f"the BatchNormalization {name} is not a float vector"
        arrays.append(arr.astype(np.float64))
    gamma, beta, mean, var = arrays
    if not gamma.size == beta.size == mean.size == var.size:
        return "the BatchNormalization parameters have different lengths"
    eps = float(get_attr(bn, "epsilon", 1e-5))
    s = gamma / np.sqrt(var + eps)
    return s, beta - mean * s


def _check(act: Activation):
    def check(m: Match):
        x = m["x"]
        if x.dtype is None or x.dtype.name not in ("FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16"):
            return m.fail("the input dtype is unknown or not float")
        rank = rank_of(x)
        if rank is None or rank < 2:
            return m.fail("the input rank is unknown or below 2")
        folded = _params(m)
        if isinstance(folded, str):
            return m.fail(folded)
        channels = x.shape[1]
        if isinstance(channels, int) and channels != folded[0].size:
            return m.fail(f"{folded[0].size} BN parameters for {channels} channels")
        params = act.params(m)
        if isinstance(params, str):
            return m.fail(params)
        return m.ok()
    return check


def _rewrite(act: Activation):
    def rewrite(op, m: Match):
        s, t = _params(m)
        dtype = m.const("scale").dtype
        name, params = act.params(m)
        attrs = {"activation": name}
        if params:
            attrs["activation_params"] = [float(p) for p in params]
        bn = m.node("bn")
        return op.ChannelAffine(m["x"], op.initializer(s.astype(dtype), "bn_act_scale"),
                                op.initializer(t.astype(dtype), "bn_act_bias"),
                                _domain=PYFLAME, _name=bn.name or "channelaffine", **attrs)
    return rewrite


def batchnorm_rules() -> list[RewriteRule]:
    return [RewriteRule(f"fuse_bn_{act.key}", _pattern(act), _rewrite(act), _check(act))
            for act in ACTIVATIONS]
