"""Learning benchmark: Director vs the flat Dreamer baseline vs a random policy, over seeds.

    python experiments/bench_learning.py --world maze-m --preset explore --steps 200000 \
        --agents director,dreamer --seeds 0,1 --jobs 3
    python experiments/bench_learning.py --world pinpad-three --steps 120000 --agents director

Trains every (agent, seed) with the same preset and env-step budget (one subprocess each;
`--jobs N` runs N at a time with one torch thread each), with mode-action evaluations every
`--eval-every` env steps during training (`train.eval_every`: 20 episodes on fixed env seeds,
RUN_DIR/evals.csv). Then evaluates each run's *final* checkpoint (mode and sampled action,
`--episodes` episodes) and a uniform random policy on the same seeds, and the mode action of
the `--late N` newest checkpoints the run kept (the final one among them; a policy that learned
a maze can fail at one checkpoint and solve it at the next, so their mean is the steadier
reading). Writes to `--out`:

    results.json         per run and per agent: final mode/sampled success and return, mean and
                         spread (min, max) over seeds; random's; per run, what its training
                         episodes found (goal episodes, the first one, coverage, cells/episode)
                         and `late` (env steps and mode success of each late checkpoint, mean)
    <agent>-s<seed>/     the run's small files: evals.csv, episodes.csv, config.yaml, metrics.csv
                         (the logged training metrics; metrics-version_N.csv for resumed runs)
    curves.png           eval success (mode) vs env steps, training success (rolling mean of 20
                         episodes) and exploration coverage (distinct cells visited, grid worlds)

The PASS line checks Director's mean *final* mode-action success over seeds against the world's
targets (`--target`, `--beat-flat`; defaults in TARGETS, else `--margin` above random):
    maze-s   >= 0.95          maze-m   >= 0.9
    maze-l   above random and above flat Dreamer by >= 0.2
The last line is a summary to paste into a note. Exit code 1 on FAIL. Run directories (replay,
checkpoints) go to `--runs` (default: OUT/runs), which is not meant to be committed.

Seeds of one configuration trained by separate invocations (in different sessions, or a third
seed added later) are judged together with `--combine`, which trains and evaluates nothing: it
reads each earlier OUT's results.json (`DIR` for all its runs, `DIR:AGENT` for one agent's),
writes the merged results.json and curves.png to `--out` and prints the same summary and PASS
line. The runs must share world and env-step budget; every config key in which they differ
(beyond seed and run directory) is printed and kept in results.json as `config_differences`:

    python experiments/bench_learning.py --out OUT --combine experiments/results/A \
        experiments/results/B:director experiments/results/C:dreamer
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# world: (minimum mean mode success of Director, margin over flat Dreamer's): the pass lines of
# the long-maze issue. Other worlds: Director's success at least --margin above random's.
TARGETS: dict[str, tuple[float | None, float | None]] = {
    "maze-s": (0.95, None),
    "maze-m": (0.9, None),
    "maze-l": (None, 0.2),
}


def train(agent: str, seed: int, args: argparse.Namespace, run: Path, log: Path) -> subprocess.Popen:
    """Start (or resume, when its checkpoint exists) one training run in a subprocess."""
    common = [f"train.steps={args.steps}", "--no-progress"]
    if (run / "checkpoints" / "last.ckpt").exists():
        cmd = ["train", "--resume", str(run)] + common
    else:
        cmd = ["train", args.preset, f"agent={agent}", f"env.world={args.world}", f"train.run_dir={run}",
               f"train.seed={seed}", f"train.eval_every={args.eval_every}",
               f"train.eval_episodes={args.episodes}"] + common + args.overrides
    if args.jobs > 1:
        cmd.append("train.threads=1")
    return subprocess.Popen([sys.executable, "-m", "director"] + cmd, stdout=open(log, "a"),
                            stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYGLET_HEADLESS": "1"})


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(path))) if path.exists() else []


def rolling(x: np.ndarray, window: int = 20) -> np.ndarray:
    return np.array([x[max(0, i - window + 1): i + 1].mean() for i in range(len(x))])


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def plot(out: Path, world: str, runs: dict[tuple[str, int], Path], random: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    colours = {}
    for (agent, seed), run in sorted(runs.items()):
        colour = colours.setdefault(agent, f"C{len(colours)}")
        style = dict(color=colour, ls=("-", "--", ":", "-.")[seed % 4], alpha=0.8)
        label = f"{agent} s{seed}"
        evals = read_csv(run / "evals.csv")
        if evals:
            axes[0].plot([float(r["env_steps"]) for r in evals], [float(r["success"]) for r in evals],
                         marker="o", label=label, **style)
        episodes = read_csv(run / "episodes.csv")
        if episodes:
            steps = np.array([float(r["env_steps"]) for r in episodes])
            axes[1].plot(steps, rolling(np.array([r["success"] == "True" for r in episodes], float)),
                         label=label, **style)
            cover = [(s, float(r["coverage"])) for s, r in zip(steps, episodes) if r.get("coverage")]
            if cover:
                axes[2].plot(*zip(*cover), label=label, **style)
    for ax in axes[:2]:
        ax.axhline(random["success"], color="gray", ls="--", label="random")
        ax.set(ylim=(-0.02, 1.02), xlabel="env steps")
    axes[0].set(title=f"{world}: eval success (mode action)")
    axes[1].set(title="training episodes' success (mean of 20)")
    axes[2].set(title="coverage: distinct cells visited", xlabel="env steps")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)


def exploration(run: Path) -> dict[str, float | int | None]:
    """What a run's training episodes (episodes.csv) found: how many reached the goal and
    when the first did, the distinct cells visited in all (grid worlds; None elsewhere), and
    the cells per episode over the last quarter of the run."""
    episodes = read_csv(run / "episodes.csv")
    if not episodes:
        return {}
    steps = np.array([float(r["env_steps"]) for r in episodes])
    success = np.array([r["success"] == "True" for r in episodes])
    cells = np.array([float(r.get("cells") or -1) for r in episodes])
    last = steps >= 0.75 * steps[-1]
    return {"goal_episodes": int(success.sum()),
            "first_goal_env_steps": int(steps[success][0]) if success.any() else None,
            "coverage": int(float(episodes[-1]["coverage"])) if episodes[-1].get("coverage") else None,
            "cells_per_episode_last_quarter": round(float(cells[last].mean()), 1) if (cells >= 0).all() else None}


def earlier_checkpoints(run: Path, count: int) -> list[Path]:
    """The kept checkpoints before the final one, up to `count - 1` of them, oldest first:
    with the final one, the run's `count` newest."""
    from director import checkpoints
    folder = run / "checkpoints"
    return [checkpoints.checkpoint_path(folder, tag) for tag in checkpoints.tags(folder)[1:count]][::-1]


