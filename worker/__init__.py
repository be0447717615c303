"""The goal-conditioned worker: inputs, goal rewards and rollout segments."""
from worker.goal_reward import GOAL_REWARDS, cosine, l2, max_cosine
from worker.worker import Worker

__all__ = ["Worker", "GOAL_REWARDS", "max_cosine", "cosine", "l2"]
