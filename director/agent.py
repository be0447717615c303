"""The agent: world model + goal autoencoder + manager + worker, composed (ALGORITHM.md §5, §7).

`Agent.loss(batch)` builds every loss of one update in a single graph in which each network
receives gradients only from its own loss; `Agent.update` is the one update step (backward,
clip, optimiser steps, statistics) without a host sync, used by `Agent.train_step` (plain
PyTorch) and by `DirectorModule.training_step` (through Lightning's backward and clipping).
`Agent.compile` compiles the loss and its backward. `Agent.policy` acts.

`cfg.agent` selects the assembly: `director` (the hierarchy), `dreamer` (flat baseline: one
actor-critic on the task reward) or `worldmodel` (world model only; acts randomly).
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Iterator

import torch
from torch import nn

from director.actor_critic import ActorCritic
from director.config import Config, OptimConfig
from director.nets import clip_straight_through, make_optimizer, skip_step
from director.world_model import State, WorldModel
from manager import GoalAutoencoder, Manager
from worker import Worker, max_cosine

Carry = dict[str, torch.Tensor]

# Inductor options of the compiled update on the CPU: a C++ wrapper calls the graph's kernels,
# and all kernels are built in one compiler call at -O3 (the Python wrapper builds one library
# per kernel). The wrapper itself is straight-line calls into kernels and ATen: it is built at
# -O0 without line tables, which cuts the C++ compiler's share of a cold `default` compile from
# about 88 to 48 s of CPU, the update as fast (README, "Speed").
CPU_COMPILE_OPTIONS = {"cpp_wrapper": True, "cpp_wrapper_build_separate": True,
                       "aot_inductor.compile_wrapper_opt_level": "O0",
                       "aot_inductor.enable_line_tables": False}


@contextlib.contextmanager
def frozen(module: nn.Module, *names: str) -> Iterator[None]:
    """Inside, the parameters of `module`'s submodules `names` are detached views: gradients
    flow through their activations (dynamics backprop reaches the actor) but never into
    them. Unlike toggling `requires_grad`, this compiles into one graph."""
    detached = {f"{name}.{key}": p.detach() for name in names
                for key, p in getattr(module, name).named_parameters()}
    with torch.nn.utils.stateless._reparametrize_module(module, detached):
        yield


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
        # goal.novelty: the exploration bonus's own, unconditioned autoencoder of states.
        self.novelty: GoalAutoencoder | None = None
        if cfg.agent == "director":
            self.goal_ae = GoalAutoencoder(cfg.goal, deter)
            if cfg.goal.novelty:
                self.novelty = GoalAutoencoder(dataclasses.replace(cfg.goal, context=False, novelty=False), deter)
            self.manager = Manager(cfg.manager, feat, cfg.goal.code_vars, cfg.goal.code_classes)
            self.worker = Worker(cfg.worker, feat, deter, policy_action)
        elif cfg.agent == "dreamer":
            self.actor = ActorCritic(feat, policy_action, {"extr": 1.0}, cfg.actor)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # applied updates
        self._loss: Callable | None = None  # the compiled loss, once `compile` ran

    # ------------------------------------------------------------------ optimisers
    def optim_groups(self) -> list[tuple[str, nn.Module, OptimConfig]]:
        """One optimiser each for: world model, goal autoencoder, each actor, each critic."""
        cfg = self.cfg
        groups = [("model", self.wm, cfg.model.opt)]
        learners: list[tuple[str, ActorCritic]] = []
        if cfg.agent == "director":
            groups.append(("goal", self.goal_ae, cfg.goal.opt))
            if self.novelty is not None:
                groups.append(("novelty", self.novelty, cfg.goal.opt))
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
        ends at this step, where period_end; 0 elsewhere).

        Every K steps of an episode (the phase resets at is_first) the manager samples a code
        (also in evaluation) and the goal autoencoder decodes it; the worker then samples an
        action (its mode when `mode="eval"`). In evaluation the policies are the actors' EMA
        averages where `actor_ema` keeps them; in training the last `train.greedy_envs` rows act
        the same way (`_draw`). Acting runs on the host's schedule, so the
        manager and decoder run only on steps where some env switches, `reached` only where
        a period ends."""
        n = obs["image"].shape[0]
        carry = carry if carry is not None else self.initial_carry(n)
        is_first = obs["is_first"].bool()
        greedy = n if mode == "eval" else min(self.cfg.train.greedy_envs, n)
        state = {k: carry[k] for k in ("deter", "stoch", "logits")}
        post = self.wm.rssm.obs_step(state, carry["action"], self.wm.embed(obs), is_first)
        feat = self.wm.feat(post)
        step = torch.where(is_first, torch.zeros_like(carry["step"]), carry["step"])
        info: dict[str, torch.Tensor] = {"step": step}
        new = {k: v for k, v in post.items()}
        if self.cfg.agent == "director":
            switch = step % self.goal_every == 0
            # A goal period that ran its K steps ends here: how close did the worker get?
            info["period_end"] = switch & (step > 0)
            info["reached"] = torch.zeros(n, device=feat.device)
            if info["period_end"].any():
                info["reached"] = torch.where(info["period_end"],
                                              max_cosine(post["deter"].float(), carry["goal"].float()), 0.0)
            code, goal = carry["code"], carry["goal"]
            if switch.any():
                code = torch.where(switch[:, None], self._draw(self.manager.ac, feat, greedy, False), code)
                goal = torch.where(switch[:, None], self.goal_ae.decode(code, post["deter"]), goal)
            action = self._draw(self.worker.ac, self.worker.inputs(feat, goal), greedy, True)
            new.update(code=code, goal=goal)
            info.update(code=code, goal=goal, switch=switch)
        elif self.cfg.agent == "dreamer":
            action = self._draw(self.actor, feat, greedy, True)
        else:
            index = torch.randint(self.action_size, (n,), device=feat.device)
            action = (nn.functional.one_hot(index, self.action_size).float() if self.discrete
                      else torch.rand(n, self.action_size, device=feat.device) * 2 - 1)
        action = action.detach().float()
        if not self.discrete:
            action = action.clamp(-1, 1)
        new.update(action=action, step=step + 1)
        return action, new, info

    @staticmethod
    def _draw(ac: ActorCritic, inputs: torch.Tensor, greedy: int, take_mode: bool) -> torch.Tensor:
        """inputs (N, F) -> actions (N, A). The first N - greedy rows sample the live actor; the
        last `greedy` rows act as evaluation does: the EMA actor where one is kept, its mode
        action if `take_mode` (the worker's and flat actor's), else a sample (the manager's)."""
        n = inputs.shape[0]
        parts = []
        if greedy < n:
            parts.append(ac.policy(inputs[:n - greedy]).sample())
        if greedy > 0:
            dist = ac.policy(inputs[n - greedy:], averaged=True)
            parts.append(dist.mode() if take_mode else dist.sample())
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    # ------------------------------------------------------------------ imagination
    def manager_rows(self, n: int) -> int:
        """Of N imagined rollouts, the first ones follow the manager's goals; the remaining
        `worker.replay_goals` fraction follow goals from replay and train only the worker."""
        return self.cfg.worker.manager_rows(n)

    def imagine(self, start: State, cont0: torch.Tensor) -> dict[str, torch.Tensor]:
        """Imagination for H = horizon steps from start leaves (N, ...), with the world model
        (and goal autoencoder) frozen. Returns leaves (N, H+1, ...): feat, deter, action
        (action t taken in s_t; the last is zeros), cont (cont_0 from the data) and the step
        rewards the learners read (index 0, the start state, is zero and unused): extr when a
        critic uses the task reward (its first `_extr_rows` rows: the manager rows alone when
        only the manager reads it), expl (manager rows only) when the manager's critic does.

        Director: the manager acts at t = 0, K, ..., H - K, the worker every step; also code
        and goal active in each state (zeros at s_H, where no goal is chosen). Rows from
        `manager_rows(N)` on take their codes from the goal autoencoder's encoding of other
        start states (replay goals) instead. A conditioned goal autoencoder (`goal.context`)
        decodes each code relative to the deter where it is chosen, and scores the bonus of s_t
        against that deter. Flat baseline: its one actor every step.

        A discrete policy learns by REINFORCE: the rollout is built without gradients. A
        continuous one learns through the dynamics: gradients flow through the frozen models'
        activations into its actions, which are clipped to [-1, 1] with straight-through
        gradients; its inputs are stop-gradient."""
        cfg, k, horizon = self.cfg, self.goal_every, self.cfg.imag_horizon
        director, backprop = cfg.agent == "director", not self.discrete
        n = start["deter"].shape[0]
        m = self.manager_rows(n) if director else n
        feats, deters, actions, codes, goals, contexts = [], [], [], [], [], []
        conditioned = director and self.goal_ae.context
        state = start
        grad = backprop and torch.is_grad_enabled()
        with torch.set_grad_enabled(grad), frozen(self, *self._frozen_models()) if grad else contextlib.nullcontext():
            for t in range(horizon + 1):
                feat = self.wm.feat(state)
                feats.append(feat)
                deters.append(state["deter"])
                if t == horizon:
                    break
                if director:
                    if t % k == 0:
                        context = state["deter"].detach() if conditioned else None
                        code = self.manager.ac.policy(feat[:m].detach()).sample().detach()
                        if m < n:
                            other = start["deter"][torch.randint(n, (n - m,), device=feat.device)]
                            own = context[m:] if conditioned else None
                            code = torch.cat([code, self.goal_ae.encode(other, own).sample().detach().flatten(-2)])
                        goal = self.goal_ae.decode(code, context).detach()
                    if conditioned:
                        contexts.append(context)
                    codes.append(code)
                    goals.append(goal)
                    # Policy inputs are stop-gradient (ALGORITHM.md §4): a continuous actor
                    # learns through the dynamics from its actions, not through its own inputs.
                    dist = self.worker.ac.policy(self.worker.inputs(feat.detach(), goal))
                else:
                    dist = self.actor.policy(feat.detach())
                action = dist.sample()
                if backprop:
                    action = clip_straight_through(action)
                actions.append(action)
                state = self.wm.rssm.img_step(state, action)
            actions.append(torch.zeros_like(actions[-1]))
            feat, deter = torch.stack(feats, 1), torch.stack(deters, 1)
            traj = {"feat": feat, "deter": deter, "action": torch.stack(actions, 1)}
            if director:
                traj["code"] = torch.stack(codes + [torch.zeros_like(code)], 1)
                traj["goal"] = torch.stack(goals + [torch.zeros_like(goal)], 1)
            zero = torch.zeros_like(feat[:, :1, 0])
            with torch.no_grad():
                traj["cont"] = torch.cat([cont0[:, None], self.wm.predict_cont(feat[:, 1:])], 1)
            readers = self._extr_rows(n, m)
            if readers:
                # A continuous policy learning from the task reward needs its gradient.
                with torch.set_grad_enabled(grad):
                    extr = self.wm.predict_reward(feat[:readers, 1:])
                traj["extr"] = torch.cat([zero[:readers], extr], 1)
            if director and "expl" in self.manager.ac.scales:
                with torch.no_grad():
                    context = torch.stack(contexts, 1)[:m] if conditioned else None
                    expl = self.exploration_bonus(deter[:m, 1:], context)
                traj["expl"] = torch.cat([zero[:m], expl], 1)
        return traj

    def exploration_bonus(self, deter: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The manager's exploration reward of states deter (..., D) -> (...): the goal
        autoencoder's reconstruction error (against `context` (..., D), the deter where the
        active goal was chosen, when it is conditioned), or with `goal.novelty` the error of
        the unconditioned autoencoder of states beside it (no context)."""
        if self.novelty is not None:
            return self.novelty.exploration_reward(deter)
        return self.goal_ae.exploration_reward(deter, context)

    def _frozen_models(self) -> tuple[str, ...]:
        if self.cfg.agent != "director":
            return ("wm",)
        return ("wm", "goal_ae") + (("novelty",) if self.novelty is not None else ())

    def _extr_rows(self, n: int, m: int) -> int:
        """How many imagined rows some critic reads the task reward of (0: none)."""
        if self.cfg.agent == "dreamer":
            return n
        if "extr" in self.worker.ac.scales:
            return n
        return m if "extr" in self.manager.ac.scales else 0

    # ------------------------------------------------------------------ learning
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """All losses of one update (ALGORITHM.md §5) as one scalar and (detached) metrics,
        including the statistics that `after_update` commits."""
        loss, post, metrics = self.wm.loss(batch)
        if self.cfg.agent != "worldmodel":
            start = {k: v.flatten(0, 1).detach() for k, v in post.items()}
            cont0 = 1.0 - batch["is_terminal"].flatten(0, 1).float()
            loss = loss + self._policy_loss(start, cont0, post["deter"].detach(), metrics)
        return loss, {k: v.detach() for k, v in metrics.items()}

    def _policy_loss(self, start: State, cont0: torch.Tensor, deter: torch.Tensor, metrics: dict) -> torch.Tensor:
        """start leaves (B*T, ...), cont0 (B*T,), deter (B, T, D) the posterior sequences."""
        if self.cfg.agent == "dreamer":
            traj = self.imagine(start, cont0)
            ac_loss, ac_metrics = self.actor.loss({**traj, "rewards": {"extr": traj["extr"][:, 1:]}})
            metrics.update({f"actor/{k}": v for k, v in ac_metrics.items()})
            return ac_loss
        goal_loss, goal_metrics = self.goal_ae.loss(*self.goal_ae.pairs(deter, self.goal_every))
        metrics.update(goal_metrics)
        if self.novelty is not None:  # every replay state, as the paper's goal autoencoder
            novelty_loss, novelty_metrics = self.novelty.loss(deter.flatten(0, 1))
            goal_loss = goal_loss + novelty_loss
            metrics.update({f"novelty/{k}": v for k, v in novelty_metrics.items()})
        traj = self.imagine(start, cont0)
        worker_loss, worker_metrics = self.worker.ac.loss(self.worker.segments(traj, self.goal_every))
        m = self.manager_rows(traj["feat"].shape[0])
        manager_traj = self.manager.abstract_trajectory({k: v[:m] for k, v in traj.items()})
        manager_loss, manager_metrics = self.manager.ac.loss(manager_traj)
        metrics.update({f"worker/{k}": v for k, v in worker_metrics.items()})
        metrics.update({f"manager/{k}": v for k, v in manager_metrics.items()})
        # How close the worker gets to each goal by the end of its period: max-cosine whatever
        # worker.goal_reward trains on, so that the 0.7 threshold of goal_summary and goal_vis holds.
        idx = torch.arange(self.goal_every, traj["deter"].shape[1], self.goal_every, device=cont0.device)
        reached = max_cosine(traj["deter"][:, idx].float(), traj["goal"][:, idx - 1].float())
        metrics["imag_goal_reached"] = reached.mean()
        return goal_loss + worker_loss + manager_loss

    @torch.no_grad()
    def after_update(self, metrics: dict[str, torch.Tensor], applied: torch.Tensor | bool = True) -> None:
        """Commit the update's statistics (adaptive coefficients, normalisers, slow critics,
        counters) where the device flag `applied` is true; no host sync."""
        applied = torch.as_tensor(applied, device=self.updates.device)
        self.wm.after_update(metrics, applied)
        if self.cfg.agent == "director":
            self.goal_ae.after_update(metrics, applied)
            if self.novelty is not None:
                self.novelty.after_update(_section(metrics, "novelty/"), applied)
            self.worker.ac.after_update(_section(metrics, "worker/"), applied)
            self.manager.ac.after_update(_section(metrics, "manager/"), applied)
        elif self.cfg.agent == "dreamer":
            self.actor.after_update(_section(metrics, "actor/"), applied)
        self.updates.add_(applied.long())

    def compile(self, mode: str = "default") -> None:  # type: ignore[override]
        """Compile the loss (one graph: `fullgraph=True`) and, through AOTAutograd, its
        backward with torch.compile (inductor). `mode` is torch.compile's: "default",
        "reduce-overhead" (CUDA graphs), "max-autotune", ...

        On the CPU the default mode generates a C++ wrapper (`CPU_COMPILE_OPTIONS`): the
        graph's hundreds of kernel calls run from C++ instead of Python, and all its kernels
        are built by one compiler call instead of one each."""
        if mode == "default" and self.updates.device.type == "cpu":
            self._loss = torch.compile(self.loss, fullgraph=True, dynamic=False, options=CPU_COMPILE_OPTIONS)
        else:
            self._loss = torch.compile(self.loss, fullgraph=True, dynamic=False, mode=mode)

    def update(self, batch: dict[str, torch.Tensor], optimizers: list[torch.optim.Optimizer],
               backward: Callable[[torch.Tensor], None] | None = None,
               clip: Callable[[torch.optim.Optimizer, nn.Module, float], torch.Tensor] | None = None,
               ) -> dict[str, torch.Tensor]:
        """The one update step: loss, backward, per-network gradient clip and optimiser step,
        then `after_update`. Returns device metrics with `loss` and `applied` (0 where the loss
        was not finite: then parameters, AdamW moments and steps, normalisers, adaptive scales
        and counters stay bit-identical). No host sync.

        `backward(loss)` and `clip(optimizer, module, max_norm) -> norm` default to plain
        PyTorch; `DirectorModule` passes Lightning's `manual_backward` and a clip through its
        precision plugin, so precision plugins and DDP apply."""
        loss, metrics = (self._loss or self.loss)(batch)
        applied = torch.isfinite(loss)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        if loss.requires_grad:
            (backward or torch.Tensor.backward)(loss)
        for (name, module, ocfg), opt in zip(self.optim_groups(), optimizers):
            metrics[f"grad_norm/{name}"] = (clip or _clip)(opt, module, ocfg.clip)
            skip_step(opt, ~applied)
            opt.step()
        self.after_update(metrics, applied)
        metrics.update(loss=loss.detach(), applied=applied.float())
        return metrics

    def train_step(self, batch: dict[str, torch.Tensor], optimizers: list[torch.optim.Optimizer]) -> dict[str, float]:
        """`update` with plain PyTorch, metrics as floats; `skipped` is 1 for a non-finite loss."""
        out = {k: float(v) for k, v in self.update(batch, optimizers).items()}
        out["skipped"] = 1.0 - out.pop("applied")
        return out

    # ------------------------------------------------------------------ reports
    @torch.no_grad()
    def report(self, batch: dict[str, torch.Tensor], context: int = 5) -> dict[str, torch.Tensor]:
        """Open-loop prediction of the world model: {"openloop": (B, T, H, W, C) in [0, 1],
        "truth": same}."""
        pred = self.wm.open_loop(batch, context)
        return {"openloop": pred, "truth": batch["image"].float() / 255.0}


def _section(metrics: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The metrics of one learner, without its prefix ("worker/entropy" -> "entropy")."""
    return {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}


def _clip(optimizer: torch.optim.Optimizer, module: nn.Module, max_norm: float) -> torch.Tensor:
    return torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm, foreach=True)
