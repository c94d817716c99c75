"""2-D max and average pooling of float32 planes, and global average pooling (numba,
imported lazily).

One plane at a time is copied into a scratch plane whose border holds the padding (-inf for
max, 0 for average), so the window loops need no bounds checks; each output row is then
computed in 8-lane vectors of ``_nb_simd`` (the row's tail with a masked store), stride 2
through a 16-wide load and a shuffle. Left to LLVM's loop vectorizer, the short rows of
small maps ran mostly scalar. Average pooling divides by ``cnt_h[oh] * cnt_w[ow]`` (the
caller computes the per-axis counts of the ONNX rules: with or without the padding).
"""

from __future__ import annotations

import numpy as np

from ._nb_simd import (
    LANES,
    vadd,
    vhsum,
    vload,
    vload_n,
    vload_s2,
    vmax,
    vmul,
    vsplat,
    vstore,
    vstore_n,
)
from .jit import announce_if_cold, njit

__all__ = ["global_avg", "pool2d", "warm"]


@njit
def _copy_plane(x, xbase, h, w, xp, dbase, wp):
    """Copy plane ``x[xbase:xbase + h*w]`` into ``xp`` at ``dbase``, rows ``wp`` apart."""
    tail = w % LANES
    for i in range(h):
        d = dbase + i * wp
        s = xbase + i * w
        for j in range(0, w - tail, LANES):
            vstore(xp, d + j, vload(x, s + j))
        if tail:
            vstore_n(xp, d + w - tail, vload_n(x, s + w - tail, tail), tail)


@njit
def _tap(xp, i, sw):
    return vload(xp, i) if sw == 1 else vload_s2(xp, i)


@njit
def _max_3x3_rows(xp, wp, sh, sw, y, yb, oh_, ow_):
    """3x3 undilated max pool, column stride 1 or 2, from padded ``xp``."""
    for oh in range(oh_):
        ob = yb + oh * ow_
        for o in range(0, ow_, LANES):
            r0 = oh * sh * wp + o * sw
            r1 = r0 + wp
            r2 = r1 + wp
            a = vmax(vmax(_tap(xp, r0, sw), _tap(xp, r0 + 1, sw)), _tap(xp, r0 + 2, sw))
            b = vmax(vmax(_tap(xp, r1, sw), _tap(xp, r1 + 1, sw)), _tap(xp, r1 + 2, sw))
            c = vmax(vmax(_tap(xp, r2, sw), _tap(xp, r2 + 1, sw)), _tap(xp, r2 + 2, sw))
            a = vmax(vmax(a, b), c)
            if o + LANES <= ow_:
                vstore(y, ob + o, a)
            else:
                vstore_n(y, ob + o, a, ow_ - o)


@njit
def _max_rows_separable(x, xb, h, w, pt, pl, oh_, ow_, kh_, kw_, sh, sw, dh, dw, y, yb, vm):
    """Max pool of one plane straight from ``x`` (no padded copy), column stride 1 or 2:
    per output row, the maximum of its window's input rows that exist (padding rows add
    nothing to a maximum) into the interior of ``vm``, whose border holds -inf, then the
    maximum of the window's columns of ``vm``. Reads the input once instead of copying it."""
    tail = w % LANES
    for oh in range(oh_):
        first = True
        for kh in range(kh_):
            r = oh * sh - pt + kh * dh
            if r < 0 or r >= h:
                continue
            s = xb + r * w
            for j in range(0, w - tail, LANES):
                v = vload(x, s + j)
                vstore(vm, pl + j, v if first else vmax(vload(vm, pl + j), v))
            if tail:
                j = w - tail
                v = vload_n(x, s + j, tail)
                vstore_n(vm, pl + j, v if first else vmax(vload(vm, pl + j), v), tail)
            first = False
        if first:  # the window lies in the padding rows: nothing but -inf
            for j in range(w):
                vm[pl + j] = -np.inf
        ob = yb + oh * ow_
        for o in range(0, ow_, LANES):
            a = _tap(vm, o * sw, sw)
            for kw in range(1, kw_):
                a = vmax(a, _tap(vm, o * sw + kw * dw, sw))
            if o + LANES <= ow_:
                vstore(y, ob + o, a)
            else:
                vstore_n(y, ob + o, a, ow_ - o)


