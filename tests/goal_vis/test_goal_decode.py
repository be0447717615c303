"""Tests for goal_vis.decode_goal: shapes, dtype, determinism for goals and codes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from director.module import DirectorModule
from goal_vis import decode_goal


@pytest.fixture(scope="module")
def agent():
    torch.manual_seed(0)
    return DirectorModule("debug").agent


def test_decode_goal_maps_batched_goals_to_uint8_images(agent):
    goals = torch.randn(2, 3, agent.cfg.model.rssm.deter)
    images = decode_goal(agent, goals)
    size = agent.cfg.env.size
    assert images.shape == (2, 3, size, size, 3)
    assert images.dtype == np.uint8


def test_decode_goal_accepts_an_unbatched_numpy_goal(agent):
    goal = np.random.default_rng(0).normal(size=agent.cfg.model.rssm.deter).astype(np.float32)
    image = decode_goal(agent, goal)
    assert image.shape == (agent.cfg.env.size, agent.cfg.env.size, 3)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, decode_goal(agent, torch.as_tensor(goal)[None])[0])


def test_decode_goal_is_deterministic_and_draws_no_random_numbers(agent):
    goals = torch.randn(4, agent.cfg.model.rssm.deter)
    state = torch.get_rng_state()
    first = decode_goal(agent, goals)
    assert torch.equal(state, torch.get_rng_state())
    np.testing.assert_array_equal(first, decode_goal(agent, goals))


def test_decode_goal_decodes_flat_and_split_codes_alike(agent):
    ae = agent.goal_ae
    codes = ae.prior_sample((5,), "cpu")
    flat = decode_goal(agent, codes)
    split = decode_goal(agent, codes.reshape(5, ae.vars, ae.classes))
    assert flat.shape == (5, agent.cfg.env.size, agent.cfg.env.size, 3) and flat.dtype == np.uint8
    np.testing.assert_array_equal(flat, split)
    np.testing.assert_array_equal(flat, decode_goal(agent, codes))
    # A code is decoded through the goal autoencoder into its goal first.
    with torch.no_grad():
        np.testing.assert_array_equal(flat, decode_goal(agent, ae.decode(codes), kind="goal"))


def test_decode_goal_keeps_leading_dimensions_of_codes(agent):
    ae = agent.goal_ae
    codes = ae.prior_sample((2, 3), "cpu").reshape(2, 3, ae.vars, ae.classes)
    assert decode_goal(agent, codes).shape[:2] == (2, 3)


def test_decode_goal_rejects_a_shape_that_is_neither_goal_nor_code(agent):
    with pytest.raises(ValueError, match="Expected a goal"):
        decode_goal(agent, torch.zeros(2, agent.cfg.model.rssm.deter + 1))
    with pytest.raises(ValueError, match="kind"):
        decode_goal(agent, torch.zeros(2, agent.cfg.model.rssm.deter), kind="state")
