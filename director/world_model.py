"""The world model of ALGORITHM.md §1: RSSM, image/vector encoders and decoders, reward
and continuation heads, KL balancing with an adaptive KL scale.

A latent state is a dict {deter (B, D), stoch (B, S, C) one-hot, logits (B, S, C)};
its feature is concat(deter, flatten(stoch)) of size D + S*C.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from director.config import WorldModelConfig
from director.nets import (MLP, Adaptive, ConvDecoder, ConvEncoder, DenseNorm, OneHotDist,
                           categorical_kl, symexp, symlog)

State = dict[str, torch.Tensor]


class RSSM(nn.Module):
    """Recurrent state-space model with a layer-norm GRU and discrete stochastic state."""

    def __init__(self, deter: int, stoch: int, classes: int, hidden: int, action_size: int, embed: int):
        super().__init__()
        self.deter, self.stoch, self.classes = deter, stoch, classes
        self.img_in = DenseNorm(stoch * classes + action_size, hidden)
        self.gru = nn.Linear(hidden + deter, 3 * deter, bias=False)
        self.gru_norm = nn.LayerNorm(3 * deter, eps=1e-3)
        self.img_out = nn.Sequential(DenseNorm(deter, hidden), nn.Linear(hidden, stoch * classes))
        self.obs_out = nn.Sequential(DenseNorm(deter + embed, hidden), nn.Linear(hidden, stoch * classes))
        self.init_deter = nn.Parameter(torch.zeros(deter))  # h_0 = tanh(w)

    @property
    def feat_size(self) -> int:
        return self.deter + self.stoch * self.classes

    def feat(self, state: State) -> torch.Tensor:
        """(..., D + S*C)"""
        return torch.cat([state["deter"], state["stoch"].flatten(-2)], -1)

    def _logits(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return net(x).reshape(*x.shape[:-1], self.stoch, self.classes).float()

    def get_stoch(self, deter: torch.Tensor) -> torch.Tensor:
        """The prior's mode (one-hot) given a deter vector: (..., D) -> (..., S, C)."""
        return OneHotDist(self._logits(self.img_out, deter)).mode().detach()

    def initial(self, batch: int) -> State:
        deter = torch.tanh(self.init_deter).expand(batch, -1)
        logits = self._logits(self.img_out, deter)
        return {"deter": deter, "stoch": OneHotDist(logits).mode(), "logits": logits}

    def _deter_step(self, state: State, action: torch.Tensor) -> torch.Tensor:
        """The layer-norm GRU: (state_{t-1}, a_{t-1}) -> deter h_t (B, D)."""
        x = self.img_in(torch.cat([state["stoch"].flatten(-2).to(action.dtype), action], -1))
        h = state["deter"]
        reset, cand, update = self.gru_norm(self.gru(torch.cat([x, h.to(x.dtype)], -1))).chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1)
        return (update * cand + (1 - update) * h).float()

    def img_step(self, state: State, action: torch.Tensor, sample: bool = True) -> State:
        """Prior step: (state_{t-1}, a_{t-1}) -> prior state_t."""
        deter = self._deter_step(state, action)
        logits = self._logits(self.img_out, deter)
        dist = OneHotDist(logits)
        return {"deter": deter, "stoch": dist.sample() if sample else dist.mode(), "logits": logits}

    def obs_step(self, state: State, action: torch.Tensor, embed: torch.Tensor,
                 is_first: torch.Tensor, init: State | None = None) -> State:
        """Posterior step; where is_first, the previous state and action are replaced by the
        initial state (`init`, leaves (1, ...); built here when None) and zeros. Returns the
        posterior; its deter h_t is the prior's too, whose logits (`prior(deter)`) nothing in
        the step needs: `observe` computes them for the whole sequence at once."""
        first = is_first.reshape(-1, 1)
        init = init if init is not None else self.initial(1)  # broadcast: no branch on device values
        state = {k: torch.where(first.reshape(-1, *[1] * (v.ndim - 1)), init[k], v) for k, v in state.items()}
        deter = self._deter_step(state, action * (~first).to(action.dtype))
        logits = self._logits(self.obs_out, torch.cat([deter, embed.float()], -1))
        return {"deter": deter, "stoch": OneHotDist(logits).sample(), "logits": logits}

    def prior(self, deter: torch.Tensor) -> State:
        """The prior at deter states h (..., D): {deter, logits (..., S, C)} (no sample)."""
        return {"deter": deter, "logits": self._logits(self.img_out, deter)}

    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor) -> tuple[State, State]:
        """Filter a sequence: embed (B, T, E), action (B, T, A) = the action that led to each
        observation, is_first (B, T) -> posterior and prior states with (B, T, ...) leaves.
        Only the posterior is sequential; the prior logits are one batched pass afterwards."""
        state = self.initial(embed.shape[0])
        init = self.initial(1)
        posts = []
        for t in range(embed.shape[1]):
            state = self.obs_step(state, action[:, t], embed[:, t], is_first[:, t], init)
            posts.append(state)
        post = {k: torch.stack([x[k] for x in posts], 1) for k in posts[0]}
        return post, self.prior(post["deter"])