@njit
def _pool_2x2_rows(xp, wp, sh, sw, y, yb, oh_, ow_, is_max, inv_h, inv_w):
    """2x2 undilated window, column stride 1 or 2 (DenseNet's transitions, GoogLeNet)."""
    for oh in range(oh_):
        ob = yb + oh * ow_
        scale = vsplat(inv_h[oh])
        for o in range(0, ow_, LANES):
            r0 = oh * sh * wp + o * sw
            r1 = r0 + wp
            if is_max:
                a = vmax(vmax(_tap(xp, r0, sw), _tap(xp, r0 + 1, sw)),
                         vmax(_tap(xp, r1, sw), _tap(xp, r1 + 1, sw)))
            else:
                a = vadd(vadd(_tap(xp, r0, sw), _tap(xp, r0 + 1, sw)),
                         vadd(_tap(xp, r1, sw), _tap(xp, r1 + 1, sw)))
                a = vmul(a, vmul(scale, vload(inv_w, o)))
            if o + LANES <= ow_:
                vstore(y, ob + o, a)
            else:
                vstore_n(y, ob + o, a, ow_ - o)


@njit
def _pool_rows(xp, wp, y, yb, oh_, ow_, kh_, kw_, sh, sw, dh, dw, is_max, inv_h, inv_w):
    """Any window, column stride 1 or 2: max, or sum times ``inv_h[oh] * inv_w[ow]``."""
    for oh in range(oh_):
        ob = yb + oh * ow_
        scale = vsplat(inv_h[oh])
        for o in range(0, ow_, LANES):
            a = _tap(xp, oh * sh * wp + o * sw, sw)
            for kh in range(kh_):
                r = (oh * sh + kh * dh) * wp + o * sw
                for kw in range(kw_):
                    if kh == 0 and kw == 0:
                        continue
                    if is_max:
                        a = vmax(a, _tap(xp, r + kw * dw, sw))
                    else:
                        a = vadd(a, _tap(xp, r + kw * dw, sw))
            if not is_max:
                a = vmul(a, vmul(scale, vload(inv_w, o)))
            if o + LANES <= ow_:
                vstore(y, ob + o, a)
            else:
                vstore_n(y, ob + o, a, ow_ - o)


