"""Value map: what the world model and the critics read on every cell, and where the manager
points from there.

On built-in worlds whose true state is known (grid mazes, Pin Pad; see `StateProbe`), every
reachable cell is encoded as in `reach.cell_states`: the posterior state after `warmup` no-op
frames of the agent standing on it. For each cell the map records

    reward   the reward head's prediction (the task reward the policies are trained on)
    expl     the exploration bonus there (goal-autoencoder reconstruction error, sampled code)
    <critic> each task/exploration critic's value: the manager's `extr` and `expl` for Director,
             the actor's `extr` for flat Dreamer
    toward   (Director) the cell of the manager's mode goal from there: the cell
             whose state has the highest max-cosine to the decoded goal

It answers the questions a long sparse maze raises: was the task reward learned where it is,
do the critics' values slope toward it, and do the manager's goals lead there. A caveat for the
critics: a probe state is 4 frames after an episode start, which is how the agent sees the
cells near the start; on a cell far from it the agent's real state carries a longer history,
so the critics read a state they were rarely trained on there.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from goal_vis import imaging
from goal_vis.episode import Cell, StateProbe
from goal_vis.reach import cell_states, here_context
from worker.goal_reward import max_cosine


def maze_distances(cells: list[Cell], goal: Cell) -> list[int]:
    """Shortest-path steps from every cell to `goal` through 4-neighbouring free cells
    (-1 where unreachable)."""
    free = set(cells)
    dist = {goal: 0}
    queue = deque([goal])
    while queue:
        x, y = queue.popleft()
        for nxt in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if nxt in free and nxt not in dist:
                dist[nxt] = dist[(x, y)] + 1
                queue.append(nxt)
    return [dist.get(c, -1) for c in cells]


@torch.no_grad()
def value_map(agent: Any, env: Any, warmup: int = 4) -> dict:
    """Per-cell readings (see the module docstring) of `agent` on `env`'s reset context.

    Returns {"cells": [(x, y)], "values": {name: [float]}, "goal": (x, y) or None,
    "goal_distance": [int] steps to the goal, "toward": [(x, y)] manager goal cells (Director),
    "toward_closer": fraction of cells (not the goal) whose manager goal is nearer the task goal
    than the cell itself}; {} when the world does not expose its true state."""
    probe = StateProbe(env)
    if not probe.available:
        return {}
    env.reset()
    state = cell_states(agent, probe, warmup)
    feat = agent.wm.feat(state)
    values: dict[str, list[float]] = {"reward": agent.wm.predict_reward(feat).tolist()}
    goal_ae = getattr(agent, "goal_ae", None)
    if goal_ae is not None:
        # The manager's bonus; a conditioned goal autoencoder scores it against the reset cell's state.
        values["expl"] = agent.exploration_bonus(state["deter"], here_context(agent, probe, state["deter"])).tolist()
    learner = agent.manager.ac if goal_ae is not None else agent.actor
    prefix = "manager" if goal_ae is not None else "actor"
    for name in learner.critics:
        values[f"{prefix}_{name}"] = learner.value(name, feat).tolist()
    world = probe.world
    goal = tuple(int(v) for v in world.goal_pos) if hasattr(world, "goal_pos") else None
    result: dict[str, Any] = {"cells": probe.cells, "values": values, "goal": goal}
    if goal is not None:
        result["goal_distance"] = maze_distances(probe.cells, goal)
    if goal_ae is not None:
        code = agent.manager.ac.policy(feat).mode()
        target = goal_ae.decode(code, state["deter"] if goal_ae.context else None)  # (cells, D)
        # Nearest cell of each goal by max-cosine (the worker's reward) to every cell's deter.
        score = max_cosine(target[:, None, :], state["deter"][None, :, :].float())
        result["toward"] = [probe.cells[int(i)] for i in score.argmax(-1)]
        if goal is not None:
            dist = dict(zip(probe.cells, result["goal_distance"]))
            pairs = [(dist[c], dist[t]) for c, t in zip(probe.cells, result["toward"]) if c != goal]
            result["toward_closer"] = float(np.mean([t < c for c, t in pairs])) if pairs else None
    return result


def _colour(x: float) -> tuple[int, int, int]:
    """Blue (0) -> yellow (1)."""
    x = float(np.clip(x, 0.0, 1.0))
    return int(40 + 215 * x), int(60 + 170 * x), int(200 - 170 * x)


def value_image(vmap: dict, background: np.ndarray, target: int = 256) -> np.ndarray:
    """One panel per reading: the world's image (H, W, 3) with each cell filled by its value
    (min blue, max yellow; range in the caption), the task goal outlined in white; for the
    manager's goals, a line from each cell to its goal's cell. -> (h, w, 3) uint8."""
    scale = imaging.panel_scale(background.shape[0], target)
    base = Image.fromarray(imaging.upscale(background, scale))
    cells: list[Cell] = vmap["cells"]
    cell = imaging.grid_cell(base.width, cells)

    panels = []
    for name, vals in vmap["values"].items():
        image = base.copy()
        draw = ImageDraw.Draw(image)
        arr = np.asarray(vals, dtype=np.float64)
        low, high = float(arr.min()), float(arr.max())
        for c, v in zip(cells, arr):
            draw.rectangle(imaging.cell_box(c, cell), fill=_colour((v - low) / (high - low) if high > low else 0.5))
        if vmap.get("goal") is not None:
            draw.rectangle(imaging.cell_box(vmap["goal"], cell), outline=(255, 255, 255), width=2)
        panels.append(imaging.caption(np.asarray(image), [name, f"{low:.3g} .. {high:.3g}"]))
    if "toward" in vmap:
        image = base.copy()
        draw = ImageDraw.Draw(image)
        for c, t in zip(cells, vmap["toward"]):
            centre = ((c[0] + 0.5) * cell, (c[1] + 0.5) * cell)
            end = ((t[0] + 0.5) * cell, (t[1] + 0.5) * cell)
            draw.line([centre, end], fill=(230, 200, 0), width=1)
            draw.ellipse([centre[0] - 2, centre[1] - 2, centre[0] + 2, centre[1] + 2], fill=(230, 200, 0))
        closer = vmap.get("toward_closer")
        note = "n/a" if closer is None else f"{closer:.2f}"
        panels.append(imaging.caption(np.asarray(image), ["manager goal (mode)", f"nearer the goal: {note}"]))
    return imaging.hstack(panels, gap=4)
