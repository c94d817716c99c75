"""Fold per-channel affine ops and padding into ``Conv`` (BASIC level).

* ``fuse_conv_bn``: ``BatchNormalization(Conv(x, W, B)) ==> Conv(x, W', B')`` with
  ``s = scale / sqrt(var + eps)``, ``W' = W * s[:, None, ...]``, ``B' = (B - mean) * s + bias``.
* ``fuse_conv_mul``: ``Mul(Conv(x, W, B), s) ==> Conv(x, W * s, B * s)`` for a per-channel
  (or scalar) constant ``s``.
* ``fuse_conv_add``: ``Add(Conv(x, W, B), c) ==> Conv(x, W, B + c)`` for a per-channel (or
  scalar) constant ``c``.
* ``fuse_pad_conv``: ``Conv(Pad(x, p)) ==> Conv(x, pads + p)`` for constant-mode zero padding
  of the spatial dims only.
* ``fuse_bn_mul`` / ``fuse_bn_add``: ``Mul(BatchNormalization(x), s)`` and
  ``Add(BatchNormalization(x), c)`` with per-channel constants ``==> BatchNormalization`` with
  ``scale * s, bias * s`` (resp. ``bias + c``): the per-channel affine after a BN that has no
  Conv before it (DenseNet's BN after Concat).

Weights are folded with numpy (in float64, cast back) and only when the weight is not shared
with another node: folding a shared weight would duplicate it.
"""

from __future__ import annotations

import numpy as np

from .._util import get_attr, rank_of
from ..pattern import Match, RewriteRule

__all__ = ["conv_rules"]


def _conv_attrs(m: Match, name: str = "conv") -> dict:
    return dict(m.node(name).attrs)


def _check_weights(m: Match, allow_no_bias: bool = True) -> str | None:
    conv = m.node("conv")
    w = m.ctx.const(conv.inputs[1]) if len(conv.inputs) > 1 else None
    if w is None:
        return "the Conv weight is not a constant"
    if w.dtype.kind != "f":
        return f"the Conv weight has dtype {w.dtype}, not a float type"
    if m.is_shared("w"):
        return "the Conv weight is shared with another node; folding would duplicate it"
    b = conv.inputs[2] if len(conv.inputs) > 2 else None
    if b is not None:
        if m.ctx.const(b) is None:
            return "the Conv bias is not a constant"
        if m.is_shared(b):
            return "the Conv bias is shared with another node"
    return None


def _per_channel(arr: np.ndarray, channels: int, out_rank: int) -> np.ndarray | None:
    """``arr`` as a vector of ``channels`` values when it broadcasts per channel, else None."""
    if arr.ndim > out_rank:
        return None
    if arr.size == 1:
        return np.full(channels, arr.reshape(()), dtype=arr.dtype)
    shape = (1,) * (out_rank - arr.ndim) + tuple(arr.shape)
    if len(shape) < 2 or shape[1] != channels or shape[0] != 1 or \
            any(d != 1 for d in shape[2:]):
        return None
    return arr.reshape(channels)


# -- Conv + BatchNormalization -----------------------------------------------------------------
def _bn_pattern(op, x, w, scale, bias, mean, var):
    return op.BatchNormalization(op.Conv(x, w, _allow_other_inputs=True, _name="conv"),
                                 scale, bias, mean, var, _name="bn")


def _bn_check(m: Match):
    why = _check_weights(m)
    if why:
        return m.fail(why)
    bn = m.node("bn")
    if int(get_attr(bn, "training_mode", 0) or 0):
        return m.fail("BatchNormalization runs in training mode")
    if int(bn.attrs.get("spatial", 1)) != 1:
        return m.fail("BatchNormalization with spatial=0 is not per channel")
    for name in ("scale", "bias", "mean", "var"):
        if m.const(name) is None:
            return m.fail(f"the BatchNormalization {name} is not a constant")
    return m.ok()


