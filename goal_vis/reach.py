"""Worker reach map: can the worker get to every place the goal autoencoder can express?

On built-in worlds whose true state is known (grid mazes, Pin Pad; see `StateProbe`), every
reachable cell c becomes a goal in turn: the goal autoencoder's reconstruction (mode code) of the
deter the world model reaches after observing `warmup` frames of the agent standing on c. From the
world's reset state the worker then acts for `steps` env steps toward that fixed goal (no manager),
and the map records the Manhattan distance from the cell it ends in to c.

This separates the two halves of the hierarchy: a manager can only pick goals the worker reaches.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from goal_vis import imaging
from goal_vis.episode import Cell, StateProbe, torch_threads


@torch.no_grad()
def cell_states(agent: Any, probe: StateProbe, warmup: int = 4) -> dict[str, torch.Tensor]:
    """Posterior states {deter, stoch, logits} (cells, ...) after `warmup` no-op frames of the
    agent on each reachable cell (rendered with the reset context)."""
    device = next(agent.parameters()).device
    images = torch.as_tensor(probe.candidates(probe.context()), device=device)
    n = images.shape[0]
    carry = agent.initial_carry(n)
    state = {k: carry[k] for k in ("deter", "stoch", "logits")}
    noop = torch.zeros(n, agent.action_size, device=device)
    if agent.discrete:
        noop[:, 0] = 1.0
    for i in range(warmup):
        first = torch.full((n,), i == 0, device=device)
        embed = agent.wm.embed({"image": images, "is_first": first})
        state = agent.wm.rssm.obs_step(state, noop if i else torch.zeros_like(noop), embed, first)
    return state


@torch.no_grad()
def cell_goals(agent: Any, probe: StateProbe, warmup: int = 4, deter: torch.Tensor | None = None
               ) -> torch.Tensor:
    """Goals (cells, D): the goal autoencoder's mode reconstruction of each cell's deter
    (`cell_states`, or `deter` (cells, D) when given). A conditioned autoencoder
    (`goal.context`) reconstructs against the deter of the cell the agent stands on now
    (`here_context`): far cells then decode to the nearer goals it can express from there."""
    deter = cell_states(agent, probe, warmup)["deter"] if deter is None else deter
    context = here_context(agent, probe, deter)
    return agent.goal_ae.decode(agent.goal_ae.encode(deter, context).mode(), context)


def here_context(agent: Any, probe: StateProbe, deter: torch.Tensor) -> torch.Tensor | None:
    """For a conditioned goal autoencoder: the deter (cells, D) of the cell the agent stands on
    now (probe.position(), e.g. after a reset), taken from `deter` (cells, D) of `cell_states`;
    None for the paper's unconditioned one."""
    if not agent.goal_ae.context:
        return None
    return deter[probe.cells.index(probe.position())].expand_as(deter)


@torch.no_grad()
def reach_map(agent: Any, env: Any, steps: int, mode: str = "eval", warmup: int = 4) -> dict:
    """Run the worker toward every cell's goal from `env.reset()` for `steps` steps.

    The caller seeds the RNGs (see `private_rng`). Returns {"cells": [(x, y)], "start":
    [(x, y)] reset cell of each run, "final": [(x, y)], "distance": [int] Manhattan distance
    final to goal cell, "exact", "within_one": fractions of cells, "steps", "mode"}; {} when the
    world does not expose its true state."""
    from director.collect import is_discrete

    probe = StateProbe(env)
    if not probe.available or not is_discrete(env.action_space):
        return {}
    env.reset()  # cell goals are rendered with the reset context (Pin Pad: empty pad history)
    deter = cell_states(agent, probe, warmup)["deter"]
    goals = cell_goals(agent, probe, warmup, deter)
    device = goals.device
    starts, finals = [], []
    cpu = device.type == "cpu"
    with torch_threads(1 if cpu else None):
        for i, goal in enumerate(goals):
            obs, _ = env.reset()
            starts.append(probe.position())
            if agent.goal_ae.context:  # decoded against this run's start (Pin Pad starts anywhere)
                goal = cell_goals(agent, probe, warmup, deter)[i]
            carry = agent.initial_carry(1)
            state = {k: carry[k] for k in ("deter", "stoch", "logits")}
            action = carry["action"]
            for t in range(steps):
                image = torch.as_tensor(np.asarray(obs["image"]), device=device)[None]
                first = torch.tensor([t == 0], device=device)
                embed = agent.wm.embed({"image": image, "is_first": first})
                state = agent.wm.rssm.obs_step(state, action, embed, first)
                dist = agent.worker.ac.policy(agent.worker.inputs(agent.wm.feat(state), goal[None]))
                action = (dist.mode() if mode == "eval" else dist.sample()).float()
                obs, _, terminated, truncated, _ = env.step(int(action.argmax()))
                if terminated or truncated:
                    break
            finals.append(probe.position())
    distance = [abs(f[0] - c[0]) + abs(f[1] - c[1]) for f, c in zip(finals, probe.cells)]
    return {"cells": probe.cells, "start": starts, "final": finals, "distance": distance,
            "exact": float(np.mean([d == 0 for d in distance])),
            "within_one": float(np.mean([d <= 1 for d in distance])), "steps": steps, "mode": mode}


def reach_image(reach: dict, background: np.ndarray, target: int = 320) -> np.ndarray:
    """The world's image (H, W, 3) with every goal cell labelled by the distance at which the
    worker stopped from it (green 0, yellow 1, red >= 2) -> (target, target, 3) uint8."""
    scale = imaging.panel_scale(background.shape[0], target)
    image = Image.fromarray(imaging.upscale(background, scale))
    draw = ImageDraw.Draw(image)
    cells: list[Cell] = reach["cells"]
    cell = imaging.grid_cell(image.width, cells)
    for (x, y), d in zip(cells, reach["distance"]):
        colour = (40, 200, 40) if d == 0 else (230, 200, 0) if d == 1 else (220, 40, 40)
        draw.rectangle(imaging.cell_box((x, y), cell), outline=colour, width=2)
        draw.text((x * cell + cell / 3, y * cell + cell / 4), str(d), fill=colour, font=imaging.font())
    return np.asarray(image)
