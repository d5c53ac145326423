"""The brand images (home-assistant/brands rules), read with a small PNG decoder."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from .integration_files import BRAND, BRAND_IMAGES, script

# Pass origins and steps (x0, y0, dx, dy) of an interlaced PNG.
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


@dataclass
class Png:
    width: int
    height: int
    depth: int
    color_type: int
    interlace: int
    chunks: list[bytes]
    data: bytes  # the concatenated IDAT payload


def _png(path: Path) -> Png:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, chunks, idat, ihdr = 8, [], b"", b""
    while pos < len(raw):
        length, kind = struct.unpack(">I4s", raw[pos : pos + 8])
        body = raw[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", raw[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks.append(kind)
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND", (path, chunks)
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    return Png(width, height, depth, color_type, interlace, chunks, idat)


def _alpha(png: Png) -> list[bytearray]:
    """The alpha plane of an 8-bit RGBA PNG (interlaced or not)."""
    assert (png.depth, png.color_type) == (8, 6)
    raw = zlib.decompress(png.data)
    alpha = [bytearray(png.width) for _ in range(png.height)]
    off = 0
    for x0, y0, dx, dy in ADAM7 if png.interlace else ((0, 0, 1, 1),):
        xs = range(x0, png.width, dx)
        if not xs:
            continue
        stride = len(xs) * 4
        prev = bytearray(stride)
        for y in range(y0, png.height, dy):
            kind, line = raw[off], bytearray(raw[off + 1 : off + 1 + stride])
            off += 1 + stride
            for i in range(stride):
                a = line[i - 4] if i >= 4 else 0
                b = prev[i]
                c = prev[i - 4] if i >= 4 else 0
                if kind == 1:
                    p = a
                elif kind == 2:
                    p = b
                elif kind == 3:
                    p = (a + b) >> 1
                elif kind == 4:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else b if pb <= pc else c
                else:
                    p = 0
                line[i] = (line[i] + p) & 0xFF
            for i, x in enumerate(xs):
                alpha[y][x] = line[i * 4 + 3]
            prev = line
    assert off == len(raw)
    return alpha


def test_brand_images() -> None:
    """home-assistant/brands: PNG, sRGB, icon 256x256 (@2x 512), logo shortest side 128-256 (@2x 256-512)."""
    for name in BRAND_IMAGES:
        light = _png(BRAND / name)
        dark = _png(BRAND / f"dark_{name}")
        for png in (light, dark):
            assert (png.depth, png.color_type) == (8, 6), name  # 8-bit RGBA: a transparent background
            assert b"sRGB" in png.chunks or b"iCCP" not in png.chunks, name
        assert (dark.width, dark.height) == (light.width, light.height), name
        hidpi = "@2x" in name
        if name.startswith("icon"):
            assert (light.width, light.height) == ((512, 512) if hidpi else (256, 256)), name
        else:
            low, high = (256, 512) if hidpi else (128, 256)
            assert low <= min(light.width, light.height) <= high, name
            assert light.width >= light.height, f"{name}: a landscape logo is preferred"
        if hidpi:
            base = _png(BRAND / name.replace("@2x", ""))
            assert abs(light.width - 2 * base.width) <= 2 and light.height == 2 * base.height, name


@pytest.mark.parametrize("name", ["icon.png", "dark_icon.png", "logo.png", "dark_logo.png"])
def test_brand_images_are_trimmed_and_transparent(name: str) -> None:
    alpha = _alpha(_png(BRAND / name))
    rows = [y for y, row in enumerate(alpha) if any(row)]
    cols = [x for x in range(len(alpha[0])) if any(row[x] for row in alpha)]
    # Trimmed: the drawing reaches every edge.
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (0, len(alpha) - 1, 0, len(alpha[0]) - 1)
    assert alpha[0][0] == alpha[0][-1] == alpha[-1][0] == alpha[-1][-1] == 0


@pytest.mark.parametrize("name", ["icon.png", "logo.png", "dark_icon.png", "dark_logo.png"])
def test_brand_images_come_from_make_brand(name: str) -> None:
    """The committed images are what scripts/make_brand.py draws (the @2x ones take longer; same code)."""
    assert script("make_brand").IMAGES[name]() == (BRAND / name).read_bytes()
