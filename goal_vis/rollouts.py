"""Imagined rollouts: the worker toward fixed goals, and the world model's open-loop prediction
(ALGORITHM.md §8).

Data are replay chunks {image (B, T, H, W, 3) uint8, action (B, T, A), is_first (B, T), ...} as
`director.replay.Replay.sample` returns them. Callers seed the RNGs (`episode.private_rng`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from goal_vis import imaging
from goal_vis.decode import decode_feat, decode_goal, to_uint8
from worker.goal_reward import max_cosine

SOURCES = ("manager", "prior", "replay")
SOURCE_TITLES = {"manager": "(a) manager's goal", "prior": "(b) random prior code",
                 "replay": "(c) replay state via goal AE"}


def _torch(agent: Any, data: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    device = next(agent.wm.parameters()).device
    return {k: torch.as_tensor(v, device=device) for k, v in data.items()}


@torch.no_grad()
def observe(agent: Any, data: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Filter replay chunks: posterior states with (B, T, ...) leaves."""
    batch = _torch(agent, data)
    embed = agent.wm.embed(batch)
    post, _ = agent.wm.rssm.observe(embed, batch["action"].float(), batch["is_first"].bool())
    return post


@torch.no_grad()
def worker_rollout(agent: Any, start: dict[str, torch.Tensor], goal: torch.Tensor, horizon: int,
                   mode: str = "sample") -> dict[str, torch.Tensor]:
    """The worker acts for `horizon` imagined steps from `start` (leaves (N, ...)) with `goal`
    (N, D) held fixed. Returns feat (N, H+1, F), deter (N, H+1, D), reached (N, H+1) = max-cosine
    of each state's deter to the goal."""
    state, feats, deters = start, [], []
    for t in range(horizon + 1):
        feat = agent.wm.feat(state)
        feats.append(feat)
        deters.append(state["deter"])
        if t == horizon:
            break
        dist = agent.worker.ac.policy(agent.worker.inputs(feat, goal))
        action = (dist.mode() if mode == "eval" else dist.sample()).float()
        if not agent.discrete:
            action = action.clamp(-1, 1)
        state = agent.wm.rssm.img_step(state, action)
    feat, deter = torch.stack(feats, 1), torch.stack(deters, 1)
    return {"feat": feat, "deter": deter, "reached": max_cosine(deter, goal[:, None].expand_as(deter))}


@torch.no_grad()
def goals_from_sources(agent: Any, start: dict[str, torch.Tensor],
                       other: torch.Tensor) -> dict[str, torch.Tensor]:
    """Goals (N, D) for each start state: (a) a code sampled by the manager, (b) a uniform prior
    code, (c) the deter `other` (N, D) of another replay state through the goal autoencoder
    (the mode of its code). A conditioned autoencoder encodes and decodes against the start."""
    n = other.shape[0]
    feat = agent.wm.feat(start)
    context = start["deter"] if agent.goal_ae.context else None
    codes = {
        "manager": agent.manager.ac.policy(feat).sample().float(),
        "prior": agent.goal_ae.prior_sample((n,), other.device),
        "replay": agent.goal_ae.encode(other, context).mode().flatten(-2).float(),
    }
    return {name: agent.goal_ae.decode(code, context) for name, code in codes.items()}


@torch.no_grad()
def rollout_sheet(agent: Any, data: dict[str, np.ndarray], starts: int = 2, horizon: int = 64,
                  every: int = 4, mode: str = "sample", target: int = 48) -> tuple[np.ndarray, dict]:
    """Rows [start | goal | frames every `every` steps (| target obs for (c))] for `starts`
    start states and each goal source. `data` holds 2 * starts chunks (B, T, ...): the first
    `starts` give the start states (their last posterior state), the others the replay targets.

    Returns (image, stats) with stats[source] = {"final": mean max-cosine at step H,
    "best": mean over rollouts of the best max-cosine along the rollout}."""
    post = observe(agent, data)
    b = data["image"].shape[0]
    starts = max(1, min(starts, b))
    start = {k: v[:starts, -1] for k, v in post.items()}
    other_index = [(i + starts) % b if b > starts else i for i in range(starts)]
    other_time = 0 if b <= starts else -1  # without spare chunks: the first state of the chunk
    other = post["deter"][other_index, other_time]
    goals = goals_from_sources(agent, start, other)
    size = data["image"].shape[2]
    scale = imaging.panel_scale(size, target)
    idx = list(range(every, horizon + 1, every)) or [horizon]
    start_obs = data["image"][:starts, -1]
    target_obs = data["image"][other_index, other_time]
    rows, stats = [], {}
    header = ["start", "goal"] + [f"t={t}" for t in idx] + ["target obs"]
    for name in SOURCES:
        roll = worker_rollout(agent, start, goals[name], horizon, mode)
        frames = decode_feat(agent, roll["feat"][:, idx])  # (N, len(idx), H, W, 3)
        goal_images = decode_goal(agent, goals[name], kind="goal")
        reached = roll["reached"].cpu().numpy()
        stats[name] = {"final": float(reached[:, -1].mean()), "best": float(reached[:, 1:].max(1).mean())}
        for i in range(starts):
            cells = [start_obs[i], goal_images[i], *frames[i]]
            cells.append(target_obs[i] if name == "replay" else np.full_like(start_obs[i], 255))
            cells = [imaging.upscale(c, scale) for c in cells]
            row = imaging.hstack(cells, gap=2)
            label = (f"{SOURCE_TITLES[name]}, start {i}: max-cos at t={horizon}: {reached[i, -1]:.2f}, "
                     f"best {reached[i, 1:].max():.2f}")
            rows.append(imaging.caption(row, label))
    cell_w = size * scale + 2
    head = np.concatenate([imaging.text_bar(cell_w, h) for h in header], 1)
    sheet = imaging.vstack([head] + rows, gap=6)
    return sheet, stats


@torch.no_grad()
def open_loop_sheet(agent: Any, data: dict[str, np.ndarray], context: int = 5,
                    target: int = 48) -> tuple[np.ndarray, dict]:
    """Blocks of rows truth / model / |error| per chunk: the model observes `context` frames,
    then predicts the rest from the true actions. Returns (image, {"mse_context", "mse_open_loop"}:
    mean squared error per pixel in [0, 1] units)."""
    batch = _torch(agent, data)
    pred = to_uint8(agent.wm.open_loop(batch, context))
    truth = data["image"]
    err = (pred.astype(np.float32) - truth.astype(np.float32)) / 255.0
    predicted = err[:, context:]
    stats = {"mse_context": float((err[:, :context] ** 2).mean()),
             "mse_open_loop": float((predicted ** 2).mean()) if predicted.size else float("nan")}
    errors = imaging.error_map(truth, pred)
    size = truth.shape[2]
    scale = imaging.panel_scale(size, target)
    blocks = []
    for i in range(truth.shape[0]):
        rows = []
        for name, frames in (("truth", truth[i]), ("model", pred[i]), ("error", errors[i])):
            cells = [imaging.upscale(f, scale) for f in frames]
            cells[:context] = [imaging.border(c, (40, 160, 40), 1) for c in cells[:context]]
            rows.append(imaging.hstack(cells, gap=1))
        blocks.append(imaging.caption(imaging.vstack(rows, gap=1),
                                      f"chunk {i}: rows truth / model / |error|; the first {context} "
                                      "frames (green frame) are observed, then the model predicts "
                                      "from the true actions"))
    return imaging.vstack(blocks, gap=8), stats
