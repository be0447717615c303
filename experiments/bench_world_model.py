"""Benchmark the world model and the full Director update on this machine (CPU by default).

    python experiments/bench_world_model.py                      # debug, default, paper (minutes)
    python experiments/bench_world_model.py --presets default --threads 2
    python experiments/bench_world_model.py --full-paper         # also the paper Director update (slow)
    python experiments/bench_world_model.py --quick --threads 1  # debug only, a smoke check (seconds)
    python experiments/bench_world_model.py --device cuda --precision bf16 --full-paper   # on a GPU

Each preset runs in a fresh subprocess, so its peak RSS (resource.getrusage ru_maxrss) is its
own. Per preset, with random uint8 images of the preset's size, B x T = replay.batch x
replay.length and 5 discrete actions:

- world-model update (forward + backward + global-norm clip + AdamW step, as in training):
  median ms of the timed updates after 2 warm-up updates (`--updates` counts both);
- full Director update (`Agent.train_step`: world model, goal autoencoder, imagination, worker
  and manager losses, every optimiser) for debug and default; for paper only with --full-paper;
- FLOPs of one update, counted by torch.utils.flop_counter.FlopCounterMode over forward and
  backward (matmuls and convolutions only; elementwise work is not counted), and the achieved
  fraction of the CPU's fp32 matmul peak (nominal ~370 GFLOP/s, and the peak measured here with
  a 2048x2048 fp32 matmul);
- parameter counts (trainable; slow target critics are not counted) of encoder, RSSM, decoder,
  reward and continuation heads, goal autoencoder, manager and worker;
- env steps/s of collection: Collector over worlds.make_vector("pinpad-three", 4, size=...) into
  an in-memory replay, with RandomPolicy and with the preset's (untrained) agent policy.

On `--device cuda` the timings synchronise the GPU, `--precision bf16` runs the forward passes
under torch.autocast(bfloat16) as `train.precision=bf16-mixed` does, the peak is the measured
matmul peak of that dtype, and the memory column is the peak GPU memory allocated
(torch.cuda.max_memory_allocated) next to the process's RSS.

Torch uses all cores by default; --threads N pins it. The last line is a one-line summary to
paste into a note.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("PYGLET_HEADLESS", "1")

NOMINAL_PEAK_GFLOPS = 370.0  # fp32 matmul peak of the reference CPU
WORLD = "pinpad-three"
NUM_ENVS = 4
ACTIONS = 5


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def matmul_peak(threads: int, quick: bool, device: str = "cpu", precision: str = "32") -> float:
    """Best achieved GFLOP/s of a square matmul in the benchmark's dtype (2048, or 1024 with
    --quick; 8192 on a GPU)."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    n = 8192 if device == "cuda" else 1024 if quick else 2048
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(3 if quick else 6):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def _sync(device: str) -> None:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
# Child: one preset.

def _batch(cfg, generator, device: str = "cpu"):
    import torch
    b, t, s = cfg.replay.batch, cfg.replay.length, cfg.env.size
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    batch = {
        "image": torch.randint(0, 256, (b, t, s, s, 3), dtype=torch.uint8, generator=generator),
        "action": torch.nn.functional.one_hot(torch.randint(0, ACTIONS, (b, t), generator=generator),
                                              ACTIONS).float(),
        "reward": torch.randn(b, t, generator=generator),
        "is_first": is_first,
        "is_last": torch.zeros(b, t, dtype=torch.bool),
        "is_terminal": torch.zeros(b, t, dtype=torch.bool),
    }
    return {k: v.to(device) for k, v in batch.items()}


def _time(fn, updates: int, warmup: int, device: str = "cpu") -> tuple[float, list[float]]:
    """Median ms of the updates after `warmup` warm-up calls."""
    times = []
    for i in range(updates):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), times


def _flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _collect_rate(cfg, policy_kind: str, agent, steps: int, device: str = "cpu") -> float:
    """Env steps/s (all envs) of Collector.step over pinpad-three into an in-memory replay."""
    import numpy as np
    import torch

    import worlds
    from director.collect import Collector, RandomPolicy
    from director.data import to_torch
    from director.replay import Replay

    envs = worlds.make_vector(WORLD, NUM_ENVS, size=cfg.env.size, seed=0)
    replay = Replay(None, capacity=max(10_000, 2 * steps * NUM_ENVS), length=cfg.replay.length)
    collector = Collector(envs, replay)
    collector.reset(seed=0)
    if policy_kind == "random":
        policy = RandomPolicy(envs.single_action_space, seed=0)
    else:
        state = {"carry": None}

        def policy(obs: dict[str, np.ndarray]) -> np.ndarray:
            action, state["carry"], _ = agent.policy(to_torch(obs, device), state["carry"])
            return action.cpu().numpy()
    with torch.no_grad():
        for _ in range(5):
            collector.step(policy)
        start = time.perf_counter()
        for _ in range(steps):
            collector.step(policy)
        rate = steps * NUM_ENVS / (time.perf_counter() - start)
    envs.close()
    return rate


