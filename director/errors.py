"""User-facing errors.

Anything a user can get wrong (unknown world, bad config key or value, missing or corrupt
checkpoint, missing optional dependency) raises a subclass of `UserError`. The command line
prints its one-paragraph message and exits with code 2, without a traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""

    exit_code = 2


class ConfigError(UserError, ValueError):
    """Unknown configuration key, wrong type or out-of-range value."""


class CheckpointError(UserError):
    """Missing, corrupt or mismatching checkpoint / run directory."""
