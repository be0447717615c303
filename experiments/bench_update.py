"""Benchmark one full Director update: the baseline commit's code against this checkout's eager
fp32 path and its fast path (torch.compile, plus bf16 autocast on the CPU).

    python experiments/bench_update.py                          # debug, default, peer + 2000-update run (long)
    python experiments/bench_update.py --presets default --train-updates 0
    python experiments/bench_update.py --baseline HEAD~3 --presets debug,default
    python experiments/bench_update.py --quick --threads 1      # debug only, a smoke check (minutes: compiling)

The baseline's code (`--baseline REV`, default 8d13da7) is checked out into a temporary git
worktree (removed at the end, also on error). Per preset (`--presets`, default debug,default,peer;
peer is experiments/presets/peer.yaml, NM512/dreamerv3-torch's default sizes with every value
pinned), each measurement runs in a fresh subprocess, so its peak RSS (ru_maxrss) is its own,
alternating baseline, eager, fast, baseline, eager, fast, ... for `--repeats` rounds. Every
subprocess builds the same config (the preset as resolved by this checkout, passed as a YAML
file; keys the baseline does not know are dropped and reported), torch.manual_seed(0), the same
seeded random batch (B x T = replay.batch x replay.length uint8 images, 5 discrete actions) and
times `Agent.train_step` (forward, backward, per-group clip, every optimiser):

- baseline: the baseline commit's code, fp32;
- eager: this checkout, fp32, not compiled;
- fast: this checkout, `Agent.compile(cfg.train.compile_mode)` then every update under
  torch.autocast("cpu", bfloat16) where the CPU runs bf16 natively (as train.precision=auto;
  fp32 elsewhere); skipped with a message while `Agent.compile` does not exist.

Reported per preset and code path: ms per update (s for peer; median over the timed updates
after the warm-up, then the median over the rounds), speed-up over the baseline, GFLOP/s (FLOPs
of one eager update counted by torch.utils.flop_counter.FlopCounterMode: matmuls and
convolutions only, the same count for every path), % of the matmul peak measured here (fp32 for
baseline and eager, the fast path's precision for fast; 2048x2048, 1024 with --quick), peak RSS, and the seconds of
the first update (for fast: compile + first update). Then env steps/s of
`director train default` over `--train-updates` updates (default 2000; prefill included; this
checkout with train.compile=true train.precision=auto where those keys exist). The last
line is a summary to paste into a note:

    bench_update: default eager X ms -> fast Y ms (Z.ZZx); peer-size eager A s -> fast B s (C.CCx)

where "eager" is the baseline commit's code and the ratios are baseline / fast.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYGLET_HEADLESS", "1")

REPO = Path(__file__).resolve().parents[1]
BASELINE = "8d13da7"
CODES = ("baseline", "eager", "fast")
ACTIONS = 5
SECONDS_PRESETS = ("peer",)  # presets whose updates are reported in seconds


# ---------------------------------------------------------------------------------------------
# Child: one code path on one preset.

def _flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _load_config(config_lib, yaml_path: str, code: str, scratch: Path):
    """The config of `yaml_path` for this code's schema: keys it does not know are dropped (and
    listed, with the keys it knows that the file lacks); the fast path's `train.compile` is set
    where the key exists."""
    from omegaconf import OmegaConf
    known = set(config_lib.valid_keys())
    flat = _flatten(OmegaConf.to_container(OmegaConf.load(yaml_path)))
    # The benchmark sets each path's precision itself (autocast below); the config's value is
    # not read, and the baseline does not know `auto`.
    if flat.get("train.precision") == "auto":
        flat["train.precision"] = "32-true"
    nested: dict = {}
    for key, value in flat.items():
        if key in known:
            *parents, leaf = key.split(".")
            node = nested
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    path = scratch / "config.yaml"
    OmegaConf.save(OmegaConf.create(nested), path)
    overrides = [f"train.compile={str(code == 'fast').lower()}"] if "train.compile" in known else []
    return config_lib.load(str(path), overrides), sorted(set(flat) - known), sorted(known - set(flat))


def run_child(code: str, yaml_path: str, source: str, updates: int, warmup: int, threads: int) -> dict:
    sys.path.insert(0, source)  # before the first import of director
    import torch

    import director
    from director import config as config_lib
    from director.agent import Agent

    here = Path(director.__file__).resolve()
    if Path(source).resolve() not in here.parents:
        raise RuntimeError(f"director was imported from {here}, not from {source}")
    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as scratch:
        cfg, dropped, defaulted = _load_config(config_lib, yaml_path, code, Path(scratch))
    out: dict = {"code": code, "source": source, "B": cfg.replay.batch, "T": cfg.replay.length,
                 "size": cfg.env.size, "threads": torch.get_num_threads(), "timed_updates": updates - warmup,
                 "dropped_keys": dropped, "defaulted_keys": defaulted}
    if code == "fast" and getattr(Agent, "compile", None) is getattr(torch.nn.Module, "compile", None):
        out["skipped"] = "Agent.compile does not exist in this checkout yet"  # nn.Module.compile is not it
        return out
    torch.manual_seed(0)
    from bench_world_model import _batch  # this checkout's helper (imports no director code)
    batch = _batch(cfg, torch.Generator().manual_seed(0))
    size = cfg.env.size
    agent = Agent(cfg, (size, size, 3), ("discrete", ACTIONS))
    optimizers = agent.make_optimizers()
    # The fast path runs bf16 only where the CPU has native bf16 matmuls (train.precision=auto).
    bf16 = code == "fast" and _native_bf16()
    out["precision"] = "bf16" if bf16 else "fp32"
    if code == "fast":
        mode = getattr(cfg.train, "compile_mode", "default")
        start = time.perf_counter()
        agent.compile(mode)
        out.update(compile_mode=mode, compile_call_s=time.perf_counter() - start)

    def update() -> None:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            agent.train_step(batch, optimizers)

    times = []
    for _ in range(updates):
        start = time.perf_counter()
        update()
        times.append(time.perf_counter() - start)
    out["first_s"] = times[0]
    out["times_ms"] = [t * 1e3 for t in times]
    out["ms"] = statistics.median(times[warmup:]) * 1e3
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if code == "eager":  # one count serves every path (same model); never under compile
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as counter:
            update()
        out["flops"] = int(counter.get_total_flops())
    return out


# ---------------------------------------------------------------------------------------------
# Parent: the worktree, the alternating subprocesses, the table and the summary line.

def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def aggregate(runs: list[dict]) -> dict:
    """One preset's code path over its rounds: median of the per-run medians, largest peak RSS."""
    done = [r for r in runs if "ms" in r]
    if not done:
        return {k: v for k, v in runs[-1].items() if k in ("skipped", "failed")} if runs else {}
    out = {"ms": statistics.median(r["ms"] for r in done), "run_ms": [r["ms"] for r in done],
           "peak_rss_mb": max(r["peak_rss_mb"] for r in done),
           "first_s": done[0]["first_s"],  # the first round: a cold compile cache for fast
           "first_warm_s": min((r["first_s"] for r in done[1:]), default=None)}
    flops = [r["flops"] for r in done if "flops" in r]
    if flops:
        out["flops"] = flops[0]
    for key in ("dropped_keys", "defaulted_keys", "compile_mode", "precision"):
        if key in done[0]:
            out[key] = done[0][key]
    return out


