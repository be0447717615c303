"""The MuJoCo worlds: the Egocentric Ant Maze (ALGORITHM.md §9) and Memory Maze through their
dm_env tasks; spaces, seeding, rewards, time limits, no global position, the arenas' layouts and
wall colours, and the error when the optional packages are missing."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import worlds
from worlds import WorldError, antmaze, memorymaze

needs_mujoco = pytest.mark.skipif(
    importlib.util.find_spec("dm_control") is None or importlib.util.find_spec("labmaze") is None,
    reason='needs the MuJoCo extras: pip install -e ".[antmaze,memorymaze]" (make test installs them)')
needs_memory_maze = pytest.mark.skipif(
    importlib.util.find_spec("memory_maze") is None, reason='needs pip install -e ".[memorymaze]"')


def unwrapped_ant(env) -> antmaze.AntMaze:
    ant = env.unwrapped
    assert isinstance(ant, antmaze.AntMaze)
    return ant


def move_onto_target(ant: antmaze.AntMaze) -> None:
    """Translate the ant (keeping height and heading) to the target's centre."""
    target = np.asarray(ant.dm_env.task.root_entity.target_positions[0])
    here = ant.physics.bind(ant.walker.root_body).xpos
    ant.walker.shift_pose(ant.physics, [target[0] - here[0], target[1] - here[1], 0.0])
    ant.physics.forward()


# ---------------------------------------------------------------------------- Ant Maze
@needs_mujoco
def test_antmaze_spaces_and_dtypes():
    env = worlds.make("antmaze-s", size=32, seed=0)
    obs, info = env.reset()
    assert env.action_space == spaces.Box(-1, 1, (8,), np.float32)
    assert env.observation_space["image"] == spaces.Box(0, 255, (32, 32, 3), np.uint8)
    vectors = {k for k in env.observation_space.spaces if k != "image"}
    assert {"joints_pos", "joints_vel", "body_height", "world_zaxis", "prev_action",
            "sensors_touch", "sensors_gyro", "sensors_accelerometer", "sensors_velocimeter"} <= vectors
    assert obs.keys() == env.observation_space.spaces.keys() and info == {"success": False}
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert all(obs[k].dtype == np.float32 and obs[k].ndim == 1 for k in vectors)
    assert isinstance(reward, float) and info["success"] is False
    assert not terminated and not truncated
    assert np.allclose(obs["prev_action"], env.unwrapped.dm_env.physics.data.ctrl)
    env.close()
    assert worlds.gymnasium_id("antmaze-s") == "director/AntMaze-S-v0"
    assert worlds.gymnasium_id("memorymaze-9x9") == "director/MemoryMaze-9x9-v0"
    env = gym.make("director/AntMaze-S-v0", size=16, seed=0)   # registered like every world
    assert env.reset()[0]["image"].shape == (16, 16, 3)
    env.close()


@needs_mujoco
def test_antmaze_seed_fixes_the_episode():
    def rollout(seed: int) -> list[dict]:
        env = worlds.make("antmaze-s", size=16, seed=seed)
        rng = np.random.default_rng(0)
        frames = [env.reset()[0]]
        frames += [env.step(rng.uniform(-1, 1, 8).astype(np.float32))[0] for _ in range(5)]
        env.close()
        return frames

    a, b, c = rollout(3), rollout(3), rollout(4)
    for x, y in zip(a, b):
        assert all(np.array_equal(x[k], y[k]) for k in x)
    assert not np.array_equal(a[0]["image"], c[0]["image"])   # another random heading