@njit
def _pool_rows_scalar(xp, wp, y, yb, oh_, ow_, kh_, kw_, sh, sw, dh, dw, is_max, inv_h,
                      inv_w):
    """Any window and strides (the rare column strides above 2), one element at a time."""
    for oh in range(oh_):
        out = y[yb + oh * ow_:yb + (oh + 1) * ow_]
        for o in range(ow_):
            out[o] = xp[oh * sh * wp + o * sw]
        for kh in range(kh_):
            r = (oh * sh + kh * dh) * wp
            for kw in range(kw_):
                if kh == 0 and kw == 0:
                    continue
                seg = xp[r + kw * dw:r + kw * dw + (ow_ - 1) * sw + 1]
                for o in range(ow_):
                    if is_max:
                        out[o] = max(out[o], seg[o * sw])
                    else:
                        out[o] += seg[o * sw]
        if not is_max:
            for o in range(ow_):
                out[o] = out[o] * (inv_h[oh] * inv_w[o])


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
    """Pool planes [q0, q1) of flat ``x`` ([planes, h, w]) into flat ``y`` ([planes, oh, ow]);
    ``hp`` x ``wp`` is the padded plane (top/left pads ``pt``/``pl``) every window fits in."""
    if (is_max and kh_ == 3 and kw_ == 3 and sh == 1 and sw == 1 and dh == 1 and dw == 1
            and pt == 1 and pl == 1 and oh_ == h and ow_ == w and w > 16):
        # Separable maxima over whole planes; narrower rows go faster in vectors (below).
        hm = np.empty(h * w, np.float32)
        for q in range(q0, q1):
            _max3x3_same(x[q * h * w:(q + 1) * h * w], y[q * h * w:(q + 1) * h * w], hm, h, w)
        return
    fill = np.float32(-np.inf) if is_max else np.float32(0.0)
    # The padding stays in the border; every plane overwrites the interior. The slack past
    # the end is read by the lanes of a row's last vector, which are not stored.
    xp = np.empty(hp * wp + 4 * LANES, np.float32)
    for i in range(xp.size):
        xp[i] = fill
    inv_h = np.empty(oh_, np.float32)
    for o in range(oh_):
        inv_h[o] = np.float32(1.0) / np.float32(max(cnt_h[o], 1))
    inv_w = np.ones(ow_ + LANES, np.float32)
    for o in range(ow_):
        inv_w[o] = np.float32(1.0) / np.float32(max(cnt_w[o], 1))
    three = is_max and kh_ == 3 and kw_ == 3 and dh == 1 and dw == 1 and sw <= 2
    plane = oh_ * ow_
    # Windows that need no padding read the input planes in place, but for the last ones,
    # whose final vectors would read past the end of ``x``; padded max pools of wide planes
    # go separably, also without a copy; the others copy each plane into a padded one.
    unpadded = pt == 0 and pl == 0 and hp == h and wp == w
    if is_max and not unpadded and sw <= 2 and pt < kh_ and pl < kw_ and w >= 32:
        vm = np.empty(wp + 4 * LANES, np.float32)
        for i in range(vm.size):
            vm[i] = fill
        for q in range(q0, q1):
            _max_rows_separable(x, q * h * w, h, w, pt, pl, oh_, ow_, kh_, kw_, sh, sw, dh, dw,
                                y, q * plane, vm)
        return
    for q in range(q0, q1):
        src = x
        base = q * h * w
        if not (unpadded and base + h * w + 4 * LANES <= x.size):
            _copy_plane(x, base, h, w, xp, pt * wp + pl, wp)
            src = xp
            base = 0
        src = src[base:]
        if three:
            _max_3x3_rows(src, wp, sh, sw, y, q * plane, oh_, ow_)
        elif kh_ == 2 and kw_ == 2 and dh == 1 and dw == 1 and sw <= 2:
            _pool_2x2_rows(src, wp, sh, sw, y, q * plane, oh_, ow_, is_max, inv_h, inv_w)
        elif sw <= 2:
            _pool_rows(src, wp, y, q * plane, oh_, ow_, kh_, kw_, sh, sw, dh, dw, is_max,
                       inv_h, inv_w)
        else:
            _pool_rows_scalar(src, wp, y, q * plane, oh_, ow_, kh_, kw_, sh, sw, dh, dw, is_max,
                              inv_h, inv_w)


@njit
def global_avg(x, y, rows, n):
    """y[r] = mean of x[r * n:(r + 1) * n] for r < rows (GlobalAveragePool of planes)."""
    tail = n % LANES
    inv = np.float32(1.0) / np.float32(n)
    zero = vsplat(np.float32(0.0))
    for r in range(rows):
        b = r * n
        a0 = zero
        a1 = zero
        j = 0
        while j + 2 * LANES <= n - tail:
            a0 = vadd(a0, vload(x, b + j))
            a1 = vadd(a1, vload(x, b + j + LANES))
            j += 2 * LANES
        if j < n - tail:
            a0 = vadd(a0, vload(x, b + j))
        if tail:
            a1 = vadd(a1, vload_n(x, b + n - tail, tail))
        y[r] = vhsum(vadd(a0, a1)) * inv


announce_if_cold(pool2d, global_avg)


def warm() -> None:
    x = np.zeros(16, np.float32)
    y = np.zeros(4, np.float32)
    one = np.ones(2, np.int64)
    pool2d(x, y, 0, 1, 4, 4, 2, 2, 2, 2, 2, 2, 1, 1, 0, 0, 4, 4, True, one, one)
    global_avg(x, y, 1, 16)
