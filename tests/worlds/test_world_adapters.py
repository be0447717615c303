"""Adapters over MiniGrid tasks, MiniWorld (headless) and arbitrary gymnasium ids."""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

import worlds

FORWARD, RIGHT = 2, 1   # MiniGrid action indices


def test_minigrid_named_task_is_top_down_rgb_with_move_actions():
    env = worlds.make("minigrid-fourrooms", seed=0)
    assert env.action_space == spaces.Discrete(3)
    obs, _ = env.reset()
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert obs["image"].std() > 10   # walls, goal and agent are visible
    assert worlds.make("minigrid-multiroom").action_space == spaces.Discrete(7)


def test_minigrid_success_when_reaching_the_goal():
    env = worlds.make("minigrid:MiniGrid-Empty-5x5-v0", actions="move", seed=0)
    env.reset()
    results = [env.step(action) for action in (FORWARD, FORWARD, RIGHT, FORWARD, FORWARD)]
    rewards = [r[1] for r in results]
    assert all(r == 0 for r in rewards[:-1]) and rewards[-1] > 0
    assert results[-1][2] is True and results[-1][4]["success"] is True
    assert not any(r[4]["success"] for r in results[:-1])


def test_minigrid_time_limit_option_truncates():
    env = worlds.make("minigrid:MiniGrid-Empty-8x8-v0", time_limit=4, seed=0)
    env.reset()
    truncated = [env.step(0)[3] for _ in range(4)]
    assert truncated == [False, False, False, True]


def test_miniworld_maze_smoke_headless():
    env = worlds.make("miniworld-maze-s3", size=32, seed=0)
    assert env.action_space == spaces.Discrete(3)
    obs, info = env.reset()
    assert obs["image"].shape == (32, 32, 3) and obs["image"].dtype == np.uint8 and not info["success"]
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert info["success"] == (reward > 0)
    assert obs["image"].std() > 0
    env.close()


def test_gym_id_without_image_uses_render():
    env = worlds.make("gym:CartPole-v1", size=48, seed=0)
    obs, _ = env.reset()
    assert set(obs) == {"image"} and obs["image"].shape == (48, 48, 3)
    obs2, *_ = env.step(1)
    assert env.observation_space.contains(obs2)
