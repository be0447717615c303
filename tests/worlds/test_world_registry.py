"""worlds.make / names / describe / show: names, options, errors, spaces, seeding."""
from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from PIL import Image

import worlds
from worlds.preview import random_rollout
from worlds import WorldError

CHEAP = ["pinpad-three", "pinpad-eight", "maze-s", "maze-xl",
         "minigrid-fourrooms", "minigrid-multiroom"]


def rollout(env, steps: int = 30) -> list[np.ndarray]:
    return random_rollout(env, steps)


def test_names_list_builtins_and_patterns():
    names = worlds.names()
    for name in ["pinpad-three", "pinpad-eight", "maze-s", "maze-m", "maze-l", "maze-xl",
                 "minigrid-fourrooms", "minigrid-multiroom", "miniworld-maze", "miniworld-maze-s3",
                 "miniworld-fourrooms", "gym:<id>", "dmlab-<level>", "miniworld:<id>", "minigrid:<id>"]:
        assert name in names
    assert len(names) == len(set(names))


def test_describe_gives_one_line_for_every_name():
    for name in worlds.names() + ["gym:CartPole-v1", "dmlab-rooms_watermaze"]:
        text = worlds.describe(name)
        assert text and "\n" not in text
    with pytest.raises(WorldError):
        worlds.describe("no-such-world")


@pytest.mark.parametrize("name", CHEAP)
def test_spaces_shapes_dtypes_and_success_key(name):
    env = worlds.make(name, seed=0)
    assert isinstance(env.observation_space, spaces.Dict)
    assert env.observation_space["image"] == spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert isinstance(env.action_space, spaces.Discrete)
    obs, info = env.reset()
    assert env.observation_space.contains(obs) and info["success"] is False
    for _ in range(10):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert obs["image"].dtype == np.uint8 and obs["image"].shape == (64, 64, 3)
        assert isinstance(info["success"], bool)
        assert isinstance(terminated, bool) and isinstance(truncated, bool)
        float(reward)


@pytest.mark.parametrize("name", CHEAP)
def test_same_seed_same_frames(name):
    a = rollout(worlds.make(name, seed=7))
    b = rollout(worlds.make(name, seed=7))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_different_seeds_differ():
    a = rollout(worlds.make("pinpad-three", seed=1), 5)
    b = rollout(worlds.make("pinpad-three", seed=2), 5)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))


def test_size_option():
    for name in ("pinpad-four", "maze-m", "minigrid-fourrooms"):
        obs, _ = worlds.make(name, size=32, seed=0).reset()
        assert obs["image"].shape == (32, 32, 3)


def test_one_hot_option():
    env = worlds.make("pinpad-three", seed=0, one_hot=True)
    assert env.action_space == spaces.Box(0.0, 1.0, (5,), np.float32)
    env.reset()
    env.step(np.eye(5, dtype=np.float32)[1])
    env.step(env.action_space.sample())


def test_action_repeat_option():
    env = worlds.make("maze-xl", action_repeat=3, seed=0)
    env.reset()
    env.step(3)   # down, three times
    assert env.unwrapped.agent_pos == (1, 4)


def test_continuous_gym_world_is_normalised():
    env = worlds.make("gym:Pendulum-v1", size=32, seed=0)
    assert env.action_space == spaces.Box(-1.0, 1.0, (1,), np.float32)
    obs, _ = env.reset()
    assert obs["image"].shape == (32, 32, 3)
    env.step(np.array([5.0], np.float32))   # clipped, not rejected


def test_unknown_name_lists_close_matches():
    with pytest.raises(WorldError, match="pinpad-three") as error:
        worlds.make("pinpad-tree")
    assert "Unknown world" in str(error.value)
    with pytest.raises(WorldError, match="maze-xl"):
        worlds.make("maze-xxl")
    assert isinstance(error.value, ValueError)


def test_unknown_gym_id_is_a_world_error():
    with pytest.raises(WorldError, match="CartPole"):
        worlds.make("gym:CartPol-v1")
    with pytest.raises(WorldError):
        worlds.make("miniworld:MiniWorld-Nope-v0")


@pytest.mark.parametrize("options, match", [
    ({"actoin_repeat": 2}, "action_repeat"),
    ({"action_repeat": 0}, "action_repeat"),
    ({"time_limit": -5}, "time_limit"),
    ({"one_hot": "yes"}, "one_hot"),
    ({"actions": "move"}, "actions"),
    ({"size": 8}, "size"),
    ({"seed": "x"}, "seed"),
])
def test_bad_option_names_the_option_and_what_is_allowed(options, match):
    with pytest.raises(WorldError, match=match) as error:
        worlds.make("pinpad-three", **options)
    assert "allowed" in str(error.value) or "options are" in str(error.value)


