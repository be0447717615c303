"""DirectorModule and runs: exact resume, atomic checkpoints, SIGTERM, NaN handling, DDP."""
from __future__ import annotations

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from director import config
from director.errors import CheckpointError
from director.agent import Agent
from director.module import DirectorModule, RunCheckpoint, TrainingDiverged
from director.run import load_module, train

FAST = ["train.log_every=16", "train.checkpoint_every=100000", "replay.prefill=64"]
CPU = ["train.accelerator=cpu"]  # exact resume is promised on the CPU (GPU kernels may not be deterministic)


def _metric_rows(run_dir: Path) -> dict[float, dict[str, str]]:
    rows = {}
    for path in sorted(glob.glob(str(run_dir / "logs" / "version_*" / "metrics.csv"))):
        for row in csv.DictReader(open(path)):
            if row.get("image_loss"):
                rows[float(row["updates"])] = row
    return rows


def test_resume_gives_the_same_next_metrics_as_an_uninterrupted_run(tmp_path):
    straight = train(config.load("debug", FAST + CPU + [f"train.run_dir={tmp_path / 'a'}", "train.steps=224"]),
                     progress=False)
    first = train(config.load("debug", FAST + CPU + [f"train.run_dir={tmp_path / 'b'}", "train.steps=144"]),
                  progress=False)
    first_seconds = torch.load(first / "checkpoints" / "last.ckpt", weights_only=False)["director"]["train_seconds"]
    resumed = train(None, resume=first, progress=False, overrides=["train.steps=224"])
    a, b = _metric_rows(straight), _metric_rows(resumed)
    after = [u for u in a if u > 6]  # updates after the interruption (144 steps = update 6)
    assert after, a.keys()
    for u in after:
        for key in ("image_loss", "kl", "worker/actor_loss", "manager/critic_loss", "goal_rec"):
            assert a[u][key] == b[u][key], (u, key)
    info = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["director"]
    assert info["env_steps"] == 224
    assert 0 < first_seconds < info["train_seconds"]  # training time adds up over the segments


