"""Experience for a Lightning Trainer: an IterableDataset that interleaves environment
collection and replay sampling at the configured replay ratio.

Each process (DDP rank) owns its envs, replay (`RUN_DIR/replay/rank<r>`) and collector.
One iteration collects `replay.train_every` env steps with the agent's current policy
(uniform random during the first `replay.prefill` steps), then yields a replay batch of
(B, T, ...) tensors. Iteration ends once this rank's share of `train.steps` is collected.
"""
from __future__ import annotations

import collections
import io
import pickle
import random
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

from director.collect import Collector, RandomPolicy
from director.config import Config
from director.replay import Replay


def to_torch(data: dict[str, np.ndarray], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, device=device) for k, v in data.items()}


class ExperienceStream(IterableDataset):
    """Yields replay batches while stepping the envs; holds the acting carry.

    `make_envs(seed)` builds this rank's gymnasium VectorEnv; `agent_policy(obs, carry)`
    maps numpy obs (N, ...) to (actions (N, A), carry, info)."""

    def __init__(self, cfg: Config, make_envs: Callable[[int], Any], agent_policy: Callable,
                 replay_dir: Path | None, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.make_envs, self.agent_policy = make_envs, agent_policy
        seed = cfg.train.seed + 1000 * rank
        self.replay = Replay(replay_dir, cfg.replay.capacity, cfg.replay.length, seed=seed,
                             reward_chunks=cfg.replay.reward_chunks)
        self.envs = make_envs(seed)
        self.collector = Collector(self.envs, self.replay)
        self.collector.reset(seed=seed)
        self.random = RandomPolicy(self.envs.single_action_space, seed=seed)
        self.carry: Any = None
        self.budget = cfg.train.steps // world_size
        self.prefill = cfg.replay.prefill // world_size
        self.episodes: list[dict] = []  # finished since the last `pop_episodes`
        self.last_info: dict[str, Any] = {}
        # Goal reward reached at the end of each of the most recent goal periods.
        self.goal_stats: collections.deque[float] = collections.deque(maxlen=256)

    @property
    def env_steps(self) -> int:
        """Env steps collected by this rank (all its envs)."""
        return self.collector.env_steps

    def _policy(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.env_steps < self.prefill:
            return self.random(obs)
        action, self.carry, self.last_info = self.agent_policy(obs, self.carry)
        if "period_end" in self.last_info:
            ended = self.last_info["period_end"].cpu().numpy()
            self.goal_stats.extend(self.last_info["reached"].cpu().numpy()[ended].tolist())
        return action

    def collect(self, steps: int) -> None:
        target = self.env_steps + steps
        while self.env_steps < target:
            self.episodes += self.collector.step(self._policy)

    def goal_summary(self, threshold: float = 0.7) -> dict[str, float]:
        """Mean goal reward reached at the end of the recent goal periods, and the fraction of
        periods that ended above `threshold`."""
        values = np.array(self.goal_stats)
        return {"goal_reached": float(values.mean()), "goal_reached_frac": float((values > threshold).mean())}

    def pop_episodes(self) -> list[dict]:
        eps, self.episodes = self.episodes, []
        return eps

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        cfg = self.cfg.replay
        while self.env_steps < self.budget:
            if self.env_steps < self.prefill:
                self.collect(self.prefill - self.env_steps)
            self.collect(cfg.train_every)
            if len(self.replay) >= cfg.length:
                yield to_torch(self.replay.sample(cfg.batch))

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Replay, collector (with its envs when they can be pickled), acting carry and RNGs."""
        self.collector.replay = None
        try:
            collector = pickle.dumps(self.collector)
        except Exception:  # noqa: BLE001 - e.g. simulators holding GL contexts or subprocesses
            collector = None
        finally:
            self.collector.replay = self.replay
        buf = io.BytesIO()
        torch.save(self.carry, buf)
        return {
            "replay": self.replay.state_dict(),
            "collector": collector,
            "env_steps": self.collector.env_steps,
            "episodes_total": self.collector.episodes,
            "restarts": self.collector.restarts,
            "carry": buf.getvalue(),
            "pending": {"episodes": list(self.episodes), "goal_stats": list(self.goal_stats)},
            "random": self.random.rng.bit_generator.state,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                    "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.replay.load_state_dict(state["replay"])
        if state["collector"] is not None:
            self.envs.close()
            self.collector = pickle.loads(state["collector"])
            self.collector.replay = self.replay
            vars(self.collector).setdefault("restarts", 0)  # collectors pickled before it counted
            self.envs = self.collector.envs
            # On the CPU: the module moves it to its device (a run may resume on another device).
            self.carry = torch.load(io.BytesIO(state["carry"]), map_location="cpu", weights_only=False)
        else:  # envs start fresh episodes; the counters continue
            self.collector.env_steps = state["env_steps"]
            self.collector.episodes = state["episodes_total"]
            self.collector.restarts = state.get("restarts", 0)  # absent in older stream files
            self.carry = None
        self.episodes = list(state["pending"]["episodes"])
        self.goal_stats.clear()
        self.goal_stats.extend(state["pending"]["goal_stats"])
        self.random.rng.bit_generator.state = state["random"]
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        cuda = state["rng"].get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)

    def close(self) -> None:
        self.envs.close()
