"""Gymnasium wrappers that turn any simulator into the shape Director expects.

Each wrapper works on its own; `worlds.make` composes them (innermost first):

    simulator -> ImageObs / Resize / SuccessInfo   (the world's adapter: obs Dict with "image")
              -> RestartOnError                     (default: rebuild a crashed simulator)
              -> TimeLimit                          (gymnasium's; worlds without a native limit)
              -> ActionRepeat                       (optional)
              -> OneHotActions | NormalizeActions   (agent-facing action space)
              -> SeedFirstReset                     (`make(seed=...)` seeds the first reset)

Conventions every wrapper keeps: observations are dicts with "image" uint8 (size, size, 3) and
optional float32 vectors; `info["success"]` is a bool on every step; an episode cut by time or by
a crash ends with `truncated=True, terminated=False`.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit

from worlds.errors import WorldError
from worlds.imaging import resize_image

__all__ = [
    "ActionRepeat",
    "ImageObs",
    "NormalizeActions",
    "OneHotActions",
    "Resize",
    "RestartBudget",
    "RestartOnError",
    "RestartVectorOnError",
    "SeedFirstReset",
    "SuccessInfo",
    "TimeLimit",
    "is_image_space",
]

logger = logging.getLogger(__name__)

StepResult = tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]


def is_image_space(space: spaces.Space) -> bool:
    """True for a Box of uint8 with shape (H, W, 3)."""
    return (isinstance(space, spaces.Box) and space.dtype == np.uint8
            and len(space.shape) == 3 and space.shape[-1] == 3)


class ImageObs(gym.ObservationWrapper):
    """Turn an image-observation env into the Dict observation {"image": (H, W, 3) uint8, ...}.

    Sources, in order:
    - `from_render=True`: the frame of `env.render()` (the env needs `render_mode="rgb_array"`);
      the original observation is dropped.
    - an image Box observation (H, W, 3) uint8: it becomes the "image" entry.
    - a Dict observation with an image entry under `key`: that entry becomes "image"; the other
      Box entries are kept as flat float32 vectors (e.g. proprioception); non-Box entries such as
      MiniGrid's text mission are dropped.
    """

    def __init__(self, env: gym.Env, *, key: str = "image", from_render: bool = False):
        super().__init__(env)
        self._key = key
        self._from_render = from_render
        self._vectors: list[str] = []
        if from_render:
            if env.render_mode != "rgb_array":
                raise ValueError(
                    "ImageObs(from_render=True) needs render_mode='rgb_array', "
                    f"got {env.render_mode!r}")
            env.reset()
            frame = np.asarray(env.render())
            image_space = spaces.Box(0, 255, frame.shape, np.uint8)
        elif is_image_space(env.observation_space):
            image_space = env.observation_space
        elif isinstance(env.observation_space, spaces.Dict) and key in env.observation_space.spaces:
            image_space = env.observation_space[key]
            if not is_image_space(image_space):
                raise ValueError(
                    f"observation entry {key!r} is {image_space}, not an (H, W, 3) uint8 image")
            for name, space in env.observation_space.spaces.items():
                if name != key and isinstance(space, spaces.Box):
                    self._vectors.append(name)
        else:
            raise ValueError(
                f"ImageObs: observation space {env.observation_space} holds no (H, W, 3) uint8 image; "
                "use from_render=True with render_mode='rgb_array'")
        entries: dict[str, spaces.Space] = {"image": image_space}
        for name in self._vectors:
            space = env.observation_space[name]
            entries[name] = spaces.Box(space.low.reshape(-1).astype(np.float32),
                                       space.high.reshape(-1).astype(np.float32), dtype=np.float32)
        self.observation_space = spaces.Dict(entries)

    def observation(self, observation: Any) -> dict[str, np.ndarray]:
        if self._from_render:
            return {"image": np.asarray(self.env.render(), dtype=np.uint8)}
        if isinstance(observation, dict):
            out = {"image": np.asarray(observation[self._key], dtype=np.uint8)}
            for name in self._vectors:
                out[name] = np.asarray(observation[name], dtype=np.float32).reshape(-1)
            return out
        return {"image": np.asarray(observation, dtype=np.uint8)}


class Resize(gym.ObservationWrapper):
    """Resize the "image" entry of a Dict observation to (size, size, 3) uint8 with PIL.

    Shrinking averages pixels (BOX filter), enlarging repeats them (NEAREST); see
    `worlds.imaging.resize_image`. Other entries pass through.
    """

    def __init__(self, env: gym.Env, size: int, *, key: str = "image"):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or key not in space.spaces:
            raise ValueError(
                f"Resize needs a Dict observation space with {key!r}; wrap with ImageObs first")
        self.size = int(size)
        self._key = key
        entries = dict(env.observation_space.spaces)
        entries[key] = spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        self.observation_space = spaces.Dict(entries)

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        observation = dict(observation)
        observation[self._key] = resize_image(observation[self._key], self.size)
        return observation


class SuccessInfo(gym.Wrapper):
    """Guarantee a bool `info["success"]` on every reset and step.

    `rule(reward, terminated, info) -> bool` decides success for worlds that do not report it,
    e.g. `lambda r, term, info: term and r > 0` for MiniGrid tasks. Without a rule, the env's own
    `info["success"]` (or "is_success", as some gymnasium envs name it) is used, default False.
    """

    def __init__(self, env: gym.Env, rule: Callable[[float, bool, dict[str, Any]], bool] | None = None):
        super().__init__(env)
        self._rule = rule

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {**info, "success": False}

    def step(self, action: Any) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._rule is not None:
            success = self._rule(float(reward), bool(terminated), info)
        else:
            success = info.get("success", info.get("is_success", False))
        return obs, reward, terminated, truncated, {**info, "success": bool(success)}


class ActionRepeat(gym.Wrapper):
    """Repeat each action `repeat` times: rewards are summed, the last observation is returned.

    The loop stops early when the episode ends. `info["success"]` is True when any of the repeated
    steps succeeded, so a success inside the repeat is never lost.
    """

    def __init__(self, env: gym.Env, repeat: int):
        if int(repeat) != repeat or repeat < 1:
            raise ValueError(f"ActionRepeat needs an integer repeat >= 1, got {repeat!r}")
        super().__init__(env)
        self.repeat = int(repeat)

    def step(self, action: Any) -> StepResult:
        total, success = 0.0, False
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            success = success or bool(info.get("success", False))
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, {**info, "success": success}


class OneHotActions(gym.ActionWrapper):
    """Expose a Discrete(n) env as Box(0, 1, (n,), float32): the action index is the argmax.

    Director's policies emit one-hot vectors; those pass straight through. A plain integer
    (Python or numpy) is accepted too. Because the index is an argmax, `action_space.sample()`
    (uniform floats) gives a uniformly random action, so random policies need no special case.
    A vector of the wrong shape raises ValueError.
    """

    def __init__(self, env: gym.Env):
        if not isinstance(env.action_space, spaces.Discrete):
            raise ValueError(f"OneHotActions needs a Discrete action space, got {env.action_space}")
        super().__init__(env)
        self._n = int(env.action_space.n)
        self._start = int(env.action_space.start)
        self.action_space = spaces.Box(0.0, 1.0, (self._n,), np.float32)

    def action(self, action: Any) -> int:
        if isinstance(action, (int, np.integer)):
            index = int(action) - self._start
        else:
            vector = np.asarray(action)
            if vector.ndim == 0:
                index = int(vector) - self._start
            elif vector.shape != (self._n,):
                raise ValueError(f"one-hot action must have shape ({self._n},), got {vector.shape}")
            else:
                index = int(np.argmax(vector))
        if not 0 <= index < self._n:
            raise ValueError(f"action {index + self._start} outside Discrete({self._n}, "
                             f"start={self._start})")
        return self._start + index


class NormalizeActions(gym.ActionWrapper):
    """Expose a Box action space as [-1, 1] (float32) and clip incoming actions to it.

    Dimensions with finite bounds are mapped affinely from [-1, 1] to [low, high]; dimensions
    with an infinite bound pass through unchanged (and keep their bounds in the space).
    """

    def __init__(self, env: gym.Env):
        if not isinstance(env.action_space, spaces.Box):
            raise ValueError(f"NormalizeActions needs a Box action space, got {env.action_space}")
        super().__init__(env)
        space = env.action_space
        self._mask = np.isfinite(space.low) & np.isfinite(space.high)
        self._low = np.where(self._mask, space.low, -1.0)
        self._high = np.where(self._mask, space.high, 1.0)
        low = np.where(self._mask, -1.0, space.low).astype(np.float32)
        high = np.where(self._mask, 1.0, space.high).astype(np.float32)
        self.action_space = spaces.Box(low, high, dtype=np.float32)
        self._dtype = space.dtype

    def action(self, action: Any) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64).reshape(self.action_space.shape)
        clipped = np.clip(action, -1.0, 1.0)
        scaled = self._low + (clipped + 1.0) / 2.0 * (self._high - self._low)
        return np.where(self._mask, scaled, action).astype(self._dtype)


class RestartBudget:
    """At most `max_restarts` restarts within any `window` seconds; one more is a WorldError
    that stops the run (a simulator that keeps crashing is broken, not unlucky)."""

    def __init__(self, max_restarts: int = 10, window: float = 3600.0):
        if max_restarts < 1 or window <= 0:
            raise ValueError(f"RestartBudget needs max_restarts >= 1 and window > 0, got "
                             f"{max_restarts}, {window}")
        self.max_restarts, self.window = int(max_restarts), float(window)
        self._times: deque[float] = deque()

    def spend(self, what: str, error: BaseException) -> None:
        """Record one restart of `what` after `error`, or raise WorldError when over budget."""
        now = time.monotonic()
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        if len(self._times) >= self.max_restarts:
            raise WorldError(
                f"The {what} crashed {len(self._times) + 1} times within {self.window:g} s (last: "
                f"{type(error).__name__}: {error}); restarting it again would hide a broken "
                f"simulator, so the run stops here. Fix the simulator (its log above says why), "
                f"or raise the options max_restarts / restart_window, then resume the run.") from error
        self._times.append(now)


class RestartOnError(gym.Wrapper):
    """Rebuild a crashing simulator from its constructor instead of killing the run.

    `make_env()` builds the env (it is called once here, and again after each crash).
    - An exception in `step`: the broken env is closed, a fresh one is built and reset, and the
      step returns its first observation with reward 0, `terminated=False`, `truncated=True`,
      `info["restarted"]=True`, `info["success"]=False`: the broken episode ends and is marked.
    - An exception in `reset`: the env is rebuilt and reset again, up to `max_retries` times;
      then the last exception is re-raised.
    - More than `max_restarts` rebuilds within `window` seconds raise WorldError (`RestartBudget`).
    After a step crash the rebuilt env is reset with the first seed the caller passed plus the
    number of restarts (None if it never passed one), so runs stay reproducible and episodes after
    a crash are not replays of the first one. `restarts` counts rebuilds.
    """

    def __init__(self, make_env: Callable[[], gym.Env], *, max_retries: int = 3,
                 max_restarts: int = 10, window: float = 3600.0,
                 exceptions: tuple[type[BaseException], ...] = (Exception,)):
        if max_retries < 1:
            raise ValueError(f"RestartOnError needs max_retries >= 1, got {max_retries}")
        super().__init__(make_env())
        self._make_env = make_env
        self.max_retries = int(max_retries)
        self.budget = RestartBudget(max_restarts, window)
        self.exceptions = exceptions
        self.restarts = 0
        self._seed: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if self._seed is None:
            self._seed = seed
        try:
            return self.env.reset(seed=seed, options=options)
        except self.exceptions as error:
            return self._rebuild(error, seed=seed, options=options)

    def step(self, action: Any) -> StepResult:
        try:
            return self.env.step(action)
        except self.exceptions as error:
            seed = None if self._seed is None else self._seed + self.restarts + 1
            obs, info = self._rebuild(error, seed=seed)
            return obs, 0.0, False, True, {**info, "restarted": True, "success": False}

    def _rebuild(self, error: BaseException, seed: int | None = None,
                 options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Close the broken env, then build and reset fresh ones until one works."""
        for attempt in range(1, self.max_retries + 1):
            self.budget.spend("environment", error)
            logger.warning("restarting crashed env (attempt %d of %d) after %s: %s",
                           attempt, self.max_retries, type(error).__name__, error)
            try:
                self.env.close()
            except Exception:  # a broken simulator may fail to close too; it is dropped anyway
                pass
            try:
                self.env = self._make_env()
                obs, info = self.env.reset(seed=seed, options=options)
            except self.exceptions as new_error:
                error = new_error
                continue
            self.restarts += 1
            return obs, {**info, "restarted": True}
        raise error


