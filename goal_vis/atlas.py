"""The goal atlas: what each variable of the goal code means.

Starting from a base code, each of the V categorical variables is swept over its C classes with
the others held fixed (V rows x C columns of decoded goals); below, a grid of random prior codes
shows the variety of goals the manager can pick from.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from goal_vis import imaging
from goal_vis.decode import decode_goal

HIGHLIGHT = (220, 40, 40)


def code_sweep(base: torch.Tensor, vars_: int, classes: int) -> torch.Tensor:
    """Base code (V*C,) one-hot -> codes (V, C, V*C): row v sets variable v to each class."""
    base = base.reshape(vars_, classes).float()
    codes = base.expand(vars_, classes, vars_, classes).clone()
    eye = torch.eye(classes, device=base.device)
    for v in range(vars_):
        codes[v, :, v] = eye
    return codes.flatten(-2)


def base_index(base: torch.Tensor, vars_: int, classes: int) -> list[int]:
    """The class of each variable in a one-hot code (V*C,)."""
    return base.reshape(vars_, classes).argmax(-1).tolist()


@torch.no_grad()
def atlas_image(agent: Any, base: torch.Tensor, random_codes: int = 32, columns: int = 8,
                target: int = 48, base_note: str = "", context: torch.Tensor | np.ndarray | None = None
                ) -> np.ndarray:
    """The atlas of `agent`'s goal autoencoder around `base` (V*C,), plus `random_codes` prior
    samples (drawn from torch's global RNG; callers seed it). `context` (D,): the deter every
    code is decoded against, for a conditioned autoencoder (`goal.context`)."""
    ae = agent.goal_ae
    v, c = ae.vars, ae.classes
    base = base.reshape(-1).to(next(ae.parameters()).device).float()
    images = decode_goal(agent, code_sweep(base, v, c), kind="code", context=context)  # (V, C, H, W, 3)
    size = images.shape[2]
    scale = imaging.panel_scale(size, target)
    chosen = base_index(base, v, c)
    rows = [imaging.hstack([imaging.text_bar(68, "")]
                           + [imaging.text_bar(size * scale, f"class {j}") for j in range(c)], gap=2)]
    for i in range(v):
        cells = []
        for j in range(c):
            cell = imaging.upscale(images[i, j], scale)
            if j == chosen[i]:
                cell = imaging.border(cell, HIGHLIGHT, max(1, scale // 2))
            cells.append(cell)
        label = imaging.text_bar(68, f"var {i}", height=size * scale)
        rows.append(imaging.hstack([label] + cells, gap=2))
    sweep = imaging.caption(imaging.vstack(rows, gap=2),
                            [f"Sweep: row v sets code variable v to each of its {c} classes, the other "
                             f"{v - 1} variables fixed at the base code (red frame: the base's class).",
                             base_note])
    parts = [sweep]
    if random_codes > 0:
        codes = ae.prior_sample((random_codes,), base.device)
        randoms = decode_goal(agent, codes, kind="code", context=context)
        cells = [imaging.upscale(x, scale) for x in randoms]
        parts.append(imaging.caption(imaging.grid(cells, columns, gap=2),
                                     f"{random_codes} random codes from the uniform prior"))
    return imaging.vstack(parts, gap=12)
