"""Decoding goals, codes and latent states into images (ALGORITHM.md §8).

A goal is a world-model deter vector g (..., D); its image is
image_decoder(deter = g, stoch = rssm.get_stoch(g)), the prior's mode given g. A code of the goal
autoencoder, (..., V*C) or (..., V, C) one-hot, is first decoded into its goal. Everything here
is deterministic, runs without gradients on the agent's device, and leaves the agent's training
mode and the global RNGs untouched.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

CHUNK = 256  # states decoded per decoder call, to bound memory on large batches


def _device(agent: Any) -> torch.device:
    return next(agent.wm.parameters()).device


def _as_tensor(x: Any, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, device=device).float()


def to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Images in [0, 1], (..., H, W, C) with C in {1, 3} -> uint8 (..., H, W, 3)."""
    x = images.detach().float().cpu().numpy() if torch.is_tensor(images) else np.asarray(images, np.float32)
    x = np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, -1)
    return x


@torch.no_grad()
def decode_feat(agent: Any, feat: torch.Tensor) -> np.ndarray:
    """World-model features (..., F) -> uint8 images (..., H, W, 3), decoded in chunks."""
    feat = _as_tensor(feat, _device(agent))
    lead = feat.shape[:-1]
    flat = feat.reshape(-1, feat.shape[-1])
    parts = [agent.wm.image(flat[i:i + CHUNK]) for i in range(0, len(flat), CHUNK)]
    images = torch.cat(parts) if parts else agent.wm.image(flat)
    return to_uint8(images.reshape(*lead, *images.shape[1:]))


@torch.no_grad()
def goal_feat(agent: Any, goal: torch.Tensor) -> torch.Tensor:
    """Goal deter (..., D) -> feature concat(g, flatten(get_stoch(g))) (..., F)."""
    stoch = agent.wm.rssm.get_stoch(goal)
    return torch.cat([goal, stoch.flatten(-2).to(goal.dtype)], -1)


def is_code(agent: Any, x: torch.Tensor | np.ndarray) -> bool:
    """Whether `x` is a code ((..., V*C) or (..., V, C)) rather than a goal (..., D).

    Raises ValueError when the shape fits neither, or both (D == V*C: pass `kind`)."""
    shape = tuple(x.shape)
    deter = agent.wm.rssm.deter
    goal_ae = getattr(agent, "goal_ae", None)
    flat_code = goal_ae is not None and len(shape) >= 1 and shape[-1] == goal_ae.code_size
    split_code = goal_ae is not None and len(shape) >= 2 and shape[-2:] == (goal_ae.vars, goal_ae.classes)
    as_goal = len(shape) >= 1 and shape[-1] == deter
    if as_goal and (flat_code or split_code):
        raise ValueError(f"Ambiguous shape {shape}: the deter size {deter} equals the code size; "
                         "pass kind='goal' or kind='code'.")
    if as_goal:
        return False
    if flat_code or split_code:
        return True
    codes = (f" or a code (..., {goal_ae.code_size}) / (..., {goal_ae.vars}, {goal_ae.classes})"
             if goal_ae is not None else "")
    raise ValueError(f"Expected a goal (..., {deter}){codes}, got shape {shape}.")


@torch.no_grad()
def decode_goal(agent: Any, goal_or_code: torch.Tensor | np.ndarray, kind: str | None = None,
                context: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
    """Goal (..., D) or code (..., V*C) / (..., V, C) -> uint8 images (..., H, W, 3).

    `agent`: a `director.agent.Agent` (or anything with `.wm` and, for codes, `.goal_ae`).
    `kind`: "goal", "code" or None (inferred from the shape). `context`: the deter (D,) or
    (..., D) a conditioned goal autoencoder (`goal.context`) decodes codes against. Deterministic."""
    x = _as_tensor(goal_or_code, _device(agent))
    if kind is None:
        kind = "code" if is_code(agent, x) else "goal"
    if kind == "code":
        if getattr(agent, "goal_ae", None) is None:
            raise ValueError("This agent has no goal autoencoder (agent is not 'director'): codes "
                             "cannot be decoded.")
        goal_ae = agent.goal_ae
        if x.shape[-1] != goal_ae.code_size:
            x = x.flatten(-2)
        lead = x.shape[:-1]
        if context is not None:
            context = _as_tensor(context, x.device).float().expand(*lead, -1).reshape(-1, agent.wm.rssm.deter)
        goal = goal_ae.decode(x.reshape(-1, goal_ae.code_size), context).reshape(*lead, -1)
    elif kind == "goal":
        goal = x
    else:
        raise ValueError(f"kind must be 'goal', 'code' or None, got {kind!r}")
    return decode_feat(agent, goal_feat(agent, goal))
