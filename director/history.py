"""The history files of a run (episodes.csv, evals.csv, logs/version_<n>/metrics.csv) kept in
step with its checkpoint.

A run killed after its last checkpoint has written episodes and metrics that the resumed run
writes again. Before a resume, `supersede` moves those rows into RUN_DIR/after_checkpoint/
(kept, read by nothing), so that every reader sees each episode and each update once;
TensorBoard gets the same cut through `purge_step` (see `director.run`).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Callable

AFTER_CHECKPOINT = "after_checkpoint"


def checkpoint_step(ckpt: dict[str, Any]) -> int:
    """The logger step (Lightning's batches that stepped) of the last update a checkpoint
    holds: rows logged at later steps come from after it."""
    loop = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    return int(loop.get("_batches_that_stepped", 0))


def _split_csv(path: Path, keep: Callable[[int, dict[str, str]], bool], aside: Path) -> int:
    """Rewrite the CSV `path` (atomically) with the rows `keep(index, row)` accepts; append the
    others to `aside`. Returns the number of rows moved."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], list(reader)
    kept = [r for i, r in enumerate(rows) if keep(i, r)]
    moved = [r for i, r in enumerate(rows) if not keep(i, r)]
    if not moved:
        return 0
    aside.parent.mkdir(parents=True, exist_ok=True)
    new = not aside.exists()
    with open(aside, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerows(moved)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(moved)


def supersede(run_dir: Path, episodes: int, step: int, env_steps: int = -1) -> int:
    """Move the history rows written after a checkpoint into RUN_DIR/after_checkpoint/: the
    rows of episodes.csv after its first `episodes`, those of evals.csv after `env_steps`,
    and the rows of every logs/version_<n>/metrics.csv logged after logger step `step`.
    Returns the rows moved."""
    aside, moved = run_dir / AFTER_CHECKPOINT, 0
    path = run_dir / "episodes.csv"
    if path.exists():
        moved += _split_csv(path, lambda i, _: i < episodes, aside / "episodes.csv")
    path = run_dir / "evals.csv"
    if path.exists():
        moved += _split_csv(path, lambda _, row: int(row["env_steps"]) <= env_steps, aside / "evals.csv")
    for path in sorted(run_dir.glob("logs/version_*/metrics.csv")):
        moved += _split_csv(path, lambda _, row: float(row.get("step") or -1) <= step,
                            aside / path.relative_to(run_dir))
    return moved
