"""The goal autoencoder of ALGORITHM.md §2.

It compresses a deter state h (..., D) into a code of `vars` one-hot categoricals with
`classes` classes each (paper: 8x8, 8^8 goals) and decodes a code back into a goal g (..., D),
a full deter vector. Its uniform prior lets the manager choose among codes; its
reconstruction error doubles as the exploration bonus.

With `goal.context` (the original code's `goal_decoder.inputs: [skill, context]`) both halves
also see a context, the deter h_t where the goal is chosen, and it learns the pairs
(h_t, h_{t+K}) of replay sequences: a code then names a state about K steps from where the
agent is, so every goal the manager can pick is one the worker can reach in its period, and
the bonus is the novelty of a state as a K-step successor of the context.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from director.config import GoalConfig
from director.nets import MLP, Adaptive, Concat, OneHotDist


class GoalAutoencoder(nn.Module):
    def __init__(self, cfg: GoalConfig, deter: int):
        super().__init__()
        self.cfg = cfg
        self.vars, self.classes = cfg.code_vars, cfg.code_classes
        self.context = cfg.context
        extra = deter if cfg.context else 0
        self.encoder = MLP(deter + extra, self.vars * self.classes, cfg.mlp_layers, cfg.mlp_units, out_scale=1.0)
        self.decoder = MLP(self.vars * self.classes + extra, deter, cfg.mlp_layers, cfg.mlp_units, out_scale=1.0)
        self.kl_scale = Adaptive(cfg.kl_scale, cfg.kl_target, 1e-5 if cfg.kl_scale else 0.0,
                                 1.0 if cfg.kl_scale else 0.0, increase_above=True)

    @property
    def code_size(self) -> int:
        return self.vars * self.classes

    def _inputs(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor | Concat:
        """x, or Concat(x, context) for a conditioned autoencoder (context (..., D))."""
        if not self.context:
            return x
        if context is None:
            raise ValueError("This goal autoencoder is conditioned on a context (goal.context=true): "
                             "pass the deter state (..., D) where the goal is chosen as `context`.")
        return Concat(x, context.to(x.dtype))

    def encode(self, deter: torch.Tensor, context: torch.Tensor | None = None) -> OneHotDist:
        """(..., D) [, context (..., D)] -> distribution over codes (..., vars, classes)."""
        logits = self.encoder(self._inputs(deter, context))
        return OneHotDist(logits.reshape(*logits.shape[:-1], self.vars, self.classes))

    def decode(self, code: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """code (..., vars * classes) or (..., vars, classes) [, context (..., D)] -> goal (..., D)."""
        if code.shape[-1] != self.code_size:
            code = code.flatten(-2)
        code = code.to(self.decoder.hidden[0][0].weight.dtype)
        return self.decoder(self._inputs(code, context)).float()

    def pairs(self, deter: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training targets from replay sequences deter (B, T, D): (goal (N, D), context (N, D)
        or None). Unconditioned: every state, no context. Conditioned: h_{t+K} with context h_t
        for every t < T - K of each sequence (the segment may cross an episode start, as in the
        original code)."""
        if not self.context:
            return deter.flatten(0, 1), None
        return deter[:, k:].flatten(0, 1), deter[:, :-k].flatten(0, 1)

    def prior_sample(self, shape: tuple[int, ...], device: torch.device | str) -> torch.Tensor:
        """Uniform random codes (*shape, vars * classes)."""
        index = torch.randint(self.classes, (*shape, self.vars), device=device)
        return nn.functional.one_hot(index, self.classes).float().flatten(-2)

    def loss(self, deter: torch.Tensor, context: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """deter (N, D) [, context (N, D)], stop-gradient -> (scalar loss, metrics).
        Loss per state: |dec(z) - h|^2 summed over dims + beta_g * KL(q(z|h) || uniform)."""
        deter = deter.detach()
        context = context.detach() if context is not None else None
        dist = self.encode(deter, context)
        recon = self.decode(dist.sample(), context)
        rec = ((recon - deter) ** 2).sum(-1)
        kl = (dist.probs * (dist.logits + math.log(self.classes))).sum(-1).sum(-1)
        loss = (rec + self.kl_scale() * kl).mean()
        return loss, {"goal_rec": rec.mean().detach(), "goal_kl": kl.mean().detach(),
                      "goal_kl_scale": self.kl_scale().clone(), "goal_loss": loss.detach()}

    def after_update(self, metrics: dict[str, torch.Tensor], applied: torch.Tensor | bool = True) -> None:
        if self.cfg.kl_scale:
            self.kl_scale.update(metrics["goal_kl"], applied)

    @torch.no_grad()
    def exploration_reward(self, deter: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Novelty of a state: mean over dims of (dec(enc(h)) - h)^2 with a sampled code;
        (..., D) [, context (..., D)] -> (...)."""
        recon = self.decode(self.encode(deter, context).sample(), context)
        return ((recon - deter.float()) ** 2).mean(-1)
