"""Tests for director.config: presets, the paper preset's published values, error messages for
unknown keys, wrong types and out-of-range values, and the `director` command line's handling
of configuration errors (ALGORITHM.md, ARCHITECTURE.md "Configuration")."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from director import config as config_lib
from director.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("preset", config_lib.presets())
def test_every_preset_loads_and_validates(preset):
    cfg = config_lib.load(preset)
    config_lib.validate(cfg)
    assert cfg.imag_horizon % cfg.manager.goal_every == 0
    # Round trip through the stored form (checkpoints).
    assert config_lib.from_dict(config_lib.to_dict(cfg)) == cfg


def test_presets_include_debug_default_paper():
    assert {"debug", "default", "paper"} <= set(config_lib.presets())


def test_paper_preset_has_every_published_value():
    c = config_lib.load("paper")
    assert c.agent == "director"
    assert c.manager.goal_every == 8 and c.imag_horizon == 16
    r = c.model.rssm
    assert (r.deter, r.stoch, r.classes, r.hidden) == (1024, 32, 32, 1024)
    assert c.model.cnn_depth == 64 and c.env.size == 64
    assert (c.model.mlp_layers, c.model.mlp_units) == (4, 512)
    assert (c.replay.batch, c.replay.length) == (16, 64)
    assert (c.model.kl_target, c.model.kl_balance, c.model.kl_scale) == (3.5, 0.8, 1.0)
    assert (c.goal.code_vars, c.goal.code_classes, c.goal.kl_target) == (8, 8, 10.0)
    assert (c.goal.mlp_layers, c.goal.mlp_units) == (4, 512)
    assert (c.manager.extr, c.manager.expl) == (1.0, 0.1)
    assert c.worker.goal_reward == "max_cosine" and (c.worker.goal, c.worker.extr) == (1.0, 0.0)
    assert (c.replay.capacity, c.replay.prefill, c.replay.train_every) == (1_000_000, 10_000, 16)
    assert c.env.num_envs == 4
    opts = [c.model.opt, c.goal.opt]
    for ac in (c.manager.ac, c.worker.ac):
        assert (ac.discount, ac.lambda_, ac.slow_every, ac.unimix) == (0.99, 0.95, 100, 0.01)
        assert (ac.mlp_layers, ac.mlp_units) == (4, 512)
        assert (ac.return_decay, ac.return_min_std, ac.advantage_decay) == (0.999, 0.01, 0.99)
        assert (ac.entropy_target, ac.entropy_scale, ac.entropy_rate) == (0.5, 1.0, 1.1)
        assert ac.actor_ema == 0.0  # the paper evaluates the live actor
        opts += [ac.actor_opt, ac.critic_opt]
    for o in opts:
        assert (o.lr, o.eps, o.clip, o.weight_decay) == (1e-4, 1e-6, 100.0, 1e-2)


def test_default_horizon_is_twice_k():
    cfg = config_lib.load("debug", ["manager.goal_every=3", "horizon=0"])
    assert cfg.imag_horizon == 6
    with pytest.raises(ConfigError, match="goal_every"):
        config_lib.load("debug", ["manager.goal_every=3", "horizon=7"])


@pytest.mark.parametrize("typo,nearest", [
    ("model.rssm.detr", "model.rssm.deter"),
    ("manager.goal_evry", "manager.goal_every"),
    ("model.rssm.mlp_units", "model.mlp_units"),
    ("worker.goal_every", "manager.goal_every"),
    ("detr", "model.rssm.deter"),
])
def test_unknown_key_names_the_nearest_valid_key(typo, nearest):
    with pytest.raises(ConfigError) as err:
        config_lib.load("debug", [f"{typo}=3"])
    assert repr(typo) in str(err.value)
    assert f"did you mean {nearest!r}" in str(err.value)


def test_unknown_key_in_a_preset_file_names_the_nearest_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  rssm: {detr: 3}\n")
    with pytest.raises(ConfigError, match="model.rssm.deter"):
        config_lib.load(path)


def test_preset_with_a_base_overrides_only_its_own_keys(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: debug\nenv: {world: maze-s}\nworker: {ac: {entropy_target: 0.9}}\n")
    expected = config_lib.load("debug", ["env.world=maze-s", "worker.ac.entropy_target=0.9"])
    assert config_lib.load(path) == expected
    assert config_lib.load(path).env.size == config_lib.load("debug").env.size


def test_pinpad_preset_is_default_with_the_papers_manager_and_a_more_exploratory_worker():
    expected = config_lib.load("default", ["env.world=pinpad-three", "worker.ac.entropy_target=0.9",
                                           "model.kl_target=3.5", "manager.expl=0.1",
                                           "manager.ac.entropy_max=100.0", "manager.ac.actor_ema=0.0",
                                           "worker.ac.actor_ema=0.0", "actor.actor_ema=0.0",
                                           "train.steps=120000"])
    assert config_lib.load("pinpad") == expected


def test_explore_preset_is_default_with_the_long_mazes_budget_and_the_papers_exploration_weight():
    expected = config_lib.load("default", ["train.steps=300000", "train.eval_every=25000",
                                           "train.eval_episodes=20", "manager.expl=0.1"])
    assert config_lib.load("explore") == expected


def test_preset_base_cycle_and_unknown_base_are_config_errors(tmp_path):
    (tmp_path / "a.yaml").write_text(f"base: {tmp_path / 'b.yaml'}\n")
    (tmp_path / "b.yaml").write_text(f"base: {tmp_path / 'a.yaml'}\n")
    with pytest.raises(ConfigError, match="cycle"):
        config_lib.load(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: defualt\n")
    with pytest.raises(ConfigError, match="default"):
        config_lib.load(tmp_path / "c.yaml")


@pytest.mark.parametrize("override", ["model.rssm.deter=abc", "replay.batch=1.5", "train.seed=x"])
def test_wrong_type_names_key_and_value(override):
    key, value = override.split("=")
    with pytest.raises(ConfigError) as err:
        config_lib.load("debug", [override])
    assert key in str(err.value) and value in str(err.value)


@pytest.mark.parametrize("override", [
    "model.rssm.deter=-1", "manager.goal_every=0", "manager.ac.discount=1.5", "model.kl_balance=2",
    "model.opt.lr=0", "worker.ac.unimix=-0.1", "env.size=48", "agent=ppo", "worker.goal_reward=dot",
    "manager.ac.entropy_rate=1.0", "replay.reward_chunks=1.5", "worker.ac.actor_ema=1.0",
    "model.image_output=tanh", "manager.ac.entropy_max=0",
])
def test_out_of_range_value_names_key_and_value(override):
    key, value = override.split("=")
    with pytest.raises(ConfigError) as err:
        config_lib.load("debug", [override])
    msg = str(err.value)
    assert key in msg and value in msg


def test_unknown_preset_and_malformed_override():
    with pytest.raises(ConfigError, match="debug"):
        config_lib.load("debgu")
    with pytest.raises(ConfigError, match="key=value"):
        config_lib.load("debug", ["model.rssm.deter"])


def test_overrides_apply_and_resume_only_allows_train_keys():
    cfg = config_lib.load("debug", ["model.rssm.deter=16", "train.seed=3"])
    assert cfg.model.rssm.deter == 16 and cfg.train.seed == 3
    assert config_lib.apply_overrides(cfg, ["train.seed=4"], only="train.").train.seed == 4
    with pytest.raises(ConfigError, match="model.rssm.deter"):
        config_lib.apply_overrides(cfg, ["model.rssm.deter=8"], only="train.")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "director", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_cli_config_keys_lists_every_key():
    out = run_cli("config", "--keys")
    assert out.returncode == 0, out.stderr
    keys = out.stdout.split()
    assert keys == config_lib.valid_keys()
    assert {"model.rssm.deter", "manager.goal_every", "worker.goal_reward"} <= set(keys)


def test_cli_unknown_key_exits_2_without_traceback():
    out = run_cli("train", "debug", "model.rssm.detr=3")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr + out.stdout
    assert "model.rssm.deter" in out.stderr


def test_cli_bad_value_exits_2_without_traceback():
    out = run_cli("config", "debug", "model.rssm.deter=-5")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr + out.stdout
    assert "model.rssm.deter" in out.stderr and "-5" in out.stderr


def test_env_options_reach_the_world_and_bad_ones_are_config_errors():
    from director.module import DirectorModule
    from director.run import check_world
    cfg = config_lib.load("debug", ["env.world=maze-s", "env.options.time_limit=7", "env.options.action_repeat=2"])
    assert cfg.env.world_options() == {"size": 16, "time_limit": 7, "action_repeat": 2}
    envs = DirectorModule(cfg).make_envs(seed=0)
    envs.reset(seed=0)
    steps = 0
    while True:  # 7 simulator steps with action repeat 2: truncated on the 4th agent step
        steps += 1
        _, _, _, truncated, _ = envs.step(envs.action_space.sample())
        if truncated.any():
            break
    envs.close()
    assert steps == 4
    with pytest.raises(ConfigError, match="time_limit"):
        check_world(config_lib.load("debug", ["env.options.time_limt=7"]))
    with pytest.raises(ConfigError, match="env.size"):
        config_lib.load("debug", ["env.options.size=32"])
    with pytest.raises(ConfigError, match="action_repeat"):
        check_world(config_lib.load("debug", ["env.options.action_repeat=0"]))


@pytest.mark.parametrize("value", ["1.0", "0.99"])
def test_replay_goals_must_leave_the_manager_a_rollout(value):
    # debug: 4 x 8 = 32 rollouts per update; 0.99 rounds to 32 replay-goal rows, none for the manager.
    with pytest.raises(ConfigError, match=rf"worker.replay_goals={value}.*no imagined rollouts.*below 0.98"):
        config_lib.load("debug", [f"worker.replay_goals={value}"])
    cfg = config_lib.load("debug", ["worker.replay_goals=0.97"])  # 31 replay-goal rows, 1 manager row
    assert cfg.worker.manager_rows(32) == 1
    config_lib.load("debug", ["worker.replay_goals=1.0", "agent=dreamer"])  # no manager: allowed
