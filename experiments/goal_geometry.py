"""How well the worker's goal reward tells cells apart: a grid-maze checkpoint's reward geometry.

    python experiments/goal_geometry.py RUN_DIR_OR_CKPT [--warmup 4]

Every reachable cell is encoded as the goal report does (`goal_vis.reach.cell_states`: the
posterior after `warmup` no-op frames of the agent on it), and the worker's goal reward is read
for every (cell, goal cell) pair: r(s_cell, g = deter of the goal cell). It prints, for each
reward variant, the mean reward by shortest-path distance to the goal, and the fraction of
(cell, goal) pairs whose best neighbouring cell by reward is one step nearer the goal: the
chance that a worker greedy in one step's reward moves the right way. Variants: the worker's
goal reward as configured (`worker.goal_reward`, max-cosine by default), and the same on
deters centred by their mean over all cells ("centred"), which removes what every state of
the maze shares. Used for issue 15's
diagnosis: in a maze-m trace the worker's max-cosine read 0.8-0.9 at the end of periods whose
goal was 15-27 cells away.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import worlds  # noqa: E402
from director.errors import UserError  # noqa: E402
from director.run import load_module  # noqa: E402
from goal_vis.episode import StateProbe  # noqa: E402
from goal_vis.reach import cell_states  # noqa: E402
from goal_vis.values import maze_distances  # noqa: E402


def neighbours(cells: list[tuple[int, int]]) -> list[list[int]]:
    index = {c: i for i, c in enumerate(cells)}
    return [[index[n] for n in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)) if n in index]
            for x, y in cells]


BANDS = ((1, 1), (2, 3), (4, 7), (8, 15), (16, 31), (32, 10 ** 6))


def geometry(reward: np.ndarray, dist: np.ndarray, nbrs: list[list[int]]) -> dict:
    """reward, dist: (cells, goals) = (C, C) -> {"at_goal": mean reward on the goal cell,
    "bands": {(low, high): mean reward at that distance}, "greedy": fraction of (cell, goal)
    pairs, cell != goal, whose neighbour with the highest reward is nearer the goal}."""
    bands = {}
    for low, high in BANDS:
        mask = (dist >= low) & (dist <= high)
        if mask.any():
            bands[(low, high)] = float(reward[mask].mean())
    greedy = []
    for goal in range(reward.shape[1]):
        for cell, near in enumerate(nbrs):
            if cell == goal or not near or dist[cell, goal] < 0:
                continue
            best = max(near, key=lambda n: reward[n, goal])
            greedy.append(dist[best, goal] < dist[cell, goal])
    return {"at_goal": float(np.diag(reward).mean()), "bands": bands, "greedy": float(np.mean(greedy)),
            "pairs": len(greedy)}


def line(name: str, geo: dict) -> str:
    bands = "; ".join(f"{low}-{high if high < 10 ** 6 else ''}: {value:.3f}" for (low, high), value in geo["bands"].items())
    return (f"{name:11s} at goal {geo['at_goal']:.3f}; by distance {bands}; "
            f"greedy step nearer: {geo['greedy']:.2f} of {geo['pairs']} pairs")


@torch.no_grad()
def measure(target: str, warmup: int) -> None:
    module, info = load_module(target)
    agent = module.agent
    if module.cfg.agent != "director":
        raise UserError(f"the checkpoint is of agent {module.cfg.agent!r}, which has no goal reward: use a "
                        "Director checkpoint.")
    env = worlds.make(module.cfg.env.world, **module.cfg.env.world_options())
    probe = StateProbe(env)
    if not probe.available or not hasattr(probe.world, "shortest_path"):
        raise UserError(f"{module.cfg.env.world!r} is not a grid maze with true positions: use a checkpoint "
                        "trained on maze-s/m/l/xl or maze:PATH.")
    env.reset()
    torch.manual_seed(0)  # the posterior samples its stoch: the same reading every time
    deter = cell_states(agent, probe, warmup)["deter"].float()
    cells = probe.cells
    dist = np.array([maze_distances(cells, goal) for goal in cells]).T  # (cell, goal)
    nbrs = neighbours(cells)
    print(f"{info['checkpoint']}: {len(cells)} cells, deter {deter.shape[-1]}")
    centred = deter - deter.mean(0)
    reward_fn = agent.worker.goal_reward_fn
    for name, d in ((module.cfg.worker.goal_reward, deter), ("centred", centred)):
        reward = reward_fn(d[:, None, :], d[None, :, :]).numpy()
        print(line(name, geometry(reward, dist, nbrs)))
    # The manager's mode goal from every cell, decoded as in acting (against that cell's deter
    # when the goal autoencoder is conditioned), read over all cells.
    feat = agent.wm.feat(cell_states(agent, probe, warmup))
    code = agent.manager.ac.policy(feat).mode()
    goals = agent.goal_ae.decode(code, deter if agent.goal_ae.context else None).float()
    print(line_goals(goals_reading(reward_fn(deter[None, :, :], goals[:, None, :]).numpy(), dist)))


def goals_reading(reward: np.ndarray, dist: np.ndarray) -> dict:
    """reward (goals, cells): the reward of each cell's decoded goal (chosen on cell i) at
    every cell j; dist (cell, cell). -> {"best": mean over goals of the highest reward,
    "median": mean of the median reward (a goal that scores high everywhere is no goal),
    "steps": median steps from where the goal was chosen to its best cell}."""
    best = reward.argmax(1)
    return {"best": float(reward.max(1).mean()), "median": float(np.median(reward, 1).mean()),
            "steps": float(np.median(dist[np.arange(len(best)), best]))}


def line_goals(reading: dict) -> str:
    return (f"manager's mode goals: reward at their best cell {reading['best']:.3f}, median over cells "
            f"{reading['median']:.3f}; best cell {reading['steps']:.0f} steps (median) from where chosen")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", help="run directory or checkpoint")
    parser.add_argument("--warmup", type=int, default=4, help="no-op frames observed on each cell")
    args = parser.parse_args(argv)
    try:
        measure(args.target, args.warmup)
    except UserError as error:
        print(f"goal_geometry: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
