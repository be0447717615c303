"""Tests for director.nets: symlog, one-hot distributions, KL, adaptive scales, normalisers,
the optimiser factory and the convolutional encoder/decoder (ALGORITHM.md §1, §6)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from director.nets import (Adaptive, ConvDecoder, ConvEncoder, Normalizer, OneHotDist, categorical_kl,
                           clip_straight_through, make_optimizer, symexp, symlog)
from director.world_model import RSSM

# Two shared cores: OpenMP threads spin against other processes and run ~40x slower.
torch.set_num_threads(1)


# ---------------------------------------------------------------------------- symlog
def test_symlog_symexp_round_trip_and_hand_values():
    x = torch.tensor([-1e4, -100.0, -3.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 7.0, 1e4], dtype=torch.float64)
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(symlog(symexp(x[2:-2])), x[2:-2], rtol=1e-10, atol=1e-12)
    # symlog(e - 1) = 1, symlog(-(e - 1)) = -1, symlog(0) = 0.
    e1 = torch.tensor([math.e - 1, -(math.e - 1), 0.0], dtype=torch.float64)
    torch.testing.assert_close(symlog(e1), torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64))


# ---------------------------------------------------------------------------- OneHotDist
def test_clip_straight_through_clips_the_value_and_passes_the_identity_gradient():
    x = torch.tensor([-2.5, -1.0, 0.3, 1.0, 4.0], requires_grad=True)
    y = clip_straight_through(x)
    assert y.tolist() == pytest.approx([-1.0, -1.0, 0.3, 1.0, 1.0])
    (y * torch.arange(5.0)).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_onehot_sample_is_exact_one_hot_with_straight_through_gradient_to_logits():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, 5, requires_grad=True)
    dist = OneHotDist(logits)
    sample = dist.sample()
    # Forward value: one-hot per categorical (up to the rounding of probs - sg(probs)).
    hard = sample.detach().round()
    torch.testing.assert_close(sample.detach(), hard, rtol=0, atol=1e-6)
    assert torch.equal(hard.sum(-1), torch.ones(6, 3))
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    # Backward: the gradient is that of the probabilities (sample + probs - sg(probs)).
    w = torch.randn(6, 3, 5)
    (sample * w).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    ref_logits = logits.detach().clone().requires_grad_(True)
    (torch.softmax(ref_logits, -1) * w).sum().backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad)


def test_rssm_stoch_samples_pass_gradients_to_prior_and_posterior_logits():
    torch.manual_seed(0)
    rssm = RSSM(deter=6, stoch=2, classes=3, hidden=5, action_size=2, embed=4)
    state = rssm.initial(3)
    prior = rssm.img_step(state, torch.randn(3, 2))
    (prior["stoch"] * torch.randn(3, 2, 3)).sum().backward()
    assert rssm.img_out[1].weight.grad.abs().sum() > 0  # the layer that makes the prior logits
    rssm.zero_grad()
    post = rssm.obs_step(rssm.initial(3), torch.randn(3, 2), torch.randn(3, 4), torch.zeros(3, dtype=torch.bool))
    (post["stoch"] * torch.randn(3, 2, 3)).sum().backward()
    assert rssm.obs_out[1].weight.grad.abs().sum() > 0  # the layer that makes the posterior logits


def test_onehot_sample_with_nan_logits_propagates_nan_instead_of_raising():
    # A non-finite batch must reach the loss (and be skipped there), not crash the run.
    logits = torch.tensor([[0.0, float("nan"), 1.0], [0.0, 1.0, 2.0]])
    sample = OneHotDist(logits).sample()
    assert sample.shape == (2, 3)
    assert not torch.isfinite(sample[0]).all()


def test_onehot_sample_frequencies_follow_probs():
    torch.manual_seed(0)
    probs = torch.tensor([0.1, 0.2, 0.7])
    samples = OneHotDist(torch.log(probs).expand(20000, 3)).sample().detach()
    torch.testing.assert_close(samples.mean(0), probs, rtol=0, atol=0.015)


def test_onehot_mode_is_argmax():
    logits = torch.tensor([[0.0, 3.0, 1.0], [5.0, -1.0, 2.0]])
    mode = OneHotDist(logits).mode()
    torch.testing.assert_close(mode.detach(), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
                               rtol=0, atol=1e-6)


def test_onehot_unimix_probabilities_mix_one_percent_uniform():
    logits = torch.tensor([[10.0, 0.0, 0.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    dist = OneHotDist(logits, unimix=0.01)
    expected = 0.99 * torch.softmax(logits, -1) + 0.01 / 4
    torch.testing.assert_close(dist.probs, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(dist.probs.sum(-1), torch.ones(2))
    assert dist.probs.min() >= 0.01 / 4 - 1e-7
    # log_prob of a one-hot uses the mixed probabilities.
    onehot = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    torch.testing.assert_close(dist.log_prob(onehot), torch.log((expected * onehot).sum(-1)))
    # Without unimix the probabilities are the plain softmax.
    torch.testing.assert_close(OneHotDist(logits).probs, torch.softmax(logits, -1))


def test_onehot_entropy_of_uniform_is_log_classes():
    dist = OneHotDist(torch.zeros(2, 3, 8))
    torch.testing.assert_close(dist.entropy(), torch.full((2, 3), math.log(8)))


# ---------------------------------------------------------------------------- KL
def test_categorical_kl_matches_hand_computation():
    p = torch.tensor([[0.5, 0.5], [0.1, 0.9]])
    q = torch.tensor([[0.25, 0.75], [0.6, 0.4]])
    # Logits are only defined up to a constant: shift them.
    kl = categorical_kl(torch.log(p) + 3.0, torch.log(q) - 1.0)
    hand = torch.tensor([
        0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75),
        0.1 * math.log(0.1 / 0.6) + 0.9 * math.log(0.9 / 0.4),
    ])
    torch.testing.assert_close(kl, hand)
    assert categorical_kl(torch.log(p), torch.log(p)).abs().max() < 1e-6


# ---------------------------------------------------------------------------- Adaptive
def test_adaptive_increase_above_rule_for_kl_scales():
    a = Adaptive(init=0.5, target=3.5, low=1e-5, high=1.0, increase_above=True)
    a.update(4.0)  # > 1.1 * 3.5 = 3.85: x1.1
    assert float(a()) == pytest.approx(0.55)
    a.update(3.5)  # within [3.5/1.1, 3.85]: unchanged
    assert float(a()) == pytest.approx(0.55)
    a.update(3.85 - 1e-4)
    assert float(a()) == pytest.approx(0.55)
    a.update(3.0)  # < 3.5 / 1.1 = 3.18: /1.1
    assert float(a()) == pytest.approx(0.5)
    a.update(torch.tensor(3.0))  # tensors are accepted
    assert float(a()) == pytest.approx(0.5 / 1.1)


def test_adaptive_clips_to_low_and_high():
    a = Adaptive(init=1.0, target=3.5, low=1e-5, high=1.0)
    for _ in range(5):
        a.update(100.0)
    assert float(a()) == pytest.approx(1.0)
    b = Adaptive(init=1.2e-5, target=3.5, low=1e-5, high=1.0)
    for _ in range(5):
        b.update(0.0)
    assert float(b()) == pytest.approx(1e-5)


def test_adaptive_inverted_rule_for_entropy():
    a = Adaptive(init=1.0, target=0.5, low=1e-5, high=100.0, increase_above=False)
    a.update(0.4)  # < 0.5 / 1.1 = 0.4545: x1.1
    assert float(a()) == pytest.approx(1.1)
    a.update(0.5)  # unchanged
    assert float(a()) == pytest.approx(1.1)
    a.update(0.6)  # > 0.55: /1.1
    assert float(a()) == pytest.approx(1.0)
    c = Adaptive(init=95.0, target=0.5, low=1e-5, high=100.0, increase_above=False)
    c.update(0.0)
    c.update(0.0)
    assert float(c()) == pytest.approx(100.0)


# ---------------------------------------------------------------------------- Normalizer
def _update(n: Normalizer, x: torch.Tensor, applied=True) -> None:
    n.update(x.mean(), (x ** 2).mean(), applied)


def test_normalizer_ema_of_mean_and_square():
    n = Normalizer(decay=0.9)
    _update(n, torch.tensor([1.0, 3.0]))  # first update initialises: mean 2, sqr 5
    assert float(n.mean) == pytest.approx(2.0)
    assert float(n.sqr) == pytest.approx(5.0)
    x = torch.tensor([4.0])
    mean, sqr = n.next(x.mean(), (x ** 2).mean())  # what the loss uses, before the commit
    _update(n, x)
    assert float(n.mean) == pytest.approx(0.9 * 2 + 0.1 * 4) == float(mean)
    assert float(n.sqr) == pytest.approx(0.9 * 5 + 0.1 * 16) == float(sqr)
    assert float(n.std()) == pytest.approx(math.sqrt(6.1 - 2.2 ** 2), rel=1e-5)


def test_normalizer_commits_nothing_where_not_applied():
    n = Normalizer(decay=0.9)
    _update(n, torch.tensor([1.0, 3.0]))
    _update(n, torch.tensor([float("nan"), 1.0]), applied=torch.tensor(False))
    _update(n, torch.tensor([5.0]), applied=torch.tensor(False))
    assert float(n.mean) == pytest.approx(2.0) and float(n.sqr) == pytest.approx(5.0)
    assert int(n.count) == 1


def test_normalizer_std_floor():
    n = Normalizer(decay=0.99, min_std=0.01)
    _update(n, torch.full((10,), 3.0))
    assert float(n.std()) == pytest.approx(0.01)


def test_adaptive_commits_nothing_where_not_applied():
    a = Adaptive(1.0, 3.5, 1e-5, 1.0, increase_above=True)
    a.update(torch.tensor(1.0), applied=torch.tensor(False))
    assert float(a()) == 1.0
    a.update(torch.tensor(1.0))
    assert float(a()) == pytest.approx(1 / 1.1)


# ---------------------------------------------------------------------------- optimiser
class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.conv = nn.Conv2d(2, 2, 3)
        self.rssm = RSSM(deter=6, stoch=2, classes=3, hidden=5, action_size=2, embed=4)


def test_make_optimizer_decays_weight_matrices_only_and_uses_eps():
    torch.manual_seed(0)
    model = _Toy()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.rand_like(p) + 0.5)  # every parameter non-zero
    opt = make_optimizer(model, lr=0.1, eps=1e-6, weight_decay=0.01)
    assert isinstance(opt, torch.optim.AdamW)
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert all(g["eps"] == 1e-6 and g["lr"] == 0.1 for g in opt.param_groups)
    assert len(decay) == len(list(model.parameters()))
    names = dict(model.named_parameters())
    for name in ("lin.weight", "conv.weight", "rssm.gru.weight", "rssm.img_in.0.weight",
                 "rssm.img_out.1.weight", "rssm.obs_out.1.weight"):
        assert decay[id(names[name])] == 0.01, name
    for name in ("lin.bias", "norm.weight", "norm.bias", "conv.bias", "rssm.init_deter",
                 "rssm.gru_norm.weight", "rssm.gru_norm.bias", "rssm.img_in.1.weight", "rssm.img_out.1.bias"):
        assert decay[id(names[name])] == 0.0, name
    # Behaviour: with zero gradients Adam's step is 0, so only decoupled decay acts:
    # w <- w * (1 - lr * wd) on matrices, nothing elsewhere.
    before = {k: v.detach().clone() for k, v in names.items()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for k, p in names.items():
        factor = 1 - 0.1 * 0.01 if p.ndim >= 2 else 1.0
        torch.testing.assert_close(p.detach(), before[k] * factor, msg=k)


# ---------------------------------------------------------------------------- conv nets
@pytest.mark.parametrize("size,layers", [(16, 2), (32, 3), (64, 4)])
def test_conv_encoder_decoder_shapes(size, layers):
    d = 4
    enc = ConvEncoder(size, 3, d)
    assert enc.out_dim == 2 * 2 * d * 2 ** (layers - 1)
    image = torch.randint(0, 256, (2, 3, size, size, 3), dtype=torch.uint8)
    embed = enc(image)
    assert embed.shape == (2, 3, enc.out_dim)
    dec = ConvDecoder(20, size, 3, d)
    out = dec(torch.randn(2, 3, 20))
    assert out.shape == (2, 3, size, size, 3)
    assert out.min() >= 0 and out.max() <= 1


def test_conv_encoder_64px_gives_2x2x8d_and_scales_pixels():
    d = 3
    enc = ConvEncoder(64, 3, d)
    assert enc.out_dim == 2 * 2 * 8 * d
    convs = [m for m in enc.net if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [d, 2 * d, 4 * d, 8 * d]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    image = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    expected = enc.net(image.permute(0, 3, 1, 2).float() / 255.0).reshape(2, -1)
    torch.testing.assert_close(enc(image), expected)


def test_conv_decoder_linear_output_is_the_sigmoid_outputs_logit_plus_a_half():
    torch.manual_seed(0)
    sig, lin = ConvDecoder(10, 32, 3, 3).double(), ConvDecoder(10, 32, 3, 3, output="linear").double()
    lin.load_state_dict(sig.state_dict())
    feat = torch.randn(2, 5, 10, dtype=torch.float64)
    out = lin(feat)
    torch.testing.assert_close(out - 0.5, torch.logit(sig(feat)))
    with pytest.raises(ValueError, match="linear"):
        ConvDecoder(10, 32, 3, 3, output="tanh")


def test_world_model_linear_image_output_trains_on_the_raw_mean_and_shows_it_clipped():
    from director import config as config_lib
    from director.world_model import WorldModel
    torch.manual_seed(0)
    cfg = config_lib.load("debug", ["model.image_output=linear"])
    wm = WorldModel(cfg.model, (16, 16, 3), 5)
    assert wm.decoder.output == "linear"
    with torch.no_grad():  # push the mean out of [0, 1]: the display clips, the loss does not
        wm.decoder.net[-1].bias.fill_(3.0)
    feat = torch.randn(4, wm.feat_size)
    raw, shown = wm.decode_image(feat), wm.image(feat)
    assert raw.max() > 1.5 and shown.max() == 1.0 and shown.min() >= 0.0
    torch.testing.assert_close(shown, raw.clamp(0, 1))
    data = {"image": torch.zeros(2, 3, 16, 16, 3, dtype=torch.uint8), "action": torch.zeros(2, 3, 5),
            "reward": torch.zeros(2, 3), "is_first": torch.zeros(2, 3), "is_terminal": torch.zeros(2, 3)}
    _, _, metrics = wm.loss(data)
    # Black targets against a mean near 3.5 per channel: the loss sees the unclipped mean.
    assert metrics["image_loss"] > 16 * 16 * 3 * 2.0 ** 2


def test_conv_decoder_64px_kernels_and_channels():
    d = 3
    dec = ConvDecoder(10, 64, 3, d)
    convs = [m for m in dec.net if isinstance(m, nn.ConvTranspose2d)]
    assert [c.kernel_size[0] for c in convs] == [5, 5, 6, 6]
    assert [c.out_channels for c in convs] == [4 * d, 2 * d, d, 3]


@pytest.mark.parametrize("size", [16, 32, 64])
def test_conv_decoder_first_layer_as_a_matmul_equals_its_transposed_convolution(size):
    torch.manual_seed(0)
    dec = ConvDecoder(10, size, 3, 3)
    feat = torch.randn(4, 10, dtype=torch.float64, requires_grad=True)
    dec = dec.double()
    fast = dec(feat)
    fast.square().sum().backward()
    grads = [feat.grad.clone()] + [p.grad.clone() for p in dec.parameters()]
    feat.grad = None
    dec.zero_grad()
    conv = torch.sigmoid(dec.net(feat.reshape(4, 10, 1, 1))).permute(0, 2, 3, 1)
    conv.square().sum().backward()
    torch.testing.assert_close(fast, conv)
    for got, want in zip(grads, [feat.grad] + [p.grad for p in dec.parameters()]):
        torch.testing.assert_close(got, want)


def test_mlp_on_a_concat_equals_the_mlp_on_the_dense_tensor_values_and_gradients():
    from director.nets import MLP, Concat
    torch.manual_seed(0)
    mlp = MLP(6 + 3, 4, layers=2, units=8)
    feat, goal = torch.randn(5, 7, 6), torch.randn(5, 1, 3)  # the goal held over 7 states
    lazy = mlp(Concat(feat, goal))
    lazy.square().sum().backward()
    lazy_grads = [p.grad.clone() for p in mlp.parameters()]
    mlp.zero_grad()
    dense = mlp(torch.cat([feat, goal.expand(5, 7, 3)], -1))
    dense.square().sum().backward()
    torch.testing.assert_close(lazy, dense, rtol=1e-5, atol=1e-6)
    for a, p in zip(lazy_grads, mlp.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-6)
    out_only = MLP(9, 2, layers=0, units=8)
    torch.testing.assert_close(out_only(Concat(feat, goal)), out_only(torch.cat([feat, goal.expand(5, 7, 3)], -1)))
