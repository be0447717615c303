"""Collector: steps a vector of gymnasium envs with a policy and feeds the replay.

One call to ``Collector.step`` is one time step of all N envs:

    obs_t (N, ...) --policy--> a_t (N, A) --envs--> obs_{t+1}, r_{t+1}, terminated, truncated

Every env's observation becomes a step of the replay stream ``worker = i``, stored with the
action that led to it (zeros on ``is_first``), so a chunk (B, T, ...) pairs ``image[t]`` with
``action[t] = a_{t-1}`` as the RSSM's posterior step expects. ``is_last`` marks the final
observation of an episode; ``is_terminal`` only when the env terminated (a time-limit truncation
is last but not terminal, so its value is still bootstrapped).

Envs use gymnasium's default NEXT_STEP autoreset: after an episode ends, the env's next
``step()`` ignores its action and returns the reset observation, which the collector marks
``is_first`` with reward 0. Actions travel as float32 (N, A): one-hot for a Discrete space
(converted to integers for the env), values in [-1, 1] for a Box space.
"""
from __future__ import annotations

from typing import Any, Callable

import gymnasium
import numpy as np

from director.errors import ConfigError

Policy = Callable[[dict[str, np.ndarray]], np.ndarray]


def is_discrete(space: gymnasium.Space) -> bool:
    """True for a Discrete action space (actions travel as one-hot vectors)."""
    return isinstance(space, gymnasium.spaces.Discrete)


def action_size(space: gymnasium.Space) -> int:
    """A, the length of an action vector: classes of a Discrete space, entries of a Box."""
    if is_discrete(space):
        return int(space.n)
    if isinstance(space, gymnasium.spaces.Box):
        return int(np.prod(space.shape))
    raise ConfigError(
        f"Unsupported action space {space}: Director handles Discrete and Box actions. Wrap the "
        f"environment so that it exposes one of them (e.g. flatten a MultiDiscrete space into a "
        f"Discrete one).")


class RandomPolicy:
    """Uniform random actions (N, A) float32: one-hot for Discrete, uniform [-1, 1] for Box.

    Box actions assume the normalised range [-1, 1] that the worlds wrappers expose.
    """

    def __init__(self, action_space: gymnasium.Space, seed: int | None = None):
        self.space = action_space
        self.size = action_size(action_space)
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        n = len(obs["is_first"])
        if is_discrete(self.space):
            return np.eye(self.size, dtype=np.float32)[self.rng.integers(0, self.size, n)]
        return self.rng.uniform(-1, 1, (n, self.size)).astype(np.float32)


def _cells(info: dict[str, Any], n: int) -> np.ndarray:
    """(N,) int64 `info["cell"]` (the agent's grid cell, reported by grid worlds), -1 where unset."""
    if "cell" not in info:
        return np.full(n, -1, np.int64)
    values = np.asarray(info["cell"]).astype(np.int64).reshape(n)
    mask = np.asarray(info.get("_cell", np.ones(n, bool))).astype(bool).reshape(n)
    return np.where(mask, values, -1)


def _flag(info: dict[str, Any], key: str, n: int) -> np.ndarray:
    """(N,) bool from a vectorised info entry, False where its ``_key`` mask is unset."""
    if key not in info:
        return np.zeros(n, bool)
    values = np.asarray(info[key]).astype(bool).reshape(n)
    mask = np.asarray(info.get(f"_{key}", np.ones(n, bool))).astype(bool).reshape(n)
    return values & mask


