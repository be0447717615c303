"""The one typed configuration schema of Director.

Every hyperparameter lives here, documented where it is defined. Presets are YAML files in
`experiments/presets/` that override the defaults below (a preset may start from another one
with `base: NAME`); the command line overrides a preset with `key=value` pairs (dotted keys,
e.g. `model.rssm.deter=512 manager.goal_every=8`).

Defaults are the paper's published values (ALGORITHM.md) except manager.goal_every (16; the
paper's K is 8) and the run length and logging intervals of `train`; `experiments/presets/
paper.yaml` restores every published value, and the `default` preset sizes the networks for a CPU.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from director.errors import ConfigError

PRESET_DIR = Path(__file__).resolve().parent.parent / "experiments" / "presets"


@dataclass
class OptimConfig:
    """Adam with decoupled weight decay on weight matrices only (ALGORITHM.md §1)."""

    lr: float = 1e-4  # learning rate
    eps: float = 1e-6  # Adam epsilon
    clip: float = 100.0  # global gradient-norm clip
    weight_decay: float = 1e-2  # decoupled (AdamW) decay of weight matrices; biases/norms skipped


@dataclass
class EnvConfig:
    world: str = "pinpad-three"  # any name of `director worlds list`
    size: int = 64  # image height = width; 16, 32 or 64
    num_envs: int = 4  # environments stepped in parallel per process (rank)
    asynchronous: bool = False  # subprocess envs (spawn) instead of in-process stepping
    # Options of `worlds.make` for this world: time_limit, action_repeat, restart_on_error and
    # the world's own (e.g. env_kwargs, actions); `director worlds list` names the worlds, and a
    # world refuses an option it does not take. Set one with env.options.time_limit=100.
    options: dict[str, Any] = field(default_factory=dict)

    def world_options(self) -> dict[str, Any]:
        """Keyword arguments of `worlds.make` / `worlds.make_vector`: size plus env.options."""
        return {"size": self.size, **self.options}


@dataclass
class RSSMConfig:
    deter: int = 1024  # size of the deterministic GRU state h
    stoch: int = 32  # number of categorical latent variables
    classes: int = 32  # classes per categorical variable
    hidden: int = 1024  # hidden units of the RSSM's dense layers


@dataclass
class WorldModelConfig:
    rssm: RSSMConfig = field(default_factory=RSSMConfig)
    cnn_depth: int = 64  # d: encoder channels d, 2d, 4d, 8d; decoder 4d, 2d, d
    mlp_layers: int = 4  # layers of the reward/continuation heads and vector encoders
    mlp_units: int = 512  # units of those MLPs
    kl_balance: float = 0.8  # weight of KL(sg(post) || prior); 1 - it on KL(post || sg(prior))
    kl_target: float = 3.5  # nats the adaptive KL scale beta steers toward
    kl_scale: float = 1.0  # initial beta (adapted within [1e-5, 1])
    # The image decoder's mean: "sigmoid" of its last layer (the paper's) or "linear" (0.5 plus
    # the last layer, DreamerV2's). A sigmoid saturates on the large uniform background, and the
    # squared error of a small, rare object (a 2 x 2-pixel agent) then barely reaches the model.
    image_output: str = "sigmoid"
    opt: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class ActorCriticConfig:
    """The imagination actor-critic learner shared by manager, worker and flat baseline."""

    discount: float = 0.99  # gamma (per imagined step for the worker, per abstract step for the manager)
    lambda_: float = 0.95  # TD(lambda) mixing
    mlp_layers: int = 4
    mlp_units: int = 512
    slow_every: int = 100  # hard copy of the critic into the slow target critic, in updates
    return_decay: float = 0.999  # EMA decay of each critic's return mean and mean-square
    return_min_std: float = 0.01  # floor of the return std used to normalise scores
    advantage_norm: bool = True  # normalise the summed advantage by its EMA mean and std (paper)
    advantage_decay: float = 0.99  # EMA decay of the advantage mean and std
    unimix: float = 0.01  # uniform mixing of categorical policies
    entropy_target: float = 0.5  # target normalised entropy of the adaptive entropy bonus
    entropy_scale: float = 1.0  # initial entropy coefficient eta (adapted within [1e-5, entropy_max])
    # The largest eta the controller may reach (paper 100). A lower cap keeps the bonus a mild
    # regulariser: it cannot outweigh unit-scale (normalised) advantages after a confident stretch.
    entropy_max: float = 100.0
    # Factor by which eta changes per update while the entropy is off target (paper 1.1).
    # Nearer 1 is a slower, smoother controller.
    entropy_rate: float = 1.1
    # Where the normalised entropy that eta adapts on is measured: "all" imagined states, or
    # only the "start" states (replay posteriors, what the agent meets when acting).
    entropy_states: str = "all"
    # Decay of a Polyak average (EMA, per applied update) of the actor's weights, which
    # evaluation acts with (`mode="eval"`); 0 keeps no average and evaluation uses the live
    # actor, as the paper does. Training always acts with the live actor.
    actor_ema: float = 0.0
    actor_opt: OptimConfig = field(default_factory=OptimConfig)
    critic_opt: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class GoalConfig:
    """The goal autoencoder of ALGORITHM.md §2: deter -> 8x8 code -> goal."""

    code_vars: int = 8  # categorical variables of a code
    code_classes: int = 8  # classes per variable
    mlp_layers: int = 4
    mlp_units: int = 512
    kl_target: float = 10.0  # nats the adaptive KL scale steers toward
    kl_scale: float = 1.0  # initial KL scale (adapted within [1e-5, 1]); 0 turns the goal KL off
    # Condition encoder and decoder on the deter where the goal is chosen and learn the replay
    # pairs (h_t, h_{t+K}) (an option of the original code; the paper's is false): the manager's
    # codes then name states about K steps away, which the worker can reach in one period,
    # and long routes become chains of goals. Needs replay.length > manager.goal_every.
    context: bool = False
    # With `context`: score the manager's exploration bonus with a second, unconditioned
    # autoencoder of single states (the paper's bonus: how novel a state is), trained beside
    # the conditioned one on every replay state, instead of the conditioned autoencoder's error
    # (how unexpected a state is as a K-step successor of where the goal was chosen).
    novelty: bool = False
    opt: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class ManagerConfig:
    goal_every: int = 16  # K: the manager picks a new goal every K steps
    extr: float = 1.0  # weight of the task-reward critic's score (0: pure exploration)
    expl: float = 0.1  # weight of the exploration-bonus critic's score (0: no bonus)
    # Floor of the exploration critic's return std (ac.return_min_std floors the task-reward
    # critic's). The bonus, a mean squared error of deter vectors, has no natural scale, so it
    # is always normalised to unit scale; a task reward has one, and a floor of 1 (DreamerV3)
    # keeps returns below it (reward-head noise before any reward is seen) from being scaled up.
    expl_min_std: float = 0.01
    ac: ActorCriticConfig = field(default_factory=ActorCriticConfig)


@dataclass
class WorkerConfig:
    goal_reward: str = "max_cosine"  # max_cosine | cosine | l2
    goal: float = 1.0  # weight of the goal critic's score
    extr: float = 0.0  # weight of a task-reward critic (ablation; the paper's worker has 0)
    # Fraction of imagined rollouts whose goals come from replay instead of the manager: the
    # goal autoencoder's code of another start state. These rollouts train only the worker,
    # so it learns to reach every state the data holds, not only those the manager picks now.
    replay_goals: float = 0.0
    ac: ActorCriticConfig = field(default_factory=ActorCriticConfig)

    def manager_rows(self, n: int) -> int:
        """Of N imagined rollouts, how many follow the manager's goals (the first ones); the
        remaining `replay_goals` fraction follow goals from replay."""
        return n - int(round(self.replay_goals * n))


@dataclass
class ReplayConfig:
    capacity: int = 1_000_000  # FIFO capacity in steps
    batch: int = 16  # B sequences per update
    length: int = 64  # T steps per sequence
    prefill: int = 10_000  # random-policy env steps (all envs together) before learning
    train_every: int = 16  # env steps (all envs together) between updates; ratio = B*T/train_every
    # Fraction of each batch's chunks that hold a step with a non-zero reward, once the replay
    # has one (the paper samples uniformly: 0). A sparse reward found in a few episodes is
    # otherwise a few steps in 1e5: the reward head and critics almost never see it.
    reward_chunks: float = 0.0


@dataclass
class TrainConfig:
    steps: int = 1_000_000  # total env steps (all envs of all ranks) of a run
    seed: int = 0
    run_dir: str = ""  # empty: runs/<world>-<agent>-<time>
    log_every: int = 1000  # env steps between metric rows
    checkpoint_every: int = 10_000  # env steps between checkpoints
    # env steps between recorded images (TensorBoard: open-loop predictions, and for Director
    # an observation | decoded-goal strip, also saved to RUN_DIR/strips/); 0 = off
    record_every: int = 0
    # Evaluation episodes (mode action, the same env seeds every time): at the end of a run
    # (beside a uniform random policy's) and every eval_every env steps (RUN_DIR/evals.csv).
    eval_episodes: int = 10  # 0 = no end-of-run evaluation
    eval_every: int = 0  # env steps between evaluations during training; 0 = off
    # How many of each rank's env.num_envs training envs act as evaluation does (the actors' EMA
    # averages where kept, the worker's or flat actor's mode action; the manager still samples).
    # Their episodes enter the replay and count toward train.steps. 0: every env samples the
    # live actors, as in the paper.
    greedy_envs: int = 0
    accelerator: str = "auto"  # cpu | cuda | gpu | auto (Lightning)
    devices: int = 1  # processes/GPUs; > 1 runs DDP
    # 32-true | bf16-mixed (CPU and CUDA: matmuls and convolutions in bfloat16) | 16-mixed (CUDA)
    # | auto (bf16-mixed where the CPU or GPU runs bf16 natively, else 32-true; the start line
    # says which)
    precision: str = "32-true"
    # torch.compile the loss and its backward (inductor; needs a C++ compiler on the CPU). The
    # first update compiles (minutes on 2 cores; later runs reuse torch's on-disk cache).
    compile: bool = False
    # torch.compile mode: default | reduce-overhead (CUDA graphs) | max-autotune | max-autotune-no-cudagraphs
    compile_mode: str = "default"
    max_bad_updates: int = 10  # consecutive non-finite losses before the run stops
    keep_checkpoints: int = 2  # checkpoints kept in RUN_DIR/checkpoints (the older ones are fallbacks)
    threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass
class Config:
    agent: str = "director"  # director | dreamer (flat baseline) | worldmodel (world model only)
    horizon: int = 0  # imagination horizon H; 0 = 2 * manager.goal_every
    env: EnvConfig = field(default_factory=EnvConfig)
    model: WorldModelConfig = field(default_factory=WorldModelConfig)
    goal: GoalConfig = field(default_factory=GoalConfig)
    manager: ManagerConfig = field(default_factory=ManagerConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    actor: ActorCriticConfig = field(default_factory=ActorCriticConfig)  # flat baseline's policy
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def imag_horizon(self) -> int:
        return self.horizon or 2 * self.manager.goal_every


# ---------------------------------------------------------------------------------------
# Validation: allowed values beyond the types the schema already enforces.

_CHOICES: dict[str, tuple[str, ...]] = {
    "agent": ("director", "dreamer", "worldmodel"),
    "worker.goal_reward": ("max_cosine", "cosine", "l2"),
    "model.image_output": ("sigmoid", "linear"),
    "train.precision": ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true"),
    "train.accelerator": ("auto", "cpu", "cuda", "gpu", "mps"),
    "train.compile_mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    "actor.entropy_states": ("all", "start"),
    "manager.ac.entropy_states": ("all", "start"),
    "worker.ac.entropy_states": ("all", "start"),
}
_POSITIVE_INT = (
    "env.num_envs", "model.rssm.deter", "model.rssm.stoch", "model.rssm.classes", "model.rssm.hidden",
    "model.cnn_depth", "model.mlp_layers", "model.mlp_units", "goal.code_vars", "goal.code_classes",
    "goal.mlp_layers", "goal.mlp_units", "manager.goal_every", "replay.capacity", "replay.batch",
    "replay.length", "replay.train_every", "train.steps", "train.log_every", "train.checkpoint_every",
    "train.devices", "train.max_bad_updates", "train.keep_checkpoints",
)
_UNIT_INTERVAL = ("model.kl_balance", "worker.replay_goals", "replay.reward_chunks")
# Open mappings: their entries are free-form keys (`env.options.time_limit=100`), checked by
# whoever consumes them (the world, for env.options), not by the schema.
_MAPPINGS = ("env.options",)
# env.options that other keys set: the image size, the seed, and the action format the agent uses.
_OWNED_OPTIONS = {"size": "env.size", "seed": "train.seed", "one_hot": "none (the agent sets it)"}


def _flat(cfg: Any, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if isinstance(value, (dict, DictConfig)) and path not in _MAPPINGS:
            out.update(_flat(value, path + "."))
        else:
            out[path] = value
    return out


def valid_keys() -> list[str]:
    """All dotted configuration keys."""
    return sorted(_flat(OmegaConf.to_container(OmegaConf.structured(Config))))


def _nearest(key: str) -> str:
    """The valid key closest to `key`: among the keys whose last part is (or is closest to) the
    given last part, the one closest to the whole dotted key."""
    keys = valid_keys()
    leaf = key.split(".")[-1]
    pool = [k for k in keys if k.split(".")[-1] == leaf]
    if not pool:
        close = difflib.get_close_matches(leaf, sorted({k.split(".")[-1] for k in keys}), n=1, cutoff=0.6)
        pool = [k for k in keys if close and k.split(".")[-1] == close[0]]
    return difflib.get_close_matches(key, pool or keys, n=1, cutoff=0.0)[0]


def validate(cfg: Config) -> None:
    """Raise ConfigError for values outside what each key allows."""
    flat = _flat(dataclasses.asdict(cfg))
    for key, choices in _CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(
                f"Configuration value {key}={flat[key]!r} is not allowed; choose one of "
                f"{', '.join(choices)}. Fix the preset or pass e.g. {key}={choices[0]}.")
    for key in _POSITIVE_INT:
        if flat[key] <= 0:
            raise ConfigError(f"Configuration value {key}={flat[key]} must be a positive integer.")
    for key in _UNIT_INTERVAL:
        if not 0.0 <= flat[key] <= 1.0:
            raise ConfigError(f"Configuration value {key}={flat[key]} must lie in [0, 1].")
    for key, value in flat.items():
        if key.endswith((".lr", ".eps", ".clip", "min_std")) and value <= 0:
            raise ConfigError(f"Configuration value {key}={value} must be > 0.")
        if key.endswith(("discount", "lambda_", "_decay")) and not 0.0 <= value <= 1.0:
            raise ConfigError(f"Configuration value {key}={value} must lie in [0, 1].")
        if key.endswith("entropy_rate") and value <= 1.0:
            raise ConfigError(f"Configuration value {key}={value} must be > 1 (the factor by which the "
                              "entropy coefficient changes per update; the paper uses 1.1).")
        if key.endswith("actor_ema") and not 0.0 <= value < 1.0:
            raise ConfigError(f"Configuration value {key}={value} must lie in [0, 1) (the EMA decay per "
                              "update of the evaluation actor, e.g. 0.999; 0 evaluates the live actor).")
        if key.endswith("entropy_max") and value < 1e-5:
            raise ConfigError(f"Configuration value {key}={value} must be >= 1e-5 (the entropy coefficient's "
                              "floor); the paper's cap is 100.")
        if key.endswith(("weight_decay", "kl_scale", "entropy_scale", "prefill", "horizon",
                         "record_every", "threads", "unimix", "eval_episodes", "eval_every")) and value < 0:
            raise ConfigError(f"Configuration value {key}={value} must be >= 0.")
    for option in cfg.env.options:
        if option in _OWNED_OPTIONS:
            raise ConfigError(f"env.options.{option} is not allowed: set it with "
                              f"{_OWNED_OPTIONS[option]} instead.")
    if not 0 <= cfg.train.greedy_envs <= cfg.env.num_envs:
        raise ConfigError(f"Configuration value train.greedy_envs={cfg.train.greedy_envs} must lie in "
                          f"[0, env.num_envs={cfg.env.num_envs}] (how many training envs act greedily); pass e.g. "
                          "train.greedy_envs=1, or 0 for the paper's behaviour.")
    if cfg.train.eval_every and not cfg.train.eval_episodes:
        raise ConfigError("train.eval_every needs train.eval_episodes > 0 (the episodes of each evaluation).")
    if cfg.env.size not in (16, 32, 64):
        raise ConfigError(f"Configuration value env.size={cfg.env.size} is not supported; "
                          "the image encoder and decoder are built for 16, 32 or 64 pixels.")
    if cfg.agent == "director" and cfg.imag_horizon % cfg.manager.goal_every:
        raise ConfigError(
            f"horizon={cfg.horizon} must be a multiple of manager.goal_every="
            f"{cfg.manager.goal_every} (or 0 for 2 * goal_every).")
    if cfg.agent == "director" and cfg.goal.context and cfg.replay.length <= cfg.manager.goal_every:
        raise ConfigError(
            f"goal.context=true learns pairs of states manager.goal_every={cfg.manager.goal_every} steps "
            f"apart in each replay sequence, so replay.length={cfg.replay.length} must be longer than "
            f"that. Raise replay.length or set goal.context=false.")
    if cfg.agent == "director" and cfg.goal.novelty and not cfg.goal.context:
        raise ConfigError(
            "goal.novelty=true scores the exploration bonus with an unconditioned autoencoder beside a "
            "conditioned goal autoencoder; without goal.context=true the goal autoencoder already is "
            "that. Set goal.context=true or goal.novelty=false.")
    rollouts = cfg.replay.batch * cfg.replay.length  # imagination starts from every replay step
    if cfg.agent == "director" and cfg.worker.manager_rows(rollouts) < 1:
        raise ConfigError(
            f"worker.replay_goals={cfg.worker.replay_goals} leaves the manager no imagined rollouts "
            f"of the {rollouts} (replay.batch * replay.length) of an update, so it could not learn. "
            f"Use a worker.replay_goals below {1 - 0.5 / rollouts:.4f}.")
    if cfg.replay.batch * cfg.replay.length > cfg.replay.capacity:
        raise ConfigError("replay.capacity must hold at least one batch (replay.batch * replay.length steps).")


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _parse_overrides(overrides: Iterable[str]) -> DictConfig:
    keys = set(valid_keys())
    dotlist = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} is not of the form key=value (e.g. env.world=maze-s).")
        key = item.split("=", 1)[0].strip()
        if key not in keys and not key.startswith(tuple(m + "." for m in _MAPPINGS)):
            raise ConfigError(f"Unknown configuration key {key!r}; did you mean {_nearest(key)!r}? "
                              "`director config` lists every key.")
        dotlist.append(item)
    try:
        return OmegaConf.from_dotlist(dotlist)
    except OmegaConfBaseException as e:  # pragma: no cover - malformed YAML value
        raise ConfigError(f"Cannot parse overrides {dotlist}: {e}") from None


def _merge(base: DictConfig, other: DictConfig | dict, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or ""
        if "Key" in type(e).__name__ or "not in struct" in str(e) or "ConfigKeyError" in type(e).__name__:
            raise ConfigError(f"Unknown configuration key {key!r} in {source}; did you mean "
                              f"{_nearest(key)!r}? `director config` lists every key.") from None
        msg = str(e).splitlines()[0]
        raise ConfigError(f"Bad configuration value for {key!r} in {source}: {msg}. "
                          "Fix the value to match the key's type (see `director config`).") from None


def _preset_data(preset: str | Path, chain: tuple[str, ...] = ()) -> DictConfig:
    """The YAML of a preset (name or path). A preset may start from another one with
    `base: NAME`; its own keys then override the base's."""
    path = Path(preset)
    if not path.suffix:
        path = PRESET_DIR / f"{preset}.yaml"
    if not path.exists():
        names = presets()
        close = difflib.get_close_matches(str(preset), names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"Unknown preset {str(preset)!r}.{hint} Available presets: {', '.join(names)} "
                          "(or pass the path of a YAML file).")
    try:
        data = OmegaConf.load(path)
    except Exception as e:  # noqa: BLE001 - any YAML error becomes a user error
        raise ConfigError(f"Cannot read preset file {path}: {e}. Fix the YAML syntax.") from None
    base = data.pop("base", None) if isinstance(data, DictConfig) else None
    if base is None:
        return data
    chain = chain + (str(preset),)
    if str(base) in chain:
        raise ConfigError(f"Preset {path.name} has a cycle of `base:` presets "
                          f"({' -> '.join(chain + (str(base),))}). Fix the `base:` entries.")
    return OmegaConf.merge(_preset_data(str(base), chain), data)


