"""Recording episodes of a trained agent together with its goals.

`run_episode` steps one env with `module.act` (the acting path of training and `director eval`)
and keeps, per step: the observation, the action that led to it, reward and flags (the layout of
a replay step, so a recorded episode can stand in for the replay), the posterior deter, the step
in the goal phase and which manager decision is active; per manager decision: the code, the goal,
its decoded image and, K steps later, the max-cosine of the reached deter to the goal.

On built-in worlds whose true state is known (Pin Pad, grid mazes: `agent_pos`, `render_state`,
`free_cells`) a `StateProbe` grounds decoded goal images: a goal's "position" is the cell whose
rendered image is nearest (L2 in pixels) to the decoded goal image.

`agent_strip` renders an episode strip (observation row + goal row) for training-time logging;
`record_strip` saves one as a PNG.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image

from goal_vis import imaging
from goal_vis.decode import decode_goal
from worker.goal_reward import max_cosine

Cell = tuple[int, int]


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use `n` intra-op CPU threads for the block (None: leave as is), then restore."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def private_rng(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch and numpy for the block and restore the global RNG states afterwards, so a
    recording never changes what a training run samples next."""
    devices = [device] if device is not None and device.type == "cuda" else []
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            yield
    finally:
        np.random.set_state(state)


class StateProbe:
    """Reads and renders the true state of a built-in world (Pin Pad, grid mazes).

    `available` is False for worlds without `agent_pos`, `render_state` and `free_cells`."""

    CACHE = 32  # Pin Pad: renderings of this many pad histories are kept

    def __init__(self, env: Any):
        self.world = getattr(env, "unwrapped", env)
        self.available = all(hasattr(self.world, a) for a in ("agent_pos", "render_state", "free_cells"))
        self.has_history = self.available and hasattr(self.world, "history")
        cells = self.world.free_cells() if self.available else []
        self.cells: list[Cell] = [(int(c[0]), int(c[1])) for c in cells]
        self._cache: dict[Any, np.ndarray] = {}

    def position(self) -> Cell | None:
        return tuple(int(v) for v in self.world.agent_pos) if self.available else None

    def context(self) -> tuple[int, ...] | None:
        """What else the rendering depends on: Pin Pad's pad history."""
        return tuple(int(p) for p in self.world.history) if self.has_history else None

    def candidates(self, context: tuple[int, ...] | None) -> np.ndarray:
        """Rendered images (cells, H, W, 3) uint8 of the agent on every reachable cell (the
        newest CACHE renderings are kept)."""
        if context not in self._cache:
            if self.has_history:
                frames = [self.world.render_state(c, context) for c in self.cells]
            else:
                frames = [self.world.render_state(c) for c in self.cells]
            if len(self._cache) >= self.CACHE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[context] = np.stack(frames)
        return self._cache[context]

    def locate(self, image: np.ndarray, context: tuple[int, ...] | None) -> Cell | None:
        """The cell whose rendering is nearest (L2 in pixels) to `image` (H, W, 3)."""
        if not self.available:
            return None
        cands = self.candidates(context)
        if cands.shape[1:] != image.shape:
            return None
        diff = cands.astype(np.int32) - image.astype(np.int32)[None]
        dist = (diff * diff).reshape(len(cands), -1).sum(1)
        return self.cells[int(dist.argmin())]


@dataclass
class Decision:
    """One manager decision: at `step` of episode `episode` the goal `goal` was chosen."""

    episode: int
    step: int
    code: np.ndarray
    goal: np.ndarray
    image: np.ndarray | None = None  # decoded goal (H, W, 3) uint8
    end: int | None = None  # step K later; None when the episode ended before
    reached: float | None = None  # max-cosine of the deter at `end` to the goal
    start_pos: Cell | None = None
    end_pos: Cell | None = None
    goal_pos: Cell | None = None
    context: np.ndarray | None = None  # deter where the goal was chosen (what a conditioned
    # goal autoencoder decoded the code against)


