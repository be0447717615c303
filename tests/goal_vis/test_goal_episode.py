"""Tests for goal_vis episodes, strips, videos and curves (no trained run needed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import worlds
from director.module import DirectorModule
from goal_vis import record_strip
from goal_vis.curves import panels, plot_curves, read_metrics
from goal_vis.episode import StateProbe, private_rng, run_episode
from goal_vis.reach import cell_goals, cell_states, reach_image, reach_map
from goal_vis.values import maze_distances, value_image, value_map
from goal_vis.video import ffmpeg_binary, video_frames, write_gif, write_mp4


@pytest.fixture(scope="module")
def module():
    torch.manual_seed(0)
    return DirectorModule("debug")


@pytest.mark.parametrize("name", ["pinpad-three", "maze-s"])
def test_state_probe_locates_real_observations_at_the_true_cell(name):
    env = worlds.make(name, size=16, seed=0)
    probe = StateProbe(env)
    assert probe.available and probe.cells
    obs, _ = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(40):
        assert probe.locate(obs["image"], probe.context()) == probe.position()
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(1, 5)))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()


def test_run_episode_records_decisions_every_k_steps(module):
    env = worlds.make("pinpad-three", size=16, seed=0)
    probe = StateProbe(env)
    with private_rng(0):
        record = run_episode(module, env, max_steps=10, probe=probe)
    env.close()
    k = module.agent.goal_every
    assert record.length == 11 and record.is_first[0] and record.is_last[-1]
    assert [d.step for d in record.decisions] == list(range(0, 11, k))
    assert list(record.phase) == [t % k for t in range(11)]
    complete = [d for d in record.decisions if d.end is not None]
    assert all(-1.0 <= d.reached <= 1.0 for d in complete)
    assert all(d.image.shape == (16, 16, 3) and d.goal_pos in probe.cells for d in record.decisions)
    assert record.steps()["action"].shape == (11, 5)


def test_record_strip_writes_a_png_and_leaves_global_state_alone(module, tmp_path):
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    threads, training = torch.get_num_threads(), module.training
    path = record_strip(module, tmp_path / "strips" / "strip.png", steps=12, seed=3)
    assert path == tmp_path / "strips" / "strip.png"
    with Image.open(path) as image:
        assert image.width > 16 and image.height > 32
    assert torch.equal(torch_state, torch.get_rng_state())
    assert np.array_equal(np_state[1], np.random.get_state()[1])
    assert torch.get_num_threads() == threads
    assert module.training == training


def test_video_gif_has_one_frame_per_step(tmp_path):
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    goals = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    frames, palette = video_frames(obs, goals, [f"step {t}" for t in range(6)], scale=4)
    assert frames.dtype == np.uint8 and palette.shape == (256, 3)
    assert frames.shape[0] == 6 and frames.shape[2] == 2 * 64 + 4
    path = write_gif(frames, palette, tmp_path / "v.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 6


@pytest.mark.skipif(ffmpeg_binary() is None, reason="no ffmpeg binary (imageio-ffmpeg or PATH)")
def test_video_mp4_is_written_when_ffmpeg_exists(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 33, 35, 3), dtype=np.uint8)
    path = write_mp4(frames, tmp_path / "v.mp4")
    assert path is not None and path.stat().st_size > 0


def test_curves_concatenate_sessions_sorted_by_env_steps(tmp_path):
    for version, rows in ((0, ["100,1.0,", "200,0.5,0.1"]), (1, ["300,0.25,", "150,0.75,"])):
        folder = tmp_path / "logs" / f"version_{version}"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text("env_steps,image_loss,kl\n" + "\n".join(rows) + "\n")
    (tmp_path / "episodes.csv").write_text("env_steps,return,length,success\n50,1,10,False\n90,2,10,True\n")
    metrics = read_metrics(tmp_path)
    x, y = metrics["image_loss"]
    assert list(x) == [100, 150, 200, 300] and list(y) == [1.0, 0.75, 0.5, 0.25]
    assert list(metrics["kl"][0]) == [200]
    titles = [t for _, t, _ in panels(metrics, {})]
    assert "image_loss" in titles and "kl" in titles
    path, titles = plot_curves(tmp_path, tmp_path / "curves.png")
    assert path is not None and any("success" in t for t in titles)
    with Image.open(path) as image:
        assert image.width > 100


def test_curves_keep_one_point_per_update_of_repeated_metric_rows(tmp_path):
    folder = tmp_path / "logs" / "version_0"
    folder.mkdir(parents=True)
    rows = ["16,,", "32,4,2.0", "48,4,2.0", "64,8,1.0", "80,8,1.0"]
    (folder / "metrics.csv").write_text("env_steps,updates,image_loss\n" + "\n".join(rows) + "\n")
    x, y = read_metrics(tmp_path)["image_loss"]
    assert list(x) == [32, 64] and list(y) == [2.0, 1.0]


def test_curves_without_logs_plot_nothing(tmp_path):
    assert plot_curves(tmp_path, tmp_path / "curves.png") == (None, [])


class FixedMove:
    """Stands in for the worker's policy: always the same one-hot action."""

    def __init__(self, index: int, size: int):
        self.action = torch.nn.functional.one_hot(torch.tensor([index]), size).float()

    def __call__(self, inputs):
        action = self.action

        class Dist:
            def mode(self):
                return action

            sample = mode

        return Dist()


