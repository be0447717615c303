"""Small image helpers shared by the worlds: the image space, resizing, tiling frames into a strip.

Frames are uint8 arrays of shape (H, W, 3); everything here returns new uint8 arrays.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces
from PIL import Image


def image_obs_space(size: int) -> spaces.Dict:
    """The observation space of an image-only world: Dict(image=Box(0, 255, (size, size, 3), uint8))."""
    return spaces.Dict({"image": spaces.Box(0, 255, (size, size, 3), np.uint8)})


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an (H, W, 3) uint8 frame to (size, size, 3) with PIL.

    Shrinking averages source pixels (PIL's BOX filter, an area average); enlarging repeats them
    (NEAREST), so cell-based worlds keep their flat colours. A non-square frame is stretched to a
    square, as pixel-based agents expect. A frame already of the right size is returned as is.
    """
    image = np.asarray(image)
    height, width = image.shape[:2]
    if height == size and width == size:
        return np.ascontiguousarray(image, dtype=np.uint8)
    if height >= size and width >= size:
        resample = Image.Resampling.BOX
    elif height <= size and width <= size:
        resample = Image.Resampling.NEAREST
    else:
        resample = Image.Resampling.BILINEAR
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    return np.asarray(pil.resize((size, size), resample=resample), dtype=np.uint8)


def tile_frames(frames: Sequence[np.ndarray], columns: int, gap: int = 2,
                background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Tile equally sized (H, W, 3) frames row by row into one image.

    Returns an array of shape (rows*H + (rows-1)*gap, cols*W + (cols-1)*gap, 3), where
    cols = min(columns, len(frames)) and rows = ceil(len(frames) / cols); unused cells and the
    gaps between frames are filled with `background`.
    """
    if not frames:
        raise ValueError("tile_frames needs at least one frame")
    height, width = frames[0].shape[:2]
    cols = max(1, min(columns, len(frames)))
    rows = -(-len(frames) // cols)
    out = np.empty((rows * height + (rows - 1) * gap, cols * width + (cols - 1) * gap, 3), np.uint8)
    out[:] = background
    for index, frame in enumerate(frames):
        row, col = divmod(index, cols)
        top, left = row * (height + gap), col * (width + gap)
        out[top:top + height, left:left + width] = frame
    return out
