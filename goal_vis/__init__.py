"""Goal visualisation (ALGORITHM.md §8): what the agent's goals look like and whether they are
reached.

    from goal_vis import decode_goal, record_strip
    images = decode_goal(module.agent, goals)          # (..., D) or codes -> uint8 (..., H, W, 3)
    # (codes of a goal.context autoencoder also need context=, the deter they were chosen at)
    record_strip(module, "strip.png", steps=64)        # observation row + goal row PNG

`director goals RUN_DIR` (`goal_vis.report`) writes the full report: episode video, contact
sheet of manager decisions, worker rollouts toward fixed goals, goal atlas, open-loop prediction,
training curves, goal-quality metrics, and one self-contained HTML page.

Depends on the director core blocks, manager, worker, numpy, PIL, imageio and matplotlib; the
report (and `record_strip`) additionally load runs and make worlds. Nothing in director's core
blocks imports this package; of the assembly, only the training run's image recorder
(`director.run`) and the command line do.
"""
from goal_vis.decode import decode_feat, decode_goal
from goal_vis.episode import agent_strip, record_strip

__all__ = ["agent_strip", "decode_feat", "decode_goal", "record_strip"]
