"""Director: hierarchical, goal-conditioned reinforcement learning from pixels.

Public API:
    director.config.load(preset, overrides) -> Config
    director.agent.Agent                     world model + manager + worker (plain PyTorch)
    director.module.DirectorModule           the agent as a LightningModule
    director.run.train / evaluate / load_module
"""
__version__ = "0.1.0"
