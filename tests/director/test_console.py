"""What a run shows: the progress bar, a quiet console with one start line, the end-of-run
summary (also summary.json), and TensorBoard images equal to what goal_vis renders."""
from __future__ import annotations

import glob
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from director import config
from director.run import EVAL_SEED, evaluate, evaluate_random, load_module, train

# maze-s with 20-step episodes: episodes finish within a tiny run, so the bar shows return/success.
RUN = ["env.world=maze-s", "env.options.time_limit=20", "replay.prefill=64", "train.threads=1",
       "train.record_every=64", "train.eval_episodes=2", "train.checkpoint_every=100000"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(run dir, console text of a 160-step run, console text of its resume to 224 steps)."""
    path = tmp_path_factory.mktemp("console") / "run"
    capture = pytest.MonkeyPatch()
    out = io.StringIO()
    capture.setattr(sys, "stdout", out)
    try:
        train(config.load("debug", RUN + [f"train.run_dir={path}", "train.steps=160"]), preset="debug")
        first = out.getvalue()
        out.seek(0), out.truncate()
        train(None, resume=path, overrides=["train.steps=224"])
        second = out.getvalue()
    finally:
        capture.undo()
    return path, first, second


def _bar_lines(text):
    return [line for line in re.split(r"[\r\n]", text) if "env steps [" in line]


def test_progress_bar_counts_env_steps_out_of_the_budget_with_rates_and_episodes(run):
    _, first, _ = run
    lines = _bar_lines(first)
    assert lines and all("/160 env steps" in line for line in lines)
    last = lines[-1]
    assert re.search(r"\b160/160 env steps \[\d\d:\d\d<\d\d:\d\d, updates/s=[\d.]+, return=[\d.]+, "
                     r"success=[\d.]+\]", last), last
    assert "e+" not in first and "v_num" not in first and "Epoch" not in first and "it/s" not in first


def test_resumed_run_starts_the_bar_where_it_stands(run):
    path, _, second = run
    lines = _bar_lines(second)
    assert "| 160/224 env steps [" in lines[0], lines[0]
    assert "from 160 to 224 env steps" in second


def test_start_line_says_world_agent_preset_budget_device_threads_and_how_to_resume(run):
    path, first, _ = run
    starts = [line for line in first.splitlines() if line.startswith("director: training")]
    assert len(starts) == 1
    for part in ("director on maze-s", "(preset debug)", "to 160 env steps", "on cpu, 32-true",
                 "1 threads", str(path), f"director train --resume {path}"):
        assert part in starts[0], part


def test_start_line_warns_about_an_unused_gpu(monkeypatch):
    import lightning as L
    from director.console import start_line
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    line = start_line(config.load("debug"), trainer, "runs/x")
    assert "GPU is available but unused" in line and "train.accelerator=cuda" in line


def test_precision_auto_is_bf16_only_where_it_is_native(monkeypatch):
    from director import module
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not module.native_bf16("cpu")
    assert module.resolve_precision("auto", "cpu") == "32-true"
    assert module.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"  # asked for: kept
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert module.native_bf16("cpu") and module.resolve_precision("auto", "cpu") == "bf16-mixed"


def test_start_line_names_the_precision_auto_chose_and_warns_about_emulated_bf16(monkeypatch):
    import lightning as L
    from director import console
    cfg = config.load("debug", ["train.precision=auto"])
    trainer = L.Trainer(accelerator="cpu", precision="32-true", logger=False, enable_progress_bar=False)
    line = console.start_line(cfg, trainer, "runs/x")
    assert "on cpu, 32-true (precision auto)" in line and "warning" not in line
    trainer = L.Trainer(accelerator="cpu", precision="bf16-mixed", logger=False, enable_progress_bar=False)
    monkeypatch.setattr(console, "native_bf16", lambda device_type: False)
    line = console.start_line(config.load("debug", ["train.precision=bf16-mixed"]), trainer, "runs/x")
    assert "no native bf16" in line and "train.precision=auto" in line
    monkeypatch.setattr(console, "native_bf16", lambda device_type: True)
    assert "warning" not in console.start_line(config.load("debug", ["train.precision=bf16-mixed"]), trainer, "runs/x")


def test_summary_compares_the_agent_with_a_random_policy_and_is_saved(run):
    path, first, _ = run
    summary = json.loads((path / "summary.json").read_text())  # the resumed segment's
    assert summary["env_steps"] == 224 and summary["updates"] > 0 and summary["train_seconds"] > 0
    assert summary["eval"]["episodes"] == 2 and summary["eval"]["action"] == "mode"
    module, _ = load_module(path)
    assert {k: summary["eval"][k] for k in ("return", "success")} == \
        {k: v for k, v in evaluate(module, 2, EVAL_SEED).items() if k in ("return", "success")}
    assert summary["random"]["return"] == evaluate_random(module.cfg.env, 2, EVAL_SEED)["return"]
    assert summary["next"] == [f"director goals {path}", f"director eval {path} --episodes 10",
                               f"tensorboard --logdir {path.parent}",
                               f"director train --resume {path} train.steps=448"]
    assert "the agent (mode action)" in first and "uniform random policy" in first
    assert f"director goals {path}" in first


def test_tensorboard_images_equal_what_goal_vis_renders_for_the_checkpoint(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from goal_vis import agent_strip
    path, _, _ = run
    # One event file per training session in the run's one folder, read one by one: their names
    # sort by creation second, then by a process-wide counter compared as text, so two sessions
    # within one second (this tiny run) may list in either order.
    sessions = {}
    for file in glob.glob(str(path / "tensorboard" / "version_0" / "events.out.tfevents.*")):
        events = EventAccumulator(file, size_guidance={"images": 0})
        events.Reload()
        assert {"goals/strip", "world_model/open_loop"} <= set(events.Tags()["images"])
        assert "image_loss" in events.Tags()["scalars"]
        sessions[tuple(e.step for e in events.Images("goals/strip"))] = events
    # every 64 env steps and at the end: the first session to 160, the resumed one to 224
    assert sorted(sessions) == [(80, 128, 160), (192, 224)]
    decode = lambda e: np.array(Image.open(io.BytesIO(e.encoded_image_string)).convert("RGB"))  # noqa: E731
    strips = sessions[(192, 224)].Images("goals/strip")
    last = decode(strips[-1])
    module, info = load_module(path)  # the checkpoint written when training ended
    assert info["env_steps"] == 224
    expected = agent_strip(module, steps=4 * module.cfg.manager.goal_every, seed=224)
    np.testing.assert_array_equal(last, expected)
    assert last.std() > 10
    open_loop = decode(sessions[(192, 224)].Images("world_model/open_loop")[-1])
    assert open_loop.ndim == 3 and open_loop.std() > 10


def test_cli_console_is_quiet_and_ends_with_the_summary(tmp_path):
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "director", "train", "debug", *RUN, f"train.run_dir={run}", "train.steps=96"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYGLET_HEADLESS": "1"})
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    for noise in ("GPU available", "TPU available", "Tip", "litlogger", "dataloader_iter", "LeafSpec",
                  "pytree", "Trainer.fit", "Automatic Mixed Precision", "Epoch", "v_num", "Warning"):
        assert noise not in text, noise
    assert text.startswith("director: training director on maze-s (preset debug)")
    assert text.rstrip().endswith(f"director train --resume {run} train.steps=192")
