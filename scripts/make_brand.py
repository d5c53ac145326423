#!/usr/bin/env python3
"""Draw the integration's brand images (custom_components/nut_bridge/brand/*.png).

Stdlib only: shapes are signed-distance functions sampled once per pixel with a
one-pixel anti-aliasing ramp, written as 8-bit RGBA PNGs (zlib + struct).

The design: a green disc holding a white battery with an amber bolt (the icon), and
the disc followed by the word mark "NUT BRIDGE" (the logo). Sizes follow the
home-assistant/brands rules: icon 256x256 (@2x 512x512); logo shortest side 256
(@2x 512); transparent background, trimmed to the drawing, sRGB, interlaced.
``dark_*`` variants are meant for dark backgrounds.

    python3 scripts/make_brand.py [--out DIR]
"""

from __future__ import annotations

import argparse
import math
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "custom_components" / "nut_bridge" / "brand"

Color = tuple[int, int, int]
Point = tuple[float, float]


@dataclass(frozen=True)
class Palette:
    disc: Color
    battery: Color
    bolt: Color
    accent_text: Color  # "NUT"
    text: Color  # "BRIDGE"


LIGHT = Palette(disc=(0x13, 0x7A, 0x55), battery=(0xFF, 0xFF, 0xFF), bolt=(0xFF, 0xC1, 0x2E),
                accent_text=(0x13, 0x7A, 0x55), text=(0x26, 0x32, 0x38))
DARK = Palette(disc=(0x21, 0xA0, 0x72), battery=(0xFF, 0xFF, 0xFF), bolt=(0xFF, 0xC9, 0x47),
               accent_text=(0x3D, 0xC4, 0x8E), text=(0xEC, 0xEF, 0xF1))


# ---------------------------------------------------------------- shapes
# A shape is a signed distance (in pixels; negative inside) plus the box outside
# which it is certainly empty, so each shape is only evaluated near itself.


@dataclass(frozen=True)
class Shape:
    sdf: Callable[[float, float], float]
    box: tuple[float, float, float, float]  # x0, y0, x1, y1


def disc(cx: float, cy: float, r: float) -> Shape:
    return Shape(lambda x, y: math.hypot(x - cx, y - cy) - r, (cx - r, cy - r, cx + r, cy + r))


def _round_rect_sdf(cx: float, cy: float, hw: float, hh: float, r: float) -> Callable[[float, float], float]:
    def sdf(x: float, y: float) -> float:
        qx = abs(x - cx) - hw + r
        qy = abs(y - cy) - hh + r
        return math.hypot(max(qx, 0.0), max(qy, 0.0)) + min(max(qx, qy), 0.0) - r

    return sdf


def round_rect(cx: float, cy: float, hw: float, hh: float, r: float) -> Shape:
    return Shape(_round_rect_sdf(cx, cy, hw, hh, r), (cx - hw, cy - hh, cx + hw, cy + hh))


def round_rect_outline(cx: float, cy: float, hw: float, hh: float, r: float, width: float) -> Shape:
    inner = _round_rect_sdf(cx, cy, hw - width / 2, hh - width / 2, max(r - width / 2, 0.0))
    return Shape(lambda x, y: abs(inner(x, y)) - width / 2, (cx - hw, cy - hh, cx + hw, cy + hh))


def _segment_distance(x: float, y: float, a: Point, b: Point) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((x - a[0]) * dx + (y - a[1]) * dy) / length2))
    return math.hypot(x - a[0] - t * dx, y - a[1] - t * dy)


def stroke(a: Point, b: Point, width: float) -> Shape:
    """A straight stroke with round caps."""
    h = width / 2
    return Shape(
        lambda x, y: _segment_distance(x, y, a, b) - h,
        (min(a[0], b[0]) - h, min(a[1], b[1]) - h, max(a[0], b[0]) + h, max(a[1], b[1]) + h),
    )


