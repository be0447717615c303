"""worlds.make_vector: batched shapes, per-env seeds, NEXT_STEP autoreset, sync and async."""
from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

import worlds
from worlds import WorldError


def test_sync_vector_steps_and_autoresets_on_next_step():
    vec = worlds.make_vector("pinpad-three", 3, seed=10, time_limit=4)
    assert isinstance(vec, SyncVectorEnv)
    obs, info = vec.reset()
    assert obs["image"].shape == (3, 64, 64, 3) and obs["image"].dtype == np.uint8
    actions = np.zeros(3, np.int64)
    for _ in range(3):
        obs, reward, terminated, truncated, info = vec.step(actions)
        assert not truncated.any()
    obs, reward, terminated, truncated, info = vec.step(actions)
    assert truncated.all() and not terminated.any()
    assert info["success"].dtype == bool and info["success"].shape == (3,)
    last = obs["image"].copy()
    obs, reward, terminated, truncated, info = vec.step(actions)   # NEXT_STEP: this is the reset
    assert not truncated.any() and (reward == 0).all()
    assert not all(np.array_equal(a, b) for a, b in zip(last, obs["image"]))


def test_vector_envs_are_seeded_seed_plus_index():
    vec = worlds.make_vector("pinpad-five", 2, seed=20)
    obs, _ = vec.reset()
    for index in range(2):
        single, _ = worlds.make("pinpad-five", seed=20 + index).reset()
        assert np.array_equal(obs["image"][index], single["image"])
    assert not np.array_equal(obs["image"][0], obs["image"][1])


def test_vector_one_hot_actions():
    """One-hot vectors act like the integer actions of their argmax."""
    vec = worlds.make_vector("maze-s", 2, seed=0, one_hot=True)
    plain = worlds.make_vector("maze-s", 2, seed=0)
    try:
        assert vec.single_action_space.shape == (5,) and plain.single_action_space.n == 5
        a, b = vec.reset()[0], plain.reset()[0]
        start = b["image"]
        for actions in ([1, 3], [2, 2], [4, 0], [3, 1]):
            a = vec.step(np.eye(5, dtype=np.float32)[actions])[0]
            b = plain.step(np.array(actions))[0]
            assert np.array_equal(a["image"], b["image"])
        assert not np.array_equal(b["image"], start)  # the actions moved the agents
    finally:
        vec.close()
        plain.close()


def test_async_vector_env_steps_and_autoresets():
    vec = worlds.make_vector("maze-s", 2, seed=0, asynchronous=True, time_limit=2)
    try:
        assert isinstance(vec.unwrapped, AsyncVectorEnv)
        obs, _ = vec.reset()
        assert obs["image"].shape == (2, 64, 64, 3)
        vec.step(np.array([1, 3]))
        _, _, terminated, truncated, _ = vec.step(np.array([1, 3]))
        assert truncated.all() and not terminated.any()
        obs, reward, _, truncated, _ = vec.step(np.array([1, 3]))
        assert not truncated.any()
        single, _ = worlds.make("maze-s").reset()
        assert all(np.array_equal(image, single["image"]) for image in obs["image"])   # back at start
    finally:
        vec.close()


def test_vector_errors_are_raised_in_the_caller():
    with pytest.raises(WorldError, match="Unknown world"):
        worlds.make_vector("pinpad-tree", 2)
    with pytest.raises(WorldError, match="num_envs"):
        worlds.make_vector("pinpad-three", 0)
    with pytest.raises(WorldError, match="fork"):
        worlds.make_vector("pinpad-three", 2, asynchronous=True, context="fork")


def test_async_vector_env_with_a_dead_worker_is_rebuilt_and_its_episodes_marked():
    from director.collect import Collector
    envs = worlds.make_vector("pinpad-three", 2, size=16, seed=0, asynchronous=True, one_hot=True)
    try:
        collector = Collector(envs, None)
        collector.reset(seed=0)

        def policy(obs):
            return np.eye(5, dtype=np.float32)[np.zeros(2, int)]

        for _ in range(3):
            collector.step(policy)
        envs.env.processes[1].kill()
        envs.env.processes[1].join(timeout=10)
        collector.step(policy)  # the step that finds the pipe broken: all episodes end, marked
        assert envs.restarts == 1 and collector._obs["is_last"].all() and not collector._obs["is_terminal"].any()
        finished = collector.step(policy)
        assert [e["restarted"] for e in finished] == [True, True] and collector._obs["is_first"].all()
        collector.step(policy)  # the rebuilt envs step on
        assert not collector._obs["is_first"].any() and not collector._obs["is_last"].any()
    finally:
        envs.close()


def test_async_vector_env_without_restart_on_error_is_plain():
    envs = worlds.make_vector("pinpad-three", 1, size=16, asynchronous=True, restart_on_error=False)
    try:
        assert isinstance(envs, AsyncVectorEnv)
    finally:
        envs.close()
