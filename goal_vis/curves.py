"""Training curves of a run directory (matplotlib, no pyplot state).

Reads every `logs/version_*/metrics.csv` (one per training session; concatenated and sorted by
`env_steps`) and `episodes.csv`, and plots whatever columns exist, grouped: episodes (return,
success, length), world model, goal autoencoder, worker, manager, goal reaching, the rest.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np

Series = dict[str, tuple[np.ndarray, np.ndarray]]

SKIP = {"env_steps", "epoch", "step", "updates"}
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("episodes", ("return", "success", "episode_length", "length")),
    ("world model", ("image_loss", "reward_loss", "cont_loss", "kl", "kl_scale", "model_loss",
                     "vector_loss", "prior_entropy", "post_entropy")),
    ("goal autoencoder", ("goal_rec", "goal_kl", "goal_kl_scale", "goal_loss")),
    ("goal reaching", ("goal_reached", "goal_reached_frac", "imag_goal_reached", "worker/goal_reward",
                       "worker/goal_return")),
    ("manager", ("manager/extr_reward", "manager/expl_reward", "manager/extr_return", "manager/expl_return",
                 "manager/entropy", "manager/entropy_scale")),
    ("worker", ("worker/entropy", "worker/entropy_scale", "worker/extr_reward")),
)


def _float(text: str) -> float:
    """A CSV cell as a float: numbers, True/False (episodes.csv) as 1/0, anything else NaN."""
    if text in ("True", "False"):
        return float(text == "True")
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _version(path: Path) -> int:
    match = re.search(r"version_(\d+)", str(path))
    return int(match.group(1)) if match else 0


def read_csv_rows(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: _float(v) for k, v in row.items() if k} for row in csv.DictReader(f)]


def read_metrics(run_dir: str | Path) -> Series:
    """{column: (env_steps, values)} over all training sessions, sorted by env_steps; rows
    without env_steps are dropped, as are columns without a finite value, and a value repeated
    with the same `updates` count (a stale copy of the last logged metrics) is kept once."""
    run_dir = Path(run_dir)
    rows: list[dict[str, float]] = []
    for path in sorted(run_dir.glob("logs/version_*/metrics.csv"), key=_version):
        rows += read_csv_rows(path)
    rows = [r for r in rows if math.isfinite(r.get("env_steps", math.nan))]
    rows.sort(key=lambda r: r["env_steps"])
    columns = sorted({k for r in rows for k in r} - SKIP)
    out: Series = {}
    for col in columns:
        pts, last = [], None
        for r in rows:
            value = r.get(col, math.nan)
            if not math.isfinite(value):
                continue
            # Lightning repeats the last logged value on later rows: keep one point per update.
            key = (r.get("updates", math.nan), value)
            if math.isfinite(key[0]) and key == last:
                continue
            last = key
            pts.append((r["env_steps"], value))
        if pts:
            x, y = np.array(pts, np.float64).T
            out[col] = (x, y)
    return out


def read_episodes(run_dir: str | Path) -> Series:
    """{return, success, length: (env_steps, values)} from episodes.csv (empty if absent)."""
    path = Path(run_dir) / "episodes.csv"
    if not path.exists():
        return {}
    rows = [r for r in read_csv_rows(path) if math.isfinite(r.get("env_steps", math.nan))]
    rows.sort(key=lambda r: r["env_steps"])
    out: Series = {}
    for col in ("return", "success", "length"):
        pts = [(r["env_steps"], r[col]) for r in rows if math.isfinite(r.get(col, math.nan))]
        if pts:
            x, y = np.array(pts, np.float64).T
            out[col] = (x, y)
    return out


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if len(y) < 3 or window <= 1:
        return y
    window = min(window, len(y))
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, y[0]), y])
    return np.convolve(padded, kernel, mode="valid")


def panels(metrics: Series, episodes: Series) -> list[tuple[str, str, Series]]:
    """(group, title, {label: (x, y)}) for each plot, in display order."""
    out: list[tuple[str, str, Series]] = []
    used: set[str] = set()
    for key in ("return", "success", "length"):
        if key in episodes:
            out.append(("episodes", f"episode {key} (episodes.csv)", {"episodes": episodes[key]}))
    for group, keys in GROUPS:
        for key in keys:
            if key in metrics and not (group == "episodes" and key in episodes):
                out.append((group, key, {key: metrics[key]}))
                used.add(key)
            elif key in metrics:
                used.add(key)
    for key in sorted(metrics):
        if key not in used and not key.startswith("grad_norm/"):
            out.append(("other", key, {key: metrics[key]}))
    grads = {k[len("grad_norm/"):]: v for k, v in metrics.items() if k.startswith("grad_norm/")}
    if grads:
        out.append(("other", "gradient norms", grads))
    return out


def plot_curves(run_dir: str | Path, path: str | Path, columns: int = 4) -> tuple[Path | None, list[str]]:
    """Plot the run's curves into `path` (PNG). Returns (path or None when there is nothing to
    plot, the plotted titles)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    plots = panels(read_metrics(run_dir), read_episodes(run_dir))
    if not plots:
        return None, []
    rows = -(-len(plots) // columns)
    # Fixed spacing instead of tight_layout and few ticks: laying out dozens of axes otherwise
    # costs seconds.
    fig = Figure(figsize=(4.0 * columns, 2.4 * rows + 0.6), dpi=80)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.5 / (2.4 * rows + 0.6), top=1 - 0.4 / (2.4 * rows + 0.6),
                        wspace=0.3, hspace=0.55)
    for i, (group, title, series) in enumerate(plots):
        ax = fig.add_subplot(rows, columns, i + 1)
        for label, (x, y) in series.items():
            if len(x) == 1:
                ax.plot(x, y, "o", label=label, markersize=4)
            elif group == "episodes":
                ax.plot(x, y, ".", alpha=0.3, markersize=3)
                ax.plot(x, _smooth(y, 20), label=label)
            else:
                ax.plot(x, y, ".-" if len(x) < 30 else "-", label=label, linewidth=1.2, markersize=4)
        if len(series) > 1:
            ax.legend(fontsize=7)
        ax.set_title(f"{group}: {title}", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.text(0.5, 0.1 / (2.4 * rows + 0.6), "x axis: env steps", ha="center", fontsize=9)
    path = Path(path)
    fig.savefig(path)
    return path, [f"{g}: {t}" for g, t, _ in plots]