def arc(cx: float, cy: float, r: float, start: float, sweep: float, width: float) -> Shape:
    """A circular stroke with round caps, from ``start`` degrees clockwise (y points down)."""
    a0 = math.radians(start)
    span = math.radians(sweep)
    ends = [(cx + r * math.cos(t), cy + r * math.sin(t)) for t in (a0, a0 + span)]
    h = width / 2

    def sdf(x: float, y: float) -> float:
        t = (math.atan2(y - cy, x - cx) - a0) % math.tau
        if t <= span:
            return abs(math.hypot(x - cx, y - cy) - r) - h
        return min(math.hypot(x - ex, y - ey) for ex, ey in ends) - h

    return Shape(sdf, (cx - r - h, cy - r - h, cx + r + h, cy + r + h))


def polygon(points: Sequence[Point]) -> Shape:
    edges = list(zip(points, [*points[1:], points[0]], strict=True))

    def sdf(x: float, y: float) -> float:
        d = min(_segment_distance(x, y, a, b) for a, b in edges)
        inside = False
        for (ax, ay), (bx, by) in edges:
            if (ay > y) != (by > y) and x < ax + (y - ay) * (bx - ax) / (by - ay):
                inside = not inside
        return -d if inside else d

    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return Shape(sdf, (min(xs), min(ys), max(xs), max(ys)))


# ---------------------------------------------------------------- canvas


