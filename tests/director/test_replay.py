"""Tests for director.replay: chunk sampling, FIFO capacity, episode files and resume."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from director.errors import CheckpointError
from director.replay import AFTER_CHECKPOINT, Replay


def make_step(worker: int, t: int, first: bool, last: bool, terminal: bool = False) -> dict:
    """A step whose `id` vector encodes (worker, t), so tests can tell where a sample came from."""
    return {
        "image": np.full((8, 8, 3), t % 256, np.uint8),
        "id": np.array([worker, t], np.float32),
        "reward": np.float32(t),
        "is_first": first,
        "is_last": last,
        "is_terminal": terminal,
        "action": np.eye(3, dtype=np.float32)[t % 3] * (not first),
    }


def fill(replay: Replay, worker: int, episode_length: int, steps: int, t0: int = 0) -> None:
    """Add `steps` steps to `worker` from episodes of `episode_length` steps each."""
    for t in range(t0, t0 + steps):
        k = t % episode_length
        replay.add(make_step(worker, t, k == 0, k == episode_length - 1), worker=worker)


def test_sample_shapes_dtypes_and_first_step_is_first():
    replay = Replay(None, capacity=1000, length=10)
    fill(replay, 0, episode_length=25, steps=100)
    batch = replay.sample(6)
    assert batch["image"].shape == (6, 10, 8, 8, 3) and batch["image"].dtype == np.uint8
    assert batch["action"].shape == (6, 10, 3) and batch["action"].dtype == np.float32
    assert batch["reward"].shape == (6, 10) and batch["reward"].dtype == np.float32
    for key in ("is_first", "is_last", "is_terminal"):
        assert batch[key].shape == (6, 10) and batch[key].dtype == bool
    assert batch["is_first"][:, 0].all()
    # Contiguous windows: t increases by one; is_first inside a window marks episode starts.
    t = batch["id"][..., 1]
    assert (np.diff(t, axis=1) == 1).all()
    assert (batch["is_first"][:, 1:] == (t[:, 1:] % 25 == 0)).all()
    assert len(replay) == 100


def test_steps_of_an_unfinished_episode_are_sampleable():
    replay = Replay(None, capacity=1000, length=8)
    fill(replay, 0, episode_length=2000, steps=8)
    assert replay.stats()["episodes"] == 0
    assert replay.sample(2)["id"][0, :, 1].tolist() == list(range(8))


def test_sample_within_episodes_prefers_chunks_that_cross_no_episode_start():
    replay = Replay(None, capacity=1000, length=10)
    fill(replay, 0, episode_length=15, steps=300)  # 6 of a stream's 15 window starts stay inside
    chunks = replay.sample_within_episodes(5)
    assert chunks["image"].shape == (5, 10, 8, 8, 3)
    assert not chunks["is_first"][:, 1:].any()
    # Fewer such chunks than asked for: the rest cross an episode start.
    replay = Replay(None, capacity=1000, length=10)
    fill(replay, 0, episode_length=10, steps=20)  # 2 of 11 window starts stay inside
    chunks = replay.sample_within_episodes(40)
    assert chunks["image"].shape[0] == 40
    crossing = chunks["is_first"][:, 1:].any(1)
    assert crossing.any() and not crossing[:(~crossing).sum()].any()


def test_sample_before_enough_steps_raises_clear_error():
    replay = Replay(None, capacity=100, length=10)
    fill(replay, 0, episode_length=5, steps=9)
    fill(replay, 1, episode_length=5, steps=9)
    with pytest.raises(ValueError, match="prefill"):
        replay.sample(1)


def test_windows_never_mix_workers_and_starts_are_uniform_over_steps():
    # Worker 0: many 5-step episodes; worker 1: two 300-step episodes. Same number of steps.
    length, steps = 4, 600
    replay = Replay(None, capacity=10_000, length=length)
    fill(replay, 0, episode_length=5, steps=steps)
    fill(replay, 1, episode_length=300, steps=steps)
    ids = replay.sample(20_000)["id"]
    worker = ids[..., 0]
    assert (worker == worker[:, :1]).all()
    assert (np.diff(ids[..., 1], axis=1) == 1).all()
    # Uniform over valid window starts: each worker gets half, and every start is equally likely.
    assert abs((worker[:, 0] == 0).mean() - 0.5) < 0.02
    starts = ids[worker[:, 0] == 0, 0, 1].astype(int)
    counts = np.bincount(starts, minlength=steps - length + 1)
    assert len(counts) == steps - length + 1 and counts.min() > 0
    expected = len(starts) / len(counts)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 2 * len(counts)  # dof ~ 600: a non-uniform sampler lands far above


def fill_sparse(replay: Replay, worker: int, episode_length: int, steps: int, rewarded: set[int]) -> None:
    """Like `fill`, with reward 1 only at the steps t in `rewarded` and 0 elsewhere."""
    for t in range(steps):
        k = t % episode_length
        step = make_step(worker, t, k == 0, k == episode_length - 1)
        step["reward"] = np.float32(t in rewarded)
        replay.add(step, worker=worker)


def test_reward_chunks_hold_a_rewarded_step_at_a_uniform_place():
    replay = Replay(None, capacity=10_000, length=8, seed=1, reward_chunks=0.25)
    fill_sparse(replay, 0, episode_length=100, steps=1000, rewarded={3, 517})
    fill_sparse(replay, 1, episode_length=100, steps=1000, rewarded=set())
    fill_sparse(replay, 2, episode_length=2000, steps=996, rewarded={995})  # still in progress
    rows = [replay.sample(8) for _ in range(600)]
    prioritised = np.concatenate([b["reward"][:2] for b in rows])
    uniform = np.concatenate([b["reward"][2:] for b in rows])
    assert (prioritised.sum(1) == 1).all()  # every prioritised chunk holds one rewarded step
    assert uniform.sum(1).mean() < 0.05  # 3 rewarded steps in 2996: the rest stay uniform
    ids = np.concatenate([b["id"][:2] for b in rows])
    hit = ids[prioritised == 1]  # (worker, t) of the rewarded step in each chunk
    found = {tuple(map(int, x)) for x in hit}
    assert found == {(0, 3), (0, 517), (2, 995)}
    for step in ((0, 517), (2, 995), (0, 3)):
        assert abs((hit == step).all(1).mean() - 1 / 3) < 0.06  # uniform over rewarded steps
    place = np.argmax(prioritised, 1)
    assert set(place[(hit == (0, 517)).all(1)]) == set(range(8))  # anywhere in the chunk
    assert set(place[(hit == (0, 3)).all(1)]) == {0, 1, 2, 3}  # clipped to the stream's start
    assert set(place[(hit == (2, 995)).all(1)]) == {7}  # and to its end
    assert all(b["is_first"][:, 0].all() for b in rows)


def test_reward_chunks_sample_uniformly_until_a_reward_is_stored():
    a = Replay(None, capacity=1000, length=8, seed=3)
    b = Replay(None, capacity=1000, length=8, seed=3, reward_chunks=0.5)
    for replay in (a, b):
        fill_sparse(replay, 0, episode_length=50, steps=200, rewarded=set())
    for _ in range(5):
        assert (a.sample(4)["id"] == b.sample(4)["id"]).all()
    with pytest.raises(ValueError, match="reward_chunks"):
        Replay(None, capacity=1000, length=8, reward_chunks=1.5)


def test_capacity_drops_oldest_whole_episodes_first():
    replay = Replay(None, capacity=50, length=5)
    fill(replay, 0, episode_length=10, steps=200)
    assert len(replay) <= 50
    assert replay.stats()["episodes"] == 5
    assert replay.sample(200)["id"][..., 1].min() >= 150  # only the newest steps remain


def test_capacity_trims_an_unfinished_episode_longer_than_capacity():
    replay = Replay(None, capacity=30, length=5)
    fill(replay, 0, episode_length=1000, steps=200)
    assert len(replay) == 30
    t = replay.sample(100)["id"][..., 1]
    assert t.min() >= 170 and t.max() == 199


def test_episode_files_written_on_is_last_atomically(tmp_path):
    replay = Replay(tmp_path, capacity=1000, length=5)
    fill(replay, 0, episode_length=10, steps=25)
    fill(replay, 1, episode_length=7, steps=7)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["00000000-0-10.npz", "00000001-0-10.npz", "00000002-1-7.npz"]
    with np.load(tmp_path / names[1]) as f:
        assert f["id"][:, 1].tolist() == list(range(10, 20))
        assert f["image"].dtype == np.uint8 and f["is_last"][-1] and f["is_first"][0]


def test_reopening_a_directory_loads_newest_episodes_exactly_once(tmp_path):
    replay = Replay(tmp_path, capacity=1000, length=5)
    fill(replay, 0, episode_length=10, steps=60)
    fill(replay, 1, episode_length=10, steps=30)

    reopened = Replay(tmp_path, capacity=1000, length=5)
    assert reopened.load() == 90
    assert reopened.load() == 0  # a second call finds nothing new
    assert len(reopened) == 90 and reopened.stats()["episodes"] == 9
    ids = reopened.sample(500)["id"]
    assert (np.diff(ids[..., 1], axis=1) == 1).all()  # streams rebuilt per worker, in order

    small = Replay(tmp_path, capacity=35, length=5)
    small.load()
    assert len(small) == 30  # the newest three episodes fit
    # New episodes continue the file order after the existing ones.
    fill(small, 0, episode_length=10, steps=10, t0=1000)
    assert sorted(p.name for p in tmp_path.glob("*.npz"))[-1] == "00000009-0-10.npz"


def test_reset_mid_episode_closes_the_cut_short_episode(tmp_path):
    replay = Replay(tmp_path, capacity=1000, length=5)
    fill(replay, 0, episode_length=100, steps=7)
    fill(replay, 0, episode_length=10, steps=10, t0=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000000-0-7.npz", "00000001-0-10.npz"]
    assert len(replay) == 17


def test_state_dict_resume_gives_identical_samples(tmp_path):
    replay = Replay(tmp_path, capacity=120, length=8, seed=3)
    fill(replay, 0, episode_length=30, steps=100)
    fill(replay, 1, episode_length=40, steps=55)  # unfinished episode of 15 steps
    replay.sample(4)
    state = pickle.loads(pickle.dumps(replay.state_dict()))
    assert len(state["files"]) == replay.stats()["episodes"]
    expected = [replay.sample(16) for _ in range(3)]

    resumed = Replay(tmp_path, capacity=120, length=8, seed=99)
    resumed.load_state_dict(state)
    assert len(resumed) == len(replay) and resumed.stats() == replay.stats()
    for batch in expected:
        got = resumed.sample(16)
        for key in batch:
            np.testing.assert_array_equal(got[key], batch[key])
    # The unfinished episode continues and is written whole when it ends.
    fill(resumed, 1, episode_length=40, steps=25, t0=55)
    newest = sorted(p.name for p in tmp_path.glob("*.npz"))[-1]
    assert newest.endswith("-1-40.npz")


def test_state_dict_of_memory_only_replay_carries_the_episodes():
    replay = Replay(None, capacity=500, length=6, seed=1)
    fill(replay, 0, episode_length=20, steps=70)
    state = pickle.loads(pickle.dumps(replay.state_dict()))
    resumed = Replay(None, capacity=500, length=6)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(resumed.sample(32)["id"], replay.sample(32)["id"])


def test_files_written_after_the_checkpoint_are_moved_aside_not_loaded(tmp_path):
    replay = Replay(tmp_path, capacity=30, length=5)
    fill(replay, 0, episode_length=10, steps=50)  # FIFO keeps the newest three episodes
    state = replay.state_dict()
    fill(replay, 0, episode_length=10, steps=20, t0=50)  # two episodes after the checkpoint

    resumed = Replay(tmp_path, capacity=30, length=5)
    resumed.load_state_dict(state)
    assert len(resumed) == 30
    assert resumed.sample(100)["id"][..., 1].max() < 50
    aside = sorted(p.name for p in (tmp_path / AFTER_CHECKPOINT).iterdir())
    assert aside == ["00000005-0-10.npz", "00000006-0-10.npz"]
    # Older files the checkpoint had dropped by FIFO stay where they are.
    assert len(list(tmp_path.glob("*.npz"))) == 5
    # New files continue after the moved ones, so names never collide.
    fill(resumed, 0, episode_length=10, steps=10, t0=1000)
    assert (tmp_path / "00000007-0-10.npz").exists()


def test_corrupt_episode_file_raises_checkpoint_error_naming_it(tmp_path):
    replay = Replay(tmp_path, capacity=100, length=5)
    fill(replay, 0, episode_length=10, steps=20)
    bad = tmp_path / "00000001-0-10.npz"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="00000001-0-10.npz") as info:
        Replay(tmp_path, capacity=100, length=5).load()
    assert "Move it out" in str(info.value)
    with pytest.raises(CheckpointError, match="00000001-0-10.npz"):
        Replay(tmp_path, capacity=100, length=5).load_state_dict(replay.state_dict())
