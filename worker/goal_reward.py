"""Goal-reaching rewards of the worker (ALGORITHM.md §4).

All take the reached deter state s and the goal g, both (..., D), and return (...).
"""
from __future__ import annotations

import torch

EPS = 1e-12


def max_cosine(state: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """(g . s) / max(|g|, |s|)^2: in [-1, 1], equal to 1 only when s = g; it penalises both
    a direction and a norm mismatch."""
    gnorm = goal.norm(dim=-1) + EPS
    snorm = state.norm(dim=-1) + EPS
    return (goal * state).sum(-1) / torch.maximum(gnorm, snorm) ** 2


def cosine(state: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """Plain cosine similarity: blind to a norm mismatch."""
    return (goal * state).sum(-1) / ((goal.norm(dim=-1) + EPS) * (state.norm(dim=-1) + EPS))


def l2(state: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """Negative Euclidean distance per dimension: 0 only when s = g."""
    return -(goal - state).norm(dim=-1) / goal.shape[-1] ** 0.5


GOAL_REWARDS = {"max_cosine": max_cosine, "cosine": cosine, "l2": l2}