def verdict(world: str, results: dict, args: argparse.Namespace) -> tuple[str, str]:
    """PASS/FAIL of Director's mean final mode success against the world's targets."""
    if "director" not in results:
        return "n/a", ""
    target, beat = TARGETS.get(world, (None, None))
    target = args.target if args.target is not None else target
    beat = args.beat_flat if args.beat_flat is not None else beat
    ours = results["director"]["mode_success"]["mean"]
    rnd = results["random"]["success"]
    checks = []
    if target is not None:
        checks.append((ours >= target, f"director mean success {ours:.2f} >= {target}"))
    if beat is not None and "dreamer" in results:
        flat = results["dreamer"]["mode_success"]["mean"]
        checks.append((ours >= flat + beat, f"director {ours:.2f} >= dreamer {flat:.2f} + {beat}"))
    if beat is not None or target is None:
        checks.append((ours >= rnd + args.margin, f"director {ours:.2f} >= random {rnd:.2f} + {args.margin}"))
    return ("PASS" if all(ok for ok, _ in checks) else "FAIL"), ", ".join(text for _, text in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", default="maze-s")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=40000)
    parser.add_argument("--agents", default="director,dreamer")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per evaluation")
    parser.add_argument("--eval-every", type=int, default=25000, help="env steps between evaluations")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once, 1 torch thread each")
    parser.add_argument("--target", type=float, default=None, help="Director's minimum mean success")
    parser.add_argument("--beat-flat", type=float, default=None, help="Director's margin over flat Dreamer")
    parser.add_argument("--margin", type=float, default=0.2, help="margin over random where no target")
    parser.add_argument("--out", default=None)
    parser.add_argument("--runs", default=None, help="where run directories go (default OUT/runs)")
    parser.add_argument("--late", type=int, default=4,
                        help="newest kept checkpoints to evaluate too (mode action; 0: none)")
    parser.add_argument("--skip-train", action="store_true", help="only evaluate and plot existing runs")
    parser.add_argument("--combine", nargs="+", metavar="DIR[:AGENT]",
                        help="judge earlier invocations' runs together (trains and evaluates nothing)")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    args = parser.parse_args()
    if args.combine:
        if not args.out:
            parser.error("--combine needs --out, the folder for the merged results")
        try:
            world, runs, results = combine(args.combine)
        except Unusable as problem:
            print(f"bench_learning: cannot combine: {problem}", file=sys.stderr)
            return 2
        Path(args.out).mkdir(parents=True, exist_ok=True)
        for key, values in results["config_differences"].items():
            print(f"config differs in {key}: " + ", ".join(f"{run} {value}" for run, value in values.items()))
        return summarise(Path(args.out), world, runs, results, args)
    agents, seeds = args.agents.split(","), [int(s) for s in args.seeds.split(",")]
    out = Path(args.out or ROOT / "experiments" / "results" / f"learning-{args.world}")
    runs_dir = Path(args.runs or out / "runs")
    out.mkdir(parents=True, exist_ok=True)
    runs = {(a, s): runs_dir / f"{a}-s{s}" for a in agents for s in seeds}

    if not args.skip_train:
        runs_dir.mkdir(parents=True, exist_ok=True)
        pending, running = list(runs), []
        while pending or running:
            while pending and len(running) < args.jobs:
                key = pending.pop(0)
                running.append((key, train(*key, args, runs[key], out / f"{key[0]}-s{key[1]}.log")))
            time.sleep(5)
            for key, proc in list(running):
                if proc.poll() is not None:
                    running.remove((key, proc))
                    if proc.returncode != 0:
                        print(f"{key[0]} seed {key[1]} training failed, see {out / f'{key[0]}-s{key[1]}.log'}")
                        return 1

    if args.skip_train:  # evaluate what exists: e.g. fewer seeds of the baseline
        missing = [f"{a}-s{s}" for (a, s), run in runs.items() if not (run / "checkpoints" / "last.ckpt").exists()]
        if missing:
            print(f"not trained, left out: {', '.join(missing)}")
        runs = {key: run for key, run in runs.items() if f"{key[0]}-s{key[1]}" not in missing}

    import torch
    from director import config
    from director.run import EVAL_SEED, evaluate, evaluate_random, load_module
    torch.set_num_threads(2)
    env = config.load(args.preset, [f"env.world={args.world}"] + args.overrides).env
    results: dict = {"random": evaluate_random(env, args.episodes, EVAL_SEED), "runs": {},
                     "steps": args.steps, "preset": args.preset, "overrides": args.overrides}
    for (agent, seed), run in runs.items():
        module, info = load_module(run)
        final = evaluate(module, episodes=args.episodes, seed=EVAL_SEED, mode="eval")
        results["runs"][f"{agent}-s{seed}"] = {
            "mode": final,
            "sample": evaluate(module, episodes=args.episodes, seed=EVAL_SEED, mode="train"),
            "env_steps": info["env_steps"], "updates": info["updates"],
            "train_minutes": round(info.get("train_seconds", 0) / 60, 1),
            "exploration": exploration(run),
        }
        late = []
        for path in earlier_checkpoints(run, args.late):
            snapshot, snap_info = load_module(path)
            late.append((snap_info["env_steps"], evaluate(snapshot, episodes=args.episodes, seed=EVAL_SEED,
                                                          mode="eval")["success"]))
        if args.late > 0:
            late.append((info["env_steps"], final["success"]))
            results["runs"][f"{agent}-s{seed}"]["late"] = {
                "env_steps": [e for e, _ in late], "mode_success": [v for _, v in late],
                "mean": float(np.mean([v for _, v in late]))}
        keep = out / f"{agent}-s{seed}"
        keep.mkdir(exist_ok=True)
        for name in ("evals.csv", "episodes.csv", "config.yaml"):
            if (run / name).exists():
                shutil.copy(run / name, keep / name)
        logs = sorted((run / "logs").glob("version_*/metrics.csv"))  # one per (resumed) segment
        for log in logs:
            shutil.copy(log, keep / ("metrics.csv" if len(logs) == 1 else f"metrics-{log.parent.name}.csv"))
    return summarise(out, args.world, runs, results, args)


def summarise(out: Path, world: str, runs: dict[tuple[str, int], Path], results: dict,
              args: argparse.Namespace) -> int:
    """Each agent's mean and spread over seeds, the plot and the verdict of `results` (random's and
    per-run numbers filled in); writes OUT/results.json, prints the summary. Exit code 1 on FAIL."""
    agents = list(dict.fromkeys(agent for agent, _ in runs))
    for agent in agents:
        mine = [results["runs"][f"{a}-s{s}"] for a, s in runs if a == agent]
        results[agent] = {f"{m}_{k}": spread([r[m][k] for r in mine]) for m in ("mode", "sample")
                          for k in ("success", "return")}
        if all("late" in r for r in mine):
            results[agent]["late_mode_success"] = spread([r["late"]["mean"] for r in mine])
            results[agent]["late_checkpoints"] = min(len(r["late"]["env_steps"]) for r in mine)
    plot(out, world, runs, results["random"])
    status, checks = verdict(world, results, args)
    results["verdict"] = {"status": status, "checks": checks}
    (out / "results.json").write_text(json.dumps(results, indent=2))

    lines = []
    for agent in agents:
        r = results[agent]
        per_seed = " ".join(f"{results['runs'][f'{a}-s{s}']['mode']['success']:.2f}" for a, s in runs if a == agent)
        late = (f", mode success over its newest {r['late_checkpoints']} checkpoints "
                f"{r['late_mode_success']['mean']:.2f}" if "late_mode_success" in r else "")
        lines.append(f"{agent}: mode success {r['mode_success']['mean']:.2f} (seeds {per_seed}), sampled "
                     f"{r['sample_success']['mean']:.2f}, mode return {r['mode_return']['mean']:.1f}{late}")
    rnd = results["random"]
    print("\n".join(lines))
    print(f"bench_learning: {world} {status} ({checks}) at {results['steps']} env steps, preset {results['preset']}: "
          + "; ".join(lines) + f"; random success {rnd['success']:.2f}, return {rnd['return']:.2f} "
          f"({rnd['episodes']} episodes); plot {out / 'curves.png'}")
    return 0 if status != "FAIL" else 1


class Unusable(Exception):
    """An earlier result that `--combine` cannot merge; the message names it and the fix."""


def flat_config(path: Path) -> dict[str, object]:
    """A run's config.yaml as {dotted key: value}, without its seed and run directory."""
    from omegaconf import OmegaConf

    def walk(node: object, prefix: str) -> dict[str, object]:
        if isinstance(node, dict):
            return {k: v for key, sub in node.items() for k, v in walk(sub, f"{prefix}{key}.").items()}
        return {prefix[:-1]: node}
    flat = walk(OmegaConf.to_container(OmegaConf.load(path)), "")
    return {k: v for k, v in flat.items() if k not in ("train.seed", "train.run_dir")}


def combine(specs: list[str]) -> tuple[str, dict[tuple[str, int], Path], dict]:
    """Merge earlier invocations' results (`DIR` or `DIR:AGENT`) into one: (world, the runs'
    kept folders by (agent, seed), results with `sources` and `config_differences`)."""
    runs: dict[tuple[str, int], Path] = {}
    results: dict = {"runs": {}, "sources": {}}
    configs: dict[str, dict[str, object]] = {}
    for spec in specs:
        folder, _, only = spec.partition(":")
        path = Path(folder) / "results.json"
        if not path.exists():
            raise Unusable(f"{path} does not exist: --combine takes the --out folders of earlier "
                           f"bench_learning invocations (DIR, or DIR:AGENT for one agent's runs).")
        try:
            earlier = json.loads(path.read_text())
            earlier["random"], earlier["steps"], earlier["preset"], earlier["runs"]
        except (ValueError, KeyError) as problem:
            raise Unusable(f"{path} is not a bench_learning results file ({problem!r}): rerun that "
                           f"invocation with --skip-train to write it again.") from None
        results.setdefault("random", earlier["random"])
        for key in ("steps", "preset"):
            if results.setdefault(key, earlier[key]) != earlier[key]:
                raise Unusable(f"{path} was run with {key} {earlier[key]}, the first folder with "
                               f"{results[key]}: only runs of one budget and preset are judged together.")
        chosen = [name for name in earlier["runs"] if not only or name.rsplit("-s", 1)[0] == only]
        if not chosen:
            raise Unusable(f"{path} holds no {only!r} runs (it has {', '.join(earlier['runs'])}).")
        for name in chosen:
            agent, seed = name.rsplit("-s", 1)
            if name in results["runs"]:
                raise Unusable(f"{name} is in both {results['sources'][name]} and {folder}: "
                               f"name each seed once (DIR:AGENT picks one agent's runs).")
            kept = runs[(agent, int(seed))] = Path(folder) / name
            results["runs"][name] = earlier["runs"][name]
            results["sources"][name] = str(folder)
            if not (kept / "config.yaml").exists():
                raise Unusable(f"{kept / 'config.yaml'} is missing: --combine compares the runs' configs, "
                               f"which bench_learning keeps beside results.json.")
            configs[name] = flat_config(kept / "config.yaml")
    worlds = {config["env.world"] for config in configs.values()}
    if len(worlds) != 1:
        raise Unusable(f"the runs are on different worlds ({', '.join(sorted(map(str, worlds)))}).")
    keys = sorted({k for config in configs.values() for k in config} - {"agent"})
    results["config_differences"] = {
        k: {name: config.get(k) for name, config in configs.items()} for k in keys
        if len({json.dumps(config.get(k)) for config in configs.values()}) > 1}
    results["overrides"] = [f"combined from {', '.join(specs)}"]
    return worlds.pop(), runs, results

if __name__ == "__main__":
    sys.exit(main())