def test_periodic_evaluation_writes_evals_csv_and_leaves_training_unchanged(tmp_path):
    common = FAST + CPU + ["train.steps=160", "env.world=maze-s"]
    plain = train(config.load("debug", common + [f"train.run_dir={tmp_path / 'a'}"]), progress=False)
    evaluated = train(config.load("debug", common + [f"train.run_dir={tmp_path / 'b'}", "train.eval_every=64",
                                                      "train.eval_episodes=2"]), progress=False)
    rows = list(csv.DictReader(open(evaluated / "evals.csv")))
    assert [int(r["env_steps"]) // 64 for r in rows] == [1, 2]  # the first update past each multiple
    assert all(r["episodes"] == "2" and float(r["length"]) == 200 for r in rows)  # maze-s: 200 steps
    assert not (plain / "evals.csv").exists()
    a, b = _metric_rows(plain), _metric_rows(evaluated)
    assert a and a.keys() == b.keys()
    for u in a:  # the evaluations' private RNG leaves the training stream as it was
        assert a[u]["image_loss"] == b[u]["image_loss"] and a[u]["worker/actor_loss"] == b[u]["worker/actor_loss"]


def test_checkpoint_write_crash_leaves_previous_checkpoint_usable(tmp_path, monkeypatch):
    run = train(config.load("debug", FAST + [f"train.run_dir={tmp_path}", "train.steps=96"]), progress=False)
    ckpt = run / "checkpoints" / "last.ckpt"
    before = ckpt.read_bytes()
    module, _ = load_module(run)

    class CrashingTrainer:
        world_size, global_rank, is_global_zero = 1, 0, True

        class strategy:  # noqa: N801
            @staticmethod
            def barrier(*_):
                pass

        @staticmethod
        def save_checkpoint(path, weights_only=None):
            Path(path).write_bytes(b"partial")
            raise OSError("disk full")

    module.run_dir = run
    module.stream = type("S", (), {"state_dict": lambda self: {}, "env_steps": 0})()
    with pytest.raises(OSError):
        RunCheckpoint().save(CrashingTrainer(), module)
    assert ckpt.read_bytes() == before
    # Still resumes: the checkpoint and its stream file (which load_module never opens).
    train(None, resume=run, progress=False, overrides=["train.steps=128"])
    assert torch.load(ckpt, weights_only=False)["director"]["env_steps"] == 128


def test_nonfinite_losses_are_skipped_then_stop_the_run(tmp_path, monkeypatch):
    real_loss, calls, seen = Agent.loss, [0], {}

    def nan_loss(self, batch):
        """Updates 3 and 4 are NaN (the stop counter then resets), all from update 6 on."""
        calls[0] += 1
        loss, metrics = real_loss(self, batch)
        if calls[0] in (3, 4, 5):  # parameters before the update (after the good update 2, 4)
            seen[calls[0]] = {k: v.clone() for k, v in self.state_dict().items()}
        return (loss * float("nan") if calls[0] in (3, 4) or calls[0] >= 6 else loss), metrics

    real_step = DirectorModule.training_step

    def step(self, dataloader_iter):
        real_step(self, dataloader_iter)
        seen.setdefault("bad", []).append(float(self.bad_updates))

    monkeypatch.setattr("director.agent.Agent.loss", nan_loss)
    monkeypatch.setattr(DirectorModule, "training_step", step)
    cfg = config.load("debug", FAST + [f"train.run_dir={tmp_path}", "train.steps=400",
                                      "train.max_bad_updates=3"])
    with pytest.raises(TrainingDiverged, match=r"not finite in \d+ consecutive updates \(train.max_bad_updates=3"):
        train(cfg, progress=False)
    for k, v in seen[3].items():  # the two skipped updates changed nothing
        assert torch.equal(v, seen[5][k]), k
    assert seen["bad"] == [0, 0, 1, 2, 0, 1, 2], seen["bad"]  # a good update resets it; the 3rd bad in a row stops


def test_module_rejects_a_checkpoint_without_director_state():
    module = DirectorModule(config.load("debug"))
    with pytest.raises(CheckpointError):
        module.on_load_checkpoint({"state_dict": {}})


def _cli(*args, **kw):
    env = {**os.environ, "PYGLET_HEADLESS": "1"}
    return subprocess.run([sys.executable, "-m", "director", *args], capture_output=True, text=True,
                          env=env, timeout=300, **kw)


@pytest.mark.parametrize("sig, name", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_sigterm_and_ctrl_c_save_a_checkpoint_then_a_short_summary(tmp_path, sig, name):
    run = tmp_path / "run"
    env = {**os.environ, "PYGLET_HEADLESS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "director", "train", "debug", f"train.run_dir={run}",
                             "train.steps=1000000", "train.checkpoint_every=1000000", "replay.prefill=64",
                             "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and not list(run.glob("logs/version_0/metrics.csv")):
        time.sleep(0.5)
    time.sleep(2)
    proc.send_signal(sig)
    proc.wait(timeout=300)  # a loaded CI machine takes its time to save
    out = proc.stdout.read().decode()
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.exists(), out[-2000:]
    info = torch.load(ckpt, weights_only=False)["director"]
    assert info["updates"] > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] == name and "eval" not in summary
    assert summary["env_steps"] == info["env_steps"] and summary["next"] == [f"director train --resume {run}"]
    assert f"stopped ({name}); the checkpoint is saved. Continue with `director train --resume {run}`" in out
    resumed = train(None, resume=run, progress=False, overrides=[f"train.steps={info['env_steps'] + 64}"])
    after = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["director"]
    assert after["env_steps"] == info["env_steps"] + 64 and after["updates"] > info["updates"]


@pytest.mark.skipif(sys.platform != "linux", reason="DDP smoke test runs on Linux CPUs")
def test_ddp_two_cpu_processes_train_and_checkpoint(tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "PYGLET_HEADLESS": "1"}
    script = Path(__file__).with_name("ddp_train.py")
    result = subprocess.run([sys.executable, str(script), "debug", "train.devices=2", "train.accelerator=cpu",
                             f"train.run_dir={run}", "train.steps=256", "replay.prefill=64", "--no-progress"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Gradients are averaged across ranks: every rank ends with the same parameters.
    ranks = [torch.load(run / f"params-rank{r}.pt") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and ranks[0]
    for name, value in ranks[0].items():
        assert torch.equal(value, ranks[1][name]), name
    assert (run / "checkpoints" / "last.ckpt").exists()
    assert sorted(p.name for p in (run / "replay").iterdir()) == ["rank0", "rank1"]
    streams = sorted({p.name.split("-")[1] for p in (run / "checkpoints").glob("stream-*.pkl")})
    assert streams == ["rank0", "rank1"]
    info = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["director"]
    assert info["updates"] > 0


def test_training_keeps_freed_memory_for_reuse_where_glibc_allows():
    """run.keep_freed_memory (called by `train`): glibc accepts all three malloc settings; on
    another C library it changes nothing and says so."""
    import platform

    from director.run import keep_freed_memory
    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")
