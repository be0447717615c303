"""Each wrapper of worlds.wrappers on its own, against small toy envs."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from worlds.errors import WorldError
from worlds.wrappers import (ActionRepeat, ImageObs, NormalizeActions, OneHotActions, Resize,
                             RestartOnError, SeedFirstReset, SuccessInfo, TimeLimit)


class Counter(gym.Env):
    """Image = step count; reward = 1 per step; success on step `success_at`; ends at `length`."""

    def __init__(self, length: int = 10, success_at: int = -1,
                 action_space: spaces.Space | None = None):
        self.observation_space = spaces.Dict({"image": spaces.Box(0, 255, (8, 8, 3), np.uint8)})
        self.action_space = action_space or spaces.Discrete(4)
        self.length, self.success_at = length, success_at
        self.count = 0
        self.actions: list = []

    def _obs(self):
        return {"image": np.full((8, 8, 3), self.count % 256, np.uint8)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count = 0
        return self._obs(), {"success": False}

    def step(self, action):
        self.actions.append(action)
        self.count += 1
        info = {"success": self.count == self.success_at}
        return self._obs(), 1.0, self.count >= self.length, False, info


def test_action_repeat_sums_rewards_and_stops_at_episode_end():
    env = ActionRepeat(Counter(length=5), 2)
    env.reset()
    obs, reward, terminated, _, _ = env.step(0)
    assert reward == 2.0 and obs["image"][0, 0, 0] == 2 and not terminated
    env.step(0)
    obs, reward, terminated, _, _ = env.step(0)
    assert reward == 1.0 and terminated and obs["image"][0, 0, 0] == 5


def test_action_repeat_keeps_success_of_an_inner_step():
    env = ActionRepeat(Counter(success_at=3), 4)
    env.reset()
    assert env.step(0)[4]["success"] is True
    assert env.step(0)[4]["success"] is False


def test_action_repeat_rejects_bad_repeat():
    with pytest.raises(ValueError):
        ActionRepeat(Counter(), 0)


def test_time_limit_truncates():
    env = TimeLimit(Counter(length=100), 3)
    env.reset()
    results = [env.step(0) for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True] and not any(r[2] for r in results)


def test_resize_changes_only_the_image():
    base = Counter()
    base.observation_space = spaces.Dict({"image": base.observation_space["image"],
                                          "vec": spaces.Box(-1, 1, (2,), np.float32)})
    base._obs = lambda: {"image": np.full((8, 8, 3), 7, np.uint8), "vec": np.zeros(2, np.float32)}
    env = Resize(base, 16)
    obs, _ = env.reset()
    assert obs["image"].shape == (16, 16, 3) and obs["image"].dtype == np.uint8
    assert (obs["image"] == 7).all() and obs["vec"].shape == (2,)
    assert env.observation_space.contains(obs)
    small = Resize(Counter(), 4)
    assert small.reset()[0]["image"].shape == (4, 4, 3)


def test_one_hot_actions_accept_vectors_and_ints():
    base = Counter()
    env = OneHotActions(base)
    assert env.action_space == spaces.Box(0.0, 1.0, (4,), np.float32)
    env.reset()
    env.step(np.array([0, 0, 1, 0], np.float32))
    env.step(3)
    env.step(np.int64(1))
    env.step(env.action_space.sample())
    assert base.actions[:3] == [2, 3, 1] and 0 <= base.actions[3] < 4
    with pytest.raises(ValueError):
        env.step(np.zeros(5, np.float32))
    with pytest.raises(ValueError):
        env.step(7)


def test_one_hot_random_vectors_give_uniform_actions():
    base = Counter(length=10_000)
    env = OneHotActions(base)
    env.action_space.seed(0)
    env.reset()
    for _ in range(2000):
        env.step(env.action_space.sample())
    counts = np.bincount(base.actions, minlength=4)
    assert counts.min() > 400


def test_normalize_actions_maps_and_clips():
    box = spaces.Box(np.array([0.0, -2.0, -np.inf]), np.array([10.0, 2.0, np.inf]), dtype=np.float64)
    base = Counter(action_space=box)
    env = NormalizeActions(base)
    assert env.action_space.dtype == np.float32
    assert np.array_equal(env.action_space.low[:2], [-1, -1])
    assert np.array_equal(env.action_space.high[:2], [1, 1])
    env.reset()
    env.step(np.array([-1.0, 1.0, 5.0]))
    env.step(np.array([0.0, 3.0, -7.0]))   # 3.0 clips to 1.0; the unbounded entry passes through
    assert np.allclose(base.actions[0], [0.0, 2.0, 5.0])
    assert np.allclose(base.actions[1], [5.0, 2.0, -7.0])


def test_image_obs_from_box_dict_and_render():
    class BoxImage(Counter):
        def __init__(self):
            super().__init__()
            self.observation_space = self.observation_space["image"]

        def _obs(self):
            return np.full((8, 8, 3), self.count, np.uint8)

    env = ImageObs(BoxImage())
    obs, _ = env.reset()
    assert set(obs) == {"image"} and env.observation_space.contains(obs)

    class Mixed(Counter):
        def __init__(self):
            super().__init__()
            self.observation_space = spaces.Dict({
                "image": spaces.Box(0, 255, (8, 8, 3), np.uint8),
                "proprio": spaces.Box(-1, 1, (2, 2), np.float64),
                "mission": spaces.Text(10)})

        def _obs(self):
            return {"image": np.zeros((8, 8, 3), np.uint8), "proprio": np.ones((2, 2)), "mission": "go"}

    env = ImageObs(Mixed())
    obs, _ = env.reset()
    assert set(obs) == {"image", "proprio"} and obs["proprio"].shape == (4,)
    assert obs["proprio"].dtype == np.float32 and env.observation_space.contains(obs)

    rendered = ImageObs(gym.make("CartPole-v1", render_mode="rgb_array"), from_render=True)
    obs, _ = rendered.reset(seed=0)
    assert obs["image"].ndim == 3 and obs["image"].dtype == np.uint8
    with pytest.raises(ValueError):
        ImageObs(gym.make("CartPole-v1"))


def test_success_info_rule_and_default():
    env = SuccessInfo(Counter(length=3), lambda reward, terminated, info: terminated and reward > 0)
    _, info = env.reset()
    assert info["success"] is False
    assert [env.step(0)[4]["success"] for _ in range(3)] == [False, False, True]
    env = SuccessInfo(gym.make("CartPole-v1"))
    env.reset(seed=0)
    assert env.step(0)[4]["success"] is False


def test_seed_first_reset_seeds_only_the_first_reset():
    reference = Counter()
    reference.reset(seed=5)
    seeded = reference.np_random.bit_generator.state
    a = SeedFirstReset(Counter(), 5)
    a.reset()
    assert a.unwrapped.np_random.bit_generator.state == seeded
    a.unwrapped.np_random.integers(1 << 30)  # the episode draws from the generator
    a.reset()  # continues the generator: a wrapper that reseeded every reset would restore `seeded`
    assert a.unwrapped.np_random.bit_generator.state != seeded
    b = SeedFirstReset(Counter(), 5)
    b.reset(seed=6)  # an explicit seed wins, even on the first reset
    assert b.unwrapped.np_random.bit_generator.state != seeded


class Flaky(Counter):
    """Raises in step when the global step counter hits `fail_on`; raises in the first resets."""

    def __init__(self, log: dict):
        super().__init__(length=100)
        self.log = log
        log["built"] = log.get("built", 0) + 1

    def reset(self, *, seed=None, options=None):
        if self.log.get("reset_failures", 0) > 0:
            self.log["reset_failures"] -= 1
            raise RuntimeError("reset crashed")
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self.log["steps"] = self.log.get("steps", 0) + 1
        if self.log["steps"] == self.log.get("fail_on"):
            raise RuntimeError("step crashed")
        return super().step(action)


def test_restart_on_error_when_step_raises():
    log = {"fail_on": 3}
    env = RestartOnError(lambda: Flaky(log))
    env.reset()
    env.step(0)
    env.step(0)
    obs, reward, terminated, truncated, info = env.step(0)
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert info["restarted"] is True and info["success"] is False
    assert obs["image"][0, 0, 0] == 0       # first observation of the rebuilt env
    assert log["built"] == 2 and env.restarts == 1
    env.reset()
    assert env.step(0)[0]["image"][0, 0, 0] == 1


def test_restart_on_error_when_reset_raises():
    log = {"reset_failures": 2}
    env = RestartOnError(lambda: Flaky(log), max_retries=3)
    obs, info = env.reset()
    assert info["restarted"] is True and log["built"] == 3 and obs["image"][0, 0, 0] == 0


def test_restart_on_error_gives_up_after_max_retries():
    log = {"reset_failures": 100}
    env = RestartOnError(lambda: Flaky(log), max_retries=2)
    with pytest.raises(RuntimeError, match="reset crashed"):
        env.reset()
    assert log["built"] == 3   # the original and two rebuilds


def test_restart_on_error_stops_with_a_world_error_past_its_budget():
    log = {"fail_on": -1}
    env = RestartOnError(lambda: Flaky(log), max_restarts=2, window=60.0)
    env.reset(seed=3)
    for failure in range(2):
        log["fail_on"], log["steps"] = 1, 0
        assert env.step(0)[4]["restarted"]
    log["fail_on"], log["steps"] = 1, 0
    with pytest.raises(WorldError, match=r"crashed 3 times within 60 s .*step crashed.*max_restarts"):
        env.step(0)
    assert env.restarts == 2


def test_every_world_restarts_on_error_by_default():
    import worlds
    from worlds.wrappers import RestartOnError as Wrapper
    for name in ("pinpad-three", "maze-s"):
        env, found = worlds.make(name, size=16), False
        while hasattr(env, "env"):
            found |= isinstance(env, Wrapper)
            env = env.env
        assert found, name