def summary_line(results: dict[str, dict[str, dict]]) -> str:
    """`results[preset][code]` holds "ms" where measured. Default in ms, peer in s; "eager" is
    the baseline commit's code; the ratio is baseline / fast."""
    parts = []
    for preset, label, unit, scale, digits in (("default", "default", "ms", 1.0, 0),
                                               ("peer", "peer-size", "s", 1e-3, 2)):
        row = results.get(preset, {})
        base, fast = row.get("baseline", {}).get("ms"), row.get("fast", {}).get("ms")
        shown = [f"{ms * scale:.{digits}f} {unit}" if ms else "n/a" for ms in (base, fast)]
        parts.append(f"{label} eager {shown[0]} -> fast {shown[1]} ({_ratio(base, fast)})")
    return "bench_update: " + "; ".join(parts)


def _fmt_time(preset: str, ms: float) -> str:
    return f"{ms / 1e3:.2f} s" if preset in SECONDS_PRESETS else f"{ms:.1f} ms"


def table(results: dict[str, dict[str, dict]], peaks: dict[str, float]) -> list[str]:
    lines = ["| preset | code | update | speed-up vs baseline | GFLOP/s | % of matmul peak | peak RSS MB "
             "| compile + first update s (cold / warm cache) |", "|---|---|---|---|---|---|---|---|"]
    for preset, row in results.items():
        flops = row.get("eager", {}).get("flops")
        base = row.get("baseline", {}).get("ms")
        for code in CODES:
            r = row.get(code, {})
            if "ms" not in r:
                why = r.get("skipped") or ("FAILED" if r.get("failed") else "not run")
                lines.append(f"| {preset} | {code} | {why} | | | | | |")
                continue
            gflops = flops / (r["ms"] / 1e3) / 1e9 if flops else None
            peak = peaks[r.get("precision", "fp32")]
            rate = f"{gflops:.1f} | {100 * gflops / peak:.1f}%" if gflops else "n/a | n/a"
            warm = f" / {r['first_warm_s']:.1f}" if r.get("first_warm_s") is not None else ""
            first = f"{r['first_s']:.1f}{warm}" if code == "fast" else "-"
            lines.append(f"| {preset} | {code} | {_fmt_time(preset, r['ms'])} | {_ratio(base, r['ms'])} | {rate} "
                         f"| {r['peak_rss_mb']:.0f} | {first} |")
    return lines


