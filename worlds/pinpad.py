"""Visual Pin Pad: activate N coloured pads in the order 1, 2, ..., N (Director paper, §9).

The world is a 16×14 grid of cells (16 wide, 14 tall): a wall border, some interior walls and N
pads (blocks of cells, one colour each). Below the grid, two cell rows show the history of
activated pads as coloured squares, so the whole image is 16×16 cells: at 4 px per cell, 64×64.

    +----------------------+  rows 0..13: the grid. Floor light grey, walls dark grey,
    |  1 1 .     . 2 2     |  pads faded except the one under the agent (full colour),
    |  . . . ##  . . .  A  |  agent black. During the pause after a success the floor
    |  . 3 3 ##  . . .     |  turns light green.
    +----------------------+
    | [1][2][ ]            |  rows 14..15: history, slot i = 2×2 cells, oldest first.
    +----------------------+

Actions (Discrete(5)): 0 no-op, 1 +x (right), 2 -x (left), 3 +y (down), 4 -y (up); a move into
a wall leaves the agent in place. Moving onto a cell of a pad other than the pad of the previous
cell *enters* that pad; entering appends the pad to the history (the last N entries are kept)
unless it equals the last entry. When the history reads (1, 2, ..., N): reward +10 and
`info["success"]=True` on that step, then a pause: the next 10 steps ignore the action and pay
nothing, the observations of the successful step and the 9 that follow show the light-green floor,
and the 10th paused step respawns the agent on a random floor cell (never on a pad) and clears
the history. The world never terminates; `worlds.make` cuts episodes at 2000 steps (truncated).

State for analysis: `agent_pos` (x, y), `history` (tuple of pad ids, 1-based, oldest first),
`render_state(pos, history)` renders any state, `free_cells()` lists every reachable cell.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from worlds.imaging import image_obs_space, resize_image

GRID_WIDTH, GRID_HEIGHT = 16, 14   # cells of the playing field
BAR_ROWS = 2                       # cell rows of the history bar below the field
PAUSE_STEPS = 10                   # steps without control after a success
SUCCESS_REWARD = 10.0
EPISODE_STEPS = 2000               # default time limit applied by worlds.make

# (dx, dy) per action: no-op, +x, -x, +y, -y.
MOVES: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))

FLOOR = np.array([235, 235, 235], np.uint8)
PAUSE_FLOOR = np.array([175, 235, 165], np.uint8)   # light green
WALL = np.array([90, 90, 90], np.uint8)
AGENT = np.array([0, 0, 0], np.uint8)
BAR = np.array([30, 30, 30], np.uint8)
PAD_COLOURS = np.array([
    (230, 25, 75),     # 1 red
    (0, 130, 200),     # 2 blue
    (255, 200, 0),     # 3 yellow
    (145, 30, 180),    # 4 purple
    (140, 80, 30),     # 5 brown (no green: the pause floor is green)
    (245, 130, 48),    # 6 orange
    (70, 220, 230),    # 7 cyan
    (240, 50, 230),    # 8 magenta
], np.uint8)
FADE = 0.3   # a faded pad is FADE * colour + (1 - FADE) * floor

# '#' wall, ' ' floor, digits: pad ids. Pads go clockwise from the top-left corner.
LAYOUTS: dict[str, tuple[str, ...]] = {
    "three": (
        "################",
        "#111        222#",
        "#111        222#",
        "#111        222#",
        "#              #",
        "#     ####     #",
        "#     ####     #",
        "#              #",
        "#              #",
        "#              #",
        "#     3333     #",
        "#     3333     #",
        "#     3333     #",
        "################",
    ),
    "four": (
        "################",
        "#111        222#",
        "#111        222#",
        "#111        222#",
        "#      ##      #",
        "#      ##      #",
        "#   ########   #",
        "#      ##      #",
        "#      ##      #",
        "#              #",
        "#444        333#",
        "#444        333#",
        "#444        333#",
        "################",
    ),
    "five": (
        "################",
        "#111   22   333#",
        "#111   22   333#",
        "#111   22   333#",
        "#              #",
        "#   ###  ###   #",
        "#              #",
        "#              #",
        "#   ###  ###   #",
        "#              #",
        "#555        444#",
        "#555        444#",
        "#555        444#",
        "################",
    ),
    "six": (
        "################",
        "#111   22   333#",
        "#111   22   333#",
        "#111   22   333#",
        "#              #",
        "#  ##      ##  #",
        "#  ##  ##  ##  #",
        "#      ##      #",
        "#              #",
        "#              #",
        "#666   55   444#",
        "#666   55   444#",
        "#666   55   444#",
        "################",
    ),
    "seven": (
        "################",
        "#111   22   333#",
        "#111   22   333#",
        "#111   22   333#",
        "#              #",
        "#     #  #   44#",
        "#     #  #   44#",
        "#   ###  ###   #",
        "#              #",
        "#              #",
        "#777   66   555#",
        "#777   66   555#",
        "#777   66   555#",
        "################",
    ),
    "eight": (
        "################",
        "#111   22   333#",
        "#111   22   333#",
        "#111        333#",
        "#              #",
        "#88  ##  ##  44#",
        "#88          44#",
        "#88  ##  ##  44#",
        "#              #",
        "#              #",
        "#777        555#",
        "#777   66   555#",
        "#777   66   555#",
        "################",
    ),
}
TASKS: tuple[str, ...] = tuple(LAYOUTS)   # three ... eight


def parse_layout(rows: Sequence[str]) -> np.ndarray:
    """Layout strings -> (14, 16) int array indexed [y, x]: -1 wall, 0 floor, k >= 1 pad k."""
    if len(rows) != GRID_HEIGHT or any(len(row) != GRID_WIDTH for row in rows):
        raise ValueError(f"a Pin Pad layout is {GRID_HEIGHT} rows of {GRID_WIDTH} characters")
    table = {"#": -1, " ": 0, **{str(k): k for k in range(1, 10)}}
    return np.array([[table[ch] for ch in row] for row in rows], np.int64)


class PinPad(gym.Env):
    """The Visual Pin Pad world with `task` in three ... eight pads; see the module docstring.

    Observation: {"image": (size, size, 3) uint8}. Action: Discrete(5). Rewards: 10 on the step
    the full sequence is completed, else 0. Never terminates, never truncates by itself.
    Images are drawn at `ceil(size / 16)` px per cell and resized when `size` is not a multiple
    of 16 (at 64: 4 px per cell, at 32: 2 px per cell, drawn natively).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task: str = "three", *, size: int = 64, render_mode: str | None = None):
        if task not in LAYOUTS:
            raise ValueError(f"unknown Pin Pad task {task!r}; choose one of {', '.join(TASKS)}")
        self.task = task
        self.size = int(size)
        self.render_mode = render_mode
        self.layout = parse_layout(LAYOUTS[task])
        self.num_pads = int(self.layout.max())
        self.target: tuple[int, ...] = tuple(range(1, self.num_pads + 1))
        self.observation_space = image_obs_space(self.size)
        self.action_space = spaces.Discrete(len(MOVES))
        self._scale = -(-self.size // (GRID_WIDTH))   # px per cell before any resize
        self._free = self._reachable_cells()
        self._spawn = [cell for cell in self._free if self.layout[cell[1], cell[0]] == 0]
        self.agent_pos: tuple[int, int] = self._spawn[0]
        self.history: tuple[int, ...] = ()
        self._pause = 0   # remaining steps without control after a success

    # ----------------------------------------------------------------------------- dynamics
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._respawn()
        return self._obs(), {"success": False, "cell": self.cell()}

    def step(self, action: int):
        action = int(action)
        if not 0 <= action < len(MOVES):
            raise ValueError(f"Pin Pad action must be in 0..{len(MOVES) - 1}, got {action}")
        if self._pause > 0:
            self._pause -= 1
            if self._pause == 0:
                self._respawn()
            return self._obs(), 0.0, False, False, {"success": False, "cell": self.cell()}
        x, y = self.agent_pos
        dx, dy = MOVES[action]
        previous_pad = self.pad_at(self.agent_pos)
        if self.layout[y + dy, x + dx] >= 0:
            self.agent_pos = (x + dx, y + dy)
        pad = self.pad_at(self.agent_pos)
        if pad and pad != previous_pad and (not self.history or self.history[-1] != pad):
            self.history = (self.history + (pad,))[-self.num_pads:]
        reward, success = 0.0, False
        if self.history == self.target:
            reward, success = SUCCESS_REWARD, True
            self._pause = PAUSE_STEPS
        return self._obs(), reward, False, False, {"success": success, "cell": self.cell()}

    def cell(self) -> int:
        """The agent's cell as one integer, y * width + x (`info["cell"]`: exploration coverage)."""
        x, y = self.agent_pos
        return int(y * self.layout.shape[1] + x)

    def _respawn(self) -> None:
        """Put the agent on a random floor cell (not a pad) and clear the history."""
        index = int(self.np_random.integers(len(self._spawn)))
        self.agent_pos = self._spawn[index]
        self.history = ()
        self._pause = 0

    # ----------------------------------------------------------------------------- state queries
    @property
    def paused(self) -> bool:
        """True while the post-success pause runs (the floor is light green)."""
        return self._pause > 0

    def pad_at(self, pos: tuple[int, int]) -> int:
        """Pad id (1..N) at cell (x, y), or 0 for floor."""
        return max(int(self.layout[pos[1], pos[0]]), 0)

    def pad_cells(self, pad: int) -> list[tuple[int, int]]:
        """Cells (x, y) of pad `pad` (1..N)."""
        ys, xs = np.nonzero(self.layout == pad)
        return [(int(x), int(y)) for x, y in zip(xs, ys)]

    def free_cells(self) -> list[tuple[int, int]]:
        """Every cell (x, y) the agent can reach (floor and pads), sorted by (x, y)."""
        return list(self._free)

    def _reachable_cells(self) -> list[tuple[int, int]]:
        ys, xs = np.nonzero(self.layout == 0)
        start = (int(xs[0]), int(ys[0]))
        seen, queue = {start}, deque([start])
        while queue:
            x, y = queue.popleft()
            for dx, dy in MOVES[1:]:
                cell = (x + dx, y + dy)
                if cell not in seen and self.layout[cell[1], cell[0]] >= 0:
                    seen.add(cell)
                    queue.append(cell)
        return sorted(seen)

    # ----------------------------------------------------------------------------- rendering
    def render_state(self, pos: tuple[int, int], history: Sequence[int] = (),
                     paused: bool = False) -> np.ndarray:
        """Image (size, size, 3) uint8 of the world with the agent at cell `pos` = (x, y).

        `history` is a sequence of pad ids (oldest first, at most N shown); `paused` draws the
        light-green floor of the post-success pause. The observation of the env is exactly
        `render_state(env.agent_pos, env.history, env.paused)`.
        """
        k = self._scale
        colours = np.empty((self.num_pads + 2, 3), np.uint8)  # palette indexed by layout + 1
        floor = PAUSE_FLOOR if paused else FLOOR
        colours[0] = WALL
        colours[1] = floor
        faded = FADE * PAD_COLOURS[:self.num_pads] + (1 - FADE) * FLOOR.astype(np.float64)
        colours[2:] = np.round(faded).astype(np.uint8)
        active = self.pad_at(pos)
        if active:
            colours[active + 1] = PAD_COLOURS[active - 1]
        cells = np.empty((GRID_HEIGHT + BAR_ROWS, GRID_WIDTH, 3), np.uint8)
        cells[:GRID_HEIGHT] = colours[self.layout + 1]
        cells[pos[1], pos[0]] = AGENT
        cells[GRID_HEIGHT:] = BAR
        image = cells.repeat(k, axis=0).repeat(k, axis=1)
        inset = k // 4   # margin around each history square
        top = GRID_HEIGHT * k
        for slot, pad in enumerate(list(history)[-self.num_pads:]):
            left = 2 * slot * k
            rows = slice(top + inset, top + 2 * k - inset)
            cols = slice(left + inset, left + 2 * k - inset)
            image[rows, cols] = PAD_COLOURS[pad - 1]
        return resize_image(image, self.size)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self.render_state(self.agent_pos, self.history, self.paused)}

    def render(self) -> np.ndarray | None:
        """The current frame when `render_mode="rgb_array"`."""
        if self.render_mode == "rgb_array":
            return self._obs()["image"]
        return None