@pytest.mark.parametrize("move, shift", [(0, (0, 0)), (3, (0, 5))])  # no-op; +y down the left lane
def test_reach_map_measures_where_the_worker_stops_from_each_goal_cell(module, monkeypatch, move, shift):
    agent = module.agent
    env = worlds.make("maze-s", size=16, seed=0)
    monkeypatch.setattr(agent.worker.ac, "policy", FixedMove(move, agent.action_size))
    reach = reach_map(agent, env, steps=8)
    start = env.unwrapped.start_pos
    final = (start[0] + shift[0], start[1] + shift[1])  # (1, 1) + 5 down = (1, 6), the wall stops it
    assert reach["start"] == [start] * len(reach["cells"]) and reach["final"] == [final] * len(reach["cells"])
    assert reach["distance"] == [abs(c[0] - final[0]) + abs(c[1] - final[1]) for c in reach["cells"]]
    assert reach["exact"] == pytest.approx(1 / len(reach["cells"]))
    image = reach_image(reach, env.reset()[0]["image"])
    assert image.dtype == np.uint8 and image.shape[0] >= 256 and image.shape[2] == 3
    env.close()


def test_cell_goals_are_goal_autoencoder_reconstructions(module):
    agent = module.agent
    env = worlds.make("maze-s", size=16, seed=0)
    probe = StateProbe(env)
    goals = cell_goals(agent, probe)
    assert goals.shape == (len(probe.cells), agent.cfg.model.rssm.deter) and torch.isfinite(goals).all()
    # Different cells are different states, so their goals differ.
    assert (goals[0] - goals[-1]).abs().max() > 0
    env.close()


def test_maze_distances_are_shortest_paths_through_free_cells():
    # A U: (0,0) (0,1) (0,2) / (1,2) / (2,0) (2,1) (2,2); (1,0) and (1,1) are walls.
    cells = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (5, 5)]
    assert maze_distances(cells, (2, 0)) == [6, 5, 4, 3, 2, 1, 0, -1]


def test_value_map_reads_the_model_and_critics_on_every_cell(module, monkeypatch):
    agent = module.agent
    env = worlds.make("maze-s", size=16, seed=0)
    probe = StateProbe(env)
    torch.manual_seed(1)
    vmap = value_map(agent, env)
    cells = probe.cells
    assert vmap["cells"] == cells and vmap["goal"] == tuple(env.unwrapped.goal_pos)
    assert set(vmap["values"]) == {"reward", "expl", "manager_extr", "manager_expl"}
    torch.manual_seed(1)  # the same posterior samples as inside value_map
    state = cell_states(agent, probe)
    feat = agent.wm.feat(state)
    assert vmap["values"]["reward"] == pytest.approx(agent.wm.predict_reward(feat).tolist(), abs=1e-6)
    assert vmap["values"]["manager_extr"] == pytest.approx(agent.manager.ac.value("extr", feat).tolist(), abs=1e-6)
    dist = dict(zip(cells, vmap["goal_distance"]))
    assert dist[vmap["goal"]] == 0 and dist[tuple(env.unwrapped.start_pos)] == 12  # maze-s: 12 steps
    assert all(t in cells for t in vmap["toward"]) and 0.0 <= vmap["toward_closer"] <= 1.0
    # A manager whose every goal is the state of standing on the task goal points every cell there.
    goal_deter = state["deter"][cells.index(vmap["goal"])]
    monkeypatch.setattr(agent.goal_ae, "decode", lambda code, context=None: goal_deter.expand(code.shape[0], -1))
    torch.manual_seed(1)
    vmap = value_map(agent, env)
    assert vmap["toward"] == [vmap["goal"]] * len(cells) and vmap["toward_closer"] == 1.0
    image = value_image(vmap, env.reset()[0]["image"])
    assert image.dtype == np.uint8 and image.shape[2] == 3 and image.shape[1] >= 5 * 256
    env.close()


def test_value_map_of_flat_dreamer_reads_its_actor_critic():
    import director.config

    torch.manual_seed(0)
    flat = DirectorModule(director.config.load("debug", ["agent=dreamer"]))
    env = worlds.make("maze-s", size=16, seed=0)
    vmap = value_map(flat.agent, env)
    assert set(vmap["values"]) == {"reward", "actor_extr"} and "toward" not in vmap
    assert len(vmap["values"]["actor_extr"]) == len(vmap["cells"])
    env.close()
