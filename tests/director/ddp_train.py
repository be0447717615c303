"""`director train ARGS...` that also saves each rank's parameters when training ends, for the
DDP test (Lightning relaunches this same script for rank 1)."""
from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch

import director.run as run
from director.cli import main


class SaveParams(L.Callback):
    def on_train_end(self, trainer: L.Trainer, module) -> None:
        params = {k: v.detach().cpu().clone() for k, v in module.agent.named_parameters()}
        torch.save(params, Path(module.run_dir) / f"params-rank{trainer.global_rank}.pt")


_make_trainer = run.make_trainer


def make_trainer(cfg, run_dir, callbacks, *args, **kwargs):
    return _make_trainer(cfg, run_dir, [*callbacks, SaveParams()], *args, **kwargs)


if __name__ == "__main__":
    run.make_trainer = make_trainer
    sys.exit(main(["train", *sys.argv[1:]]))
