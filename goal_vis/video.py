"""Episode videos: observation | decoded current goal, side by side, with step and goal-phase text.

Frames are built as palette images: one 256-colour palette for the whole video (4 grey levels for
the text, the rest fitted to the observations and goals at their native resolution), so colours
do not flicker between frames and quantisation costs little; the frames are then upscaled
(nearest) for visibility. GIF always (Pillow); MP4 as well when an ffmpeg binary is available
(imageio-ffmpeg's bundled one, or `ffmpeg` on PATH), skipped silently otherwise.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from goal_vis import imaging

FPS = 10
TEXT_LEVELS = 4  # palette entries 0..3: white, light grey, dark grey, black
GAP = 4


def build_palette(images: np.ndarray, colours: int = 256 - TEXT_LEVELS) -> np.ndarray:
    """A (256, 3) uint8 palette: the text greys, then up to `colours` colours fitted (median cut)
    to a sample of `images` (N, H, W, 3)."""
    greys = np.linspace(255, 0, TEXT_LEVELS).round().astype(np.uint8)
    palette = np.zeros((256, 3), np.uint8)
    palette[:TEXT_LEVELS] = greys[:, None]
    sample = images[:: max(1, len(images) // 64)]
    tall = Image.fromarray(np.ascontiguousarray(sample.reshape(-1, sample.shape[-2], 3)))
    fitted = tall.quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    found = np.array(fitted.getpalette()[: 3 * colours], np.uint8).reshape(-1, 3)
    palette[TEXT_LEVELS:TEXT_LEVELS + len(found)] = found
    palette[TEXT_LEVELS + len(found):] = found[-1] if len(found) else 0
    return palette


def to_indices(images: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (..., H, W) uint8 indices of the nearest palette colours (the
    text greys excluded, so text stays distinct from the picture)."""
    flat = images.reshape(-1, 3).astype(np.int64)
    keys = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    unique, inverse = np.unique(keys, return_inverse=True)
    colours = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], -1).astype(np.float32)
    choices = palette[TEXT_LEVELS:].astype(np.float32)
    nearest = np.empty(len(unique), np.int64)
    for i in range(0, len(unique), 4096):
        d = ((colours[i:i + 4096, None] - choices[None]) ** 2).sum(-1)
        nearest[i:i + 4096] = d.argmin(1)
    return (nearest[inverse.reshape(-1)] + TEXT_LEVELS).astype(np.uint8).reshape(images.shape[:-1])


def text_indices(width: int, text: str) -> np.ndarray:
    """A text bar (h, width) of palette indices 0..3 (white background, dark text)."""
    height = imaging.line_height() + 2
    canvas = Image.new("L", (width, height), 255)
    ImageDraw.Draw(canvas).text((3, 2), text, fill=0, font=imaging.font())
    level = np.asarray(canvas, np.float32) / 255.0
    return np.round((1.0 - level) * (TEXT_LEVELS - 1)).astype(np.uint8)


def video_frames(observations: np.ndarray, goals: np.ndarray, labels: Sequence[str],
                 scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) observations and goals -> (frames (T, H', W') palette indices, palette (256, 3)):
    a text header over [observation | goal], both upscaled by `scale` (nearest)."""
    if len(observations) == 0:
        raise ValueError("video_frames needs at least one frame")
    pictures = np.concatenate([observations, goals], 2)  # (T, H, 2W, 3)
    palette = build_palette(pictures)
    obs_idx, goal_idx = np.split(to_indices(pictures, palette), 2, axis=2)
    t, h, w = obs_idx.shape
    body_w = 2 * w * scale + GAP
    body = np.zeros((t, h * scale, body_w), np.uint8)  # index 0: white gap
    body[:, :, :w * scale] = imaging.upscale(obs_idx[..., None], scale)[..., 0]
    body[:, :, w * scale + GAP:] = imaging.upscale(goal_idx[..., None], scale)[..., 0]
    frames = np.stack([np.concatenate([text_indices(body_w, label), frame], 0)
                       for label, frame in zip(labels, body)])
    return frames, palette


def write_gif(frames: np.ndarray, palette: np.ndarray, path: str | Path, fps: int = FPS) -> Path:
    """Palette-index frames (T, H, W) -> looping GIF."""
    path = Path(path)
    flat_palette = palette.reshape(-1).tolist()
    images = []
    for frame in frames:
        image = Image.fromarray(np.ascontiguousarray(frame))
        image.putpalette(flat_palette)
        images.append(image)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                   duration=int(round(1000 / fps)), loop=0)
    return path


def ffmpeg_binary() -> str | None:
    """imageio-ffmpeg's binary, else `ffmpeg` on PATH, else None."""
    try:
        import imageio_ffmpeg  # type: ignore[import-not-found]
        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - not installed or no binary for this platform
        return shutil.which("ffmpeg")


def write_mp4(frames: np.ndarray, path: str | Path, fps: int = FPS) -> Path | None:
    """RGB frames (T, H, W, 3) -> H.264 (or MPEG-4 part 2) MP4 via an ffmpeg binary; None when
    none is available or encoding fails."""
    binary = ffmpeg_binary()
    if binary is None:
        return None
    path = Path(path)
    t, h, w, _ = frames.shape
    even = np.full((t, h + h % 2, w + w % 2, 3), 255, np.uint8)
    even[:, :h, :w] = frames
    data = np.ascontiguousarray(even).tobytes()
    for codec in (["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"], ["-c:v", "mpeg4", "-q:v", "3"]):
        cmd = [binary, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{even.shape[2]}x{even.shape[1]}", "-r", str(fps), "-i", "-", *codec, str(path)]
        try:
            result = subprocess.run(cmd, input=data, capture_output=True, timeout=300)
        except (OSError, subprocess.SubprocessError):
            break
        if result.returncode == 0 and path.exists() and path.stat().st_size > 0:
            return path
    path.unlink(missing_ok=True)
    return None