def _bn_rewrite(op, m: Match):
    conv = m.node("conv")
    w = m.ctx.const(conv.inputs[1])
    eps = float(get_attr(m.node("bn"), "epsilon", 1e-5))
    scale, bias, mean, var = (m.const(n).astype(np.float64).reshape(-1)
                              for n in ("scale", "bias", "mean", "var"))
    channels = w.shape[0]
    if scale.size != channels:
        return None
    s = scale / np.sqrt(var + eps)
    b = m.ctx.const(conv.inputs[2]).astype(np.float64) if len(conv.inputs) > 2 and \
        conv.inputs[2] is not None else np.zeros(channels)
    w2 = (w.astype(np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
    b2 = ((b - mean) * s + bias).astype(w.dtype)
    return op.Conv(m["x"], op.initializer(w2, "conv_bn_w"), op.initializer(b2, "conv_bn_b"),
                   _name=conv.name or "conv", **_conv_attrs(m))


# -- Conv + Mul / Add by per-channel constants ---------------------------------------------------
def _mul_pattern(op, x, w, s):
    return op.Mul(op.Conv(x, w, _allow_other_inputs=True, _name="conv"), s)


def _add_pattern(op, x, w, c):
    return op.Add(op.Conv(x, w, _allow_other_inputs=True, _name="conv"), c)


def _affine_check(operand: str):
    def check(m: Match):
        why = _check_weights(m)
        if why:
            return m.fail(why)
        arr = m.const(operand)
        if arr is None:
            return m.fail(f"the {operand!r} operand is not a constant")
        w = m.ctx.const(m.node("conv").inputs[1])
        if arr.dtype != w.dtype:
            return m.fail(f"the constant's dtype {arr.dtype} differs from the weight's {w.dtype}")
        rank = rank_of(m.node("conv").outputs[0]) or w.ndim
        if _per_channel(arr, w.shape[0], rank) is None:
            return m.fail(f"the constant of shape {arr.shape} does not broadcast per output "
                          f"channel ({w.shape[0]} channels)")
        return m.ok()
    return check


def _mul_rewrite(op, m: Match):
    conv = m.node("conv")
    w = m.ctx.const(conv.inputs[1])
    s = _per_channel(m.const("s"), w.shape[0], w.ndim).astype(np.float64)
    w2 = (w.astype(np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
    inputs = [m["x"], op.initializer(w2, "conv_mul_w")]
    if len(conv.inputs) > 2 and conv.inputs[2] is not None:
        b = m.ctx.const(conv.inputs[2]).astype(np.float64)
        inputs.append(op.initializer((b * s).astype(w.dtype), "conv_mul_b"))
    return op.Conv(*inputs, _name=conv.name or "conv", **_conv_attrs(m))


def _add_rewrite(op, m: Match):
    conv = m.node("conv")
    w = m.ctx.const(conv.inputs[1])
    c = _per_channel(m.const("c"), w.shape[0], w.ndim).astype(np.float64)
    b = m.ctx.const(conv.inputs[2]).astype(np.float64) if len(conv.inputs) > 2 and \
        conv.inputs[2] is not None else np.zeros(w.shape[0])
    return op.Conv(m["x"], conv.inputs[1], op.initializer((b + c).astype(w.dtype), "conv_add_b"),
                   _name=conv.name or "conv", **_conv_attrs(m))


def _add_check_weights_bias_only(m: Match):
    """Conv+Add only rewrites the bias: the weight may be shared."""
    conv = m.node("conv")
    if m.ctx.const(conv.inputs[1]) is None:
        return m.fail("the Conv weight is not a constant")
    b = conv.inputs[2] if len(conv.inputs) > 2 else None
    if b is not None and (m.ctx.const(b) is None or m.is_shared(b)):
        return m.fail("the Conv bias is not an unshared constant")
    arr = m.const("c")
    if arr is None:
        return m.fail("the added operand is not a constant")
    w = m.ctx.const(conv.inputs[1])
    if w.dtype.kind != "f" or arr.dtype != w.dtype:
        return m.fail("the added constant's dtype differs from the weight's")
    rank = rank_of(conv.outputs[0]) or w.ndim
    if _per_channel(arr, w.shape[0], rank) is None:
        return m.fail(f"the constant of shape {arr.shape} does not broadcast per output channel")
    return m.ok()


# -- Pad + Conv -------------------------------------------------------------------------------------
def _pad_pattern(op, x, w):
    return op.Conv(op.Pad(x, _allow_other_inputs=True, _name="pad"), w, _allow_other_inputs=True,
                   _name="conv")


def _pad_amounts(m: Match) -> list[int] | str:
    pad = m.node("pad")
    if str(get_attr(pad, "mode", "constant")) not in ("constant", "b'constant'"):
        return "the Pad mode is not constant"
    if len(pad.inputs) > 1 and pad.inputs[1] is not None:
        pads = m.ctx.const(pad.inputs[1])
        if pads is None:
            return "the pads are not constant"
        if len(pad.inputs) > 2 and pad.inputs[2] is not None:
            value = m.ctx.const(pad.inputs[2])
            if value is None or np.any(value != 0):
                return "the pad value is not 0"
        if len(pad.inputs) > 3 and pad.inputs[3] is not None:
            return "Pad with axes is not handled"
    else:
        pads = np.asarray(pad.attrs.get("pads", []))
        if float(pad.attrs.get("value", 0.0)) != 0.0:
            return "the pad value is not 0"
    pads = [int(p) for p in pads.reshape(-1)]
    rank = len(pads) // 2
    if rank < 3 or any(p < 0 for p in pads):
        return "negative pads (cropping) or a rank below 3"
    if pads[0] or pads[1] or pads[rank] or pads[rank + 1]:
        return "the Pad pads the batch or channel dim"
    return pads


def _pad_check(m: Match):
    pads = _pad_amounts(m)
    if isinstance(pads, str):
        return m.fail(pads)
    if str(get_attr(m.node("conv"), "auto_pad", "NOTSET")) not in ("NOTSET", ""):
        return m.fail("the Conv uses auto_pad")
    return m.ok()


def _pad_rewrite(op, m: Match):
    pads = _pad_amounts(m)
    conv = m.node("conv")
    rank = len(pads) // 2
    nsp = rank - 2
    old = list(conv.attrs.get("pads") or [0] * (2 * nsp))
    new = [old[i] + pads[2 + i] for i in range(nsp)] + \
        [old[nsp + i] + pads[rank + 2 + i] for i in range(nsp)]
    attrs = dict(conv.attrs)
    attrs["pads"] = new
    attrs.pop("auto_pad", None)
    return op.Conv(m["x"], *conv.inputs[1:], _name=conv.name or "conv", **attrs)


# -- BatchNormalization + Mul / Add -------------------------------------------------------------
def _bn_affine_pattern(op_name: str):
    def pattern(op, x, scale, bias, mean, var, k):
        bn = op.BatchNormalization(x, scale, bias, mean, var, _name="bn")
        return getattr(op, op_name)(bn, k, _name="affine")
    return pattern


def _bn_affine_check(m: Match):
    bn = m.node("bn")
    if int(get_attr(bn, "training_mode", 0) or 0) or int(bn.attrs.get("spatial", 1)) != 1:
        return m.fail("BatchNormalization is not a per-channel inference BN")
    for name in ("scale", "bias", "mean", "var", "k"):
        if m.const(name) is None:
            return m.fail(f"{name} is not a constant")
    for name in ("scale", "bias"):
        if m.is_shared(name):
            return m.fail(f"the BatchNormalization {name} is shared with another node")
    scale, k = m.const("scale"), m.const("k")
    rank = rank_of(m.value("bn"))
    if rank is None or k.dtype != scale.dtype or \
            _per_channel(k, scale.size, rank) is None:
        return m.fail("the constant does not broadcast per channel (or the rank is unknown)")
    return m.ok()


def _bn_affine_rewrite(op, m: Match):
    bn = m.node("bn")
    scale, bias = m.const("scale"), m.const("bias")
    k = _per_channel(m.const("k"), scale.size, rank_of(m.value("bn"))).astype(np.float64)
    s64, b64 = scale.astype(np.float64).reshape(-1), bias.astype(np.float64).reshape(-1)
    if m.node("affine").op_type == "Mul":
        s64, b64 = s64 * k, b64 * k
    else:
        b64 = b64 + k
    return op.BatchNormalization(m["x"], op.initializer(s64.astype(scale.dtype), "bn_scale"),
                                 op.initializer(b64.astype(bias.dtype), "bn_bias"), m["mean"],
                                 m["var"], _name=bn.name or "bn", **bn.attrs)


def conv_rules() -> list[RewriteRule]:
    return [
        RewriteRule("fuse_conv_bn", _bn_pattern, _bn_rewrite, _bn_check),
        RewriteRule("fuse_conv_mul", _mul_pattern, _mul_rewrite, _affine_check("s")),
        RewriteRule("fuse_conv_add", _add_pattern, _add_rewrite, _add_check_weights_bias_only),
        RewriteRule("fuse_pad_conv", _pad_pattern, _pad_rewrite, _pad_check),
        RewriteRule("fuse_bn_mul", _bn_affine_pattern("Mul"), _bn_affine_rewrite,
                    _bn_affine_check),
        RewriteRule("fuse_bn_add", _bn_affine_pattern("Add"), _bn_affine_rewrite,
                    _bn_affine_check),
    ]
