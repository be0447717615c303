"""World names -> gymnasium envs: `make`, `make_vector`, `names`, `describe`.

A name is either built in (`pinpad-three`, `maze-l`, `minigrid-fourrooms`, `miniworld-maze`, ...)
or a pattern: `gym:<id>`, `minigrid:<id>`, `miniworld:<id>`, `dmlab-<level>`, `maze:<path>` (a
layout text file, `worlds.mazes.parse_layout`), or `package.module:function` (your own env
factory, imported by name in every process, so it also works in subprocess envs and DDP ranks).
The built-in worlds are also registered with gymnasium as `director/<Name>-v0`
(`register_gymnasium`, `gymnasium_id`): `gymnasium.make("director/Maze-M-v0")` after `import
worlds`, or `gymnasium.make("worlds:director/Maze-M-v0")` without it.

Options accepted by every world (keyword arguments of `make`):
    size              image side in pixels, 16..1024 (default 64)
    seed              seeds the first reset and the action space (default None: random)
    action_repeat     repeat each action this many times, summing rewards (default 1; DMLab: 4,
                      done by DMLab itself)
    time_limit        episode length in env steps before truncation (default: the world's own;
                      Pin Pad 2000, mazes 200/400/800/1000); counts simulator steps, before
                      action_repeat
    one_hot           discrete worlds take one-hot float vectors, action space Box(0, 1, (n,))
                      (default False: Discrete(n)). Director's agent uses True.
    restart_on_error  rebuild the simulator when it raises, and a subprocess vector env whose
                      worker died (default True); the broken episode ends truncated and is marked
                      info["restarted"]
    max_restarts      more restarts than this within restart_window seconds stop the run with a
                      WorldError (default 10)
    restart_window    seconds (default 3600)
Per world kind:
    minigrid-* / minigrid:<id>   actions: "move" (turn left, turn right, forward) or "all" (7)
    minigrid / miniworld / gym   env_kwargs: dict passed to gymnasium.make
    package.module:function      env_kwargs: dict passed to the function
    dmlab-<level>                config: dict of extra DMLab config entries
Continuous action spaces are always exposed as Box(-1, 1) float32 and clipped.
"""
from __future__ import annotations

import functools
import importlib.util
import multiprocessing
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from worlds import dmlab, external, mazes, pinpad
from worlds.errors import WorldError, close_matches, did_you_mean
from worlds.wrappers import (ActionRepeat, NormalizeActions, OneHotActions, RestartOnError,
                             RestartVectorOnError, SeedFirstReset, TimeLimit)


@dataclass(frozen=True)
class _World:
    kind: str          # pinpad | maze | mazefile | minigrid | miniworld | gym | dmlab | import
    target: str        # task, env id or level
    description: str
    defaults: tuple[tuple[str, Any], ...] = ()   # per-world option defaults


def _builtin_worlds() -> dict[str, _World]:
    """Every built-in name, in the order `names()` lists them."""
    table: dict[str, _World] = {}
    for task in pinpad.TASKS:
        n = pinpad.parse_layout(pinpad.LAYOUTS[task]).max()
        table[f"pinpad-{task}"] = _World(
            "pinpad", task, f"Visual Pin Pad: step on {n} coloured pads in order 1..{n} for +10 "
            f"(top-down 16x14 grid, 5 actions, {pinpad.EPISODE_STEPS}-step episodes)")
    shapes = ("U-shaped", "S-shaped", "long snake", "longest snake")
    for task, shape in zip(mazes.TASKS, shapes):
        table[f"maze-{task}"] = _World(
            "maze", task, f"Grid maze {task.upper()} (MiniGrid): {shape} corridor, reach the green "
            f"goal, +1 per step on it (top-down, 5 actions, {mazes.TIME_LIMITS[task]}-step episodes)")
    for name, env_id, actions, text in (
            ("minigrid-empty", "MiniGrid-Empty-8x8-v0", "move", "an empty room"),
            ("minigrid-fourrooms", "MiniGrid-FourRooms-v0", "move", "four rooms"),
            ("minigrid-multiroom", "MiniGrid-MultiRoom-N4-S5-v1", "all", "four rooms joined by doors"),
            ("minigrid-doorkey", "MiniGrid-DoorKey-8x8-v0", "all", "fetch a key, unlock a door"),
            ("minigrid-lavacrossing", "MiniGrid-LavaCrossingS9N1-v0", "move", "cross a lava river")):
        table[name] = _World(
            "minigrid", env_id, f"MiniGrid {env_id}: {text}, reach the goal (top-down, "
            f"{3 if actions == 'move' else 7} actions)", (("actions", actions),))
    for name, env_id, text in (
            ("miniworld-maze", "MiniWorld-Maze-v0", "8x8 3D maze"),
            ("miniworld-maze-s2", "MiniWorld-MazeS2-v0", "2x2 3D maze"),
            ("miniworld-maze-s3", "MiniWorld-MazeS3-v0", "3x3 3D maze"),
            ("miniworld-fourrooms", "MiniWorld-FourRooms-v0", "four 3D rooms"),
            ("miniworld-oneroom", "MiniWorld-OneRoom-v0", "one 3D room")):
        table[name] = _World(
            "miniworld", env_id, f"MiniWorld {env_id}: {text}, reach the red box (first-person "
            "3D, headless; DMLab stand-in)")
    for level in ("explore_goal_locations_small", "explore_goal_locations_large"):
        table[f"dmlab-{level}"] = _World(
            "dmlab", level, f"DeepMind Lab {level}: find the goal in a 3D maze (first-person, "
            "9 actions, action repeat 4)")
    return table


