"""Tests for director.agent on the debug preset: gradient isolation between the networks,
the worker's blindness to the task reward, the goal phase of acting, the joint imagination,
train_step for every assembly and action kind, and skipping non-finite batches (ALGORITHM.md §5, §7)."""
from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
from torch.nn import functional as F

from director import config as config_lib
from director.agent import Agent
from director.errors import ConfigError
from director.module import compile_unavailable
from worker import max_cosine

# Two shared cores: OpenMP threads spin against other processes and run ~40x slower.
torch.set_num_threads(1)

SIZE = 16


def make_agent(agent: str = "director", action=("discrete", 5), overrides=(), seed: int = 0) -> Agent:
    cfg = config_lib.load("debug", [f"agent={agent}", *overrides])
    torch.manual_seed(seed)
    return Agent(cfg, (SIZE, SIZE, 3), action)


def make_batch(agent: Agent, seed: int = 0) -> dict[str, torch.Tensor]:
    b, t = agent.cfg.replay.batch, agent.cfg.replay.length
    g = torch.Generator().manual_seed(seed)
    if agent.discrete:
        action = F.one_hot(torch.randint(0, agent.action_size, (b, t), generator=g), agent.action_size).float()
    else:
        action = torch.rand(b, t, agent.action_size, generator=g) * 2 - 1
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    is_terminal = torch.zeros(b, t, dtype=torch.bool)
    is_terminal[0, -1] = True
    is_last = is_terminal.clone()
    is_last[1, -1] = True  # a time-limit end: last but not terminal, its value is bootstrapped
    return {
        "image": torch.randint(0, 256, (b, t, SIZE, SIZE, 3), dtype=torch.uint8, generator=g),
        "action": action,
        "reward": torch.randn(b, t, generator=g),
        "is_first": is_first,
        "is_last": is_last,
        "is_terminal": is_terminal,
    }


def spy(monkeypatch, obj, name: str, store: dict, key: str):
    """Wrap obj.name to record its arguments and result in store[key]."""
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        store[key] = {"args": args, "out": out}
        return out

    monkeypatch.setattr(obj, name, wrapper)


def grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad for p in module.parameters() if p.grad is not None and p.grad.abs().sum() > 0]


def losses_of_one_update(agent: Agent, monkeypatch, seed: int = 0) -> dict:
    store: dict = {}
    if agent.cfg.agent == "director":
        spy(monkeypatch, agent.worker.ac, "loss", store, "worker")
        spy(monkeypatch, agent.manager.ac, "loss", store, "manager")
        spy(monkeypatch, agent.goal_ae, "loss", store, "goal")
    elif agent.cfg.agent == "dreamer":
        spy(monkeypatch, agent.actor, "loss", store, "actor")
    spy(monkeypatch, agent.wm, "loss", store, "model")
    torch.manual_seed(seed)
    agent.loss(make_batch(agent))
    return store


# ---------------------------------------------------------------------------- gradient isolation
def test_worker_loss_reaches_only_the_worker(monkeypatch):
    agent = make_agent()
    store = losses_of_one_update(agent, monkeypatch)
    store["worker"]["out"][0].backward(retain_graph=True)
    for part in (agent.wm, agent.goal_ae, agent.manager):
        assert not grads(part), type(part).__name__
    assert grads(agent.worker.ac.actor) and grads(agent.worker.ac.critics)


def test_manager_loss_reaches_only_the_manager(monkeypatch):
    agent = make_agent()
    store = losses_of_one_update(agent, monkeypatch)
    store["manager"]["out"][0].backward(retain_graph=True)
    for part in (agent.wm, agent.goal_ae, agent.worker):
        assert not grads(part), type(part).__name__
    assert grads(agent.manager.ac.actor) and grads(agent.manager.ac.critics["extr"])
    assert grads(agent.manager.ac.critics["expl"])


