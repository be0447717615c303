"""Fault benchmark: a run survives kill -9, crashing envs and a NaN update, with a pass line.

    python experiments/bench_faults.py [--out DIR] [--kills 5] [--steps 1600] [--seed 0]

(a) Kill -9 soak: a debug-sized run on maze-s is killed with SIGKILL at random moments after
    its first checkpoint (one of the kills inside `RunCheckpoint.save`, between writing the new
    checkpoint and pointing last.ckpt at it) and resumed with `director train --resume` each
    time; then compared with an uninterrupted run of the same seed: the whole checkpoint state
    (parameters, optimiser moments and step counts, buffers, counters, the stream file's
    replay, carry and RNG states) must be identical, episodes.csv row-identical, and every
    metrics step logged once.
(b) An env that raises in `step` about every 500 steps and in `reset` sometimes: the run
    completes, the restarts are counted in the metrics (env_restarts), the broken episodes
    are marked (episodes.csv `restarted`).
(c) A NaN injected into one update's loss: skipped and counted, the run goes on.

Prints `faults: kills N, resumes failed 0, weights equal, episode rows duplicated 0 lost 0;
env crashes N survived; nan skips N` and exits 1 when any part fails.
"""
from __future__ import annotations

import argparse
import collections
import csv
import os
import pickle
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["env.world=maze-s", "train.checkpoint_every=128", "train.log_every=16", "train.threads=1",
        "train.accelerator=cpu"]


# ---------------------------------------------------------------------------------- child
def _child(args: argparse.Namespace) -> int:
    """One training process, with the faults of `args` patched in (no hooks in the library)."""
    sys.path.insert(0, str(ROOT))
    from director import checkpoints, config
    from director.run import train

    if args.kill_in_save:
        publish, calls = checkpoints.publish, [0]

        def killing_publish(folder: Path, tag: str) -> None:
            calls[0] += 1
            if calls[0] == args.kill_in_save:  # update-<tag>.ckpt is complete, last.ckpt not moved
                os.kill(os.getpid(), signal.SIGKILL)
            publish(folder, tag)

        checkpoints.publish = killing_publish
    if args.crash_env:
        from worlds import mazes
        rng, step, reset = random.Random(args.seed), mazes.GridMaze.step, mazes.GridMaze.reset

        def flaky_step(self: Any, action: Any):
            if rng.random() < 1 / 500:
                raise RuntimeError("injected simulator crash in step")
            return step(self, action)

        def flaky_reset(self: Any, **kw: Any):
            if rng.random() < 1 / 10:
                raise RuntimeError("injected simulator crash in reset")
            return reset(self, **kw)

        mazes.GridMaze.step, mazes.GridMaze.reset = flaky_step, flaky_reset
    if args.nan_at:
        from director.agent import Agent
        loss, calls = Agent.loss, [0]

        def nan_loss(self: Any, batch: dict):
            calls[0] += 1
            value, metrics = loss(self, batch)
            return (value * float("nan") if calls[0] == args.nan_at else value), metrics

        Agent.loss = nan_loss
    if args.resume:
        train(None, resume=args.run, progress=False)
    else:
        train(config.load("debug", ARGS + [f"train.run_dir={args.run}", f"train.steps={args.steps}",
                                           f"train.seed={args.seed}"]), progress=False)
    return 0


def _start(run: Path, steps: int, seed: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYGLET_HEADLESS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, __file__, "--child", str(run), "--steps", str(steps),
                             "--seed", str(seed), *extra], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, what: str) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: {what} exited {proc.returncode}:\n{err[-3000:]}")