class Canvas:
    """Straight-alpha RGBA floats; layers are composited with "over"."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.rgba = [[0.0, 0.0, 0.0, 0.0] for _ in range(width * height)]

    def layer(self, color: Color, shapes: Iterable[Shape]) -> None:
        """Paint the union of ``shapes`` in one colour (coverage = max over shapes)."""
        coverage: dict[int, float] = {}
        for shape in shapes:
            x0, y0, x1, y1 = shape.box
            for py in range(max(0, math.floor(y0) - 1), min(self.height, math.ceil(y1) + 1)):
                for px in range(max(0, math.floor(x0) - 1), min(self.width, math.ceil(x1) + 1)):
                    a = min(1.0, max(0.0, 0.5 - shape.sdf(px + 0.5, py + 0.5)))
                    if a > 0.0:
                        i = py * self.width + px
                        if a > coverage.get(i, 0.0):
                            coverage[i] = a
        r, g, b = (c / 255 for c in color)
        for i, a in coverage.items():
            dst = self.rgba[i]
            out_a = a + dst[3] * (1 - a)
            keep = dst[3] * (1 - a)
            dst[0] = (r * a + dst[0] * keep) / out_a
            dst[1] = (g * a + dst[1] * keep) / out_a
            dst[2] = (b * a + dst[2] * keep) / out_a
            dst[3] = out_a

    def png(self) -> bytes:
        pixels = bytearray()
        for r, g, b, a in self.rgba:
            if a <= 0.0:
                pixels += b"\0\0\0\0"
            else:
                pixels += bytes(round(v * 255) for v in (r, g, b, a))
        return encode_png(self.width, self.height, bytes(pixels))


# ---------------------------------------------------------------- PNG

# Adam7 passes: x0, y0, dx, dy.
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _filter_row(row: bytes, prev: bytes, bpp: int) -> bytes:
    """The filtered row with the smallest sum of absolute values (the usual heuristic)."""
    n = len(row)
    left = bytes(bpp) + row[:-bpp]
    up_left = bytes(bpp) + prev[:-bpp]
    candidates = (
        b"\0" + row,
        b"\1" + bytes((row[i] - left[i]) & 0xFF for i in range(n)),
        b"\2" + bytes((row[i] - prev[i]) & 0xFF for i in range(n)),
        b"\3" + bytes((row[i] - ((left[i] + prev[i]) >> 1)) & 0xFF for i in range(n)),
        b"\4" + bytes((row[i] - _paeth(left[i], prev[i], up_left[i])) & 0xFF for i in range(n)),
    )
    return min(candidates, key=lambda f: sum(v if v < 128 else 256 - v for v in f[1:]))


def encode_png(width: int, height: int, rgba: bytes, *, interlace: bool = True) -> bytes:
    """8-bit RGBA, sRGB, Adam7-interlaced unless told otherwise."""
    bpp = 4
    raw = bytearray()
    for x0, y0, dx, dy in ADAM7 if interlace else ((0, 0, 1, 1),):
        cols = range(x0, width, dx)
        if not cols:
            continue
        prev = bytes(len(cols) * bpp)
        for y in range(y0, height, dy):
            row = b"".join(rgba[(y * width + x) * bpp : (y * width + x + 1) * bpp] for x in cols)
            raw += _filter_row(row, prev, bpp)
            prev = row
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, int(interlace))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"sRGB", b"\0")  # perceptual rendering intent
        + _chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + _chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------- drawing


def draw_badge(canvas: Canvas, size: float, x: float, palette: Palette) -> None:
    """The icon: a disc of diameter ``size`` whose left edge is at ``x``."""

    def at(u: float, v: float) -> Point:
        return (x + u * size, v * size)

    canvas.layer(palette.disc, [disc(x + size / 2, size / 2, size / 2)])
    s = size
    canvas.layer(
        palette.battery,
        [
            round_rect_outline(x + 0.5 * s, 0.555 * s, 0.165 * s, 0.265 * s, 0.055 * s, 0.055 * s),
            round_rect(x + 0.5 * s, 0.262 * s, 0.07 * s, 0.04 * s, 0.02 * s),
        ],
    )
    bolt = [at(0.55, 0.385), at(0.43, 0.575), at(0.498, 0.575), at(0.462, 0.725),
            at(0.58, 0.52), at(0.51, 0.52)]
    canvas.layer(palette.bolt, [polygon(bolt)])


# Stroke letters on a cap height of 1 (y down), with their advance widths.
STROKE = 0.17  # of the cap height
TRACKING = 0.13  # space between letters, of the cap height
WORD_SPACE = 0.36

Letter = tuple[float, Callable[[float, float, float, float], list[Shape]]]


def _letters() -> dict[str, Letter]:
    def n(x: float, y: float, h: float, w: float) -> list[Shape]:
        e = w / 2
        a, b = x + e, x + 0.78 * h - e
        return [stroke((a, y + h - e), (a, y + e), w), stroke((a, y + e), (b, y + h - e), w),
                stroke((b, y + h - e), (b, y + e), w)]

    def u(x: float, y: float, h: float, w: float) -> list[Shape]:
        e = w / 2
        r = 0.74 * h / 2 - e
        cx, cy = x + 0.74 * h / 2, y + h - e - r
        return [stroke((cx - r, y + e), (cx - r, cy), w), arc(cx, cy, r, 0, 180, w),
                stroke((cx + r, cy), (cx + r, y + e), w)]

    def t(x: float, y: float, h: float, w: float) -> list[Shape]:
        e = w / 2
        mid = x + 0.72 * h / 2
        return [stroke((x + e, y + e), (x + 0.72 * h - e, y + e), w),
                stroke((mid, y + e), (mid, y + h - e), w)]

    def bowl(x: float, top: float, bottom: float, right: float, w: float) -> list[Shape]:
        """A D-shaped bowl from the stem at x, between the centre lines top and bottom."""
        r = (bottom - top) / 2
        cx = right - w / 2 - r
        return [stroke((x, top), (cx, top), w), arc(cx, top + r, r, -90, 180, w),
                stroke((cx, bottom), (x, bottom), w)]

    def b(x: float, y: float, h: float, w: float) -> list[Shape]:
        e = w / 2
        mid = y + 0.47 * h
        return [stroke((x + e, y + e), (x + e, y + h - e), w),
                *bowl(x + e, y + e, mid, x + 0.6 * h, w), *bowl(x + e, mid, y + h - e, x + 0.66 * h, w)]

    def r_(x: float, y: float, h: float, w: float) -> list[Shape]:
        e = w / 2
        mid = y + 0.52 * h
        return [stroke((x + e, y + e), (x + e, y + h - e), w), *bowl(x + e, y + e, mid, x + 0.66 * h, w),
                stroke((x + 0.36 * h, mid), (x + 0.68 * h - e, y + h - e), w)]

    def i(x: float, y: float, h: float, w: float) -> list[Shape]:
        return [stroke((x + w / 2, y + w / 2), (x + w / 2, y + h - w / 2), w)]

    def d(x: float, y: float, h: float, w: float) -> list[Shape]:
        e = w / 2
        return [stroke((x + e, y + e), (x + e, y + h - e), w),
                *bowl(x + e, y + e, y + h - e, x + 0.74 * h, w)]

    def g(x: float, y: float, h: float, w: float) -> list[Shape]:
        e = w / 2
        r = h / 2 - e
        cx, cy = x + 0.78 * h / 2, y + h / 2
        # The bowl runs from the lower right, round the bottom, left and top, to the upper right.
        end = (cx + r * math.cos(math.radians(30)), cy + r * math.sin(math.radians(30)))
        bar_y = y + 0.53 * h
        return [arc(cx, cy, r, 30, 290, w), stroke(end, (end[0], bar_y), w),
                stroke((cx + 0.02 * h, bar_y), (end[0], bar_y), w)]

    def e_(x: float, y: float, h: float, w: float) -> list[Shape]:
        e = w / 2
        right = x + 0.62 * h - e
        return [stroke((x + e, y + e), (x + e, y + h - e), w), stroke((x + e, y + e), (right, y + e), w),
                stroke((x + e, y + h / 2), (right - 0.06 * h, y + h / 2), w),
                stroke((x + e, y + h - e), (right, y + h - e), w)]

    return {"N": (0.78, n), "U": (0.74, u), "T": (0.72, t), "B": (0.66, b), "R": (0.68, r_),
            "I": (STROKE, i), "D": (0.74, d), "G": (0.78, g), "E": (0.62, e_)}


LETTERS = _letters()


def text_width(text: str, cap: float) -> float:
    width = 0.0
    for k, ch in enumerate(text):
        if ch == " ":
            width += WORD_SPACE * cap
            continue
        advance = LETTERS[ch][0] * cap
        width += advance + (TRACKING * cap if k + 1 < len(text) and text[k + 1] != " " else 0.0)
    return width


def draw_text(canvas: Canvas, text: str, x: float, y: float, cap: float, color: Color) -> float:
    shapes: list[Shape] = []
    for k, ch in enumerate(text):
        if ch == " ":
            x += WORD_SPACE * cap
            continue
        advance, draw = LETTERS[ch]
        shapes += draw(x, y, cap, STROKE * cap)
        x += advance * cap + (TRACKING * cap if k + 1 < len(text) else 0.0)
    canvas.layer(color, shapes)
    return x


def icon(size: int, palette: Palette) -> bytes:
    canvas = Canvas(size, size)
    draw_badge(canvas, size, 0, palette)
    return canvas.png()


def logo(height: int, palette: Palette) -> bytes:
    cap = 0.40 * height
    gap = 0.2 * height
    first, second = "NUT ", "BRIDGE"
    width = math.ceil(height + gap + text_width(first + second, cap))
    canvas = Canvas(width, height)
    draw_badge(canvas, height, 0, palette)
    y = (height - cap) / 2
    x = draw_text(canvas, first.rstrip(), height + gap, y, cap, palette.accent_text)
    draw_text(canvas, second, x + WORD_SPACE * cap, y, cap, palette.text)
    return canvas.png()


IMAGES: dict[str, Callable[[], bytes]] = {
    "icon.png": lambda: icon(256, LIGHT),
    "icon@2x.png": lambda: icon(512, LIGHT),
    "dark_icon.png": lambda: icon(256, DARK),
    "dark_icon@2x.png": lambda: icon(512, DARK),
    "logo.png": lambda: logo(256, LIGHT),
    "logo@2x.png": lambda: logo(512, LIGHT),
    "dark_logo.png": lambda: logo(256, DARK),
    "dark_logo@2x.png": lambda: logo(512, DARK),
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT, help=f"output directory (default {OUT})")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"only these of: {', '.join(IMAGES)}")
    args = parser.parse_args(argv)
    if unknown := set(args.names) - set(IMAGES):
        parser.error(f"unknown image(s): {', '.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or IMAGES:
        data = IMAGES[name]()
        (args.out / name).write_bytes(data)
        print(f"{args.out / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
