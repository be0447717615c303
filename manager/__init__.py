"""The manager: goal autoencoder, code-space policy, exploration reward, abstract trajectory."""
from manager.goal_autoencoder import GoalAutoencoder
from manager.manager import Manager, abstract_cont, abstract_rewards

__all__ = ["GoalAutoencoder", "Manager", "abstract_rewards", "abstract_cont"]
