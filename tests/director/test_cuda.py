"""The CUDA path: training, mixed precision, resume and evaluation on a GPU.

CI has no GPU, so these skip there (with the reason shown); run them on a GPU machine with
`python -m pytest tests/director/test_cuda.py`."""
from __future__ import annotations

import math

import pytest
import torch

from director import config
from director.module import DirectorModule
from director.run import evaluate, load_module, train

from test_module import FAST, _metric_rows  # tests/director is on sys.path (pytest rootdir import)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (none on this machine; CI has none)")


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
def test_cuda_run_trains_resumes_and_evaluates_on_cpu(tmp_path, precision):
    cuda = ["train.accelerator=cuda", f"train.precision={precision}"]
    run = train(config.load("debug", FAST + cuda + [f"train.run_dir={tmp_path}", "train.steps=160"]),
                progress=False)
    first = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["director"]
    assert first["updates"] > 0
    resumed = train(None, resume=run, progress=False, overrides=["train.steps=256"])
    info = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["director"]
    assert info["updates"] > first["updates"] and info["env_steps"] == 256
    assert info["skipped_updates"] == 0
    rows = _metric_rows(resumed)
    assert rows
    for row in rows.values():
        for key in ("image_loss", "kl", "worker/actor_loss", "manager/critic_loss", "goal_rec"):
            assert math.isfinite(float(row[key])), (key, row[key])
    module, _ = load_module(resumed)  # a CUDA-trained checkpoint loads on the CPU
    assert next(module.parameters()).device.type == "cpu"
    result = evaluate(module, episodes=2, max_steps=40)
    assert result["episodes"] <= 2


def test_cuda_module_acts_on_the_gpu():
    module = DirectorModule(config.load("debug")).cuda()
    result = evaluate(module, episodes=2, max_steps=40)  # acts through module.act on the GPU
    assert result["episodes"] <= 2
    assert module.device.type == "cuda"


def test_a_cuda_run_resumes_on_the_cpu(tmp_path):
    run = train(config.load("debug", FAST + ["train.accelerator=cuda", f"train.run_dir={tmp_path}", "train.steps=160"]),
                progress=False)
    resumed = train(None, resume=run, progress=False, overrides=["train.accelerator=cpu", "train.steps=224"])
    info = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["director"]
    assert info["env_steps"] == 224 and info["skipped_updates"] == 0


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_cuda_update_agrees_with_eager(mode):
    """The fast GPU path: `Agent.compile(mode)` ("reduce-overhead" replays the compiled forward
    and backward as CUDA graphs) gives eager's loss and parameters over 3 updates, with
    inductor's RNG replaced by eager's; adaptive scales, normalisers and counters agree too."""
    import torch._inductor.config as inductor

    from test_agent import make_agent, make_batch

    short = ["replay.length=4", "manager.goal_every=2"]
    eager, compiled = (make_agent(overrides=short, seed=0).cuda() for _ in range(2))
    compiled.compile(mode)
    batch = {k: v.cuda() for k, v in make_batch(eager).items()}
    with inductor.patch(fallback_random=True):
        results = []
        for agent in (eager, compiled):
            torch.manual_seed(1)
            optimizers = agent.make_optimizers()
            results.append([agent.train_step(batch, optimizers) for _ in range(3)])
    for a, b in zip(*results):
        assert a["skipped"] == b["skipped"] == 0.0
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4, msg=name)
    for (name, a), b in zip(eager.named_buffers(), compiled.buffers()):
        torch.testing.assert_close(b.float(), a.float(), rtol=1e-3, atol=1e-4, msg=name)


def test_compiled_cuda_run_with_cuda_graphs_trains_and_resumes(tmp_path):
    """train.compile_mode=reduce-overhead under the Trainer (bf16-mixed): trains, logs finite
    metrics, skips no update, and resumes."""
    fast = ["train.accelerator=cuda", "train.precision=bf16-mixed", "train.compile=true",
            "train.compile_mode=reduce-overhead"]
    run = train(config.load("debug", FAST + fast + [f"train.run_dir={tmp_path}", "train.steps=160"]),
                progress=False)
    resumed = train(None, resume=run, progress=False, overrides=["train.steps=256"])
    info = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["director"]
    assert info["env_steps"] == 256 and info["skipped_updates"] == 0
    for row in _metric_rows(resumed).values():
        for key in ("image_loss", "worker/actor_loss", "manager/critic_loss"):
            assert math.isfinite(float(row[key])), (key, row[key])
