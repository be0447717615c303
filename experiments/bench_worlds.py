"""Benchmark the worlds: env steps per second and the random policy's success rate on the mazes.

    python experiments/bench_worlds.py            # about 2 minutes
    python experiments/bench_worlds.py --quick    # about 15 seconds, a smoke check

(MiniWorld is made headless by `worlds` itself when no display is set.)

Throughput is measured with uniformly random actions (episodes are reset as they end) for one
env, and for 4 envs in a vector env: SyncVectorEnv, plus AsyncVectorEnv (forkserver processes)
for MiniWorld, whose OpenGL rendering is heavy enough to gain from processes. Vector rates count
env steps (4 per vector step). The success rate is the fraction of episodes in which a uniformly
random policy reaches the goal within the maze's time limit, from the fixed start.

The MuJoCo worlds (Ant Maze, Memory Maze; `pip install -e ".[antmaze,memorymaze]"`, skipped
when not installed) get one-env rates and a random policy's success too. Their episodes are long
(Ant Maze 3000 steps, Memory Maze 9x9 1000), so their random episodes are cut after
`--mujoco-steps` steps (default 500) and the table says so: success within that many steps.
The last line is a one-line summary to paste into a note.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import worlds

THROUGHPUT_WORLDS = ["pinpad-three", "maze-s", "maze-m", "maze-l", "maze-xl",
                     "minigrid-fourrooms", "miniworld-maze"]
ASYNC_WORLDS = {"miniworld-maze"}
MAZES = ["maze-s", "maze-m", "maze-l", "maze-xl"]
MUJOCO_WORLDS = ["antmaze-s", "antmaze-m", "antmaze-l", "antmaze-xl", "memorymaze-9x9"]
NUM_ENVS = 4


def single_rate(name: str, seconds: float) -> float:
    """Env steps per second of one env under random actions (the seeded action space's samples)."""
    env = worlds.make(name, seed=0)
    env.reset()
    for _ in range(10):   # warm-up: lazy imports, first render, caches
        env.step(env.action_space.sample())
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        steps += 50
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def vector_rate(name: str, seconds: float, asynchronous: bool) -> float:
    """Env steps per second of NUM_ENVS envs in a vector env (autoreset) under random actions."""
    vec = worlds.make_vector(name, NUM_ENVS, seed=0, asynchronous=asynchronous)
    rng = np.random.default_rng(0)
    n = vec.single_action_space.n
    vec.reset()
    for _ in range(5):
        vec.step(rng.integers(n, size=NUM_ENVS))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            vec.step(rng.integers(n, size=NUM_ENVS))
        steps += 10 * NUM_ENVS
    rate = steps / (time.perf_counter() - start)
    vec.close()
    return rate


def random_success(name: str, episodes: int, max_steps: int | None = None) -> tuple[float, float]:
    """(success rate, mean steps to the first success in successful episodes) of a uniformly
    random policy, each episode cut after `max_steps` steps when given. These worlds never
    terminate on success: success = the goal was reached at least once."""
    env = worlds.make(name, seed=0)
    firsts = []
    for _ in range(episodes):
        env.reset()
        length, first = 0, None
        while max_steps is None or length < max_steps:
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            length += 1
            if info["success"] and first is None:
                first = length
            if terminated or truncated:
                break
        if first is not None:
            firsts.append(first)
    env.close()
    steps = float(np.mean(firsts)) if firsts else float("nan")
    return len(firsts) / episodes, steps


def installed(name: str) -> bool:
    """False when world `name` needs an optional simulator that is not installed."""
    try:
        worlds.make(name, size=16).close()
    except worlds.WorldError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per measurement")
    parser.add_argument("--episodes", type=int, default=100, help="random-policy episodes per maze")
    parser.add_argument("--mujoco-episodes", type=int, default=10,
                        help="random-policy episodes per MuJoCo world")
    parser.add_argument("--mujoco-steps", type=int, default=500,
                        help="steps per random MuJoCo episode (Ant Maze episodes have 3000)")
    parser.add_argument("--quick", action="store_true", help="0.3 s windows, 10 episodes")
    args = parser.parse_args()
    seconds, episodes = (0.3, 10) if args.quick else (args.seconds, args.episodes)
    mujoco_episodes, mujoco_steps = (2, 50) if args.quick else (args.mujoco_episodes, args.mujoco_steps)

    print(f"{'world':<20} {'1 env':>10} {f'{NUM_ENVS} sync':>10} {f'{NUM_ENVS} async':>10}"
          "   (env steps/s)")
    rates: dict[str, float] = {}
    for name in THROUGHPUT_WORLDS:
        one = single_rate(name, seconds)
        sync = vector_rate(name, seconds, asynchronous=False)
        row = f"{name:<20} {one:>10.0f} {sync:>10.0f}"
        if name in ASYNC_WORLDS:
            row += f" {vector_rate(name, seconds, asynchronous=True):>10.0f}"
        else:
            row += f" {'-':>10}"
        print(row, flush=True)
        rates[name] = one

    print(f"\n{'maze':<10} {'time limit':>10} {'episodes':>9} {'random success':>15}"
          f" {'steps to goal':>14}")
    success: dict[str, float] = {}
    for name in MAZES:
        rate, first = random_success(name, episodes)
        success[name] = rate
        limit = worlds.make(name).unwrapped.max_steps
        print(f"{name:<10} {limit:>10} {episodes:>9} {rate:>14.0%} {first:>14.0f}", flush=True)

    mujoco = [name for name in MUJOCO_WORLDS if installed(name)]
    for name in sorted(set(MUJOCO_WORLDS) - set(mujoco)):
        print(f"\n{name}: not installed (pip install -e \".[antmaze,memorymaze]\"), skipped")
    if mujoco:
        print(f"\n{'MuJoCo world':<16} {'1 env steps/s':>13} {'episodes':>9} {'steps each':>10}"
              f" {'random success':>15} {'steps to goal':>14}")
    for name in mujoco:
        rates[name] = single_rate(name, seconds)
        rate, first = random_success(name, mujoco_episodes, mujoco_steps)
        success[name] = rate
        print(f"{name:<16} {rates[name]:>13.1f} {mujoco_episodes:>9} {mujoco_steps:>10}"
              f" {rate:>14.0%} {first:>14.0f}", flush=True)

    headline = ("pinpad-three", "maze-xl", "minigrid-fourrooms", "miniworld-maze")
    speeds = ", ".join(f"{name} {rates[name]:.0f}" for name in headline)
    odds = " ".join(f"{name.split('-')[1].upper()} {success[name]:.0%}" for name in MAZES)
    extra = "".join(f"; {name} {rates[name]:.0f} steps/s, random success {success[name]:.0%} "
                    f"in {mujoco_steps} steps" for name in mujoco)
    print(f"\nbench_worlds: steps/s (1 env) {speeds}; random-policy maze success {odds} "
          f"({episodes} episodes each){extra} ({mujoco_episodes} episodes each)")


if __name__ == "__main__":
    main()
