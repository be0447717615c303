"""The goal-conditioned worker (ALGORITHM.md §4).

Its input is concat(deter, flatten(stoch), goal) (paper sizes: 1024 + 1024 + 1024 = 3072);
it is rewarded only for reaching the goal (max-cosine by default), plus the task reward
when the `worker.extr` ablation is on. Training uses K-step segments of the joint rollout,
each bootstrapping against its own goal.
"""
from __future__ import annotations

import torch
from torch import nn

from director.actor_critic import ActorCritic
from director.config import WorkerConfig
from director.nets import Concat
from worker.goal_reward import GOAL_REWARDS



class Worker(nn.Module):
    def __init__(self, cfg: WorkerConfig, feat_size: int, deter: int, action: tuple):
        super().__init__()
        self.cfg = cfg
        self.goal_reward_fn = GOAL_REWARDS[cfg.goal_reward]
        self.ac = ActorCritic(feat_size + deter, action, {"goal": cfg.goal, "extr": cfg.extr}, cfg.ac)

    @staticmethod
    def inputs(feat: torch.Tensor, goal: torch.Tensor) -> Concat:
        """(..., F), (..., D) -> (..., F + D), kept as a `Concat`: a goal held over many states
        (broadcast, e.g. (N, 1, D) against (N, T, F)) enters the first layers once per goal."""
        return Concat(feat, goal.to(feat.dtype))

    def goal_reward(self, deter: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return self.goal_reward_fn(deter.float(), goal.float())

    def segments(self, traj: dict, k: int) -> dict:
        """Split a joint rollout into worker segments of K steps.

        traj: feat (N, H+1, F), deter (N, H+1, D), goal (N, H+1, D) = goal active in each state,
        action (N, H+1, A), extr (N, H+1) = predicted task reward (index 0 unused),
        cont (N, H+1). Returns an actor-critic trajectory with batch (H/K * N) and K+1 states
        (its feat a `Concat` of the state features and the goal held over the segment),
        segment i in rows i*N .. (i+1)*N - 1: every state of segment i, its last included, is
        paired with the goal chosen at i*K, and the reward for reaching s_{t+1} is measured
        against that goal, the one active when a_t was taken. `replay` marks the rows of
        segment 0, the only ones that start from a replay state.
        """
        n, horizon = traj["feat"].shape[:2]
        horizon -= 1
        segs = []
        for i in range(horizon // k):
            sl = slice(i * k, (i + 1) * k + 1)
            goal = traj["goal"][:, i * k: i * k + 1]  # (N, 1, D), held over the segment
            rewards = {"goal": self.goal_reward(traj["deter"][:, sl][:, 1:], goal)}
            if "extr" in self.ac.scales:
                rewards["extr"] = traj["extr"][:, sl][:, 1:]
            # Weight of the segment's first state: the chance of having got there.
            weight0 = torch.prod(traj["cont"][:, : i * k + 1], 1)
            segs.append({"feat": self.inputs(traj["feat"][:, sl], goal), "action": traj["action"][:, sl],
                         "rewards": rewards, "cont": traj["cont"][:, sl], "weight0": weight0,
                         "replay": torch.full_like(weight0, float(i == 0))})
        return {
            "feat": Concat.cat([s["feat"] for s in segs]),
            "action": torch.cat([s["action"] for s in segs]),
            "rewards": {key: torch.cat([s["rewards"][key] for s in segs]) for key in segs[0]["rewards"]},
            "cont": torch.cat([s["cont"] for s in segs]),
            "weight0": torch.cat([s["weight0"] for s in segs]),
            "replay": torch.cat([s["replay"] for s in segs]),
        }
