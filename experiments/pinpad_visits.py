"""Where does a trained agent go on Pin Pad? A coverage diagnostic for exploration.

    python experiments/pinpad_visits.py RUN_DIR [--steps 1000] [--mode train|eval] [--seed 3]

Runs one Pin Pad episode of the run's world with the agent (sampled worker actions by default,
as in training) and prints the return, the number of distinct cells visited, the sequence of
pads entered, and the visit count of every grid cell (rows = y, columns = x; '.' = never).
For a Director run it then prints where the manager's goals point: each chosen goal is decoded
into an image and counted at the cell holding most of its agent-black pixels (a goal whose image
shows no agent is counted apart).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("PYGLET_HEADLESS", "1")

BLACK = 40  # uint8 level under which a decoded pixel counts as the (black) agent


def agent_cell(image: np.ndarray, grid_height: int, grid_width: int, bar_rows: int) -> tuple[int, int] | None:
    """Decoded Pin Pad image (H, W, 3) uint8 -> (x, y) of the grid cell with most agent-black
    pixels, or None when no pixel is black. The image is grid_height + bar_rows cells tall; the
    (dark) history bar below the grid is not searched."""
    cell = image.shape[0] // (grid_height + bar_rows)
    black = (image.max(-1) < BLACK)[: grid_height * cell, : grid_width * cell]
    counts = black.reshape(grid_height, cell, grid_width, cell).sum((1, 3))
    if counts.max() == 0:
        return None
    y, x = np.unravel_index(int(counts.argmax()), counts.shape)
    return int(x), int(y)


def print_grid(counts: np.ndarray) -> None:
    for row in counts:
        print(" ".join(f"{min(v, 99):2d}" if v else " ." for v in row))


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
    from goal_vis.decode import decode_goal
    from worlds.pinpad import BAR_ROWS, GRID_HEIGHT, GRID_WIDTH

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    module, info = load_module(args.run)
    if not module.cfg.env.world.startswith("pinpad"):
        print(f"{args.run} was trained on {module.cfg.env.world}, not a Pin Pad world.", file=sys.stderr)
        return 2
    env = worlds.make(module.cfg.env.world, **module.cfg.env.world_options())
    obs, _ = env.reset(seed=args.seed)
    pinpad = env.unwrapped
    visits = np.zeros((GRID_HEIGHT, GRID_WIDTH), int)
    entered: list[int] = []
    goal_cells = np.zeros((GRID_HEIGHT, GRID_WIDTH), int)
    goals = unseen = 0
    carry, total = None, 0.0
    for t in range(args.steps):
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        batch.update(reward=np.zeros(1, np.float32), is_first=np.array([t == 0]),
                     is_last=np.zeros(1, bool), is_terminal=np.zeros(1, bool))
        with torch.no_grad():
            action, carry, act_info = module.act(batch, carry, args.mode)
        if "switch" in act_info and bool(act_info["switch"][0]):
            goals += 1
            image = decode_goal(module.agent, act_info["goal"][:1], kind="goal")[0]
            cell = agent_cell(image, GRID_HEIGHT, GRID_WIDTH, BAR_ROWS)
            if cell is None:
                unseen += 1
            else:
                goal_cells[cell[1], cell[0]] += 1
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
    print_grid(visits)
    if goals:
        print(f"manager goals: {goals} chosen, {goals - unseen} show the agent; their cells:")
        print_grid(goal_cells)
    return 0


if __name__ == "__main__":
    sys.exit(main())