_WORLDS = _builtin_worlds()

_PATTERNS: dict[str, str] = {
    "gym:<id>": "any gymnasium env id; image observation or its rgb_array render, resized",
    "minigrid:<id>": "any MiniGrid env id (e.g. minigrid:MiniGrid-KeyCorridorS3R3-v0), top-down RGB",
    "miniworld:<id>": "any MiniWorld env id (e.g. miniworld:MiniWorld-TMaze-v0), first-person RGB",
    "dmlab-<level>": "any DeepMind Lab level (DMLab-30 name or full path); needs deepmind_lab",
    "maze:<path>": "your own grid maze: a text layout, '#' wall, ' ' floor, S start, G goal",
    "<module>:<function>": "your own env: an importable function returning a gymnasium env",
}
_IMPORT_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")

_COMMON = ("action_repeat", "time_limit", "one_hot", "restart_on_error", "max_restarts", "restart_window")
_EXTRA = {
    "pinpad": (), "maze": (), "mazefile": (), "import": ("env_kwargs",),
    "minigrid": ("actions", "env_kwargs"),
    "miniworld": ("env_kwargs",), "gym": ("env_kwargs",),
    "dmlab": ("config",),
}


def names() -> list[str]:
    """Built-in world names, then the accepted name patterns (written with <...>)."""
    return list(_WORLDS) + list(_PATTERNS)


def describe(name: str) -> str:
    """One line describing world `name` (a built-in name, a pattern or a concrete pattern use)."""
    if name in _PATTERNS:
        return _PATTERNS[name]
    world = _resolve(name)
    if name in _WORLDS:
        text = world.description
    elif world.kind == "mazefile":
        maze = mazes.GridMaze(rows=mazes.load_layout(world.target))
        text = (f"Grid maze from {world.target}: {maze.width}x{maze.height} cells, shortest path "
                f"{len(maze.shortest_path())} steps, +1 per step on the goal, {maze.max_steps}-step episodes")
        maze.close()
    elif world.kind == "import":
        text = f"your env {world.target} (image observations resized to size x size)"
    elif world.kind == "dmlab":
        text = f"DeepMind Lab level {dmlab.level_path(world.target)} (first-person, 9 actions)"
    else:
        text = f"{world.kind} env {world.target} (image observations resized to size x size)"
    if world.kind == "dmlab" and not _dmlab_installed():
        text += " [needs deepmind_lab, not installed]"
    return text


def _dmlab_installed() -> bool:
    try:
        return importlib.util.find_spec("deepmind_lab") is not None
    except (ImportError, ValueError):   # e.g. a None placeholder in sys.modules
        return False


def _resolve(name: str) -> _World:
    if not isinstance(name, str):
        raise WorldError(
            f"A world name must be a string, got {name!r}. Run `director worlds list` for names.")
    if name in _WORLDS:
        return _WORLDS[name]
    for prefix, kind in (("gym:", "gym"), ("minigrid:", "minigrid"), ("miniworld:", "miniworld"),
                         ("dmlab-", "dmlab"), ("maze:", "mazefile")):
        if name.startswith(prefix) and len(name) > len(prefix):
            target = name[len(prefix):]
            defaults = (("actions", "all"),) if kind == "minigrid" else ()
            return _World(kind, target, "", defaults)
    if _IMPORT_SPEC.fullmatch(name):
        return _World("import", name, "")
    raise WorldError(
        f"Unknown world {name!r}.{did_you_mean(name, _WORLDS)} Use a built-in name (listed by "
        f"`director worlds list` or worlds.names()) or a pattern: {', '.join(_PATTERNS)}.")


