"""Runs: create or resume a run directory and train, evaluate a checkpoint.

A run directory holds:
    config.yaml            the resolved configuration
    logs/version_<n>/metrics.csv  metrics rows of each training session (Lightning CSVLogger);
                           tensorboard/ when tensorboard is installed
    episodes.csv           one row per finished training episode
    evals.csv              mode-action evaluations every train.eval_every env steps
    checkpoints/last.ckpt  the latest atomic checkpoint (+ stream-rank<r>-<tag>.pkl files)
    replay/rank<r>/        episodes as compressed .npz files
    strips/                episode strips recorded every train.record_every env steps
"""
from __future__ import annotations

import csv
import datetime
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

import worlds
from director import config as config_lib
from director.config import Config
from director.errors import CheckpointError, ConfigError
from director.module import DirectorModule, RunCheckpoint


def default_run_dir(cfg: Config) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.env.world.replace(':', '_').replace('/', '_')}-{cfg.agent}-{stamp}"


def _loggers(run_dir: Path) -> list:
    from lightning.pytorch.loggers import CSVLogger
    # One CSV per training session (logs/version_<n>/metrics.csv): resuming never overwrites.
    loggers: list = [CSVLogger(save_dir=str(run_dir), name="logs")]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger
        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard"))
    except ImportError:
        pass
    return loggers


class EpisodeWriter(L.Callback):
    """Appends each finished training episode to RUN_DIR/episodes.csv (rank 0)."""

    FIELDS = ["env_steps", "return", "length", "success", "restarted", "worker", "cells", "coverage"]

    def __init__(self, path: Path):
        self.path = path
        self.written = 0

    def on_train_start(self, trainer: L.Trainer, module: DirectorModule) -> None:
        self.written = len(module.episode_log)

    def on_train_batch_end(self, trainer: L.Trainer, module: DirectorModule, *args: Any) -> None:
        if not trainer.is_global_zero:
            return
        new = module.episode_log[self.written:]
        if not new:
            return
        exists = self.path.exists()
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.FIELDS, extrasaction="ignore")
            if not exists:
                writer.writeheader()
            writer.writerows(new)
        self.written = len(module.episode_log)


class GoalRecorder(L.Callback):
    """Every `every` env steps, saves an episode strip (observations over decoded goals) to
    RUN_DIR/strips/ (rank 0; Director agents only; `train.record_every`, off when 0)."""

    def __init__(self, every: int, folder: Path):
        self.every, self.folder, self._last = every, folder, 0

    def on_train_batch_end(self, trainer: L.Trainer, module: DirectorModule, *args: Any) -> None:
        if not trainer.is_global_zero or module.stream is None:
            return
        mark = module.stream.env_steps // self.every
        if mark > self._last:
            self._last = mark
            from goal_vis import record_strip
            record_strip(module, self.folder / f"strip-{module.stream.env_steps:09d}.png",
                         steps=4 * module.cfg.manager.goal_every, seed=mark)


class Evaluator(L.Callback):
    """Every `train.eval_every` env steps, runs `train.eval_episodes` episodes with the worker's
    mode action on fixed env seeds (the same each time, apart from the training envs) and
    appends {env_steps, updates, return, success, length} to RUN_DIR/evals.csv and the logged
    metrics as eval/*. Its RNG is private (see `evaluate`), so training is unaffected (rank 0)."""

    FIELDS = ["env_steps", "updates", "episodes", "return", "success", "length"]

    def __init__(self, every: int, path: Path):
        self.every, self.path, self._last = every, path, 0

    def on_train_start(self, trainer: L.Trainer, module: DirectorModule) -> None:
        self._last = (module.stream.env_steps if module.stream else 0) // self.every

    def on_train_batch_end(self, trainer: L.Trainer, module: DirectorModule, *args: Any) -> None:
        if not trainer.is_global_zero or module.stream is None:
            return
        mark = module.stream.env_steps * trainer.world_size // self.every
        if mark <= self._last:
            return
        self._last = mark
        result = evaluate(module, episodes=module.cfg.train.eval_episodes, seed=EVAL_SEED, mode="eval")
        row = {"env_steps": module.stream.env_steps * trainer.world_size,
               "updates": int(module.agent.updates), **result}
        exists = self.path.exists()
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.FIELDS, extrasaction="ignore")
            if not exists:
                writer.writeheader()
            writer.writerow(row)
        for logger in trainer.loggers:
            logger.log_metrics({"eval/return": result["return"], "eval/success": result["success"]},
                               step=trainer.global_step)


