"""Small uint8 image helpers: upscaling, text captions, tiling with gaps, error maps.

Frames are (H, W, 3) uint8 arrays; every function returns a new uint8 array.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def panel_scale(size: int, target: int = 256) -> int:
    """Integer nearest-neighbour factor that brings a `size`-pixel frame to about `target` px."""
    return max(1, int(round(target / max(1, size))))


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of (..., H, W, 3) by an integer factor."""
    if factor == 1:
        return np.ascontiguousarray(image)
    return np.asarray(image).repeat(factor, -3).repeat(factor, -2)


_FONT: ImageFont.ImageFont | ImageFont.FreeTypeFont | None = None


def font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's default font (loaded once)."""
    global _FONT
    if _FONT is None:
        _FONT = ImageFont.load_default()
    return _FONT


def text_size(text: str) -> tuple[int, int]:
    """(width, height) of `text` drawn in the default font."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font())
    return right - left, bottom - top


def line_height() -> int:
    return text_size("Ag|")[1] + 4


def text_bar(width: int, lines: Sequence[str] | str, background: tuple[int, int, int] = WHITE,
             colour: tuple[int, int, int] = BLACK, height: int | None = None) -> np.ndarray:
    """A (h, width, 3) strip with `lines` of text, left-aligned (h: one line height each)."""
    lines = [lines] if isinstance(lines, str) else list(lines)
    step = line_height()
    height = height if height is not None else step * max(1, len(lines)) + 2
    canvas = Image.new("RGB", (max(1, width), max(1, height)), background)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((3, 2 + i * step), line, fill=colour, font=font())
    return np.asarray(canvas, np.uint8).copy()


def caption(image: np.ndarray, lines: Sequence[str] | str, below: bool = False) -> np.ndarray:
    """`image` with a text bar above (or below) it; the result is as wide as the wider of the
    image and the text (the image is padded on the right with white)."""
    lines = [lines] if isinstance(lines, str) else list(lines)
    width = max([image.shape[1]] + [text_size(line)[0] + 8 for line in lines if line])
    bar = text_bar(width, lines)
    image = pad_to(image, image.shape[0], width)
    return np.concatenate([image, bar] if below else [bar, image], 0)


def pad_to(image: np.ndarray, height: int, width: int,
           background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Pad (H, W, 3) at the bottom/right to (height, width, 3)."""
    out = np.empty((height, width, 3), np.uint8)
    out[:] = background
    out[:image.shape[0], :image.shape[1]] = image[:height, :width]
    return out


def hstack(images: Sequence[np.ndarray], gap: int = 2,
           background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Images side by side (top-aligned), `gap` pixels apart."""
    height = max(i.shape[0] for i in images)
    parts: list[np.ndarray] = []
    for index, image in enumerate(images):
        if index and gap:
            parts.append(np.full((height, gap, 3), background, np.uint8))
        parts.append(pad_to(image, height, image.shape[1], background))
    return np.concatenate(parts, 1)


def vstack(images: Sequence[np.ndarray], gap: int = 2,
           background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Images one below the other (left-aligned), `gap` pixels apart."""
    width = max(i.shape[1] for i in images)
    parts: list[np.ndarray] = []
    for index, image in enumerate(images):
        if index and gap:
            parts.append(np.full((gap, width, 3), background, np.uint8))
        parts.append(pad_to(image, image.shape[0], width, background))
    return np.concatenate(parts, 0)


def grid(cells: Sequence[np.ndarray], columns: int, gap: int = 4,
         background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Cells (any sizes) tiled row by row into `columns` columns, each cell padded to the largest."""
    if not cells:
        raise ValueError("grid needs at least one cell")
    height = max(c.shape[0] for c in cells)
    width = max(c.shape[1] for c in cells)
    padded = [pad_to(c, height, width, background) for c in cells]
    columns = max(1, min(columns, len(padded)))
    rows = [hstack(padded[i:i + columns], gap, background) for i in range(0, len(padded), columns)]
    return vstack(rows, gap, background)


def border(image: np.ndarray, colour: tuple[int, int, int], width: int = 2) -> np.ndarray:
    """`image` with a coloured frame drawn over its outer `width` pixels."""
    out = image.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out


def grid_cell(width: float, cells: Sequence[tuple[int, int]]) -> float:
    """Size in output pixels of one grid cell in a `width`-pixel rendering whose free `cells`
    (x, y) are closed by one row/column of walls on each side."""
    return width / (max(max(c[0] for c in cells), max(c[1] for c in cells)) + 2)


def cell_box(c: tuple[int, int], size: float) -> tuple[float, float, float, float]:
    """Pixel box (left, top, right, bottom) of cell `c`, one pixel inside its edges."""
    return c[0] * size + 1, c[1] * size + 1, (c[0] + 1) * size - 1, (c[1] + 1) * size - 1


def error_map(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Per-pixel absolute error (mean over channels) of two uint8 (..., H, W, 3) stacks as a
    black (0) to white (full scale) image (..., H, W, 3)."""
    err = np.abs(truth.astype(np.float32) - prediction.astype(np.float32)).mean(-1)
    grey = np.clip(np.round(err), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, -1)
