"""Visual Pin Pad: rewards only for the full sequence in order, pause, respawn, rendering."""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest

import worlds
from worlds import pinpad
from worlds.pinpad import MOVES, PAD_COLOURS, PAUSE_FLOOR, PinPad


def path_to_pad(env: PinPad, pad: int) -> list[int]:
    """Actions of a shortest path from the agent to `pad` that enters no other pad."""
    start = env.agent_pos
    allowed = {0, pad, env.pad_at(start)}   # moving within the current pad enters nothing
    targets = set(env.pad_cells(pad))
    parents = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell in targets:
            actions = []
            while parents[cell] is not None:
                cell, action = parents[cell]
                actions.append(action)
            return actions[::-1]
        for action, (dx, dy) in enumerate(MOVES[1:], start=1):
            nxt = (cell[0] + dx, cell[1] + dy)
            code = env.layout[nxt[1], nxt[0]]
            if nxt not in parents and code in allowed:
                parents[nxt] = (cell, action)
                queue.append(nxt)
    raise AssertionError(f"pad {pad} unreachable from {start}")


def visit(env: PinPad, pads: list[int]) -> list[tuple[float, bool]]:
    """Walk onto each pad in turn; returns (reward, success) of every step taken."""
    results = []
    for pad in pads:
        for action in path_to_pad(env, pad):
            _, reward, terminated, truncated, info = env.step(action)
            assert not terminated and not truncated
            results.append((reward, info["success"]))
    return results


def step_off(env: PinPad) -> None:
    """Move from a pad onto an adjacent floor cell."""
    x, y = env.agent_pos
    for action, (dx, dy) in enumerate(MOVES[1:], start=1):
        if env.layout[y + dy, x + dx] == 0:
            env.step(action)
            return
    raise AssertionError("no floor next to the agent")


def fresh(task: str = "three", seed: int = 0) -> PinPad:
    env = PinPad(task)
    env.reset(seed=seed)
    return env


@pytest.mark.parametrize("task", pinpad.TASKS)
def test_full_sequence_in_order_pays_ten_once(task):
    env = fresh(task)
    results = visit(env, list(env.target))
    rewards = [reward for reward, _ in results]
    assert rewards[-1] == 10.0 and sum(rewards) == 10.0
    assert [success for _, success in results] == [False] * (len(results) - 1) + [True]
    assert env.history == env.target


def test_wrong_order_pays_nothing():
    env = fresh("four")
    results = visit(env, [2, 1, 3, 4, 4, 3, 1, 2])
    assert all(reward == 0.0 and not success for reward, success in results)


def test_history_is_a_sliding_window_of_the_last_n_pads():
    env = fresh("three")
    results = visit(env, [3, 1, 2, 3])
    assert env.history == (1, 2, 3)
    assert results[-1] == (10.0, True)


def test_reentering_the_same_pad_does_not_append():
    env = fresh("three")
    visit(env, [1])
    assert env.history == (1,)
    step_off(env)
    visit(env, [1])
    assert env.history == (1,)
    # Walking from one cell of the pad to another is not an entry either.
    x, y = env.agent_pos
    for action, (dx, dy) in enumerate(MOVES[1:], start=1):
        if env.layout[y + dy, x + dx] == 1:
            env.step(action)
            break
    assert env.pad_at(env.agent_pos) == 1 and env.history == (1,)


def test_pause_after_success_then_respawn_and_clear():
    env = fresh("three", seed=3)
    obs = None
    for pad in env.target:
        for action in path_to_pad(env, pad):
            obs, *_ = env.step(action)
    far_floor = next(c for c in env.free_cells()
                     if env.pad_at(c) == 0 and abs(c[0] - env.agent_pos[0]) > 2)

    def floor_pixel(image):
        return image[far_floor[1] * 4 + 2, far_floor[0] * 4 + 2]

    assert np.array_equal(floor_pixel(obs["image"]), PAUSE_FLOOR)
    frozen = env.agent_pos
    for paused_step in range(1, pinpad.PAUSE_STEPS + 1):
        obs, reward, terminated, truncated, info = env.step(2)   # would move left
        assert reward == 0.0 and not info["success"] and not terminated and not truncated
        if paused_step < pinpad.PAUSE_STEPS:
            assert env.agent_pos == frozen
            assert env.history == env.target
            assert np.array_equal(floor_pixel(obs["image"]), PAUSE_FLOOR)
    assert env.history == ()
    assert env.pad_at(env.agent_pos) == 0
    assert not np.array_equal(floor_pixel(obs["image"]), PAUSE_FLOOR)
    assert not env.paused


