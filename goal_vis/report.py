"""`director goals RUN_DIR|CKPT`: the goal visualisation report of a trained agent.

Writes into OUT (default RUN_DIR/goals):
    episode.gif      observation | decoded current goal, step and goal phase as text
                     (episode.mp4 too when an ffmpeg binary is available)
    decisions.png    contact sheet: for every manager decision the observation when the goal
                     was chosen, the goal image, the observation K steps later and the max-cosine
                     of the deter K steps later to the goal
    rollouts.png     the worker in imagination toward fixed goals from (a) the manager, (b) a
                     random prior code, (c) another replay state through the goal autoencoder
    atlas.png        each code variable swept over its classes, plus random codes
    reach.png        (known-state worlds) the worker alone toward every cell's goal
    values.png       (known-state worlds) per cell: reward head, exploration bonus, manager
                     critics, and where the manager's goal points from there
    openloop.png     the world model's open-loop prediction: truth / model / error
    curves.png       training curves from logs/version_*/metrics.csv and episodes.csv
    report.html      all of the above in one self-contained page
    summary.json     the numbers: goal reaching, goal positions, open-loop error, episodes

Goal quality ("are the goals meaningful?"): for each goal period of the episodes, the max-cosine
of the deter reached at the period's end to its goal (mean, fraction above 0.7). On Pin Pad and
the grid mazes, each decoded goal image is located at the cell whose rendering is nearest in
pixels, and compared with where the agent actually is K steps later (exactly, and within one
cell in Manhattan distance).

Data for the rollouts and the open-loop check come from the run's replay (episode files in
RUN_DIR/replay/rank0 plus the unfinished episodes kept in the checkpoint's stream file); when
there is none (a bare checkpoint file, or a run too short to have any), from the episodes just
recorded with the agent.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from director import checkpoints
from goal_vis import html, imaging
from goal_vis.atlas import atlas_image
from goal_vis.curves import plot_curves
from goal_vis.decode import decode_feat
from goal_vis.episode import EpisodeRecord, StateProbe, goal_frames, private_rng, run_episode
from goal_vis.reach import reach_image, reach_map
from goal_vis.rollouts import open_loop_sheet, rollout_sheet
from goal_vis.values import value_image, value_map
from goal_vis.video import ffmpeg_binary, video_frames, write_gif, write_mp4

THRESHOLD = 0.7  # a goal period counts as reached above this max-cosine
REPLAY_CAPACITY = 10_000  # newest replay steps loaded for the rollouts and open-loop chunks
OPEN_LOOP_LENGTH = 50  # frames per open-loop chunk (context + prediction)
CONTEXT = 5


def goals_command(args: argparse.Namespace, module: Any, info: dict, run_dir: Path | None, out: Path) -> int:
    """`director goals` for a loaded module (the CLI loads it); prints the summary lines."""
    summary = make_report(module, info, out, run_dir=run_dir, episodes=int(args.episodes),
                          seed=int(args.seed), max_steps=int(args.max_steps or 2000),
                          video_steps=int(args.video_steps or 300), horizon=int(args.horizon or 64))
    quality = summary["goal_reaching"]
    print(f"goals: {quality['periods']} goal periods, max-cosine at period end "
          f"{_fmt(quality['mean'])} (>{THRESHOLD}: {_fmt(quality['frac_above'])}); "
          f"positions exact {_fmt(summary['goal_positions'].get('exact'))}, within one cell "
          f"{_fmt(summary['goal_positions'].get('within_one'))}")
    for name, path in summary["files"].items():
        if path:
            print(f"{name}: {out / path}")
    return 0


def _fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


# ---------------------------------------------------------------------------------- data
def _stream_pending(run_dir: Path, info: dict) -> dict[int, dict[str, np.ndarray]]:
    """The unfinished episodes of rank 0 stored in the checkpoint's stream file (or {})."""
    tag = info.get("stream_tag")
    if tag is None:
        return {}
    path = checkpoints.stream_path(run_dir / "checkpoints", 0, tag)
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
        return dict(state["replay"]["pending"])
    except Exception:  # noqa: BLE001 - a missing or unreadable stream file only loses these steps
        return {}


