"""Director: hierarchical, goal-conditioned reinforcement learning from pixels.

    from director import DirectorModule, Agent, load_config
    cfg = load_config("default", ["env.world=maze-m"])   # -> director.config.Config
    module = DirectorModule(cfg, run_dir="runs/mine")     # a LightningModule

Public names (imported lazily on first use: `manager` and `worker` import `director.config`,
so importing the agent here eagerly would be circular):
    load_config(preset, overrides) -> Config       director.config.load
    Agent                                         world model + manager + worker (plain PyTorch)
    DirectorModule, RunCheckpoint                 the agent as a LightningModule, its checkpoints
    train, evaluate, load_module                  director.run: runs, evaluation, loading a run
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_config": ("director.config", "load"),
    "Config": ("director.config", "Config"),
    "Agent": ("director.agent", "Agent"),
    "DirectorModule": ("director.module", "DirectorModule"),
    "RunCheckpoint": ("director.module", "RunCheckpoint"),
    "train": ("director.run", "train"),
    "evaluate": ("director.run", "evaluate"),
    "load_module": ("director.run", "load_module"),
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'director' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
