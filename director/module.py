"""`DirectorModule`: the agent as a LightningModule with manual optimisation.

A thin wrapper: the learning logic lives in `director.agent.Agent` (plain PyTorch). The
module owns the experience stream (envs + replay, one per DDP rank), steps the agent's
optimisers through Lightning (so precision plugins and DDP gradient averaging apply), logs
metrics, and adds to Lightning checkpoints what a run needs to continue exactly: adaptive
coefficients and normalisers (as buffers), counters, and per-rank stream files holding the
replay, envs, acting carry and RNG states.

    module = DirectorModule(director.config.load("default", ["env.world=maze-s"]))
    trainer = lightning.Trainer(max_epochs=1, callbacks=[RunCheckpoint()])
    trainer.fit(module)
"""
from __future__ import annotations

import os
import pickle
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import move_data_to_device, rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

import worlds
from director import checkpoints
from director import config as config_lib
from director.agent import Agent
from director.collect import action_size, is_discrete
from director.config import Config
from director.data import ExperienceStream, to_torch
from director.errors import CheckpointError, UserError


class TrainingDiverged(UserError):
    """Too many consecutive non-finite losses."""

    exit_code = 1


def world_spec(cfg: Config) -> dict[str, Any]:
    """Image shape, action spec and vector sizes of the configured world (one env is built)."""
    env = worlds.make(cfg.env.world, seed=cfg.train.seed, **cfg.env.world_options())
    try:
        space = env.observation_space
        image = tuple(int(x) for x in space["image"].shape)
        vectors = {k: int(np.prod(s.shape)) for k, s in space.spaces.items() if k != "image"}
        act = env.action_space
        action = ("discrete" if is_discrete(act) else "continuous", action_size(act))
    finally:
        env.close()
    return {"image_shape": image, "action": action, "vectors": vectors}


