"""The checkpoint files of a run directory: names, retention and the fallback on a bad file.

RUN_DIR/checkpoints/ holds
    update-<tag>.ckpt          the newest `train.keep_checkpoints` checkpoints
    last.ckpt                  the newest one again (a hard link, or a copy)
    stream-rank<r>-<tag>.pkl   each kept checkpoint's stream file per rank
where <tag> is <updates:09d>-<env steps:010d>: distinct states never share a tag, so writing a
stream file never replaces the one of a checkpoint on disk.

A checkpoint is written under a temporary name and moved into place only when complete;
older ones (and their stream files) are deleted only after that. Readers that get a run
directory try `last.ckpt`, then the older checkpoints, newest first, and say in one line which
one they fell back to.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from director.errors import CheckpointError

LAST = "last.ckpt"
_CKPT = re.compile(r"^update-([\d-]+)\.ckpt$")
_STREAM = re.compile(r"^stream-rank(\d+)-([\d-]+)\.pkl$")


def tag_of(updates: int, env_steps: int) -> str:
    """The tag that names a checkpoint and its stream files (zero-padded: sorts by age)."""
    return f"{int(updates):09d}-{int(env_steps):010d}"


def checkpoint_path(folder: Path, tag: str) -> Path:
    return folder / f"update-{tag}.ckpt"


def stream_path(folder: Path, rank: int, tag: str) -> Path:
    return folder / f"stream-rank{rank}-{tag}.pkl"


def tags(folder: Path) -> list[str]:
    """Tags of the update-*.ckpt files in `folder`, newest first."""
    found = [m.group(1) for m in (_CKPT.match(p.name) for p in folder.glob("update-*.ckpt")) if m]
    return sorted(found, reverse=True)


def publish(folder: Path, tag: str) -> None:
    """Make the complete checkpoint `update-<tag>.ckpt` the run's `last.ckpt` (atomically)."""
    tmp = folder / (LAST + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(checkpoint_path(folder, tag), tmp)
    except OSError:  # a file system without hard links
        shutil.copyfile(checkpoint_path(folder, tag), tmp)
    os.replace(tmp, folder / LAST)


def prune(folder: Path, keep: int, rank: int, is_global_zero: bool) -> None:
    """Delete all but the newest `keep` checkpoints and this rank's stream files of the others.
    Call only once the newest checkpoint is complete on disk."""
    kept = set(tags(folder)[:keep])
    if is_global_zero:
        for tag in tags(folder)[keep:]:
            checkpoint_path(folder, tag).unlink(missing_ok=True)
    for path in folder.glob(f"stream-rank{rank}-*.pkl"):
        match = _STREAM.match(path.name)
        if match and match.group(2) not in kept:
            path.unlink()


def resolve(target: str | Path) -> tuple[Path, Path | None]:
    """RUN_DIR or checkpoint file -> (checkpoint path, run dir or None)."""
    target = Path(target)
    if target.is_dir():
        return target / "checkpoints" / LAST, target
    if target.parent.name == "checkpoints":
        return target, target.parent.parent
    return target, None


def _problem(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(checkpoint, "") or (None, what is wrong with the file)."""
    if not path.exists():
        return None, f"No checkpoint at {path}"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        return None, f"The checkpoint {path} is corrupt or unreadable ({type(e).__name__})"
    if not isinstance(ckpt, dict) or "director" not in ckpt or "state_dict" not in ckpt:
        return None, f"{path} is not a Director checkpoint"
    return ckpt, ""


def read(path: Path) -> dict[str, Any]:
    """A Director checkpoint as a dict, with clear errors for missing, corrupt or foreign files."""
    ckpt, problem = _problem(path)
    if ckpt is None:
        fix = ("Pass a run directory that contains checkpoints/last.ckpt, or a .ckpt file."
               if not path.exists() else "Restore it from a backup, or start a new run; nothing was changed.")
        raise CheckpointError(f"{problem}. {fix}")
    return ckpt


def _missing_stream(path: Path, ckpt: dict) -> Path | None:
    """The first stream file (ranks 0..devices-1) the checkpoint names that is not on disk."""
    info = ckpt["director"]
    tag = info.get("stream_tag")
    ranks = int(info.get("config", {}).get("train", {}).get("devices", 1))
    paths = [stream_path(path.parent, r, tag) for r in range(ranks)] if tag is not None else []
    return next((p for p in paths if not p.exists()), None)


def load(target: str | Path, streams: bool = False) -> tuple[Path, dict[str, Any], Path | None]:
    """(path, checkpoint, run dir) of RUN_DIR, its last.ckpt or another checkpoint file.

    When a run's last.ckpt cannot be read (or, with `streams`, a stream file of it is
    missing), the run's older checkpoints are tried, newest first; the one used is named on
    stderr in one line. A checkpoint file given by name is read as given."""
    path, run_dir = resolve(target)
    folder = path.parent
    older = [checkpoint_path(folder, t) for t in tags(folder)] if path.name == LAST else []
    if run_dir is None or not older:
        return path, read(path), run_dir
    problems = []
    for candidate in [path] + older:
        if candidate != path and path.exists() and os.path.samefile(candidate, path):
            continue  # last.ckpt itself, already tried
        ckpt, problem = _problem(candidate)
        if ckpt is not None and streams:
            missing = _missing_stream(candidate, ckpt)
            ckpt, problem = (None, f"the stream file {missing} is missing") if missing else (ckpt, "")
        if ckpt is None:
            problems.append(problem)
            continue
        if problems:
            print(f"director: {'; '.join(problems)}. Using the checkpoint {candidate} instead.",
                  file=sys.stderr)
        return candidate, ckpt, run_dir
    raise CheckpointError(f"No checkpoint of {run_dir} can be used: {'; '.join(problems)}. Restore one "
                          "from a backup, or start a new run; nothing was changed.")