@needs_mujoco
def test_antmaze_pays_each_step_at_the_goal_and_ends_only_on_the_time_limit_untermintated():
    # 3000 steps at 50 Hz: the ant idles at the spawn (no reward, no termination), is put on the
    # goal for the last steps (reward 1 on each, the episode goes on), and is cut by time.
    env = worlds.make("antmaze-s", size=16, seed=0)
    env.reset()
    ant, still = unwrapped_ant(env), np.zeros(8, np.float32)
    steps, rewards, at_goal = 0, [], antmaze.EPISODE_STEPS - 10
    while True:
        if steps == at_goal:
            move_onto_target(ant)
        _, reward, terminated, truncated, info = env.step(still)
        steps += 1
        rewards.append(reward)
        assert not terminated and info["success"] == (reward == 1.0)
        if truncated:
            break
    assert steps == antmaze.EPISODE_STEPS == 3000
    assert sum(rewards[:at_goal]) == 0.0 and rewards[at_goal:] == [1.0] * 10
    env.close()


@needs_mujoco
def test_antmaze_has_no_global_position():
    # Moving the ant by a pure translation changes none of its vector observations.
    env = worlds.make("antmaze-m", size=16, seed=0)
    env.reset()
    ant = unwrapped_ant(env)
    observables = ant.walker.observables.as_dict()
    names = [k for k in env.observation_space.spaces if k != "image"]

    def vectors() -> dict[str, np.ndarray]:
        return {k: np.asarray(observables[f"walker/{k}"].observation_callable(ant.physics)())
                for k in names}

    before = vectors()
    ant.walker.shift_pose(ant.physics, [1.3, -0.7, 0.0])
    ant.physics.forward()
    after = vectors()
    assert ant.physics.bind(ant.walker.root_body).xpos[0] != pytest.approx(0.0)
    for k in names:
        np.testing.assert_allclose(after[k], before[k], atol=1e-9, err_msg=k)
    env.close()


def cell_pixels(layout: list[str], size: int) -> dict[tuple[int, int], tuple[int, int]]:
    """Pixel (row, col) of each cell centre in the arena's top view (fitted, 10% padding)."""
    rows, cols = len(layout), len(layout[0])
    extent = 1.1 * max(rows, cols)   # cells across the image
    centre = size / 2
    return {(r, c): (int(centre + (r - (rows - 1) / 2) / extent * size),
                     int(centre + (c - (cols - 1) / 2) / extent * size))
            for r in range(rows) for c in range(cols)}


@needs_mujoco
@pytest.mark.parametrize("task", antmaze.TASKS)
def test_antmaze_top_view_matches_the_layout_and_walls_show_their_colours(task):
    env = antmaze.AntMaze(task)
    env.reset(seed=0)
    size = 28 * len(antmaze.LAYOUTS[task].splitlines())   # within MuJoCo's 640x480 buffer
    top = env.render_top(size).astype(float)
    layout = antmaze.LAYOUTS[task].splitlines()
    colours: dict[str, list[np.ndarray]] = {}
    for (r, c), (y, x) in cell_pixels(layout, size).items():
        cell = layout[r][c]
        if cell in "PG":   # the ant and the target sphere sit there
            continue
        colour = np.median(top[y - 3:y + 4, x - 3:x + 4].reshape(-1, 3), 0)
        assert (colour.max() > 90) == antmaze.is_wall(cell), (task, r, c, cell, colour)
        if antmaze.is_wall(cell):
            colours.setdefault(cell, []).append(colour)
    assert set(colours) == {ch for ch in antmaze.LAYOUTS[task] if antmaze.is_wall(ch)}
    means = {ch: np.mean(v, 0) for ch, v in colours.items()}
    for a in means:
        for b in means:
            if a < b:
                assert np.abs(means[a] - means[b]).max() > 25, (task, a, b, means[a], means[b])
        # the rendered hue follows its tab10 colour: nearest, in direction, among the layout's
        expected = {ch: np.asarray(antmaze.WALL_COLOURS[ch]) for ch in means}
        direction = means[a] / np.linalg.norm(means[a])
        nearest = min(expected, key=lambda ch: np.linalg.norm(direction - expected[ch] / np.linalg.norm(expected[ch])))
        assert nearest == a or np.allclose(expected[nearest], expected[a]), (task, a, nearest)
    env.close()


# ---------------------------------------------------------------------------- Memory Maze
@pytest.fixture(scope="module")
def memory_env():
    env = worlds.make("memorymaze-9x9", size=32, seed=0)
    yield env
    env.close()


