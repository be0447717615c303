"""Environments for Director as gymnasium envs that see pixels.

    import worlds
    env = worlds.make("pinpad-four", size=64, seed=0, one_hot=True)
    obs, info = env.reset()                 # obs["image"]: (64, 64, 3) uint8
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    info["success"]                         # True on the step the task is achieved

    vec = worlds.make_vector("maze-m", 4, seed=0)            # gymnasium SyncVectorEnv
    worlds.show("maze-xl", steps=300, out="maze.gif")        # random rollout -> GIF + PNG strip

Worlds (`worlds.names()`, `worlds.describe(name)`):
- built in: Visual Pin Pad `pinpad-three` ... `pinpad-eight` (pure numpy) and top-down grid mazes
  `maze-s/m/l/xl` (on MiniGrid's engine);
- on MuJoCo (optional extras `antmaze`, `memorymaze`): the Egocentric Ant Maze `antmaze-s/m/l/xl`
  of the Director paper (continuous actions, proprioceptive vectors) and Memory Maze
  `memorymaze-9x9` ... `memorymaze-15x15`;
- adapters: MiniGrid tasks (`minigrid-fourrooms`, `minigrid:<id>`), MiniWorld 3D
  (`miniworld-maze`, `miniworld:<id>`), DeepMind Lab (`dmlab-<level>`, needs deepmind_lab),
  and any gymnasium id (`gym:<id>`);
- your own: a maze layout file (`maze:PATH`) or env factory (`package.module:function`);
- in gymnasium: every built-in world as `director/<Name>-v0`, e.g.
  `gymnasium.make("director/PinPad-Three-v0")`.

Every world's observation is a Dict with "image" uint8 (size, size, 3); actions are Discrete(n)
(Box(0, 1, (n,)) one-hot with `one_hot=True`) or Box(-1, 1) float32; a time-limit end is
`truncated=True, terminated=False`. Problems a user can fix raise `WorldError`. This package
depends on nothing else of Director's.
"""
from __future__ import annotations

from worlds.errors import WorldError
from worlds.registry import describe, gymnasium_id, make, make_vector, names, register_gymnasium
from worlds.preview import show

register_gymnasium()   # gymnasium.make("director/Maze-M-v0") once `worlds` is imported

__all__ = ["WorldError", "describe", "gymnasium_id", "make", "make_vector", "names",
           "register_gymnasium", "show"]