def test_history_bar_shows_activated_pad_colours():
    env = fresh("five")
    visit(env, [4, 2])
    image = env.render_state(env.agent_pos, env.history)
    bar_centre_y = 14 * 4 + 4
    assert np.array_equal(image[bar_centre_y, 0 * 8 + 4], PAD_COLOURS[4 - 1])
    assert np.array_equal(image[bar_centre_y, 1 * 8 + 4], PAD_COLOURS[2 - 1])
    assert np.array_equal(image[bar_centre_y, 2 * 8 + 4], pinpad.BAR)


def test_pad_under_agent_is_full_colour_others_faded():
    env = fresh("three")
    visit(env, [1])
    image = env.render_state(env.agent_pos, env.history)
    other_cell = next(c for c in env.pad_cells(1) if c != env.agent_pos)
    assert np.array_equal(image[other_cell[1] * 4 + 2, other_cell[0] * 4 + 2], PAD_COLOURS[0])
    x2, y2 = env.pad_cells(2)[0]
    pixel = image[y2 * 4 + 2, x2 * 4 + 2]
    assert not np.array_equal(pixel, PAD_COLOURS[1])
    assert pixel.astype(int).sum() > PAD_COLOURS[1].astype(int).sum()   # faded = lighter
    ax, ay = env.agent_pos
    assert np.array_equal(image[ay * 4 + 2, ax * 4 + 2], pinpad.AGENT)


def test_observation_equals_render_state_and_space():
    env = fresh("six", seed=1)
    rng = np.random.default_rng(0)
    for _ in range(50):
        obs, *_ = env.step(int(rng.integers(5)))
        assert env.observation_space.contains(obs)
        assert np.array_equal(obs["image"], env.render_state(env.agent_pos, env.history, env.paused))


def test_walls_block_moves():
    env = fresh("three")
    env.agent_pos = (4, 4)   # floor cell with the border 3 cells away
    for _ in range(5):
        env.step(2)   # -x
    assert env.agent_pos == (1, 4)
    env.step(2)
    assert env.agent_pos == (1, 4)


def test_spawn_is_never_on_a_pad_and_free_cells_are_reachable():
    env = PinPad("eight")
    for seed in range(30):
        env.reset(seed=seed)
        assert env.pad_at(env.agent_pos) == 0
        assert env.history == ()
    free = set(env.free_cells())
    assert all(cell in free for pad in range(1, 9) for cell in env.pad_cells(pad))
    assert all(env.layout[y, x] >= 0 for x, y in free)


@pytest.mark.parametrize("task", pinpad.TASKS)
def test_every_pad_reachable_from_every_other_without_crossing_pads(task):
    env = fresh(task)
    for pad in env.target:
        env.agent_pos = env.pad_cells(pad)[0]
        for other in env.target:
            if other != pad:
                assert path_to_pad(env, other)


def test_episode_truncates_at_2000_steps_never_terminates():
    env = worlds.make("pinpad-three", seed=0)
    env.reset()
    for step in range(1, 2001):
        _, _, terminated, truncated, info = env.step(0)
        assert not terminated and "success" in info
        assert truncated == (step == 2000)


def test_small_image_keeps_cell_colours():
    big, small = PinPad("four", size=64), PinPad("four", size=32)
    big.reset(seed=0)
    small.reset(seed=0)
    assert big.agent_pos == small.agent_pos
    b = big.render_state(big.agent_pos, (1, 2))
    s = small.render_state(small.agent_pos, (1, 2))
    assert s.shape == (32, 32, 3) and s.dtype == np.uint8
    assert np.array_equal(s[1::2, 1::2][:14], b[2::4, 2::4][:14])   # one pixel per cell agrees


def test_odd_size_is_resized():
    env = PinPad("three", size=48)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (48, 48, 3)


def test_passes_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env

    check_env(PinPad("five", render_mode="rgb_array"), skip_render_check=True)
    check_env(worlds.make("pinpad-three", seed=0).unwrapped, skip_render_check=True)