def run_replay(run_dir: Path | None, info: dict, want: int):
    """A Replay holding the run's newest episodes and unfinished steps, with chunk length
    min(want, longest available sequence), or None when there are too few steps."""
    from director.replay import Replay, episode_files

    if run_dir is None:
        return None
    directory = run_dir / "replay" / "rank0"
    lengths = [f.length for f in episode_files(directory)]
    pending = _stream_pending(run_dir, info)
    lengths += [len(v["is_first"]) for v in pending.values()]
    if not lengths or max(lengths) < CONTEXT + 1:
        return None
    length = min(want, max(lengths))
    replay = Replay(directory if directory.is_dir() else None, REPLAY_CAPACITY, length)
    replay.load()
    replay.directory = None  # read only: adding the unfinished steps must never write files
    for worker, data in pending.items():
        for t in range(len(data["is_first"])):
            replay.add({k: v[t] for k, v in data.items()}, worker=worker)
    return replay


def episode_replay(records: list[EpisodeRecord], want: int):
    """A memory Replay of the recorded episodes (one stream each), or None if all are short."""
    from director.replay import Replay

    longest = max(r.length for r in records)
    if longest < CONTEXT + 1:
        return None
    replay = Replay(None, sum(r.length for r in records) + 1, min(want, longest))
    for worker, record in enumerate(records):
        steps = record.steps()
        for t in range(record.length):
            replay.add({k: v[t] for k, v in steps.items()}, worker=worker)
    return replay


def chunk_data(run_dir: Path | None, info: dict, records: list[EpisodeRecord], seed: int,
               *counts: int) -> tuple[str, list[dict[str, np.ndarray]] | None]:
    """(source, one batch of chunks per count) from the run's replay, else from the recorded
    episodes; (reason, None) when neither has enough steps."""
    sources = (("run replay", lambda: run_replay(run_dir, info, OPEN_LOOP_LENGTH)),
               ("fresh rollout of the agent", lambda: episode_replay(records, OPEN_LOOP_LENGTH)))
    for name, make in sources:
        replay = make()
        if replay is None:
            continue
        replay.rng = np.random.default_rng(seed)
        try:
            return name, [replay.sample_within_episodes(n) for n in counts]
        except ValueError:  # no stream holds a whole chunk
            continue
    return f"none (fewer than {CONTEXT + 1} consecutive steps)", None


# ---------------------------------------------------------------------------------- figures
def decision_sheet(records: list[EpisodeRecord], k: int, limit: int = 256, columns: int = 4,
                   target: int = 64) -> tuple[np.ndarray, int]:
    """Contact sheet of the manager decisions (at most `limit`). Returns (image, shown)."""
    cells = []
    size = records[0].images.shape[1]
    scale = imaging.panel_scale(size, target)
    blank = np.full_like(records[0].images[0], 255)
    for rec in records:
        for index, d in enumerate(rec.decisions):
            if len(cells) >= limit:
                break
            later = rec.images[d.end] if d.end is not None else blank
            panels = (rec.images[d.step], d.image, later)
            body = imaging.hstack([imaging.upscale(x, scale) for x in panels], gap=2)
            lines = [f"ep {d.episode} goal #{index}: t={d.step} -> {d.end if d.end is not None else 'end'}",
                     f"max-cos {d.reached:.2f}" if d.reached is not None else "period cut short"]
            if d.goal_pos is not None:
                lines[-1] += f"  goal cell {d.goal_pos}, reached {d.end_pos}"
            cells.append(imaging.caption(body, lines))
    head = imaging.text_bar(min(columns, len(cells)) * (cells[0].shape[1] + 4),
                            f"each cell: observation when the goal was chosen | decoded goal | "
                            f"observation K={k} steps later")
    return imaging.vstack([head, imaging.grid(cells, columns, gap=4)], gap=2), len(cells)


