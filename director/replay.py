"""Replay: a FIFO store of environment steps, sampled as fixed-length chunks.

Paper (§1 Data): capacity 1e6 steps, FIFO, batches of B = 16 chunks of T = 64 steps, and every
chunk starts from the initial state. Decision: chunk starts are drawn uniformly over stored steps,
not over episodes, so short episodes are not over-weighted.

Layout. Each env (``worker``) feeds one *stream*: its completed episodes in order, followed by the
episode in progress. A sampled chunk is a contiguous window of one stream; it may cross an episode
boundary, where ``is_first`` marks the new episode (the world model resets its state there). The
chunk's first step is flagged ``is_first`` as well, so the model starts every chunk from its
initial state. Steps are sampleable as soon as they are added: a 2000-step Pin Pad episode trains
long before it ends.

Memory. A completed episode is one numpy array per key, (L, ...); the episode in progress lives in
preallocated arrays that grow by doubling. There is no per-step Python object, and images stay
uint8: at 64x64x3 a step costs ~12.3 kB, so the paper's 1e6 steps need ~12.3 GB of RAM.

Disk. When a step has ``is_last`` the finished episode is written to ``directory`` as a compressed
``{counter:08d}-{worker}-{length}.npz`` (temp file + ``os.replace``, so a crash never leaves half a
file under a final name; names sort in the order the episodes were written). ``load()`` restores
the newest episodes of a directory; ``state_dict()`` / ``load_state_dict()`` restore exactly the
replay a checkpoint saw, including the steps of unfinished episodes and the sampling RNG.
"""
from __future__ import annotations

import os
import re
import sys
import zipfile
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from director.errors import CheckpointError

AFTER_CHECKPOINT = "after_checkpoint"
CORRUPT = "corrupt"  # where `skip_corrupt` moves unreadable episode files
_NAME = re.compile(r"^(\d+)-(\d+)-(\d+)\.npz$")
_STATE_VERSION = 1


class EpisodeFile(NamedTuple):
    """One episode file of a replay directory: ``{counter:08d}-{worker}-{length}.npz``."""

    name: str
    counter: int
    worker: int
    length: int


def episode_files(directory: str | Path) -> list[EpisodeFile]:
    """The episode files directly in ``directory`` (none if it does not exist), in the order
    they were written."""
    matches = (_NAME.match(p.name) for p in Path(directory).glob("*.npz"))
    files = [EpisodeFile(m.group(0), *map(int, m.groups())) for m in matches if m]
    return sorted(files, key=lambda f: f.counter)


class ReplayFileError(CheckpointError):
    """An episode file that the checkpoint lists is corrupt, unreadable or missing."""


_SKIP_HINT = ("or resume with `director train --resume RUN_DIR --skip-corrupt-replay` to continue "
              "without it (the resume is then no longer exact)")


def _as_stored(key: str, value: Any) -> np.ndarray:
    """One step's value as stored: flags bool, reward and float vectors float32, images as given."""
    value = np.asarray(value)
    if key.startswith("is_"):
        return value.astype(bool)
    if value.dtype.kind == "f" and value.dtype != np.float32:
        return value.astype(np.float32)
    return value


class _Episode:
    """A completed (or cut-short) episode: one array per key, each (L, ...)."""

    __slots__ = ("data", "worker", "name", "_rewarded")

    def __init__(self, data: dict[str, np.ndarray], worker: int, name: str | None):
        self.data = data
        self.worker = worker
        self.name = name  # file name in the replay directory; None for a memory-only replay
        self._rewarded: np.ndarray | None = None

    @property
    def rewarded(self) -> np.ndarray:
        """Indices of the steps with a non-zero reward (computed once: the data never changes)."""
        if self._rewarded is None:
            self._rewarded = _rewarded(self.data)
        return self._rewarded

    def __len__(self) -> int:
        return len(self.data["is_first"])


def _rewarded(data: dict[str, np.ndarray]) -> np.ndarray:
    """Indices (int64) of the steps of ``data`` whose reward is non-zero (none without rewards)."""
    if "reward" not in data:
        return np.zeros(0, np.int64)
    return np.flatnonzero(data["reward"] != 0)


