"""Tests for director.actor_critic: TD(lambda) returns, symlog critics, slow critics, return and
advantage normalisation, the REINFORCE actor and the adaptive entropy bonus (ALGORITHM.md §6)."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from director.actor_critic import MAX_STD, MIN_STD, ActorCritic, GaussianPolicy, lambda_return
from director.config import ActorCriticConfig
from director.nets import symlog

# Two shared cores: OpenMP threads spin against other processes and run ~40x slower.
torch.set_num_threads(1)

FEAT = 6


def make_ac(action=("discrete", 1, 3), scales=None, **cfg) -> ActorCritic:
    torch.manual_seed(0)
    cfg = ActorCriticConfig(**{"mlp_layers": 1, "mlp_units": 16, **cfg})
    return ActorCritic(FEAT, action, scales or {"extr": 1.0}, cfg)


def set_critic_output(ac: ActorCritic, name: str, raw: float, slow: bool = True) -> None:
    """Make the critic (and its slow copy) output `raw` for every input (before symexp)."""
    for nets in ([ac.critics, ac.slow_critics] if slow else [ac.critics]):
        with torch.no_grad():
            nets[name].out.weight.zero_()
            nets[name].out.bias.fill_(raw)


def traj_of(n: int, t: int, seed: int = 0, classes: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "feat": torch.randn(n, t + 1, FEAT, generator=g),
        "action": F.one_hot(torch.randint(0, classes, (n, t + 1), generator=g), classes).float(),
        "rewards": {"extr": torch.randn(n, t, generator=g)},
        "cont": torch.rand(n, t + 1, generator=g) * 0.5 + 0.5,
    }


# ---------------------------------------------------------------------------- lambda return
def test_lambda_return_matches_hand_recursion():
    gamma, lam = 0.9, 0.8
    reward = torch.tensor([[1.0, 2.0, -1.0]])
    value = torch.tensor([[0.5, 1.0, 3.0, 4.0]])
    cont = torch.tensor([[1.0, 1.0, 0.5, 0.0]])
    r3 = 4.0  # R_T = v_T
    r2 = -1.0 + gamma * 0.0 * ((1 - lam) * 4.0 + lam * r3)
    r1 = 2.0 + gamma * 0.5 * ((1 - lam) * 3.0 + lam * r2)
    r0 = 1.0 + gamma * 1.0 * ((1 - lam) * 1.0 + lam * r1)
    out = lambda_return(reward, value, cont, gamma, lam)
    torch.testing.assert_close(out, torch.tensor([[r0, r1, r2]]))


def test_lambda_return_limits_td0_and_monte_carlo():
    g = torch.Generator().manual_seed(1)
    reward, value = torch.randn(2, 4, generator=g), torch.randn(2, 5, generator=g)
    cont = torch.ones(2, 5)
    # lambda = 0: one-step TD targets r + gamma * v'.
    torch.testing.assert_close(lambda_return(reward, value, cont, 0.9, 0.0), reward + 0.9 * value[:, 1:])
    # lambda = 1: discounted sum of rewards bootstrapped with v_T.
    mc = value[:, -1]
    expected = []
    for t in reversed(range(4)):
        mc = reward[:, t] + 0.9 * mc
        expected.append(mc)
    torch.testing.assert_close(lambda_return(reward, value, cont, 0.9, 1.0), torch.stack(expected[::-1], 1))


# ---------------------------------------------------------------------------- critics
def test_value_is_symexp_of_critic_net():
    ac = make_ac()
    feat = torch.randn(4, FEAT)
    set_critic_output(ac, "extr", symlog(torch.tensor(20.0)).item())
    torch.testing.assert_close(ac.value("extr", feat), torch.full((4,), 20.0))
    torch.testing.assert_close(ac.value("extr", feat, slow=True), torch.full((4,), 20.0))


def test_critic_is_trained_on_symlog_returns():
    # gamma = 1, zero rewards, cont 1 and a slow critic worth 20 everywhere: every return is 20.
    ac = make_ac(discount=1.0)
    traj = traj_of(4, 3)
    traj["rewards"]["extr"] = torch.zeros(4, 3)
    traj["cont"] = torch.ones(4, 4)
    set_critic_output(ac, "extr", math.log1p(20.0))  # predicts symlog(20): zero loss
    _, metrics = ac.loss(traj)
    assert float(metrics["extr_return"]) == pytest.approx(20.0)
    assert float(metrics["critic_loss"]) == pytest.approx(0.0, abs=1e-10)
    # A critic predicting the raw return 20 is wrong by 20 - symlog(20) at every state;
    # weights are 1, 1, 1 (gamma = cont = 1).
    set_critic_output(ac, "extr", 20.0, slow=False)
    _, metrics = ac.loss(traj)
    assert float(metrics["critic_loss"]) == pytest.approx((20.0 - math.log1p(20.0)) ** 2, rel=1e-5)


def test_slow_critic_copied_every_slow_every_updates():
    ac = make_ac(slow_every=3)
    metrics = loss_metrics(ac, entropy=0.5)

    def bump():
        with torch.no_grad():
            for p in ac.critics.parameters():
                p.add_(1.0)

    def synced():
        return all(torch.equal(a, b) for a, b in zip(ac.critics.parameters(), ac.slow_critics.parameters()))

    assert not any(p.requires_grad for p in ac.slow_critics.parameters())
    bump()
    ac.after_update(metrics)  # update 0: copy
    assert synced()
    for _ in range(2):  # updates 1, 2: no copy
        bump()
        ac.after_update(metrics)
        assert not synced()
    bump()
    ac.after_update(metrics)  # update 3: copy
    assert synced()
    assert int(ac.updates) == 4
    for _ in range(2):  # updates 4, 5: no copy
        bump()
        ac.after_update(metrics)
    bump()
    ac.after_update(metrics, applied=torch.tensor(False))  # skipped: no copy, no count
    assert not synced() and int(ac.updates) == 6
    ac.after_update(metrics)  # update 6: copy
    assert synced()


def test_actor_ema_moves_toward_the_actor_on_applied_updates_only():
    ac = make_ac(actor_ema=0.9)
    assert make_ac().actor_ema is None  # off by default: no copy is kept
    assert not any(p.requires_grad for p in ac.actor_ema.parameters())
    start = [p.detach().clone() for p in ac.actor_ema.parameters()]
    for p, s in zip(ac.actor.parameters(), start):
        torch.testing.assert_close(p.detach(), s)  # starts as a copy of the actor
    with torch.no_grad():
        for p in ac.actor.parameters():
            p.add_(1.0)
    metrics = loss_metrics(ac, entropy=0.5)
    ac.after_update(metrics, applied=torch.tensor(False))  # skipped: the average stays
    for p, s in zip(ac.actor_ema.parameters(), start):
        assert torch.equal(p, s)
    ac.after_update(metrics)
    for p, s in zip(ac.actor_ema.parameters(), start):
        torch.testing.assert_close(p, s + 0.1)  # 0.9 * s + 0.1 * (s + 1)
    feat = torch.randn(2, FEAT)
    torch.testing.assert_close(ac.policy(feat, averaged=True).dist.logits,
                               make_policy_of(ac.actor_ema, ac, feat).dist.logits)
    torch.testing.assert_close(ac.policy(feat).dist.logits, make_policy_of(ac.actor, ac, feat).dist.logits)


def make_policy_of(net, ac: ActorCritic, feat: torch.Tensor):
    """The categorical policy that `net`'s output gives (as ActorCritic.policy builds it)."""
    from director.actor_critic import CategoricalPolicy
    return CategoricalPolicy(net(feat), *ac.action_shape, ac.cfg.unimix)