def test_bad_minigrid_actions_value():
    with pytest.raises(WorldError, match="'move'"):
        worlds.make("minigrid-fourrooms", actions="some")


def test_one_hot_on_continuous_world_is_refused():
    with pytest.raises(WorldError, match="one_hot"):
        worlds.make("gym:Pendulum-v1", one_hot=True)


def test_show_writes_gif_and_png_strip(tmp_path):
    paths = worlds.show("maze-s", steps=40, out=tmp_path / "sub" / "maze.gif", seed=0)
    assert paths["gif"] == tmp_path / "sub" / "maze.gif"
    assert paths["png"] == tmp_path / "sub" / "maze.png"
    with Image.open(paths["gif"]) as gif:
        # Pillow merges identical consecutive frames (a wall bump), so count loosely.
        assert gif.n_frames > 5 and gif.size == (64, 64)
    with Image.open(paths["png"]) as png:
        assert png.size[0] > 64 * 4 and png.mode == "RGB"
    with pytest.raises(WorldError):
        worlds.show("pinpad-tree", out=tmp_path / "x.gif")


def test_builtin_worlds_render_their_observation():
    for name in ("pinpad-three", "maze-m"):
        env = worlds.make(name, seed=0)
        obs, _ = env.reset()
        assert np.array_equal(env.render(), obs["image"])


# ----------------------------------------------------------------------------- registration both ways
def test_builtin_worlds_are_registered_with_gymnasium():
    import gymnasium as gym
    from worlds.registry import _WORLDS
    assert worlds.gymnasium_id("pinpad-three") == "director/PinPad-Three-v0"
    assert worlds.gymnasium_id("maze-xl") == "director/Maze-XL-v0"
    assert {worlds.gymnasium_id(n) for n in _WORLDS} <= set(gym.registry)
    for name in ("maze-m", "pinpad-three"):
        env = gym.make(worlds.gymnasium_id(name), size=32, seed=3)
        ours = worlds.make(name, size=32, seed=3)
        np.testing.assert_array_equal(env.reset()[0]["image"], ours.reset()[0]["image"])
        _, _, _, _, info = env.step(env.action_space.sample())
        assert "success" in info and env.spec.id == worlds.gymnasium_id(name)


def test_gymnasium_module_syntax_imports_worlds_in_a_fresh_process():
    import subprocess
    import sys
    code = ("import gymnasium as gym\n"
            "env = gym.make('worlds:director/Maze-M-v0', size=16)\n"
            "print(env.reset(seed=0)[0]['image'].shape)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "(16, 16, 3)", result.stderr


_USER_ENV = '''
import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """A user's env with an image observation: the agent's column lights up."""

    def __init__(self, length=5):
        self.length, self.x = length, 0
        self.observation_space = gym.spaces.Box(0, 255, (8, 8 * length, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(2)

    def _obs(self):
        image = np.zeros((8, 8 * self.length, 3), np.uint8)
        image[:, 8 * self.x:8 * self.x + 8] = 255
        return image

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0
        return self._obs(), {}

    def step(self, action):
        self.x = min(self.length - 1, max(0, self.x + (1 if action else -1)))
        done = self.x == self.length - 1
        return self._obs(), float(done), done, False, {"success": done}


def make_env(length=5):
    return Corridor(length)
'''


def test_importable_spec_makes_a_users_env_also_in_spawned_processes(tmp_path, monkeypatch):
    (tmp_path / "my_user_envs.py").write_text(_USER_ENV)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = "my_user_envs:make_env"
    env = worlds.make(spec, size=16, env_kwargs={"length": 3}, seed=0)
    obs, _ = env.reset()
    assert obs["image"].shape == (16, 16, 3) and obs["image"].max() == 255
    vec = worlds.make_vector(spec, 2, size=16, seed=0, asynchronous=True, context="spawn",
                             env_kwargs={"length": 3}, time_limit=50)
    try:
        obs, _ = vec.reset(seed=0)
        assert obs["image"].shape == (2, 16, 16, 3)
        for _ in range(2):
            _, reward, terminated, _, info = vec.step(np.array([1, 1]))
        assert terminated.all() and reward.tolist() == [1.0, 1.0] and info["success"].all()
    finally:
        vec.close()


@pytest.mark.parametrize("spec, match", [
    ("no_such_module_xyz:make_env", "Cannot import module"),
    ("worlds.mazes:no_such_function", "has no 'no_such_function'"),
    ("worlds.mazes:TASKS", "not a callable"),
])
def test_bad_importable_spec_is_a_world_error(spec, match):
    with pytest.raises(WorldError, match=match):
        worlds.make(spec)
