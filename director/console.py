"""What a training run prints: a quiet console, one start line, the progress bar, the summary.

    quiet_console()                    # Lightning's device/tip/AMP lines and known notices off
    print(start_line(cfg, trainer, run_dir, preset="default"))
    Trainer(callbacks=[ProgressBar()]) # env steps out of train.steps, time left, updates/s
    print(summary_text(summary))       # evaluation vs random policy, training time, next commands

Everything here is about the console only; what a run computes lives in `director.run`.
"""
from __future__ import annotations

import collections
import logging
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

from director.config import Config
from director.module import native_bf16

RECENT_EPISODES = 20  # the bar's return and success are means over this many last episodes
RATE_WINDOW = 64  # the bar's updates/s is measured over this many last updates (not the compile)

# Lightning lines and library notices a user cannot act on (each a regex searched in the text).
_QUIET_LOGS = (r"^GPU available: ", r"^TPU available: ", r"💡 Tip", r"Automatic Mixed Precision",
               r"`Trainer.fit` stopped: `max_epochs=\d+` reached", r"^Restor(ing|ed) (all )?states from the checkpoint")
_QUIET_WARNINGS = (".*dataloader_iter.*", ".*LeafSpec.*", ".*weights_only.*", ".*litlogger.*",
                   ".*does not have many workers.*", ".*Experiment logs directory.*",
                   ".*exists and is not empty.*", ".*pytree.*", ".*GPU available but not used.*")


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(re.search(p, text) for p in _QUIET_LOGS)


def quiet_console() -> None:
    """Silence Lightning's device, tip and AMP lines (logged, not warned) and known harmless
    warnings. A GPU left unused is reported by `start_line` instead."""
    for pattern in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    drop = _DropNotices()
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero",
                 "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotices) for f in logger.filters):
            logger.addFilter(drop)
        for handler in logger.handlers:
            if not any(isinstance(f, _DropNotices) for f in handler.filters):
                handler.addFilter(drop)


def start_line(cfg: Config, trainer: L.Trainer, run_dir: Path, preset: str | None = None,
               resumed_at: int | None = None) -> str:
    """One line: world, agent, preset, env-step budget, device and precision, threads, run
    directory, how to stop and resume."""
    device = trainer.strategy.root_device
    where = f"{device.type}" + (f" x{trainer.world_size}" if trainer.world_size > 1 else "")
    what = f"preset {preset}" if preset else "its stored configuration"
    start = f"from {resumed_at:,} " if resumed_at else ""
    precision = str(trainer.precision)
    if cfg.train.precision == "auto":
        precision += " (precision auto)"
    line = (f"director: training {cfg.agent} on {cfg.env.world} ({what}) {start}to {cfg.train.steps:,} "
            f"env steps on {where}, {precision}{', compiled' if cfg.train.compile else ''}, "
            f"{torch.get_num_threads()} threads; run directory {run_dir}. Ctrl-C stops with a "
            f"checkpoint; continue with `director train --resume {run_dir}`.")
    if precision.startswith("bf16") and not native_bf16(device.type):
        line += (f"\ndirector: warning: this {device.type.upper()} has no native bf16 matmuls (AVX512-BF16 or "
                 "AMX on a CPU), so bf16 runs emulated, many times slower than fp32; use "
                 "train.precision=auto (fp32 here) or 32-true.")
    if device.type == "cpu" and torch.cuda.is_available():
        line += "\ndirector: warning: a GPU is available but unused; train on it with train.accelerator=cuda."
    return line


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar counting env steps out of `train.steps` (a resumed run starts
    where it stands), with time left, updates/s and the return and success of the last
    `RECENT_EPISODES` episodes."""

    BAR = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} env steps [{elapsed}<{remaining}{postfix}]"

    def __init__(self) -> None:
        super().__init__(refresh_rate=1)
        self._times: collections.deque[tuple[float, int]] = collections.deque(maxlen=RATE_WINDOW)

    def init_train_tqdm(self) -> Tqdm:
        """The bar at the run's current env step out of train.steps (the stream exists by now)."""
        trainer, module = self.trainer, self.trainer.lightning_module
        world = module.cfg.env.world
        self._times.clear()
        cfg = module.cfg
        first = (f"first {cfg.replay.prefill:,} random env steps"  # the bar moves after the first update
                 f"{', then compiling the update' if cfg.train.compile else ''}")
        return Tqdm(desc=world if len(world) <= 24 else "training", total=cfg.train.steps,
                    initial=self.env_steps(trainer, module), postfix=None if module.agent.updates else first,
                    position=2 * self.process_position, disable=self.is_disabled, leave=True,
                    dynamic_ncols=True, file=sys.stdout, smoothing=0.05, bar_format=self.BAR)

    @staticmethod
    def env_steps(trainer: L.Trainer, module: Any) -> int:
        return module.stream.env_steps * trainer.world_size if module.stream is not None else 0

    def on_train_epoch_start(self, trainer: L.Trainer, module: Any) -> None:
        """One epoch is the whole run: the bar made in `init_train_tqdm` stays as it is."""

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, *args: Any) -> None:
        bar = self.train_progress_bar
        if bar is None or bar.disable:
            return
        bar.n = min(self.env_steps(trainer, module), bar.total or 0)
        bar.set_postfix(self.get_metrics(trainer, module), refresh=True)

    def get_metrics(self, trainer: L.Trainer, module: Any) -> dict[str, str]:
        """updates/s over the last `RATE_WINDOW` updates; return and success of recent episodes."""
        items: dict[str, str] = {}
        self._times.append((time.perf_counter(), int(module.agent.updates)))
        (t0, u0), (t1, u1) = self._times[0], self._times[-1]
        if t1 > t0:
            items["updates/s"] = f"{(u1 - u0) / (t1 - t0):.2f}"
        recent = module.episode_log[-RECENT_EPISODES:]
        if recent:
            items["return"] = f"{np.mean([e['return'] for e in recent]):.1f}"
            items["success"] = f"{np.mean([e['success'] for e in recent]):.2f}"
        return items


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


def summary_text(summary: dict) -> str:
    """The end-of-run (or interrupted-run) summary for the console."""
    run = summary["run_dir"]
    head = (f"director: {summary['env_steps']:,} env steps, {summary['updates']:,} updates in "
            f"{_duration(summary['train_seconds'])} of training ({run}).")
    if summary.get("interrupted"):
        return (f"{head}\ndirector: stopped ({summary['interrupted']}); the checkpoint is saved. Continue with "
                f"`director train --resume {run}`.")
    lines = [head]
    if "eval" in summary:
        ev, rnd = summary["eval"], summary["random"]
        lines.append(f"  {'the agent (mode action)':34s} return {ev['return']:7.1f}   success {ev['success']:.2f}"
                     f"   ({ev['episodes']} episodes, seed {ev['seed']})")
        lines.append(f"  {'uniform random policy, same seeds':34s} return {rnd['return']:7.1f}   "
                     f"success {rnd['success']:.2f}")
    lines.append("next:")
    lines += [f"  {command}" for command in summary["next"]]
    return "\n".join(lines)
