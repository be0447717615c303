"""Branch a run at one of its checkpoints under changed settings: an ablation from the same state.

    python experiments/branch_run.py RUN_DIR --at ENV_STEPS NEW_DIR key=value [key=value ...]
    director train --resume NEW_DIR train.steps=N

NEW_DIR gets the run as it was at the checkpoint of RUN_DIR taken at ENV_STEPS (see
`checkpoints/update-<updates>-<env steps>.ckpt`; keep more of them with train.keep_checkpoints):
that checkpoint, with the overrides applied to the configuration stored in it, its replay stream
state, and copies of the replay directory, logs and episode history. `director train --resume`
then continues exactly from there (history written after the checkpoint is set aside as on any
resume), under the new settings, the optimisers' learning rates included. RUN_DIR is only read.
Unlike `--resume`, which only takes train.* overrides, any key may change here, except the
network sizes the checkpoint's weights fix.

Used for issue 15's diagnosis: maze-m runs at the point where they had first found the goal,
continued with and without `replay.reward_chunks` (README, "maze-m").
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from director import checkpoints
from director import config as config_lib
from director.errors import CheckpointError, UserError

COPIED_DIRS = ("replay", "logs", "tensorboard", "strips")
COPIED_FILES = ("episodes.csv", "evals.csv")


def checkpoint_at(run_dir: Path, env_steps: int) -> str:
    """The tag of the checkpoint of `run_dir` taken at `env_steps`, or a CheckpointError listing those kept."""
    kept = checkpoints.tags(run_dir / "checkpoints")
    for tag in kept:
        if int(tag.rsplit("-", 1)[1]) == env_steps:
            return tag
    have = ", ".join(str(int(t.rsplit("-", 1)[1])) for t in sorted(kept)) or "none"
    raise CheckpointError(
        f"{run_dir} has no checkpoint at {env_steps} env steps (kept: {have}). Pass --at one of "
        "those; runs keep more checkpoints with train.keep_checkpoints.")


def set_optimizer_settings(ckpt: dict, cfg: config_lib.Config) -> None:
    """Give the checkpoint's optimiser states the branch's settings (learning rate, eps, weight
    decay), keeping their moments and step counts: resuming loads each optimiser's settings from
    its saved state, so without this an override of e.g. `worker.ac.actor_opt.lr` would be
    stored in the configuration and silently not used."""
    from director.module import DirectorModule

    fresh = DirectorModule(cfg, run_dir=None, spec=ckpt["director"]["spec"]).configure_optimizers()
    states = ckpt["optimizer_states"]
    if len(fresh) != len(states):
        raise CheckpointError(f"The branch has {len(fresh)} optimisers and the checkpoint {len(states)}: "
                              "branch only with settings that keep the same networks.")
    for optimizer, state in zip(fresh, states):
        for group, saved in zip(optimizer.param_groups, state["param_groups"]):
            saved.update({k: v for k, v in group.items() if k != "params"})


def branch(run_dir: Path, env_steps: int, new_dir: Path, overrides: list[str]) -> Path:
    """Write the branch NEW_DIR (see module docstring); returns its checkpoint."""
    if new_dir.exists():
        raise UserError(f"{new_dir} already exists; branch into a new directory (nothing was changed).")
    tag = checkpoint_at(run_dir, env_steps)
    source = checkpoints.checkpoint_path(run_dir / "checkpoints", tag)
    ckpt = checkpoints.read(source)
    cfg = config_lib.apply_overrides(config_lib.from_dict(ckpt["director"]["config"]), overrides)
    cfg.train.run_dir = str(new_dir)
    ckpt["director"]["config"] = config_lib.to_dict(cfg)
    set_optimizer_settings(ckpt, cfg)
    staging = new_dir.with_name(new_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    folder = staging / "checkpoints"
    folder.mkdir(parents=True)
    for name in COPIED_DIRS:
        if (run_dir / name).is_dir():
            shutil.copytree(run_dir / name, staging / name)
    for name in COPIED_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, staging / name)
    stream_tag = ckpt["director"]["stream_tag"]
    for rank in range(cfg.train.devices):
        shutil.copy2(checkpoints.stream_path(source.parent, rank, stream_tag),
                     checkpoints.stream_path(folder, rank, stream_tag))
    torch.save(ckpt, checkpoints.checkpoint_path(folder, tag))
    checkpoints.publish(folder, tag)
    config_lib.save(cfg, staging / "config.yaml")
    staging.rename(new_dir)  # a crash above leaves only NEW_DIR.partial, never half a branch
    return checkpoints.checkpoint_path(new_dir / "checkpoints", tag)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--at", type=int, required=True, metavar="ENV_STEPS", help="env steps of the checkpoint")
    p.add_argument("new_dir", type=Path)
    p.add_argument("overrides", nargs="*", help="key=value settings of the branch")
    args = p.parse_args(argv)
    try:
        path = branch(args.run_dir, args.at, args.new_dir, args.overrides)
    except UserError as e:
        print(f"branch_run: {e}", file=sys.stderr)
        return e.exit_code
    print(f"branch_run: {args.run_dir} at {args.at} env steps -> {args.new_dir} ({path.name}), "
          f"{' '.join(args.overrides) or 'no overrides'}; continue with `director train --resume {args.new_dir}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
