"""`show`: look at a world by running a random policy and saving what it sees.

Writes a GIF of every observation and, next to it, a PNG contact strip of every k-th frame
(at most 16 frames, 8 per row), so a person can check a world's look and dynamics at a glance:

    worlds.show("pinpad-four", steps=200, out="pinpad.gif")   # -> pinpad.gif, pinpad.png
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
from PIL import Image

from worlds.imaging import tile_frames
from worlds.registry import make

STRIP_FRAMES = 16
STRIP_COLUMNS = 8
GIF_FPS = 10


def random_rollout(env: Any, steps: int) -> list[np.ndarray]:
    """Images (H, W, 3) of `steps` uniformly random actions from a reset, resetting (and
    keeping the reset frame) whenever an episode ends."""
    obs, _ = env.reset()
    frames = [obs["image"]]
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        frames.append(obs["image"])
        if terminated or truncated:
            obs, _ = env.reset()
            frames.append(obs["image"])
    return frames


def show(name: str, *, steps: int = 100, out: str | Path, seed: int = 0, size: int = 64,
         **options: Any) -> dict[str, Path]:
    """Run `steps` uniformly random actions in world `name` and save the frames.

    The first frame is the reset observation; when an episode ends the world is reset and the
    rollout continues. Returns {"gif": path of the GIF (`out` with suffix .gif), "png": path
    of the strip (same stem, .png)}. Options are those of `worlds.make`.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    gif_path = Path(out).with_suffix(".gif")
    png_path = gif_path.with_suffix(".png")
    gif_path.parent.mkdir(parents=True, exist_ok=True)
    env = make(name, size=size, seed=seed, **options)
    try:
        frames = random_rollout(env, steps)
    finally:
        env.close()
    iio.imwrite(gif_path, np.stack(frames), duration=1000 / GIF_FPS, loop=0)
    every = max(1, -(-len(frames) // STRIP_FRAMES))
    Image.fromarray(tile_frames(frames[::every], STRIP_COLUMNS)).save(png_path)
    return {"gif": gif_path, "png": png_path}
