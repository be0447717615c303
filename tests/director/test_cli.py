"""The command line: clear errors (exit 2, no traceback) and the main commands."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from director import config
from director.run import load_module, train


def _cli(*args):
    env = {**os.environ, "PYGLET_HEADLESS": "1"}
    return subprocess.run([sys.executable, "-m", "director", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def _assert_user_error(result, *words):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    return train(config.load("debug", [f"train.run_dir={path}", "train.steps=96", "replay.prefill=64",
                                       "train.record_every=48", "train.threads=1", "worker.ac.actor_ema=0.99"]),
                 progress=False)


def test_training_records_goal_strips_when_asked(run_dir):
    strips = sorted((run_dir / "strips").glob("strip-*.png"))
    assert len(strips) >= 1 and strips[0].stat().st_size > 0


def test_unknown_world_is_a_clear_error():
    _assert_user_error(_cli("train", "debug", "env.world=pinpad-tree"), "pinpad-three")


def test_bad_config_key_names_the_nearest_key():
    _assert_user_error(_cli("train", "debug", "model.rssm.detr=3"), "model.rssm.deter")


def test_bad_config_value_names_key_and_value():
    _assert_user_error(_cli("train", "debug", "replay.batch=many"), "replay.batch", "many")
    _assert_user_error(_cli("train", "debug", "manager.goal_every=0"), "manager.goal_every")


def test_unknown_preset_lists_presets():
    _assert_user_error(_cli("train", "papr"), "paper")


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    _assert_user_error(_cli("eval", str(tmp_path / "nothing")), "No checkpoint")


def test_corrupt_checkpoint_is_a_clear_error_and_is_left_alone(tmp_path):
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"\x00garbage")
    _assert_user_error(_cli("eval", str(tmp_path)), "corrupt")
    assert ckpt.read_bytes() == b"\x00garbage"


def test_eval_reports_return_and_success(run_dir):
    result = _cli("eval", str(run_dir), "--episodes", "1")
    assert result.returncode == 0, result.stderr
    assert '"success"' in result.stdout and '"return"' in result.stdout
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["train_seconds"] > 0 and report["action"] == "mode" and report["actors"] == "ema"
    sampled = _cli("eval", str(run_dir), "--episodes", "1", "--action", "sample")
    assert sampled.returncode == 0, sampled.stderr
    report = json.loads(sampled.stdout.strip().splitlines()[-1])
    assert report["action"] == "sample" and report["actors"] == "live"
    live = _cli("eval", str(run_dir), "--episodes", "1", "--actors", "live")
    assert live.returncode == 0, live.stderr
    report = json.loads(live.stdout.strip().splitlines()[-1])
    assert report["action"] == "mode" and report["actors"] == "live"


def test_world_that_does_not_match_the_checkpoint_is_a_clear_error(run_dir):
    _assert_user_error(_cli("eval", str(run_dir), "--world", "minigrid-fourrooms"), "does not match")


def test_new_run_refuses_to_overwrite_an_existing_run(run_dir):
    before = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    _assert_user_error(_cli("train", "debug", f"train.run_dir={run_dir}"), "--resume")
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == before


def test_resume_rejects_changing_network_sizes(run_dir):
    _assert_user_error(_cli("train", "--resume", str(run_dir), "model.rssm.deter=64"), "train.")


def test_worlds_list_and_config_keys():
    result = _cli("worlds", "list")
    assert result.returncode == 0 and "pinpad-three" in result.stdout and "maze-xl" in result.stdout
    result = _cli("config", "--keys")
    assert result.returncode == 0 and "manager.goal_every" in result.stdout


def test_evaluation_is_seeded_and_leaves_the_global_rng_alone(run_dir):
    import torch

    from director.run import evaluate, load_module
    module, _ = load_module(run_dir, world="maze-s")  # same spec as the run's world, 200-step episodes
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = evaluate(module, episodes=4, seed=5, mode="train")
    assert first["episodes"] == 4 and torch.equal(torch.random.get_rng_state(), before)
    torch.rand(7)  # a different global RNG state must not change the result
    assert evaluate(module, episodes=4, seed=5, mode="train") == first


def test_train_help_lists_the_presets_and_points_to_the_keys(capsys):
    from director.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for preset in config.presets():
        assert f"\n  {preset} " in text, preset
    assert "director config --keys" in text and "Tiny: for tests" in text


def test_maze_layout_is_kept_in_the_run_so_eval_and_resume_work_after_the_file_moves(tmp_path):
    from worlds.mazes import LAYOUTS
    layout = tmp_path / "mine.txt"
    layout.write_text("\n".join(LAYOUTS["s"]) + "\n")
    run = tmp_path / "run"
    train(config.load("debug", [f"env.world=maze:{layout}", f"train.run_dir={run}", "train.steps=64",
                                "replay.prefill=48", "train.threads=1"]), progress=False)
    assert (run / "maze.txt").read_text() == layout.read_text()
    layout.unlink()
    moved = tmp_path / "moved"
    run.rename(moved)
    result = _cli("eval", str(moved), "--episodes", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["world"] == f"maze:{moved.resolve() / 'maze.txt'}"
    train(None, resume=moved, progress=False, overrides=["train.steps=96"])
    assert config.load(moved / "config.yaml").env.world == f"maze:{moved.resolve() / 'maze.txt'}"


@pytest.mark.skipif(importlib.util.find_spec("dm_control") is None,
                    reason='needs the MuJoCo extras: pip install -e ".[antmaze]" (make test installs them)')
def test_director_trains_end_to_end_on_the_ant_maze_with_continuous_actions_and_vectors(tmp_path):
    run = tmp_path / "ant"
    result = _cli("train", "debug", "env.world=antmaze-s", "env.size=16", "train.steps=320",
                  "replay.prefill=64", "train.log_every=16", "train.threads=1", f"train.run_dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    module, _ = load_module(run)
    assert module.spec["action"] == ("continuous", 8)
    assert {"joints_pos", "body_height", "world_zaxis"} <= set(module.spec["vectors"])
    rows = [row for path in run.glob("logs/version_*/metrics.csv") for row in csv.DictReader(open(path))
            if row.get("vector_loss")]
    assert rows and float(rows[-1]["env_steps"]) == 320
    for key in ("vector_loss", "image_loss", "worker/actor_loss", "manager/actor_loss", "goal_loss"):
        assert all(math.isfinite(float(row[key])) for row in rows), key
