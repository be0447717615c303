"""A faithful stand-in for the `deepmind_lab` module, for testing the DMLab adapter without DMLab.

It implements the parts of DeepMind Lab's documented Python API the adapter uses, with the same
calling conventions and failure modes:
- `Lab(level, observations, config=None, renderer='software', level_cache=None)`; config values
  must be strings; unknown observation names raise ValueError.
- `action_spec()`: list of dicts {"name", "min", "max"} in DMLab's order (7 integer actions).
- `reset(seed=None, episode=-1)`, `is_running()`, `observations()` (dict of arrays; raises
  RuntimeError when the episode is not running), `step(action, num_steps=1)` -> float reward
  (action must be an int32 array of shape (7,) within the spec; raises RuntimeError when not
  running), `num_steps()`, `close()`.
Dynamics: the episode lasts `EPISODE_FRAMES` frames; every frame with MOVE_BACK_FORWARD = 1
advances the player; reaching `GOAL_DISTANCE` pays `GOAL_REWARD` and restarts the walk. The
frame's colour encodes the player's position and heading so tests can see actions take effect.
Test hooks: `Lab.instances` (every Lab made), `Lab.crash_on_step` (raise on the n-th step call).
"""
from __future__ import annotations

from typing import Any

import numpy as np

EPISODE_FRAMES = 40
GOAL_DISTANCE = 8
GOAL_REWARD = 10.0

_ACTION_SPEC = [
    {"name": "LOOK_LEFT_RIGHT_PIXELS_PER_FRAME", "min": -512, "max": 512},
    {"name": "LOOK_DOWN_UP_PIXELS_PER_FRAME", "min": -512, "max": 512},
    {"name": "STRAFE_LEFT_RIGHT", "min": -1, "max": 1},
    {"name": "MOVE_BACK_FORWARD", "min": -1, "max": 1},
    {"name": "FIRE", "min": 0, "max": 1},
    {"name": "JUMP", "min": 0, "max": 1},
    {"name": "CROUCH", "min": 0, "max": 1},
]
_OBSERVATIONS = ("RGB_INTERLEAVED", "RGB", "RGBD_INTERLEAVED")


class Lab:
    instances: list["Lab"] = []
    crash_on_step: int | None = None   # raise RuntimeError on this (1-based) step call

    def __init__(self, level: str, observations: list[str], config: dict[str, str] | None = None,
                 renderer: str = "software", level_cache: Any = None):
        config = dict(config or {})
        for key, value in config.items():
            if not isinstance(value, str):
                raise TypeError(f"Config key '{key}' must have a string value")
        for name in observations:
            if name not in _OBSERVATIONS:
                raise ValueError(f"Unknown observation '{name}'")
        self.level = level
        self.config = config
        self.observation_names = list(observations)
        self.width = int(config.get("width", 320))
        self.height = int(config.get("height", 240))
        self.step_calls: list[tuple[np.ndarray, int]] = []
        self.reset_seeds: list[int | None] = []
        self.closed = False
        self._running = False
        self._frames = 0
        self._distance = 0
        self._heading = 0
        Lab.instances.append(self)

    def action_spec(self) -> list[dict[str, Any]]:
        return [dict(entry) for entry in _ACTION_SPEC]

    def reset(self, seed: int | None = None, episode: int = -1) -> bool:
        self.reset_seeds.append(seed)
        self._running = True
        self._frames = 0
        self._distance = 0
        self._heading = int(np.random.RandomState(seed).randint(4))
        return True

    def is_running(self) -> bool:
        return self._running

    def num_steps(self) -> int:
        return self._frames

    def step(self, action: np.ndarray, num_steps: int = 1) -> float:
        if Lab.crash_on_step is not None and len(self.step_calls) + 1 >= Lab.crash_on_step:
            raise RuntimeError("simulated DeepMind Lab crash")
        if not self._running:
            raise RuntimeError("Environment in wrong status to advance")
        action = np.asarray(action)
        if action.dtype != np.intc or action.shape != (len(_ACTION_SPEC),):
            raise ValueError(
                f"action must be an int32 array of shape (7,), got {action.dtype} {action.shape}")
        for value, entry in zip(action, _ACTION_SPEC):
            if not entry["min"] <= value <= entry["max"]:
                raise ValueError(f"{entry['name']}={value} outside [{entry['min']}, {entry['max']}]")
        self.step_calls.append((action.copy(), num_steps))
        reward = 0.0
        for _ in range(num_steps):
            self._heading = (self._heading + int(np.sign(action[0]))) % 4
            if action[3] == 1:
                self._distance += 1
                if self._distance >= GOAL_DISTANCE:
                    reward += GOAL_REWARD
                    self._distance = 0
            self._frames += 1
            if self._frames >= EPISODE_FRAMES:
                self._running = False
                break
        return reward

    def observations(self) -> dict[str, np.ndarray]:
        if not self._running:
            raise RuntimeError("Environment in wrong status for call to observations()")
        image = np.zeros((self.height, self.width, 3), np.uint8)
        image[..., 0] = 20 * self._distance
        image[..., 1] = 60 * self._heading
        image[..., 2] = min(self._frames, 255)
        return {"RGB_INTERLEAVED": image}

    def close(self) -> None:
        self.closed = True
