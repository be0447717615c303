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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # maze_approach

import worlds  # noqa: E402
from director.errors import UserError  # noqa: E402
from director.replay import episode_files  # noqa: E402
from director.run import load_module  # noqa: E402
from goal_vis.decode import decode_feat  # noqa: E402
from goal_vis.episode import StateProbe  # noqa: E402
from goal_vis.reach import cell_states  # noqa: E402
from goal_vis.values import maze_distances  # noqa: E402


def neighbours(cells: list[tuple[int, int]]) -> list[list[int]]:
    index = {c: i for i, c in enumerate(cells)}
    return [[index[n] for n in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)) if n in index]
            for x, y in cells]


BANDS = ((1, 1), (2, 3), (4, 7), (8, 15), (16, 31), (32, 10 ** 6))
BANDS_FROM_START = ((0, 7), (8, 15), (16, 31), (32, 63), (64, 10 ** 6))


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


@torch.no_grad()
def replay_seen(agent, probe: StateProbe, run_dir: Path, env_steps: int, episodes: int,
                from_start: dict) -> tuple[np.ndarray, np.ndarray]:
    """The world model filtering real episodes: the newest `episodes` episode files of
    RUN_DIR/replay written by `env_steps`, observed from their first step with their actions;
    for every step, is its reconstruction's agent on the true cell? -> (seen (steps,) bool,
    steps from the start of the true cell (steps,))."""
    from maze_approach import CellReader  # the same folder
    files = []
    for rank in sorted((run_dir / "replay").glob("rank*")):
        steps = 0
        for f in episode_files(rank):
            steps += f.length
            if steps <= env_steps:
                files.append(rank / f.name)
    read = CellReader(probe.world)
    seen, dist = [], []
    for path in files[-episodes:]:
        with np.load(path) as data:
            image, action, first = data["image"], data["action"], data["is_first"]
        embed = agent.wm.embed({"image": torch.as_tensor(image)[None]})
        post, _ = agent.wm.rssm.observe(embed, torch.as_tensor(action)[None], torch.as_tensor(first)[None])
        recon = decode_feat(agent, agent.wm.feat(post))[0]
        for truth, made in zip(image, recon):
            cell = read(truth)
            seen.append(probe.locate(made, probe.context()) == cell)
            dist.append(from_start[cell])
    return np.array(seen, bool), np.array(dist)


def seen_reading(seen: np.ndarray, from_start: np.ndarray) -> dict:
    """seen (cells,) bool: the reconstruction shows the agent on its cell; from_start (cells,)
    steps from the start -> {(low, high): (seen, cells)} per distance band, and "all"."""
    out = {band: (int(seen[m].sum()), int(m.sum())) for band in BANDS_FROM_START
           for m in [(from_start >= band[0]) & (from_start <= band[1])] if m.any()}
    out["all"] = (int(seen.sum()), len(seen))
    return out


def line_seen(reading: dict, where: str = "of probe states", unit: str = "cells") -> str:
    bands = "; ".join(f"{low}-{high if high < 10 ** 6 else ''}: {a}/{b}" for (low, high), (a, b)
                      in ((k, v) for k, v in reading.items() if k != "all"))
    seen, total = reading["all"]
    return (f"reconstruction {where}: the agent on its own cell for {seen} of {total} {unit}; "
            f"by steps from the start {bands}")


def line(name: str, geo: dict) -> str:
    bands = "; ".join(f"{low}-{high if high < 10 ** 6 else ''}: {value:.3f}" for (low, high), value in geo["bands"].items())
    return (f"{name:11s} at goal {geo['at_goal']:.3f}; by distance {bands}; "
            f"greedy step nearer: {geo['greedy']:.2f} of {geo['pairs']} pairs")


@torch.no_grad()
def measure(target: str, warmup: int, replay: int = 0) -> None:
    module, info = load_module(target)
    agent = module.agent
    env = worlds.make(module.cfg.env.world, **module.cfg.env.world_options())
    probe = StateProbe(env)
    if not probe.available or not hasattr(probe.world, "shortest_path"):
        raise UserError(f"{module.cfg.env.world!r} is not a grid maze with true positions: use a checkpoint "
                        "trained on maze-s/m/l/xl or maze:PATH.")
    env.reset()
    torch.manual_seed(0)  # the posterior samples its stoch: the same reading every time
    state = cell_states(agent, probe, warmup)
    deter = state["deter"].float()
    cells = probe.cells
    dist = np.array([maze_distances(cells, goal) for goal in cells]).T  # (cell, goal)
    nbrs = neighbours(cells)
    print(f"{info['checkpoint']}: {len(cells)} cells, deter {deter.shape[-1]}")
    # Does the model see the agent? Its reconstruction of each cell's state, read back to a cell.
    images = decode_feat(agent, agent.wm.feat(state))
    seen = np.array([probe.locate(image, probe.context()) == cell for image, cell in zip(images, cells)])
    from_start = dist[:, cells.index(tuple(int(v) for v in probe.world.start_pos))]
    print(line_seen(seen_reading(seen, from_start)))
    run_dir = Path(info["checkpoint"]).resolve().parent.parent
    if replay and (run_dir / "replay").is_dir():
        by_cell = dict(zip(cells, from_start))
        steps_seen, steps_from = replay_seen(agent, probe, run_dir, int(info["env_steps"]), replay, by_cell)
        if len(steps_seen):
            print(line_seen(seen_reading(steps_seen, steps_from), f"along the newest {replay} replay episodes",
                            "steps"))
    if module.cfg.agent != "director":
        print(f"(agent {module.cfg.agent!r}: no worker, so no goal reward to read)")
        return
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
    parser.add_argument("--replay", type=int, default=4,
                        help="also reconstruct the newest N replay episodes up to the checkpoint (0: no)")
    args = parser.parse_args(argv)
    try:
        measure(args.target, args.warmup, args.replay)
    except UserError as error:
        print(f"goal_geometry: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
