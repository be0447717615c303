"""The agent: world model + goal autoencoder + manager + worker, composed (ALGORITHM.md §5, §7).

`Agent.loss(batch)` builds every loss of one update in a single graph in which each network
receives gradients only from its own loss; `Agent.train(batch)` steps the optimisers itself
(plain PyTorch), while `DirectorModule` steps them through Lightning. `Agent.policy` acts.

`cfg.agent` selects the assembly: `director` (the hierarchy), `dreamer` (flat baseline: one
actor-critic on the task reward) or `worldmodel` (world model only; acts randomly).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from director.actor_critic import ActorCritic
from director.config import Config, OptimConfig
from director.nets import make_optimizer
from director.world_model import State, WorldModel
from manager import GoalAutoencoder, Manager
from worker import Worker

Carry = dict[str, torch.Tensor]


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Run modules without recording gradients for their parameters; gradients still flow
    through their activations (dynamics backprop reaches the actor, not the world model)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class Agent(nn.Module):
    """obs/batch dicts: image uint8 (..., H, W, C), action (..., A), reward, is_first,
    is_last, is_terminal (...)."""

    def __init__(self, cfg: Config, image_shape: tuple[int, int, int], action: tuple,
                 vectors: dict[str, int] | None = None):
        """`action`: ("discrete", n) or ("continuous", n)."""
        super().__init__()
        self.cfg = cfg
        self.discrete = action[0] == "discrete"
        self.action_size = action[1]
        self.wm = WorldModel(cfg.model, image_shape, self.action_size, vectors)
        policy_action = ("discrete", 1, action[1]) if self.discrete else ("continuous", action[1])
        feat, deter = self.wm.feat_size, cfg.model.rssm.deter
        self.goal_every = cfg.manager.goal_every
        if cfg.agent == "director":
            self.goal_ae = GoalAutoencoder(cfg.goal, deter)
            self.manager = Manager(cfg.manager, feat, cfg.goal.code_vars, cfg.goal.code_classes)
            self.worker = Worker(cfg.worker, feat, deter, policy_action)
        elif cfg.agent == "dreamer":
            self.actor = ActorCritic(feat, policy_action, {"extr": 1.0}, cfg.actor)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ optimisers
    def optim_groups(self) -> list[tuple[str, nn.Module, OptimConfig]]:
        """One optimiser each for: world model, goal autoencoder, each actor, each critic."""
        cfg = self.cfg
        groups = [("model", self.wm, cfg.model.opt)]
        learners: list[tuple[str, ActorCritic]] = []
        if cfg.agent == "director":
            groups.append(("goal", self.goal_ae, cfg.goal.opt))
            learners = [("worker", self.worker.ac), ("manager", self.manager.ac)]
        elif cfg.agent == "dreamer":
            learners = [("actor", self.actor)]
        for name, ac in learners:
            groups.append((f"{name}_actor", ac.actor, ac.cfg.actor_opt))
            for critic, net in ac.critics.items():
                groups.append((f"{name}_critic_{critic}", net, ac.cfg.critic_opt))
        return groups

    def make_optimizers(self) -> list[torch.optim.Optimizer]:
        return [make_optimizer(m, c.lr, c.eps, c.weight_decay) for _, m, c in self.optim_groups()]

    # ------------------------------------------------------------------ acting
    def initial_carry(self, batch: int) -> Carry:
        device = self.wm.rssm.init_deter.device
        state = self.wm.rssm.initial(batch)
        carry = {k: v.detach().clone() for k, v in state.items()}
        carry["action"] = torch.zeros(batch, self.action_size, device=device)
        carry["step"] = torch.zeros(batch, dtype=torch.long, device=device)
        if self.cfg.agent == "director":
            carry["code"] = torch.zeros(batch, self.goal_ae.code_size, device=device)
            carry["goal"] = torch.zeros(batch, self.cfg.model.rssm.deter, device=device)
        return carry

    @torch.no_grad()
    def policy(self, obs: dict[str, torch.Tensor], carry: Carry | None = None,
               mode: str = "train") -> tuple[torch.Tensor, Carry, dict[str, torch.Tensor]]:
        """obs leaves (N, ...) -> action (N, A), new carry, info {code, goal, step, switch,
        period_end, reached} (reached: max-cosine of the state to the goal of the period that
        ends at this step, where period_end).

        Every K steps of an episode (the phase resets at is_first) the manager samples a code
        (also in evaluation) and the goal autoencoder decodes it; the worker then samples an
        action (its mode when `mode="eval"`)."""
        n = obs["image"].shape[0]
        carry = carry if carry is not None else self.initial_carry(n)
        is_first = obs["is_first"].bool()
        state = {k: carry[k] for k in ("deter", "stoch", "logits")}
        post, _ = self.wm.rssm.obs_step(state, carry["action"], self.wm.embed(obs), is_first)
        feat = self.wm.feat(post)
        step = torch.where(is_first, torch.zeros_like(carry["step"]), carry["step"])
        info: dict[str, torch.Tensor] = {"step": step}
        new = {k: v for k, v in post.items()}
        if self.cfg.agent == "director":
            switch = (step % self.goal_every == 0)[:, None]
            # A goal period that ran its K steps ends here: how close did the worker get?
            info["period_end"] = switch[:, 0] & (step > 0)
            info["reached"] = self.worker.goal_reward(post["deter"], carry["goal"])
            code = torch.where(switch, self.manager.ac.policy(feat).sample(), carry["code"])
            goal = torch.where(switch, self.goal_ae.decode(code), carry["goal"])
            dist = self.worker.ac.policy(self.worker.inputs(feat, goal))
            new.update(code=code, goal=goal)
            info.update(code=code, goal=goal, switch=switch[:, 0])
        elif self.cfg.agent == "dreamer":
            dist = self.actor.policy(feat)
        else:
            dist = None
        if dist is None:
            index = torch.randint(self.action_size, (n,), device=feat.device)
            action = (nn.functional.one_hot(index, self.action_size).float() if self.discrete
                      else torch.rand(n, self.action_size, device=feat.device) * 2 - 1)
        else:
            action = dist.mode() if mode == "eval" else dist.sample()
        action = action.detach().float()
        if not self.discrete:
            action = action.clamp(-1, 1)
        new.update(action=action, step=step + 1)
        return action, new, info

    # ------------------------------------------------------------------ imagination
    def manager_rows(self, n: int) -> int:
        """Of N imagined rollouts, the first ones follow the manager's goals; the remaining
        `worker.replay_goals` fraction follow goals from replay and train only the worker."""
        return n - int(round(self.cfg.worker.replay_goals * n))

    def imagine(self, start: State, cont0: torch.Tensor) -> dict[str, torch.Tensor]:
        """Joint imagination for H = horizon steps from start leaves (N, ...): the manager
        acts at t = 0, K, ..., the worker every step. Returns leaves (N, H+1, ...):
        feat, deter, code, goal, action, cont (cont_0 from the data), extr, expl
        (step rewards, index 0 unused). Rows from `manager_rows(N)` on take their codes from
        the goal autoencoder's encoding of other start states (replay goals) instead."""
        cfg, k = self.cfg, self.goal_every
        horizon = cfg.imag_horizon
        feats, codes, goals, actions, deters = [], [], [], [], []
        state = start
        n = start["deter"].shape[0]
        m = self.manager_rows(n)
        backprop = not self.discrete  # continuous worker: gradients through the dynamics
        with frozen(self.wm, self.goal_ae):
            for t in range(horizon + 1):
                feat = self.wm.feat(state)
                if t % k == 0:
                    code = self.manager.ac.policy(feat[:m].detach()).sample().detach()
                    if m < n:
                        other = start["deter"][torch.randint(n, (n - m,), device=feat.device)]
                        code = torch.cat([code, self.goal_ae.encode(other).sample().detach().flatten(-2)])
                    goal = self.goal_ae.decode(code).detach()
                feats.append(feat)
                deters.append(state["deter"])
                codes.append(code)
                goals.append(goal)
                if t == horizon:
                    break
                wfeat = self.worker.inputs(feat if backprop else feat.detach(), goal)
                action = self.worker.ac.policy(wfeat).sample()
                action = action if backprop else action.detach()
                actions.append(action)
                state = self.wm.rssm.img_step(state, action)
            actions.append(torch.zeros_like(actions[-1]))
            feat = torch.stack(feats, 1)
            deter = torch.stack(deters, 1)
            # A continuous worker learns by backprop through the frozen model: its task reward
            # (the `worker.extr` ablation) must stay differentiable with respect to its actions.
            with torch.set_grad_enabled(backprop and torch.is_grad_enabled()):
                extr = self.wm.predict_reward(feat)
            with torch.no_grad():
                expl = self.goal_ae.exploration_reward(deter)
            cont = self.wm.predict_cont(feat)
            cont = torch.cat([cont0[:, None], cont[:, 1:]], 1)
        return {"feat": feat, "deter": deter, "code": torch.stack(codes, 1), "goal": torch.stack(goals, 1),
                "action": torch.stack(actions, 1), "cont": cont.detach(), "extr": extr, "expl": expl}

    def imagine_flat(self, start: State, cont0: torch.Tensor) -> dict:
        """Flat baseline: one actor for H steps; trajectory for its ActorCritic."""
        horizon, backprop = self.cfg.imag_horizon, not self.discrete
        with frozen(self.wm):
            policy = lambda s: self.actor.policy(  # noqa: E731
                self.wm.feat(s) if backprop else self.wm.feat(s).detach()).sample()
            states, action = self.wm.imagine(policy, start, horizon)
            feat = self.wm.feat(states)
            # Continuous actors learn by backprop through the frozen model: the predicted reward
            # must stay differentiable with respect to the actions.
            with torch.set_grad_enabled(backprop and torch.is_grad_enabled()):
                extr = self.wm.predict_reward(feat)
            cont = torch.cat([cont0[:, None], self.wm.predict_cont(feat)[:, 1:]], 1).detach()
        if not backprop:
            feat, action = feat.detach(), action.detach()
        return {"feat": feat, "action": action, "rewards": {"extr": extr[:, 1:]}, "cont": cont}

    # ------------------------------------------------------------------ learning
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """All losses of one update (ALGORITHM.md §5) as one scalar and metrics."""
        loss, post, metrics = self.wm.loss(batch)
        if self.cfg.agent == "worldmodel":
            return loss, metrics
        start = {k: v.flatten(0, 1).detach() for k, v in post.items()}
        cont0 = 1.0 - batch["is_terminal"].flatten(0, 1).float()
        if self.cfg.agent == "dreamer":
            ac_loss, ac_metrics = self.actor.loss(self.imagine_flat(start, cont0))
            metrics.update({f"actor/{k}": v for k, v in ac_metrics.items()})
            return loss + ac_loss, metrics
        goal_loss, goal_metrics = self.goal_ae.loss(start["deter"])
        metrics.update(goal_metrics)
        traj = self.imagine(start, cont0)
        worker_loss, worker_metrics = self.worker.ac.loss(self.worker.segments(traj, self.goal_every))
        m = self.manager_rows(traj["feat"].shape[0])
        manager_traj = self.manager.abstract_trajectory({k: v[:m] for k, v in traj.items()})
        manager_loss, manager_metrics = self.manager.ac.loss(manager_traj)
        metrics.update({f"worker/{k}": v for k, v in worker_metrics.items()})
        metrics.update({f"manager/{k}": v for k, v in manager_metrics.items()})
        # How close the worker gets to each goal by the end of its period (max-cosine).
        idx = torch.arange(self.goal_every, traj["deter"].shape[1], self.goal_every, device=loss.device)
        reached = self.worker.goal_reward(traj["deter"][:, idx], traj["goal"][:, idx - 1]).detach()
        metrics["imag_goal_reached"] = reached.mean()
        return loss + goal_loss + worker_loss + manager_loss, metrics

    @torch.no_grad()
    def after_update(self, metrics: dict[str, torch.Tensor]) -> None:
        """Adaptive coefficients and slow critics, once the optimisers have stepped."""
        self.wm.after_update(metrics)
        if self.cfg.agent == "director":
            self.goal_ae.after_update(metrics)
            self.worker.ac.after_update({k[7:]: v for k, v in metrics.items() if k.startswith("worker/")})
            self.manager.ac.after_update({k[8:]: v for k, v in metrics.items() if k.startswith("manager/")})
        elif self.cfg.agent == "dreamer":
            self.actor.after_update({k[6:]: v for k, v in metrics.items() if k.startswith("actor/")})
        self.updates += 1

    def train_step(self, batch: dict[str, torch.Tensor], optimizers: list[torch.optim.Optimizer]) -> dict[str, float]:
        """One update with plain PyTorch (no Trainer): backward, clip each group, step.
        Returns metrics as floats; a non-finite loss skips the update (`skipped`=1)."""
        loss, metrics = self.loss(batch)
        if not torch.isfinite(loss):
            return {"skipped": 1.0, "loss": float(loss.detach())}
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for (name, module, ocfg), opt in zip(self.optim_groups(), optimizers):
            norm = torch.nn.utils.clip_grad_norm_(module.parameters(), ocfg.clip)
            metrics[f"grad_norm/{name}"] = norm
            opt.step()
        self.after_update(metrics)
        out = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in metrics.items()}
        out["skipped"] = 0.0
        return out

    # ------------------------------------------------------------------ reports
    @torch.no_grad()
    def report(self, batch: dict[str, torch.Tensor], context: int = 5) -> dict[str, torch.Tensor]:
        """Open-loop prediction of the world model: {"openloop": (B, T, H, W, C) in [0, 1],
        "truth": same}."""
        pred = self.wm.open_loop(batch, context)
        return {"openloop": pred, "truth": batch["image"].float() / 255.0}