class _Buffer:
    """The episode in progress of one worker: preallocated per-key arrays, valid in [start, end).

    Arrays double when full; ``trim`` drops the oldest steps (only used when a single unfinished
    episode alone outgrows the replay's capacity).
    """

    def __init__(self, step: dict[str, np.ndarray], size: int = 64):
        self.arrays = {k: np.empty((size, *v.shape), v.dtype) for k, v in step.items()}
        self.start = 0
        self.end = 0

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray]) -> _Buffer:
        """A buffer holding the steps ``data`` (L, ...), with room to grow."""
        length = len(data["is_first"])
        buffer = cls({k: v[0] for k, v in data.items()}, size=max(64, 2 * length))
        for k, v in data.items():
            buffer.arrays[k][:length] = v
        buffer.end = length
        return buffer

    def __len__(self) -> int:
        return self.end - self.start

    def append(self, step: dict[str, np.ndarray]) -> None:
        size = len(self.arrays["is_first"])
        if self.end == size:
            n = len(self)
            if self.start >= size // 2:  # mostly trimmed away: compact in place
                for v in self.arrays.values():
                    v[:n] = v[self.start:self.end]
            else:
                self.arrays = {k: np.concatenate([v[self.start:self.end], np.empty_like(v)])
                               for k, v in self.arrays.items()}
            self.start, self.end = 0, n
        for k, v in self.arrays.items():
            v[self.end] = step[k]
        self.end += 1

    def view(self) -> dict[str, np.ndarray]:
        """The valid steps, (L, ...), as views (no copy)."""
        return {k: v[self.start:self.end] for k, v in self.arrays.items()}

    def take(self) -> dict[str, np.ndarray]:
        """Copy out the valid steps and empty the buffer (its arrays are reused)."""
        data = {k: v.copy() for k, v in self.view().items()}
        self.start = self.end = 0
        return data

    def trim(self, n: int) -> None:
        self.start += min(n, len(self))


class _Stream:
    """One worker's steps in time order: completed episodes, then the episode in progress."""

    def __init__(self) -> None:
        self.episodes: deque[_Episode] = deque()
        self.buffer: _Buffer | None = None
        self._offsets: np.ndarray | None = None  # start of each episode in the stream, cached

    def __len__(self) -> int:
        return self.completed_steps + self.pending

    @property
    def pending(self) -> int:
        return len(self.buffer) if self.buffer is not None else 0

    @property
    def offsets(self) -> np.ndarray:
        """(E + 1,) start index of every completed episode and of the episode in progress."""
        if self._offsets is None:
            self._offsets = np.cumsum([0] + [len(e) for e in self.episodes])
        return self._offsets

    @property
    def completed_steps(self) -> int:
        return int(self.offsets[-1])

    def changed(self) -> None:
        self._offsets = None

    def rewarded(self) -> np.ndarray:
        """Stream indices of its steps with a non-zero reward, in order."""
        parts = [e.rewarded + o for e, o in zip(self.episodes, self.offsets) if len(e.rewarded)]
        if self.pending:
            parts.append(_rewarded(self.buffer.view()) + self.completed_steps)
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def segment(self, index: int) -> dict[str, np.ndarray]:
        """Arrays of segment ``index``: a completed episode, or the buffer when index == E."""
        if index < len(self.episodes):
            return self.episodes[index].data
        return self.buffer.view()


