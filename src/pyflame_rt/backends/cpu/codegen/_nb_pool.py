"""2-D max and average pooling of float32 planes (numba, imported lazily).

One plane at a time is copied into a scratch plane with the padding filled in (-inf for max,
0 for average), so the window loops need no bounds checks; rows of output are accumulated
tap by tap with 0-based unit-stride (or constant-stride) inner loops that LLVM vectorizes.
Average pooling divides by ``cnt_h[oh] * cnt_w[ow]`` (the caller computes the per-axis counts
of the ONNX rules: with or without the padding).
"""

from __future__ import annotations

import numpy as np

from .jit import announce_if_cold, njit

__all__ = ["pool2d", "warm"]


@njit
def pool2d(x, y, q0, q1, h, w, oh_, ow_, kh_, kw_, sh, sw, dh, dw, pt, pl, hp, wp, is_max,
           cnt_h, cnt_w):
    """Pool planes [q0, q1) of flat ``x`` ([planes, h, w]) into flat ``y`` ([planes, oh, ow])."""
    fill = np.float32(-np.inf) if is_max else np.float32(0.0)
    xp = np.empty(hp * wp, np.float32)
    for i in range(hp * wp):
        xp[i] = fill
    inv_w = np.empty(ow_, np.float32)
    for o in range(ow_):
        inv_w[o] = np.float32(1.0) / np.float32(max(cnt_w[o], 1))
    for q in range(q0, q1):
        src = x[q * h * w:(q + 1) * h * w]
        for i in range(h):
            row = src[i * w:(i + 1) * w]
            dst = xp[(i + pt) * wp + pl:(i + pt) * wp + pl + w]
            for j in range(w):
                dst[j] = row[j]
        yq = y[q * oh_ * ow_:(q + 1) * oh_ * ow_]
        for oi in range(oh_):
            out = yq[oi * ow_:(oi + 1) * ow_]
            for o in range(ow_):
                out[o] = fill
            for kh in range(kh_):
                r = (oi * sh + kh * dh) * wp
                for kw in range(kw_):
                    seg = xp[r + kw * dw:r + kw * dw + (ow_ - 1) * sw + 1]
                    if is_max:
                        if sw == 1:
                            for o in range(ow_):
                                out[o] = max(out[o], seg[o])
                        elif sw == 2:
                            for o in range(ow_):
                                out[o] = max(out[o], seg[2 * o])
                        else:
                            for o in range(ow_):
                                out[o] = max(out[o], seg[o * sw])
                    elif sw == 1:
                        for o in range(ow_):
                            out[o] += seg[o]
                    else:
                        for o in range(ow_):
                            out[o] += seg[o * sw]
            if not is_max:
                inv_h = np.float32(1.0) / np.float32(max(cnt_h[oi], 1))
                for o in range(ow_):
                    out[o] = out[o] * (inv_h * inv_w[o])


announce_if_cold(pool2d)


def warm() -> None:
    x = np.zeros(16, np.float32)
    y = np.zeros(4, np.float32)
    one = np.ones(2, np.int64)
    pool2d(x, y, 0, 1, 4, 4, 2, 2, 2, 2, 2, 2, 1, 1, 0, 0, 4, 4, True, one, one)
