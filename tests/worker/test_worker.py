"""Tests for the worker package: goal rewards (max-cosine, cosine, l2) and splitting a joint
rollout into K-step worker segments that bootstrap against their own goal (ALGORITHM.md §4)."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from director import config as config_lib
from worker import GOAL_REWARDS, Worker, cosine, l2, max_cosine

# Two shared cores: OpenMP threads spin against other processes and run ~40x slower.
torch.set_num_threads(1)


# ---------------------------------------------------------------------------- goal rewards
def test_max_cosine_is_one_when_state_equals_goal():
    torch.manual_seed(0)
    goal = torch.randn(10, 16)
    out = max_cosine(goal.clone(), goal)
    torch.testing.assert_close(out, torch.ones(10), rtol=0, atol=1e-6)
    assert float(max_cosine(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 4.0]))) == 1.0


def test_max_cosine_penalises_norm_mismatch():
    goal = torch.tensor([[3.0, 4.0], [1.0, -2.0]])
    # s = 2g: (g . 2g) / |2g|^2 = 1/2; s = g/2: (g . g/2) / |g|^2 = 1/2.
    torch.testing.assert_close(max_cosine(2 * goal, goal), torch.full((2,), 0.5))
    torch.testing.assert_close(max_cosine(0.5 * goal, goal), torch.full((2,), 0.5))
    torch.testing.assert_close(max_cosine(1.1 * goal, goal), torch.full((2,), 1 / 1.1))
    assert (max_cosine(1.01 * goal, goal) < 1).all()


def test_max_cosine_penalises_direction_mismatch():
    goal = torch.tensor([1.0, 0.0])
    for angle, expected in [(math.pi / 3, 0.5), (math.pi / 2, 0.0), (math.pi, -1.0), (0.1, math.cos(0.1))]:
        state = torch.tensor([math.cos(angle), math.sin(angle)])  # same norm, rotated
        assert float(max_cosine(state, goal)) == pytest.approx(expected, abs=1e-6)
    assert float(max_cosine(torch.tensor([math.cos(0.01), math.sin(0.01)]), goal)) < 1


def test_max_cosine_stays_in_minus_one_one_and_handles_zero_vectors():
    torch.manual_seed(1)
    s = torch.randn(1000, 8) * torch.rand(1000, 1) * 5
    g = torch.randn(1000, 8) * torch.rand(1000, 1) * 5
    out = max_cosine(s, g)
    assert out.min() >= -1 - 1e-6 and out.max() <= 1 + 1e-6
    assert torch.isfinite(max_cosine(torch.zeros(8), torch.zeros(8)))
    assert float(max_cosine(torch.zeros(8), torch.ones(8))) == 0.0


def test_cosine_ignores_norm():
    goal = torch.tensor([[3.0, 4.0], [1.0, -2.0]])
    torch.testing.assert_close(cosine(2 * goal, goal), torch.ones(2))
    torch.testing.assert_close(cosine(0.1 * goal, goal), torch.ones(2))
    assert float(cosine(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]))) == pytest.approx(0.0)


def test_l2_is_negative_distance_scaled_by_sqrt_dims():
    goal = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert float(l2(goal, goal)) == 0.0
    state = torch.tensor([1.0, 2.0, 0.0, 0.0])
    assert float(l2(state, goal)) == pytest.approx(-5.0 / 2.0)  # -|(0, 0, 3, 4)| / sqrt(4)


def test_goal_reward_registry_and_config_choice():
    assert GOAL_REWARDS == {"max_cosine": max_cosine, "cosine": cosine, "l2": l2}
    for name in GOAL_REWARDS:
        cfg = config_lib.load("debug", [f"worker.goal_reward={name}"])
        w = Worker(cfg.worker, 5, 3, ("discrete", 1, 4))
        s, g = torch.randn(2, 3), torch.randn(2, 3)
        torch.testing.assert_close(w.goal_reward(s, g), GOAL_REWARDS[name](s, g))


# ---------------------------------------------------------------------------- segments
N, K, H, F_, D, A = 2, 2, 4, 5, 3, 4


def make_worker(extr: float = 0.0) -> Worker:
    cfg = config_lib.load("debug", [f"manager.goal_every={K}", f"worker.extr={extr}"])
    torch.manual_seed(0)
    return Worker(cfg.worker, F_, D, ("discrete", 1, A))


def make_traj():
    """Goals g0 (t = 0, 1), g1 (t = 2, 3), g2 (t = 4, chosen at s_H); the state reaches g0 at
    t = 2 and g1 at t = 4, exactly when the next goal has already been drawn."""
    g = torch.Generator().manual_seed(0)
    g0, g1, g2 = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)
    goal = torch.stack([g0, g0, g1, g1, g2], 1)
    deter = torch.randn(N, H + 1, D, generator=g)
    deter[:, 2], deter[:, 4] = g0, g1
    return {
        "feat": torch.randn(N, H + 1, F_, generator=g),
        "deter": deter,
        "goal": goal,
        "action": F.one_hot(torch.randint(0, A, (N, H + 1), generator=g), A).float(),
        "extr": torch.randn(N, H + 1, generator=g),
        "cont": torch.tensor([[1.0, 0.9, 0.8, 0.7, 0.6], [0.5, 1.0, 1.0, 1.0, 1.0]]),
    }, (g0, g1, g2)


def test_segments_shapes_batch_and_states():
    seg = make_worker().segments(make_traj()[0], K)
    assert seg["feat"].shape == (H // K * N, K + 1, F_ + D)
    assert seg["action"].shape == (H // K * N, K + 1, A)
    assert seg["cont"].shape == (H // K * N, K + 1)
    assert seg["rewards"]["goal"].shape == (H // K * N, K)
    assert seg["weight0"].shape == (H // K * N,)


def test_segment_states_carry_the_goal_chosen_at_segment_start_including_bootstrap():
    traj, (g0, g1, _) = make_traj()
    seg = make_worker().segments(traj, K)
    # Segment-major order: rows 0..N-1 are segment 0, rows N..2N-1 segment 1.
    feat = seg["feat"].dense()
    torch.testing.assert_close(feat[:N, :, F_:], g0[:, None].expand(N, K + 1, D))
    torch.testing.assert_close(feat[N:, :, F_:], g1[:, None].expand(N, K + 1, D))
    # The bootstrap state of segment 0 is s_2 (whose own active goal is g1): it still gets g0.
    torch.testing.assert_close(feat[:N, -1, F_:], g0)
    torch.testing.assert_close(feat[:N, :, :F_], traj["feat"][:, 0:3])
    torch.testing.assert_close(feat[N:, :, :F_], traj["feat"][:, 2:5])
    torch.testing.assert_close(seg["action"][:N], traj["action"][:, 0:3])
    torch.testing.assert_close(seg["cont"][N:], traj["cont"][:, 2:5])


def test_segment_rewards_are_measured_against_the_segments_own_goal():
    traj, (g0, g1, g2) = make_traj()
    seg = make_worker().segments(traj, K)
    r = seg["rewards"]["goal"]
    # Reaching s_2 = g0 at the end of segment 0 is worth exactly 1 (the next goal g1 would not be).
    torch.testing.assert_close(r[:N, 1], torch.ones(N), rtol=0, atol=1e-6)
    torch.testing.assert_close(r[N:, 1], torch.ones(N), rtol=0, atol=1e-6)
    assert (max_cosine(g0, g1) < 0.99).all() and (max_cosine(g1, g2) < 0.99).all()
    # Every reward by hand.
    deter = traj["deter"]
    torch.testing.assert_close(r[:N], max_cosine(deter[:, 1:3], g0[:, None]))
    torch.testing.assert_close(r[N:], max_cosine(deter[:, 3:5], g1[:, None]))


def test_segment_weight0_is_the_chance_of_reaching_the_segment_start():
    traj, _ = make_traj()
    seg = make_worker().segments(traj, K)
    cont = traj["cont"]
    torch.testing.assert_close(seg["weight0"][:N], cont[:, 0])
    torch.testing.assert_close(seg["weight0"][N:], cont[:, 0] * cont[:, 1] * cont[:, 2])


def test_segments_have_no_task_reward_unless_the_ablation_is_on():
    traj, _ = make_traj()
    assert set(make_worker().segments(traj, K)["rewards"]) == {"goal"}
    assert set(make_worker().ac.critics) == {"goal"}
    seg = make_worker(extr=0.5).segments(traj, K)
    assert set(seg["rewards"]) == {"goal", "extr"}
    torch.testing.assert_close(seg["rewards"]["extr"][:N], traj["extr"][:, 1:3])
    torch.testing.assert_close(seg["rewards"]["extr"][N:], traj["extr"][:, 3:5])


def test_segments_train_the_worker_actor_critic():
    w = make_worker()
    traj, _ = make_traj()
    loss, metrics = w.ac.loss(w.segments(traj, K))
    loss.backward()
    assert torch.isfinite(loss)
    assert w.ac.actor.out.weight.grad.abs().sum() > 0
    assert w.ac.critics["goal"].out.bias.grad is not None


def test_worker_inputs_concat_feat_and_goal():
    feat, goal = torch.randn(3, 4, F_), torch.randn(3, 4, D)
    out = Worker.inputs(feat, goal)
    torch.testing.assert_close(out.dense(), torch.cat([feat, goal], -1))
    held = Worker.inputs(feat, goal[:, :1])  # one goal for every state
    torch.testing.assert_close(held.dense(), torch.cat([feat, goal[:, :1].expand(3, 4, D)], -1))
    assert held.shape == (3, 4, F_ + D) and held[:, :-1].shape == (3, 3, F_ + D)
    torch.testing.assert_close(held[:, 1:].dense(), held.dense()[:, 1:])
    torch.testing.assert_close(held[1, 2].dense(), held.dense()[1, 2])


def test_only_the_first_segment_starts_from_replay_states():
    seg = make_worker().segments(make_traj()[0], K)
    expected = torch.cat([torch.ones(N), torch.zeros((H // K - 1) * N)])
    torch.testing.assert_close(seg["replay"], expected)