@dataclass(frozen=True)
class _Options:
    size: int
    action_repeat: int
    time_limit: int | None
    one_hot: bool
    restart_on_error: bool
    max_restarts: int
    restart_window: float
    actions: str
    env_kwargs: dict[str, Any]
    config: dict[str, Any]


def _check_int(option: str, value: Any, low: int, high: int | None = None) -> int:
    valid = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not valid or value < low or (high is not None and value > high):
        allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
        raise WorldError(f"Option {option}={value!r} is not allowed: {option} must be {allowed}.")
    return int(value)


def _check_positive(option: str, value: Any) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
        raise WorldError(f"Option {option}={value!r} is not allowed: {option} must be a number > 0.")
    return float(value)


def _check_bool(option: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise WorldError(f"Option {option}={value!r} is not allowed: {option} must be True or False.")
    return value


def _check_dict(option: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise WorldError(
            f"Option {option}={value!r} is not allowed: {option} must be a dict with string keys.")
    return dict(value)


def _check_options(name: str, world: _World, size: Any, seed: Any,
                   options: dict[str, Any]) -> _Options:
    allowed = _COMMON + _EXTRA[world.kind]
    for option in options:
        if option not in allowed:
            hint = close_matches(option, allowed + ("size", "seed"))
            hint_text = f" Did you mean {hint[0]}?" if hint else ""
            raise WorldError(
                f"World {name!r} does not take option {option!r}.{hint_text} Its options are: "
                f"size, seed, {', '.join(allowed)}.")
    if seed is not None:
        _check_int("seed", seed, 0)
    values = {**dict(world.defaults), **options}
    actions = values.get("actions", "all")
    if actions not in ("move", "all"):
        raise WorldError(
            f"Option actions={actions!r} is not allowed: actions must be 'move' (turn left, "
            "turn right, forward) or 'all' (MiniGrid's 7 actions).")
    time_limit = values.get("time_limit")
    is_dmlab = world.kind == "dmlab"
    repeat = values.get("action_repeat", dmlab.DEFAULT_REPEAT if is_dmlab else 1)
    return _Options(
        size=_check_int("size", size, 16, 1024),
        action_repeat=_check_int("action_repeat", repeat, 1),
        time_limit=None if time_limit is None else _check_int("time_limit", time_limit, 1),
        one_hot=_check_bool("one_hot", values.get("one_hot", False)),
        restart_on_error=_check_bool("restart_on_error", values.get("restart_on_error", True)),
        max_restarts=_check_int("max_restarts", values.get("max_restarts", 10), 1),
        restart_window=_check_positive("restart_window", values.get("restart_window", 3600.0)),
        actions=actions,
        env_kwargs=_check_dict("env_kwargs", values.get("env_kwargs", {})),
        config=_check_dict("config", values.get("config", {})),
    )


def _build(world: _World, opts: _Options) -> gym.Env:
    """The world's simulator with Dict observations and info["success"], before common wrappers."""
    if world.kind == "pinpad":
        return pinpad.PinPad(world.target, size=opts.size, render_mode="rgb_array")
    if world.kind in ("maze", "mazefile"):
        rows = mazes.load_layout(world.target) if world.kind == "mazefile" else None
        return mazes.GridMaze(world.target, rows=rows, size=opts.size, max_steps=opts.time_limit,
                              render_mode="rgb_array")
    if world.kind == "import":
        return external.make_import(world.target, size=opts.size, time_limit=opts.time_limit,
                                    env_kwargs=opts.env_kwargs)
    if world.kind == "minigrid":
        return external.make_minigrid(world.target, size=opts.size, actions=opts.actions,
                                      time_limit=opts.time_limit, env_kwargs=opts.env_kwargs)
    if world.kind == "miniworld":
        return external.make_miniworld(world.target, size=opts.size, time_limit=opts.time_limit,
                                       env_kwargs=opts.env_kwargs)
    if world.kind == "gym":
        return external.make_gym(world.target, size=opts.size, time_limit=opts.time_limit,
                                 env_kwargs=opts.env_kwargs)
    if world.kind == "dmlab":
        return dmlab.DMLab(world.target, size=opts.size, action_repeat=opts.action_repeat,
                           config=opts.config, render_mode="rgb_array")
    raise AssertionError(world.kind)


def make(name: str, *, size: int = 64, seed: int | None = None, **options: Any) -> gym.Env:
    """Make world `name` as a gymnasium env; see the module docstring for names and options.

    Observation: Dict with "image" uint8 (size, size, 3) (plus float32 vectors for worlds that
    have them). Action space: Discrete(n), Box(0, 1, (n,)) with `one_hot=True`, or Box(-1, 1)
    float32 for continuous worlds. `info["success"]` is a bool on every step. Raises WorldError
    for an unknown name, a bad option or a missing simulator.
    """
    world = _resolve(name)
    opts = _check_options(name, world, size, seed, options)
    build: Callable[[], gym.Env] = functools.partial(_build, world, opts)
    env = (RestartOnError(build, max_restarts=opts.max_restarts, window=opts.restart_window)
           if opts.restart_on_error else build())
    if world.kind == "pinpad":
        env = TimeLimit(env, opts.time_limit or pinpad.EPISODE_STEPS)
    elif world.kind == "dmlab" and opts.time_limit is not None:
        env = TimeLimit(env, opts.time_limit)
    if opts.action_repeat > 1 and world.kind != "dmlab":
        env = ActionRepeat(env, opts.action_repeat)
    if opts.one_hot:
        if not isinstance(env.action_space, spaces.Discrete):
            env.close()
            raise WorldError(
                f"Option one_hot=True is not allowed for {name!r}: its actions are "
                f"{env.action_space}, not discrete. Remove one_hot for continuous worlds.")
        env = OneHotActions(env)
    elif isinstance(env.action_space, spaces.Box):
        env = NormalizeActions(env)
    env = SeedFirstReset(env, seed)
    if seed is not None:
        env.action_space.seed(seed)
    return env


def make_vector(name: str, num_envs: int, *, size: int = 64, seed: int | None = None,
                asynchronous: bool = False, context: str | None = None, **options: Any) -> VectorEnv:
    """`num_envs` copies of world `name` in a gymnasium vector env (env i seeded with seed + i).

    Uses SyncVectorEnv, or AsyncVectorEnv (one process per env) when `asynchronous` (rebuilt
    by RestartVectorOnError when a worker process dies, unless restart_on_error=False), with
    gymnasium's NEXT_STEP autoreset: after an episode ends, the next `step()` of that env
    returns the first observation of a new episode (its action is ignored). Async processes
    start with `context` "forkserver" (default where available) or "spawn"; "fork" is refused
    because MiniWorld's GL context makes forked children hang. Observations are batched:
    obs["image"] has shape (num_envs, size, size, 3).
    """
    num_envs = _check_int("num_envs", num_envs, 1)
    world = _resolve(name)
    opts = _check_options(name, world, size, seed, options)
    if world.kind == "dmlab":
        dmlab.import_deepmind_lab()
    seeds = [None if seed is None else seed + index for index in range(num_envs)]
    fns = [functools.partial(make, name, size=size, seed=s, **options) for s in seeds]
    if not asynchronous:
        return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)
    if context is None:
        methods = multiprocessing.get_all_start_methods()
        context = "forkserver" if "forkserver" in methods else "spawn"
    if context not in ("forkserver", "spawn"):
        raise WorldError(
            f"Option context={context!r} is not allowed: async worlds start processes with "
            "'forkserver' or 'spawn' ('fork' hangs once MiniWorld has created its GL context).")
    build = functools.partial(AsyncVectorEnv, fns, context=context, autoreset_mode=AutoresetMode.NEXT_STEP)
    if not opts.restart_on_error:
        return build()
    return RestartVectorOnError(build, max_restarts=opts.max_restarts, window=opts.restart_window)


# --------------------------------------------------------------------------------------- gymnasium
GYM_NAMESPACE = "director"
_GYM_WORDS = {"pinpad": "PinPad", "minigrid": "MiniGrid", "miniworld": "MiniWorld", "dmlab": "DMLab"}


def gymnasium_id(name: str) -> str:
    """The gymnasium id of built-in world `name`: "maze-m" -> "director/Maze-M-v0",
    "pinpad-three" -> "director/PinPad-Three-v0"."""
    words = [_GYM_WORDS.get(w, w.upper() if len(w) <= 2 else w[:1].upper() + w[1:]) for w in name.split("-")]
    return f"{GYM_NAMESPACE}/{'-'.join(words)}-v0"


def _gymnasium_entry(name: str, render_mode: str | None = None, **options: Any) -> gym.Env:
    """gymnasium's entry point for our worlds: `make(name, **options)`; frames are rgb_array."""
    if render_mode not in (None, "rgb_array"):
        raise WorldError(f"World {name!r} renders only render_mode='rgb_array', not {render_mode!r}.")
    return make(name, **options)


def register_gymnasium() -> list[str]:
    """Register every built-in world with gymnasium as `director/<Name>-v0` (its options are
    `gymnasium.make` keyword arguments: size, seed, time_limit, ...). Returns the ids."""
    ids = []
    for name in _WORLDS:
        env_id = gymnasium_id(name)
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=f"{__name__}:_gymnasium_entry", kwargs={"name": name})
        ids.append(env_id)
    return ids