def run_preset(preset: str, updates: int, warmup: int, director_update: bool, quick: bool,
               threads: int, device: str = "cpu", precision: str = "32") -> dict:
    import contextlib

    import torch

    from director import config as config_lib
    from director.agent import Agent
    from director.nets import make_optimizer
    from director.world_model import WorldModel

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = config_lib.load(preset, [f"env.world={WORLD}"])
    size = cfg.env.size
    gen = torch.Generator().manual_seed(0)
    batch = _batch(cfg, gen, device)
    out: dict = {"preset": preset, "B": cfg.replay.batch, "T": cfg.replay.length, "size": size,
                 "threads": torch.get_num_threads(), "timed_updates": updates - warmup}

    def autocast():
        if precision == "bf16":
            return torch.autocast(device_type=device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # World model alone.
    wm = WorldModel(cfg.model, (size, size, 3), ACTIONS).to(device)
    ocfg = cfg.model.opt
    opt = make_optimizer(wm, ocfg.lr, ocfg.eps, ocfg.weight_decay)

    def wm_update() -> None:
        with autocast():
            loss, _, metrics = wm.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(wm.parameters(), ocfg.clip)
        opt.step()
        wm.after_update(metrics)

    out["params"] = {"encoder": _params(wm.encoder), "rssm": _params(wm.rssm), "decoder": _params(wm.decoder),
                     "reward": _params(wm.reward), "cont": _params(wm.cont), "world_model": _params(wm)}
    out["wm_ms"], out["wm_times"] = _time(wm_update, updates, warmup, device)
    out["wm_flops"] = _flops(wm_update)
    del wm, opt

    # Full Director update, and the agent for the collection benchmark.
    agent = Agent(cfg, (size, size, 3), ("discrete", ACTIONS)).to(device)
    out["params"].update(goal_ae=_params(agent.goal_ae), manager=_params(agent.manager),
                         worker=_params(agent.worker), agent=_params(agent))
    if director_update:
        optimizers = agent.make_optimizers()

        def step() -> None:
            with autocast():
                agent.train_step(batch, optimizers)
        out["director_ms"], out["director_times"] = _time(step, updates, warmup, device)
        out["director_flops"] = _flops(step)

    steps = 10 if quick else 100
    out["collect_random"] = _collect_rate(cfg, "random", None, steps)
    out["collect_agent"] = _collect_rate(cfg, "agent", agent, steps, device)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if device == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


# ---------------------------------------------------------------------------------------------
# Parent: one subprocess per preset, then the table and the summary line.

def _gb(x: float) -> str:
    return f"{x / 1024:.1f} GB" if x >= 1024 else f"{x:.0f} MB"


def _si(flops: float) -> str:
    return f"{flops / 1e12:.2f} TFLOP" if flops >= 1e12 else f"{flops / 1e9:.2f} GFLOP"


def _pct(flops: float, ms: float, peak_gflops: float) -> float:
    return 100 * flops / (ms / 1e3) / (peak_gflops * 1e9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default=None, help="comma-separated (default debug,default,paper; "
                        "debug with --quick)")
    parser.add_argument("--updates", type=int, default=None,
                        help="updates per measurement incl. 2 warm-up (default 7; 3 with --quick)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default (all cores)")
    parser.add_argument("--full-paper", action="store_true", help="also time the paper Director update")
    parser.add_argument("--quick", action="store_true", help="smoke check: debug preset, few updates")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="32", choices=("32", "bf16"),
                        help="bf16: forward passes under torch.autocast(bfloat16), as train.precision=bf16-mixed")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    updates = args.updates or (3 if args.quick else 7)
    warmup = 1 if args.quick else 2
    if updates <= warmup:
        parser.error(f"--updates must exceed the {warmup} warm-up updates")
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU on this machine")

    if args.child:
        director_update = args.child != "paper" or args.full_paper
        result = run_preset(args.child, updates, warmup, director_update, args.quick, args.threads,
                            args.device, args.precision)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    presets = (args.presets or ("debug" if args.quick else "debug,default,paper")).split(",")
    peak = matmul_peak(args.threads, args.quick, args.device, args.precision)
    threads = args.threads or torch.get_num_threads()
    dtype = "bf16" if args.precision == "bf16" else "fp32"
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{os.cpu_count()} CPUs"
    print(f"# World-model benchmark: {where}, torch {torch.__version__}, {threads} threads, {dtype}; "
          f"measured {dtype} matmul peak {peak:.0f} GFLOP/s"
          + (f" (nominal CPU fp32 {NOMINAL_PEAK_GFLOPS:.0f})" if args.device == "cpu" else ""), flush=True)
    results, failed = [], []
    for preset in presets:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", preset, "--updates", str(updates),
               "--threads", str(args.threads), "--device", args.device, "--precision", args.precision]
        cmd += ["--quick"] * args.quick + ["--full-paper"] * args.full_paper
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            failed.append(preset)
            print(f"{preset}: FAILED (exit {proc.returncode})\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        res = json.loads(lines[-1][7:])
        res["wall_s"] = time.perf_counter() - start
        results.append(res)
        print(f"  {preset}: done in {res['wall_s']:.0f} s", flush=True)

    print()
    print("| preset | B x T, px | WM update ms | WM FLOPs | % nominal / measured peak | Director update ms "
          "| Director FLOPs | % measured peak | collect env steps/s random / agent | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        nominal = f"{_pct(r['wm_flops'], r['wm_ms'], NOMINAL_PEAK_GFLOPS):.1f}%" if args.device == "cpu" else "-"
        wm_pct = f"{nominal} / {_pct(r['wm_flops'], r['wm_ms'], peak):.1f}%"
        memory = _gb(r["peak_rss_mb"]) + (f" (GPU {_gb(r['peak_gpu_mb'])})" if "peak_gpu_mb" in r else "")
        if "director_ms" in r:
            dms, dfl = f"{r['director_ms']:.1f}", _si(r["director_flops"])
            dpct = f"{_pct(r['director_flops'], r['director_ms'], peak):.1f}%"
        else:
            dms, dfl, dpct = "(--full-paper)", "-", "-"
        print(f"| {r['preset']} | {r['B']}x{r['T']}, {r['size']} | {r['wm_ms']:.1f} | {_si(r['wm_flops'])} | {wm_pct} "
              f"| {dms} | {dfl} | {dpct} | {r['collect_random']:.0f} / {r['collect_agent']:.0f} "
              f"| {memory} |")
    print()
    parts = ["encoder", "rssm", "decoder", "reward", "cont", "world_model", "goal_ae", "manager", "worker", "agent"]
    print("| preset | " + " | ".join(parts) + " |")
    print("|---" * (len(parts) + 1) + "|")
    for r in results:
        print(f"| {r['preset']} | " + " | ".join(f"{r['params'][p] / 1e6:.3f}M" for p in parts) + " |")
    print()
    for r in results:
        times = ", ".join(f"{t:.0f}" for t in r["wm_times"])
        line = f"{r['preset']}: WM update times ms [{times}]"
        if "director_times" in r:
            line += "; Director [" + ", ".join(f"{t:.0f}" for t in r["director_times"]) + "]"
        print(line)
    print()

    pieces = []
    for r in results:
        nominal = (f"{_pct(r['wm_flops'], r['wm_ms'], NOMINAL_PEAK_GFLOPS):.1f}% of {NOMINAL_PEAK_GFLOPS:.0f} "
                   "GFLOP/s peak, " if args.device == "cpu" else "")
        piece = (f"{r['preset']} WM update {r['wm_ms']:.0f} ms (B{r['B']}xT{r['T']}, {r['size']}px, "
                 f"{_si(r['wm_flops'])}, {nominal}{_pct(r['wm_flops'], r['wm_ms'], peak):.1f}% of measured)")
        if "director_ms" in r:
            piece += f", Director update {r['director_ms']:.0f} ms"
        piece += (f", collect {r['collect_random']:.0f}/{r['collect_agent']:.0f} env steps/s random/agent"
                  f", peak RSS {_gb(r['peak_rss_mb'])}")
        if "peak_gpu_mb" in r:
            piece += f", peak GPU memory {_gb(r['peak_gpu_mb'])}"
        pieces.append(piece)
    summary = "; ".join(pieces) + f"; {dtype} matmul peak {peak:.0f} GFLOP/s measured on {where}, {threads} threads"
    if failed:
        summary += f"; FAILED: {','.join(failed)}"
    print(f"bench_world_model: {summary}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