def native_bf16(device_type: str) -> bool:
    """Whether bfloat16 matmuls run natively on this machine's `device_type` ("cpu" or
    "cuda"): a CUDA GPU with bf16 support, or a CPU with AVX512-BF16 or AMX. Elsewhere torch
    emulates them (on an AVX2-only CPU measured about 20 times slower than fp32)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str, accelerator: str) -> str:
    """`train.precision` as Lightning takes it: "auto" is bf16-mixed where bf16 is native
    (`native_bf16`) and 32-true elsewhere; any other value is returned as it is."""
    if precision != "auto":
        return precision
    if accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available()):
        device_type = "cuda"
    else:
        device_type = "cpu" if accelerator == "auto" else accelerator
    return "bf16-mixed" if native_bf16(device_type) else "32-true"


def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile cannot run here (no C++ compiler for the CPU, no Triton for CUDA),
    or None."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton
        return None if has_triton() else "Triton is not installed, which torch.compile needs on CUDA"
    if any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++")):
        return None
    return "no C++ compiler (g++) was found, which torch.compile needs on the CPU"


def _atomic_pickle(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class DirectorModule(L.LightningModule):
    """Director (or the flat / world-model-only baselines) as a LightningModule.

    Args:
        config: a Config, its dict form, or a preset name.
        run_dir: where replay episodes and stream files go; None keeps the replay in memory.
        spec: world spec (image_shape, action, vectors); derived from the world when None.
    """

    def __init__(self, config: Config | dict | str = "default", run_dir: str | Path | None = None,
                 spec: dict | None = None):
        super().__init__()
        if isinstance(config, str):
            config = config_lib.load(config)
        elif isinstance(config, dict):
            config = config_lib.from_dict(config)
        self.cfg = config
        self.spec = spec or world_spec(config)
        self.save_hyperparameters({"config": config_lib.to_dict(config), "spec": self.spec})
        self.agent = Agent(config, self.spec["image_shape"], self.spec["action"], self.spec["vectors"])
        self.automatic_optimization = False
        self.run_dir = Path(run_dir) if run_dir else None
        self.stream: ExperienceStream | None = None
        self._stream_tag: str | None = None  # tag of the stream file of the last checkpoint
        self.skip_corrupt_replay = False  # resume without unreadable replay files (not exact)
        self._stream_state: dict | None = None
        self.bad_updates: torch.Tensor | float = 0.0  # consecutive non-finite losses (device value)
        self.skipped_updates: torch.Tensor | float = 0.0  # all non-finite losses (device value)
        self.episode_log: list[dict] = []  # every finished episode of this rank: {env_steps, return, ...}
        self.train_seconds = 0.0  # wall-clock seconds of training in earlier segments of a resumed run
        self._fit_start: float | None = None

    # ------------------------------------------------------------------ data
    def make_envs(self, seed: int):
        c = self.cfg.env
        return worlds.make_vector(c.world, c.num_envs, seed=seed, asynchronous=c.asynchronous, **c.world_options())

    def act(self, obs: dict[str, np.ndarray], carry: Any, mode: str = "train") -> tuple[np.ndarray, Any, dict]:
        """numpy obs (N, ...) -> numpy actions (N, A), carry, info."""
        action, carry, info = self.agent.policy(to_torch(obs, self.device), carry, mode)
        return action.cpu().numpy(), carry, info

    def train_dataloader(self) -> DataLoader:
        rank, world = (self.global_rank, self.trainer.world_size) if self._trainer else (0, 1)
        replay_dir = self.run_dir / "replay" / f"rank{rank}" if self.run_dir else None
        if self.stream is not None:
            self.stream.close()
        self.stream = ExperienceStream(self.cfg, self.make_envs, self.act, replay_dir, rank, world)
        self.stream.replay.skip_corrupt = self.skip_corrupt_replay
        if self._stream_state is not None:
            self.stream.load_state_dict(self._stream_state)
            self.stream.carry = move_data_to_device(self.stream.carry, self.device)
            self._stream_state = None
        elif replay_dir is not None:
            self.stream.replay.load()  # re-opened run directory without a checkpoint
        # A private generator: creating the loader's iterator must not draw from the global
        # RNG, or a resumed run would sample differently from an uninterrupted one.
        # Pinned batches on CUDA: the copy in training_step is then asynchronous, not a host sync.
        return DataLoader(self.stream, batch_size=None, num_workers=0, generator=torch.Generator(),
                          pin_memory=self.device.type == "cuda")

    # ------------------------------------------------------------------ learning
    def on_fit_start(self) -> None:
        if self.cfg.train.compile and self.agent._loss is None:
            missing = compile_unavailable(self.device)
            if missing:
                rank_zero_warn(f"train.compile=true: {missing}; training runs eager (uncompiled).")
            else:
                rank_zero_info("train.compile=true: the first update compiles the loss and its backward "
                               "(minutes on 2 CPU cores; torch's on-disk cache makes later runs quick).")
                self.agent.compile(self.cfg.train.compile_mode)

    def on_train_start(self) -> None:
        self._fit_start = time.perf_counter()

    def elapsed_train_seconds(self) -> float:
        """Wall-clock seconds spent in `fit` over all segments of the run (resumes included)."""
        now = time.perf_counter() - self._fit_start if self._fit_start is not None else 0.0
        return self.train_seconds + now

    def configure_optimizers(self):
        return self.agent.make_optimizers()

    def training_step(self, dataloader_iter: Iterator) -> None:
        # The step fetches its own batch: Lightning's default one-batch prefetch would collect
        # env steps before the previous update, breaking the collect/update interleaving that an
        # exact resume relies on. StopIteration (the env-step budget is spent) ends the epoch.
        batch, _, _ = next(dataloader_iter)
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        metrics = self.agent.update(batch, optimizers, backward=self.manual_backward, clip=self._clip)
        # Device-side counters of non-finite (skipped) updates: read on logging steps only.
        skipped = 1.0 - metrics["applied"]
        self.bad_updates = (self.bad_updates + skipped) * skipped
        self.skipped_updates = self.skipped_updates + skipped
        self._log_metrics(metrics)

    def _clip(self, optimizer, module: torch.nn.Module, max_norm: float) -> torch.Tensor:
        """Global-norm clip as Lightning's `clip_gradients` does it (on the precision plugin's
        main parameters), which refuses fused optimizers under mixed precision only because
        the grad scaler would unscale after clipping: here a 16-mixed scaler unscales first."""
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is not None:
            scaler.unscale_(optimizer)
        params = self.trainer.precision_plugin.main_params(optimizer)
        return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)

    def _log_metrics(self, metrics: dict[str, torch.Tensor]) -> None:
        stream = self.stream
        world = self.trainer.world_size if self._trainer else 1
        env_steps = stream.env_steps * world if stream else 0
        for ep in stream.pop_episodes() if stream else []:
            self.episode_log.append({"env_steps": env_steps, **ep})
        bar = {"env_steps": float(env_steps)}
        recent = self.episode_log[-20:]
        if recent:
            bar["return"] = float(np.mean([e["return"] for e in recent]))
            bar["success"] = float(np.mean([e["success"] for e in recent]))
        self.log_dict(bar, prog_bar=True, batch_size=1, reduce_fx="max")
        # Device values become floats only on the updates the logger writes (every
        # `log_every_n_steps`, see run.make_trainer): no host sync on the others.
        if self._trainer and not self.trainer._logger_connector.should_update_logs:
            return
        bad = int(self.bad_updates)
        if bad >= self.cfg.train.max_bad_updates:
            raise TrainingDiverged(
                f"The loss was not finite in {bad} consecutive updates (train.max_bad_updates="
                f"{self.cfg.train.max_bad_updates}; last metrics: "
                f"{ {k: round(float(v), 4) for k, v in list(metrics.items())[:6]} }); training "
                "stopped instead of learning from garbage. The last checkpoint is intact: lower "
                "the learning rates (e.g. model.opt.lr) or use 32-true precision, then resume "
                "with --resume.")
        rows = {k: float(v) for k, v in metrics.items() if k != "applied"}
        rows.update(updates=float(self.agent.updates), skipped_updates=float(self.skipped_updates))
        if stream:
            rows["env_restarts"] = float(stream.collector.restarts)  # this rank's envs
        if recent:
            rows["episode_length"] = float(np.mean([e["length"] for e in recent]))
            if "cells" in recent[-1]:  # grid worlds: exploration, distinct cells visited
                rows["episode_cells"] = float(np.mean([e.get("cells", 0) for e in recent]))
                rows["coverage"] = float(max(e.get("coverage", 0) for e in recent))
        if stream and stream.goal_stats:
            rows.update(stream.goal_summary())
        self.log_dict(rows, batch_size=1)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["director"] = {
            "config": config_lib.to_dict(self.cfg), "spec": self.spec,
            "updates": int(self.agent.updates), "skipped_updates": int(self.skipped_updates),
            "env_steps": (self.stream.env_steps if self.stream else 0),
            "stream_tag": self._stream_tag,
            "episode_log": self.episode_log,
            "train_seconds": self.elapsed_train_seconds(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        info = checkpoint.get("director")
        if info is None:
            raise CheckpointError("This checkpoint was not written by Director (no 'director' entry). "
                                  "Pass a checkpoint from a Director run directory.")
        self.skipped_updates = info["skipped_updates"]
        self._stream_tag = info["stream_tag"]
        self.episode_log = list(info["episode_log"])
        self.train_seconds = info.get("train_seconds", 0.0)  # absent in older checkpoints
        tag = info["stream_tag"]
        if tag is not None and self.run_dir is not None:
            rank = self.global_rank if self._trainer else 0
            path = checkpoints.stream_path(self.run_dir / "checkpoints", rank, tag)
            try:
                with open(path, "rb") as f:
                    self._stream_state = pickle.load(f)
            except FileNotFoundError:
                raise CheckpointError(f"The stream file {path} of this checkpoint is missing, so the "
                                      "replay and envs cannot be restored. Restore the file, or start a "
                                      "new run.") from None
            except Exception as e:  # noqa: BLE001
                raise CheckpointError(f"The stream file {path} is unreadable ({type(e).__name__}: {e}). "
                                      "Restore it from a backup, or start a new run.") from None

    def save_stream(self, tag: str) -> None:
        """Write this rank's stream state (replay, envs, carry, RNGs) atomically."""
        if self.run_dir is None or self.stream is None:
            return
        self._stream_tag = tag
        folder = self.run_dir / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_pickle(self.stream.state_dict(), checkpoints.stream_path(folder, self.global_rank, tag))


