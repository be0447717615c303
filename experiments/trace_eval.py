"""Trace evaluation episodes of a grid-maze checkpoint: where the mode action goes, and why it stops.

    python experiments/trace_eval.py RUN_DIR_OR_CKPT [--episodes 3] [--mode eval] [--seed 0]

For every manager decision of each episode it prints the true cell where the period starts, the
cell of the decoded goal image (nearest rendering), the cell where the period ends, and their
shortest-path distances in the maze; then how the worker spent its steps: moves, no-ops and
bumps into walls (a move action that left the cell unchanged), with the worker's action
probabilities at the states where it stood still. Used for issue 15's diagnosis of why sampled
actions reach the goal of maze-m while the mode action does not.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import worlds  # noqa: E402
from director.errors import UserError  # noqa: E402
from director.run import load_module  # noqa: E402
from goal_vis.episode import StateProbe, private_rng, run_episode  # noqa: E402

NAMES = ("noop", "+x", "-x", "+y", "-y")


class ProbsRecorder:
    """Wraps a DirectorModule's `act`, keeping the worker's action probabilities (A,) per step."""

    def __init__(self, module):
        self.module, self.agent, self.probs = module, module.agent, []

    def act(self, obs, carry, mode):
        action, carry, info = self.module.act(obs, carry, mode)
        with torch.no_grad():
            feat = self.agent.wm.feat({k: carry[k] for k in ("deter", "stoch", "logits")})
            dist = self.agent.worker.ac.policy(self.agent.worker.inputs(feat, carry["goal"]))
        self.probs.append(dist.dist.probs[0].flatten(-2).float().cpu().numpy())
        return action, carry, info


def distance(world, a, b) -> int | None:
    if a is None or b is None:
        return None
    try:
        return len(world.shortest_path(tuple(a), tuple(b)))
    except ValueError:
        return None


def trace(target: str, episodes: int, mode: str, seed: int, max_steps: int | None) -> None:
    module, info = load_module(target)
    cfg = module.cfg
    env = worlds.make(cfg.env.world, **cfg.env.world_options())
    probe = StateProbe(env)
    world = probe.world
    if not probe.available or not hasattr(world, "shortest_path"):
        raise UserError(f"{cfg.env.world!r} is not a grid maze with true positions, so there is nothing to "
                        "trace: use a checkpoint trained on maze-s/m/l/xl or maze:PATH.")
    goal_cell = tuple(int(v) for v in world.goal_pos)
    print(f"{info['checkpoint']}: world {cfg.env.world}, K={module.agent.goal_every}, mode={mode}")
    for ep in range(episodes):
        rec_module = ProbsRecorder(module)
        env.reset(seed=seed + ep)
        with private_rng(seed + ep, module.device):
            record = run_episode(rec_module, env, max_steps or 10 ** 9, mode=mode, episode=ep, probe=probe)
        pos = record.positions
        acts = record.actions.argmax(-1)  # action that led to each observation
        probs = np.stack(rec_module.probs)  # probs at each observation, for the next action
        print(f"\nepisode {ep}: length {record.length - 1}, return {record.ret:.0f}, success {record.success}, "
              f"{len(set(pos))} cells, min distance to goal "
              f"{min(d for d in (distance(world, p, goal_cell) for p in pos) if d is not None)}")
        for d in record.decisions:
            print(f"  t={d.step:4d} start {d.start_pos} (to goal {distance(world, d.start_pos, goal_cell)}) "
                  f"goal {d.goal_pos} (dist {distance(world, d.start_pos, d.goal_pos)}) "
                  f"end {d.end_pos} (end-goal dist {distance(world, d.end_pos, d.goal_pos)}, "
                  f"reached {d.reached if d.reached is None else round(d.reached, 2)})")
        kinds = Counter()
        still = []
        for t in range(1, record.length):
            if acts[t] == 0:
                kinds["noop"] += 1
            elif pos[t] == pos[t - 1]:
                kinds["bump"] += 1
                still.append(t - 1)
            else:
                kinds["move"] += 1
        print(f"  steps: {dict(kinds)}; actions {dict(Counter(NAMES[a] for a in acts[1:]))}")
        for t in still[:5]:
            print(f"  bump at t={t} cell {pos[t]}: probs " + " ".join(
                f"{n}={p:.2f}" for n, p in zip(NAMES, probs[t])))
        noop_t = [t for t in range(record.length - 1) if acts[t + 1] == 0][:3]
        for t in noop_t:
            print(f"  noop at t={t} cell {pos[t]}: probs " + " ".join(
                f"{n}={p:.2f}" for n, p in zip(NAMES, probs[t])))
        ent = -(probs * np.log(np.clip(probs, 1e-9, 1))).sum(-1) / np.log(probs.shape[-1])
        print(f"  worker entropy (normalised) mean {ent.mean():.2f}, max prob mean {probs.max(-1).mean():.2f}")
    env.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--mode", default="eval", choices=("eval", "train"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        trace(args.target, args.episodes, args.mode, args.seed, args.max_steps)
    except UserError as e:
        print(f"trace_eval: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
