"""DeepMind Lab as a gymnasium env, over deepmind_lab's documented Python API.

    lab = deepmind_lab.Lab(level, ['RGB_INTERLEAVED'], config={'width': '64', 'height': '64'})
    lab.reset(seed=s); lab.observations()['RGB_INTERLEAVED']   # (H, W, 3) uint8
    reward = lab.step(action, num_steps=4)                       # action: int32 vector, one per
    lab.is_running()                                             #   entry of lab.action_spec()

Actions: the 9-action set of IMPALA (Espeholt et al. 2018), the standard DMLab set and the size
the Director paper reports (9 discrete actions): forward, backward, strafe left, strafe right,
look left, look right, forward + look left, forward + look right, fire. Each is held for `action_repeat` frames (default 4, DMLab's
`num_steps`). Observation: {"image": (size, size, 3) uint8} rendered by DMLab at size×size.

Episodes of DMLab levels end on the level's own clock, so the end (`is_running()` False) is
reported as `truncated=True, terminated=False`; the last frame is repeated as its observation
because DMLab has none after the end. `info["success"]` is True on steps that pay at least
`GOAL_REWARD` (10, what the goal-finding levels pay at the goal; apples pay less).

DeepMind Lab has no wheel on PyPI: `import_deepmind_lab()` raises a `WorldError` that says how
to build and install it.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from worlds.errors import WorldError
from worlds.imaging import image_obs_space

DEFAULT_REPEAT = 4
GOAL_REWARD = 10.0
LEVEL_PREFIX = "contributed/dmlab30/"   # bare level names are looked up in DMLab-30

# IMPALA's action set, as {action-spec name: value}; unnamed entries are 0.
IMPALA_ACTIONS: tuple[tuple[str, dict[str, int]], ...] = (
    ("forward", {"MOVE_BACK_FORWARD": 1}),
    ("backward", {"MOVE_BACK_FORWARD": -1}),
    ("strafe_left", {"STRAFE_LEFT_RIGHT": -1}),
    ("strafe_right", {"STRAFE_LEFT_RIGHT": 1}),
    ("look_left", {"LOOK_LEFT_RIGHT_PIXELS_PER_FRAME": -20}),
    ("look_right", {"LOOK_LEFT_RIGHT_PIXELS_PER_FRAME": 20}),
    ("forward_look_left", {"MOVE_BACK_FORWARD": 1, "LOOK_LEFT_RIGHT_PIXELS_PER_FRAME": -20}),
    ("forward_look_right", {"MOVE_BACK_FORWARD": 1, "LOOK_LEFT_RIGHT_PIXELS_PER_FRAME": 20}),
    ("fire", {"FIRE": 1}),
)

BUILD_HELP = (
    "DeepMind Lab has no wheel on PyPI and must be built from source with Bazel: "
    "`git clone https://github.com/deepmind/lab && cd lab && "
    "bazel build -c opt //python/pip_package:build_pip_package && "
    "./bazel-bin/python/pip_package/build_pip_package /tmp/dmlab_pkg`, then install the produced "
    "wheel into this environment with `python -m pip install /tmp/dmlab_pkg/deepmind_lab-*.whl` "
    "(the lab repository's docs/users/build.md lists the system packages Bazel needs). Without it, "
    "use the MiniWorld 3D mazes instead, e.g. miniworld-maze."
)


def import_deepmind_lab() -> Any:
    """Import deepmind_lab, or raise WorldError explaining how to build and install it."""
    try:
        import deepmind_lab
    except ImportError as error:
        raise WorldError(
            f"DeepMind Lab worlds need the deepmind_lab package, which cannot be imported here "
            f"({error}). {BUILD_HELP}") from error
    return deepmind_lab


def level_path(level: str) -> str:
    """'explore_goal_locations_small' -> 'contributed/dmlab30/explore_goal_locations_small'."""
    return level if "/" in level else LEVEL_PREFIX + level


class DMLab(gym.Env):
    """One DeepMind Lab level; see the module docstring.

    Observation: {"image": (size, size, 3) uint8}. Action: Discrete(9) (IMPALA's set).
    `config` adds entries to DMLab's config (values are passed as strings, as DMLab wants).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, level: str, *, size: int = 64, action_repeat: int = DEFAULT_REPEAT,
                 config: dict[str, Any] | None = None, render_mode: str | None = None):
        deepmind_lab = import_deepmind_lab()
        self.level = level_path(level)
        self.size = int(size)
        self.action_repeat = int(action_repeat)
        self.render_mode = render_mode
        settings = {"width": str(self.size), "height": str(self.size), "logLevel": "WARN"}
        settings.update({key: str(value) for key, value in (config or {}).items()})
        self._lab = deepmind_lab.Lab(self.level, ["RGB_INTERLEAVED"], config=settings)
        names = [entry["name"] for entry in self._lab.action_spec()]
        missing = {key for _, entry in IMPALA_ACTIONS for key in entry} - set(names)
        if missing:
            raise RuntimeError(f"DMLab action spec {names} lacks {sorted(missing)}")
        self._actions = np.zeros((len(IMPALA_ACTIONS), len(names)), np.int32)
        for row, (_, entry) in enumerate(IMPALA_ACTIONS):
            for key, value in entry.items():
                self._actions[row, names.index(key)] = value
        self.action_space = spaces.Discrete(len(IMPALA_ACTIONS))
        self.observation_space = image_obs_space(self.size)
        self._last_image = np.zeros((self.size, self.size, 3), np.uint8)

    @property
    def action_names(self) -> list[str]:
        """Names of the 9 actions, in index order."""
        return [name for name, _ in IMPALA_ACTIONS]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._lab.reset(seed=int(self.np_random.integers(2**31 - 1)))
        return self._obs(), {"success": False}

    def step(self, action: int):
        reward = float(self._lab.step(self._actions[int(action)], num_steps=self.action_repeat))
        running = self._lab.is_running()
        obs = self._obs() if running else {"image": self._last_image.copy()}
        return obs, reward, False, not running, {"success": reward >= GOAL_REWARD}

    def _obs(self) -> dict[str, np.ndarray]:
        image = np.asarray(self._lab.observations()["RGB_INTERLEAVED"], dtype=np.uint8)
        self._last_image = image
        return {"image": image.copy()}

    def render(self) -> np.ndarray | None:
        """The current frame when `render_mode="rgb_array"`."""
        return self._last_image.copy() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        self._lab.close()