def loss_metrics(ac: ActorCritic, entropy: float) -> dict:
    """The metrics of one loss call, with the entropy that the coefficient adapts on set."""
    _, metrics = ac.loss(traj_of(4, 3))
    return {**metrics, "entropy": torch.tensor(entropy)}


def test_skipped_update_commits_no_statistics():
    ac = make_ac()
    ac.after_update(loss_metrics(ac, 0.2))
    before = {k: v.clone() for k, v in ac.state_dict().items()}
    ac.after_update(loss_metrics(ac, 0.2), applied=torch.tensor(False))
    for k, v in ac.state_dict().items():
        assert torch.equal(v, before[k]), k
    ac.after_update(loss_metrics(ac, 0.2))
    assert float(ac.entropy_scale()) == pytest.approx(1.1 ** 2)
    assert int(ac.return_norms["extr"].count) == 2 and int(ac.advantage_norm.count) == 2


def test_normalised_score_uses_the_statistics_after_update_commits():
    ac = make_ac()
    _, first = ac.loss(traj_of(4, 3))
    ac.after_update({**first, "entropy": torch.tensor(0.5)})
    norm = ac.return_norms["extr"]
    assert float(norm.mean) == pytest.approx(float(first["extr_return"]))
    assert float(norm.std()) == pytest.approx(float(first["extr_return_std"]))


