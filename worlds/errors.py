"""The one error type the `worlds` package raises for things a user can fix.

`WorldError` covers an unknown world name, an option the world does not accept (or a bad value
for it), and a missing optional simulator (DeepMind Lab). Its message is one paragraph that names
the problem and the fix; the `director` command line catches it and exits with code 2, without a
traceback. It subclasses `ValueError` so plain Python callers can catch it the usual way.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class WorldError(ValueError):
    """A world could not be made; the message names the problem and the fix."""


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` entries of `candidates` that look like `word` (difflib ratio >= 0.5), best first."""
    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.5)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' Did you mean: a, b?' for the close matches of `word`, or '' when there are none."""
    matches = close_matches(word, candidates)
    return f" Did you mean: {', '.join(matches)}?" if matches else ""
