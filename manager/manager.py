"""The manager (ALGORITHM.md §3): a policy over goal codes acting every K steps.

It is trained on the abstract trajectory of the joint rollout, the states at t = 0, K, 2K,
with two critics: the task reward (extr) and the goal autoencoder's exploration bonus (expl).
"""
from __future__ import annotations

import torch
from torch import nn

from director.actor_critic import ActorCritic
from director.config import ManagerConfig


def abstract_rewards(reward: torch.Tensor, cont: torch.Tensor, k: int) -> torch.Tensor:
    """Continuation-weighted mean of each block of K step rewards.

    reward (N, H+1) with reward[:, t] earned on reaching s_t (index 0 unused), cont (N, H+1)
    -> (N, H/K): block j = mean over t in (jK, (j+1)K] of w_t * reward_t, where
    w_t = prod_{jK < i < t} cont_i is the chance that the episode still ran when a_{t-1} was
    taken. The reward of reaching a terminal state counts (as in the step-level returns);
    rewards after it in the block do not, and later blocks are cut by `abstract_cont`.
    """
    n, horizon = reward.shape[0], reward.shape[1] - 1
    rew = reward[:, 1:].reshape(n, horizon // k, k)
    before = cont[:, 1:].reshape(n, horizon // k, k)[..., :-1]  # cont of s_{jK+1} .. s_{(j+1)K-1}
    weight = torch.cumprod(torch.cat([torch.ones_like(before[..., :1]), before], -1), -1)
    return (rew * weight).mean(-1)


def abstract_cont(cont: torch.Tensor, k: int) -> torch.Tensor:
    """Continuation of the abstract states s_0, s_K, ...: (N, H+1) -> (N, H/K + 1); the
    abstract continuation of s_{jK} is the product of the step continuations of its block."""
    n, horizon = cont.shape[0], cont.shape[1] - 1
    blocks = cont[:, 1:].reshape(n, horizon // k, k).prod(-1)
    return torch.cat([cont[:, :1], blocks], 1)


class Manager(nn.Module):
    def __init__(self, cfg: ManagerConfig, feat_size: int, code_vars: int, code_classes: int):
        super().__init__()
        self.cfg = cfg
        self.ac = ActorCritic(feat_size, ("discrete", code_vars, code_classes),
                              {"extr": cfg.extr, "expl": cfg.expl}, cfg.ac, {"expl": cfg.expl_min_std})

    def abstract_trajectory(self, traj: dict) -> dict:
        """traj: feat (N, H+1, F), code (N, H+1, V*C) = code active in each state,
        extr and expl (N, H+1) step rewards, cont (N, H+1) -> actor-critic trajectory over the
        states s_0, s_K, ..., s_H with one reward per block."""
        k = self.cfg.goal_every
        idx = torch.arange(0, traj["feat"].shape[1], k, device=traj["feat"].device)
        code = traj["code"][:, idx]
        code = torch.cat([code[:, :-1], torch.zeros_like(code[:, -1:])], 1)  # no code chosen at s_H
        rewards = {name: abstract_rewards(traj[name], traj["cont"], k) for name in self.ac.scales}
        return {"feat": traj["feat"][:, idx], "action": code, "rewards": rewards,
                "cont": abstract_cont(traj["cont"], k)}
