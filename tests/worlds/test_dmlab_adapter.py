"""The DeepMind Lab adapter against a faithful stand-in module, and its error when DMLab is absent."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

import worlds
from worlds import WorldError, dmlab

FAKE_PATH = Path(__file__).with_name("fake_deepmind_lab.py")


@pytest.fixture
def fake_lab(monkeypatch):
    """Install the stand-in as `deepmind_lab` for one test."""
    spec = importlib.util.spec_from_file_location("deepmind_lab", FAKE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.Lab.instances = []
    module.Lab.crash_on_step = None
    monkeypatch.setitem(sys.modules, "deepmind_lab", module)
    return module


def test_adapter_builds_lab_with_level_config_and_impala_actions(fake_lab):
    env = worlds.make("dmlab-explore_goal_locations_small", size=32, seed=0)
    lab = fake_lab.Lab.instances[-1]
    assert lab.level == "contributed/dmlab30/explore_goal_locations_small"
    assert lab.observation_names == ["RGB_INTERLEAVED"]
    assert lab.config["width"] == "32" and lab.config["height"] == "32"
    assert env.action_space == spaces.Discrete(9)
    assert env.unwrapped.action_names[0] == "forward" and env.unwrapped.action_names[-1] == "fire"
    obs, info = env.reset()
    assert obs["image"].shape == (32, 32, 3) and obs["image"].dtype == np.uint8 and not info["success"]
    env.step(0)   # forward
    env.step(7)   # forward + look right
    (forward, repeat), (forward_right, _) = lab.step_calls
    assert forward.dtype == np.int32 and forward.shape == (7,)
    assert forward.tolist() == [0, 0, 0, 1, 0, 0, 0] and repeat == 4
    assert forward_right.tolist() == [20, 0, 0, 1, 0, 0, 0]


def test_all_nine_actions_are_valid_for_the_action_spec(fake_lab):
    env = worlds.make("dmlab-rooms_watermaze", seed=0)
    env.reset()
    for action in range(9):
        env.step(action)
    assert len(fake_lab.Lab.instances[-1].step_calls) == 9


def test_episode_end_is_truncation_with_last_frame_and_success_on_goal(fake_lab):
    env = worlds.make("dmlab-explore_goal_locations_small", size=16, seed=0)
    obs, _ = env.reset()
    steps = fake_lab.EPISODE_FRAMES // dmlab.DEFAULT_REPEAT
    results = [env.step(0) for _ in range(steps)]
    assert [r[3] for r in results] == [False] * (steps - 1) + [True]
    assert not any(r[2] for r in results)
    # Forward for 8 frames reaches the goal: every second agent step pays 10.
    assert [r[1] for r in results[:4]] == [0.0, 10.0, 0.0, 10.0]
    assert [r[4]["success"] for r in results[:4]] == [False, True, False, True]
    assert np.array_equal(results[-1][0]["image"], results[-2][0]["image"])
    obs, _ = env.reset()
    assert env.step(0)[3] is False


def test_seeding_passes_a_seed_to_lab_reset(fake_lab):
    a = worlds.make("dmlab-explore_goal_locations_small", seed=3)
    b = worlds.make("dmlab-explore_goal_locations_small", seed=3)
    a.reset()
    b.reset()
    seeds = [lab.reset_seeds[0] for lab in fake_lab.Lab.instances]
    assert seeds[0] is not None and seeds[0] == seeds[1]


def test_crash_in_step_restarts_by_default(fake_lab):
    env = worlds.make("dmlab-explore_goal_locations_small", seed=0)
    env.reset()
    fake_lab.Lab.crash_on_step = 2
    assert "restarted" not in env.step(0)[4]
    obs, reward, terminated, truncated, info = env.step(0)
    fake_lab.Lab.crash_on_step = None
    assert info["restarted"] and truncated and not terminated and reward == 0.0
    assert len(fake_lab.Lab.instances) == 2 and fake_lab.Lab.instances[0].closed


def test_action_repeat_option_sets_num_steps(fake_lab):
    env = worlds.make("dmlab-explore_goal_locations_small", action_repeat=2)
    env.reset()
    env.step(0)
    assert fake_lab.Lab.instances[-1].step_calls[0][1] == 2


def test_missing_deepmind_lab_explains_how_to_build_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepmind_lab", None)   # makes `import deepmind_lab` fail
    with pytest.raises(WorldError) as error:
        worlds.make("dmlab-explore_goal_locations_small")
    message = str(error.value)
    assert "bazel build -c opt //python/pip_package:build_pip_package" in message
    assert "pip install" in message and "\n" not in message
    with pytest.raises(WorldError):
        worlds.make_vector("dmlab-explore_goal_locations_small", 2)
