"""The imagination actor-critic learner shared by manager, worker and flat baseline.

One actor and any number of named critics, each with its own reward, slow target critic,
TD(lambda) returns and return normalisation; the advantage is the weighted sum of the
critics' scores, normalised again (ALGORITHM.md §6). Discrete actors (one-hot over
`vars` categoricals) learn by REINFORCE, continuous actors by backpropagating the
return through the world model's dynamics. An adaptive entropy bonus steers the
normalised entropy toward a target.

A trajectory is a dict:
    feat     (N, T+1, F)  policy/critic inputs of states s_0..s_T (a tensor, or a `nets.Concat`
                          of parts, e.g. the worker's state features and held goal)
    action   (N, T+1, A)  action taken in each state (the last one is unused)
    rewards  {name: (N, T)}  reward r_{t+1} of each transition s_t -> s_{t+1}
    cont     (N, T+1)     probability that the episode continues at s_t
    weight0  (N,)         optional weight of s_0 (defaults to cont_0)
    replay   (N,)         optional: 1 where s_0 is a replay state, 0 where it was imagined
                          (worker segments after the first); defaults to all ones
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from director.config import ActorCriticConfig
from director.nets import MLP, Adaptive, Normalizer, OneHotDist, symexp, symlog

MIN_STD, MAX_STD = 0.03, 1.0


def lambda_return(reward: torch.Tensor, value: torch.Tensor, cont: torch.Tensor,
                  discount: float, lambda_: float) -> torch.Tensor:
    """TD(lambda): reward (N, T), value (N, T+1), cont (N, T+1) -> returns (N, T) for s_0..s_{T-1}.
    R_T = v_T; R_t = r_{t+1} + gamma * c_{t+1} * ((1 - lambda) * v_{t+1} + lambda * R_{t+1})."""
    returns, last = [], value[:, -1]
    for t in reversed(range(reward.shape[1])):
        last = reward[:, t] + discount * cont[:, t + 1] * ((1 - lambda_) * value[:, t + 1] + lambda_ * last)
        returns.append(last)
    return torch.stack(returns[::-1], 1)


class GaussianPolicy:
    """Normal with mean tanh(out) and std in [0.03, 1] per action dimension."""

    def __init__(self, out: torch.Tensor):
        mean, std = out.float().chunk(2, -1)
        self.mean = torch.tanh(mean)
        self.std = MIN_STD + (MAX_STD - MIN_STD) * torch.sigmoid(std + 2.0)
        # No argument validation: a non-finite batch must give a non-finite loss (skipped), not raise.
        self.dist = torch.distributions.Normal(self.mean, self.std, validate_args=False)

    def sample(self) -> torch.Tensor:
        return self.dist.rsample()

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.dist.log_prob(x).sum(-1)

    def normalized_entropy(self) -> torch.Tensor:
        low, high = math.log(MIN_STD), math.log(MAX_STD)
        return ((torch.log(self.std) - low) / (high - low)).mean(-1)


class CategoricalPolicy:
    """`vars` one-hot categoricals over `classes`, flat actions (..., vars * classes)."""

    def __init__(self, out: torch.Tensor, vars_: int, classes: int, unimix: float):
        self.shape = (vars_, classes)
        self.dist = OneHotDist(out.reshape(*out.shape[:-1], vars_, classes), unimix)

    def sample(self) -> torch.Tensor:
        return self.dist.sample().flatten(-2)

    def mode(self) -> torch.Tensor:
        return self.dist.mode().flatten(-2)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.dist.log_prob(x.reshape(*x.shape[:-1], *self.shape)).sum(-1)

    def normalized_entropy(self) -> torch.Tensor:
        """Mean over variables of entropy / log(classes): (...)"""
        return (self.dist.entropy() / math.log(self.shape[1])).mean(-1)


class ActorCritic(nn.Module):
    """Actor + named critics trained on imagined trajectories.

    `action`: ("discrete", vars, classes) or ("continuous", size). `scales` maps each critic
    name to the weight of its score in the advantage; critics with weight 0 are not built.
    `min_stds` overrides `cfg.return_min_std`, the floor of a critic's return std, by name.
    """

    def __init__(self, feat_size: int, action: tuple, scales: dict[str, float], cfg: ActorCriticConfig,
                 min_stds: dict[str, float] | None = None):
        super().__init__()
        self.cfg = cfg
        self.discrete = action[0] == "discrete"
        self.action_shape = tuple(action[1:])
        out = action[1] * action[2] if self.discrete else 2 * action[1]
        self.actor = MLP(feat_size, out, cfg.mlp_layers, cfg.mlp_units, out_scale=1.0)
        # The evaluation actor: an EMA of the actor's weights (cfg.actor_ema), never trained.
        self.actor_ema = copy.deepcopy(self.actor).requires_grad_(False) if cfg.actor_ema > 0 else None
        self.scales = {k: float(v) for k, v in scales.items() if v}
        if not self.scales:
            raise ValueError("an actor-critic needs at least one critic with a non-zero weight")
        self.critics = nn.ModuleDict({k: MLP(feat_size, 1, cfg.mlp_layers, cfg.mlp_units, out_scale=0.0)
                                      for k in self.scales})
        self.slow_critics = copy.deepcopy(self.critics).requires_grad_(False)
        min_stds = min_stds or {}
        self.return_norms = nn.ModuleDict({k: Normalizer(cfg.return_decay, min_stds.get(k, cfg.return_min_std))
                                           for k in self.scales})
        self.advantage_norm = Normalizer(cfg.advantage_decay, 1e-8)
        self.entropy_scale = Adaptive(cfg.entropy_scale, cfg.entropy_target, 1e-5, cfg.entropy_max,
                                      increase_above=False, rate=cfg.entropy_rate)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def policy(self, feat: torch.Tensor, averaged: bool = False) -> CategoricalPolicy | GaussianPolicy:
        """feat (..., F) -> the action distribution; `averaged`: of the EMA actor, where one is kept."""
        out = (self.actor_ema if averaged and self.actor_ema is not None else self.actor)(feat)
        if self.discrete:
            return CategoricalPolicy(out, *self.action_shape, self.cfg.unimix)
        return GaussianPolicy(out)

    def value(self, name: str, feat: torch.Tensor, slow: bool = False) -> torch.Tensor:
        """(..., F) -> value (...) in the reward's scale (critics predict symlog values)."""
        net = (self.slow_critics if slow else self.critics)[name]
        return symexp(net(feat).squeeze(-1).float())

    def loss(self, traj: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Critic and actor losses of one trajectory batch (see module docstring)."""
        cfg, feat, cont = self.cfg, traj["feat"], traj["cont"].float()
        weight0 = traj.get("weight0", None)
        # w_t = w_0 * prod_{1 <= j <= t} (gamma * c_j): later states count less and not after an end.
        cum = torch.cumprod(cfg.discount * cont[:, 1:], 1)
        w0 = cont[:, 0] if weight0 is None else weight0
        weight = (w0[:, None] * torch.cat([torch.ones_like(cum[:, :1]), cum], 1)).detach()
        metrics: dict[str, torch.Tensor] = {}
        critic_loss, advantage = 0.0, 0.0
        sg_feat = feat.detach()
        for name, scale in self.scales.items():
            reward = traj["rewards"][name].float()
            slow_value = self.value(name, feat, slow=True)  # gradients flow only for dynamics backprop
            ret = lambda_return(reward, slow_value, cont, cfg.discount, cfg.lambda_)
            pred = self.critics[name](sg_feat[:, :-1]).squeeze(-1).float()
            critic_loss = critic_loss + (weight[:, :-1] * (pred - symlog(ret.detach())) ** 2).mean()
            # Return statistics of this batch; `after_update` commits them to the normaliser.
            norm = self.return_norms[name]
            ret_mean, ret_sqr = ret.detach().mean(), (ret.detach() ** 2).mean()
            std = norm.std(*norm.next(ret_mean, ret_sqr))
            # The baseline never carries gradients; for backprop actors the return does.
            score = (ret - slow_value[:, :-1].detach()) / std
            advantage = advantage + scale * score
            metrics[f"{name}_reward"] = reward.mean()
            metrics[f"{name}_return"] = ret_mean
            metrics[f"{name}_return_sqr"] = ret_sqr
            metrics[f"{name}_return_std"] = std
        if cfg.advantage_norm:
            # Note: this also scales pure noise up to unit size when no critic sees any reward.
            adv = advantage.detach()
            metrics["advantage_mean"], metrics["advantage_sqr"] = adv.mean(), (adv ** 2).mean()
            mean, sqr = self.advantage_norm.next(metrics["advantage_mean"], metrics["advantage_sqr"])
            metrics["advantage_std"] = self.advantage_norm.std(mean, sqr)
            advantage = (advantage - mean) / metrics["advantage_std"]
        policy = self.policy(sg_feat[:, :-1])
        entropy = policy.normalized_entropy()
        if self.discrete:
            objective = policy.log_prob(traj["action"][:, :-1].detach()) * advantage.detach()
        else:
            objective = advantage
        actor_loss = -(weight[:, :-1] * (objective + self.entropy_scale() * entropy)).mean()
        if cfg.entropy_states == "all":
            adapt_on = entropy.mean()
        elif "replay" in traj:  # the entropy at replay states only, where the agent acts
            replay = traj["replay"].float()
            adapt_on = (entropy[:, 0] * replay).sum() / replay.sum()
        else:
            adapt_on = entropy[:, 0].mean()
        metrics.update(critic_loss=critic_loss.detach(), actor_loss=actor_loss.detach(),
                       entropy=adapt_on.detach(), entropy_all=entropy.mean().detach(), entropy_scale=self.entropy_scale().clone())
        return critic_loss + actor_loss, metrics

    @torch.no_grad()
    def after_update(self, metrics: dict[str, torch.Tensor], applied: torch.Tensor | bool = True) -> None:
        """Commit this update's statistics (return and advantage normalisers, entropy
        coefficient), hard-copy critics into slow critics every `slow_every` applied updates
        and move the EMA actor toward the actor; all only where `applied` (device flag, no
        host sync). Runs after the optimiser step."""
        applied = torch.as_tensor(applied, device=self.updates.device)
        self.entropy_scale.update(metrics["entropy"], applied)
        for name, norm in self.return_norms.items():
            norm.update(metrics[f"{name}_return"], metrics[f"{name}_return_sqr"], applied)
        if self.cfg.advantage_norm:
            self.advantage_norm.update(metrics["advantage_mean"], metrics["advantage_sqr"], applied)
        copy = applied & (self.updates % self.cfg.slow_every == 0)
        for slow, fast in zip(self.slow_critics.parameters(), self.critics.parameters()):
            slow.copy_(torch.where(copy, fast, slow))
        if self.actor_ema is not None:
            for avg, live in zip(self.actor_ema.parameters(), self.actor.parameters()):
                avg.copy_(torch.where(applied, avg.lerp(live, 1.0 - self.cfg.actor_ema), avg))
        self.updates.add_(applied.long())