def test_goal_and_model_losses_reach_only_their_networks(monkeypatch):
    agent = make_agent()
    store = losses_of_one_update(agent, monkeypatch)
    store["goal"]["out"][0].backward(retain_graph=True)
    assert grads(agent.goal_ae) and not grads(agent.wm)
    assert not grads(agent.manager) and not grads(agent.worker)
    agent.zero_grad(set_to_none=True)
    store["model"]["out"][0].backward(retain_graph=True)
    assert grads(agent.wm.encoder) and grads(agent.wm.rssm) and grads(agent.wm.decoder)
    assert grads(agent.wm.reward) and grads(agent.wm.cont)
    assert not grads(agent.goal_ae) and not grads(agent.manager) and not grads(agent.worker)


# ---------------------------------------------------------------------------- worker reward
def test_worker_never_trains_on_the_task_reward(monkeypatch):
    agent = make_agent(overrides=["worker.extr=0"])
    store = losses_of_one_update(agent, monkeypatch, seed=3)
    traj = store["worker"]["args"][0]
    assert set(traj["rewards"]) == {"goal"}
    assert "extr" not in agent.worker.ac.critics
    worker_loss = float(store["worker"]["out"][0].detach())
    manager_loss = float(store["manager"]["out"][0].detach())
    # Change only the reward head: the worker's loss is bit-for-bit the same, the manager's not.
    with torch.no_grad():
        agent.wm.reward.out.bias.add_(3.0)
    store = losses_of_one_update(agent, monkeypatch, seed=3)
    assert float(store["worker"]["out"][0].detach()) == worker_loss
    assert float(store["manager"]["out"][0].detach()) != manager_loss


def test_worker_task_reward_ablation_adds_extr(monkeypatch):
    agent = make_agent(overrides=["worker.extr=0.5"])
    store = losses_of_one_update(agent, monkeypatch)
    assert set(store["worker"]["args"][0]["rewards"]) == {"goal", "extr"}