def episode_video(record: EpisodeRecord, k: int, steps: int, out: Path) -> tuple[Path, Path | None]:
    t_max = min(record.length, steps)
    goals = goal_frames(record)[:t_max]
    labels = [f"step {t}  goal phase {record.phase[t] + 1}/{k}  goal #{record.active[t]}  "
              f"return {record.rewards[:t + 1].sum():g}" for t in range(t_max)]
    scale = imaging.panel_scale(record.images.shape[1], 256)
    frames, palette = video_frames(record.images[:t_max], goals, labels, scale)
    gif = write_gif(frames, palette, out / "episode.gif")
    mp4 = write_mp4(palette[frames], out / "episode.mp4") if ffmpeg_binary() else None
    return gif, mp4


# ---------------------------------------------------------------------------------- metrics
def goal_metrics(records: list[EpisodeRecord], probe: StateProbe, agent: Any) -> tuple[dict, dict]:
    """(goal reaching, goal positions) over the complete goal periods of `records`."""
    periods = [d for r in records for d in r.decisions if d.reached is not None]
    reached = [d.reached for d in periods]
    incomplete = sum(1 for r in records for d in r.decisions if d.reached is None)
    reaching = {"periods": len(periods), "incomplete_periods": incomplete,
                "mean": _mean(reached), "threshold": THRESHOLD,
                "frac_above": _mean([float(x > THRESHOLD) for x in reached])}
    if not probe.available:
        return reaching, {"available": False, "reason": "the world does not expose its true state "
                                                        "(agent_pos, render_state, free_cells)"}
    located = [d for d in periods if d.goal_pos is not None and d.end_pos is not None]

    def dist(a: tuple[int, int], b: tuple[int, int]) -> int:
        return abs(a[0] - b[0]) + abs(a[1] - b[1])

    # How reliable is nearest-image grounding for this decoder? Locate the reconstructions of
    # the observations at the decision steps and compare with the true cells.
    recon_hits = []
    for r in records:
        steps = [d.step for d in r.decisions]
        if not steps:
            continue
        feats = np.concatenate([r.deter[steps], r.stoch[steps]], -1)
        for t, image in zip(steps, decode_feat(agent, torch.as_tensor(feats))):
            pos = probe.locate(image, r.contexts[t])
            recon_hits.append(float(pos == r.positions[t]))
    positions = {
        "available": True, "periods": len(located), "cells": len(probe.cells),
        "exact": _mean([float(d.goal_pos == d.end_pos) for d in located]),
        "within_one": _mean([float(dist(d.goal_pos, d.end_pos) <= 1) for d in located]),
        "goal_at_start": _mean([float(d.goal_pos == d.start_pos) for d in located]),
        "agent_stayed": _mean([float(d.start_pos == d.end_pos) for d in located]),
        "chance_exact": 1.0 / len(probe.cells) if probe.cells else None,
        "reconstruction_located": _mean(recon_hits),
        "mean_distance": _mean([float(dist(d.goal_pos, d.end_pos)) for d in located]),
    }
    return reaching, positions


