"""Checkpoint retention, the fallback to the previous checkpoint, history that matches the
checkpoint a run resumes from, and resuming past corrupt replay files."""
from __future__ import annotations

import csv
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from director import checkpoints, config
from director.errors import CheckpointError
from director.replay import ReplayFileError
from director.run import load_module, train

# Maze episodes of 200 steps on 2 envs end at env step ~400, between the last two checkpoints.
STEPS = 480
ARGS = ["env.world=maze-s", "train.log_every=16", "train.checkpoint_every=192", "replay.prefill=64", "train.threads=1",
        "train.accelerator=cpu", f"train.steps={STEPS}"]


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(path)))


def _metric_steps(run: Path, step: str = "step") -> list[tuple[int, str]]:
    """(logger step or another column, image_loss) of every metrics row with an image_loss,
    over all sessions."""
    out = []
    for path in sorted(run.glob("logs/version_*/metrics.csv")):
        out += [(int(float(r[step])), r["image_loss"]) for r in _rows(path) if r.get("image_loss")]
    return sorted(out)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished debug run with checkpoints at 192, 384 and 480 env steps (kept: the newest 2)."""
    return train(config.load("debug", ARGS + [f"train.run_dir={tmp_path_factory.mktemp('ck') / 'run'}"]),
                 progress=False)


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def _tags(run: Path) -> list[str]:
    return sorted(p.name[len("update-"):-len(".ckpt")] for p in (run / "checkpoints").glob("update-*.ckpt"))


def test_periodic_saves_keep_the_newest_checkpoints_and_their_stream_files(run):
    folder = run / "checkpoints"
    tags = _tags(run)
    assert len(tags) == 2 and tags[0] < tags[1]  # periodic saves happened; older ones deleted
    assert sorted(p.name for p in folder.glob("stream-*.pkl")) == [f"stream-rank0-{t}.pkl" for t in tags]
    assert (folder / "last.ckpt").read_bytes() == (folder / f"update-{tags[1]}.ckpt").read_bytes()
    assert torch.load(folder / "last.ckpt", weights_only=False)["director"]["stream_tag"] == tags[1]


def test_keep_checkpoints_one_keeps_only_the_newest(tmp_path):
    run = train(config.load("debug", ARGS + [f"train.run_dir={tmp_path}", "train.steps=400",
                                             "train.keep_checkpoints=1"]), progress=False)
    assert len(_tags(run)) == 1 and len(list((run / "checkpoints").glob("stream-*.pkl"))) == 1


def test_resume_from_the_previous_checkpoint_keeps_history_once(run, tmp_path, capsys):
    """A truncated last.ckpt (a crash of the disk, say): the resume says so in one line, goes on
    from the previous checkpoint and ends with the uninterrupted run's episodes and metrics,
    each once; the rows written after the previous checkpoint are moved aside."""
    episodes, metrics = _rows(run / "episodes.csv"), _metric_steps(run)
    copy = _copy(run, tmp_path)
    older, newest = _tags(copy)
    for name in ("last.ckpt", f"update-{newest}.ckpt"):  # hard links of one file in a real run
        path = copy / "checkpoints" / name
        path.write_bytes(path.read_bytes()[:1000])
    capsys.readouterr()
    train(None, resume=copy, progress=False)
    err = capsys.readouterr().err
    assert f"update-{older}.ckpt" in err and "corrupt" in err and len(err.strip().splitlines()) == 1
    assert _rows(copy / "episodes.csv") == episodes
    assert _metric_steps(copy) == metrics  # every update once, with the same values
    moved = copy / "after_checkpoint"
    assert _rows(moved / "episodes.csv") and list(moved.glob("logs/version_0/metrics.csv"))
    info = torch.load(copy / "checkpoints" / "last.ckpt", weights_only=False)
    assert info["director"]["env_steps"] == STEPS
    assert torch.equal(info["state_dict"]["agent.wm.rssm.init_deter"],
                       torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
                       ["agent.wm.rssm.init_deter"])


def test_tensorboard_sees_each_update_once_after_a_resume(run, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    copy = _copy(run, tmp_path)
    older, newest = _tags(copy)
    (copy / "checkpoints" / f"stream-rank0-{newest}.pkl").unlink()  # last.ckpt lacks its stream file
    train(None, resume=copy, progress=False)
    events = EventAccumulator(str(copy / "tensorboard" / "version_0"))
    events.Reload()
    # TensorBoard at env steps, in order, each logged row once (the rows logged after the
    # checkpoint and moved aside hidden): the same steps as the uninterrupted run's CSV rows
    steps = [e.step for e in events.Scalars("image_loss")]
    assert steps == sorted(steps) == [s for s, _ in _metric_steps(run, "env_steps")]


def test_eval_falls_back_to_the_previous_checkpoint(run, tmp_path, capsys):
    """Here last.ckpt is a copy, not a link: the intact update file of the same tag serves."""
    copy = _copy(run, tmp_path)
    _, newest = _tags(copy)
    (copy / "checkpoints" / "last.ckpt").write_bytes(b"\x00partial")
    module, info = load_module(copy)
    assert info["checkpoint"].endswith(f"update-{newest}.ckpt") and info["stream_tag"] == newest
    assert f"Using the checkpoint {copy / 'checkpoints' / f'update-{newest}.ckpt'} instead" in capsys.readouterr().err


def test_no_usable_checkpoint_names_every_problem_and_changes_nothing(run, tmp_path):
    copy = _copy(run, tmp_path)
    for path in (copy / "checkpoints").glob("*.ckpt"):
        path.write_bytes(b"\x00partial")
    before = sorted((p.name, p.read_bytes()) for p in copy.rglob("*") if p.is_file())
    with pytest.raises(CheckpointError, match="No checkpoint of .* can be used: .*last.ckpt .*update-"):
        train(None, resume=copy, progress=False)
    assert sorted((p.name, p.read_bytes()) for p in copy.rglob("*") if p.is_file()) == before


def _corrupt_a_listed_replay_file(copy: Path) -> Path:
    tag = torch.load(copy / "checkpoints" / "last.ckpt", weights_only=False)["director"]["stream_tag"]
    state = pickle.loads(checkpoints.stream_path(copy / "checkpoints", 0, tag).read_bytes())
    bad = copy / "replay" / "rank0" / state["replay"]["files"][0]
    bad.write_bytes(bad.read_bytes()[:100])
    return bad


def test_corrupt_replay_file_stops_the_resume_by_default(run, tmp_path):
    copy = _copy(run, tmp_path)
    bad = _corrupt_a_listed_replay_file(copy)
    content = bad.read_bytes()
    with pytest.raises(ReplayFileError, match=rf"{bad.name}.*--skip-corrupt-replay"):
        train(None, resume=copy, progress=False, overrides=["train.steps=560"])
    assert bad.read_bytes() == content
    result = subprocess.run([sys.executable, "-m", "director", "train", "--resume", str(copy), "--no-progress",
                             "train.steps=560"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr and bad.name in result.stderr


def test_skip_corrupt_replay_names_the_files_and_says_the_resume_is_not_exact(run, tmp_path, capsys):
    copy = _copy(run, tmp_path)
    bad = _corrupt_a_listed_replay_file(copy)
    train(None, resume=copy, progress=False, overrides=["train.steps=560"], skip_corrupt_replay=True)
    err = capsys.readouterr().err
    assert bad.name in err and "no longer exact" in err
    assert (bad.parent / "corrupt" / bad.name).exists() and not bad.exists()
    assert torch.load(copy / "checkpoints" / "last.ckpt", weights_only=False)["director"]["env_steps"] == 560


def test_evaluations_after_the_checkpoint_are_moved_aside(tmp_path):
    from director import history
    (tmp_path / "evals.csv").write_text("env_steps,updates,episodes,return,success,length\n"
                                        "100,5,2,0,0,200\n200,10,2,1,0.5,200\n300,15,2,2,1,200\n")
    assert history.supersede(tmp_path, 0, -1, env_steps=200) == 1
    assert [r.split(",")[0] for r in (tmp_path / "evals.csv").read_text().splitlines()[1:]] == ["100", "200"]
    assert (tmp_path / "after_checkpoint" / "evals.csv").read_text().splitlines()[1].startswith("300,")