# ---------------------------------------------------------------------------- imagination
def test_imagination_holds_goals_for_k_steps_and_starts_from_data_cont(monkeypatch):
    agent = make_agent()
    store = losses_of_one_update(agent, monkeypatch)
    seg = store["worker"]["args"][0]
    abstract = store["manager"]["args"][0]
    k, h = agent.goal_every, agent.cfg.imag_horizon
    n = agent.cfg.replay.batch * agent.cfg.replay.length
    assert h == 2 * k
    assert seg["feat"].shape[:2] == (h // k * n, k + 1)
    assert abstract["feat"].shape[:2] == (n, h // k + 1)
    # Each segment's goal (the last D inputs) is constant over its K + 1 states.
    d = agent.cfg.model.rssm.deter
    goals = seg["feat"].dense()[..., -d:]
    torch.testing.assert_close(goals, goals[:, :1].expand_as(goals))
    # cont_0 is 1 - is_terminal of the data: batch row 0, last step is terminal; row 1 ends by
    # a time limit (is_last only), which continues.
    cont0 = abstract["cont"][:, 0]
    t = agent.cfg.replay.length
    assert float(cont0[t - 1]) == 0.0 and float(cont0[:t - 1].min()) == 1.0
    assert float(cont0[2 * t - 1]) == 1.0 and float(cont0[t:].min()) == 1.0


def test_goals_are_decoded_manager_codes():
    agent = make_agent()
    batch = make_batch(agent)
    with torch.no_grad():
        _, post, _ = agent.wm.loss(batch)
        start = {k: v.flatten(0, 1)[:6] for k, v in post.items()}
        traj = agent.imagine(start, torch.ones(6))
    k, h = agent.goal_every, agent.cfg.imag_horizon
    torch.testing.assert_close(traj["goal"][:, :h], agent.goal_ae.decode(traj["code"][:, :h]))
    for t in range(h):  # codes change only at t = 0, K
        torch.testing.assert_close(traj["code"][:, t], traj["code"][:, t - t % k])
    # No code is drawn at s_H, where no worker step follows: code and goal are zeros there.
    assert not traj["code"][:, h].any() and not traj["goal"][:, h].any()
    code = traj["code"][:, 0].reshape(6, agent.goal_ae.vars, agent.goal_ae.classes)
    torch.testing.assert_close(code.sum(-1), torch.ones(6, agent.goal_ae.vars))


def test_replay_goal_rows_train_only_the_worker(monkeypatch):
    agent = make_agent(overrides=["worker.replay_goals=0.25"])
    n = agent.cfg.replay.batch * agent.cfg.replay.length
    m = agent.manager_rows(n)
    assert m == n - round(0.25 * n) and 0 < m < n
    codes: list[torch.Tensor] = []
    encode = agent.goal_ae.encode

    def spy_encode(deter, context=None):  # the replay goals' codes, drawn from other start states
        dist = encode(deter, context)
        sample = dist.sample

        def record():
            codes.append(sample())
            return codes[-1]

        dist.sample = record
        return dist

    store: dict = {}
    monkeypatch.setattr(agent.goal_ae, "encode", spy_encode)
    spy(monkeypatch, agent, "imagine", store, "traj")
    store.update(losses_of_one_update(agent, monkeypatch))
    traj = store["traj"]["out"]
    k = agent.goal_every
    # The manager learns only from its own rows; the worker from every row's segments.
    assert store["manager"]["args"][0]["feat"].shape[0] == m
    assert store["worker"]["args"][0]["feat"].shape[0] == 2 * n
    # Replay rows follow the goal autoencoder's codes of start states, drawn anew at t = 0, K
    # only (none at t = H, where no worker acts on it).
    replay_codes = [c.flatten(-2) for c in codes if c.shape[0] == n - m]
    assert len(replay_codes) == 2
    torch.testing.assert_close(traj["code"][m:, 0], replay_codes[0])
    torch.testing.assert_close(traj["code"][m:, k], replay_codes[1])


def test_without_replay_goals_every_row_follows_the_manager(monkeypatch):
    agent = make_agent()
    n = agent.cfg.replay.batch * agent.cfg.replay.length
    assert agent.cfg.worker.replay_goals == 0.0 and agent.manager_rows(n) == n
    store = losses_of_one_update(agent, monkeypatch)
    assert store["manager"]["args"][0]["feat"].shape[0] == n


# ---------------------------------------------------------------------------- acting
class CountingCodes:
    """Stands in for the manager's policy: the i-th draw returns codes filled with i."""

    def __init__(self, code_size: int):
        self.code_size, self.draws = code_size, itertools.count(1)

    def __call__(self, feat, averaged=False):
        value, size = float(next(self.draws)), self.code_size

        class Dist:
            def sample(self):
                return torch.full((feat.shape[0], size), value)

        return Dist()


def test_policy_goal_phase_resets_on_is_first_and_holds_codes(monkeypatch):
    agent = make_agent()
    k = agent.goal_every
    assert k == 4
    monkeypatch.setattr(agent.manager.ac, "policy", CountingCodes(agent.goal_ae.code_size))
    g = torch.Generator().manual_seed(0)
    carry = None
    firsts = [[1, 1], [0, 0], [0, 0], [1, 0], [0, 0], [0, 0], [0, 0], [0, 0]]
    steps, codes, switches, ends = [], [], [], []
    for t, first in enumerate(firsts):
        obs = {"image": torch.randint(0, 256, (2, SIZE, SIZE, 3), dtype=torch.uint8, generator=g),
               "is_first": torch.tensor(first, dtype=torch.bool)}
        action, carry, info = agent.policy(obs, carry)
        assert action.shape == (2, 5)
        torch.testing.assert_close(action.sum(-1), torch.ones(2))
        steps.append(info["step"].tolist())
        codes.append(info["code"][:, 0].tolist())
        switches.append(info["switch"].tolist())
        ends.append(info["period_end"].tolist())
        torch.testing.assert_close(carry["goal"], agent.goal_ae.decode(carry["code"]))
        assert carry["step"].tolist() == [s + 1 for s in steps[-1]]
    # Row 0 restarts at t = 3 (mid-period): its phase goes back to 0 and it draws a new code.
    assert steps == [[0, 0], [1, 1], [2, 2], [0, 3], [1, 4], [2, 5], [3, 6], [4, 7]]
    assert switches == [[True, True], [False, False], [False, False], [True, False],
                        [False, True], [False, False], [False, False], [True, False]]
    # Codes are held between switches; the i-th call's draw is i, and the manager is called
    # only on steps where some env switches (t = 0, 3, 4, 7).
    assert codes == [[1, 1], [1, 1], [1, 1], [2, 1], [2, 3], [2, 3], [2, 3], [4, 3]]
    # A period ends when K steps ran, not when an episode restarts.
    assert ends == [[False, False]] * 3 + [[False, False], [False, True], [False, False],
                                           [False, False], [True, False]]


def test_reached_is_max_cosine_whatever_the_worker_is_rewarded_by():
    """`reached` is the yardstick of goal_summary's and goal_vis's 0.7 threshold."""
    agent = make_agent(overrides=["worker.goal_reward=l2"])
    g = torch.Generator().manual_seed(0)
    carry = None
    for t in range(agent.goal_every + 1):
        obs = {"image": torch.randint(0, 256, (2, SIZE, SIZE, 3), dtype=torch.uint8, generator=g),
               "is_first": torch.tensor([t == 0] * 2)}
        goal = None if carry is None else carry["goal"]
        _, carry, info = agent.policy(obs, carry)
    assert info["period_end"].all()
    torch.testing.assert_close(info["reached"], max_cosine(carry["deter"], goal))
    assert not torch.allclose(info["reached"], agent.worker.goal_reward(carry["deter"], goal))


def test_policy_eval_mode_takes_the_worker_mode_and_continuous_actions_are_clipped():
    agent = make_agent()
    obs = {"image": torch.zeros(3, SIZE, SIZE, 3, dtype=torch.uint8), "is_first": torch.ones(3, dtype=torch.bool)}
    torch.manual_seed(0)
    _, carry, info = agent.policy(obs, None, mode="eval")
    torch.manual_seed(0)
    action, _, _ = agent.policy(obs, None, mode="eval")
    dist = agent.worker.ac.policy(agent.worker.inputs(agent.wm.feat(carry), info["goal"]))
    torch.testing.assert_close(action, dist.mode().detach())
    cont = make_agent(action=("continuous", 2))
    with torch.no_grad():
        cont.worker.ac.actor.out.bias.fill_(50.0)  # mean tanh(50) = 1, std 1: samples beyond 1
    actions = torch.cat([cont.policy(obs)[0] for _ in range(5)])
    assert actions.shape == (15, 2) and actions.min() >= -1 and actions.max() <= 1


@pytest.mark.parametrize("kind", ["director", "dreamer"])
def test_evaluation_acts_with_the_ema_actors_and_training_with_the_live_ones(kind):
    ema = ["worker.ac.actor_ema=0.5", "manager.ac.actor_ema=0.5", "actor.actor_ema=0.5"]
    agent = make_agent(kind, overrides=ema)
    actor = agent.worker.ac if kind == "director" else agent.actor
    with torch.no_grad():  # the live actor prefers action 0, its average action 3
        actor.actor.out.bias.copy_(torch.tensor([50.0, 0, 0, 0, 0]))
        actor.actor_ema.out.bias.copy_(torch.tensor([0, 0, 0, 50.0, 0]))
    obs = {"image": torch.zeros(3, SIZE, SIZE, 3, dtype=torch.uint8), "is_first": torch.ones(3, dtype=torch.bool)}
    torch.manual_seed(0)
    assert agent.policy(obs, None, mode="eval")[0].argmax(-1).tolist() == [3, 3, 3]
    assert agent.policy(obs, None, mode="train")[0].argmax(-1).tolist() == [0, 0, 0]
    if kind == "director":  # the manager draws its codes from its EMA actor in evaluation
        calls = []
        for ac in (agent.manager.ac,):
            live, avg = ac.actor.forward, ac.actor_ema.forward
            ac.actor.forward = lambda x, f=live: calls.append("live") or f(x)
            ac.actor_ema.forward = lambda x, f=avg: calls.append("ema") or f(x)
        agent.policy(obs, None, mode="eval")
        agent.policy(obs, None, mode="train")
        assert calls == ["ema", "live"]


@pytest.mark.parametrize("kind", ["director", "dreamer"])
def test_greedy_training_envs_act_as_evaluation_does_and_the_others_sample_the_live_actors(kind):
    ema = ["worker.ac.actor_ema=0.5", "manager.ac.actor_ema=0.5", "actor.actor_ema=0.5", "train.greedy_envs=1"]
    agent = make_agent(kind, overrides=ema)
    actor = agent.worker.ac if kind == "director" else agent.actor
    with torch.no_grad():  # the live actor samples actions 0 and 1 alike, its average prefers 3
        actor.actor.out.bias.copy_(torch.tensor([50.0, 50.0, 0, 0, 0]))
        actor.actor_ema.out.bias.copy_(torch.tensor([0, 0, 0, 50.0, 0]))
    obs = {"image": torch.zeros(3, SIZE, SIZE, 3, dtype=torch.uint8), "is_first": torch.ones(3, dtype=torch.bool)}
    torch.manual_seed(0)
    actions = torch.stack([agent.policy(obs, None, mode="train")[0].argmax(-1) for _ in range(20)])
    live = actions[:, :2].flatten().tolist()  # the first two envs sample the live actor (1% unimix)
    assert {0, 1} <= set(live) and sum(a in (0, 1) for a in live) >= 36
    assert actions[:, 2].tolist() == [3] * 20  # the last one takes the EMA actor's mode action
    assert agent.policy(obs, None, mode="eval")[0].argmax(-1).tolist() == [3, 3, 3]


def test_greedy_envs_must_not_exceed_the_training_envs():
    with pytest.raises(ConfigError, match="train.greedy_envs"):
        make_agent(overrides=["env.num_envs=2", "train.greedy_envs=3"])


# ---------------------------------------------------------------------------- train_step
@pytest.mark.parametrize("kind,action", [
    ("director", ("discrete", 5)), ("dreamer", ("discrete", 5)), ("worldmodel", ("discrete", 5)),
    ("director", ("continuous", 2)), ("dreamer", ("continuous", 2)),
])
def test_train_step_returns_finite_metrics(kind, action):
    agent = make_agent(kind, action)
    opts = agent.make_optimizers()
    before = [p.detach().clone() for p in agent.parameters()]
    metrics = agent.train_step(make_batch(agent), opts)
    assert metrics["skipped"] == 0.0
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    assert not bad, bad
    assert "model_loss" in metrics
    if kind == "director":
        assert {"worker/actor_loss", "manager/actor_loss", "goal_loss", "imag_goal_reached"} <= set(metrics)
    if kind == "dreamer":
        assert "actor/actor_loss" in metrics
    assert int(agent.updates) == 1
    changed = [not torch.equal(a, b.detach()) for a, b in zip(before, agent.parameters())]
    assert sum(changed) > len(changed) // 2


def test_optimiser_groups_one_per_network():
    agent = make_agent(overrides=["worker.ac.actor_ema=0.99", "manager.ac.actor_ema=0.99"])
    names = [name for name, _, _ in agent.optim_groups()]
    assert names == ["model", "goal", "worker_actor", "worker_critic_goal", "manager_actor",
                     "manager_critic_extr", "manager_critic_expl"]
    params = [id(p) for _, m, _ in agent.optim_groups() for p in m.parameters()]
    assert len(params) == len(set(params))  # no parameter in two optimisers
    trainable = {id(p) for n, p in agent.named_parameters() if "slow_critics" not in n and "actor_ema" not in n}
    assert set(params) == trainable
    assert not any(p.requires_grad for n, p in agent.named_parameters() if "actor_ema" in n)


@pytest.mark.parametrize("field", ["reward", "action", "image_loss"])
def test_nan_batch_is_skipped_without_changing_parameters(field, monkeypatch):
    """A NaN in the data, or in the image loss alone (the returns, and so the return and
    advantage normalisers' statistics, stay finite): nothing of the update is committed."""
    agent = make_agent(overrides=["worker.ac.actor_ema=0.99", "manager.ac.actor_ema=0.99"])
    opts = agent.make_optimizers()
    batch = make_batch(agent)
    agent.train_step(batch, opts)  # optimiser state exists
    state = {k: v.detach().clone() for k, v in agent.state_dict().items()}  # parameters and buffers
    moments = [copy.deepcopy(opt.state_dict()) for opt in opts]
    bad = dict(batch)
    if field == "image_loss":
        wm_loss = agent.wm.loss

        def nan_image_loss(data):
            loss, post, metrics = wm_loss(data)
            return loss * float("nan"), post, {**metrics, "image_loss": metrics["image_loss"] * float("nan")}

        monkeypatch.setattr(agent.wm, "loss", nan_image_loss)
    else:
        bad[field] = batch[field].clone()
        bad[field][0, 2] = float("nan")
    metrics = agent.train_step(bad, opts)
    if field == "image_loss":
        assert math.isfinite(metrics["worker/goal_return"]) and math.isfinite(metrics["manager/extr_return"])
        monkeypatch.undo()
    assert metrics["skipped"] == 1.0
    # Bit-identical: parameters, slow critics, EMA actors, normalisers, adaptive scales, counters, and every
    # AdamW moment and step count (AdamW would decay weights even with zero gradients).
    for k, v in agent.state_dict().items():
        assert torch.equal(v, state[k]), k
    for opt, before in zip(opts, moments):
        after = opt.state_dict()["state"]
        assert after.keys() == before["state"].keys()
        for i, entry in after.items():
            for key, value in entry.items():
                assert torch.equal(value, before["state"][i][key]), (i, key)
    assert int(agent.updates) == 1
    # Nothing non-finite was stored (normalisers, adaptive scales): the next update is fine.
    for k, v in agent.named_buffers():
        assert torch.isfinite(v.float()).all(), k
    metrics = agent.train_step(batch, opts)
    assert metrics["skipped"] == 0.0 and all(math.isfinite(v) for v in metrics.values())


def test_seeded_agent_training_is_deterministic_on_cpu():
    def run(seed):
        agent = make_agent(seed=seed)
        opts = agent.make_optimizers()
        torch.manual_seed(seed)
        first = agent.train_step(make_batch(agent), opts)
        second = agent.train_step(make_batch(agent, seed=1), opts)
        return first, second

    assert run(5) == run(5)
    assert run(5) != run(6)


# ---------------------------------------------------------------------------- continuous
def test_continuous_worker_learns_through_dynamics_but_world_model_gets_no_gradient(monkeypatch):
    agent = make_agent(action=("continuous", 2))
    agent.worker.ac.entropy_scale.scale.fill_(0.0)  # the actor's only gradient is the return
    store = losses_of_one_update(agent, monkeypatch)
    store["worker"]["out"][0].backward(retain_graph=True)
    assert grads(agent.worker.ac.actor)
    for part in (agent.wm, agent.goal_ae, agent.manager):
        assert not grads(part), type(part).__name__
    agent.zero_grad(set_to_none=True)
    store["manager"]["out"][0].backward(retain_graph=True)
    assert not grads(agent.worker) and not grads(agent.wm)


def test_continuous_dreamer_actor_learns_through_dynamics_but_world_model_gets_no_gradient(monkeypatch):
    agent = make_agent("dreamer", ("continuous", 2))
    agent.actor.entropy_scale.scale.fill_(0.0)
    store = losses_of_one_update(agent, monkeypatch)
    store["actor"]["out"][0].backward(retain_graph=True)
    assert grads(agent.actor.actor) and grads(agent.actor.critics)
    assert not grads(agent.wm)


def test_continuous_worker_task_reward_ablation_is_differentiable_through_dynamics(monkeypatch):
    # Only a task-reward critic (goal weight 0): the actor's gradient can only come from the
    # predicted task reward (critics start at zero output, entropy bonus off).
    agent = make_agent(action=("continuous", 2), overrides=["worker.goal=0", "worker.extr=1"])
    assert set(agent.worker.ac.critics) == {"extr"}
    agent.worker.ac.entropy_scale.scale.fill_(0.0)
    store = losses_of_one_update(agent, monkeypatch)
    store["worker"]["out"][0].backward(retain_graph=True)
    assert grads(agent.worker.ac.actor)
    assert not grads(agent.wm) and not grads(agent.manager)


def imagine_from_batch(agent: Agent, monkeypatch, policy_of: torch.nn.Module) -> tuple[dict, list]:
    """One imagination from the posterior of a batch, with the policy inputs it used."""
    inputs: list[torch.Tensor] = []
    policy = policy_of.policy
    monkeypatch.setattr(policy_of, "policy", lambda x: inputs.append(x) or policy(x))
    batch = make_batch(agent)
    _, post, _ = agent.wm.loss(batch)
    start = {k: v.flatten(0, 1).detach() for k, v in post.items()}
    torch.manual_seed(0)
    traj = agent.imagine(start, 1.0 - batch["is_terminal"].flatten(0, 1).float())
    return traj, inputs


@pytest.mark.parametrize("kind", ["director", "dreamer"])
def test_continuous_policy_inputs_in_imagination_are_stop_gradient(monkeypatch, kind):
    # With backprop through the dynamics, s_t depends on a_{t-1}; the actor must not also get
    # gradients through its own later inputs (ALGORITHM.md §4: the worker's input is sg).
    agent = make_agent(kind, ("continuous", 2))
    traj, inputs = imagine_from_batch(agent, monkeypatch,
                                      agent.worker.ac if kind == "director" else agent.actor)
    assert len(inputs) == agent.cfg.imag_horizon
    assert traj["feat"][:, 1:].requires_grad          # the dynamics path is kept ...
    assert not any(x.requires_grad for x in inputs)   # ... the actor's own inputs are cut


@pytest.mark.parametrize("kind", ["director", "dreamer"])
def test_imagined_continuous_actions_are_clipped_with_straight_through_gradient(monkeypatch, kind):
    agent = make_agent(kind, ("continuous", 2))
    traj, _ = imagine_from_batch(agent, monkeypatch,
                                 agent.worker.ac if kind == "director" else agent.actor)
    action = traj["action"][:, :-1]
    assert action.abs().max() <= 1.0
    clipped = action.abs() == 1.0          # samples of Normal(tanh(.), std) beyond the range
    assert clipped.any()
    actor = (agent.worker.ac if kind == "director" else agent.actor).actor
    grad = torch.autograd.grad(action[clipped].sum(), list(actor.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grad)   # clipped ones still pass it


# ---------------------------------------------------------------------------- compile
@pytest.mark.skipif(compile_unavailable(torch.device("cpu")) is not None, reason="no C++ compiler")
@pytest.mark.parametrize("action,backend", [(("discrete", 5), "inductor"), (("continuous", 2), "aot_eager")])
def test_compiled_update_agrees_with_eager(action, backend):
    """train.compile: the loss compiles as one graph (fullgraph=True raises on any graph
    break; the continuous worker's frozen world model included) and, with inductor's RNG
    replaced by eager's, one update matches eager. Short sequences and goal periods (T = 4,
    K = 2, H = 4) keep the unrolled graph small. The continuous case traces the same forward
    and backward graphs through AOTAutograd but skips inductor's code generation
    (`aot_eager`): a second cold inductor compile would cost about 3 minutes on 2 cores."""
    import torch._inductor.config as inductor

    short = ["replay.length=4", "manager.goal_every=2"]
    eager, compiled = (make_agent(action=action, overrides=short, seed=0) for _ in range(2))
    compiled.compile()
    if backend != "inductor":
        compiled._loss = torch.compile(compiled.loss, fullgraph=True, dynamic=False, backend=backend)
    batch = make_batch(eager)
    with inductor.patch(fallback_random=True):
        results = []
        for agent in (eager, compiled):
            torch.manual_seed(1)
            results.append(agent.train_step(batch, agent.make_optimizers()))
    assert results[0]["skipped"] == results[1]["skipped"] == 0.0
    assert results[1]["loss"] == pytest.approx(results[0]["loss"], rel=1e-4)
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5, msg=name)
    for (name, a), b in zip(eager.named_buffers(), compiled.buffers()):
        torch.testing.assert_close(b.float(), a.float(), rtol=1e-4, atol=1e-5, msg=name)


def test_conditioned_goals_are_decoded_against_the_state_where_they_are_chosen(monkeypatch):
    agent = make_agent(overrides=["goal.context=true", "worker.replay_goals=0.25"])
    batch = make_batch(agent)
    with torch.no_grad():
        _, post, _ = agent.wm.loss(batch)
        start = {k: v.flatten(0, 1)[:8] for k, v in post.items()}
        traj = agent.imagine(start, torch.ones(8))
    k, h = agent.goal_every, agent.cfg.imag_horizon
    for t in range(0, h, k):
        torch.testing.assert_close(traj["goal"][:, t], agent.goal_ae.decode(traj["code"][:, t], traj["deter"][:, t]))
    # The bonus of s_t is scored against the deter of the decision its goal came from.
    m = agent.manager_rows(8)
    store: dict = {}
    spy(monkeypatch, agent.goal_ae, "exploration_reward", store, "expl")
    with torch.no_grad():
        traj = agent.imagine(start, torch.ones(8))
    deter, context = store["expl"]["args"]
    torch.testing.assert_close(deter, traj["deter"][:m, 1:])
    torch.testing.assert_close(context, traj["deter"][:m, :h:k].repeat_interleave(k, 1))
    torch.testing.assert_close(traj["expl"][:, 1:], store["expl"]["out"])
    # Acting decodes the manager's code against the posterior deter of the switch step.
    obs = {"image": batch["image"][:3, 0], "is_first": torch.ones(3, dtype=torch.bool)}
    _, carry, info = agent.policy(obs)
    torch.testing.assert_close(info["goal"], agent.goal_ae.decode(info["code"], carry["deter"]))
    # The whole update trains, and the goal autoencoder learns from pairs K apart.
    spy(monkeypatch, agent.goal_ae, "loss", store, "goal")
    spy(monkeypatch, agent.wm, "loss", store, "wm")
    out = agent.train_step(batch, agent.make_optimizers())
    assert out["skipped"] == 0.0 and math.isfinite(out["loss"])
    goal, context = store["goal"]["args"]
    deter = store["wm"]["out"][1]["deter"]
    t = agent.cfg.replay.length
    assert goal.shape[0] == context.shape[0] == agent.cfg.replay.batch * (t - k)
    torch.testing.assert_close(goal[: t - k], deter[0, k:])
    torch.testing.assert_close(context[: t - k], deter[0, :-k])


def test_conditioned_goals_need_sequences_longer_than_a_goal_period():
    with pytest.raises(config_lib.ConfigError, match="replay.length"):
        config_lib.load("debug", ["goal.context=true", "replay.length=4"])


def test_novelty_scores_the_bonus_with_an_unconditioned_autoencoder_of_every_state(monkeypatch):
    agent = make_agent(overrides=["goal.context=true", "goal.novelty=true"])
    assert agent.goal_ae.context and agent.novelty is not None and not agent.novelty.context
    batch = make_batch(agent)
    with torch.no_grad():
        _, post, _ = agent.wm.loss(batch)
        start = {k: v.flatten(0, 1)[:8] for k, v in post.items()}
    store: dict = {}
    spy(monkeypatch, agent.novelty, "exploration_reward", store, "novelty")
    spy(monkeypatch, agent.goal_ae, "exploration_reward", store, "goal_ae")
    with torch.no_grad():
        traj = agent.imagine(start, torch.ones(8))
    assert "goal_ae" not in store  # the conditioned autoencoder no longer scores the bonus
    (deter,) = store["novelty"]["args"]
    m = agent.manager_rows(8)
    torch.testing.assert_close(deter, traj["deter"][:m, 1:])
    torch.testing.assert_close(traj["expl"][:, 1:], store["novelty"]["out"])
    # The update trains the novelty autoencoder on every replay state (the goal autoencoder on
    # pairs) with its own optimiser; imagination holds it frozen.
    spy(monkeypatch, agent.novelty, "loss", store, "loss")
    spy(monkeypatch, agent.wm, "loss", store, "wm")
    before = [p.detach().clone() for p in agent.novelty.parameters()]
    out = agent.train_step(batch, agent.make_optimizers())
    assert out["skipped"] == 0.0 and out["novelty/goal_rec"] > 0 and out["grad_norm/novelty"] > 0
    (states,) = store["loss"]["args"]
    torch.testing.assert_close(states, store["wm"]["out"][1]["deter"].flatten(0, 1))
    assert all(not torch.equal(a, p) for a, p in zip(before, agent.novelty.parameters()))
    assert "novelty" in agent._frozen_models()


def test_novelty_needs_a_conditioned_goal_autoencoder():
    with pytest.raises(config_lib.ConfigError, match="goal.novelty"):
        config_lib.load("debug", ["goal.novelty=true"])
