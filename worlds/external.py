"""Adapters for simulators registered with gymnasium: MiniGrid tasks, MiniWorld 3D, any gym id,
and a user's own env factory named by an importable spec (`mypkg.envs:make_env`).

Each builder returns an env whose observation is {"image": (size, size, 3) uint8, ...} and whose
info carries `success` on every step. Time limits are the simulator's own unless `time_limit`
is given, which sets the simulator's native limit (MiniGrid `max_steps`, MiniWorld
`max_episode_steps`, gymnasium's `max_episode_steps`).

MiniGrid tasks are seen fully observed from above (MiniGrid's `RGBImgObsWrapper`, no view-cone
highlight), resized to size×size; success is a positive reward at termination (reaching the goal).
MiniWorld renders a first-person view natively at size×size, headless; success is a positive
reward (its tasks pay only on completion). `import miniworld` creates an OpenGL context, after
which `fork` hangs, so miniworld is imported here lazily and async vector envs use spawn or
forkserver (see `worlds.make_vector`).
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium import spaces
from gymnasium.wrappers import TransformAction

from worlds.errors import WorldError, did_you_mean
from worlds.wrappers import ImageObs, Resize, SuccessInfo, TimeLimit, is_image_space

MINIGRID_MOVE_ACTIONS = 3   # MiniGrid's first three actions: turn left, turn right, forward


def _reached_goal(reward: float, terminated: bool, info: dict[str, Any]) -> bool:
    return terminated and reward > 0


def _positive_reward(reward: float, terminated: bool, info: dict[str, Any]) -> bool:
    return reward > 0


def _gym_make(env_id: str, family: str, **kwargs: Any) -> gym.Env:
    """gym.make that turns gymnasium's registry and argument errors into WorldError."""
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as error:
        message = str(error).strip().rstrip(".")
        if "did you mean" not in message.lower():
            known = [key for key in gym.registry if family == "gym" or key.lower().startswith(family)]
            message += "." + did_you_mean(env_id, known)
        else:
            message += "."
        raise WorldError(
            f"Cannot make gymnasium env {env_id!r}: {message} "
            f"Check the id (registered ids are listed by gymnasium.pprint_registry()) and that the "
            f"package providing it is installed.") from error
    except TypeError as error:
        raise WorldError(
            f"Cannot make gymnasium env {env_id!r} with arguments {sorted(kwargs)}: {error}. "
            f"Fix or remove the offending entry of the env_kwargs option.") from error


