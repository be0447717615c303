"""Benchmark the worlds: env steps per second and the random policy's success rate on the mazes.

    python experiments/bench_worlds.py            # about 2 minutes
    python experiments/bench_worlds.py --quick    # about 15 seconds, a smoke check

(MiniWorld is made headless by `worlds` itself when no display is set.)

Throughput is measured with uniformly random actions (episodes are reset as they end) for one
env, and for 4 envs in a vector env: SyncVectorEnv, plus AsyncVectorEnv (forkserver processes)
for MiniWorld, whose OpenGL rendering is heavy enough to gain from processes. Vector rates count
env steps (4 per vector step). The success rate is the fraction of episodes in which a uniformly
random policy reaches the goal within the maze's time limit, from the fixed start.
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
NUM_ENVS = 4


def single_rate(name: str, seconds: float) -> float:
    """Env steps per second of one env under random actions."""
    env = worlds.make(name, seed=0)
    rng = np.random.default_rng(0)
    n = env.action_space.n
    env.reset()
    for _ in range(10):   # warm-up: lazy imports, first render, caches
        env.step(int(rng.integers(n)))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            _, _, terminated, truncated, _ = env.step(int(rng.integers(n)))
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


def random_success(name: str, episodes: int) -> tuple[float, float, int]:
    """(success rate, mean steps to the first visit of the goal in successful episodes, time
    limit) of a uniformly random policy. Mazes never terminate: success = the goal was reached."""
    env = worlds.make(name, seed=0)
    rng = np.random.default_rng(0)
    firsts = []
    for _ in range(episodes):
        env.reset()
        length, first = 0, None
        while True:
            _, _, terminated, truncated, info = env.step(int(rng.integers(5)))
            length += 1
            if info["success"] and first is None:
                first = length
            if terminated or truncated:
                break
        if first is not None:
            firsts.append(first)
    steps = float(np.mean(firsts)) if firsts else float("nan")
    return len(firsts) / episodes, steps, env.unwrapped.max_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per measurement")
    parser.add_argument("--episodes", type=int, default=100, help="random-policy episodes per maze")
    parser.add_argument("--quick", action="store_true", help="0.3 s windows, 10 episodes")
    args = parser.parse_args()
    seconds, episodes = (0.3, 10) if args.quick else (args.seconds, args.episodes)

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
        rate, first, limit = random_success(name, episodes)
        success[name] = rate
        print(f"{name:<10} {limit:>10} {episodes:>9} {rate:>14.0%} {first:>14.0f}", flush=True)

    headline = ("pinpad-three", "maze-xl", "minigrid-fourrooms", "miniworld-maze")
    speeds = ", ".join(f"{name} {rates[name]:.0f}" for name in headline)
    odds = " ".join(f"{name.split('-')[1].upper()} {success[name]:.0%}" for name in MAZES)
    print(f"\nbench_worlds: steps/s (1 env) {speeds}; random-policy maze success {odds} "
          f"({episodes} episodes each)")


if __name__ == "__main__":
    main()
