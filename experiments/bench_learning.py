"""Learning benchmark: Director vs the flat Dreamer baseline vs a random policy.

    python experiments/bench_learning.py --world maze-s --steps 40000
    python experiments/bench_learning.py --world pinpad-three --steps 60000 --agents director

Trains each agent with the `default` preset (one subprocess each, `--parallel` runs two at a
time with one torch thread each), evaluates the final checkpoints with the worker's mode action
and the sampled action, measures a uniform random policy with the same episodes, plots
return and success rate against env steps (training episodes, rolling mean), and checks the
pass threshold:

    PASS when Director's success rate (sampled or mode action, whichever is higher) is at least
    `--margin` (default 0.2) above the random policy's, or, on worlds without a success flag,
    its return is higher than random's by `--margin` times random's return (+0.1).

The last line is a summary to paste into a note. Exit code 1 on FAIL.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def train(agent: str, args: argparse.Namespace, out: Path) -> subprocess.Popen:
    run = out / agent
    cmd = [sys.executable, "-m", "director", "train", args.preset, f"agent={agent}",
           f"env.world={args.world}", f"train.steps={args.steps}", f"train.run_dir={run}",
           f"train.seed={args.seed}", "train.eval_episodes=0", "--no-progress"]  # evaluated below
    cmd += (["train.threads=1"] if args.parallel else []) + args.overrides
    if (run / "checkpoints" / "last.ckpt").exists():
        cmd = [sys.executable, "-m", "director", "train", "--resume", str(run), f"train.steps={args.steps}",
               "train.eval_episodes=0", "--no-progress"]
    log = open(out / f"{agent}.log", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, "PYGLET_HEADLESS": "1"})


def curve(run: Path, window: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = list(csv.DictReader(open(run / "episodes.csv"))) if (run / "episodes.csv").exists() else []
    steps = np.array([float(r["env_steps"]) for r in rows])
    ret = np.array([float(r["return"]) for r in rows])
    suc = np.array([r["success"] == "True" for r in rows], float)
    kernel = lambda x: np.array([x[max(0, i - window + 1): i + 1].mean() for i in range(len(x))])  # noqa: E731
    return steps, kernel(ret) if len(ret) else ret, kernel(suc) if len(suc) else suc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", default="maze-s")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=40000)
    parser.add_argument("--agents", default="director,dreamer")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--margin", type=float, default=0.2)
    parser.add_argument("--parallel", action="store_true", help="train two agents at once, 1 thread each")
    parser.add_argument("--out", default=None)
    parser.add_argument("--skip-train", action="store_true", help="only evaluate and plot existing runs")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every agent")
    args = parser.parse_args()
    agents = args.agents.split(",")
    out = Path(args.out or ROOT / "experiments" / "results" / f"learning-{args.world}")
    out.mkdir(parents=True, exist_ok=True)

    wall = {}
    if not args.skip_train:
        pending = list(agents)
        running: list[tuple[str, subprocess.Popen, float]] = []
        while pending or running:
            while pending and len(running) < (2 if args.parallel else 1):
                agent = pending.pop(0)
                running.append((agent, train(agent, args, out), time.time()))
            time.sleep(5)
            for item in list(running):
                agent, proc, start = item
                if proc.poll() is not None:
                    wall[agent] = time.time() - start
                    running.remove(item)
                    if proc.returncode != 0:
                        print(f"{agent} training failed, see {out / (agent + '.log')}")
                        return 1

    import torch
    from director.run import evaluate, evaluate_random, load_module
    torch.set_num_threads(2)
    from director import config
    env = config.load(args.preset, [f"env.world={args.world}"] + args.overrides).env
    results: dict[str, dict] = {"random": evaluate_random(env, args.episodes, args.seed + 99)}
    for agent in agents:
        module, info = load_module(out / agent)
        results[agent] = {
            "mode": evaluate(module, episodes=args.episodes, seed=args.seed + 99, mode="eval"),
            "sample": evaluate(module, episodes=args.episodes, seed=args.seed + 99, mode="train"),
            "env_steps": info["env_steps"], "updates": info["updates"],
            # all segments of a resumed run; this invocation's wall-clock for older checkpoints
            "train_wall_s": info.get("train_seconds") or wall.get(agent),
        }

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for agent in agents:
        steps, ret, suc = curve(out / agent)
        axes[0].plot(steps, ret, label=agent)
        axes[1].plot(steps, suc, label=agent)
    axes[0].axhline(results["random"]["return"], color="gray", ls="--", label="random")
    axes[1].axhline(results["random"]["success"], color="gray", ls="--", label="random")
    axes[0].set(title=f"{args.world}: return (training episodes, mean of 20)", xlabel="env steps")
    axes[1].set(title="success rate", xlabel="env steps", ylim=(-0.02, 1.02))
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    (out / "results.json").write_text(json.dumps(results, indent=2))

    rnd = results["random"]
    lines = []
    for agent in agents:
        r = results[agent]
        best = max(r["mode"]["success"], r["sample"]["success"])
        best_ret = max(r["mode"]["return"], r["sample"]["return"])
        wall_s = f"{r['train_wall_s']/60:.0f} min" if r["train_wall_s"] else "n/a"
        lines.append(f"{agent}: success {r['mode']['success']:.2f} (mode) / {r['sample']['success']:.2f} "
                     f"(sampled), return {r['mode']['return']:.2f}/{r['sample']['return']:.2f} after "
                     f"{r['env_steps']} env steps, {r['updates']} updates, {wall_s}")
        if agent == "director":
            passed = (best >= rnd["success"] + args.margin) if rnd["success"] > 0 or best > 0 else \
                (best_ret > rnd["return"] * (1 + args.margin) + 0.1)
    print("\n".join(lines))
    verdict = "PASS" if "director" in agents and passed else ("FAIL" if "director" in agents else "n/a")
    print(f"bench_learning: {args.world} {verdict}: " + "; ".join(lines) +
          f"; random success {rnd['success']:.2f}, return {rnd['return']:.2f} ({rnd['episodes']} episodes); "
          f"plot {out / 'curves.png'}")
    return 0 if verdict != "FAIL" else 1


if __name__ == "__main__":
    sys.exit(main())