def test_return_normaliser_floors_std_at_0_01():
    ac = make_ac(discount=1.0)
    traj = traj_of(4, 3)
    traj["rewards"]["extr"] = torch.zeros(4, 3)
    traj["cont"] = torch.ones(4, 4)
    set_critic_output(ac, "extr", math.log1p(2.0))
    _, metrics = ac.loss(traj)  # all returns equal: std 0 -> 0.01
    assert float(metrics["extr_return_std"]) == pytest.approx(0.01)
    assert ac.return_norms["extr"].min_std == 0.01


# ---------------------------------------------------------------------------- actor
def test_actor_loss_with_normalised_advantage_matches_hand_computation():
    gamma, lam = 0.9, 0.8
    ac = make_ac(discount=gamma, lambda_=lam)
    ac.entropy_scale.scale.fill_(0.3)
    set_critic_output(ac, "extr", 0.0)  # v = 0 everywhere
    n, t = 5, 3
    traj = traj_of(n, t, seed=3)
    loss, metrics = ac.loss(traj)
    reward, cont = traj["rewards"]["extr"], traj["cont"]
    # Returns with v = 0: R_T = 0, R_t = r_{t+1} + gamma c_{t+1} lambda R_{t+1}.
    ret = torch.zeros(n, t)
    for i in range(n):
        r = 0.0
        for j in reversed(range(t)):
            r = float(reward[i, j]) + gamma * float(cont[i, j + 1]) * lam * r
            ret[i, j] = r
    std = max(float(ret.std(unbiased=False)), 0.01)
    adv = ret / std  # score = (R - v) / max(std, 0.01), scale 1
    adv_n = (adv - adv.mean()) / adv.std(unbiased=False)
    # The advantage statistics of this batch (committed to the normaliser by after_update).
    assert float(metrics["advantage_mean"]) == pytest.approx(float(adv.mean()), rel=1e-5)
    assert float(metrics["advantage_std"]) == pytest.approx(float(adv.std(unbiased=False)), rel=1e-4)
    ac.after_update(metrics)
    assert float(ac.advantage_norm.mean) == pytest.approx(float(adv.mean()), rel=1e-5)
    assert float(ac.advantage_norm.std()) == pytest.approx(float(adv.std(unbiased=False)), rel=1e-4)
    # Weights w_t = c_0 * prod_{1 <= j <= t} gamma c_j.
    weight = torch.ones(n, t)
    for i in range(n):
        w = float(cont[i, 0])
        for j in range(t):
            weight[i, j] = w
            w *= gamma * float(cont[i, j + 1])
    with torch.no_grad():
        policy = ac.policy(traj["feat"][:, :-1])
        logp = policy.log_prob(traj["action"][:, :-1])
        ent = policy.normalized_entropy()
    actor_loss = -(weight * (logp * adv_n + 0.3 * ent)).mean()
    assert float(metrics["actor_loss"]) == pytest.approx(float(actor_loss), rel=1e-4)
    # The normalised advantage has mean 0 and std 1.
    assert float(adv_n.mean()) == pytest.approx(0.0, abs=1e-5)