class Collector:
    """Runs N envs in lockstep, adds every step to the replay and reports finished episodes.

    Attributes:
        env_steps: total steps added (N per ``step`` call, reset observations included).
        episodes: total episodes finished.
        visited: every cell (`info["cell"]`) seen so far, for worlds that report one: the
            exploration coverage of the run.
        restarts: env restarts after a crash (steps with ``info["restarted"]``).
    """

    def __init__(self, envs: gymnasium.vector.VectorEnv, replay: Any | None):
        mode = envs.metadata.get("autoreset_mode")
        if mode is not None and getattr(mode, "name", str(mode)) != "NEXT_STEP":
            raise ConfigError(
                f"The vector env uses autoreset mode {mode}; the collector expects gymnasium's "
                f"default NEXT_STEP mode. Create the vector env without an autoreset_mode "
                f"argument (or with AutoresetMode.NEXT_STEP).")
        self.envs = envs
        self.replay = replay
        self.num_envs = envs.num_envs
        self.action_space = envs.single_action_space
        self.discrete = is_discrete(self.action_space)
        self.action_size = action_size(self.action_space)
        self.env_steps = 0
        self.episodes = 0
        self.visited: set[int] = set()
        self.restarts = 0
        self._obs: dict[str, np.ndarray] | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Collectors pickled before coverage was counted resume with it empty.
        state.setdefault("visited", set())
        state.setdefault("_cells", [set() for _ in range(state["num_envs"])])
        self.__dict__.update(state)

    def reset(self, seed: int | None = None) -> None:
        """Reset all envs; the next ``step`` feeds their first observations (is_first)."""
        n = self.num_envs
        obs, info = self.envs.reset(seed=seed)
        self._obs = self._observation(obs, np.zeros(n, np.float32), np.ones(n, bool),
                                      np.zeros(n, bool), np.zeros(n, bool))
        self._info = info
        self._prev_action = np.zeros((n, self.action_size), np.float32)
        self._return = np.zeros(n, np.float64)
        self._length = np.zeros(n, np.int64)
        self._success = np.zeros(n, bool)
        self._restarted = np.zeros(n, bool)
        self._cells: list[set[int]] = [set() for _ in range(n)]

    def _observation(self, obs: dict[str, np.ndarray], reward: np.ndarray, is_first: np.ndarray,
                     is_last: np.ndarray, is_terminal: np.ndarray) -> dict[str, np.ndarray]:
        """The (N, ...) obs dict the policy sees: env observations plus reward and flags."""
        out = {key: np.asarray(value, np.uint8 if key == "image" else np.float32)
               for key, value in obs.items()}
        out.update(reward=reward.astype(np.float32), is_first=is_first, is_last=is_last,
                   is_terminal=is_terminal)
        return out

    def step(self, policy: Policy) -> list[dict[str, Any]]:
        """Add the current observations of all envs to the replay, act, and step the envs.

        ``policy(obs) -> (N, A) float32`` sees the obs dict {image (N, H, W, 3), vectors,
        reward (N,), is_first (N,), is_last (N,), is_terminal (N,)}. Returns the episodes that
        finished with this observation: dicts {return, length, success, restarted, worker};
        ``length`` counts env transitions (actions taken) in the episode. Worlds that report
        `info["cell"]` add ``cells`` (distinct cells of the episode) and ``coverage`` (distinct
        cells of the whole run so far).
        """
        if self._obs is None:
            raise RuntimeError("Call Collector.reset() before Collector.step().")
        obs, n = self._obs, self.num_envs
        self._prev_action[obs["is_first"]] = 0.0
        success = _flag(self._info, "success", n)
        restarted = _flag(self._info, "restarted", n)
        cells = _cells(self._info, n)
        self.restarts += int(restarted.sum())

        finished = []
        for i in range(n):
            if obs["is_first"][i]:
                self._return[i], self._length[i] = 0.0, 0
                self._success[i], self._restarted[i] = False, False
                self._cells[i] = set()
            else:
                self._return[i] += float(obs["reward"][i])
                self._length[i] += 1
            self._success[i] |= success[i]
            self._restarted[i] |= restarted[i]
            if cells[i] >= 0:
                self._cells[i].add(int(cells[i]))
                self.visited.add(int(cells[i]))
            if self.replay is not None:
                step = {k: v[i] for k, v in obs.items()}
                step["action"] = self._prev_action[i]
                self.replay.add(step, worker=i)
            if obs["is_last"][i]:
                episode = {
                    "return": float(self._return[i]), "length": int(self._length[i]),
                    "success": bool(self._success[i]), "restarted": bool(self._restarted[i]),
                    "worker": i,
                }
                if self._cells[i]:
                    episode.update(cells=len(self._cells[i]), coverage=len(self.visited))
                finished.append(episode)
        self.env_steps += n
        self.episodes += len(finished)

        action = np.asarray(policy(obs), np.float32).reshape(n, self.action_size)
        if self.discrete:
            env_action = action.argmax(-1) + int(self.action_space.start)
        else:
            env_action = action.reshape(n, *self.action_space.shape)
        next_obs, reward, terminated, truncated, info = self.envs.step(env_action)
        self._prev_action = action.copy()
        is_first = obs["is_last"].copy()  # NEXT_STEP autoreset: these envs just reset
        reward = np.where(is_first, 0.0, reward)
        terminated = np.asarray(terminated, bool) & ~is_first
        truncated = np.asarray(truncated, bool) & ~is_first
        self._obs = self._observation(next_obs, reward, is_first, terminated | truncated,
                                      terminated)
        self._info = info
        return finished
