"""Runs: create or resume a run directory and train, evaluate a checkpoint.

A run directory holds:
    config.yaml            the resolved configuration
    logs/version_<n>/metrics.csv  metrics rows of each training session (Lightning CSVLogger)
    tensorboard/version_0/ the same scalars at env steps, plus goal strips and open-loop
                           predictions as images (`tensorboard --logdir runs`)
    episodes.csv           one row per finished training episode
    evals.csv              mode-action evaluations every train.eval_every env steps
    maze.txt               the layout of a `maze:PATH` world (the run reads this copy)
    after_checkpoint/      history rows written after the checkpoint a resume started from
    checkpoints/           the newest train.keep_checkpoints atomic checkpoints, last.ckpt the
                           newest, with their stream files (see director.checkpoints)
    replay/rank<r>/        episodes as compressed .npz files
    strips/                episode strips recorded every train.record_every env steps
    summary.json           the end-of-run summary: evaluation next to a random policy, training
                           time, next commands (or, for a stopped run, how to continue it)
"""
from __future__ import annotations

import contextlib
import csv
import ctypes
import datetime
import json
import os
import platform
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

import worlds
from director import checkpoints, history
from director import config as config_lib
from director.config import Config, EnvConfig
from director.errors import CheckpointError, ConfigError
from director.module import DirectorModule, RunCheckpoint, resolve_precision

EVAL_SEED = 12345  # env and policy seed of end-of-run evaluations (as `director eval`'s default)


MAZE_PREFIX, LAYOUT_FILE = "maze:", "maze.txt"


def default_run_dir(cfg: Config) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    world = cfg.env.world
    if world.startswith(MAZE_PREFIX):
        world = "maze-" + Path(world[len(MAZE_PREFIX):]).stem
    return Path("runs") / f"{world.replace(':', '_').replace('/', '_')}-{cfg.agent}-{stamp}"


def use_run_layout(cfg: Config, run_dir: Path, new_run: bool) -> None:
    """Point a `maze:PATH` world at RUN_DIR/maze.txt, so that eval, goals and --resume work
    after PATH (or the run directory) moves: a new run copies PATH there first."""
    if not cfg.env.world.startswith(MAZE_PREFIX):
        return
    kept = run_dir.resolve() / LAYOUT_FILE
    if new_run:
        source = Path(cfg.env.world[len(MAZE_PREFIX):])
        if not (kept.exists() and source.exists() and kept.samefile(source)):
            tmp = kept.with_name(kept.name + f".tmp{os.getpid()}")
            shutil.copyfile(source, tmp)
            os.replace(tmp, kept)
    if kept.exists():
        cfg.env.world = MAZE_PREFIX + str(kept)