def test_reinforce_raises_probability_of_action_with_higher_advantage():
    ac = make_ac(unimix=0.0)
    ac.entropy_scale.scale.fill_(0.0)
    set_critic_output(ac, "extr", 0.0)
    n = 32
    feat = torch.randn(1, 1, FEAT).expand(n, 2, FEAT).clone()  # one state, two outcomes
    actions = torch.tensor([0, 1] * (n // 2))
    traj = {"feat": feat, "action": F.one_hot(actions, 3).float()[:, None].expand(n, 2, 3).clone(),
            "rewards": {"extr": torch.where(actions == 0, 1.0, -1.0)[:, None]},
            "cont": torch.ones(n, 2)}
    opt = torch.optim.SGD(ac.actor.parameters(), lr=0.01)
    with torch.no_grad():
        before = ac.policy(feat[:1, 0]).dist.probs[0, 0].clone()
    loss, _ = ac.loss(traj)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        after = ac.policy(feat[:1, 0]).dist.probs[0, 0]
    assert after[0] > before[0] + 1e-4  # action 0 had positive advantage
    assert after[1] < before[1] - 1e-4  # action 1 had negative advantage


def test_entropy_bonus_gradient_raises_entropy():
    ac = make_ac(unimix=0.0)
    set_critic_output(ac, "extr", 0.0)
    n = 8
    traj = traj_of(n, 1)
    traj["feat"] = torch.randn(1, 1, FEAT).expand(n, 2, FEAT).clone()
    traj["rewards"]["extr"] = torch.zeros(n, 1)  # no advantage signal at all
    with torch.no_grad():
        ac.actor.out.weight.mul_(5.0)  # start away from uniform
        before = ac.policy(traj["feat"][:1, 0]).normalized_entropy()
    opt = torch.optim.SGD(ac.actor.parameters(), lr=0.01)
    loss, _ = ac.loss(traj)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        after = ac.policy(traj["feat"][:1, 0]).normalized_entropy()
    assert after > before


def test_entropy_scale_adapts_toward_half():
    ac = make_ac()
    assert float(ac.entropy_scale()) == pytest.approx(1.0)
    ac.after_update(loss_metrics(ac, 0.2))  # too deterministic: raise the bonus
    assert float(ac.entropy_scale()) == pytest.approx(1.1)
    ac.after_update(loss_metrics(ac, 0.5))
    assert float(ac.entropy_scale()) == pytest.approx(1.1)
    ac.after_update(loss_metrics(ac, 0.9))  # too random: lower it
    assert float(ac.entropy_scale()) == pytest.approx(1.0)


def test_entropy_rate_sets_how_fast_the_coefficient_adapts():
    ac = make_ac(entropy_rate=1.01)
    for _ in range(3):
        ac.after_update(loss_metrics(ac, 0.2))
    assert float(ac.entropy_scale()) == pytest.approx(1.01 ** 3)
    ac.after_update(loss_metrics(ac, 0.9))
    assert float(ac.entropy_scale()) == pytest.approx(1.01 ** 2)


def test_entropy_max_caps_the_coefficient():
    ac = make_ac(entropy_scale=0.05, entropy_max=0.1)
    for _ in range(20):  # too deterministic for 20 updates: x1.1 each, up to the cap
        ac.after_update(loss_metrics(ac, 0.2))
    assert float(ac.entropy_scale()) == pytest.approx(0.1)
    ac.after_update(loss_metrics(ac, 0.9))
    assert float(ac.entropy_scale()) == pytest.approx(0.1 / 1.1)


def test_categorical_policy_normalised_entropy_per_variable():
    ac = make_ac(action=("discrete", 4, 8), unimix=0.0)
    with torch.no_grad():
        ac.actor.out.weight.zero_()
        ac.actor.out.bias.zero_()
    policy = ac.policy(torch.randn(3, FEAT))
    torch.testing.assert_close(policy.normalized_entropy(), torch.ones(3))
    sample = policy.sample()
    assert sample.shape == (3, 32)
    torch.testing.assert_close(sample.detach().reshape(3, 4, 8).sum(-1), torch.ones(3, 4))
    torch.testing.assert_close(policy.log_prob(sample), torch.full((3,), 4 * math.log(1 / 8)))


def test_critics_with_zero_weight_are_not_built():
    ac = make_ac(scales={"extr": 1.0, "expl": 0.0})
    assert set(ac.critics) == {"extr"} and set(ac.return_norms) == {"extr"}
    with pytest.raises(ValueError):
        make_ac(scales={"extr": 0.0})


# ---------------------------------------------------------------------------- continuous
def test_gaussian_policy_mean_tanh_and_std_range():
    out = torch.tensor([[100.0, -100.0, 100.0, -100.0], [0.0, 0.0, -1e3, 1e3]])
    policy = GaussianPolicy(out)
    torch.testing.assert_close(policy.mean, torch.tanh(out[:, :2]))
    assert policy.std.min() >= MIN_STD - 1e-6 and policy.std.max() <= MAX_STD + 1e-6
    torch.testing.assert_close(policy.std[1], torch.tensor([MIN_STD, MAX_STD]))
    assert policy.sample().shape == (2, 2)
    assert 0.0 <= float(policy.normalized_entropy().min()) and float(policy.normalized_entropy().max()) <= 1.0


def test_gaussian_policy_with_nan_propagates_instead_of_raising():
    policy = GaussianPolicy(torch.full((2, 4), float("nan")))
    assert torch.isnan(policy.sample()).all()


def test_continuous_actor_learns_by_backprop_through_returns():
    ac = make_ac(action=("continuous", 2))
    ac.entropy_scale.scale.fill_(0.0)
    set_critic_output(ac, "extr", 0.0)
    n, t = 4, 2
    traj = traj_of(n, t)
    policy = ac.policy(traj["feat"][:, :-1])
    action = policy.sample()
    # A differentiable "dynamics": reward = sum of actions; the actor gets its gradient from it.
    traj["rewards"]["extr"] = action.sum(-1)
    traj["action"] = torch.cat([action, torch.zeros(n, 1, 2)], 1)
    loss, _ = ac.loss(traj)
    loss.backward()
    assert ac.actor.out.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in ac.slow_critics.parameters())


def test_without_advantage_normalisation_the_score_is_used_as_is():
    ac = make_ac(advantage_norm=False, return_min_std=1.0)
    ac.entropy_scale.scale.fill_(0.0)
    set_critic_output(ac, "extr", 0.0)
    traj = traj_of(4, 3, seed=5)
    _, metrics = ac.loss(traj)
    assert int(ac.advantage_norm.count) == 0  # the advantage normaliser was never updated
    ret = lambda_return(traj["rewards"]["extr"], torch.zeros(4, 4), traj["cont"], ac.cfg.discount, ac.cfg.lambda_)
    std = max(float(ret.std(unbiased=False)), 1.0)  # the floor of 1 applies to small returns
    with torch.no_grad():
        policy = ac.policy(traj["feat"][:, :-1])
        logp = policy.log_prob(traj["action"][:, :-1])
    weight = traj["cont"][:, :1] * torch.cat(
        [torch.ones(4, 1), torch.cumprod(ac.cfg.discount * traj["cont"][:, 1:-1], 1)], 1)
    expected = -(weight * logp * ret / std).mean()
    assert float(metrics["actor_loss"]) == pytest.approx(float(expected), rel=1e-4)


def test_entropy_coefficient_can_adapt_on_start_states_only():
    ac = make_ac(entropy_states="start")
    traj = traj_of(4, 3, seed=6)
    _, metrics = ac.loss(traj)
    with torch.no_grad():
        ent = ac.policy(traj["feat"][:, :-1]).normalized_entropy()
    assert float(metrics["entropy"]) == pytest.approx(float(ent[:, 0].mean()), rel=1e-5)
    assert float(metrics["entropy_all"]) == pytest.approx(float(ent.mean()), rel=1e-5)


def test_start_entropy_is_measured_at_replay_rows_only():
    """entropy_states=start adapts on the entropy of s_0 of the rows that start from replay."""
    ac = make_ac(action=("discrete", 1, 3), entropy_states="start")
    traj = traj_of(4, 3)
    traj["replay"] = torch.tensor([1.0, 1.0, 0.0, 0.0])
    _, metrics = ac.loss(traj)
    entropy = ac.policy(traj["feat"][:, 0]).normalized_entropy()
    torch.testing.assert_close(metrics["entropy"], entropy[:2].mean())
    assert not torch.allclose(entropy[:2].mean(), entropy.mean())
    del traj["replay"]
    torch.testing.assert_close(ac.loss(traj)[1]["entropy"], entropy.mean())
