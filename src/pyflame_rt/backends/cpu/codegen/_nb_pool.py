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
def _flat_taps(xp, a, cnt, s, wp, kh_, kw_, dh, dw, is_max):
    """a[f] = max / sum over the taps of xp[s * f + kh * dh * wp + kw * dw] (f < cnt)."""
    if is_max and kh_ == 3 and kw_ == 3 and dh == 1 and dw == 1 and s <= 2:
        r0 = xp[0:s * (cnt - 1) + 3]
        r1 = xp[wp:wp + s * (cnt - 1) + 3]
        r2 = xp[2 * wp:2 * wp + s * (cnt - 1) + 3]
        if s == 1:
            for f in range(cnt):
                a[f] = max(max(max(r0[f], r0[f + 1]), max(r0[f + 2], r1[f])),
                           max(max(r1[f + 1], r1[f + 2]), max(max(r2[f], r2[f + 1]), r2[f + 2])))
        else:
            for f in range(cnt):
                i = 2 * f
                a[f] = max(max(max(r0[i], r0[i + 1]), max(r0[i + 2], r1[i])),
                           max(max(r1[i + 1], r1[i + 2]), max(max(r2[i], r2[i + 1]), r2[i + 2])))
        return
    first = True
    for kh in range(kh_):
        for kw in range(kw_):
            off = kh * dh * wp + kw * dw
            seg = xp[off:off + s * (cnt - 1) + 1]
            if first:
                if s == 1:
                    for f in range(cnt):
                        a[f] = seg[f]
                else:
                    for f in range(cnt):
                        a[f] = seg[s * f]
                first = False
            elif is_max:
                if s == 1:
                    for f in range(cnt):
                        a[f] = max(a[f], seg[f])
                else:
                    for f in range(cnt):
                        a[f] = max(a[f], seg[s * f])
            elif s == 1:
                for f in range(cnt):
                    a[f] += seg[f]
            else:
                for f in range(cnt):
                    a[f] += seg[s * f]


@njit
def _max3x3_same(src, dst, hm, h, w):
    """3x3 stride-1 max pool with one pixel of -inf padding, on one contiguous plane: a
    horizontal then a vertical max of three, each one flat pass over the plane (no padded
    copy), with the image edges fixed up after."""
    n = h * w
    if w == 1:
        for f in range(n):
            hm[f] = src[f]
    else:
        left = src[0:n - 2]
        mid = src[1:n - 1]
        right = src[2:n]
        out = hm[1:n - 1]
        for f in range(n - 2):
            out[f] = max(max(left[f], mid[f]), right[f])
        for r in range(h):
            a = r * w
            b = a + w - 1
            hm[a] = max(src[a], src[a + 1])
            hm[b] = max(src[b - 1], src[b])
    if h == 1:
        for f in range(n):
            dst[f] = hm[f]
        return
    up = hm[0:n - 2 * w]
    mid = hm[w:n - w]
    down = hm[2 * w:n]
    out = dst[w:n - w]
    for f in range(n - 2 * w):
        out[f] = max(max(up[f], mid[f]), down[f])
    for o in range(w):
        dst[o] = max(hm[o], hm[o + w])
        dst[n - w + o] = max(hm[n - 2 * w + o], hm[n - w + o])


@njit
def pool2d(x, y, q0, q1, h, w, oh_, ow_, kh_, kw_, sh, sw, dh, dw, pt, pl, hp, wp, is_max,
           cnt_h, cnt_w):
    """Pool planes [q0, q1) of flat ``x`` ([planes, h, w]) into flat ``y`` ([planes, oh, ow]).

    With equal strides the taps run over the flat padded grid (rows ``wp`` wide; the columns
    past ``ow`` are dropped when copying out), so vectors span rows of small planes.
    """
    if (is_max and kh_ == 3 and kw_ == 3 and sh == 1 and sw == 1 and dh == 1 and dw == 1
            and pt == 1 and pl == 1 and oh_ == h and ow_ == w):
        hm = np.empty(h * w, np.float32)
        for q in range(q0, q1):
            _max3x3_same(x[q * h * w:(q + 1) * h * w], y[q * h * w:(q + 1) * h * w], hm, h, w)
        return
    fill = np.float32(-np.inf) if is_max else np.float32(0.0)
    xp = np.empty(hp * wp, np.float32)
    for i in range(hp * wp):
        xp[i] = fill
    inv_w = np.empty(ow_, np.float32)
    for o in range(ow_):
        inv_w[o] = np.float32(1.0) / np.float32(max(cnt_w[o], 1))
    flat = sh == sw and (sh == 1 or ow_ < 32)
    three = is_max and kh_ == 3 and kw_ == 3 and dh == 1 and dw == 1 and sw <= 2
    cnt = (oh_ - 1) * wp + ow_
    acc = np.empty(cnt if flat else 0, np.float32)
    for q in range(q0, q1):
        src = x[q * h * w:(q + 1) * h * w]
        for i in range(h):
            row = src[i * w:(i + 1) * w]
            dst = xp[(i + pt) * wp + pl:(i + pt) * wp + pl + w]
            for j in range(w):
                dst[j] = row[j]
        yq = y[q * oh_ * ow_:(q + 1) * oh_ * ow_]
        if flat:
            _flat_taps(xp, acc, cnt, sh, wp, kh_, kw_, dh, dw, is_max)
            for oi in range(oh_):
                out = yq[oi * ow_:(oi + 1) * ow_]
                a = acc[oi * wp:oi * wp + ow_]
                if is_max:
                    for o in range(ow_):
                        out[o] = a[o]
                else:
                    inv_h = np.float32(1.0) / np.float32(max(cnt_h[oi], 1))
                    for o in range(ow_):
                        out[o] = a[o] * (inv_h * inv_w[o])
            continue
        for oi in range(oh_):
            out = yq[oi * ow_:(oi + 1) * ow_]
            if three:
                r = oi * sh * wp
                r0 = xp[r:r + sw * (ow_ - 1) + 3]
                r1 = xp[r + wp:r + wp + sw * (ow_ - 1) + 3]
                r2 = xp[r + 2 * wp:r + 2 * wp + sw * (ow_ - 1) + 3]
                for o in range(ow_):
                    i = sw * o
                    out[o] = max(max(max(r0[i], r0[i + 1]), max(r0[i + 2], r1[i])),
                                 max(max(r1[i + 1], r1[i + 2]),
                                     max(max(r2[i], r2[i + 1]), r2[i + 2])))
                continue
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