class EnvStepTensorBoard(TensorBoardLogger):
    """Scalars at the run's env steps (the `env_steps` metric every row carries), the axis of
    the goal strips and open-loop images too: one purge step serves both."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if "env_steps" in metrics:
            step = int(metrics["env_steps"])
        super().log_metrics(metrics, step)


def _loggers(run_dir: Path, purge_step: int | None = None) -> list:
    """CSV (one file per training session, logs/version_<n>/metrics.csv at Lightning's
    logger steps: resuming never overwrites) and TensorBoard (one event folder for the whole
    run, scalars and images at env steps; events from env step `purge_step` on, written after
    the checkpoint a resume starts from, TensorBoard hides)."""
    return [CSVLogger(save_dir=str(run_dir), name="logs"),
            EnvStepTensorBoard(save_dir=str(run_dir), name="tensorboard", version=0, purge_step=purge_step,
                               default_hp_metric=False)]


def append_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    """Append `rows` (keys beyond `fields` ignored) to the CSV `path`, with a header when new."""
    exists = path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if not exists:
            writer.writeheader()
        writer.writerows(rows)


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
        append_csv(self.path, self.FIELDS, new)
        self.written = len(module.episode_log)


class GoalRecorder(L.Callback):
    """Every `every` env steps (`train.record_every`, off when 0) and when training ends:
    the world model's open-loop predictions on replay chunks, and for Director agents an
    episode strip (observations over decoded goals, also saved to RUN_DIR/strips/), as
    TensorBoard images at step = env steps (rank 0).

    Both draw from private RNGs seeded with the env step (the strip: a fresh env and
    `goal_vis.private_rng`; the chunks: a private replay sampler), so recording never changes
    what training samples next and a resumed run continues exactly."""

    CHUNKS = 2  # replay chunks in the open-loop image

    def __init__(self, every: int, folder: Path):
        self.every, self.folder, self._last = every, folder, 0

    def on_train_start(self, trainer: L.Trainer, module: DirectorModule) -> None:
        self._last = (module.stream.env_steps if module.stream else 0) * trainer.world_size // self.every

    def on_train_batch_end(self, trainer: L.Trainer, module: DirectorModule, *args: Any) -> None:
        if module.stream is None:
            return
        mark = module.stream.env_steps // self.every
        if mark > self._last:
            self._last = mark
            self.record(trainer, module)

    def on_train_end(self, trainer: L.Trainer, module: DirectorModule) -> None:
        if module.stream is not None:
            self.record(trainer, module)

    def record(self, trainer: L.Trainer, module: DirectorModule) -> dict[str, np.ndarray]:
        """Render and log the images of now; returns them by TensorBoard tag."""
        if not trainer.is_global_zero:
            return {}
        from goal_vis.episode import agent_strip, private_rng
        from PIL import Image
        step = module.stream.env_steps
        images = {}
        if module.cfg.agent == "director":
            images["goals/strip"] = agent_strip(module, steps=4 * module.cfg.manager.goal_every, seed=step)
            self.folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images["goals/strip"]).save(self.folder / f"strip-{step:09d}.png")
        chunks = replay_chunks(module.stream.replay, self.CHUNKS, seed=step)
        if chunks is not None:
            from goal_vis.rollouts import open_loop_sheet
            with private_rng(step, module.device):
                images["world_model/open_loop"] = open_loop_sheet(module.agent, chunks)[0]
        from lightning.pytorch.loggers import TensorBoardLogger
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                for tag, image in images.items():
                    logger.experiment.add_image(tag, image, global_step=step, dataformats="HWC")
                logger.experiment.flush()
        return images


def replay_chunks(replay: Any, n: int, seed: int) -> dict[str, np.ndarray] | None:
    """`n` replay chunks drawn with a private sampler seeded with `seed` (the replay's own
    sampler is left as it was), or None while no stream holds a whole chunk."""
    own, replay.rng = replay.rng, np.random.default_rng(seed)
    try:
        return replay.sample_within_episodes(n)
    except ValueError:
        return None
    finally:
        replay.rng = own


class Evaluator(L.Callback):
    """Every `train.eval_every` env steps, runs `train.eval_episodes` episodes with the worker's
    mode action on fixed env seeds (the same each time, apart from the training envs) and
    appends {env_steps, updates, return, success, length} to RUN_DIR/evals.csv and the logged
    metrics as eval/*. Its RNG is private (see `evaluate`), so training is unaffected (rank 0)."""

    FIELDS = ["env_steps", "updates", "episodes", "return", "success", "length"]

    def __init__(self, every: int, path: Path):
        self.every, self.path, self._last = every, path, 0

    def on_train_start(self, trainer: L.Trainer, module: DirectorModule) -> None:
        self._last = (module.stream.env_steps if module.stream else 0) * trainer.world_size // self.every

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
        append_csv(self.path, self.FIELDS, [row])
        for logger in trainer.loggers:
            logger.log_metrics({"eval/return": result["return"], "eval/success": result["success"]},
                               step=trainer.global_step)


def make_trainer(cfg: Config, run_dir: Path, callbacks: list, progress: bool = True,
                 epochs: int = 1, purge_step: int | None = None) -> L.Trainer:
    strategy = "ddp" if cfg.train.devices > 1 else "auto"
    precision = resolve_precision(cfg.train.precision, cfg.train.accelerator)
    return L.Trainer(
        accelerator=cfg.train.accelerator, devices=cfg.train.devices, strategy=strategy,
        precision=precision, max_epochs=epochs, logger=_loggers(run_dir, purge_step), callbacks=callbacks,
        enable_progress_bar=progress, enable_model_summary=False,
        log_every_n_steps=max(1, cfg.train.log_every // cfg.replay.train_every),
        enable_checkpointing=False, num_sanity_val_steps=0, deterministic=False)


def check_world(cfg: Config) -> None:
    """Make the configured world once, so that a bad world or env.options fails before a run starts."""
    try:
        worlds.make(cfg.env.world, **cfg.env.world_options()).close()
    except worlds.WorldError as e:
        if not cfg.env.options:
            raise
        raise ConfigError(f"{e} (env.options={cfg.env.options}: set an option with "
                          "env.options.NAME=VALUE, or remove it.)") from None


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks of up to 32 MiB for reuse instead of unmapping them.

    A CPU update allocates and frees tens of MB of activations; by default glibc returns the
    large blocks to the OS and the next update faults their pages in again, zeroed: on 625
    `default` updates about 3.3-4.3M minor page faults, 0.3M with the settings below, and
    shorter training (README, "Speed"). The cost: the process keeps its peak heap. Only glibc;
    elsewhere a no-op (returns False)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # <malloc.h>
    return all(libc.mallopt(option, value) == 1 for option, value in (
        (m_mmap_threshold, 32 << 20),  # glibc's maximum on 64-bit
        (m_trim_threshold, 1 << 30),
        (m_top_pad, 64 << 20)))


def train(cfg: Config | None = None, resume: str | Path | None = None, progress: bool = True,
          overrides: list[str] | tuple[str, ...] = (), preset: str | None = None,
          skip_corrupt_replay: bool = False) -> Path:
    """Train a new run (cfg) or continue one (resume=RUN_DIR, with optional `train.*`
    overrides such as a larger train.steps). Prints one start line, the progress bar (unless
    `progress=False`) and the summary (`run_summary`, also RUN_DIR/summary.json); `preset`
    only names the preset in the start line. Returns the run directory.

    A resume first moves the history written after the checkpoint aside (`director.history`).
    `skip_corrupt_replay`: continue without replay files that are corrupt or missing (named
    on stderr; the resume is then no longer exact) instead of stopping."""
    from director import console
    console.quiet_console()
    ckpt_path, epochs, resumed_at, purge_step = None, 1, None, None
    # DDP: Lightning re-launches this command for ranks > 0; only rank 0 touches shared files.
    rank_zero = os.environ.get("LOCAL_RANK", "0") == "0"
    if resume is not None:
        if checkpoints.resolve(resume)[1] is None:
            raise CheckpointError(f"--resume needs a run directory (or its checkpoints/last.ckpt), got {resume}.")
        ckpt_path, ckpt, run_dir = checkpoints.load(resume, streams=True)
        cfg = config_lib.apply_overrides(config_lib.from_dict(ckpt["director"]["config"]), overrides, only="train.")
        cfg.train.run_dir = str(run_dir)
        use_run_layout(cfg, run_dir, new_run=False)
        epochs = int(ckpt.get("epoch", 0)) + 1  # a finished run continues in a new epoch
        resumed_at = int(ckpt["director"]["env_steps"]) * cfg.train.devices
        step = history.checkpoint_step(ckpt)
        purge_step = resumed_at + 1
        if rank_zero:
            history.supersede(run_dir, len(ckpt["director"]["episode_log"]), step, resumed_at)
        del ckpt
    else:
        assert cfg is not None
        # Ranks > 0 of a DDP run inherit the run directory.
        shared = None if rank_zero else os.environ.get("DIRECTOR_RUN_DIR")
        run_dir = Path(shared or cfg.train.run_dir or default_run_dir(cfg))
        os.environ["DIRECTOR_RUN_DIR"] = str(run_dir)
        if shared is None and (run_dir / "checkpoints" / "last.ckpt").exists():
            raise ConfigError(f"The run directory {run_dir} already holds a run. Continue it with "
                              f"`director train --resume {run_dir}`, or choose another train.run_dir.")
        if rank_zero:  # a run that stopped before its first checkpoint starts over: so does its history
            history.supersede(run_dir, 0, -1)
    check_world(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume is None:
        use_run_layout(cfg, run_dir, new_run=True)
    config_lib.save(cfg, run_dir / "config.yaml")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    keep_freed_memory()
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    module = DirectorModule(cfg, run_dir=run_dir)
    module.skip_corrupt_replay = skip_corrupt_replay
    callbacks: list = [RunCheckpoint(), EpisodeWriter(run_dir / "episodes.csv")]
    if cfg.train.eval_every:
        callbacks.append(Evaluator(cfg.train.eval_every, run_dir / "evals.csv"))
    if cfg.train.record_every:
        callbacks.append(GoalRecorder(cfg.train.record_every, run_dir / "strips"))
    if progress:
        callbacks.append(console.ProgressBar())
    trainer = make_trainer(cfg, run_dir, callbacks, progress, epochs, purge_step)
    if trainer.is_global_zero:
        print(console.start_line(cfg, trainer, run_dir, preset, resumed_at), flush=True)
    ctrl_c: list[bool] = []
    try:
        with _ctrl_c_as_sigterm(trainer, ctrl_c):
            trainer.fit(module, ckpt_path=str(ckpt_path) if ckpt_path else None)
    except (KeyboardInterrupt, SystemExit) as stop:  # Lightning ends SIGTERM with SIGTERMException, a 2nd Ctrl-C with sys.exit(1)
        why = "SIGTERM" if isinstance(stop, SIGTERMException) and not ctrl_c else "Ctrl-C"
        if trainer.is_global_zero and trainer.interrupted and module.stream is not None:
            _finish(run_summary(module, run_dir, interrupted=why), run_dir)
        if why == "Ctrl-C":
            raise SystemExit(1) from None
        raise
    finally:
        if module.stream is not None:
            module.stream.close()
    if trainer.is_global_zero:
        _finish(run_summary(module, run_dir, episodes=cfg.train.eval_episodes), run_dir)
    return run_dir


@contextlib.contextmanager
def _ctrl_c_as_sigterm(trainer: L.Trainer, pressed: list[bool]):
    """While training, a first Ctrl-C (SIGINT) asks for the same graceful stop as SIGTERM: the
    batch finishes, the checkpoint is written, the run ends. (A KeyboardInterrupt raised at an
    arbitrary point can be lost, e.g. inside a finaliser, and the run goes on.) A second Ctrl-C
    interrupts at once, as Python's default does. Main thread only; `pressed` records it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if pressed:
            raise KeyboardInterrupt
        pressed.append(True)
        trainer._signal_connector.received_sigterm = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_summary(module: DirectorModule, run_dir: Path, episodes: int = 0,
                interrupted: str | None = None) -> dict[str, Any]:
    """What a finished run did: env steps, updates, training seconds, and (unless
    `interrupted`) `episodes` evaluation episodes with the mode action next to a uniform
    random policy on the same world and seeds (`EVAL_SEED`), plus the next commands."""
    cfg = module.cfg
    summary: dict[str, Any] = {
        "run_dir": str(run_dir), "world": cfg.env.world, "agent": cfg.agent,
        "env_steps": module.stream.env_steps * module.trainer.world_size if module.stream else 0,
        "updates": int(module.agent.updates), "train_seconds": round(module.elapsed_train_seconds(), 1)}
    if interrupted:
        return {**summary, "interrupted": interrupted, "next": [f"director train --resume {run_dir}"]}
    if episodes:
        module.eval()
        summary["eval"] = {**evaluate(module, episodes, EVAL_SEED), "action": "mode", "seed": EVAL_SEED}
        summary["random"] = {**evaluate_random(cfg.env, episodes, EVAL_SEED), "seed": EVAL_SEED}
    summary["next"] = [f"director goals {run_dir}", f"director eval {run_dir} --episodes {max(episodes, 10)}",
                       f"tensorboard --logdir {run_dir.parent}",
                       f"director train --resume {run_dir} train.steps={2 * cfg.train.steps}"]
    return summary


def _finish(summary: dict[str, Any], run_dir: Path) -> None:
    """Write RUN_DIR/summary.json (atomically) and print the summary."""
    from director import console
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, run_dir / "summary.json")
    print(console.summary_text(summary), flush=True)


def load_module(target: str | Path, world: str | None = None) -> tuple[DirectorModule, dict]:
    """Load a trained DirectorModule from RUN_DIR or a checkpoint file (CPU, eval mode)."""
    ckpt_path, ckpt, run_dir = checkpoints.load(target)
    info = ckpt["director"]
    cfg = config_lib.from_dict(info["config"])
    if run_dir is not None:
        use_run_layout(cfg, run_dir, new_run=False)
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
    return module, {**info, "checkpoint": str(ckpt_path)}


def run_episodes(env: EnvConfig, policy, episodes: int, seed: int,
                 max_steps: int | None = None) -> list[dict]:
    """Step min(env.num_envs, episodes) envs of the configured world with `policy(obs) ->
    actions (N, A)` until `episodes` episodes finished (or `max_steps` vector steps); returns
    their Collector stats."""
    from director.collect import Collector
    envs = worlds.make_vector(env.world, min(env.num_envs, episodes), seed=seed, **env.world_options())
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
        return summarize(run_episodes(cfg.env, policy, episodes, seed, max_steps))


def evaluate_random(env: EnvConfig, episodes: int = 10, seed: int = EVAL_SEED) -> dict[str, float]:
    """`evaluate` for a uniform random policy on the same world, options and env seeds."""
    from director.collect import RandomPolicy
    probe = worlds.make(env.world, **env.world_options())
    policy = RandomPolicy(probe.action_space, seed)
    probe.close()
    return summarize(run_episodes(env, policy, episodes, seed))
