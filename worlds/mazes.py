"""Top-down grid mazes S, M, L, XL on MiniGrid's engine: walk from a fixed start to a goal cell.

They stand in for the paper's Ant Maze S/M/L/XL (§9) without MuJoCo: the same idea of fixed
layouts whose corridor from start to goal grows with the size (a U, an S, then snakes), seen
from above and rendered by MiniGrid's tile renderer (grey walls, green goal, black floor).

    name     cells  layout                    shortest path  episode  random policy succeeds
    maze-s   8×8    U, 2-wide lanes            12 steps        200     about 1 in 4 episodes
    maze-m   16×16  S, 4-wide lanes            35 steps        400     about 1 in 100
    maze-l   16×16  snake, 2-wide lanes        70 steps        800     practically never
    maze-xl  16×16  snake, 1-wide lanes       104 steps       1000     practically never

Actions (Discrete(5)), absolute moves as in Pin Pad: 0 no-op, 1 +x (right), 2 -x (left),
3 +y (down), 4 -y (up); a move into a wall leaves the agent in place. MiniGrid's own
turn/forward actions are not used: they make the image depend on a heading, which makes
learning from pixels harder for no gain here. The agent has no heading and is drawn as a solid
red cell (MiniGrid's red; its triangle is illegible at 4 px per cell), so an observation is a
pure function of the agent's cell and `render_state(pos)` reproduces it exactly.

Reward 1.0 on every step the agent is on the goal cell (`info["success"]=True` there), 0
elsewhere, and the episode goes on: like the Ant Maze's "reward while the goal sphere is
activated", an agent that reaches the goal and stays collects up to the time limit minus the
path length, so return measures how fast it gets there. Episodes never terminate; they are
truncated after the time limit (MiniGrid's `max_steps`). A goal that ended the episode would be
the rarest state of the data, the one a goal-conditioned worker can least be asked to reach. Observation: {"image": (size, size, 3) uint8}, the whole maze. The time limits give
a learner several times the shortest path, while a uniformly random policy rarely reaches the goal
beyond maze-s (measured by `experiments/bench_worlds.py`).

Your own maze: `maze:PATH` (`load_layout`) reads a text file of rows, `#` wall, space floor,
`S` start, `G` goal (one of each), closed by walls, every row as long as the first; its
episodes last `custom_time_limit(shortest path)` steps unless the `time_limit` option says
otherwise. Every mistake raises `WorldError` naming the line and the fix.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from minigrid.core.constants import COLORS
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Goal, Wall
from minigrid.minigrid_env import MiniGridEnv

from worlds.errors import WorldError
from worlds.imaging import image_obs_space, resize_image

# (dx, dy) per action: no-op, +x, -x, +y, -y (the same order as Pin Pad).
MOVES: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))
AGENT_DIR = 0          # MiniGrid needs a heading; it never changes and is not drawn
AGENT_COLOUR = COLORS["red"].astype(np.uint8)
GOAL_REWARD = 1.0

# '#' wall, ' ' floor, 'S' start, 'G' goal.
LAYOUTS: dict[str, tuple[str, ...]] = {
    "s": (
        "########",
        "#S ##G #",
        "#  ##  #",
        "#  ##  #",
        "#  ##  #",
        "#      #",
        "#      #",
        "########",
    ),
    "m": (
        "################",
        "#S             #",
        "#              #",
        "#              #",
        "#              #",
        "##########     #",
        "#              #",
        "#              #",
        "#              #",
        "#              #",
        "#     ##########",
        "#              #",
        "#              #",
        "#             G#",
        "#              #",
        "################",
    ),
    "l": (
        "################",
        "#S #     #     #",
        "#  #     #     #",
        "#  #  #  #  #  #",
        "#  #  #  #  #  #",
        "#  #  #  #  #  #",
        "#  #  #  #  #  #",
        "#  #  #  #  #  #",
        "#  #  #  #  #  #",
        "#  #  #  #  #  #",
        "#  #  #  #  #  #",
        "#  #  #  #  #  #",
        "#  #  #  #  #  #",
        "#     #     #  #",
        "#     #     # G#",
        "################",
    ),
    "xl": (
        "################",
        "#S#   #   #    #",
        "# # # # # # #  #",
        "# # # # # # #  #",
        "# # # # # # #  #",
        "# # # # # # #  #",
        "# # # # # # #  #",
        "# # # # # # #  #",
        "# # # # # # #  #",
        "# # # # # # #  #",
        "# # # # # # #  #",
        "# # # # # # #  #",
        "# # # # # # #  #",
        "# # # # # # #  #",
        "#   #   #   # G#",
        "################",
    ),
}
TIME_LIMITS: dict[str, int] = {"s": 200, "m": 400, "l": 800, "xl": 1000}
TASKS: tuple[str, ...] = tuple(LAYOUTS)
LAYOUT_CHARS = "# SG"
MAX_CELLS = 64   # cells per side of a layout file


def custom_time_limit(path_length: int) -> int:
    """Episode steps of a layout file's maze: ten times its shortest path, at least 200."""
    return max(200, 10 * path_length)


