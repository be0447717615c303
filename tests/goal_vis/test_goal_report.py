"""End-to-end tests of `director goals` on a tiny debug run: every promised file, the numbers,
the HTML in headless Chromium, the checkpoint-only path and clear errors for bad input."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from PIL import Image

import director.config
import director.run
from director import cli
from goal_vis.report import make_report

CHROMIUM = "/usr/bin/chromium"
PNGS = ("decisions.png", "rollouts.png", "atlas.png", "openloop.png", "curves.png", "reach.png", "values.png")


def _goals_process(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "director", "goals", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def bad_processes(tmp_path_factory):
    """`python -m director goals` on bad inputs, started early so that they run while the debug
    run trains (its training uses one thread): {case: Popen}."""
    folder = tmp_path_factory.mktemp("bad")
    corrupt = folder / "corrupt.ckpt"
    corrupt.write_bytes(b"\x00garbage\xff" * 64)
    procs = {"missing": _goals_process(str(folder / "nothing.ckpt")), "corrupt": _goals_process(str(corrupt))}
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, bad_processes):
    """A 200-step debug run (one torch thread: tiny ops on shared cores)."""
    threads = torch.get_num_threads()
    run = tmp_path_factory.mktemp("goals") / "run"
    cfg = director.config.load("debug", [f"train.run_dir={run}", "train.steps=200", "train.threads=1"])
    director.run.train(cfg, progress=False)
    bad_processes["world"] = _goals_process(str(run), "--world", "nosuchworld", "--out", str(run / "bad"))
    yield run
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def report(run_dir):
    """`director goals RUN_DIR` with the default output directory RUN_DIR/goals."""
    assert cli.main(["goals", str(run_dir)]) == 0
    return run_dir / "goals"


def test_goals_writes_every_promised_file_as_a_valid_image(report):
    for name in PNGS:
        with Image.open(report / name) as image:
            image.verify()
        with Image.open(report / name) as image:
            assert image.format == "PNG" and image.width > 16 and image.height > 16, name
    with Image.open(report / "episode.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames > 1
    html = (report / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/gif;base64," in html
    assert html.count("<img ") == len(PNGS) + 1
    assert "src=\"http" not in html and "src=\"file" not in html  # self-contained


def test_goals_summary_reports_goal_quality_and_positions(report):
    summary = json.loads((report / "summary.json").read_text())
    reaching, positions = summary["goal_reaching"], summary["goal_positions"]
    assert reaching["periods"] > 0 and -1.0 <= reaching["mean"] <= 1.0
    assert 0.0 <= reaching["frac_above"] <= 1.0 and reaching["threshold"] == 0.7
    assert positions["available"] and positions["periods"] == reaching["periods"]
    for key in ("exact", "within_one", "chance_exact", "reconstruction_located"):
        assert 0.0 <= positions[key] <= 1.0, key
    assert positions["exact"] <= positions["within_one"]
    reach = summary["worker_reach"]
    assert 0.0 <= reach["exact"] <= reach["within_one"] <= 1.0
    assert reach["steps"] == 2 * summary["goal_every"]
    values = summary["values"]
    # Pin Pad (the debug world) has no single goal cell: no on-goal value, no "nearer" fraction.
    assert values["available"] and values["toward_closer"] is None
    for name in ("reward", "expl", "manager_extr", "manager_expl"):
        assert values[name]["min"] <= values[name]["max"] and values[name]["at_goal"] is None, name
    assert summary["imagined_rollouts"]["data"] == "run replay"
    assert set(summary["imagined_rollouts"]) >= {"manager", "prior", "replay"}
    assert summary["files"]["episode_gif"] == "episode.gif"
    html = (report / "report.html").read_text()
    assert "fraction of periods above 0.7" in html and "within one cell" in html


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason="headless Chromium not installed: apt-get install -y chromium")
def test_report_html_renders_in_headless_chromium_with_every_image_loaded(report, tmp_path):
    # A copy of the page with a probe script that records how many images decoded.
    probe = ("<script>window.addEventListener('load', function () { var ok = 0, all = document.images;"
             " for (var i = 0; i < all.length; i++) if (all[i].complete && all[i].naturalWidth > 0) ok++;"
             " document.documentElement.setAttribute('data-images', ok + '/' + all.length); });</script>")
    page = tmp_path / "page.html"
    page.write_text((report / "report.html").read_text().replace("</body>", probe + "</body>"))
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120)
    match = re.search(r'data-images="(\d+)/(\d+)"', result.stdout)
    assert match, f"Chromium rendered no DOM (rc {result.returncode}): {result.stderr[-500:]}"
    loaded, total = int(match.group(1)), int(match.group(2))
    assert total == len(PNGS) + 1 and loaded == total


def test_goals_on_a_bare_checkpoint_collects_a_fresh_rollout(run_dir, tmp_path):
    ckpt = tmp_path / "model.ckpt"
    shutil.copy(run_dir / "checkpoints" / "last.ckpt", ckpt)
    module, info = director.run.load_module(ckpt)
    summary = make_report(module, info, tmp_path / "out", max_steps=40, video_steps=10, horizon=8)
    assert summary["open_loop"]["data"] == "fresh rollout of the agent"
    assert summary["files"]["curves"] is None
    for name in ("episode.gif", "decisions.png", "rollouts.png", "atlas.png", "openloop.png",
                 "report.html", "summary.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name


@pytest.fixture(scope="module")
def bad_inputs(bad_processes, run_dir):
    """{case: (exit code, stdout, stderr)} of the bad-input processes."""
    return {name: (proc.wait(timeout=300), *proc.communicate()) for name, proc in bad_processes.items()}


@pytest.mark.parametrize("case, words", [("missing", "No checkpoint"), ("corrupt", "corrupt"),
                                         ("world", "nosuchworld")])
def test_goals_bad_input_exits_2_with_one_paragraph(bad_inputs, case, words):
    code, out, err = bad_inputs[case]
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("director: error:")
    assert words in err