# ---------------------------------------------------------------------------------- report
def make_report(module: Any, info: dict, out: str | Path, run_dir: Path | None = None, episodes: int = 1,
                seed: int = 0, max_steps: int = 2000,
                video_steps: int = 300, horizon: int = 64, rollout_starts: int = 2,
                open_loop_chunks: int = 3, mode: str = "eval") -> dict:
    """Build every figure, report.html and summary.json into `out` for a trained DirectorModule
    (`info`: its checkpoint's director entry; `run_dir`: its run directory, for the replay and
    the curves, or None); returns the summary. Raises CheckpointError / WorldError for bad input.

    `episodes` episodes of at most `max_steps` env steps each (worker actions by `mode`: "eval"
    takes the worker's mode action, "train" samples it; the manager always samples); the video
    shows the first `video_steps` steps of episode 0; the worker rollouts run `horizon` imagined
    steps from `rollout_starts` start states; the open-loop figure shows `open_loop_chunks` chunks.
    """
    import worlds
    from director.errors import CheckpointError

    started = time.time()
    cfg, agent = module.cfg, module.agent
    if getattr(agent, "goal_ae", None) is None:
        raise CheckpointError(f"The checkpoint's agent is {cfg.agent!r}, which has no goals: "
                              "`director goals` needs a Director run (agent=director).")
    ckpt_path = info.get("checkpoint", "")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    k = agent.goal_every
    files: dict[str, str | None] = {}
    sections: list[html.Section] = []

    env = worlds.make(cfg.env.world, seed=seed, **cfg.env.world_options())
    probe = StateProbe(env)
    try:
        with private_rng(seed, module.device):
            records = []
            for e in range(episodes):
                records.append(run_episode(module, env, max_steps=max_steps, mode=mode, episode=e,
                                           probe=probe))
            reaching, positions = goal_metrics(records, probe, agent)
            reach = reach_map(agent, env, steps=2 * k, mode=mode)
            files["reach"] = None
            if reach:
                Image.fromarray(reach_image(reach, records[0].images[0])).save(out / "reach.png")
                files["reach"] = "reach.png"
            vmap = value_map(agent, env)
            files["values"] = None
            if vmap:
                Image.fromarray(value_image(vmap, records[0].images[0])).save(out / "values.png")
                files["values"] = "values.png"

            gif, mp4 = episode_video(records[0], k, video_steps, out)
            files["episode_gif"], files["episode_mp4"] = gif.name, (mp4.name if mp4 else None)
            sheet, shown = decision_sheet(records, k)
            Image.fromarray(sheet).save(out / "decisions.png")
            files["decisions"] = "decisions.png"

            data_source, chunks = chunk_data(run_dir, info, records, seed, 2 * rollout_starts,
                                             open_loop_chunks)
            rollout_stats, open_loop_stats = {}, {}
            files["rollouts"] = files["openloop"] = None
            if chunks is not None:
                image, rollout_stats = rollout_sheet(agent, chunks[0], starts=rollout_starts, horizon=horizon,
                                                     every=max(1, horizon // 16))
                Image.fromarray(image).save(out / "rollouts.png")
                image, open_loop_stats = open_loop_sheet(agent, chunks[1], CONTEXT)
                Image.fromarray(image).save(out / "openloop.png")
                files["rollouts"], files["openloop"] = "rollouts.png", "openloop.png"

            first = records[0].decisions[0] if records[0].decisions else None
            base = torch.as_tensor(first.code) if first else agent.goal_ae.prior_sample((1,), module.device)[0]
            # A conditioned autoencoder decodes against the state of that first decision.
            context = first.context if first and agent.goal_ae.context else None
            note = "Base code: the manager's first code of episode 0." + (
                " Every code is decoded against the state of that decision (goal.context)." if context is not None else "")
            Image.fromarray(atlas_image(agent, base, base_note=note, context=context)).save(out / "atlas.png")
            files["atlas"] = "atlas.png"
    finally:
        env.close()

    curves, titles = plot_curves(run_dir, out / "curves.png") if run_dir is not None else (None, [])
    files["curves"] = curves.name if curves else None

    summary = {
        "out": str(out), "checkpoint": str(ckpt_path),
        "world": cfg.env.world, "image_size": cfg.env.size, "goal_every": k,
        "updates": info.get("updates"), "env_steps": info.get("env_steps"), "seed": seed,
        "episodes": [{"return": r.ret, "length": r.length - 1, "success": r.success,
                      "decisions": len(r.decisions)} for r in records],
        "goal_reaching": reaching, "goal_positions": positions,
        "worker_reach": {k: v for k, v in reach.items() if k in ("exact", "within_one", "steps", "mode")}
        if reach else {"available": False},
        "values": _value_summary(vmap),
        "imagined_rollouts": {"horizon": horizon, "data": data_source, **rollout_stats},
        "open_loop": {"context": CONTEXT, "data": data_source, **open_loop_stats},
        "curves": titles,
        "files": {**files, "report": "report.html", "summary": "summary.json"},
        "mode": mode, "max_steps": max_steps, "seconds": round(time.time() - started, 1),
    }
    sections += _sections(summary, out, records, shown, titles, video_steps)
    html.write(out / "report.html", f"Director goals: {cfg.env.world}",
               sections, subtitle=f"{ckpt_path} - {info.get('updates')} updates, {info.get('env_steps')} env "
                                  f"steps - generated {datetime.datetime.now():%Y-%m-%d %H:%M}")
    summary["seconds"] = round(time.time() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    return summary


def _value_summary(vmap: dict) -> dict:
    """Per reading of the value map: min, max, and the value on the task goal's cell."""
    if not vmap:
        return {"available": False}
    goal = vmap["cells"].index(vmap["goal"]) if vmap.get("goal") in vmap["cells"] else None
    out: dict[str, Any] = {"available": True, "toward_closer": vmap.get("toward_closer")}
    for name, vals in vmap["values"].items():
        out[name] = {"min": min(vals), "max": max(vals), "at_goal": vals[goal] if goal is not None else None}
    return out


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(type(x))


def _sections(summary: dict, out: Path, records: list[EpisodeRecord], shown: int,
              titles: list[str], video_steps: int) -> list[html.Section]:
    files, k = summary["files"], summary["goal_every"]
    reaching, positions = summary["goal_reaching"], summary["goal_positions"]
    quality = html.Section(
        "Are the goals meaningful?",
        f"Over {reaching['periods']} complete goal periods of {len(records)} episode(s): the max-cosine "
        f"between the deter state reached at the end of each period and its goal (1 = reached exactly).",
        table=[("goal periods (complete / cut short)",
                f"{reaching['periods']} / {reaching['incomplete_periods']}"),
               ("mean max-cosine at period end", reaching["mean"]),
               (f"fraction of periods above {THRESHOLD}", reaching["frac_above"])])
    if positions.get("available"):
        quality.table += [
            ("goal position = agent position K steps later (exact)", positions["exact"]),
            ("... within one cell (Manhattan <= 1)", positions["within_one"]),
            ("mean Manhattan distance goal to reached cell", positions["mean_distance"]),
            ("chance of an exact match (1 / reachable cells)", positions["chance_exact"]),
            ("goal position = position when chosen", positions["goal_at_start"]),
            ("agent did not move during the period", positions["agent_stayed"]),
            ("reconstructions located at the true cell", positions["reconstruction_located"]),
        ]
        quality.notes.append(
            "A decoded goal's position is the reachable cell whose rendered image is nearest (L2 in "
            "pixels) to the goal image (Pin Pad: rendered with the pad history at the time of the "
            "decision). The reconstruction row checks that this grounding works for this decoder: "
            "it locates the model's reconstruction of the actual observation.")
    else:
        quality.notes.append(f"Goal positions: not available ({positions.get('reason')}).")
    reach = summary["worker_reach"]
    if files.get("reach"):
        quality.images.append((out / files["reach"], "worker reach map"))
        quality.table += [
            (f"worker alone reaches a cell's goal within {reach['steps']} steps (exact)", reach["exact"]),
            ("... within one cell", reach["within_one"])]
        quality.notes.append(
            "Reach map: every reachable cell in turn is the goal (the goal autoencoder's reconstruction "
            "of the state of standing there); the worker alone acts from the reset state toward it for "
            "2K steps. Each cell shows the distance at which the worker stopped from it (green 0, "
            "yellow 1, red 2 or more). The manager can only use goals the worker reaches.")
    values = summary["values"]
    if files.get("values"):
        quality.images.append((out / files["values"], "value map"))
        quality.table += [(f"{name}: min / max / on the goal cell",
                           f"{_fmt(v['min'])} / {_fmt(v['max'])} / {_fmt(v['at_goal'])}")
                          for name, v in values.items() if isinstance(v, dict)]
        quality.table.append(("cells whose manager goal (mode) is nearer the task goal",
                              values["toward_closer"]))
        quality.notes.append(
            "Value map: every reachable cell encoded as in the reach map; per cell the reward head's "
            "prediction, the exploration bonus, and the manager's critics (blue lowest, yellow highest; "
            "the task goal outlined in white). The last panel links each cell to the cell of the "
            "manager's mode goal from there (nearest by max-cosine).")
    episodes = html.Section("Episodes", table=[
        (f"episode {i}", f"return {e['return']:g}, {e['length']} steps, success {e['success']}, "
                         f"{e['decisions']} decisions") for i, e in enumerate(summary["episodes"])])
    sections = [quality, episodes]
    video = html.Section("Episode video", f"Observation | decoded current goal, episode 0, the first "
                                          f"{min(records[0].length, video_steps)} of {records[0].length} "
                                          f"observations; the goal changes every K={k} steps.",
                         images=[(out / files["episode_gif"], "episode video")])
    if files.get("episode_mp4"):
        video.notes.append(f"Also as MP4: {files['episode_mp4']}.")
    sections.append(video)
    total = sum(len(r.decisions) for r in records)
    shown_text = f"All {total}" if shown == total else f"The first {shown} of {total}"
    sections.append(html.Section("Manager decisions", f"{shown_text} decisions: observation when the "
                                 f"goal was chosen | goal image | observation K={k} steps later, with the "
                                 "max-cosine of the state reached to the goal.",
                                 images=[(out / files["decisions"], "decisions")]))
    if files.get("rollouts"):
        stats = summary["imagined_rollouts"]
        sections.append(html.Section(
            "Worker rollouts in imagination",
            f"From replay start states the worker acts {stats['horizon']} imagined steps with the goal held "
            f"fixed; goals from (a) the manager, (b) a random prior code, (c) another replay state through "
            f"the goal autoencoder. Data: {stats['data']}.",
            images=[(out / files["rollouts"], "worker rollouts")],
            table=[(f"{name}: max-cosine at t={stats['horizon']} / best along the rollout",
                    f"{_fmt(stats[name]['final'])} / {_fmt(stats[name]['best'])}")
                   for name in ("manager", "prior", "replay") if name in stats]))
    sections.append(html.Section("Goal atlas", "Each code variable swept over its classes with the others "
                                 "fixed, then random codes of the prior.",
                                 images=[(out / files["atlas"], "goal atlas")]))
    if files.get("openloop"):
        ol = summary["open_loop"]
        sections.append(html.Section(
            "World model: open-loop prediction",
            f"{ol['context']} observed frames, then prediction with the true actions. Data: {ol['data']}.",
            images=[(out / files["openloop"], "open loop")],
            table=[("MSE per pixel, observed frames", ol.get("mse_context")),
                   ("MSE per pixel, open-loop frames", ol.get("mse_open_loop"))]))
    if files.get("curves"):
        sections.append(html.Section("Training curves", "From logs/version_*/metrics.csv (all sessions, by "
                                     "env steps) and episodes.csv.",
                                     images=[(out / files["curves"], "training curves")],
                                     notes=[f"{len(titles)} panels: " + ", ".join(titles) + "."]))
    else:
        sections.append(html.Section("Training curves",
                                     notes=["No training logs found next to the checkpoint."]))
    return sections