@dataclass
class EpisodeRecord:
    """Per step (T, ...): images, actions (the action that led to each observation), reward,
    flags, vectors, posterior deter and flattened stoch, phase (step in the goal phase, 0..K-1),
    active (index into `decisions` of the goal in force), positions (true cells or None),
    contexts (what else the true state's rendering depends on: Pin Pad's pad history; else None)."""

    images: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    is_first: np.ndarray
    is_last: np.ndarray
    is_terminal: np.ndarray
    vectors: dict[str, np.ndarray]
    deter: np.ndarray
    stoch: np.ndarray
    phase: np.ndarray
    active: np.ndarray
    positions: list[Cell | None]
    contexts: list[Any]
    decisions: list[Decision] = field(default_factory=list)
    success: bool = False

    @property
    def length(self) -> int:
        return len(self.images)

    @property
    def ret(self) -> float:
        return float(self.rewards.sum())

    def steps(self) -> dict[str, np.ndarray]:
        """The episode as replay steps: {key: (T, ...)} with the keys the collector stores."""
        out = {"image": self.images, "action": self.actions, "reward": self.rewards,
               "is_first": self.is_first, "is_last": self.is_last, "is_terminal": self.is_terminal}
        out.update(self.vectors)
        return out


def _observation(obs: dict[str, Any], reward: float, first: bool, last: bool,
                 terminal: bool) -> dict[str, np.ndarray]:
    """One env observation as the (1, ...) obs dict the policy sees (as in the Collector)."""
    out = {k: np.asarray(v, np.uint8 if k == "image" else np.float32)[None] for k, v in obs.items()}
    out.update(reward=np.array([reward], np.float32), is_first=np.array([first]),
               is_last=np.array([last]), is_terminal=np.array([terminal]))
    return out


def run_episode(module: Any, env: Any, max_steps: int, mode: str = "eval", episode: int = 0,
                probe: StateProbe | None = None, decode: bool = True) -> EpisodeRecord:
    """Run one episode (at most `max_steps` env steps) of `module.act` in `env`.

    The caller seeds the RNGs (see `private_rng`). With `decode`, every decision's goal image
    is decoded and, when `probe` is available, located. On CPU the env loop runs torch with one
    thread: acting one env is a chain of tiny ops that more threads only slow down."""
    from director.collect import action_size, is_discrete

    agent = module.agent
    space = env.action_space
    discrete, size = is_discrete(space), action_size(space)
    hierarchical = getattr(agent, "goal_ae", None) is not None
    obs, info = env.reset()
    reward, first, last, terminal, success = 0.0, True, False, False, bool(info.get("success", False))
    prev = np.zeros(size, np.float32)
    keys = ("image", "action", "reward", "is_first", "is_last", "is_terminal", "deter", "stoch",
            "phase", "active", "pos", "ctx")
    rows: dict[str, list] = {k: [] for k in keys}
    vectors: dict[str, list] = {k: [] for k in obs if k != "image"}
    decisions: list[Decision] = []
    carry, t, k = None, 0, agent.goal_every
    cpu = next(agent.parameters()).device.type == "cpu"
    with torch_threads(1 if cpu else None):
        while True:
            o = _observation(obs, reward, first, last, terminal)
            action, carry, act_info = module.act(o, carry, mode)
            rows["image"].append(o["image"][0])
            rows["action"].append(prev.copy())
            rows["reward"].append(np.float32(reward))
            rows["is_first"].append(first)
            rows["is_last"].append(last)
            rows["is_terminal"].append(terminal)
            for key in vectors:
                vectors[key].append(o[key][0])
            rows["deter"].append(carry["deter"][0].float().cpu().numpy())
            rows["stoch"].append(carry["stoch"][0].flatten().float().cpu().numpy())
            rows["phase"].append(int(act_info["step"][0]) % k)
            rows["pos"].append(probe.position() if probe is not None else None)
            rows["ctx"].append(probe.context() if probe is not None else None)
            if hierarchical:
                if bool(act_info["switch"][0]):
                    decisions.append(Decision(episode, t, act_info["code"][0].float().cpu().numpy(),
                                              act_info["goal"][0].float().cpu().numpy(),
                                              context=rows["deter"][-1]))
                rows["active"].append(len(decisions) - 1)
            else:
                rows["active"].append(-1)
            if last:
                break
            action = np.asarray(action, np.float32).reshape(size)
            env_action = (int(action.argmax()) + int(getattr(space, "start", 0)) if discrete
                          else action.reshape(space.shape))
            obs, reward, terminated, truncated, info = env.step(env_action)
            t += 1
            success |= bool(info.get("success", False))
            first, terminal = False, bool(terminated)
            last = bool(terminated or truncated or t >= max_steps)
            prev = action
    record = EpisodeRecord(
        images=np.stack(rows["image"]), actions=np.stack(rows["action"]).astype(np.float32),
        rewards=np.array(rows["reward"], np.float32), is_first=np.array(rows["is_first"], bool),
        is_last=np.array(rows["is_last"], bool), is_terminal=np.array(rows["is_terminal"], bool),
        vectors={k: np.stack(v).astype(np.float32) for k, v in vectors.items()},
        deter=np.stack(rows["deter"]).astype(np.float32), stoch=np.stack(rows["stoch"]).astype(np.float32),
        phase=np.array(rows["phase"]), active=np.array(rows["active"]), positions=rows["pos"],
        contexts=rows["ctx"], decisions=decisions, success=success)
    for d in decisions:
        d.start_pos = record.positions[d.step]
        if d.step + k < record.length:
            d.end = d.step + k
            d.end_pos = record.positions[d.end]
            d.reached = float(max_cosine(torch.as_tensor(record.deter[d.end]), torch.as_tensor(d.goal)))
    if decode and decisions:
        images = decode_goal(agent, np.stack([d.goal for d in decisions]), kind="goal")
        for d, image in zip(decisions, images):
            d.image = image
            if probe is not None and probe.available:
                d.goal_pos = probe.locate(image, rows["ctx"][d.step])
    return record


