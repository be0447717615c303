"""Evaluate a run's checkpoints with their actors averaged over the newest few: noise or lost skill?

    python experiments/average_checkpoints.py RUN_DIR [--window 4] [--last 21] [--actors both]
                                              [--episodes 20] [--csv OUT.csv] [--max-steps N]

For each of the `--last` newest kept checkpoints of RUN_DIR, oldest first, it evaluates the mode
action of (a) the checkpoint's live actors, (b) the same checkpoint with the actors' weights
replaced by their uniform average over the `--window` checkpoints ending at it, and (c) where
the run keeps them (actor_ema > 0), its EMA actors, which `director eval` uses (`--actors`:
the manager's, the worker's or both; the flat agent's actor for a Dreamer run). Everything
else (world model, goal autoencoder, critics) stays the checkpoint's own. Both evaluations use
the same env seeds as `director eval`. Prints one line per checkpoint and the means.

Used for issue 15's diagnosis: a learned maze-m run whose checkpoints 5k env steps apart score
1.00 then 0.00 kept its skill in the average, so the flips were the live actor's noise; this
is why the `explore` preset evaluates an EMA of the actors (`actor_ema`, README "maze-m").
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from director import checkpoints  # noqa: E402
from director.errors import CheckpointError, UserError  # noqa: E402
from director.run import EVAL_SEED, evaluate, load_module  # noqa: E402

ACTORS = {"manager": ("agent.manager.ac.actor.",), "worker": ("agent.worker.ac.actor.",),
          "both": ("agent.manager.ac.actor.", "agent.worker.ac.actor.", "agent.actor.actor.")}


def averaged_state(paths: list[Path], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The newest checkpoint's state_dict with every tensor under `prefixes` averaged over `paths`."""
    states = [torch.load(p, map_location="cpu", weights_only=False)["state_dict"] for p in paths]
    state = dict(states[-1])
    keys = [k for k in state if k.startswith(prefixes)]
    if not keys:
        raise CheckpointError(f"The checkpoint {paths[-1]} has no actor weights under {', '.join(prefixes)}.")
    for k in keys:
        state[k] = torch.stack([s[k].float() for s in states]).mean(0).to(state[k].dtype)
    return state


def drop_ema_actors(module: torch.nn.Module, remove: bool = False) -> bool:
    """Whether `module` keeps EMA actors (actor_ema > 0); with `remove`, drop them, so that
    evaluation acts with the live actors."""
    found = False
    for m in module.modules():
        if getattr(m, "actor_ema", None) is not None:
            found = True
            if remove:
                m.actor_ema = None
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run directory with kept checkpoints")
    parser.add_argument("--window", type=int, default=4, help="checkpoints averaged, ending at each evaluated one")
    parser.add_argument("--last", type=int, default=21, help="newest checkpoints evaluated")
    parser.add_argument("--actors", choices=sorted(ACTORS), default="both")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=None, help="cap on env steps per evaluation (quick checks)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        if args.window < 1 or args.last < 1:
            raise UserError("--window and --last must be at least 1.")
        folder = args.run / "checkpoints"
        tags = checkpoints.tags(folder)[::-1] if folder.is_dir() else []  # oldest first
        if len(tags) < args.window:
            raise CheckpointError(
                f"{args.run} keeps {len(tags)} checkpoint(s) under checkpoints/, fewer than --window "
                f"{args.window}. Train with train.keep_checkpoints=N (N > window) or lower --window.")
        paths = [checkpoints.checkpoint_path(folder, t) for t in tags]
        first = max(args.window - 1, len(paths) - args.last)
        rows = []
        for end in range(first, len(paths)):
            module, info = load_module(paths[end])
            row: dict = {"env_steps": info["env_steps"]}
            if drop_ema_actors(module):  # the run's own EMA actors (actor_ema), as evaluation uses them
                ema = evaluate(module, args.episodes, EVAL_SEED, "eval", args.max_steps)
                row.update(ema_success=ema["success"], ema_return=round(ema["return"], 1))
                module, info = load_module(paths[end])
                drop_ema_actors(module, remove=True)
            live = evaluate(module, args.episodes, EVAL_SEED, "eval", args.max_steps)
            state = averaged_state(paths[end - args.window + 1:end + 1], ACTORS[args.actors])
            module.load_state_dict({k: v for k, v in state.items() if k in module.state_dict()})
            avg = evaluate(module, args.episodes, EVAL_SEED, "eval", args.max_steps)
            row.update(live_success=live["success"], live_return=round(live["return"], 1),
                       averaged_success=avg["success"], averaged_return=round(avg["return"], 1))
            rows.append(row)
            ema_text = f"   EMA actors {row['ema_success']:.2f} (return {row['ema_return']:6.1f})" if "ema_success" in row else ""
            print(f"{info['env_steps']:>8}  live {live['success']:.2f} (return {live['return']:6.1f})   "
                  f"actors averaged over {args.window}: {avg['success']:.2f} (return {avg['return']:6.1f}){ema_text}",
                  flush=True)
    except UserError as e:
        print(f"average_checkpoints: {e}", file=sys.stderr)
        return 2
    if args.csv is not None:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    live_mean = np.mean([r["live_success"] for r in rows])
    avg_mean = np.mean([r["averaged_success"] for r in rows])
    ema_text = (f", the run's EMA actors {np.mean([r['ema_success'] for r in rows]):.2f}"
                if all("ema_success" in r for r in rows) else "")
    print(f"average_checkpoints: {len(rows)} checkpoints, mode success mean live {live_mean:.2f}, "
          f"{args.actors} actor(s) averaged over {args.window} checkpoints {avg_mean:.2f}{ema_text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
