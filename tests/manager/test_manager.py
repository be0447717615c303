"""Tests for the manager package: abstract (every-K) rewards and continuations, the goal
autoencoder's loss, exploration reward and decoding, the abstract trajectory (ALGORITHM.md §2, §3)."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from director import config as config_lib
from manager import GoalAutoencoder, Manager, abstract_cont, abstract_rewards

# Two shared cores: OpenMP threads spin against other processes and run ~40x slower.
torch.set_num_threads(1)

D = 6


# ---------------------------------------------------------------------------- abstract trajectory
def test_abstract_rewards_mean_of_each_block_without_terminations():
    # reward[:, t] is earned on reaching s_t (index 0 unused); K = 2, H = 4.
    reward = torch.tensor([[9.0, 1.0, 2.0, 3.0, 4.0]])
    cont = torch.ones(1, 5)
    torch.testing.assert_close(abstract_rewards(reward, cont, 2), torch.tensor([[1.5, 3.5]]))
    torch.testing.assert_close(abstract_rewards(reward, cont, 4), torch.tensor([[2.5]]))


def test_abstract_rewards_weight_each_step_by_continuation_within_the_block():
    # Within a block, r_t counts with the probability that the episode was still running when
    # a_{t-1} was taken: the product of the continuations of the block's earlier states.
    reward = torch.tensor([[9.0, 1.0, 2.0, 3.0, 4.0]])
    cont = torch.tensor([[1.0, 0.5, 1.0, 1.0, 1.0]])
    # Block 0: r_1 weight 1, r_2 weight c_1 = 0.5 -> (1 + 1) / 2. Block 1: (3 + 4) / 2.
    torch.testing.assert_close(abstract_rewards(reward, cont, 2), torch.tensor([[1.0, 3.5]]))
    # K = 4: weights 1, c_1, c_1 c_2, c_1 c_2 c_3 = 1, 0.5, 0.5, 0.5.
    torch.testing.assert_close(abstract_rewards(reward, cont, 4),
                               torch.tensor([[(1 + 0.5 * 2 + 0.5 * 3 + 0.5 * 4) / 4]]))


def test_abstract_rewards_keep_the_reward_of_reaching_a_terminal_state():
    # A terminal state that carries the only reward (cont 0): the manager must see it.
    reward = torch.tensor([[0.0, 0.0, 1.0, 5.0, 5.0]])
    cont = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0]])
    out = abstract_rewards(reward, cont, 2)
    assert float(out[0, 0]) == pytest.approx(0.5)  # (0 + 1) / 2
    # After the terminal s_2 the next block is cut by the abstract continuation, not here.
    assert float(abstract_cont(cont, 2)[0, 1]) == 0.0
    # A terminal inside a block masks the rewards that follow it in that block.
    reward = torch.tensor([[0.0, 2.0, 7.0]])
    cont = torch.tensor([[1.0, 0.0, 1.0]])
    torch.testing.assert_close(abstract_rewards(reward, cont, 2), torch.tensor([[1.0]]))


def test_abstract_cont_is_start_cont_then_product_per_block():
    cont = torch.tensor([[0.9, 0.5, 1.0, 1.0, 0.2], [1.0, 1.0, 1.0, 0.0, 1.0]])
    torch.testing.assert_close(abstract_cont(cont, 2), torch.tensor([[0.9, 0.5, 0.2], [1.0, 1.0, 0.0]]))
    torch.testing.assert_close(abstract_cont(cont, 4), torch.tensor([[0.9, 0.1], [1.0, 0.0]]))


def debug_manager(k: int = 2) -> Manager:
    cfg = config_lib.load("debug", [f"manager.goal_every={k}"])
    torch.manual_seed(0)
    return Manager(cfg.manager, feat_size=5, code_vars=2, code_classes=3)


def test_abstract_trajectory_takes_every_kth_state_and_zeroes_last_code():
    mgr = debug_manager(k=2)
    n, h = 3, 4
    g = torch.Generator().manual_seed(0)
    codes = F.one_hot(torch.randint(0, 3, (n, h + 1, 2), generator=g), 3).float().flatten(-2)
    traj = {"feat": torch.randn(n, h + 1, 5, generator=g), "code": codes,
            "extr": torch.randn(n, h + 1, generator=g), "expl": torch.rand(n, h + 1, generator=g),
            "cont": torch.ones(n, h + 1)}
    out = mgr.abstract_trajectory(traj)
    torch.testing.assert_close(out["feat"], traj["feat"][:, [0, 2, 4]])
    torch.testing.assert_close(out["action"][:, :2], codes[:, [0, 2]])
    assert torch.equal(out["action"][:, 2], torch.zeros(n, 6))  # no code is chosen at s_H
    assert set(out["rewards"]) == {"extr", "expl"}
    torch.testing.assert_close(out["rewards"]["extr"], traj["extr"][:, 1:].reshape(n, 2, 2).mean(-1))
    torch.testing.assert_close(out["cont"], torch.ones(n, 3))
    loss, metrics = mgr.ac.loss(out)
    assert torch.isfinite(loss)


def test_manager_critics_follow_extr_and_expl_weights():
    assert set(debug_manager().ac.scales) == {"extr", "expl"}
    assert debug_manager().ac.scales == {"extr": 1.0, "expl": 0.1}
    cfg = config_lib.load("debug", ["manager.expl=0"])
    assert set(Manager(cfg.manager, 5, 2, 3).ac.critics) == {"extr"}


# ---------------------------------------------------------------------------- goal autoencoder
def make_goal_ae(**overrides) -> GoalAutoencoder:
    cfg = config_lib.load("debug", [f"goal.{k}={v}" for k, v in overrides.items()])
    torch.manual_seed(0)
    return GoalAutoencoder(cfg.goal, D)


def set_encoder_logits(ae: GoalAutoencoder, logits: torch.Tensor) -> None:
    """The encoder outputs `logits` (vars, classes) for every input."""
    with torch.no_grad():
        ae.encoder.out.weight.zero_()
        ae.encoder.out.bias.copy_(logits.flatten())


def test_goal_kl_of_uniform_logits_is_zero():
    ae = make_goal_ae()
    set_encoder_logits(ae, torch.zeros(ae.vars, ae.classes))
    deter = torch.randn(7, D)
    loss, metrics = ae.loss(deter)
    assert float(metrics["goal_kl"]) == pytest.approx(0.0, abs=1e-6)
    assert float(loss.detach()) == pytest.approx(float(metrics["goal_rec"]), rel=1e-6)


def test_goal_loss_is_reconstruction_plus_beta_times_kl_to_uniform():
    ae = make_goal_ae()
    v, c = ae.vars, ae.classes
    ae.kl_scale.scale.fill_(0.5)
    logits = torch.zeros(v, c)
    logits[:, 1] = 40.0  # (numerically) deterministic code: class 1 in every variable
    set_encoder_logits(ae, logits)
    deter = torch.randn(7, D)
    loss, metrics = ae.loss(deter)
    code = F.one_hot(torch.ones(v, dtype=torch.long), c).float().flatten()
    with torch.no_grad():
        rec = ((ae.decoder(code) - deter) ** 2).sum(-1)  # summed over dims, per state
    p = torch.softmax(logits, -1)
    kl = (p * (torch.log(p) + math.log(c))).sum()  # KL(q || uniform) summed over the variables
    assert float(kl) == pytest.approx(v * math.log(c), rel=1e-5)
    assert float(metrics["goal_rec"]) == pytest.approx(float(rec.mean()), rel=1e-5)
    assert float(metrics["goal_kl"]) == pytest.approx(float(kl), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(float(rec.mean() + 0.5 * kl), rel=1e-5)


def test_goal_loss_does_not_backprop_into_the_states():
    ae = make_goal_ae()
    deter = torch.randn(4, D, requires_grad=True)
    loss, _ = ae.loss(deter)
    loss.backward()
    assert deter.grad is None
    assert ae.encoder.out.weight.grad is not None and ae.decoder.out.weight.grad is not None


def test_goal_kl_scale_adapts_toward_target_and_can_be_turned_off():
    ae = make_goal_ae()
    assert ae.cfg.kl_target == 10.0 and float(ae.kl_scale()) == 1.0
    ae.after_update({"goal_kl": torch.tensor(1.0)})
    assert float(ae.kl_scale()) == pytest.approx(1 / 1.1)
    off = make_goal_ae(kl_scale=0)
    off.after_update({"goal_kl": torch.tensor(100.0)})
    assert float(off.kl_scale()) == 0.0


def test_exploration_reward_shape_nonnegative_and_hand_value():
    ae = make_goal_ae()
    deter = torch.randn(3, 4, D)
    reward = ae.exploration_reward(deter)
    assert reward.shape == (3, 4)
    assert (reward >= 0).all() and not reward.requires_grad
    logits = torch.zeros(ae.vars, ae.classes)
    logits[:, 0] = 40.0
    set_encoder_logits(ae, logits)
    code = F.one_hot(torch.zeros(ae.vars, dtype=torch.long), ae.classes).float().flatten()
    with torch.no_grad():
        hand = ((ae.decoder(code) - deter) ** 2).mean(-1)  # mean over dims
    torch.testing.assert_close(ae.exploration_reward(deter), hand)


def test_decode_accepts_structured_and_flat_codes():
    ae = make_goal_ae()
    codes = F.one_hot(torch.randint(0, ae.classes, (2, 3, ae.vars)), ae.classes).float()  # (2, 3, V, C)
    structured = ae.decode(codes)
    flat = ae.decode(codes.flatten(-2))
    assert structured.shape == flat.shape == (2, 3, D)
    torch.testing.assert_close(structured, flat)


def test_prior_sample_is_uniform_one_hot_codes():
    ae = make_goal_ae()
    codes = ae.prior_sample((500,), "cpu")
    assert codes.shape == (500, ae.vars * ae.classes)
    per_var = codes.reshape(500, ae.vars, ae.classes)
    assert torch.equal(per_var.sum(-1), torch.ones(500, ae.vars))
    freq = per_var.mean((0, 1))
    torch.testing.assert_close(freq, torch.full((ae.classes,), 1 / ae.classes), rtol=0, atol=0.05)


def test_task_and_exploration_critics_have_their_own_return_floors():
    cfg = config_lib.load("debug", ["manager.ac.return_min_std=1.0", "manager.expl_min_std=0.05"])
    manager = Manager(cfg.manager, 8, cfg.goal.code_vars, cfg.goal.code_classes)
    assert manager.ac.return_norms["extr"].min_std == 1.0
    assert manager.ac.return_norms["expl"].min_std == 0.05
    with pytest.raises(Exception, match="expl_min_std"):
        config_lib.load("debug", ["manager.expl_min_std=0"])


# ---------------------------------------------------------------------------- conditioned goals
def test_conditioned_goal_autoencoder_decodes_against_its_context():
    ae = make_goal_ae(context="true")
    code = ae.prior_sample((5,), "cpu")
    a, b = torch.randn(5, D), torch.randn(5, D)
    with pytest.raises(ValueError, match="goal.context"):
        ae.decode(code)
    assert ae.decode(code, a).shape == (5, D)
    assert not torch.allclose(ae.decode(code, a), ae.decode(code, b))
    torch.testing.assert_close(ae.decode(code, a), ae.decode(code, a))
    assert ae.encode(a, b).probs.shape == (5, ae.vars, ae.classes)
    assert ae.exploration_reward(a, b).shape == (5,)


def test_goal_pairs_are_states_k_apart_with_their_context():
    deter = torch.arange(2 * 6, dtype=torch.float32).reshape(2, 6, 1).expand(2, 6, D)
    plain, none = make_goal_ae().pairs(deter, 4)
    torch.testing.assert_close(plain, deter.flatten(0, 1))
    assert none is None
    goal, context = make_goal_ae(context="true").pairs(deter, 4)
    # (B, T - K) pairs: goal h_{t+K}, context h_t of the same sequence.
    assert goal.shape == context.shape == (2 * 2, D)
    assert goal[:, 0].tolist() == [4.0, 5.0, 10.0, 11.0]
    assert context[:, 0].tolist() == [0.0, 1.0, 6.0, 7.0]


def test_conditioned_goal_autoencoder_learns_a_successor_it_is_given():
    """Trained on pairs (h, h + shift), its reconstruction error falls well below the plain
    autoencoder's on the same targets when the context determines the goal."""
    torch.manual_seed(1)
    errors = {}
    for context in ("false", "true"):
        ae = make_goal_ae(context=context, kl_scale=0)
        opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
        shift = torch.randn(D)
        for _ in range(150):
            h = torch.randn(64, D)
            loss, metrics = ae.loss(h + shift, h if context == "true" else None)
            opt.zero_grad()
            loss.backward()
            opt.step()
        errors[context] = float(metrics["goal_rec"])
    assert errors["true"] < 0.5 * errors["false"], errors
