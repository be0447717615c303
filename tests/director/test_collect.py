"""Tests for director.collect: step bookkeeping, stored actions, episode statistics, policies."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from director.collect import Collector, RandomPolicy, action_size, is_discrete
from director.errors import ConfigError
from director.replay import Replay


class CounterEnv(gym.Env):
    """Episodes of `k` steps; the image shows the step counter t, reward = action + 1.

    The episode ends by termination, or by truncation when `truncate`. `info["success"]` is set
    at step `success_at`; `info["restarted"]` on the last step when `restarted`.
    """

    def __init__(self, k=3, truncate=False, success_at=None, restarted=False, box=False):
        self.k, self.truncate, self.success_at, self.restarted = k, truncate, success_at, restarted
        self.observation_space = gym.spaces.Dict({
            "image": gym.spaces.Box(0, 255, (4, 4, 3), np.uint8),
            "counter": gym.spaces.Box(-np.inf, np.inf, (1,), np.float64),
        })
        self.action_space = (gym.spaces.Box(-1, 1, (2,), np.float32) if box
                             else gym.spaces.Discrete(3))
        self.t, self.received = 0, []

    def _obs(self):
        return {"image": np.full((4, 4, 3), self.t, np.uint8), "counter": np.array([self.t], float)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.received.append(np.array(action))
        self.t += 1
        end = self.t >= self.k
        info = {}
        if self.t == self.success_at:
            info["success"] = True
        if end and self.restarted:
            info["restarted"] = True
        reward = float(np.sum(action)) + 1.0
        return self._obs(), reward, end and not self.truncate, end and self.truncate, info


class RecordingReplay:
    """Stands in for Replay: remembers every added step per worker."""

    def __init__(self):
        self.steps = {}

    def add(self, step, worker=0):
        self.steps.setdefault(worker, []).append({k: np.array(v) for k, v in step.items()})


class CyclePolicy:
    """One-hot actions cycling 0, 1, 2, ...; remembers the observations it saw."""

    def __init__(self):
        self.calls, self.seen = 0, []

    def __call__(self, obs):
        self.seen.append({k: v.copy() for k, v in obs.items()})
        n = len(obs["is_first"])
        action = np.eye(3, dtype=np.float32)[np.full(n, self.calls % 3)]
        self.calls += 1
        return action


def make_collector(replay=None):
    envs = SyncVectorEnv([
        lambda: CounterEnv(k=3, success_at=2),
        lambda: CounterEnv(k=5, truncate=True, restarted=True),
    ])
    return Collector(envs, replay if replay is not None else RecordingReplay()), envs


def test_flags_rewards_and_autoreset_bookkeeping():
    collector, _ = make_collector()
    collector.reset(seed=0)
    policy = CyclePolicy()
    for _ in range(9):
        collector.step(policy)
    steps = collector.replay.steps
    # Env 0: 3-step episodes that terminate; the reset obs follows with is_first and reward 0.
    t0 = [int(s["image"][0, 0, 0]) for s in steps[0]]
    assert t0 == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert [bool(s["is_first"]) for s in steps[0]] == [t == 0 for t in t0]
    assert [bool(s["is_last"]) for s in steps[0]] == [t == 3 for t in t0]
    assert [bool(s["is_terminal"]) for s in steps[0]] == [t == 3 for t in t0]
    assert [float(s["reward"]) for s in steps[0]][:5] == [0.0, 1.0, 2.0, 3.0, 0.0]
    # Env 1: truncated after 5 steps: last but not terminal.
    t1 = [int(s["image"][0, 0, 0]) for s in steps[1]]
    assert t1 == [0, 1, 2, 3, 4, 5, 0, 1, 2]
    assert [bool(s["is_last"]) for s in steps[1]] == [t == 5 for t in t1]
    assert not any(bool(s["is_terminal"]) for s in steps[1])
    # The policy saw the same (N, ...) observations, vectors as float32.
    assert policy.seen[3]["is_last"].tolist() == [True, False]
    assert policy.seen[0]["image"].shape == (2, 4, 4, 3)
    assert policy.seen[0]["image"].dtype == np.uint8
    assert policy.seen[0]["counter"].dtype == np.float32
    assert steps[0][0]["reward"].dtype == np.float32


def test_stored_action_is_the_previous_action_and_zero_on_is_first():
    collector, envs = make_collector()
    collector.reset(seed=0)
    policy = CyclePolicy()
    for _ in range(9):
        collector.step(policy)
    steps = collector.replay.steps[0]
    for t, step in enumerate(steps):
        if step["is_first"]:
            assert (step["action"] == 0).all()
        else:
            assert step["action"].tolist() == np.eye(3)[(t - 1) % 3].tolist()
    # The env got integer actions (argmax of the one-hot), and none for its reset steps.
    received = [int(a) for a in envs.envs[0].received]
    assert received == [0, 1, 2, 1, 2, 0, 2]  # calls 0-2, 4-6, 8: calls 3 and 7 were resets


def test_finished_episode_statistics_and_counters():
    collector, _ = make_collector()
    collector.reset(seed=0)
    policy, finished = CyclePolicy(), []
    for call in range(12):
        for episode in collector.step(policy):
            finished.append((call, episode))
    first = [e for _, e in finished if e["worker"] == 0][0]
    assert first == {"return": 1.0 + 2.0 + 3.0, "length": 3, "success": True,
                     "restarted": False, "worker": 0}
    second = [e for _, e in finished if e["worker"] == 1][0]
    assert second["length"] == 5 and second["success"] is False and second["restarted"] is True
    assert second["return"] == 1 + 2 + 3 + 1 + 2
    assert [c for c, e in finished if e["worker"] == 0] == [3, 7, 11]
    assert collector.env_steps == 24 and collector.episodes == len(finished) == 5


def test_collector_fills_a_real_replay_with_sampleable_chunks():
    replay = Replay(None, capacity=1000, length=4)
    collector, _ = make_collector(replay)
    collector.reset(seed=0)
    policy = RandomPolicy(collector.action_space, seed=0)
    for _ in range(20):
        collector.step(policy)
    assert len(replay) == 40
    batch = replay.sample(8)
    assert batch["image"].shape == (8, 4, 4, 4, 3) and batch["action"].shape == (8, 4, 3)
    assert set(batch) == {"image", "counter", "reward", "is_first", "is_last", "is_terminal",
                          "action"}


def test_box_actions_pass_through_and_random_policy_shapes():
    envs = SyncVectorEnv([lambda: CounterEnv(k=4, box=True) for _ in range(3)])
    collector = Collector(envs, RecordingReplay())
    assert not is_discrete(envs.single_action_space) and action_size(envs.single_action_space) == 2
    policy = RandomPolicy(envs.single_action_space, seed=1)
    collector.reset(seed=0)
    for _ in range(3):
        collector.step(policy)
    sent = np.array(envs.envs[0].received)
    assert sent.shape == (3, 2) and np.abs(sent).max() <= 1
    np.testing.assert_array_equal(collector.replay.steps[0][2]["action"], sent[1])

    discrete = RandomPolicy(gym.spaces.Discrete(5), seed=0)
    actions = discrete({"is_first": np.zeros(1000, bool)})
    assert actions.shape == (1000, 5) and actions.dtype == np.float32
    assert (actions.sum(-1) == 1).all() and (actions.mean(0) > 0.15).all()
    box = RandomPolicy(gym.spaces.Box(-1, 1, (2, 3)), seed=0)(
        {"is_first": np.zeros(7, bool)})
    assert box.shape == (7, 6) and box.dtype == np.float32 and np.abs(box).max() <= 1


def test_unsupported_spaces_and_autoreset_modes_are_rejected():
    with pytest.raises(ConfigError, match="Discrete and Box"):
        action_size(gym.spaces.MultiBinary(3))
    envs = SyncVectorEnv([lambda: CounterEnv()], autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ConfigError, match="NEXT_STEP"):
        Collector(envs, None)
    with pytest.raises(RuntimeError, match="reset"):
        Collector(SyncVectorEnv([lambda: CounterEnv()]), None).step(CyclePolicy())


def test_episodes_report_distinct_cells_and_run_coverage_from_info_cell():
    """`info["cell"]` (grid worlds) gives each episode its distinct cells and the run's coverage."""
    import pickle

    import functools

    import worlds
    envs = SyncVectorEnv([functools.partial(worlds.make, "maze-s", size=16)])
    collector = Collector(envs, None)
    collector.reset(seed=0)
    right = lambda obs: np.eye(5, dtype=np.float32)[np.full(len(obs["is_first"]), 1)]  # noqa: E731
    down = lambda obs: np.eye(5, dtype=np.float32)[np.full(len(obs["is_first"]), 3)]  # noqa: E731
    done = []
    for t in range(200):  # the maze-s time limit: one episode
        done += collector.step(right if t < 100 else down)
    done += collector.step(right)
    assert len(done) == 1
    # From S (1, 1): right once to (2, 1) (a wall after), then down to (2, 6): 1 + 1 + 5 cells.
    assert done[0]["cells"] == 7 and done[0]["coverage"] == 7
    assert collector.visited == {y * 8 + x for x, y in [(1, 1)] + [(2, y) for y in range(1, 7)]}
    # The second episode goes right again: new episode cells, the run's coverage stays.
    restored = pickle.loads(pickle.dumps(collector))
    for c in (collector, restored):
        for _ in range(202):
            done = c.step(right)
            if done:
                break
        assert done[0]["cells"] == 2 and done[0]["coverage"] == 7


def test_worlds_without_cells_report_no_coverage():
    collector, _ = make_collector()
    collector.reset(seed=0)
    done = []
    for _ in range(8):
        done += collector.step(CyclePolicy())
    assert done and all("cells" not in ep and "coverage" not in ep for ep in done)
