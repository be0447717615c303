"""Which part of a trained agent holds a skill: evaluate one checkpoint with parts taken from another.

    python experiments/swap_parts.py CKPT_A CKPT_B [--parts wm,goal,manager,worker]
                                     [--episodes 20] [--max-steps N] [--threads 2] [--csv OUT.csv]

CKPT_A and CKPT_B are two checkpoints (files, or run directories for their newest) of one run,
or of runs with the same configuration. It evaluates the mode action of A, of B, of A with each
named part taken from B, and of B with each named part taken from A, on the env seeds that
`director eval` uses. Parts: `wm` the world model (encoder, RSSM, decoder, reward and
continuation heads), `goal` the goal autoencoder, `manager` and `worker` each policy with its
critics and its EMA actor, `actor` the flat agent's. Evaluation acts with the EMA actors where
the run keeps them, as `director eval` does.

Used for issue 15's diagnosis: when a run that had learned maze-l lost it within 10k env steps,
the 290k checkpoint with the 300k manager still succeeded and with the 300k worker failed, so
the worker had lost the skill (README, "maze-l").
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from director.errors import CheckpointError, UserError  # noqa: E402
from director.run import EVAL_SEED, evaluate, load_module  # noqa: E402

PARTS = {"wm": "agent.wm.", "goal": "agent.goal_ae.", "manager": "agent.manager.",
         "worker": "agent.worker.", "actor": "agent.actor."}


def swapped_state(base: dict[str, torch.Tensor], other: dict[str, torch.Tensor],
                  parts: list[str]) -> dict[str, torch.Tensor]:
    """`base` with every tensor of the named parts replaced by `other`'s."""
    prefixes = tuple(PARTS[p] for p in parts)
    state = dict(base)
    for key in state:
        if key.startswith(prefixes):
            if key not in other or other[key].shape != state[key].shape:
                raise CheckpointError(
                    f"The two checkpoints do not share the tensor {key} "
                    f"({tuple(state[key].shape)} against {tuple(other[key].shape) if key in other else 'absent'}). "
                    "Swap parts only between checkpoints of one configuration.")
            state[key] = other[key]
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", help="checkpoint file or run directory (its newest checkpoint)")
    parser.add_argument("b", help="checkpoint file or run directory (its newest checkpoint)")
    parser.add_argument("--parts", default="wm,goal,manager,worker",
                        help=f"comma-separated parts to swap, of {', '.join(PARTS)}")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=None, help="cap on env steps per evaluation (quick checks)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        parts = [p.strip() for p in args.parts.split(",") if p.strip()]
        unknown = [p for p in parts if p not in PARTS]
        if unknown or not parts:
            raise UserError(f"Unknown part(s) {', '.join(unknown) or '(none given)'} in --parts. "
                            f"Name some of: {', '.join(PARTS)}.")
        module_a, info_a = load_module(args.a)
        module_b, info_b = load_module(args.b)
        # Copies: a state_dict shares its tensors with the module, which each evaluation reloads.
        state_a, state_b = ({k: v.clone() for k, v in m.state_dict().items()} for m in (module_a, module_b))
        for p in parts:
            if not any(k.startswith(PARTS[p]) for k in state_a):
                raise UserError(f"The checkpoints have no part {p!r} (a {info_a['config']['agent']} agent). "
                                f"Its parts: {', '.join(q for q in PARTS if any(k.startswith(PARTS[q]) for k in state_a))}.")
        name_a, name_b = f"{info_a['env_steps']}", f"{info_b['env_steps']}"
        combos = [(name_a, state_a), (name_b, state_b)]
        combos += [(f"{name_a} with {p} of {name_b}", swapped_state(state_a, state_b, [p])) for p in parts]
        combos += [(f"{name_b} with {p} of {name_a}", swapped_state(state_b, state_a, [p])) for p in parts]
        rows = []
        for label, state in combos:
            module_a.load_state_dict(state)
            result = evaluate(module_a, args.episodes, EVAL_SEED, "eval", args.max_steps)
            rows.append({"agent": label, "success": result["success"], "return": round(result["return"], 1)})
            print(f"{label:<40} mode success {result['success']:.2f} (return {result['return']:6.1f})", flush=True)
    except UserError as e:
        print(f"swap_parts: {e}", file=sys.stderr)
        return 2
    if args.csv is not None:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
