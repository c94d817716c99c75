"""The shape facts of one 2-D convolution call, and how to split it into parallel jobs."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConvGeometry", "split_range"]


@dataclass(frozen=True)
class ConvGeometry:
    """A 2-D convolution: X [n, c, h, w] * W [m, c/g, kh, kw] -> Y [n, m, oh, ow].

    ``pt``/``pl`` are the top/left pads (the bottom/right ones only shape ``oh``/``ow``).
    """

    n: int
    c: int
    h: int
    w: int
    m: int
    g: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pl: int
    oh: int
    ow: int

    @property
    def cg(self) -> int:
        return self.c // self.g

    @property
    def mg(self) -> int:
        return self.m // self.g

    @property
    def k(self) -> int:
        """Rows of the im2col matrix per group: C/g * kh * kw."""
        return self.cg * self.kh * self.kw

    @property
    def p(self) -> int:
        """Output pixels per image."""
        return self.oh * self.ow

    @property
    def flops(self) -> int:
        return 2 * self.n * self.m * self.p * self.k

    @property
    def pointwise(self) -> bool:
        """1x1 kernel, stride 1, no padding: the convolution is a plain matmul."""
        return (self.kh == self.kw == 1 and self.sh == self.sw == 1 and not self.pt
                and not self.pl and self.oh == self.h and self.ow == self.w)

    @property
    def depthwise(self) -> bool:
        return self.g > 1 and self.cg == 1

    def key(self) -> str:
        """A signature for the timing cache (batch size excluded: tactics are per image)."""
        return (f"c{self.c}h{self.h}w{self.w}m{self.m}g{self.g}k{self.kh}x{self.kw}"
                f"s{self.sh}x{self.sw}d{self.dh}x{self.dw}p{self.pt}x{self.pl}"
                f"o{self.oh}x{self.ow}")

    def with_batch(self, n: int) -> ConvGeometry:
        return ConvGeometry(n, self.c, self.h, self.w, self.m, self.g, self.kh, self.kw,
                            self.sh, self.sw, self.dh, self.dw, self.pt, self.pl, self.oh,
                            self.ow)


def split_range(total: int, parts: int, align: int = 1, minimum: int = 1) -> list[tuple[int, int]]:
    """``[0, total)`` cut into at most ``parts`` near-equal pieces, each a multiple of
    ``align`` long (but the last) and at least ``minimum`` long."""
    parts = max(1, min(parts, total // max(minimum, 1) or 1))
    step = -(-total // parts)
    step = max(minimum, -(-step // align) * align)
    return [(a, min(total, a + step)) for a in range(0, total, step)]