class Replay:
    """FIFO replay of env steps from several workers, sampled as (B, T, ...) chunks.

    Args:
        directory: where finished episodes are written as .npz; None keeps everything in memory.
        capacity: maximum number of stored steps (paper: 1e6).
        length: T, the number of steps in a sampled chunk (paper: 64).
        seed: seed of the sampling RNG.
        reward_chunks: fraction of each batch's chunks that hold a step with a non-zero reward
            (uniform over such steps, at a uniform place in the chunk) while the replay has any;
            the other chunks, and all of them before, are uniform over stored steps (paper: 0).
    """

    def __init__(self, directory: str | Path | None, capacity: int, length: int, seed: int = 0,
                 reward_chunks: float = 0.0):
        if capacity < length or length < 1:
            raise ValueError(f"Replay needs 1 <= length <= capacity, got length={length}, "
                             f"capacity={capacity}.")
        if not 0.0 <= reward_chunks <= 1.0:
            raise ValueError(f"Replay needs 0 <= reward_chunks <= 1, got {reward_chunks}.")
        self.reward_chunks = float(reward_chunks)
        self.directory = Path(directory) if directory is not None else None
        self.capacity = int(capacity)
        self.length = int(length)
        self.rng = np.random.default_rng(seed)
        # Loading: set aside (into corrupt/) and skip episode files that cannot be read,
        # instead of raising ReplayFileError.
        self.skip_corrupt = False
        self._streams: dict[int, _Stream] = {}
        self._fifo: deque[_Episode] = deque()  # completed episodes in memory, oldest first
        self._keys: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        self._steps = 0
        self._counter = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._counter = self._next_counter()

    # ------------------------------------------------------------------ adding

    def add(self, step: dict[str, Any], worker: int = 0) -> None:
        """Append one step (flat dict of per-step arrays) to the stream of ``worker``.

        A step with ``is_first`` while the worker has an unfinished episode closes that episode
        as is (a reset cut it short). A step with ``is_last`` completes the episode and writes it.
        """
        step = {k: _as_stored(k, v) for k, v in step.items()}
        self._check_keys(step)
        stream = self._streams.setdefault(worker, _Stream())
        if stream.buffer is None:
            stream.buffer = _Buffer(step)
        elif step["is_first"] and stream.pending:
            self._complete(worker)
        stream.buffer.append(step)
        self._steps += 1
        if step["is_last"]:
            self._complete(worker)
        self._enforce_capacity()

    def _check_keys(self, step: dict[str, np.ndarray]) -> None:
        keys = {k: (v.shape, v.dtype) for k, v in step.items()}
        if self._keys is None:
            missing = {"is_first", "is_last"} - set(keys)
            if missing:
                raise KeyError(f"Replay steps need the keys {sorted(missing)}.")
            self._keys = keys
        elif keys != self._keys:
            raise ValueError(f"Replay step keys, shapes or dtypes changed: expected {self._keys}, "
                             f"got {keys}.")

    def _complete(self, worker: int) -> None:
        """Move the worker's episode in progress into its completed episodes and write it."""
        stream = self._streams[worker]
        data = stream.buffer.take()
        episode = _Episode(data, worker, None)
        if self.directory is not None:
            episode.name = self._write(data, worker)
        stream.episodes.append(episode)
        stream.changed()
        self._fifo.append(episode)

    def _enforce_capacity(self) -> None:
        """Drop the oldest completed episodes; trim unfinished ones only if nothing else is left."""
        while self._steps > self.capacity and self._fifo:
            episode = self._fifo.popleft()
            stream = self._streams[episode.worker]
            assert stream.episodes[0] is episode  # a worker completes its episodes in order
            stream.episodes.popleft()
            stream.changed()
            self._steps -= len(episode)
        while self._steps > self.capacity:
            stream = max(self._streams.values(), key=lambda s: s.pending)
            excess = min(self._steps - self.capacity, stream.pending)
            stream.buffer.trim(excess)
            self._steps -= excess

    # ----------------------------------------------------------------- sampling

    def __len__(self) -> int:
        return self._steps

    def sample(self, batch: int) -> dict[str, np.ndarray]:
        """Draw ``batch`` chunks of T steps: a dict of arrays (B, T, ...).

        Each chunk is a window of one worker's stream; its start is uniform over all valid
        window starts of all streams, i.e. uniform over stored steps. With ``reward_chunks`` > 0
        the first round(reward_chunks * batch) chunks instead each hold a rewarded step (see
        the class docstring), once the replay has one. ``is_first[:, 0]`` is True.
        """
        workers = sorted(self._streams)
        counts = np.array([max(0, len(self._streams[w]) - self.length + 1) for w in workers])
        total = int(counts.sum())
        if total == 0:
            raise ValueError(
                f"Replay cannot sample chunks of {self.length} steps: no worker has that many "
                f"contiguous steps yet ({self._steps} steps stored). Collect more steps (prefill) "
                f"before training.")
        starts = self.rng.integers(0, total, size=batch)
        bounds = np.cumsum(counts)
        which = np.searchsorted(bounds, starts, side="right")
        offsets = starts - (bounds - counts)[which]
        n_rewarded = int(round(self.reward_chunks * batch))
        if n_rewarded:
            self._rewarded_windows(workers, counts, which, offsets, n_rewarded)
        out = {k: np.empty((batch, self.length, *shape), dtype)
               for k, (shape, dtype) in self._keys.items()}
        for b in range(batch):
            self._fill(out, b, self._streams[workers[which[b]]], int(offsets[b]))
        out["is_first"][:, 0] = True
        return out

    def sample_within_episodes(self, n: int) -> dict[str, np.ndarray]:
        """``n`` chunks (n, T, ...) for inspection (open-loop predictions), preferring ones that
        stay within one episode: drawn from a pool of ``sample(max(4n, 32))``."""
        pool = self.sample(max(4 * n, 32))
        inside = ~pool["is_first"][:, 1:].any(1)
        order = np.concatenate([np.nonzero(inside)[0], np.nonzero(~inside)[0]])[:n]
        return {k: v[order] for k, v in pool.items()}

    def _rewarded_windows(self, workers: list[int], counts: np.ndarray, which: np.ndarray,
                          offsets: np.ndarray, n: int) -> None:
        """Overwrite the first ``n`` (stream, window start) draws in place with windows that hold
        a rewarded step: the step uniform over all rewarded steps in sampleable streams, its
        place in the window uniform (within the stream's bounds). No-op while there is none."""
        found = [(i, self._streams[w].rewarded()) for i, w in enumerate(workers) if counts[i] > 0]
        found = [(i, r) for i, r in found if len(r)]
        if not found:
            return
        sizes = np.array([len(r) for _, r in found])
        picks = self.rng.integers(0, int(sizes.sum()), size=n)
        place = self.rng.integers(0, self.length, size=n)
        bounds = np.cumsum(sizes)
        for b, (pick, back) in enumerate(zip(picks, place)):
            j = int(np.searchsorted(bounds, pick, side="right"))
            stream, rewarded = found[j]
            step = int(rewarded[pick - (bounds[j] - sizes[j])])
            which[b] = stream
            offsets[b] = min(max(step - int(back), 0), int(counts[stream]) - 1)

    def _fill(self, out: dict[str, np.ndarray], b: int, stream: _Stream, start: int) -> None:
        """Copy the window [start, start + T) of ``stream`` into row ``b`` of ``out``."""
        offsets = stream.offsets
        seg = int(np.searchsorted(offsets, start, side="right")) - 1
        pos, filled = start - int(offsets[seg]), 0
        while filled < self.length:
            data = stream.segment(seg)
            n = min(self.length - filled, len(data["is_first"]) - pos)
            for k, v in data.items():
                out[k][b, filled:filled + n] = v[pos:pos + n]
            filled += n
            seg, pos = seg + 1, 0

    def stats(self) -> dict[str, int]:
        """Counts for logging: stored steps, completed episodes, workers, unfinished steps."""
        return {
            "steps": self._steps,
            "episodes": len(self._fifo),
            "workers": len(self._streams),
            "pending_steps": sum(s.pending for s in self._streams.values()),
            "capacity": self.capacity,
            "nbytes": sum(v.nbytes for e in self._fifo for v in e.data.values())
                      + sum(v.nbytes for s in self._streams.values() if s.buffer is not None
                            for v in s.buffer.arrays.values()),
        }

    # ------------------------------------------------------------------ disk

    def _next_counter(self) -> int:
        """One past the largest counter in the directory, after_checkpoint/ included."""
        names = [p.name for p in self.directory.glob("*.npz")]
        names += [p.name for p in (self.directory / AFTER_CHECKPOINT).glob("*.npz")]
        counters = [int(m.group(1)) for m in map(_NAME.match, names) if m]
        return max(counters, default=-1) + 1

    def _write(self, data: dict[str, np.ndarray], worker: int) -> str:
        """Write one episode atomically; returns its file name."""
        name = f"{self._counter:08d}-{worker}-{len(data['is_first'])}.npz"
        self._counter += 1
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / name)
        return name

    def _read(self, name: str) -> dict[str, np.ndarray]:
        path = self.directory / name
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
            length = len(data["is_first"])
            if any(len(v) != length for v in data.values()) or length == 0:
                raise ValueError("arrays of different lengths")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise ReplayFileError(
                f"Replay file {path} is corrupt or unreadable ({type(e).__name__}: {e}). It was "
                f"probably cut short by a crash or a full disk. Move it out of {self.directory} "
                f"(or restore it from a backup), {_SKIP_HINT}; the other episodes are unaffected.") from e
        if self._keys is not None:
            keys = {k: (v.shape[1:], v.dtype) for k, v in data.items()}
            if keys != self._keys:
                raise CheckpointError(
                    f"Replay file {path} holds different observation keys, shapes or dtypes "
                    f"({keys}) than this replay ({self._keys}); it comes from another "
                    f"environment or configuration. Use a fresh replay directory, or move the "
                    f"file out of {self.directory}.")
        self._adopt_keys(data)
        return data

    def _adopt_keys(self, data: dict[str, np.ndarray]) -> None:
        if self._keys is None:
            self._keys = {k: (v.shape[1:], v.dtype) for k, v in data.items()}

    def _move_aside(self, listed: set[str], counter: int) -> None:
        """Move files written at or after ``counter`` and not ``listed`` to after_checkpoint/."""
        aside = self.directory / AFTER_CHECKPOINT
        for name in self._files():
            if name in listed or int(_NAME.match(name).group(1)) < counter:
                continue
            aside.mkdir(exist_ok=True)
            target, n = aside / name, 1
            while target.exists():
                target, n = aside / f"{name[:-4]}.{n}.npz", n + 1
            os.replace(self.directory / name, target)

    def _files(self) -> list[str]:
        """Episode files directly in the directory, in the order they were written."""
        return [f.name for f in episode_files(self.directory)]

    def _read_all(self, names: list[str]) -> list[_Episode]:
        """The episodes of files `names`, in order. A file that is missing or unreadable raises
        ReplayFileError, or with `skip_corrupt` is moved into corrupt/ and skipped (named on
        stderr)."""
        episodes, skipped = [], []
        for name in names:
            try:
                if not (self.directory / name).exists():
                    raise ReplayFileError(
                        f"Replay file {self.directory / name} is listed in the checkpoint but missing. "
                        f"Restore it into {self.directory} (look in {AFTER_CHECKPOINT}/ or a backup), "
                        f"{_SKIP_HINT}.")
                episodes.append(_Episode(self._read(name), int(_NAME.match(name).group(2)), name))
            except ReplayFileError:
                if not self.skip_corrupt:
                    raise
                skipped.append(name)
                if (self.directory / name).exists():
                    (self.directory / CORRUPT).mkdir(exist_ok=True)
                    os.replace(self.directory / name, self.directory / CORRUPT / name)
        if skipped:
            print(f"director: skipped {len(skipped)} corrupt or missing replay file(s) in {self.directory} "
                  f"({', '.join(skipped)}; the unreadable ones are now in {CORRUPT}/): the replay lacks "
                  "those episodes, so this resume is no longer exact.", file=sys.stderr)
        return episodes

    def load(self) -> int:
        """Load the newest episodes of the directory (up to capacity) not already in memory.

        They are placed before any episodes in memory (they are older). Returns steps loaded.
        """
        if self.directory is None:
            return 0
        known = {e.name for e in self._fifo}
        chosen, room = [], self.capacity - self._steps
        for name in reversed(self._files()):
            if name in known:
                continue
            length = int(_NAME.match(name).group(3))
            if length > room:
                break
            chosen.append(name)
            room -= length
        episodes = self._read_all(list(reversed(chosen)))
        for worker in {e.worker for e in episodes}:
            stream = self._streams.setdefault(worker, _Stream())
            stream.episodes.extendleft(reversed([e for e in episodes if e.worker == worker]))
            stream.changed()
        self._fifo.extendleft(reversed(episodes))
        loaded = sum(len(e) for e in episodes)
        self._steps += loaded
        return loaded

    # ------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything to rebuild this replay exactly: picklable, small when a directory is used.

        Keys: ``files`` (episode files in memory, oldest first), ``counter`` (the next file
        counter: files at or above it were written after this checkpoint), ``pending`` (each
        worker's unfinished steps as arrays), ``rng`` (sampler state) and, for a memory-only
        replay, ``episodes`` (the completed episodes themselves as (worker, arrays)).
        """
        state = {
            "version": _STATE_VERSION,
            "capacity": self.capacity,
            "length": self.length,
            "counter": self._counter,
            "files": [e.name for e in self._fifo] if self.directory is not None else [],
            "episodes": [] if self.directory is not None else
                        [(e.worker, {k: v.copy() for k, v in e.data.items()}) for e in self._fifo],
            "pending": {w: {k: v.copy() for k, v in s.buffer.view().items()}
                        for w, s in self._streams.items() if s.pending},
            "rng": self.rng.bit_generator.state,
            "workers": sorted(self._streams),
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the replay a checkpoint saw: its episode files, unfinished steps and RNG.

        Episode files written after the checkpoint (counter >= ``state['counter']``) are moved
        into ``directory/after_checkpoint/``: kept, never loaded, never deleted. Older files that
        the checkpoint did not hold (dropped by FIFO) stay where they are and are not loaded.
        """
        if state.get("version") != _STATE_VERSION:
            raise CheckpointError(
                f"Replay state has version {state.get('version')}, this code reads version "
                f"{_STATE_VERSION}. Resume with the code version that wrote the checkpoint, or "
                f"start a new run.")
        self._streams, self._fifo, self._steps, self._keys = {}, deque(), 0, None
        for worker in state["workers"]:
            self._streams[worker] = _Stream()
        if state["files"] and self.directory is None:
            raise CheckpointError(
                "The checkpoint's replay lives in episode files, but this replay has no "
                "directory. Resume with the run directory of that checkpoint.")
        if self.directory is not None:
            self._move_aside(set(state["files"]), state["counter"])
            self._counter = max(state["counter"], self._next_counter())
        episodes = self._read_all(state["files"])
        for worker, data in state["episodes"]:
            self._adopt_keys(data)
            episodes.append(_Episode({k: v.copy() for k, v in data.items()}, worker, None))
        for episode in episodes:
            self._streams.setdefault(episode.worker, _Stream()).episodes.append(episode)
            self._fifo.append(episode)
            self._steps += len(episode)
        for worker, data in state["pending"].items():
            self._adopt_keys(data)
            self._streams.setdefault(worker, _Stream()).buffer = _Buffer.from_arrays(data)
            self._steps += len(data["is_first"])
        for stream in self._streams.values():
            stream.changed()
        self._enforce_capacity()
        self.rng.bit_generator.state = state["rng"]


def _benchmark(steps: int = 40_000, workers: int = 4, episode: int = 1000) -> str:
    """Measure RAM per step, disk per step, sampling and writing time at 64x64.

    Frames imitate Pin Pad (flat colours, a moving agent); noise frames give the disk worst case.
    Run: ``python -m director.replay [steps]``.
    """
    import tempfile
    import time

    rng = np.random.default_rng(0)
    grid = np.full((16, 16, 3), 230, np.uint8)
    grid[0] = grid[-3] = grid[:, 0] = grid[:, -1] = 80
    for y, x, colour in [(3, 3, (200, 60, 60)), (3, 11, (60, 200, 60)), (10, 7, (60, 60, 200))]:
        grid[y:y + 2, x:x + 2] = colour
    lines = []
    for kind in ("pinpad-like", "noise"):
        with tempfile.TemporaryDirectory() as directory:
            replay = Replay(directory, capacity=10**6, length=64)
            pos, write_s = np.array([5, 5]), 0.0
            for t in range(steps // workers):
                for worker in range(workers):
                    if kind == "noise":
                        image = rng.integers(0, 256, (64, 64, 3), np.uint8)
                    else:
                        pos = np.clip(pos + rng.integers(-1, 2, 2), 1, 12)
                        frame = grid.copy()
                        frame[pos[0], pos[1]] = 0
                        image = np.kron(frame, np.ones((4, 4, 1), np.uint8))
                    step = {"image": image, "reward": 0.0, "is_first": t % episode == 0,
                            "is_last": t % episode == episode - 1, "is_terminal": False,
                            "action": np.eye(5, dtype=np.float32)[t % 5]}
                    start = time.perf_counter()
                    replay.add(step, worker)
                    write_s += (time.perf_counter() - start) * step["is_last"]
            files = list(Path(directory).glob("*.npz"))
            written = sum(int(_NAME.match(f.name).group(3)) for f in files)
            data = sum(v.nbytes for e in replay._fifo for v in e.data.values())
            replay.sample(16)
            start = time.perf_counter()
            for _ in range(50):
                replay.sample(16)
            sample_ms = (time.perf_counter() - start) / 50 * 1e3
            lines.append(
                f"replay {kind} 64x64: RAM {data / written:.0f} B/step "
                f"({replay.stats()['nbytes'] / len(replay):.0f} B/step with unfinished-episode "
                f"buffers), disk {sum(f.stat().st_size for f in files) / written:.0f} B/step, "
                f"sample 16x64 {sample_ms:.1f} ms, write {write_s / len(files) * 1e3:.0f} ms per "
                f"{episode}-step episode")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(_benchmark(int(sys.argv[1]) if len(sys.argv) > 1 else 40_000))