def goal_frames(record: EpisodeRecord) -> np.ndarray:
    """The decoded goal in force at every step (T, H, W, 3); grey where there is none."""
    blank = np.full_like(record.images[0], 128)
    return np.stack([record.decisions[a].image if a >= 0 and record.decisions[a].image is not None else blank
                     for a in record.active])


def strip_image(record: EpisodeRecord, columns: int = 16, target: int = 64) -> np.ndarray:
    """Observation row over goal row for every few steps of `record` (at most `columns`)."""
    every = max(1, -(-record.length // columns))
    index = list(range(0, record.length, every))
    scale = imaging.panel_scale(record.images.shape[1], target)
    goals = goal_frames(record)
    cells = []
    for t in index:
        column = imaging.vstack([imaging.upscale(record.images[t], scale), imaging.upscale(goals[t], scale)])
        label = f"t={t}" + (f" p={record.phase[t]}" if record.active[t] >= 0 else "")
        cells.append(imaging.caption(column, label))
    body = imaging.hstack(cells, gap=2)
    return imaging.caption(body, "rows: observation / decoded goal in force")


def agent_strip(module: Any, steps: int = 64, seed: int = 0) -> np.ndarray:
    """The episode strip (observation row + decoded-goal row, at most 16 columns; uint8
    (H, W, 3)) of `steps` env steps of `module` in a fresh env of its world seeded with `seed`.

    Safe to call during training: it uses its own env, restores the global RNG states, and the
    agent acts without gradients (eval-mode actions of the worker, sampled manager codes)."""
    import worlds

    cfg = module.cfg
    env = worlds.make(cfg.env.world, seed=seed, **cfg.env.world_options())
    try:
        with private_rng(seed, getattr(module, "device", None)):
            record = run_episode(module, env, max_steps=max(1, int(steps)), mode="eval")
    finally:
        env.close()
    return strip_image(record)


def record_strip(module: Any, path: str | Path, steps: int = 64, seed: int = 0) -> Path:
    """Save `agent_strip(module, steps, seed)` as a PNG at `path`. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(agent_strip(module, steps, seed)).save(path)
    return path
