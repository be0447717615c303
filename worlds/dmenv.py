"""dm_control (MuJoCo) tasks as gymnasium envs: the shared half of the Ant Maze and Memory Maze.

    env = DmEnvWorld(build, image_key="walker/egocentric_camera")
    obs, info = env.reset(seed=0)      # obs: {"image": (H, W, 3) uint8, <vector>: (n,) float32}

Every other non-empty entry of the task's observation becomes a float32 vector, named without
its "walker/" prefix.

`build(seed)` returns a `dm_env.Environment`; `reset(seed=s)` rebuilds it with `s`, so a seed
fixes the whole episode (maze, spawn, physics noise), as gymnasium's reset promises. A
`dm_env` LAST step with discount 0 is `terminated=True`, with any other discount it is the
task's time limit (`truncated=True`). Subclasses read the task to fill `info["success"]`.

`import_dm_control(world, extra)` imports dm_control with headless rendering (`MUJOCO_GL=egl`
when unset) or raises a `WorldError` naming the pip extra that installs it.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from worlds.errors import WorldError

# Pins: dm-control 1.0.50 fails on mujoco 4 (`MjModel` has no `flex_vertedge`); see setup.cfg.
EXTRAS = {"antmaze": 'pip install -e ".[antmaze]"', "memorymaze": 'pip install -e ".[memorymaze]"'}


def use_headless_rendering() -> None:
    """Render through EGL (Mesa or a GPU driver, no display) unless MUJOCO_GL is already set."""
    os.environ.setdefault("MUJOCO_GL", "egl")


def missing_extra(world: str, extra: str, error: Exception) -> WorldError:
    """The one-paragraph error for a world whose optional simulator is not installed."""
    return WorldError(
        f"World {world!r} needs the optional MuJoCo packages, which cannot be imported here "
        f"({error}). Install them into this environment with `{EXTRAS[extra]}` (pinned "
        "dm-control 1.0.50 with mujoco 3.17.0; rendering is headless through EGL, which needs "
        "Mesa's libEGL: Debian packages libegl1 and libgl1-mesa-dri), or run `make test`, which "
        "installs every extra.")


def import_dm_control(world: str, extra: str) -> None:
    """Import dm_control's composer and locomotion modules, or raise WorldError naming `extra`."""
    use_headless_rendering()
    try:
        import labmaze  # noqa: F401
        from dm_control import composer  # noqa: F401
        from dm_control.locomotion import arenas, props, tasks, walkers  # noqa: F401
    except ImportError as error:
        raise missing_extra(world, extra, error) from error


def _vector_space(spec: Any) -> spaces.Box:
    return spaces.Box(-np.inf, np.inf, (int(np.prod(spec.shape)),), np.float32)


class DmEnvWorld(gym.Env):
    """A `dm_env.Environment` behind gymnasium's API; see the module docstring.

    Observation: Dict {"image": the `image_key` entry (H, W, 3) uint8, and every other non-empty
    entry flattened to float32, named without its "walker/" prefix}. Action: Box from a bounded
    action spec, or Discrete(n) from a DiscreteArray spec.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, build: Callable[[int | None], Any], *, image_key: str,
                 render_mode: str | None = None):
        self._build = build
        self._image_key = image_key
        self.render_mode = render_mode
        self._env = build(None)
        obs_spec = self._env.observation_spec()
        self._vector_keys = tuple(key for key, spec in obs_spec.items()
                                  if key != image_key and int(np.prod(spec.shape)) > 0)
        entries: dict[str, spaces.Space] = {
            "image": spaces.Box(0, 255, tuple(obs_spec[image_key].shape), np.uint8)}
        for key in self._vector_keys:
            entries[key.split("/")[-1]] = _vector_space(obs_spec[key])
        self.observation_space = spaces.Dict(entries)
        action = self._env.action_spec()
        if hasattr(action, "num_values"):
            self.action_space: spaces.Space = spaces.Discrete(int(action.num_values))
        else:
            low = np.broadcast_to(np.asarray(action.minimum, np.float32), action.shape)
            high = np.broadcast_to(np.asarray(action.maximum, np.float32), action.shape)
            self.action_space = spaces.Box(low.copy(), high.copy(), dtype=np.float32)
        self._last_image = np.zeros(entries["image"].shape, np.uint8)

    @property
    def dm_env(self) -> Any:
        """The wrapped dm_env (a `composer.Environment` or a wrapper of one)."""
        return self._env

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.close()
            self._env = self._build(seed)
        step = self._env.reset()
        self.on_reset()
        return self._obs(step.observation), self._info(0.0)

    def step(self, action: Any):
        if isinstance(self.action_space, spaces.Discrete):
            action = int(np.asarray(action).reshape(()))
        step = self._env.step(action)
        reward = float(step.reward or 0.0)
        terminated = bool(step.last() and step.discount == 0.0)
        truncated = bool(step.last() and not terminated)
        return self._obs(step.observation), reward, terminated, truncated, self._info(reward)

    def on_reset(self) -> None:
        """Hook: clear per-episode counters of a subclass."""

    def _info(self, reward: float) -> dict[str, Any]:
        """`info` of a step that paid `reward`; subclasses say what success is."""
        return {"success": reward > 0.0}

    def _obs(self, observation: dict[str, Any]) -> dict[str, np.ndarray]:
        image = np.asarray(observation[self._image_key], dtype=np.uint8)
        self._last_image = image
        out = {"image": image.copy()}
        for key in self._vector_keys:
            out[key.split("/")[-1]] = np.asarray(observation[key], np.float32).reshape(-1)
        return out

    def render(self) -> np.ndarray | None:
        """The current camera frame when `render_mode="rgb_array"`."""
        return self._last_image.copy() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        self._env.close()