def load_checkpoint_info(path: Path) -> dict:
    """The 'director' entry of a checkpoint, with clear errors for missing/corrupt files."""
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}. Pass a run directory that contains "
                              "checkpoints/last.ckpt, or a .ckpt file.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"The checkpoint {path} is corrupt or unreadable ({type(e).__name__}). "
                              "Use an earlier copy or start a new run; nothing was changed.") from None
    if not isinstance(ckpt, dict) or "director" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a Director checkpoint. Pass checkpoints/last.ckpt of a run.")
    return ckpt


def resolve_checkpoint(target: str | Path) -> tuple[Path, Path | None]:
    """RUN_DIR or checkpoint file -> (checkpoint path, run dir or None)."""
    target = Path(target)
    if target.is_dir():
        return target / "checkpoints" / "last.ckpt", target
    if target.parent.name == "checkpoints":
        return target, target.parent.parent
    return target, None


def make_trainer(cfg: Config, run_dir: Path, callbacks: list, progress: bool = True,
                 epochs: int = 1) -> L.Trainer:
    strategy = "ddp" if cfg.train.devices > 1 else "auto"
    return L.Trainer(
        accelerator=cfg.train.accelerator, devices=cfg.train.devices, strategy=strategy,
        precision=cfg.train.precision, max_epochs=epochs, logger=_loggers(run_dir), callbacks=callbacks,
        enable_progress_bar=progress, enable_model_summary=False,
        log_every_n_steps=max(1, cfg.train.log_every // cfg.replay.train_every),
        enable_checkpointing=False, num_sanity_val_steps=0, deterministic=False)


def train(cfg: Config | None = None, resume: str | Path | None = None, progress: bool = True,
          overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """Train a new run (cfg) or continue one (resume=RUN_DIR, with optional `train.*`
    overrides such as a larger train.steps). Returns the run directory."""
    ckpt_path, epochs = None, 1
    if resume is not None:
        ckpt_path, run_dir = resolve_checkpoint(resume)
        if run_dir is None:
            raise CheckpointError(f"--resume needs a run directory (or its checkpoints/last.ckpt), got {resume}.")
        ckpt = load_checkpoint_info(ckpt_path)
        cfg = config_lib.apply_overrides(config_lib.from_dict(ckpt["director"]["config"]), overrides, only="train.")
        cfg.train.run_dir = str(run_dir)
        epochs = int(ckpt.get("epoch", 0)) + 1  # a finished run continues in a new epoch
        del ckpt
    else:
        assert cfg is not None
        # DDP: Lightning re-launches this command for ranks > 0; they inherit the run directory.
        shared = os.environ.get("DIRECTOR_RUN_DIR") if os.environ.get("LOCAL_RANK", "0") != "0" else None
        run_dir = Path(shared or cfg.train.run_dir or default_run_dir(cfg))
        os.environ["DIRECTOR_RUN_DIR"] = str(run_dir)
        if shared is None and (run_dir / "checkpoints" / "last.ckpt").exists():
            raise ConfigError(f"The run directory {run_dir} already holds a run. Continue it with "
                              f"`director train --resume {run_dir}`, or choose another train.run_dir.")
    worlds.make(cfg.env.world, size=cfg.env.size).close()  # fail early on a bad world
    run_dir.mkdir(parents=True, exist_ok=True)
    config_lib.save(cfg, run_dir / "config.yaml")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    module = DirectorModule(cfg, run_dir=run_dir)
    callbacks: list = [RunCheckpoint(), EpisodeWriter(run_dir / "episodes.csv")]
    if cfg.train.eval_every:
        callbacks.append(Evaluator(cfg.train.eval_every, run_dir / "evals.csv"))
    if cfg.train.record_every and cfg.agent == "director":
        callbacks.append(GoalRecorder(cfg.train.record_every, run_dir / "strips"))
    trainer = make_trainer(cfg, run_dir, callbacks, progress, epochs)
    trainer.fit(module, ckpt_path=str(ckpt_path) if ckpt_path else None)
    if module.stream is not None:
        module.stream.close()
    return run_dir


def load_module(target: str | Path, world: str | None = None) -> tuple[DirectorModule, dict]:
    """Load a trained DirectorModule from RUN_DIR or a checkpoint file (CPU, eval mode)."""
    ckpt_path, run_dir = resolve_checkpoint(target)
    ckpt = load_checkpoint_info(ckpt_path)
    info = ckpt["director"]
    cfg = config_lib.from_dict(info["config"])
    if world is not None and world != cfg.env.world:
        from director.module import world_spec
        other = config_lib.from_dict({**config_lib.to_dict(cfg), "env": {**config_lib.to_dict(cfg)["env"], "world": world}})
        spec = world_spec(other)
        if spec != info["spec"]:
            raise CheckpointError(
                f"World {world!r} does not match the checkpoint: it has observations/actions "
                f"{spec}, the agent was trained on {cfg.env.world!r} with {info['spec']}. Evaluate "
                "on a world with the same image size and action space.")
        cfg = other
    module = DirectorModule(cfg, run_dir=None, spec=info["spec"])
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"The checkpoint {ckpt_path} does not match its configuration ({e}). "
                              "It may come from another version of Director.") from None
    module.eval()
    return module, info


def run_episodes(world: str, size: int, num_envs: int, policy, episodes: int, seed: int,
                 max_steps: int | None = None) -> list[dict]:
    """Step `num_envs` envs of `world` with `policy(obs) -> actions (N, A)` until `episodes`
    episodes finished (or `max_steps` vector steps); returns their Collector stats."""
    from director.collect import Collector
    envs = worlds.make_vector(world, num_envs, size=size, seed=seed)
    collector = Collector(envs, None)
    collector.reset(seed=seed)
    done, steps = [], 0
    try:
        while len(done) < episodes and (max_steps is None or steps < max_steps):
            done += collector.step(policy)
            steps += 1
    finally:
        envs.close()
    return done[:episodes]


def summarize(done: list[dict]) -> dict[str, float]:
    """Mean return, success and length of finished episodes."""
    mean = lambda key: float(np.mean([e[key] for e in done])) if done else float("nan")  # noqa: E731
    return {"episodes": len(done), "return": mean("return"), "success": mean("success"), "length": mean("length")}


EVAL_SEED = 12345  # env seeds of evaluations: never those of training (train.seed + rank)


def evaluate(module: DirectorModule, episodes: int = 10, seed: int = EVAL_SEED, mode: str = "eval",
             max_steps: int | None = None) -> dict[str, float]:
    """Run full episodes with the worker's mode action (`mode="train"`: sampled); return mean
    return and success rate. `seed` seeds the envs and the policy's sampling (the manager always
    samples) on a private RNG, so the same call gives the same result and leaves the global RNG
    as it was."""
    cfg, carry = module.cfg, None

    def policy(obs: dict[str, np.ndarray]) -> np.ndarray:
        nonlocal carry
        action, carry, _ = module.act(obs, carry, mode)
        return action

    device = module.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return summarize(run_episodes(cfg.env.world, cfg.env.size, min(cfg.env.num_envs, episodes), policy,
                                      episodes, seed, max_steps))