def kl_balanced(post: torch.Tensor, prior: torch.Tensor, balance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """KL balancing on logits (..., S, C): returns (loss, kl), each (...) summed over the S
    categoricals. loss = balance * KL(sg(post) || prior) + (1 - balance) * KL(post || sg(prior))."""
    lhs = categorical_kl(post.detach(), prior)
    rhs = categorical_kl(post, prior.detach())
    loss = balance * lhs.sum(-1) + (1 - balance) * rhs.sum(-1)
    return loss, categorical_kl(post, prior).sum(-1).detach()


class WorldModel(nn.Module):
    """Encoder + RSSM + decoders + reward and continuation heads, trained on replay chunks."""

    def __init__(self, cfg: WorldModelConfig, image_shape: tuple[int, int, int], action_size: int,
                 vectors: dict[str, int] | None = None):
        super().__init__()
        self.cfg = cfg
        size, _, channels = image_shape
        self.vectors = dict(vectors or {})
        self.encoder = ConvEncoder(size, channels, cfg.cnn_depth)
        embed = self.encoder.out_dim
        if self.vectors:
            self.vec_encoder = MLP(sum(self.vectors.values()), None, cfg.mlp_layers, cfg.mlp_units)
            embed += cfg.mlp_units
        r = cfg.rssm
        self.rssm = RSSM(r.deter, r.stoch, r.classes, r.hidden, action_size, embed)
        feat = self.rssm.feat_size
        self.decoder = ConvDecoder(feat, size, channels, cfg.cnn_depth, cfg.image_output)
        if self.vectors:
            self.vec_decoder = MLP(feat, sum(self.vectors.values()), cfg.mlp_layers, cfg.mlp_units)
        self.reward = MLP(feat, 1, cfg.mlp_layers, cfg.mlp_units)
        self.cont = MLP(feat, 1, cfg.mlp_layers, cfg.mlp_units)
        self.kl_scale = Adaptive(cfg.kl_scale, cfg.kl_target, 1e-5, 1.0, increase_above=True)

    @property
    def feat_size(self) -> int:
        return self.rssm.feat_size

    def feat(self, state: State) -> torch.Tensor:
        return self.rssm.feat(state)

    def embed(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """obs leaves (..., ...) -> (..., E)"""
        x = self.encoder(obs["image"])
        if self.vectors:
            vec = torch.cat([obs[k].float() for k in self.vectors], -1)
            x = torch.cat([x, self.vec_encoder(symlog(vec))], -1)
        return x

    def predict_reward(self, feat: torch.Tensor) -> torch.Tensor:
        """(..., F) -> reward (...) in the environment's scale."""
        return symexp(self.reward(feat).squeeze(-1).float())

    def predict_cont(self, feat: torch.Tensor) -> torch.Tensor:
        """(..., F) -> probability (...) that the episode continues."""
        return torch.sigmoid(self.cont(feat).squeeze(-1).float())

    def decode_image(self, feat: torch.Tensor) -> torch.Tensor:
        """(..., F) -> the image mean (..., H, W, C); in [0, 1] with the sigmoid output, else
        clip it to show it (`image`)."""
        return self.decoder(feat).float()

    def image(self, feat: torch.Tensor) -> torch.Tensor:
        """(..., F) -> the decoded image (..., H, W, C) in [0, 1], for display."""
        return self.decode_image(feat).clamp(0.0, 1.0)

    def loss(self, data: dict[str, torch.Tensor]) -> tuple[torch.Tensor, State, dict[str, torch.Tensor]]:
        """data leaves (B, T, ...) -> (scalar loss, posterior states (B, T, ...), metrics)."""
        embed = self.embed(data)
        post, prior = self.rssm.observe(embed, data["action"], data["is_first"].bool())
        feat = self.feat(post)
        target = data["image"].float() / 255.0
        image_loss = ((self.decode_image(feat) - target) ** 2).sum((-3, -2, -1))
        reward_loss = (self.reward(feat).squeeze(-1).float() - symlog(data["reward"].float())) ** 2
        cont_target = 1.0 - data["is_terminal"].float()
        cont_loss = F.binary_cross_entropy_with_logits(self.cont(feat).squeeze(-1).float(), cont_target,
                                                       reduction="none")
        kl_loss, kl = kl_balanced(post["logits"], prior["logits"], self.cfg.kl_balance)
        loss = image_loss + reward_loss + cont_loss + self.kl_scale() * kl_loss
        metrics = {"image_loss": image_loss.mean(), "reward_loss": reward_loss.mean(),
                   "cont_loss": cont_loss.mean(), "kl": kl.mean(), "kl_scale": self.kl_scale().clone(),
                   "prior_entropy": OneHotDist(prior["logits"]).entropy().sum(-1).mean(),
                   "post_entropy": OneHotDist(post["logits"]).entropy().sum(-1).mean()}
        if self.vectors:
            vec = symlog(torch.cat([data[k].float() for k in self.vectors], -1))
            vec_loss = ((self.vec_decoder(feat).float() - vec) ** 2).sum(-1)
            loss = loss + vec_loss
            metrics["vector_loss"] = vec_loss.mean()
        metrics["model_loss"] = loss.mean()
        return loss.mean(), {k: v.detach() for k, v in post.items()}, metrics

    def after_update(self, metrics: dict[str, torch.Tensor], applied: torch.Tensor | bool = True) -> None:
        self.kl_scale.update(metrics["kl"], applied)

    @torch.no_grad()
    def open_loop(self, data: dict[str, torch.Tensor], context: int = 5) -> torch.Tensor:
        """Observe `context` frames, then predict the rest with the true actions.
        data leaves (B, T, ...) -> predicted images (B, T, H, W, C) in [0, 1]."""
        embed = self.embed({k: v[:, :context] for k, v in data.items()})
        post, _ = self.rssm.observe(embed, data["action"][:, :context], data["is_first"][:, :context].bool())
        recon = self.image(self.feat(post))
        state = {k: v[:, -1] for k, v in post.items()}
        feats = []
        for t in range(context, data["action"].shape[1]):
            state = self.rssm.img_step(state, data["action"][:, t], sample=False)
            feats.append(self.feat(state))
        return torch.cat([recon, self.image(torch.stack(feats, 1))], 1) if feats else recon