def _resolved_yaml(preset: str, scratch: Path) -> Path:
    """The preset as this checkout resolves it, every key written out."""
    sys.path.insert(0, str(REPO))
    from director import config as config_lib
    path = scratch / f"{preset}.yaml"
    path.write_text(config_lib.to_yaml(config_lib.load(preset)))
    return path


# torch.compile's on-disk cache of this invocation (set in main): the first fast round of a preset
# compiles cold, later rounds (and the train run) reuse it, as a second run on a machine would.
INDUCTOR_CACHE: Path | None = None


def _child_env(threads: int) -> dict[str, str]:
    env = {**os.environ, "PYGLET_HEADLESS": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    if INDUCTOR_CACHE is not None:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(INDUCTOR_CACHE)
    return env


def _run_child(code: str, yaml_path: Path, source: Path, updates: int, warmup: int, threads: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", code, "--config", str(yaml_path),
           "--source", str(source), "--updates", str(updates), "--warmup", str(warmup), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(threads), cwd=str(source))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(f"  {code}: FAILED (exit {proc.returncode})\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
        return {"failed": True}
    return json.loads(lines[-1][len("RESULT "):])


def _native_bf16() -> bool:
    """This checkout's check for native bf16 matmuls on the CPU (True where it has none yet)."""
    try:
        from director.module import native_bf16
    except ImportError:
        return True
    return native_bf16("cpu")


def _train_rate(updates: int, threads: int, scratch: Path) -> str:
    """Env steps/s of `director train default` over `updates` updates (prefill included)."""
    sys.path.insert(0, str(REPO))
    from director import config as config_lib
    cfg = config_lib.load("default")
    steps = cfg.replay.prefill + updates * cfg.replay.train_every
    keys = set(config_lib.valid_keys())
    fast = ["train.compile=true", "train.precision=auto"] if "train.compile" in keys else []
    fast += ["train.eval_episodes=0"] if "train.eval_episodes" in keys else []  # time training only
    run_dir = scratch / "train-run"
    cmd = [sys.executable, "-m", "director", "train", "default", f"train.steps={steps}",
           f"train.run_dir={run_dir}", f"train.threads={threads}", *fast, "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(threads), cwd=str(REPO))
    wall = time.perf_counter() - start
    shutil.rmtree(run_dir, ignore_errors=True)
    if proc.returncode != 0:
        print(f"director train default: FAILED (exit {proc.returncode})\n{proc.stderr[-3000:]}", file=sys.stderr)
        return f"director train default: FAILED (exit {proc.returncode})"
    settings = " ".join(fast) if fast else "32-true, not compiled (train.compile does not exist yet)"
    return (f"director train default ({updates} updates, {settings}, {threads} threads): {steps} env steps "
            f"in {wall:.0f} s = {steps / wall:.1f} env steps/s (the {cfg.replay.prefill}-step random prefill "
            "and process start included)")


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default=None,
                        help="comma-separated (default debug,default,peer; debug with --quick)")
    parser.add_argument("--baseline", default=BASELINE,
                        help=f"git revision of the baseline code (default {BASELINE})")
    parser.add_argument("--repeats", type=int, default=None,
                        help="rounds of baseline, eager, fast (default 2; 1 with --quick)")
    parser.add_argument("--updates", type=int, default=None,
                        help="updates per measurement incl. warm-up (default 7, peer 3; 3 with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up updates (default 2, peer 1; 1 with --quick)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (0 = torch's default)")
    parser.add_argument("--train-updates", type=int, default=None,
                        help="updates of the `director train default` run (default 2000; 0 with --quick skips it)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: debug preset, 3 updates, 1 round, no train run")
    parser.add_argument("--child", choices=CODES, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = run_child(args.child, args.config, args.source, args.updates, args.warmup, args.threads)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    presets = (args.presets or ("debug" if args.quick else "debug,default,peer")).split(",")
    repeats = args.repeats or (1 if args.quick else 2)
    train_updates = args.train_updates if args.train_updates is not None else (0 if args.quick else 2000)

    def counts(preset: str) -> tuple[int, int]:
        updates = args.updates or (3 if args.quick or preset in SECONDS_PRESETS else 7)
        warmup = args.warmup if args.warmup is not None else (1 if args.quick or preset in SECONDS_PRESETS else 2)
        if updates <= warmup:
            parser.error(f"--updates must exceed the {warmup} warm-up updates")
        return updates, warmup

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from bench_world_model import matmul_peak
    peaks = {"fp32": matmul_peak(args.threads, args.quick, "cpu", "32"),
             "bf16": matmul_peak(args.threads, args.quick, "cpu", "bf16")}
    threads = args.threads or torch.get_num_threads()
    rev = _git("rev-parse", "--verify", f"{args.baseline}^{{commit}}")
    print(f"# Update benchmark: {os.cpu_count()} CPUs, torch {torch.__version__}, {threads} threads; baseline "
          f"{args.baseline} ({rev[:12]}); measured matmul peak fp32 {peaks['fp32']:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.0f} GFLOP/s", flush=True)

    global INDUCTOR_CACHE
    scratch = Path(tempfile.mkdtemp(prefix="bench_update-"))
    INDUCTOR_CACHE = scratch / "inductor-cache"
    worktree = scratch / "baseline"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` removes the worktree
    results: dict[str, dict[str, dict]] = {}
    failed = False
    train_line = None
    try:
        _git("worktree", "add", "--detach", str(worktree), rev)
        sources = {"baseline": worktree, "eager": REPO, "fast": REPO}
        for preset in presets:
            yaml_path = _resolved_yaml(preset, scratch)
            updates, warmup = counts(preset)
            runs: dict[str, list[dict]] = {code: [] for code in CODES}
            for round_ in range(repeats):
                for code in CODES:
                    if any("skipped" in r for r in runs[code]):
                        continue
                    start = time.perf_counter()
                    r = _run_child(code, yaml_path, sources[code], updates, warmup, args.threads)
                    runs[code].append(r)
                    failed |= bool(r.get("failed"))
                    what = r.get("skipped") or ("FAILED" if r.get("failed") else _fmt_time(preset, r["ms"]))
                    print(f"  {preset} round {round_ + 1} {code}: {what} ({time.perf_counter() - start:.0f} s)",
                          flush=True)
            results[preset] = {code: aggregate(runs[code]) for code in CODES}
        if train_updates:
            train_line = _train_rate(train_updates, threads, scratch)
            failed |= "FAILED" in train_line
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print("\n".join(table(results, peaks)))
    print()
    for preset, row in results.items():
        for code in CODES:
            r = row[code]
            if "run_ms" in r:
                print(f"{preset} {code}: per-run medians ms [{', '.join(f'{t:.1f}' for t in r['run_ms'])}]"
                      + (f", compile_mode {r['compile_mode']}" if "compile_mode" in r else ""))
        base = row["baseline"]
        if base.get("dropped_keys") or base.get("defaulted_keys"):
            print(f"{preset} baseline: keys unknown to {args.baseline} dropped: {base.get('dropped_keys') or 'none'}; "
                  f"keys left at its defaults: {base.get('defaulted_keys') or 'none'}")
    checks = []
    for preset, row in results.items():
        base, eager = row["baseline"].get("ms"), row["eager"].get("ms")
        if base and eager:
            checks.append(f"{preset} {_ratio(base, eager)}" + (" (SLOWER)" if eager > base else ""))
    print(f"new eager vs {args.baseline} (baseline / eager): " + (", ".join(checks) or "n/a"))
    if train_line:
        print(train_line)
    print(summary_line(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
