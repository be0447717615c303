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
