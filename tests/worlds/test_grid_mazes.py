"""Grid mazes S/M/L/XL: pay on every step at the goal, never terminate, absolute moves, time limits,
rendering."""
from __future__ import annotations

import numpy as np
import pytest

import worlds
from worlds import mazes
from worlds.mazes import AGENT_COLOUR, GridMaze


@pytest.mark.parametrize("task", mazes.TASKS)
def test_shortest_path_reaches_goal_and_pays_while_the_agent_stays(task):
    env = worlds.make(f"maze-{task}", seed=0)
    obs, info = env.reset()
    assert info["success"] is False
    path = env.unwrapped.shortest_path()
    for index, action in enumerate(path):
        obs, reward, terminated, truncated, info = env.step(action)
        last = index == len(path) - 1
        assert reward == (1.0 if last else 0.0)
        assert not terminated and info["success"] == last and not truncated
        assert env.observation_space.contains(obs)
    assert env.unwrapped.agent_pos == env.unwrapped.goal_pos
    for _ in range(3):  # staying on the goal keeps paying; the episode goes on
        _, reward, terminated, truncated, info = env.step(0)
        assert reward == 1.0 and info["success"] and not terminated and not truncated


@pytest.mark.parametrize("task", mazes.TASKS)
def test_random_steps_pay_only_on_the_goal_cell(task):
    env = GridMaze(task)
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    for _ in range(300):
        _, reward, terminated, truncated, info = env.step(int(rng.integers(5)))
        at_goal = env.agent_pos == env.goal_pos
        assert reward == (1.0 if at_goal else 0.0) and info["success"] == at_goal and not terminated
        if truncated:
            env.reset()


def test_shortest_paths_grow_with_maze_size():
    lengths = [len(GridMaze(task).shortest_path()) for task in mazes.TASKS]
    assert lengths == sorted(lengths) and lengths[0] >= 10 and lengths[-1] >= 100


def test_absolute_moves_and_walls():
    env = GridMaze("s")
    env.reset(seed=0)
    assert env.agent_pos == env.start_pos == (1, 1)
    env.step(4)                      # up: wall
    assert env.agent_pos == (1, 1)
    env.step(1)                      # right
    assert env.agent_pos == (2, 1)
    env.step(1)                      # right: wall
    assert env.agent_pos == (2, 1)
    env.step(3)                      # down
    assert env.agent_pos == (2, 2)
    env.step(0)                      # no-op
    assert env.agent_pos == (2, 2)


def test_time_limit_truncates_without_terminating():
    env = worlds.make("maze-xl", time_limit=7)
    env.reset(seed=0)
    for step in range(1, 8):
        _, _, terminated, truncated, _ = env.step(0)
        assert not terminated and truncated == (step == 7)
    default = worlds.make("maze-m").unwrapped
    assert default.max_steps == mazes.TIME_LIMITS["m"]


def test_observation_is_render_state_of_agent_cell():
    env = GridMaze("l", size=64)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    rng = np.random.default_rng(0)
    for _ in range(30):
        obs, *_ = env.step(int(rng.integers(5)))
        assert np.array_equal(obs["image"], env.render_state(env.agent_pos))
    x, y = env.agent_pos
    assert np.array_equal(obs["image"][y * 4 + 2, x * 4 + 2], AGENT_COLOUR)


def test_free_cells_cover_start_and_goal_only_floor():
    env = GridMaze("xl")
    free = env.free_cells()
    assert env.start_pos in free and env.goal_pos in free
    assert all(env.rows[y][x] != "#" for x, y in free)
    images = {env.render_state(cell).tobytes() for cell in free}
    assert len(images) == len(free)   # every position looks different


def test_other_sizes():
    for size, task in ((32, "m"), (48, "s"), (96, "xl")):
        obs, _ = GridMaze(task, size=size).reset(seed=0)
        assert obs["image"].shape == (size, size, 3)


def test_passes_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env

    check_env(GridMaze("l", render_mode="rgb_array"), skip_render_check=True)


# ----------------------------------------------------------------------------- layout files
REPO_MAZE = __import__("pathlib").Path(__file__).resolve().parents[2] / "experiments" / "mazes" / "two-rooms.txt"


def _layout_file(tmp_path, rows):
    path = tmp_path / "maze.txt"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_layout_file_is_drawn_and_plays_like_the_built_in_maze(tmp_path):
    path = _layout_file(tmp_path, mazes.LAYOUTS["s"])
    mine, built_in = worlds.make(f"maze:{path}", size=32, seed=0), worlds.make("maze-s", size=32, seed=0)
    a, _ = mine.reset()
    b, _ = built_in.reset()
    np.testing.assert_array_equal(a["image"], b["image"])
    for action in built_in.unwrapped.shortest_path():
        a, ra, *_ = mine.step(action)
        b, rb, *_ = built_in.step(action)
        np.testing.assert_array_equal(a["image"], b["image"])
        assert ra == rb
    assert ra == 1.0
    assert mine.unwrapped.max_steps == mazes.custom_time_limit(12)
    assert worlds.make(f"maze:{path}", time_limit=9).unwrapped.max_steps == 9


def test_example_layout_file_loads_and_its_goal_is_reachable():
    env = worlds.make(f"maze:{REPO_MAZE}", size=32)
    assert env.unwrapped.shortest_path() and env.unwrapped.width == 12
    assert "shortest path" in worlds.describe(f"maze:{REPO_MAZE}")


@pytest.mark.parametrize("rows, match", [
    (("#####", "#   #", "#  G#", "#####"), "no 'S'"),
    (("#####", "#S  #", "#   #", "#####"), "no 'G'"),
    (("#####", "#SS #", "#  G#", "#####"), "2 'S'"),
    (("#####", "#S G#", "#  G#", "#####"), "2 'G'"),
    (("#####", "#S# #", "# #G#", "#####"), "cannot be reached"),
    (("#####", "#S  #", "#  G #", "#####"), "line 3 has 6 characters"),
    (("#####", "#S x#", "#  G#", "#####"), "unknown character.*'x'"),
    (("#####", "#S   ", "#  G#", "#####"), "not closed"),
])
def test_bad_layout_files_are_world_errors_that_say_what_is_wrong(tmp_path, rows, match):
    path = _layout_file(tmp_path, rows)
    with pytest.raises(worlds.WorldError, match=match):
        worlds.make(f"maze:{path}")


def test_missing_layout_file_is_a_world_error(tmp_path):
    with pytest.raises(worlds.WorldError, match="Cannot read the maze layout file"):
        worlds.make(f"maze:{tmp_path / 'nowhere.txt'}")


def test_cli_shows_a_layout_file_and_refuses_a_bad_one(tmp_path):
    import subprocess
    import sys
    run = lambda *a: subprocess.run([sys.executable, "-m", "director", "worlds", "show", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    shown = run(f"maze:{REPO_MAZE}", "--steps", "5", "--out", str(tmp_path / "m.gif"))
    assert shown.returncode == 0 and (tmp_path / "m.png").exists(), shown.stderr
    bad = run(f"maze:{_layout_file(tmp_path, ('####', '#S #', '####'))}")
    assert bad.returncode == 2 and "no 'G'" in bad.stderr and "Traceback" not in bad.stderr