class RestartVectorOnError(gym.vector.VectorWrapper):
    """Rebuild a subprocess vector env (AsyncVectorEnv) whose worker process died.

    A dead worker breaks the pipes of the whole vector env: on EOFError / BrokenPipeError /
    ConnectionError in `step` or `reset` it is closed and `make_vector()` builds a new one. A
    step then ends every env's episode like `RestartOnError` does (first observations of the
    new envs, reward 0, truncated, `info["restarted"]`), and the next step returns them again
    as the reset of gymnasium's NEXT_STEP autoreset would. Exceptions raised by the envs
    themselves pass through (each env's own RestartOnError handles those). The restarts share
    one `RestartBudget`; `restarts` counts rebuilds."""

    ERRORS = (EOFError, BrokenPipeError, ConnectionError)

    def __init__(self, make_vector: Callable[[], gym.vector.VectorEnv], *, max_restarts: int = 10,
                 window: float = 3600.0):
        super().__init__(make_vector())
        self._make_vector = make_vector
        self.budget = RestartBudget(max_restarts, window)
        self.restarts = 0
        self._replay_reset: tuple[Any, dict[str, Any]] | None = None

    def _rebuild(self, error: BaseException) -> None:
        self.budget.spend("vector env (a worker process died)", error)
        logger.warning("rebuilding the vector env after %s: %s", type(error).__name__, error)
        try:
            self.env.close(terminate=True)
        except Exception:  # the broken pipes may fail to close; the processes are terminated
            pass
        self.env = self._make_vector()
        self.restarts += 1

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        self._replay_reset = None
        try:
            return self.env.reset(seed=seed, options=options)
        except self.ERRORS as error:
            self._rebuild(error)
            return self.env.reset(seed=seed, options=options)

    def step(self, actions: Any):
        n = self.num_envs
        if self._replay_reset is not None:  # the autoreset step after a rebuild
            (obs, info), self._replay_reset = self._replay_reset, None
            return obs, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), info
        try:
            return self.env.step(actions)
        except self.ERRORS as error:
            self._rebuild(error)
            obs, info = self.env.reset()
            self._replay_reset = (obs, info)
            flags = {"restarted": np.ones(n, bool), "_restarted": np.ones(n, bool),
                     "success": np.zeros(n, bool), "_success": np.ones(n, bool)}
            return obs, np.zeros(n), np.zeros(n, bool), np.ones(n, bool), {**info, **flags}


class SeedFirstReset(gym.Wrapper):
    """Use `seed` for the first `reset()` that is called without one.

    This is how `worlds.make(name, seed=s)` is deterministic without resetting inside `make`:
    the first episode is seeded with `s`, later episodes continue the env's seeded generator.
    An explicit `reset(seed=...)` always wins.
    """

    def __init__(self, env: gym.Env, seed: int | None):
        super().__init__(env)
        self._pending_seed = seed

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seed = self._pending_seed
        self._pending_seed = None
        return self.env.reset(seed=seed, options=options)