# --------------------------------------------------------------------------------------- MiniGrid
def make_minigrid(env_id: str, *, size: int, actions: str = "all", time_limit: int | None = None,
                  env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """A MiniGrid task `env_id`, fully observed as an RGB image of the whole grid.

    `actions="move"` keeps only turn left / turn right / forward (Discrete(3), a prefix of
    MiniGrid's action list, so indices are unchanged); `"all"` keeps MiniGrid's Discrete(7).
    """
    import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
    from minigrid.wrappers import RGBImgObsWrapper

    kwargs = dict(env_kwargs or {})
    if time_limit is not None:
        kwargs["max_steps"] = int(time_limit)
    env = _gym_make(env_id, "minigrid", **kwargs)
    base = env.unwrapped
    base.highlight = False   # no view-cone shading: the agent sees the whole grid
    tile = max(8, -(-size // max(base.width, base.height)))   # >= 8 px so the agent's triangle survives
    env = RGBImgObsWrapper(env, tile_size=tile)
    env = Resize(ImageObs(env), size)
    env = SuccessInfo(env, _reached_goal)
    if actions == "move":
        env = TransformAction(env, int, spaces.Discrete(MINIGRID_MOVE_ACTIONS))
    return env


# --------------------------------------------------------------------------------------- MiniWorld
def import_miniworld() -> Any:
    """Import miniworld headless: set PYGLET_HEADLESS (when no display) and LP_NUM_THREADS first.

    `LP_NUM_THREADS=0` makes Mesa's llvmpipe render on the calling thread, which is faster for
    these small frames. Both are defaults only: values the user set are kept.
    """
    if "miniworld" not in sys.modules:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ.setdefault("PYGLET_HEADLESS", "1")
            if "pyglet" in sys.modules and os.environ["PYGLET_HEADLESS"] not in ("0", ""):
                sys.modules["pyglet"].options["headless"] = True
        os.environ.setdefault("LP_NUM_THREADS", "0")
    import miniworld

    return miniworld


def make_miniworld(env_id: str, *, size: int, time_limit: int | None = None,
                   env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """A MiniWorld task `env_id`, first-person RGB at size×size, rendered headless."""
    import_miniworld()
    kwargs = dict(env_kwargs or {})
    kwargs.update(obs_width=size, obs_height=size)
    if time_limit is not None:
        kwargs["max_episode_steps"] = int(time_limit)
    env = _gym_make(env_id, "miniworld", **kwargs)
    env = Resize(ImageObs(env), size)
    return SuccessInfo(env, _positive_reward)


# --------------------------------------------------------------------------------------- any gym id
def make_gym(env_id: str, *, size: int, time_limit: int | None = None,
             env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """Any gymnasium id: its image observation when it has one, else its rgb_array render.

    An (H, W, 3) uint8 observation, or a Dict observation with such an "image" entry (other Box
    entries kept as float32 vectors), is used directly; otherwise the env is made with
    `render_mode="rgb_array"` and the rendered frame is the observation. Success is the env's
    own `info["success"]` / `info["is_success"]` when it reports one, else always False.
    """
    kwargs = dict(env_kwargs or {})
    if time_limit is not None:
        kwargs["max_episode_steps"] = int(time_limit)
    return _pixels(lambda **extra: _gym_make(env_id, "gym", **kwargs, **extra), size)


def _pixels(make: Callable[..., gym.Env], size: int) -> gym.Env:
    """`make()`'s env seen through its image observation (an (H, W, 3) uint8 observation or a
    Dict's "image" entry), else through `make(render_mode="rgb_array")`'s render; resized to
    size×size, with info["success"] (the env's own, else False)."""
    env = make()
    space = env.observation_space
    has_image = is_image_space(space) or (
        isinstance(space, spaces.Dict) and "image" in space.spaces and is_image_space(space["image"]))
    if has_image:
        env = ImageObs(env)
    else:
        env.close()
        env = ImageObs(make(render_mode="rgb_array"), from_render=True)
    return SuccessInfo(Resize(env, size))


# --------------------------------------------------------------------------------------- your own env
def load_factory(spec: str) -> Callable[..., gym.Env]:
    """The callable named by an importable spec "package.module:function" (or ":Class.method")."""
    module_name, _, attr = spec.partition(":")
    fix = ("A world spec is 'package.module:function', where the function returns a gymnasium "
           "env; the module must be importable in every process (install its package or put its "
           "folder on PYTHONPATH).")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise WorldError(f"Cannot import module {module_name!r} of world {spec!r}: {error}. {fix}") from None
    try:
        for part in attr.split("."):
            target = getattr(target, part)
    except AttributeError:
        raise WorldError(f"Module {module_name!r} has no {attr!r} (world {spec!r}). {fix}") from None
    if not callable(target):
        raise WorldError(f"{spec!r} is a {type(target).__name__}, not a callable. {fix}")
    return target


def make_import(spec: str, *, size: int, time_limit: int | None = None,
                env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """A user's env: `factory(**env_kwargs)` of the spec "package.module:function", seen as
    pixels like any gym id (`_pixels`; a factory without image observations must accept
    `render_mode`), truncated after `time_limit` steps when given."""
    factory = load_factory(spec)

    def make(**extra: Any) -> gym.Env:
        try:
            env = factory(**dict(env_kwargs or {}), **extra)
        except TypeError as error:
            raise WorldError(f"Calling {spec!r} with {sorted({**(env_kwargs or {}), **extra})} failed: "
                             f"{error}. Fix the env_kwargs option or the function's arguments.") from None
        if not isinstance(env, gym.Env):
            raise WorldError(f"{spec!r} returned a {type(env).__name__}, not a gymnasium.Env. Return "
                             "the env from the function.")
        return env

    env = _pixels(make, size)
    return TimeLimit(env, time_limit) if time_limit is not None else env

