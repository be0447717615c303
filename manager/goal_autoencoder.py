"""The goal autoencoder of ALGORITHM.md §2.

It compresses a deter state h (..., D) into a code of `vars` one-hot categoricals with
`classes` classes each (paper: 8x8, 8^8 goals) and decodes a code back into a goal g (..., D),
a full deter vector. Its uniform prior lets the manager choose among codes; its
reconstruction error doubles as the exploration bonus.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from director.config import GoalConfig
from director.nets import MLP, Adaptive, OneHotDist


class GoalAutoencoder(nn.Module):
    def __init__(self, cfg: GoalConfig, deter: int):
        super().__init__()
        self.cfg = cfg
        self.vars, self.classes = cfg.code_vars, cfg.code_classes
        self.encoder = MLP(deter, self.vars * self.classes, cfg.mlp_layers, cfg.mlp_units, out_scale=1.0)
        self.decoder = MLP(self.vars * self.classes, deter, cfg.mlp_layers, cfg.mlp_units, out_scale=1.0)
        self.kl_scale = Adaptive(cfg.kl_scale, cfg.kl_target, 1e-5 if cfg.kl_scale else 0.0,
                                 1.0 if cfg.kl_scale else 0.0, increase_above=True)

    @property
    def code_size(self) -> int:
        return self.vars * self.classes

    def encode(self, deter: torch.Tensor) -> OneHotDist:
        """(..., D) -> distribution over codes (..., vars, classes)."""
        logits = self.encoder(deter)
        return OneHotDist(logits.reshape(*logits.shape[:-1], self.vars, self.classes))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """code (..., vars * classes) or (..., vars, classes) -> goal (..., D)."""
        if code.shape[-1] != self.code_size:
            code = code.flatten(-2)
        return self.decoder(code.to(self.decoder.hidden[0][0].weight.dtype)).float()

    def prior_sample(self, shape: tuple[int, ...], device: torch.device | str) -> torch.Tensor:
        """Uniform random codes (*shape, vars * classes)."""
        index = torch.randint(self.classes, (*shape, self.vars), device=device)
        return nn.functional.one_hot(index, self.classes).float().flatten(-2)

    def loss(self, deter: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """deter (N, D), stop-gradient -> (scalar loss, metrics).
        Loss per state: |dec(z) - h|^2 summed over dims + beta_g * KL(q(z|h) || uniform)."""
        deter = deter.detach()
        dist = self.encode(deter)
        recon = self.decode(dist.sample())
        rec = ((recon - deter) ** 2).sum(-1)
        kl = (dist.probs * (dist.logits + math.log(self.classes))).sum(-1).sum(-1)
        loss = (rec + self.kl_scale() * kl).mean()
        return loss, {"goal_rec": rec.mean().detach(), "goal_kl": kl.mean().detach(),
                      "goal_kl_scale": self.kl_scale().clone(), "goal_loss": loss.detach()}

    def after_update(self, metrics: dict[str, torch.Tensor], applied: torch.Tensor | bool = True) -> None:
        if self.cfg.kl_scale:
            self.kl_scale.update(metrics["goal_kl"], applied)

    @torch.no_grad()
    def exploration_reward(self, deter: torch.Tensor) -> torch.Tensor:
        """Novelty of a state: mean over dims of (dec(enc(h)) - h)^2 with a sampled code;
        (..., D) -> (...)."""
        recon = self.decode(self.encode(deter).sample())
        return ((recon - deter.float()) ** 2).mean(-1)
