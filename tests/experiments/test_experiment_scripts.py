"""Smoke tests of the experiment scripts: each runs with --quick in a subprocess (seconds)."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _run(script: str, *args: str, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYGLET_HEADLESS": "1", "LP_NUM_THREADS": "0"}
    return subprocess.run([sys.executable, str(EXPERIMENTS / script), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def _last_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr[-3000:]
    return lines[-1]


def _load_script(name: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_world_model_quick(tmp_path):
    result = _run("bench_world_model.py", "--quick", "--threads", "1", cwd=tmp_path)
    line = _last_line(result)
    assert line.startswith("bench_world_model: debug WM update "), line
    assert "Director update" in line and "peak RSS" in line and "matmul peak" in line
    assert "| debug | 4x8, 16 |" in result.stdout  # the markdown table row


def test_wm_learning_quick(tmp_path):
    out = tmp_path / "wm"
    result = _run("wm_learning.py", "--quick", "--threads", "1", "--out", str(out), cwd=tmp_path)
    line = _last_line(result)
    assert line.startswith("wm_learning: pinpad-three 40 updates, image_loss "), line
    assert "copy-baseline" in line and line.rstrip().endswith("[quick: baseline check skipped]")
    assert ": PASS" in line
    assert (out / "run" / "checkpoints" / "last.ckpt").exists()
    with Image.open(out / "openloop.png") as image:
        width, height = image.size
    assert width > 16 * 4 * 10 and height > 16 * 4 * 3 * 2  # >= 10 columns, >= 2 sequences of 3 rows
    mse = np.load(out / "openloop_mse.npz")
    assert mse["model"].shape == (30,) and mse["copy"].shape == (30,)
    assert np.isfinite(mse["model"]).all()


def test_bench_worlds_counts_a_maze_success_once_per_episode():
    bench = _load_script("bench_worlds")
    rate, first = bench.random_success("maze-s", 40)
    # The random walker pays on every step it stands on the goal; success is per episode.
    assert 0.05 <= rate <= 0.6
    assert 12 <= first <= 200  # no walk is shorter than the shortest path, none longer than the limit
    rate, first = bench.random_success("maze-s", 5, max_steps=11)   # cut before the shortest path
    assert rate == 0.0 and np.isnan(first)


def test_pinpad_visits_counts_every_step(tmp_path):
    out = tmp_path / "wm"
    assert _run("wm_learning.py", "--quick", "--threads", "1", "--out", str(out), cwd=tmp_path).returncode == 0
    result = _run("pinpad_visits.py", str(out / "run"), "--steps", "50", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert "50 steps (train actions)" in lines[0] and "distinct cells" in lines[0], lines[0]
    grid = [[0 if v == "." else int(v) for v in row.split()] for row in lines[2:]]
    assert len(grid) == 14 and all(len(row) == 16 for row in grid)
    assert sum(map(sum, grid)) == 50  # one visit per step (counts below 100)
    assert all(row[0] == 0 and row[-1] == 0 for row in grid)  # never inside the border wall


def test_pinpad_visits_locates_the_agent_in_a_rendering():
    import worlds
    from worlds.pinpad import BAR_ROWS, GRID_HEIGHT, GRID_WIDTH

    visits = _load_script("pinpad_visits")
    world = worlds.make("pinpad-three", size=64).unwrapped
    cells = world.free_cells()
    for pos in (cells[0], cells[len(cells) // 2], cells[-1]):
        pos = (int(pos[0]), int(pos[1]))
        assert visits.agent_cell(world.render_state(pos, (1, 2)), GRID_HEIGHT, GRID_WIDTH, BAR_ROWS) == pos
    floor = np.full((64, 64, 3), 200, np.uint8)
    assert visits.agent_cell(floor, GRID_HEIGHT, GRID_WIDTH, BAR_ROWS) is None


def test_pinpad_visits_maps_the_managers_goals(tmp_path):
    from director import config
    from director.run import train

    run = train(config.load("debug", [f"train.run_dir={tmp_path / 'run'}", "train.steps=96", "replay.prefill=64",
                                      "train.threads=1"]), progress=False)
    result = _run("pinpad_visits.py", str(run), "--steps", "10", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("manager goals: "))
    # The debug preset draws a goal every 4 steps: at steps 0, 4 and 8 of 10.
    assert lines[header].startswith("manager goals: 3 chosen, "), lines[header]
    shown = int(lines[header].split(", ")[1].split()[0])
    grid = [[0 if v == "." else int(v) for v in row.split()] for row in lines[header + 1:]]
    assert len(grid) == 14 and sum(map(sum, grid)) == shown


def test_profile_update_debug_on_cpu(tmp_path):
    result = _run("profile_update.py", "--preset", "debug", "--rows", "3", "--time", "2", cwd=tmp_path)
    _last_line(result)  # exit 0
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("profile_update:")]
    assert lines[0].startswith("profile_update: debug on cpu (32, eager), per update: "), lines
    assert "CPU self time" in lines[0] and "kernel launches" in lines[0]
    assert re.fullmatch(r"profile_update: debug on cpu \(32, eager\): [0-9.]+ ms per update "
                        r"\(median of 2, outside the profiler\); first update [0-9.]+ s", lines[1]), lines


def test_profile_update_phases_reports_compile_cpu_and_phases(capsys):
    profile = _load_script("profile_update")
    step = torch.compile(lambda x: torch.relu(x) * 2, backend="eager")  # dynamo's phases only: fast
    step(torch.ones(3))
    profile._print_phases(12.5, [9.0, 3.5], rows=8)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("profile_update: first update (the compile) 12.5 s wall, 9.0 s CPU in this process, "
                        "3.5 s CPU in child processes (the C++ compiler)"), lines
    assert 1 <= len(lines) - 1 <= 8 and all(re.fullmatch(r" *[0-9.]+ s  \S.*", ln) for ln in lines[1:]), lines
    assert any(ln.endswith("_compile.compile_inner") for ln in lines[1:]), lines


def test_profile_update_phases_needs_compile(tmp_path):
    result = _run("profile_update.py", "--preset", "debug", "--phases", cwd=tmp_path)
    assert result.returncode == 2 and "--phases needs --compile MODE" in result.stderr, result.stderr


def test_bench_update_summary_line_and_peer_preset():
    bench = _load_script("bench_update")
    runs = [{"ms": 210.0, "peak_rss_mb": 500.0, "first_s": 0.3},
            {"ms": 190.0, "peak_rss_mb": 520.0, "first_s": 0.2}]
    base = bench.aggregate(runs)
    assert base["ms"] == 200.0 and base["peak_rss_mb"] == 520.0  # median of the per-run medians, largest RSS
    assert bench.aggregate([{"skipped": "no Agent.compile"}]) == {"skipped": "no Agent.compile"}
    eager, fast = (bench.aggregate([{"ms": ms, "peak_rss_mb": 400.0, "first_s": 9.0, "precision": p}])
                   for ms, p in ((150.0, "fp32"), (80.0, "bf16")))
    results = {"default": {"baseline": base, "eager": eager, "fast": fast},
               "peer": {"baseline": {"ms": 12_345.0}, "eager": {"ms": 9_000.0}, "fast": {}}}
    assert bench.summary_line(results) == ("bench_update: default eager 200 ms -> fast 80 ms (2.50x); "
                                           "peer-size eager 12.35 s -> fast n/a (n/a)")
    results["default"]["eager"]["flops"] = 15e9  # 100 GFLOP/s at 150 ms
    rows = bench.table({"default": results["default"]}, {"fp32": 200.0, "bf16": 400.0})
    assert "| default | eager | 150.0 ms | 1.33x | 100.0 | 50.0% |" in rows[3]
    assert rows[4] == "| default | fast | 80.0 ms | 2.50x | 187.5 | 46.9% | 400 | 9.0 |"  # % of the bf16 peak
    results["default"]["fast"]["precision"] = "fp32"  # a CPU without native bf16: fp32's peak
    assert "| 187.5 | 93.8% |" in bench.table({"default": results["default"]}, {"fp32": 200.0, "bf16": 400.0})[4]
    assert bench.table({"peer": {"fast": {"skipped": "no Agent.compile"}}}, {})[-1] == \
        "| peer | fast | no Agent.compile | | | | | |"
    assert bench.summary_line({}) == ("bench_update: default eager n/a -> fast n/a (n/a); "
                                      "peer-size eager n/a -> fast n/a (n/a)")

    from director import config
    cfg = config.load("peer")
    rssm = cfg.model.rssm
    assert (rssm.deter, rssm.stoch, rssm.classes, rssm.hidden) == (512, 32, 32, 512)
    assert (cfg.model.cnn_depth, cfg.replay.batch, cfg.replay.length, cfg.env.size) == (32, 16, 64, 64)
    assert (cfg.manager.goal_every, cfg.imag_horizon) == (8, 16)
    # Every value pinned in the file itself (no `base:`), so schema defaults cannot move it;
    # keys added after the baseline commit (the fast path's train.compile*, and keys that do not
    # change an update: env.options, train.eval_episodes) stay out so that commit loads it too.
    from omegaconf import OmegaConf
    pinned = set(bench._flatten(OmegaConf.to_container(OmegaConf.load(EXPERIMENTS / "presets" / "peer.yaml"))))
    # manager.expl_min_std, the actors' actor_ema and entropy_max, goal.context, goal.novelty and
    # model.image_output and train.greedy_envs came later too; their defaults (0.01; 0, no EMA
    # actor; 100, the cap the baseline hard-codes; false, the paper's autoencoder; sigmoid; 0,
    # every env samples) are the baseline's behaviour.
    later = ("train.compile", "env.options", "train.eval_episodes", "train.eval_every", "manager.expl_min_std",
             "train.keep_checkpoints", "manager.ac.actor_ema", "worker.ac.actor_ema", "actor.actor_ema", "goal.context",
             "goal.novelty", "model.image_output", "manager.ac.entropy_max", "worker.ac.entropy_max",
             "actor.entropy_max", "train.greedy_envs")
    assert {k for k in config.valid_keys() if not k.startswith(later)} <= pinned


def test_bench_learning_trains_seeds_and_reports_final_and_periodic_evaluations(tmp_path):
    out = tmp_path / "out"
    result = _run("bench_learning.py", "--preset", "debug", "--world", "maze-s", "--steps", "224",
                  "--eval-every", "96", "--episodes", "2", "--agents", "director,dreamer", "--seeds", "0,1",
                  "--jobs", "2", "--target", "1.0", "--out", str(out), "replay.prefill=64", "env.num_envs=1", cwd=tmp_path,
                  timeout=600)
    line = result.stdout.strip().splitlines()[-1]
    # Debug-sized runs do not reach the goal, so the target 1.0 fails: exit code 1, FAIL line.
    assert result.returncode == 1 and line.startswith("bench_learning: maze-s FAIL"), result.stdout + result.stderr
    results = __import__("json").loads((out / "results.json").read_text())
    assert set(results["runs"]) == {"director-s0", "director-s1", "dreamer-s0", "dreamer-s1"}
    assert results["director"]["mode_success"]["mean"] < 1.0 and results["verdict"]["status"] == "FAIL"
    for run in results["runs"]:
        evals = (out / run / "evals.csv").read_text().splitlines()
        assert evals[0].startswith("env_steps,updates,episodes,return,success") and len(evals) == 3
        assert "env_steps" in (out / run / "metrics.csv").read_text().splitlines()[0].split(",")
        episodes = list(__import__("csv").DictReader(open(out / run / "episodes.csv")))
        found = results["runs"][run]["exploration"]
        assert found["coverage"] == int(float(episodes[-1]["coverage"])) > 0
        assert found["goal_episodes"] == sum(e["success"] == "True" for e in episodes)
        assert found["cells_per_episode_last_quarter"] > 0
        late = results["runs"][run]["late"]  # the newest kept checkpoints, the final one last
        assert 1 <= len(late["env_steps"]) <= 4 and late["env_steps"] == sorted(late["env_steps"])
        assert late["env_steps"][-1] == results["runs"][run]["env_steps"]
        assert late["mean"] == sum(late["mode_success"]) / len(late["mode_success"])
    assert "checkpoints" in line and "late_mode_success" in results["director"]
    assert Image.open(out / "curves.png").size[0] > 1000


def _debug_agent_groups(ckpt: dict) -> list:
    """The optimiser groups (name, module, settings) of the agent a checkpoint was saved from."""
    from director import config
    from director.module import DirectorModule
    module = DirectorModule(config.from_dict(ckpt["director"]["config"]), run_dir=None, spec=ckpt["director"]["spec"])
    return module.agent.optim_groups()


def test_branch_run_continues_a_checkpoint_under_new_settings(tmp_path, capsys):
    from director import checkpoints, config
    from director.run import train
    branch_run = _load_script("branch_run")
    run = tmp_path / "run"
    train(config.load("debug", [f"train.run_dir={run}", "train.steps=128", "replay.prefill=32",
                                "train.checkpoint_every=64", "train.keep_checkpoints=4", "train.threads=1"]),
          progress=False)
    kept = sorted((run / "checkpoints").glob("update-*.ckpt"))
    at = int(kept[0].stem.rsplit("-", 1)[1])
    assert len(kept) >= 2 and at < 128
    last_before = (run / "checkpoints" / "last.ckpt").read_bytes()
    new = tmp_path / "branch"
    assert branch_run.main([str(run), "--at", str(at), str(new), "replay.reward_chunks=0.5",
                            "worker.ac.actor_opt.lr=3e-5"]) == 0
    _, ckpt, _ = checkpoints.load(new)
    assert ckpt["director"]["env_steps"] == at
    # A learning-rate override reaches the optimiser state that resuming loads; the moments stay.
    _, source, _ = checkpoints.load(kept[0])
    names = [name for name, _, _ in _debug_agent_groups(ckpt)]
    for i, name in enumerate(names):
        lrs = {g["lr"] for g in ckpt["optimizer_states"][i]["param_groups"]}
        assert lrs == ({3e-5} if name == "worker_actor" else {g["lr"] for g in source["optimizer_states"][i]["param_groups"]})
        for key, moments in source["optimizer_states"][i]["state"].items():
            assert torch.equal(moments["exp_avg"], ckpt["optimizer_states"][i]["state"][key]["exp_avg"])
    assert ckpt["director"]["config"]["replay"]["reward_chunks"] == 0.5
    assert ckpt["director"]["config"]["train"]["run_dir"] == str(new)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == last_before  # the source is only read
    train(None, resume=new, progress=False, overrides=["train.steps=96"])
    _, ckpt, _ = checkpoints.load(new)
    assert ckpt["director"]["env_steps"] >= 96 and ckpt["director"]["config"]["replay"]["reward_chunks"] == 0.5
    # Bad input: no checkpoint there, or an existing destination: exit 2, nothing written.
    assert branch_run.main([str(run), "--at", "7", str(tmp_path / "b2")]) == 2
    assert "no checkpoint at 7 env steps" in capsys.readouterr().err and not (tmp_path / "b2").exists()
    assert branch_run.main([str(run), "--at", str(at), str(new)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_trace_eval_reports_every_decision_and_step(tmp_path, capsys):
    from director import config
    from director.run import train
    trace_eval = _load_script("trace_eval")
    run = train(config.load("debug", [f"train.run_dir={tmp_path / 'run'}", "env.world=maze-s", "train.steps=96",
                                      "replay.prefill=64", "train.threads=1"]), progress=False)
    assert trace_eval.main([str(run), "--episodes", "1", "--max-steps", "10"]) == 0
    out = capsys.readouterr().out
    # The debug preset draws a goal every 4 steps: decisions at steps 0, 4 and 8 of 10.
    decisions = [line for line in out.splitlines() if line.lstrip().startswith("t=")]
    assert [int(line.split("=")[1].split()[0]) for line in decisions] == [0, 4, 8], out
    steps = next(line for line in out.splitlines() if line.lstrip().startswith("steps: "))
    counts = eval(steps.split("steps: ")[1].split(";")[0])  # {'move': m, 'noop': n, 'bump': b}
    assert sum(counts.values()) == 10, steps
    assert "worker entropy (normalised) mean" in out
    # A world without true positions is bad input: exit 2 and a message naming the fix.
    pinpad = train(config.load("debug", [f"train.run_dir={tmp_path / 'pinpad'}", "train.steps=64",
                                         "replay.prefill=32", "train.threads=1"]), progress=False)
    assert trace_eval.main([str(pinpad), "--episodes", "1"]) == 2
    assert "not a grid maze" in capsys.readouterr().err


def test_average_checkpoints_compares_live_and_averaged_actors(tmp_path, capsys):
    from director import config
    from director.run import train
    average = _load_script("average_checkpoints")
    run = train(config.load("debug", [f"train.run_dir={tmp_path / 'run'}", "env.world=maze-s", "train.steps=128",
                                      "replay.prefill=32", "train.checkpoint_every=32", "train.keep_checkpoints=4",
                                      "train.threads=1", "worker.ac.actor_ema=0.9"]), progress=False)
    out_csv = tmp_path / "avg.csv"
    assert average.main([str(run), "--window", "2", "--last", "2", "--episodes", "1", "--max-steps", "20",
                         "--threads", "1", "--csv", str(out_csv)]) == 0
    rows = list(csv.DictReader(open(out_csv)))
    assert len(rows) == 2 and int(rows[0]["env_steps"]) < int(rows[1]["env_steps"])
    assert "actor(s) averaged over 2 checkpoints" in capsys.readouterr().out.splitlines()[-1]
    # The average of one checkpoint is the checkpoint: the same numbers.
    assert average.main([str(run), "--window", "1", "--last", "1", "--episodes", "1",
                         "--threads", "1", "--csv", str(out_csv)]) == 0
    row = next(csv.DictReader(open(out_csv)))
    assert row["live_success"] in ("0.0", "1.0") and row["ema_success"] in ("0.0", "1.0")  # finished episodes
    assert (row["live_success"], row["live_return"]) == (row["averaged_success"], row["averaged_return"])
    # The averaged weights are the mean of the window's (only the actors' change).
    from director import checkpoints
    folder = run / "checkpoints"
    paths = [checkpoints.checkpoint_path(folder, t) for t in checkpoints.tags(folder)[:2][::-1]]
    states = [torch.load(p, map_location="cpu", weights_only=False)["state_dict"] for p in paths]
    mixed = average.averaged_state(paths, average.ACTORS["worker"])
    key = next(k for k in mixed if k.startswith("agent.worker.ac.actor."))
    torch.testing.assert_close(mixed[key], (states[0][key] + states[1][key]) / 2)
    other = next(k for k in mixed if k.startswith("agent.wm.") and states[0][k].is_floating_point())
    assert torch.equal(mixed[other], states[1][other])
    # "live" means the live actors even where the run keeps EMA actors.
    from director.run import load_module
    module, _ = load_module(paths[-1])
    assert average.drop_ema_actors(module) and module.agent.worker.ac.actor_ema is not None
    assert average.drop_ema_actors(module, remove=True) and module.agent.worker.ac.actor_ema is None
    assert not average.drop_ema_actors(module)
    # Too few checkpoints for the window: exit 2 and a message naming the fix.
    assert average.main([str(run), "--window", "9", "--episodes", "1"]) == 2
    assert "train.keep_checkpoints" in capsys.readouterr().err


def test_swap_parts_evaluates_one_checkpoint_with_parts_of_another(tmp_path, capsys, monkeypatch):
    from director import checkpoints, config
    from director.run import train
    swap = _load_script("swap_parts")
    run = train(config.load("debug", [f"train.run_dir={tmp_path / 'run'}", "env.world=maze-s", "train.steps=96",
                                      "replay.prefill=32", "train.checkpoint_every=32", "train.keep_checkpoints=3",
                                      "train.threads=1"]), progress=False)
    folder = run / "checkpoints"
    a, b = (checkpoints.checkpoint_path(folder, t) for t in checkpoints.tags(folder)[:2][::-1])
    out_csv = tmp_path / "swap.csv"
    assert swap.main([str(a), str(b), "--parts", "worker,wm", "--episodes", "1", "--max-steps", "20",
                      "--threads", "1", "--csv", str(out_csv)]) == 0
    rows = list(csv.DictReader(open(out_csv)))
    assert len(rows) == 6 and rows[2]["agent"].endswith("with worker of " + rows[1]["agent"])
    # A swap replaces exactly the named part's tensors.
    sa, sb = (torch.load(p, map_location="cpu", weights_only=False)["state_dict"] for p in (a, b))
    mixed = swap.swapped_state(sa, sb, ["worker"])
    changed = {k for k in sa if sa[k].is_floating_point() and not torch.equal(sa[k], sb[k])}
    assert any(k.startswith("agent.worker.") for k in changed) and any(k.startswith("agent.wm.") for k in changed)
    for k in changed:
        assert torch.equal(mixed[k], sb[k] if k.startswith("agent.worker.") else sa[k])
    # Swapping every part is the other checkpoint.
    everything = swap.swapped_state(sa, sb, ["wm", "goal", "manager", "worker"])
    assert all(torch.equal(everything[k], sb[k]) for k in changed)
    # Each evaluation sees the weights its row names (the module is reloaded between rows).
    def sums(state):
        return [float(sum(v.double().sum() for k, v in state.items()
                          if k.startswith("agent." + p) and v.is_floating_point())) for p in ("worker.", "wm.")]

    seen = []

    def fake_evaluate(module, *args):
        seen.append(sums(module.state_dict()))
        return {"success": 0.0, "return": 0.0}

    monkeypatch.setattr(swap, "evaluate", fake_evaluate)
    assert swap.main([str(a), str(b), "--parts", "worker", "--threads", "1"]) == 0
    expected = [sums(sa), sums(sb), sums(mixed), sums(swap.swapped_state(sb, sa, ["worker"]))]
    assert seen == expected and expected[2] != expected[0] and expected[2] != expected[1]
    # Bad input: exit 2 with a message naming the fix.
    capsys.readouterr()
    assert swap.main([str(a), str(b), "--parts", "critic"]) == 2
    assert "Name some of" in capsys.readouterr().err
    assert swap.main([str(a), str(b), "--parts", "actor"]) == 2
    assert "no part 'actor'" in capsys.readouterr().err
    assert swap.main([str(tmp_path / "missing.ckpt"), str(b)]) == 2
    assert "missing.ckpt" in capsys.readouterr().err


def test_goal_geometry_reads_the_reward_by_maze_distance(tmp_path, capsys):
    goal_geometry = _load_script("goal_geometry")
    # Five cells in a row: a reward that falls with distance points every greedy step the right
    # way; one that rises with it only where a cell has a single neighbour (the two ends, 8 of
    # the 20 pairs), which is nearer whatever the reward.
    cells = [(x, 0) for x in range(5)]
    dist = np.abs(np.arange(5)[:, None] - np.arange(5)[None, :])
    nbrs = goal_geometry.neighbours(cells)
    assert nbrs[0] == [1] and sorted(nbrs[2]) == [1, 3]
    falling = goal_geometry.geometry(1.0 - dist / 10, dist, nbrs)
    assert falling["greedy"] == 1.0 and falling["pairs"] == 20 and falling["at_goal"] == 1.0
    assert falling["bands"][(1, 1)] == 0.9 and falling["bands"][(4, 7)] == 0.6
    assert goal_geometry.geometry(dist / 10, dist, nbrs)["greedy"] == 0.4

    from director import config
    from director.run import train
    run = train(config.load("debug", [f"train.run_dir={tmp_path / 'run'}", "env.world=maze-s", "train.steps=96",
                                      "replay.prefill=64", "train.threads=1"]), progress=False)
    # One finished episode in the replay (the run's own 200-step episodes have not ended): the
    # shortest path from the start, written as the collector names its files.
    import worlds
    from worlds.mazes import MOVES
    cfg = config.load("debug", ["env.world=maze-s"])
    world = worlds.make("maze-s", **cfg.env.world_options()).unwrapped
    world.reset()
    cells, actions = [tuple(world.start_pos)], [np.zeros(5, np.float32)]
    for a in world.shortest_path():
        dx, dy = MOVES[a]
        cells.append((cells[-1][0] + dx, cells[-1][1] + dy))
        actions.append(np.eye(5, dtype=np.float32)[a])
    np.savez_compressed(run / "replay" / "rank0" / f"00000000-0-{len(cells)}.npz",
                        image=np.stack([world.render_state(c) for c in cells]), action=np.stack(actions),
                        is_first=np.arange(len(cells)) == 0)
    capsys.readouterr()
    assert goal_geometry.main([str(run), "--replay", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "cells, deter" in out[0]
    # The reconstruction checks: probe states on every cell, then every step of the replay episode.
    assert out[1].startswith("reconstruction of probe states: the agent on its own cell for ")
    assert f" of {len(world.free_cells())} cells; by steps from the start 0-7: " in out[1]
    assert out[2].startswith("reconstruction along the newest 2 replay episodes: the agent on its own cell for ")
    assert f" of {len(cells)} steps; by steps from the start 0-7: " in out[2]
    out = out[:1] + out[3:]
    # Any state has max-cosine 1 with itself: the goal cell's reward is exactly 1.
    assert out[1].startswith("max_cosine  at goal 1.000") and out[2].startswith("centred")
    assert out[3].startswith("manager's mode goals: reward at their best cell")
    seen = goal_geometry.seen_reading(np.array([True, False, True]), np.array([0, 9, 40]))
    assert seen == {(0, 7): (1, 1), (8, 15): (0, 1), (32, 63): (1, 1), "all": (2, 3)}
    reading = goal_geometry.goals_reading(np.array([[1.0, 0.5, 0.2], [0.1, 0.3, 0.9]]), dist[:3, :3])
    # Goals chosen on cells 0 and 1 score best on cells 0 and 2: 0 and 1 steps away.
    assert reading == {"best": 0.95, "median": 0.4, "steps": 0.5}
    pinpad = train(config.load("debug", [f"train.run_dir={tmp_path / 'pinpad'}", "train.steps=64",
                                         "replay.prefill=32", "train.threads=1"]), progress=False)
    assert goal_geometry.main([str(pinpad)]) == 2
    assert "not a grid maze" in capsys.readouterr().err


def test_maze_approach_reads_how_near_the_goal_each_episode_came(tmp_path, capsys):
    import worlds
    from director import config
    maze_approach = _load_script("maze_approach")
    run = tmp_path / "run"
    (run / "replay" / "rank0").mkdir(parents=True)
    cfg = config.load("debug", ["env.world=maze-s"])
    config.save(cfg, run / "config.yaml")
    env = worlds.make("maze-s", **cfg.env.world_options())
    env.reset()
    world = env.unwrapped
    # Episode 0 walks the shortest path to the goal; episode 1 walks its first 3 steps and back;
    # episode 2 stands on the start. Written as the collector names them: counter-worker-length.
    path = [tuple(world.start_pos)]
    for action in world.shortest_path():
        dx, dy = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))[action]
        path.append((path[-1][0] + dx, path[-1][1] + dy))
    walks = [path, path[:4] + path[2::-1], [path[0]] * 5]
    for i, cells in enumerate(walks):
        images = np.stack([world.render_state(c) for c in cells])
        np.savez_compressed(run / "replay" / "rank0" / f"{i:08d}-0-{len(cells)}.npz", image=images)
    start = len(path) - 1
    dist = maze_approach.goal_distances(world)
    assert dist[tuple(world.goal_pos)] == 0 and dist[tuple(world.start_pos)] == start
    assert maze_approach.main([str(run), "--every", "1000", "--map"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"3 episodes in the replay; start {start} steps from the goal" in out[0]
    # One window: 3 episodes, 1 reached the goal, the nearest approaches 0, start - 3, start.
    assert out[2].split()[-5:] == ["3", "1", "1", "1" if start - 3 > 5 else "2", f"{float(start - 3):.1f}"]
    grid = out[4:]
    assert len(grid) == len(world.rows) and grid[0].split() == ["#"] * len(world.rows[0])
    sx, sy = world.start_pos
    assert grid[sy].split()[sx] == "3"  # every episode visited the start cell
    # Not a run directory, or a world without a goal: exit 2 with the fix.
    assert maze_approach.main([str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    config.save(config.load("debug", []), run / "config.yaml")
    assert maze_approach.main([str(run)]) == 2
    assert "not a grid maze" in capsys.readouterr().err


def _earlier_result(folder: Path, steps: int, runs: dict[str, tuple[float, float]]) -> None:
    """An earlier bench_learning --out folder: results.json and each run's config.yaml, with
    the given (mode success, manager.expl) per run."""
    import json
    folder.mkdir()
    results = {"random": {"episodes": 20, "return": 0.0, "success": 0.05, "length": 800.0}, "steps": steps,
               "preset": "explore", "overrides": [], "runs": {}}
    for name, (success, expl) in runs.items():
        agent, seed = name.rsplit("-s", 1)
        outcome = {"episodes": 20, "return": 10 * success, "success": success, "length": 800.0}
        results["runs"][name] = {"mode": outcome, "sample": outcome, "env_steps": steps, "updates": 1,
                                 "late": {"env_steps": [steps], "mode_success": [success], "mean": success}}
        (folder / name).mkdir()
        (folder / name / "config.yaml").write_text(
            f"agent: {agent}\nenv: {{world: maze-l}}\nmanager: {{expl: {expl}}}\n"
            f"train: {{seed: {seed}, run_dir: /runs/{folder.name}/{name}}}\n")
    (folder / "results.json").write_text(json.dumps(results))


def test_bench_learning_combines_seeds_of_earlier_invocations(tmp_path):
    import json
    _earlier_result(tmp_path / "a", 300000, {"director-s0": (0.1, 0.1), "director-s1": (0.65, 0.1)})
    _earlier_result(tmp_path / "b", 300000, {"director-s2": (0.0, 0.1), "dreamer-s2": (0.0, 0.01)})
    _earlier_result(tmp_path / "c", 300000, {"dreamer-s0": (0.0, 0.01), "dreamer-s1": (0.05, 0.01)})
    out = tmp_path / "out"
    result = _run("bench_learning.py", "--out", str(out), "--combine", str(tmp_path / "a"), str(tmp_path / "b"),
                  str(tmp_path / "c"), cwd=tmp_path)
    line = _last_line(result)
    # Director (0.10 + 0.65 + 0) / 3 = 0.25 >= flat Dreamer's 0.05/3 + 0.2 and random 0.05 + 0.2.
    assert line.startswith("bench_learning: maze-l PASS (director 0.25 >= dreamer 0.02 + 0.2"), line
    merged = json.loads((out / "results.json").read_text())
    assert set(merged["runs"]) == {f"{a}-s{s}" for a in ("director", "dreamer") for s in (0, 1, 2)}
    assert merged["director"]["mode_success"] == {"mean": 0.25, "min": 0.0, "max": 0.65}
    assert merged["sources"]["dreamer-s2"] == str(tmp_path / "b")
    assert merged["config_differences"] == {"manager.expl": {"director-s0": 0.1, "director-s1": 0.1, "director-s2": 0.1,
                                                             "dreamer-s2": 0.01, "dreamer-s0": 0.01, "dreamer-s1": 0.01}}
    assert "config differs in manager.expl" in result.stdout and (out / "curves.png").exists()

    # Only flat Dreamer's seeds of b: Director's three seeds are then 0 and 1 of a alone.
    picked = _run("bench_learning.py", "--out", str(tmp_path / "out2"), "--combine", str(tmp_path / "a"),
                  f"{tmp_path / 'b'}:dreamer", cwd=tmp_path)
    assert set(json.loads((tmp_path / "out2" / "results.json").read_text())["runs"]) == {
        "director-s0", "director-s1", "dreamer-s2"}, picked.stdout + picked.stderr

    # A seed named twice, or another budget: a one-paragraph error, exit code 2, nothing written.
    _earlier_result(tmp_path / "d", 200000, {"director-s3": (1.0, 0.1)})
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "results.json").write_text("{")
    for specs, problem in (([tmp_path / "a", tmp_path / "a"], "director-s0 is in both"),
                           ([tmp_path / "a", tmp_path / "d"], "was run with steps 200000"),
                           ([tmp_path / "missing"], "does not exist"),
                           ([tmp_path / "e"], "not a bench_learning results file")):
        bad = _run("bench_learning.py", "--out", str(tmp_path / "bad"), "--combine", *map(str, specs), cwd=tmp_path)
        assert bad.returncode == 2 and problem in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert not (tmp_path / "bad").exists()
