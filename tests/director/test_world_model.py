"""Tests for director.world_model: shapes for every preset, KL balancing, the RSSM's steps
(GRU formula, resets, initial state, get_stoch), the adaptive KL scale, parameter counts and
seeded determinism (ALGORITHM.md §1)."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from director import config as config_lib
from director.nets import make_optimizer, symlog
from director.world_model import RSSM, WorldModel, kl_balanced

# Two shared cores: OpenMP threads spin against other processes and run ~40x slower.
torch.set_num_threads(1)

ACTIONS = 5


def make_batch(b: int, t: int, size: int, actions: int = ACTIONS, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return {
        "image": torch.randint(0, 256, (b, t, size, size, 3), dtype=torch.uint8, generator=g),
        "action": F.one_hot(torch.randint(0, actions, (b, t), generator=g), actions).float(),
        "reward": torch.randn(b, t, generator=g),
        "is_first": is_first,
        "is_last": torch.zeros(b, t, dtype=torch.bool),
        "is_terminal": torch.zeros(b, t, dtype=torch.bool),
    }


VECTORS = {"joints_pos": 3, "body_height": 1}   # what the Ant Maze's proprioception looks like


def with_vectors(batch: dict[str, torch.Tensor], seed: int = 1) -> dict[str, torch.Tensor]:
    """The batch plus VECTORS entries (B, T, n), large enough that symlog matters."""
    g = torch.Generator().manual_seed(seed)
    b, t = batch["reward"].shape
    return {**batch, **{k: 20 * torch.randn(b, t, n, generator=g) for k, n in VECTORS.items()}}


def vector_world_model(seed: int = 0) -> tuple[WorldModel, config_lib.Config]:
    cfg = config_lib.load("debug")
    torch.manual_seed(seed)
    return WorldModel(cfg.model, (cfg.env.size,) * 2 + (3,), ACTIONS, VECTORS), cfg


@pytest.fixture(scope="module")
def paper_cfg():
    return config_lib.load("paper")


@pytest.fixture(scope="module")
def paper_wm(paper_cfg):
    torch.manual_seed(0)
    return WorldModel(paper_cfg.model, (paper_cfg.env.size,) * 2 + (3,), ACTIONS)


def check_shapes(wm: WorldModel, cfg: config_lib.Config, b: int, t: int) -> None:
    r, size = cfg.model.rssm, cfg.env.size
    batch = make_batch(b, t, size)
    with torch.no_grad():
        loss, post, metrics = wm.loss(batch)
        embed = wm.embed(batch)
        feat = wm.feat(post)
        image = wm.decode_image(feat)
        reward = wm.predict_reward(feat)
        cont = wm.predict_cont(feat)
    assert loss.shape == () and torch.isfinite(loss)
    assert embed.shape == (b, t, wm.encoder.out_dim)
    assert post["deter"].shape == (b, t, r.deter)
    assert post["stoch"].shape == (b, t, r.stoch, r.classes)
    assert post["logits"].shape == (b, t, r.stoch, r.classes)
    assert feat.shape == (b, t, r.deter + r.stoch * r.classes) and wm.feat_size == feat.shape[-1]
    assert image.shape == (b, t, size, size, 3)
    assert reward.shape == (b, t) and cont.shape == (b, t)
    assert all(torch.isfinite(v).all() for v in metrics.values())


@pytest.mark.parametrize("preset", ["debug", "default"])
def test_world_model_shapes_small_presets(preset):
    cfg = config_lib.load(preset)
    torch.manual_seed(0)
    wm = WorldModel(cfg.model, (cfg.env.size,) * 2 + (3,), ACTIONS)
    check_shapes(wm, cfg, b=2, t=3)


def test_world_model_shapes_paper_preset(paper_wm, paper_cfg):
    check_shapes(paper_wm, paper_cfg, b=1, t=2)
    assert paper_wm.feat_size == 2048
    assert paper_wm.encoder.out_dim == 2 * 2 * 8 * 64


@pytest.mark.parametrize("preset", ["debug", "default", "paper"])
def test_parameter_counts_per_part(preset, paper_wm, capsys):
    from director.agent import Agent

    cfg = config_lib.load(preset)
    size = cfg.env.size
    torch.manual_seed(0)
    agent = Agent(cfg, (size, size, 3), ("discrete", ACTIONS))
    parts = {f"wm.{n}": m for n, m in agent.wm.named_children() if n != "kl_scale"}
    parts.update(goal_ae=agent.goal_ae, manager=agent.manager, worker=agent.worker)
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in parts.items()}
    with capsys.disabled():
        print(f"\n[{preset}] " + ", ".join(f"{k}={v:,}" for k, v in counts.items())
              + f", total={sum(p.numel() for p in agent.parameters()):,}")
    assert all(v > 0 for v in counts.values()), counts
    if preset == "paper":
        r = cfg.model.rssm
        assert (r.deter, r.stoch, r.classes, r.hidden, cfg.model.cnn_depth) == (1024, 32, 32, 1024, 64)
        rssm = agent.wm.rssm
        assert (rssm.deter, rssm.stoch, rssm.classes) == (1024, 32, 32)
        assert rssm.img_in[0].out_features == 1024 and rssm.gru.out_features == 3 * 1024
        # World model ~34M parameters; same count as the shared fixture.
        assert counts_wm(agent.wm) == counts_wm(paper_wm)
        assert 30e6 < counts_wm(agent.wm) < 40e6
        # Worker input concat(deter, stoch, goal) = 3072.
        assert agent.worker.ac.actor.hidden[0][0].in_features == 3072


def counts_wm(wm):
    return sum(p.numel() for p in wm.parameters())


# ---------------------------------------------------------------------------- KL balancing
def test_kl_balanced_value_and_gradient_split():
    torch.manual_seed(0)
    post = torch.randn(2, 3, 4, requires_grad=True)
    prior = torch.randn(2, 3, 4, requires_grad=True)
    loss, kl = kl_balanced(post, prior, 0.8)
    p, q = torch.softmax(post.detach(), -1), torch.softmax(prior.detach(), -1)
    hand_kl_var = (p * (p.log() - q.log())).sum(-1)  # (2, 3): per categorical
    # Both terms have the value of KL(post || prior): 0.8 * KL + 0.2 * KL, summed over the 3 vars.
    torch.testing.assert_close(kl, hand_kl_var.sum(-1))
    torch.testing.assert_close(loss.detach(), hand_kl_var.sum(-1))
    loss.sum().backward()
    # d KL(p || q) / d prior_logits = q - p; the prior term has weight 0.8.
    torch.testing.assert_close(prior.grad, 0.8 * (q - p))
    # d KL(p || q) / d post_logits = p * (log p - log q - KL); the posterior term has weight 0.2.
    torch.testing.assert_close(post.grad, 0.2 * p * (p.log() - q.log() - hand_kl_var[..., None]))


def test_world_model_loss_uses_balanced_kl_with_adaptive_scale():
    cfg = config_lib.load("debug")
    torch.manual_seed(0)
    wm = WorldModel(cfg.model, (16, 16, 3), ACTIONS)
    batch = make_batch(2, 3, 16)
    torch.manual_seed(1)
    _, _, m1 = wm.loss(batch)
    wm.kl_scale.scale.fill_(0.5)
    torch.manual_seed(1)
    _, _, m2 = wm.loss(batch)
    other = m1["image_loss"] + m1["reward_loss"] + m1["cont_loss"]
    # model_loss = heads + scale * kl (the balanced loss has the value of the KL).
    torch.testing.assert_close(m1["model_loss"], other + 1.0 * m1["kl"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m2["model_loss"], other + 0.5 * m2["kl"], rtol=1e-5, atol=1e-5)


def test_adaptive_kl_scale_updates_after_update():
    cfg = config_lib.load("debug")
    wm = WorldModel(cfg.model, (16, 16, 3), ACTIONS)
    assert float(wm.kl_scale()) == pytest.approx(1.0)  # starts at 1.0
    wm.after_update({"kl": torch.tensor(10.0)})  # above 1.1 * 3.5 but already at the max 1.0
    assert float(wm.kl_scale()) == pytest.approx(1.0)
    wm.after_update({"kl": torch.tensor(1.0)})  # below 3.5 / 1.1: / 1.1
    assert float(wm.kl_scale()) == pytest.approx(1 / 1.1)
    wm.after_update({"kl": torch.tensor(3.5)})  # in the band: unchanged
    assert float(wm.kl_scale()) == pytest.approx(1 / 1.1)
    wm.after_update({"kl": torch.tensor(5.0)})
    assert float(wm.kl_scale()) == pytest.approx(1.0)


# ---------------------------------------------------------------------------- RSSM
def small_rssm(seed: int = 0) -> RSSM:
    torch.manual_seed(seed)
    rssm = RSSM(deter=6, stoch=3, classes=4, hidden=5, action_size=2, embed=7)
    with torch.no_grad():
        rssm.init_deter.normal_()  # a non-trivial learned initial state
    return rssm


def test_img_step_matches_manual_layer_norm_gru():
    rssm = small_rssm()
    torch.manual_seed(1)
    n = 4
    stoch = F.one_hot(torch.randint(0, 4, (n, 3)), 4).float()
    h = torch.randn(n, 6)
    action = torch.randn(n, 2)
    out = rssm.img_step({"deter": h, "stoch": stoch, "logits": torch.zeros(n, 3, 4)}, action)
    with torch.no_grad():
        # x = ELU(LN(W_in concat(stoch, a)))
        lin, ln = rssm.img_in[0], rssm.img_in[1]
        x = F.elu(F.layer_norm(torch.cat([stoch.flatten(-2), action], -1) @ lin.weight.T, (5,),
                               ln.weight, ln.bias, 1e-3))
        # y = LN(W concat(x, h)) split into reset, candidate, update (module's input order).
        w = rssm.gru.weight
        y = x @ w[:, :5].T + h @ w[:, 5:].T
        y = F.layer_norm(y, (18,), rssm.gru_norm.weight, rssm.gru_norm.bias, 1e-3)
        r, c, u = y[:, :6], y[:, 6:12], y[:, 12:]
        r = torch.sigmoid(r)
        c = torch.tanh(r * c)
        u = torch.sigmoid(u - 1)
        h_new = u * c + (1 - u) * h
    torch.testing.assert_close(out["deter"], h_new)
    # Prior logits: Dense+LN+ELU(h_t) -> Dense.
    torch.testing.assert_close(out["logits"], rssm.img_out(h_new).reshape(n, 3, 4))


def test_initial_state_is_tanh_of_learned_vector_with_prior_mode():
    rssm = small_rssm()
    init = rssm.initial(2)
    torch.testing.assert_close(init["deter"], torch.tanh(rssm.init_deter).expand(2, -1))
    logits = rssm.img_out(init["deter"]).reshape(2, 3, 4)
    torch.testing.assert_close(init["stoch"].detach(), F.one_hot(logits.argmax(-1), 4).float(),
                               rtol=0, atol=1e-6)


def test_obs_step_resets_to_learned_initial_state_where_is_first():
    rssm = small_rssm()
    torch.manual_seed(2)
    n = 3
    state = {"deter": torch.randn(n, 6), "stoch": F.one_hot(torch.randint(0, 4, (n, 3)), 4).float(),
             "logits": torch.randn(n, 3, 4)}
    action, embed = torch.randn(n, 2), torch.randn(n, 7)
    is_first = torch.tensor([True, False, True])
    post = rssm.obs_step(state, action, embed, is_first)
    with torch.no_grad():
        reset = rssm.img_step(rssm.initial(n), torch.zeros(n, 2))  # initial state, zero action
        cont = rssm.img_step(state, action)
    expected = torch.where(is_first[:, None], reset["deter"], cont["deter"])
    torch.testing.assert_close(post["deter"], expected)  # the posterior's h_t is the prior's
    # The reset rows do not depend on the previous state or action at all.
    post2 = rssm.obs_step({k: v * 7 + 1 for k, v in state.items()}, action * -3, embed, is_first)
    torch.testing.assert_close(post2["deter"][is_first], post["deter"][is_first])
    assert not torch.allclose(post2["deter"][~is_first], post["deter"][~is_first])
    # Posterior logits = Dense(Dense+LN+ELU(concat(h_t, embed))).
    torch.testing.assert_close(post["logits"], rssm.obs_out(torch.cat([post["deter"], embed], -1)).reshape(n, 3, 4))


def test_get_stoch_returns_one_hot_prior_mode():
    rssm = small_rssm()
    deter = torch.randn(5, 6)
    stoch = rssm.get_stoch(deter)
    assert stoch.shape == (5, 3, 4) and not stoch.requires_grad
    logits = rssm.img_out(deter).reshape(5, 3, 4)
    torch.testing.assert_close(stoch, F.one_hot(logits.argmax(-1), 4).float(), rtol=0, atol=1e-6)
    # Deterministic: a mode, not a sample.
    torch.testing.assert_close(rssm.get_stoch(deter), stoch)


def test_observe_shapes_and_is_first_mid_sequence():
    rssm = small_rssm()
    torch.manual_seed(3)
    embed, action = torch.randn(2, 4, 7), torch.randn(2, 4, 2)
    is_first = torch.zeros(2, 4, dtype=torch.bool)
    is_first[:, 0] = True
    is_first[0, 2] = True
    post, prior = rssm.observe(embed, action, is_first)
    assert post["deter"].shape == (2, 4, 6) and prior["logits"].shape == (2, 4, 3, 4)
    assert "stoch" not in prior  # the prior's sample would be read by nobody
    # The prior at each step is the one img_step makes from the same h_t.
    torch.testing.assert_close(prior["deter"], post["deter"])
    torch.testing.assert_close(prior["logits"][:, 1], rssm.img_step(
        {k: v[:, 0] for k, v in post.items()}, action[:, 1], sample=False)["logits"], rtol=1e-5, atol=1e-6)
    # At an is_first step the deter does not depend on the earlier steps' inputs.
    embed2, action2 = embed.clone(), action.clone()
    embed2[:, :2], action2[:, :3] = 5.0, -2.0
    post2, _ = rssm.observe(embed2, action2, is_first)
    torch.testing.assert_close(post2["deter"][0, 2], post["deter"][0, 2])
    assert not torch.allclose(post2["deter"][1, 2], post["deter"][1, 2])


# ---------------------------------------------------------------------------- determinism
def one_step_losses(seed: int) -> tuple[float, float]:
    cfg = config_lib.load("debug")
    torch.manual_seed(seed)
    wm = WorldModel(cfg.model, (16, 16, 3), ACTIONS)
    opt = make_optimizer(wm, cfg.model.opt.lr, cfg.model.opt.eps, cfg.model.opt.weight_decay)
    batch = make_batch(2, 4, 16, seed=seed)
    loss1, _, _ = wm.loss(batch)
    opt.zero_grad()
    loss1.backward()
    opt.step()
    loss2, _, _ = wm.loss(batch)
    return float(loss1.detach()), float(loss2.detach())


def test_seeded_world_model_training_is_deterministic_on_cpu():
    a, b = one_step_losses(7), one_step_losses(7)
    assert a == b
    assert one_step_losses(8) != a


# ---------------------------------------------------------------------------- vector observations
def test_vector_observations_enter_the_embedding_through_their_own_encoder():
    wm, cfg = vector_world_model()
    batch = with_vectors(make_batch(2, 3, cfg.env.size))
    with torch.no_grad():
        embed = wm.embed(batch)
        moved = wm.embed({**batch, "body_height": batch["body_height"] + 1.0})
    assert embed.shape == (2, 3, wm.encoder.out_dim + cfg.model.mlp_units)
    image_part = wm.encoder.out_dim
    assert torch.equal(embed[..., :image_part], moved[..., :image_part])
    assert not torch.allclose(embed[..., image_part:], moved[..., image_part:])
    with pytest.raises(KeyError):
        wm.embed(make_batch(2, 3, cfg.env.size))   # a world with vectors must send them


def test_vector_loss_is_squared_error_in_symlog_space_summed_over_every_vector():
    wm, cfg = vector_world_model()
    batch = with_vectors(make_batch(2, 3, cfg.env.size))
    with torch.no_grad():
        loss, post, metrics = wm.loss(batch)
        pred = wm.vec_decoder(wm.feat(post))
    target = symlog(torch.cat([batch[k] for k in VECTORS], -1))
    assert pred.shape == (2, 3, sum(VECTORS.values()))
    assert metrics["vector_loss"].item() == pytest.approx(((pred - target) ** 2).sum(-1).mean().item(), rel=1e-5)
    parts = metrics["image_loss"] + metrics["reward_loss"] + metrics["cont_loss"] + metrics["vector_loss"]
    assert metrics["model_loss"].item() > parts.item()        # plus the (positive) scaled KL term
    assert loss.item() == pytest.approx(metrics["model_loss"].item())


def test_vector_loss_trains_the_vector_encoder_decoder_and_the_representation():
    wm, cfg = vector_world_model()
    batch = with_vectors(make_batch(2, 3, cfg.env.size))
    _, _, metrics = wm.loss(batch)
    metrics["vector_loss"].backward()
    for part in (wm.vec_encoder, wm.vec_decoder, wm.rssm, wm.encoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), part
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in wm.decoder.parameters())