@needs_mujoco
@needs_memory_maze
def test_memorymaze_spaces_dtypes_and_seeding(memory_env):
    obs, info = memory_env.reset(seed=5)
    assert memory_env.action_space == spaces.Discrete(6)
    assert memory_env.observation_space["image"] == spaces.Box(0, 255, (32, 32, 3), np.uint8)
    assert memory_env.observation_space["target_color"].shape == (3,)
    assert info == {"success": False, "targets": 0}
    first = [obs] + [memory_env.step(a)[0] for a in (1, 1, 2, 1)]
    again = [memory_env.reset(seed=5)[0]] + [memory_env.step(a)[0] for a in (1, 1, 2, 1)]
    for x, y in zip(first, again):
        assert x.keys() == {"image", "target_color"}
        assert x["image"].dtype == np.uint8 and x["target_color"].dtype == np.float32
        assert all(np.array_equal(x[k], y[k]) for k in x)
    other = memory_env.reset(seed=6)[0]
    assert not np.array_equal(other["image"], first[0]["image"])   # another maze


@needs_mujoco
@needs_memory_maze
def test_memorymaze_counts_targets_and_maps_the_task_end(memory_env, monkeypatch):
    memory_env.reset(seed=1)
    maze = memory_env.unwrapped
    assert maze.dm_env.observation_spec()["image"].shape == (32, 32, 3)
    step = maze.dm_env.step
    script = iter([1.0, 0.0, 1.0])   # the task's rewards for three steps: two targets reached
    monkeypatch.setattr(maze.dm_env, "step", lambda a: step(a)._replace(reward=next(script)))
    infos = [memory_env.step(1)[-1] for _ in range(3)]
    assert [i["success"] for i in infos] == [True, False, True]
    assert [i["targets"] for i in infos] == [1, 1, 2]
    for discount, ends in ((1.0, (False, True)), (0.0, (True, False))):
        monkeypatch.setattr(maze.dm_env, "step", lambda a, d=discount: step(a)._replace(
            step_type=2, discount=d))   # dm_env.StepType.LAST
        assert memory_env.step(0)[2:4] == ends
    assert memory_env.reset()[1]["targets"] == 0
    assert memorymaze.EPISODE_STEPS["9x9"] == 1000


def test_memorymaze_does_not_import_the_legacy_gym():
    code = ("import sys, worlds; from worlds import memorymaze; memorymaze.tasks('memorymaze-9x9'); "
            "print('gym' in sys.modules)")
    if importlib.util.find_spec("memory_maze") is None:
        pytest.skip('needs pip install -e ".[memorymaze]"')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------- missing extras
@pytest.mark.parametrize("name, hidden, extra", [("antmaze-s", "dm_control", "antmaze"),
                                                 ("memorymaze-9x9", "memory_maze", "memorymaze")])
def test_missing_extra_names_the_install_command(monkeypatch, name, hidden, extra):
    for module in [hidden] + [m for m in sys.modules if m.startswith(hidden + ".")]:
        monkeypatch.setitem(sys.modules, module, None)   # imports fail as if not installed
    for call in (lambda: worlds.make(name), lambda: worlds.make_vector(name, 2)):
        with pytest.raises(WorldError) as error:
            call()
        assert f'pip install -e ".[{extra}]"' in str(error.value)
        assert "\n" not in str(error.value)
    assert "not installed" in worlds.describe(name)


@pytest.mark.parametrize("name, extra", [("antmaze-m", "antmaze"), ("memorymaze-9x9", "memorymaze")])
def test_worlds_show_without_the_extra_exits_2_with_one_paragraph(tmp_path, name, extra):
    fake = tmp_path / "dm_control"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named dm_control (hidden)')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    out = subprocess.run([sys.executable, "-m", "director", "worlds", "show", name, "--out",
                          str(tmp_path / "x.gif")], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert f'pip install -e ".[{extra}]"' in out.stderr
    assert not (tmp_path / "x.gif").exists()
