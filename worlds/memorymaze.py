"""Memory Maze (Pasukonis et al. 2022) through its dm_env tasks, without the legacy `gym`.

    memory_maze.tasks.memory_maze_9x9(seed=s)   # a dm_env: image (64, 64, 3), target_color (3,)

Four tasks, `9x9`, `11x11`, `13x13`, `15x15`: a random 3D maze (new each episode) with 3, 4, 5
or 6 coloured targets; the agent must touch the target whose colour `target_color` names, gets
+1, and a new target colour is drawn. Control at 4 Hz, episodes of 1000, 2000, 3000 and 4000
steps (the task's own time limit, `truncated=True`). Observation: "image" (size, size, 3) uint8
from the first-person camera (rendered at size x size), "target_color" (3,) float32. Action:
Discrete(6) (noop, forward, left, right, forward-left, forward-right). `info["success"]` is True
on the steps that reach a target, `info["targets"]` counts the targets reached so far in the
episode.

memory_maze 1.0.3's package `__init__` only registers ids for the legacy `gym` package and
re-raises its ImportError when `gym` is absent, although `memory_maze.tasks` needs only
dm_control; `tasks()` therefore loads that module without running the package `__init__`.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

from worlds.dmenv import DmEnvWorld, import_dm_control, missing_extra

TASKS = ("9x9", "11x11", "13x13", "15x15")
EPISODE_STEPS = {"9x9": 1000, "11x11": 2000, "13x13": 3000, "15x15": 4000}
TARGETS = {"9x9": 3, "11x11": 4, "13x13": 5, "15x15": 6}


def tasks(world: str) -> Any:
    """The `memory_maze.tasks` module, or a WorldError naming the `memorymaze` extra."""
    import_dm_control(world, "memorymaze")
    if "memory_maze" not in sys.modules:
        spec = importlib.util.find_spec("memory_maze")
        if spec is None:
            raise missing_extra(world, "memorymaze", ImportError("No module named 'memory_maze'"))
        sys.modules["memory_maze"] = importlib.util.module_from_spec(spec)   # __init__ not run
    try:
        return importlib.import_module("memory_maze.tasks")
    except ImportError as error:
        raise missing_extra(world, "memorymaze", error) from error


def build_task(task: str, size: int, seed: int | None) -> Any:
    """Memory Maze `task` ('9x9' .. '15x15') as a dm_env with a size x size camera."""
    maker = getattr(tasks(f"memorymaze-{task}"), f"memory_maze_{task}")
    return maker(seed=seed, camera_resolution=size)


class MemoryMaze(DmEnvWorld):
    """Memory Maze `task`; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, task: str, *, size: int = 64, render_mode: str | None = None):
        if task not in TASKS:
            raise ValueError(f"unknown Memory Maze {task!r}; choose from {TASKS}")
        self.task = task
        self.size = int(size)
        self.targets = 0
        super().__init__(lambda seed: build_task(task, self.size, seed), image_key="image",
                         render_mode=render_mode)

    def on_reset(self) -> None:
        self.targets = 0

    def _info(self, reward: float) -> dict[str, Any]:
        self.targets += int(reward > 0.0)
        return {"success": reward > 0.0, "targets": self.targets}