def _bfs(rows: Sequence[str], start: tuple[int, int]) -> dict[tuple[int, int], tuple[tuple[int, int], int] | None]:
    """Breadth-first search over the floor of `rows` from `start`: cell -> (parent, action)."""
    parents: dict[tuple[int, int], tuple[tuple[int, int], int] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        for action, (dx, dy) in enumerate(MOVES[1:], start=1):
            nxt = (cell[0] + dx, cell[1] + dy)
            if nxt not in parents and rows[nxt[1]][nxt[0]] != "#":
                parents[nxt] = (cell, action)
                queue.append(nxt)
    return parents


def parse_layout(text: str, source: str = "the layout") -> tuple[str, ...]:
    """Rows of a maze layout text (`#` wall, space floor, `S` start, `G` goal), checked: one
    `S` and one `G`, equal-length rows closed by walls, only those characters, the goal
    reachable from the start. Raises WorldError naming the problem and the fix."""
    rows = [line.rstrip("\r") for line in text.split("\n")]
    while rows and not rows[-1].strip():
        rows.pop()
    fix = f"Fix {source}: rows of '#' (wall), ' ' (floor), one 'S' (start) and one 'G' (goal)."
    if len(rows) < 3:
        raise WorldError(f"Maze {source} has {len(rows)} rows; a maze needs at least 3. {fix}")
    width = len(rows[0])
    for y, row in enumerate(rows, start=1):
        if len(row) != width:
            raise WorldError(f"Maze {source}: line {y} has {len(row)} characters, line 1 has {width}; "
                             f"every row must be equally long (ragged rows; pad with '#' or ' '). {fix}")
        bad = sorted(set(row) - set(LAYOUT_CHARS))
        if bad:
            raise WorldError(f"Maze {source}: line {y} has unknown character(s) "
                             f"{', '.join(repr(c) for c in bad)}. {fix}")
    if max(width, len(rows)) > MAX_CELLS or width < 3:
        raise WorldError(f"Maze {source} is {width}x{len(rows)} cells; each side must be 3 to "
                         f"{MAX_CELLS} cells. {fix}")
    border = rows[0] + rows[-1] + "".join(r[0] + r[-1] for r in rows)
    if set(border) != {"#"}:
        raise WorldError(f"Maze {source} is not closed: its first and last rows and columns must be "
                         f"walls ('#'). {fix}")
    for char, name in (("S", "start"), ("G", "goal")):
        count = sum(row.count(char) for row in rows)
        if count != 1:
            raise WorldError(f"Maze {source} has {'no' if count == 0 else count} {char!r} ({name}) "
                             f"cell{'s' if count > 1 else ''}; it needs exactly one. {fix}")
    start, goal = (next((r.index(c), y) for y, r in enumerate(rows) if c in r) for c in "SG")
    if goal not in _bfs(rows, start):
        raise WorldError(f"Maze {source}: the goal 'G' at column {goal[0] + 1}, line {goal[1] + 1} "
                         f"cannot be reached from the start 'S' at column {start[0] + 1}, line "
                         f"{start[1] + 1}; open a path of spaces between them. {fix}")
    return tuple(rows)


def load_layout(path: str | Path) -> tuple[str, ...]:
    """`parse_layout` of the text file at `path` (WorldError when it is missing or unreadable)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise WorldError(f"Cannot read the maze layout file {str(path)!r} ({type(e).__name__}: "
                         f"{getattr(e, 'strerror', None) or e}). Give the path of a text file "
                         "(see experiments/mazes/ for an example): maze:PATH.") from None
    return parse_layout(text, source=str(path))


def _mission() -> str:
    return "reach the green goal square"


class GridMaze(MiniGridEnv):
    """A MiniGrid maze with absolute moves (`task` in s, m, l, xl, or the checked `rows` of a
    layout file, see `parse_layout`); see the module docstring.

    Observation: {"image": (size, size, 3) uint8}. Action: Discrete(5). `max_steps` defaults to
    the task's time limit (`TIME_LIMITS`; `custom_time_limit` for `rows`). State for analysis:
    `agent_pos` (x, y), `start_pos`, `goal_pos`, `free_cells()`, `render_state(pos)`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task: str = "s", *, rows: Sequence[str] | None = None, size: int = 64,
                 max_steps: int | None = None, render_mode: str | None = None):
        if rows is None and task not in LAYOUTS:
            raise ValueError(f"unknown maze {task!r}; choose one of {', '.join(TASKS)}")
        self.task = task if rows is None else "custom"
        self.rows = LAYOUTS[task] if rows is None else tuple(rows)
        height, width = len(self.rows), len(self.rows[0])
        self.start_pos = self._find("S")
        self.goal_pos = self._find("G")
        if max_steps is None:
            max_steps = (TIME_LIMITS[task] if rows is None
                         else custom_time_limit(len(self.shortest_path())))
        self.size = int(size)
        self._tile = -(-self.size // max(width, height))   # px per cell before any resize
        self._background: np.ndarray | None = None          # the static maze, drawn once
        super().__init__(
            mission_space=MissionSpace(mission_func=_mission), width=width, height=height,
            max_steps=int(max_steps), see_through_walls=True,
            render_mode=render_mode, highlight=False, tile_size=self._tile)
        self.action_space = spaces.Discrete(len(MOVES))
        self.observation_space = image_obs_space(self.size)
        self._free = self._reachable_cells()

    def _find(self, char: str) -> tuple[int, int]:
        for y, row in enumerate(self.rows):
            if char in row:
                return row.index(char), y
        raise ValueError(f"maze layout has no {char!r}")

    # ----------------------------------------------------------------------------- MiniGrid hooks
    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        for y, row in enumerate(self.rows):
            for x, char in enumerate(row):
                if char == "#":
                    self.grid.set(x, y, Wall())
        self.put_obj(Goal(), *self.goal_pos)
        self.agent_pos = self.start_pos
        self.agent_dir = AGENT_DIR
        self.mission = _mission()

    def gen_obs(self) -> dict[str, np.ndarray]:
        return {"image": self.render_state(self.agent_pos)}

    # ----------------------------------------------------------------------------- dynamics
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, _ = super().reset(seed=seed, options=options)
        return obs, {"success": False, "cell": self.cell()}

    def step(self, action: int):
        action = int(action)
        if not 0 <= action < len(MOVES):
            raise ValueError(f"maze action must be in 0..{len(MOVES) - 1}, got {action}")
        self.step_count += 1
        x, y = self.agent_pos
        dx, dy = MOVES[action]
        cell = self.grid.get(x + dx, y + dy)
        if cell is None or cell.can_overlap():
            self.agent_pos = (x + dx, y + dy)
        at_goal = self.agent_pos == self.goal_pos
        reward = GOAL_REWARD if at_goal else 0.0
        truncated = self.step_count >= self.max_steps
        return self.gen_obs(), reward, False, truncated, {"success": at_goal, "cell": self.cell()}

    def cell(self) -> int:
        """The agent's cell as one integer, y * width + x (`info["cell"]`: exploration coverage)."""
        x, y = self.agent_pos
        return int(y * self.width + x)

    # ----------------------------------------------------------------------------- state queries
    def free_cells(self) -> list[tuple[int, int]]:
        """Every cell (x, y) the agent can reach (goal included), sorted by (x, y)."""
        return list(self._free)

    def shortest_path(self, start: tuple[int, int] | None = None,
                      goal: tuple[int, int] | None = None) -> list[int]:
        """Actions of a shortest path from `start` (default: start cell) to `goal` (default: goal)."""
        start = start or self.start_pos
        goal = goal or self.goal_pos
        parents = _bfs(self.rows, start)
        if goal not in parents:
            raise ValueError(f"{goal} is not reachable from {start}")
        actions, cell = [], goal
        while parents[cell] is not None:
            cell, action = parents[cell]
            actions.append(action)
        return actions[::-1]

    def _reachable_cells(self) -> list[tuple[int, int]]:
        return sorted(_bfs(self.rows, self.start_pos))

    # ----------------------------------------------------------------------------- rendering
    def render_state(self, pos: tuple[int, int]) -> np.ndarray:
        """Image (size, size, 3) uint8 of the maze with the agent at cell `pos` = (x, y).

        The static maze is drawn once with MiniGrid's `Grid.render`; the agent's cell is then
        filled with red.
        """
        if self._background is None:
            if self.grid.get(*self.goal_pos) is None:   # grid not generated yet
                self._gen_grid(self.width, self.height)
            self._background = self.grid.render(self._tile, agent_pos=(-1, -1))
        image = self._background.copy()
        t = self._tile
        x, y = pos
        image[y * t:(y + 1) * t, x * t:(x + 1) * t] = AGENT_COLOUR
        return resize_image(image, self.size)

    def render(self) -> np.ndarray | None:
        """The current frame when `render_mode="rgb_array"`."""
        if self.render_mode == "rgb_array":
            return self.render_state(self.agent_pos)
        return None
