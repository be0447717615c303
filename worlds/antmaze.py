"""The Egocentric Ant Maze of the Director paper (ALGORITHM.md §9), on dm_control locomotion.

dm_control's Ant walker in a labmaze `FixedMazeWithRandomGoals` arena (`MazeWithTargets`,
xy_scale 1.2, z_height 2.0) with one wall colour per numbered wall segment (matplotlib's tab10
colours 1-9; `*` light grey 0.8), a target sphere of radius 1.2 at ground height at `G`, the ant
spawned at `P` with a random heading. Control at 50 Hz (physics step 5 ms), 60 s = 3000 steps.

Observation: "image" (size, size, 3) uint8 from the ant's egocentric camera (camera 4 of the
composed model), plus proprioceptive float32 vectors, all in the ant's own frame: joint
positions and velocities, body height, the world's z axis in the body frame (orientation),
egocentric positions of bodies, appendages and end effectors, body orientations, and the
accelerometer, gyro, velocimeter and touch sensors, and the actuators' last commands
(`prev_action`). No global position. Action: Box(-1, 1, (8,))
torques of the 8 hip and ankle motors.

Reward 1.0 on each step the ant touches the target; the target is then re-armed, so staying on it
pays every step. The episode never ends on success (only on the time limit, `truncated=True`,
or if the ant's aliveness drops below dm_control's threshold, which an upright-spawned ant only
reaches by flipping over). `info["success"]` is True on the steps that pay.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from worlds.dmenv import DmEnvWorld, import_dm_control

TASKS = ("s", "m", "l", "xl")
CONTROL_HZ = 50
PHYSICS_TIMESTEP = min(1 / 200, 1 / CONTROL_HZ)
TIME_LIMIT_S = 60.0
EPISODE_STEPS = int(TIME_LIMIT_S * CONTROL_HZ)   # 3000
XY_SCALE = 1.2
Z_HEIGHT = 2.0
TARGET_RADIUS = 1.2
EGOCENTRIC_CAMERA = "walker/egocentric_camera"

# matplotlib's tab10 colours 1..9 (0 is unused), for wall digits '1'..'9'; other walls 0.8 grey.
TAB10 = ((1.000, 0.498, 0.055), (0.173, 0.627, 0.173), (0.839, 0.153, 0.157),
         (0.580, 0.404, 0.741), (0.549, 0.337, 0.294), (0.890, 0.467, 0.761),
         (0.498, 0.498, 0.498), (0.737, 0.741, 0.133), (0.090, 0.745, 0.812))
WALL_COLOURS = {**{str(digit): rgb for digit, rgb in enumerate(TAB10, start=1)},
                "*": (0.8, 0.8, 0.8)}

# ALGORITHM.md §9: P spawn, G goal, '.' floor, digits / '*' walls; cells outside the outer wall
# (blank in S and M, dots in L and XL) are floor the ant cannot reach.
LAYOUTS = {
    "s": """\
      66666
      6...6
      6.G.6
      6...6
      5...4
      5...4
1111555...4
1.........3
1.P.......3
1.........3
11112223333
""",
    "m": """\
66668887777
6.........7
6.G.......7
6.........7
6665555...4
      5...4
1111555...4
1.........3
1.P.......3
1.........3
11112223333
""",
    "l": """\
88887776666...
8.........6...
8.G.......6...
8.........6555
8888777......5
......7......5
11111.7......5
1...1.7999...5
1...1....9...5
1...111999...5
2............4
2....P.......4
2............4
22223333334444
""",
    "xl": """\