def load(preset: str | Path = "default", overrides: Iterable[str] = ()) -> Config:
    """Build a validated Config from a preset name or YAML path plus key=value overrides."""
    cfg = _merge(OmegaConf.structured(Config), _preset_data(preset), f"preset {preset}")
    cfg = _merge(cfg, _parse_overrides(overrides), "the command-line overrides")
    result: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    validate(result)
    return result


def apply_overrides(cfg: Config, overrides: Iterable[str], only: str | None = None) -> Config:
    """A copy of cfg with key=value overrides; `only` restricts them to one section
    (e.g. "train." when resuming a run, whose networks must keep their shapes)."""
    overrides = list(overrides)
    if only:
        for item in overrides:
            key = item.split("=", 1)[0].strip()
            if not key.startswith(only):
                raise ConfigError(f"Cannot change {key!r} when resuming a run: its networks and "
                                  f"replay were built with the stored value. Only {only}* keys may "
                                  "change; start a new run to change the rest.")
    merged = _merge(OmegaConf.structured(cfg), _parse_overrides(overrides), "the command-line overrides")
    result: Config = OmegaConf.to_object(merged)  # type: ignore[assignment]
    validate(result)
    return result


def from_dict(data: dict) -> Config:
    """Rebuild a Config from `to_dict` output (e.g. stored in a checkpoint)."""
    cfg = _merge(OmegaConf.structured(Config), data, "the stored configuration")
    result: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    validate(result)
    return result


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save(cfg: Config, path: str | Path) -> None:
    """Write the resolved configuration as YAML (atomically)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(to_yaml(cfg))
    tmp.replace(path)
