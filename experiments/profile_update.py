"""Profile one full Director update (torch.profiler): kernel launches, syncs, CPU vs GPU time.

    python experiments/profile_update.py --preset paper --device cuda --precision bf16
    python experiments/profile_update.py --preset default            # CPU
    python experiments/profile_update.py --preset paper --device cuda --precision bf16 --compile reduce-overhead
    python experiments/profile_update.py --preset default --precision bf16 --compile default --kernels
    python experiments/profile_update.py --preset paper --device cuda --precision bf16 --compile reduce-overhead --time 20

Builds the preset's agent for pinpad-three-sized inputs (random uint8 images, 5 actions, the
same batch as experiments/bench_world_model.py), runs 3 warm-up updates, profiles 2, prints the
top operators by self CPU time and one summary line per update: device kernel time, CPU self
time, kernel launches and device synchronisations. A GPU update whose CPU time far exceeds its
kernel time is bound by Python and launches, not by arithmetic. `--compile MODE` profiles the
compiled update (`Agent.compile(MODE)`, as train.compile=true train.compile_mode=MODE); the
profiled updates do not log, so their sync count is what a non-logging training update costs.
`--time N` also times N more updates outside the profiler (device synchronised around each)
and prints their median ms and the first update's time (the compile, when compiled).
`--phases` (with --compile) says where the first update's compile went: CPU seconds in this
process (dynamo, AOT autograd, inductor's Python) and in its child processes (the C++
compiler), and the slowest of torch's compile phases (wall seconds, nested: a phase's time
includes the phases it calls). Run it with an empty TORCHINDUCTOR_CACHE_DIR for a cold compile.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import time

os.environ.setdefault("PYGLET_HEADLESS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PROFILED = 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="32", choices=("32", "bf16"))
    parser.add_argument("--rows", type=int, default=15, help="operators shown in the table")
    parser.add_argument("--compile", default=None, metavar="MODE",
                        help="profile the compiled update (torch.compile mode, e.g. default or reduce-overhead)")
    parser.add_argument("--time", type=int, default=0, metavar="N",
                        help="also time N updates outside the profiler: median ms per update")
    parser.add_argument("--kernels", action="store_true",
                        help="with --compile on the CPU: time each generated kernel (inductor's kernel profile) "
                             "and print the time per update by kind")
    parser.add_argument("--phases", action="store_true",
                        help="with --compile: CPU seconds of the first update's compile (this process / the C++ "
                             "compiler) and torch's slowest compile phases")
    args = parser.parse_args()
    if args.phases and not args.compile:
        parser.error("--phases needs --compile MODE")

    import torch
    from torch.profiler import ProfilerActivity, profile
    if args.kernels:
        import torch._inductor.config as inductor_config
        inductor_config.cpp.enable_kernel_profile = True

    from bench_world_model import ACTIONS, WORLD, _batch, _sync, _time
    from director import config as config_lib
    from director.agent import Agent

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU on this machine")
    torch.manual_seed(0)
    cfg = config_lib.load(args.preset, [f"env.world={WORLD}"])
    size = cfg.env.size
    agent = Agent(cfg, (size, size, 3), ("discrete", ACTIONS)).to(args.device)
    optimizers = agent.make_optimizers()
    if args.compile:
        agent.compile(args.compile)
    batch = _batch(cfg, torch.Generator().manual_seed(0), args.device)

    def update() -> None:
        autocast = (torch.autocast(device_type=args.device, dtype=torch.bfloat16) if args.precision == "bf16"
                    else contextlib.nullcontext())
        with autocast:
            agent.update(batch, optimizers)  # device metrics: no conversion, as on non-logging steps

    _sync(args.device)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    update()
    _sync(args.device)
    first_s = time.perf_counter() - start
    if args.phases:
        _print_phases(first_s, [now - then for now, then in zip(_cpu_seconds(), cpu_start)], args.rows)
    for _ in range(2):
        update()
    _sync(args.device)
    timed = _time(update, args.time, 0, args.device)[0] if args.time > 0 else None
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * (args.device == "cuda")
    with profile(activities=activities) as prof:
        for _ in range(PROFILED):
            update()
        _sync(args.device)
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    # Device time counted once: on the kernels' own rows (operator rows repeat it).
    kernel_ms = sum(e.self_device_time_total for e in events
                    if e.device_type == torch.autograd.DeviceType.CUDA) / PROFILED / 1e3
    cpu_ms = sum(e.self_cpu_time_total for e in events) / PROFILED / 1e3
    launches = sum(e.count for e in events if "LaunchKernel" in e.key) / PROFILED
    syncs = sum(e.count for e in events if "Synchronize" in e.key) / PROFILED
    if args.kernels:
        # Generated kernels are named graph_<n>_cpp_fused_...; the wrapper's own time is the
        # self time of the "Call CompiledFxGraph" rows.
        kinds: dict[str, float] = {}
        for e in events:
            kind = ("inductor kernels" if e.key.startswith("graph_") else
                    "wrapper (Python)" if e.key.startswith("## Call CompiledFxGraph") else e.key)
            kinds[kind] = kinds.get(kind, 0.0) + e.self_cpu_time_total / PROFILED / 1e3
        for kind, ms in sorted(kinds.items(), key=lambda kv: -kv[1])[:args.rows]:
            print(f"{ms:8.1f} ms per update  {kind}")
    mode = f", compiled ({args.compile})" if args.compile else ", eager"
    print(f"profile_update: {args.preset} on {args.device} ({args.precision}{mode}), per update: "
          f"device kernel time {kernel_ms:.0f} ms, CPU self time {cpu_ms:.0f} ms, "
          f"{launches:.0f} kernel launches, {syncs:.0f} device syncs")
    if timed is not None:
        print(f"profile_update: {args.preset} on {args.device} ({args.precision}{mode}): {timed:.1f} ms per update "
              f"(median of {args.time}, outside the profiler); first update {first_s:.1f} s")
    return 0


def _cpu_seconds() -> tuple[float, float]:
    """(this process, its finished child processes): user + system CPU seconds."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _print_phases(first_s: float, cpu: list[float], rows: int) -> None:
    from torch._dynamo.utils import compile_times
    names, totals = compile_times(repr="csv", aggregate=True)  # phase names, total seconds each
    print(f"profile_update: first update (the compile) {first_s:.1f} s wall, {cpu[0]:.1f} s CPU in this "
          f"process, {cpu[1]:.1f} s CPU in child processes (the C++ compiler)")
    for name, total in sorted(zip(names, map(float, totals)), key=lambda kv: -kv[1])[:rows]:
        print(f"{total:8.1f} s  {name}")


if __name__ == "__main__":
    sys.exit(main())