# ---------------------------------------------------------------------------------- checks
def _equal(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two nested checkpoint structures differ (tensors and arrays bit for bit)."""
    import numpy as np
    import torch
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(set(a) ^ set(b), key=str)}"]
        return [d for k in a for d in _equal(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _equal(x, y, f"{path}/{i}")]
    if isinstance(a, torch.Tensor):
        return [] if isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b) else [path]
    if isinstance(a, np.ndarray):
        return [] if isinstance(b, np.ndarray) and np.array_equal(a, b) else [path]
    return [] if a == b else [path]


def _state(run: Path) -> dict:
    """The whole state of a run's last checkpoint: Lightning's entries and the stream file."""
    import numpy as np
    import torch
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    info = {k: v for k, v in ckpt["director"].items() if k != "train_seconds"}
    info["config"]["train"].pop("run_dir")
    stream = pickle.loads((run / "checkpoints" / f"stream-rank0-{info['stream_tag']}.pkl").read_bytes())
    stream.pop("collector")  # the pickled envs: their behaviour shows in the replay and RNG states
    # Episode files written after a checkpoint were moved aside, so later names count higher:
    # compare the replay's episodes by content, not by file name.
    replay = stream["replay"]
    replay.pop("counter")
    replay["files"] = [dict(np.load(run / "replay" / "rank0" / name)) for name in replay["files"]]
    return {"state_dict": ckpt["state_dict"], "optimizer_states": ckpt["optimizer_states"],
            "global_step": ckpt["global_step"], "director": info, "stream": stream}


def _rows(path: Path) -> list[tuple]:
    return [tuple(r.values()) for r in csv.DictReader(open(path))] if path.exists() else []


def _metric_steps(run: Path) -> list[int]:
    steps = []
    for path in run.glob("logs/version_*/metrics.csv"):
        steps += [int(r["step"]) for r in csv.DictReader(open(path)) if r.get("image_loss")]
    return steps


def soak(out: Path, kills: int, steps: int, seed: int) -> dict:
    rng = random.Random(seed)
    straight, killed = out / "straight", out / "killed"
    _finish(_start(straight, steps, seed), "the uninterrupted run")
    done, resumes_failed, resume = 0, 0, False
    save_kill = rng.randrange(kills)  # which kill happens inside RunCheckpoint.save
    while True:
        extra = ["--resume"] if resume else []
        if done < kills and done == save_kill:
            extra += ["--kill-in-save", "2"]
        proc = _start(killed, steps, seed, *extra)
        if done < kills and done != save_kill:
            marker = killed / "checkpoints" / "last.ckpt"
            while proc.poll() is None and not marker.exists():
                time.sleep(0.05)
            time.sleep(rng.uniform(0.2, 3.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        if proc.returncode == -signal.SIGKILL:
            done += 1
        elif proc.returncode != 0:
            resumes_failed += 1
            print(err[-3000:], file=sys.stderr)
            if resumes_failed > 3:
                break
        elif done >= kills:
            break
        resume = True
    differences = _equal(_state(straight), _state(killed))
    a, b = collections.Counter(_rows(straight / "episodes.csv")), collections.Counter(_rows(killed / "episodes.csv"))
    metric_steps = _metric_steps(killed)
    return {"kills": done, "resumes_failed": resumes_failed, "differences": differences,
            "duplicated": sum((b - a).values()), "lost": sum((a - b).values()),
            "metric_duplicates": len(metric_steps) - len(set(metric_steps)),
            "metric_lost": len(set(_metric_steps(straight)) - set(metric_steps))}


def env_crashes(out: Path, steps: int, seed: int) -> dict:
    run = out / "crashing-env"
    _finish(_start(run, steps, seed, "--crash-env"), "the run with a crashing env")
    rows = list(csv.DictReader(open(run / "episodes.csv")))
    restarts = [float(r["env_restarts"]) for path in run.glob("logs/version_*/metrics.csv")
                for r in csv.DictReader(open(path)) if r.get("env_restarts")]
    return {"restarts": int(max(restarts, default=0)),
            "marked": sum(r["restarted"] == "True" for r in rows)}


def nan_update(out: Path, steps: int, seed: int) -> dict:
    import torch
    run = out / "nan"
    _finish(_start(run, steps, seed, "--nan-at", "5"), "the run with a NaN update")
    info = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["director"]
    return {"skipped": info["skipped_updates"], "updates": info["updates"], "env_steps": info["env_steps"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="working directory (default: a temporary one)")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1600, help="env steps of each run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", metavar="RUN", help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kill-in-save", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--crash-env", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--nan-at", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.run = args.child
        return _child(args)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        a = soak(out, args.kills, args.steps, args.seed)
        b = env_crashes(out, args.steps, args.seed)
        c = nan_update(out, args.steps, args.seed)
    equal = "weights equal" if not a["differences"] else f"weights DIFFER ({', '.join(a['differences'][:5])})"
    print(f"faults: kills {a['kills']}, resumes failed {a['resumes_failed']}, {equal}, episode rows "
          f"duplicated {a['duplicated']} lost {a['lost']}; env crashes {b['restarts']} survived; "
          f"nan skips {c['skipped']}")
    if a["metric_duplicates"] or a["metric_lost"]:
        print(f"metrics steps of the killed run: {a['metric_duplicates']} logged twice, {a['metric_lost']} missing")
    ok = (a["kills"] == args.kills and a["resumes_failed"] == 0 and not a["differences"]
          and a["duplicated"] == a["lost"] == a["metric_duplicates"] == a["metric_lost"] == 0
          and b["restarts"] > 0 and b["marked"] > 0 and c["skipped"] == 1 and c["env_steps"] == args.steps)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
