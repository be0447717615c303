"""Adapters for simulators registered with gymnasium: MiniGrid tasks, MiniWorld 3D, any gym id.

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

import os
import sys
from typing import Any

import gymnasium as gym
from gymnasium import spaces
from gymnasium.wrappers import TransformAction

from worlds.errors import WorldError, did_you_mean
from worlds.wrappers import ImageObs, Resize, SuccessInfo, is_image_space

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
    env = _gym_make(env_id, "gym", **kwargs)
    space = env.observation_space
    has_image = is_image_space(space) or (
        isinstance(space, spaces.Dict) and "image" in space.spaces and is_image_space(space["image"]))
    if has_image:
        env = ImageObs(env)
    else:
        env.close()
        env = ImageObs(_gym_make(env_id, "gym", render_mode="rgb_array", **kwargs), from_render=True)
    return SuccessInfo(Resize(env, size))

