"""CPU kernels for loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.

Both pick one class per sample along axis 1 of an (N, C, d1, ..., dk) tensor. Arithmetic runs
in float32 for 16-bit inputs (float64 for double) and the results are cast back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ops import KernelContext, kernel
from .nn import compute_dtype, output_wanted

__all__ = ["negative_log_likelihood_loss", "softmax_cross_entropy_loss"]

_REDUCTIONS = ("none", "sum", "mean")


def _reduction(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode()
    value = "mean" if value is None else str(value)
    if value not in _REDUCTIONS:
        raise ValueError(f"reduction={value!r} must be one of {', '.join(_REDUCTIONS)}")
    return value


def _nll(logp: np.ndarray, target: np.ndarray, weight: np.ndarray | None,
         ignore_index: int | None, reduction: str) -> np.ndarray:
    """Weighted NLL of log-probabilities ``logp`` (N, C, ...) in their compute dtype."""
    if logp.ndim < 2:
        raise ValueError(f"input must be (N, C) or (N, C, d1, ..., dk), got shape "
                         f"{list(logp.shape)}")
    classes = logp.shape[1]
    expected = (logp.shape[0], *logp.shape[2:])
    if target.shape != expected:
        raise ValueError(f"target shape {list(target.shape)} must be {list(expected)} (input "
                         "shape without the class axis)")
    if weight is not None and weight.shape != (classes,):
        raise ValueError(f"weight must be a vector of {classes} class weights, got shape "
                         f"{list(weight.shape)}")
    labels = target.astype(np.int64, copy=False)
    if ignore_index is not None:
        ignored = labels == ignore_index
        labels = np.where(ignored, 0, labels)
    else:
        ignored = None
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"target values must lie in [0, {classes}) or equal ignore_index "
                         f"({ignore_index})")
    picked = np.take_along_axis(logp, labels[:, None], axis=1)[:, 0]
    if weight is not None:
        w = weight.astype(logp.dtype)[labels]
    else:
        w = np.ones(labels.shape, dtype=logp.dtype)
    if ignored is not None:
        w[ignored] = 0
    loss = -picked * w
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return np.asarray(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Every sample ignored gives 0/0 = NaN, as PyTorch's NLLLoss does.
        return np.asarray(total / w.sum())


@kernel("NegativeLogLikelihoodLoss", since=12)
def negative_log_likelihood_loss(input, target, weight=None, *,
                                 ignore_index: int | None = None, reduction: str = "mean"):
    """ONNX NegativeLogLikelihoodLoss-12/13/22: loss = -input[n, target[n], ...] * weight."""
    work = compute_dtype(input.dtype)
    loss = _nll(input.astype(work, copy=False), target, weight, ignore_index,
                _reduction(reduction))
    return loss.astype(input.dtype)


@kernel("SoftmaxCrossEntropyLoss", since=12)
def softmax_cross_entropy_loss(scores, labels, weights=None, *, ignore_index: int | None = None,
                               reduction: str = "mean", _ctx: KernelContext | None = None):
    """ONNX SoftmaxCrossEntropyLoss-12/13: NLL of LogSoftmax(scores, axis=1); log_prob too."""
    if scores.ndim < 2:
        raise ValueError(f"scores must be (N, C) or (N, C, d1, ..., dk), got shape "
                         f"{list(scores.shape)}")
    work = compute_dtype(scores.dtype)
    x = scores.astype(work)
    x -= x.max(axis=1, keepdims=True)
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    loss = _nll(logp, labels, weights, ignore_index, _reduction(reduction)).astype(scores.dtype)
    if output_wanted(_ctx, 1):
        return loss, logp.astype(scores.dtype)
    if _ctx is not None and getattr(_ctx, "noutputs", 1) > 1:
        return loss, None
    return loss