99999998888.44444
9.........8.4...4
9.......G.8.4...4
9.........8.4...4
6...7778888.5...3
6...7.......5...3
6...777555555...3
5...............3
5...............3
5...............3
5555444...666...3
......4...6.6...3
1111444...6.6...3
1.........2.1...1
1.P.......2.1...1
1.........2.1...1
11111112222.11111
""",
}


def is_wall(cell: str) -> bool:
    """True for a wall character of a layout (a digit or '*')."""
    return cell in WALL_COLOURS


def build_task(task: str, size: int, seed: int | None) -> Any:
    """The dm_control `composer.Environment` of Ant Maze `task` ('s' .. 'xl'), camera size x size."""
    import_dm_control(f"antmaze-{task}", "antmaze")
    import labmaze
    from dm_control import composer, mjcf
    from dm_control.locomotion.arenas import mazes
    from dm_control.locomotion.props import target_sphere
    from dm_control.locomotion.tasks import random_goal_maze
    from dm_control.locomotion.walkers import ant

    class WallColour(composer.Entity):
        """One flat-coloured wall texture (MazeWithTargets takes a texture provider per wall)."""

        def _build(self, name: str, rgb: tuple[float, float, float]) -> None:
            self._mjcf_root = mjcf.RootElement(model=name)
            self._textures = [self._mjcf_root.asset.add(
                "texture", type="2d", name="wall", builtin="flat", rgb1=rgb, width=100, height=100)]

        @property
        def mjcf_model(self) -> Any:
            return self._mjcf_root

        @property
        def textures(self) -> list[Any]:
            return self._textures

    class StayAtGoal(random_goal_maze.RepeatSingleGoalMaze):
        """Pays on each step the target is touched, re-arms it, never respawns or ends on it."""

        def after_step(self, physics: Any, random_state: Any) -> None:
            random_goal_maze.NullGoalMaze.after_step(self, physics, random_state)
            self._rewarded_this_step = self._target.activated
            if self._rewarded_this_step:
                self._targets_obtained += 1
                self._target.reset(physics)

        def before_step(self, physics: Any, action: Any, random_state: Any) -> None:
            # Through the walker (not composer's plain set_control), so prev_action is tracked.
            self._walker.apply_action(physics, action, random_state)

        def should_terminate_episode(self, physics: Any) -> bool:
            return random_goal_maze.NullGoalMaze.should_terminate_episode(self, physics)

    layout = LAYOUTS[task]
    random_state = np.random.RandomState(seed)
    maze = labmaze.FixedMazeWithRandomGoals(
        entity_layer=layout.replace(".", " "), num_spawns=1, num_objects=1,
        random_state=np.random.RandomState(random_state.randint(2**31)))
    walls = {char: WallColour(name=f"wall_{'star' if char == '*' else char}", rgb=rgb)
             for char, rgb in WALL_COLOURS.items() if char in layout}
    arena = mazes.MazeWithTargets(maze=maze, xy_scale=XY_SCALE, z_height=Z_HEIGHT,
                                  wall_textures=walls, name=f"antmaze_{task}")
    target = target_sphere.TargetSphere(radius=TARGET_RADIUS, height_above_ground=0.0)
    walker = ant.Ant()
    env_task = StayAtGoal(
        walker=walker, maze_arena=arena, target=target, target_reward_scale=1.0,
        randomize_spawn_rotation=True, contact_termination=False,
        physics_timestep=PHYSICS_TIMESTEP, control_timestep=1 / CONTROL_HZ)
    walker.observables.prev_action.enabled = True   # the actuator state: last commanded torques
    walker.observables.egocentric_camera.height = size
    walker.observables.egocentric_camera.width = size
    return composer.Environment(task=env_task, time_limit=TIME_LIMIT_S, random_state=random_state,
                                strip_singleton_obs_buffer_dim=True)


class AntMaze(DmEnvWorld):
    """Egocentric Ant Maze `task` ('s', 'm', 'l', 'xl'); see the module docstring."""

    def __init__(self, task: str, *, size: int = 64, render_mode: str | None = None):
        if task not in LAYOUTS:
            raise ValueError(f"unknown Ant Maze {task!r}; choose from {TASKS}")
        self.task = task
        self.size = int(size)
        super().__init__(lambda seed: build_task(task, self.size, seed), image_key=EGOCENTRIC_CAMERA,
                         render_mode=render_mode)

    @property
    def physics(self) -> Any:
        """The MuJoCo physics of the current episode."""
        return self.dm_env.physics

    @property
    def walker(self) -> Any:
        """dm_control's Ant walker (for tests and inspection)."""
        return self.dm_env.task._walker

    def render_top(self, size: int = 256) -> np.ndarray:
        """A (size, size, 3) uint8 view of the whole arena from the arena's top camera."""
        return self.physics.render(size, size, camera_id="top_camera")