class RunCheckpoint(L.Callback):
    """Atomic checkpoints of a run: every `every` env steps, on SIGTERM and on Ctrl-C.

    Writes RUN_DIR/checkpoints/update-<updates>.ckpt (via a temporary file and os.replace)
    plus one stream file per rank, then points last.ckpt at it; only then are the checkpoints
    beyond the newest `train.keep_checkpoints` deleted (see `director.checkpoints`)."""

    def __init__(self, every: int | None = None):
        self.every = every
        self._last = 0

    def save(self, trainer: L.Trainer, module: DirectorModule) -> Path | None:
        if module.run_dir is None or module.stream is None:
            return None
        folder = module.run_dir / "checkpoints"
        tag = checkpoints.tag_of(module.agent.updates, module.stream.env_steps)
        module.save_stream(tag)
        trainer.strategy.barrier("director-stream")
        path = checkpoints.checkpoint_path(folder, tag)
        tmp = path.with_name(path.name + ".tmp")
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            os.replace(tmp, path)
            checkpoints.publish(folder, tag)
        trainer.strategy.barrier("director-ckpt")
        checkpoints.prune(folder, module.cfg.train.keep_checkpoints, trainer.global_rank, trainer.is_global_zero)
        return folder / checkpoints.LAST

    def on_train_start(self, trainer: L.Trainer, module: DirectorModule) -> None:
        every = self.every or module.cfg.train.checkpoint_every
        self._last = (module.stream.env_steps if module.stream else 0) // max(1, every // trainer.world_size)

    def on_train_batch_end(self, trainer: L.Trainer, module: DirectorModule, *args: Any) -> None:
        every = max(1, (self.every or module.cfg.train.checkpoint_every) // trainer.world_size)
        mark = module.stream.env_steps // every
        if mark > self._last or trainer.received_sigterm:
            self._last = mark
            self.save(trainer, module)

    def on_train_end(self, trainer: L.Trainer, module: DirectorModule) -> None:
        self.save(trainer, module)

    def on_exception(self, trainer: L.Trainer, module: DirectorModule, exception: BaseException) -> None:
        # Lightning stops on SIGTERM with SIGTERMException at the end of the batch; a signal that
        # arrives after on_train_batch_end checked for it is saved here.
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)) and trainer.world_size == 1:
            self.save(trainer, module)
