"""Where does a trained agent go on Pin Pad? A coverage diagnostic for exploration.

    python experiments/pinpad_visits.py RUN_DIR [--steps 1000] [--mode train|eval] [--seed 3]

Runs one Pin Pad episode of the run's world with the agent (sampled worker actions by default,
as in training) and prints the return, the number of distinct cells visited, the sequence of
pads entered, and the visit count of every grid cell (rows = y, columns = x; '.' = never).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("PYGLET_HEADLESS", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="run directory or checkpoint of a Pin Pad run")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--mode", choices=("train", "eval"), default="train",
                        help="train: sampled worker actions; eval: mode actions")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    import torch

    import worlds
    from director.run import load_module
    from worlds.pinpad import GRID_HEIGHT, GRID_WIDTH

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    module, info = load_module(args.run)
    if not module.cfg.env.world.startswith("pinpad"):
        print(f"{args.run} was trained on {module.cfg.env.world}, not a Pin Pad world.", file=sys.stderr)
        return 2
    env = worlds.make(module.cfg.env.world, size=module.cfg.env.size)
    obs, _ = env.reset(seed=args.seed)
    pinpad = env.unwrapped
    visits = np.zeros((GRID_HEIGHT, GRID_WIDTH), int)
    entered: list[int] = []
    carry, total = None, 0.0
    for t in range(args.steps):
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        batch.update(reward=np.zeros(1, np.float32), is_first=np.array([t == 0]),
                     is_last=np.zeros(1, bool), is_terminal=np.zeros(1, bool))
        with torch.no_grad():
            action, carry, _ = module.act(batch, carry, args.mode)
        before = pinpad.pad_at(pinpad.agent_pos)
        obs, reward, *_ = env.step(int(np.argmax(action[0])))
        total += float(reward)
        x, y = pinpad.agent_pos
        visits[y, x] += 1
        pad = pinpad.pad_at(pinpad.agent_pos)
        if pad and pad != before:
            entered.append(pad)
    env.close()
    print(f"{args.run}: {info['env_steps']} env steps trained; {args.steps} steps ({args.mode} actions): "
          f"return {total:.0f}, {int((visits > 0).sum())} distinct cells, {len(entered)} pad entries")
    print("pads entered:", "".join(map(str, entered[:120])) or "none")
    for row in visits:
        print(" ".join(f"{min(v, 99):2d}" if v else " ." for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
