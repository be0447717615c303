"""The `director` command line.

    director train [PRESET] [key=value ...]      train a new run (default preset: default)
    director train --resume RUN_DIR [key=value]  continue a run exactly where it stopped
                   [--skip-corrupt-replay]      ... without replay files that cannot be read
    director eval RUN_DIR|CKPT [--world NAME] [--episodes N] [--action mode|sample]
    director worlds list | show NAME [--steps N] [--out FILE]
    director config [PRESET] [key=value ...]     print the resolved configuration
    director goals RUN_DIR|CKPT [--out DIR]      goal visualisation report

Errors a user can fix (bad world, config key/value, checkpoint, missing optional dependency)
print one paragraph and exit with code 2, without a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("PYGLET_HEADLESS", "1")
os.environ.setdefault("LP_NUM_THREADS", "0")


def _cmd_train(args: argparse.Namespace) -> int:
    from director import config as config_lib
    preset, overrides = args.preset, list(args.overrides)
    if preset is not None and "=" in preset:
        overrides, preset = [preset] + overrides, None
    if args.resume and preset is not None:
        raise config_lib.ConfigError("--resume continues a run with its stored configuration; "
                                     f"drop the preset {preset!r} (train.* overrides are allowed).")
    # A bad preset, key or value is reported before torch and Lightning are imported (seconds).
    cfg = None if args.resume else config_lib.load(preset or "default", overrides)
    from director.console import quiet_console
    from director.run import train
    quiet_console()
    if args.resume:
        train(None, resume=args.resume, progress=not args.no_progress, overrides=overrides,
              skip_corrupt_replay=args.skip_corrupt_replay)
    else:
        train(cfg, progress=not args.no_progress, preset=preset or "default")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from director.run import evaluate, load_module
    module, info = load_module(args.target, world=args.world)
    if args.actors == "live":  # drop the EMA actors: the mode action of the live ones
        for m in module.modules():
            if getattr(m, "actor_ema", None) is not None:
                m.actor_ema = None
    result = evaluate(module, episodes=args.episodes, seed=args.seed,
                      mode="eval" if args.action == "mode" else "train")
    averaged = args.action == "mode" and any(getattr(m, "actor_ema", None) is not None for m in module.modules())
    result.update(action=args.action, actors="ema" if averaged else "live", world=module.cfg.env.world,
                  updates=info["updates"], env_steps=info["env_steps"],
                  train_seconds=round(info.get("train_seconds", 0.0), 1))
    print(json.dumps(result))
    return 0


def _cmd_worlds(args: argparse.Namespace) -> int:
    import worlds
    if args.action == "list":
        for name in worlds.names():
            print(f"{name:28s} {worlds.describe(name)}")
        return 0
    if not args.name:
        raise SystemExit("director worlds show: give a world NAME (see `director worlds list`)")
    out = Path(args.out) if args.out else Path("out") / f"{args.name.replace(':', '_').replace('/', '_')}.gif"
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = worlds.show(args.name, steps=args.steps, out=out, seed=args.seed, size=args.size)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from director import config as config_lib
    preset, overrides = args.preset, list(args.overrides)
    if preset is not None and "=" in preset:
        overrides, preset = [preset] + overrides, None
    if args.keys:
        print("\n".join(config_lib.valid_keys()))
        return 0
    print(config_lib.to_yaml(config_lib.load(preset or "default", overrides)), end="")
    return 0


def _cmd_goals(args: argparse.Namespace) -> int:
    from director import checkpoints
    from director.errors import ConfigError
    from director.run import load_module
    from goal_vis.report import goals_command
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {args.episodes}.")
    ckpt_path, run_dir = checkpoints.resolve(args.target)
    module, info = load_module(args.target, world=args.world)
    out = Path(args.out) if args.out else (run_dir if run_dir is not None else ckpt_path.parent) / "goals"
    return goals_command(args, module, info, run_dir, out)


def _train_epilog() -> str:
    """The presets with the start of their YAML comment, and where the keys are listed."""
    import re
    from director.config import PRESET_DIR, presets
    lines = ["presets:"]
    for name in presets():
        head = (PRESET_DIR / f"{name}.yaml").read_text().split("\n\n")[0]
        comment = " ".join(re.findall(r"^# ?(.*)$", head, flags=re.M))
        lines.append(f"  {name:8s} {textwrap.shorten(comment, 88, placeholder=' ...')}")
    lines += ["", "keys: `director config --keys` lists every configuration key, "
              "`director config PRESET` prints a preset's values.",
              "example: director train default env.world=maze-m train.steps=100000"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="director", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a new run or resume one", epilog=_train_epilog(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("preset", nargs="?", help="preset name or YAML path (default: default)")
    p.add_argument("overrides", nargs="*", help="key=value configuration overrides "
                   "(`director config --keys` lists every key)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue this run directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--skip-corrupt-replay", action="store_true",
                   help="resume without replay files that are corrupt or missing (no longer exact)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a trained agent (worker's mode action)")
    p.add_argument("target", help="run directory or checkpoint file")
    p.add_argument("--world", help="evaluate on another world with the same spaces")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--action", choices=("mode", "sample"), default="mode",
                   help="the worker's (or flat actor's) mode action, or sampled actions as in "
                        "training; the manager always samples. `mode` acts with the EMA actors "
                        "where the run keeps them (actor_ema > 0; the report says actors=ema), "
                        "`sample` with the live ones")
    p.add_argument("--actors", choices=("ema", "live"), default="ema",
                   help="with `--action mode`: the EMA actors where the run keeps them (default), "
                        "or the live actors that act in training")
    p.add_argument("--seed", type=int, default=12345)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("worlds", help="list worlds or show a random rollout of one")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("name", nargs="?")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--out", help="GIF path (a PNG strip is written next to it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64)
    p.set_defaults(func=_cmd_worlds)

    p = sub.add_parser("config", help="print the resolved configuration")
    p.add_argument("preset", nargs="?")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--keys", action="store_true", help="list every configuration key")
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("goals", help="goal visualisation: videos, contact sheet, atlas, HTML report")
    p.add_argument("target", help="run directory or checkpoint file")
    p.add_argument("--world", help="run on another world with the same spaces")
    p.add_argument("--episodes", type=int, default=1, help="episodes to run and measure")
    p.add_argument("--out", help="output directory (default: RUN_DIR/goals)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=2000, help="env steps per episode at most")
    p.add_argument("--video-steps", type=int, default=300, help="frames in the episode video")
    p.add_argument("--horizon", type=int, default=64, help="imagined steps of the worker rollouts")
    p.set_defaults(func=_cmd_goals)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from director.errors import UserError
    errors: list[type[BaseException]] = [UserError]
    try:
        from worlds import WorldError
        errors.append(WorldError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    # key=value overrides may also follow options (`director train debug --no-progress a=1`).
    if rest and hasattr(args, "overrides") and all("=" in r and not r.startswith("-") for r in rest):
        args.overrides = list(args.overrides) + rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command in ("eval", "goals"):  # `train` does it once its configuration is valid
        from director.console import quiet_console
        quiet_console()
    try:
        return args.func(args)
    except _user_errors() as e:
        code = getattr(e, "exit_code", 2)
        print("director: error: " + textwrap.fill(str(e), width=100), file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
