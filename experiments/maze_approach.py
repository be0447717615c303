"""How near the goal did a grid-maze run's episodes get? Exploration measured from the replay.

    python experiments/maze_approach.py RUN_DIR [--every 25000] [--map]

Reads the episode files the run wrote to RUN_DIR/replay (every finished episode, in order;
the oldest may have been evicted), finds the agent's cell in every image (a maze's image is a
pure function of the agent's cell: `render_state`) and its shortest-path distance to the goal.
Per window of `--every` env steps it prints the episodes, how many reached the goal, came
within 2 and within 5 steps of it, and the median over episodes of the nearest they came.
Coverage (distinct cells) says whether the agent explores; this says whether exploring takes
it toward the goal, which a sparse reward needs: used for issue 15, where a run covered all
of maze-m's cells and still reached its goal in 1 episode of 750. `--map` also prints, for
each window, how many of its episodes visited each cell (rows = y, '#' = wall, 'G' = goal).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import worlds  # noqa: E402
from director import config as config_lib  # noqa: E402
from director.errors import UserError  # noqa: E402
from director.replay import episode_files  # noqa: E402
from director.run import use_run_layout  # noqa: E402
from goal_vis.values import maze_distances  # noqa: E402


def goal_distances(world) -> dict[tuple[int, int], int]:
    """Shortest-path steps from every reachable cell to the goal."""
    cells = [tuple(int(v) for v in c) for c in world.free_cells()]
    return dict(zip(cells, maze_distances(cells, tuple(int(v) for v in world.goal_pos))))


class CellReader:
    """Image (H, W, 3) uint8 -> the agent's cell: an exact match with a rendering, else the
    nearest rendering in pixels."""

    def __init__(self, world):
        self.cells = [tuple(int(v) for v in c) for c in world.free_cells()]
        self.frames = np.stack([world.render_state(c) for c in self.cells])
        self.exact = {f.tobytes(): c for f, c in zip(self.frames, self.cells)}

    def __call__(self, image: np.ndarray) -> tuple[int, int]:
        cell = self.exact.get(image.tobytes())
        if cell is None:
            if image.shape != self.frames.shape[1:]:
                raise UserError(f"the replay's images are {image.shape}, the world renders {self.frames.shape[1:]}: "
                                "the run's config.yaml does not describe its replay.")
            diff = self.frames.astype(np.int32) - image.astype(np.int32)[None]
            cell = self.cells[int((diff * diff).reshape(len(self.cells), -1).sum(1).argmin())]
        return cell


def episodes(run_dir: Path, read: CellReader) -> list[tuple[int, list[tuple[int, int]]]]:
    """(env steps of the run when the episode ended, its cells in order) per episode file.
    The env steps count every stored step of the files before, the evicted ones included."""
    out, steps = [], 0
    for rank in sorted((run_dir / "replay").glob("rank*")) or [run_dir / "replay"]:
        for f in episode_files(rank):
            steps += f.length
            with np.load(rank / f.name) as data:
                images = data["image"]
            out.append((steps, [read(image) for image in images]))
    return out


def summary(window: list[list[tuple[int, int]]], dist: dict[tuple[int, int], int]) -> dict:
    """Episodes (their cells) -> {episodes, reached, within2, within5, median nearest}."""
    nearest = np.array([min(dist[c] for c in cells) for cells in window])
    return {"episodes": len(window), "reached": int((nearest == 0).sum()), "within2": int((nearest <= 2).sum()),
            "within5": int((nearest <= 5).sum()), "median": float(np.median(nearest)) if len(window) else float("nan")}


def visit_map(world, window: list[list[tuple[int, int]]]) -> list[str]:
    """Per cell, how many episodes of `window` visited it (rows = y): '#' wall, '.' none,
    'G' the goal cell, else the count (capped at 99)."""
    counts: dict[tuple[int, int], int] = {}
    for cells in window:
        for c in set(cells):
            counts[c] = counts.get(c, 0) + 1
    goal = tuple(int(v) for v in world.goal_pos)
    rows = []
    for y, line in enumerate(world.rows):
        out = []
        for x, ch in enumerate(line):
            out.append(" #" if ch == "#" else " G" if (x, y) == goal and not counts.get(goal)
                       else f"{min(counts[(x, y)], 99):2d}" if counts.get((x, y)) else " .")
        rows.append(" ".join(out))
    return rows


def measure(run_dir: Path, every: int, show_map: bool) -> None:
    if not (run_dir / "config.yaml").exists():
        raise UserError(f"{run_dir} has no config.yaml: pass the run directory of a `director train` run.")
    cfg = config_lib.load(run_dir / "config.yaml")
    use_run_layout(cfg, run_dir, new_run=False)
    env = worlds.make(cfg.env.world, **cfg.env.world_options())
    world = env.unwrapped
    if not all(hasattr(world, a) for a in ("goal_pos", "free_cells", "render_state", "rows")):
        raise UserError(f"{cfg.env.world!r} is not a grid maze: use a run on maze-s/m/l/xl or maze:PATH.")
    env.reset()
    dist = goal_distances(world)
    eps = episodes(run_dir, CellReader(world))
    if not eps:
        raise UserError(f"{run_dir / 'replay'} holds no finished episode yet.")
    print(f"{run_dir}: {cfg.env.world}, {len(eps)} episodes in the replay; start {dist[tuple(world.start_pos)]} "
          f"steps from the goal")
    print("env steps      episodes  reached  within 2  within 5  median nearest")
    windows: dict[int, list] = {}
    for steps, cells in eps:
        windows.setdefault((steps - 1) // every, []).append(cells)
    for w, window in sorted(windows.items()):
        s = summary(window, dist)
        print(f"{w * every // 1000:4d}k-{(w + 1) * every // 1000:4d}k  {s['episodes']:8d}  {s['reached']:7d}  "
              f"{s['within2']:8d}  {s['within5']:8d}  {s['median']:14.1f}")
    if show_map:
        for w, window in sorted(windows.items()):
            print(f"episodes of {w * every // 1000}k-{(w + 1) * every // 1000}k that visited each cell:")
            print("\n".join(visit_map(world, window)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--every", type=int, default=25000, help="env steps per window")
    parser.add_argument("--map", action="store_true", help="print each window's visits per cell")
    args = parser.parse_args(argv)
    try:
        measure(args.run_dir, args.every, args.map)
    except UserError as error:
        print(f"maze_approach: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
