"""The plots the notebooks show and save into the run directory (PNG)."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402

if not matplotlib.get_backend().lower().startswith(("module://matplotlib_inline", "nbagg", "widget")):
    matplotlib.use("Agg")  # headless: tests and `make demo` have no display


def _save(figure, path: str | Path | None):
    """Save a figure to path (if given) and return it."""
    figure.tight_layout()
    if path:
        figure.savefig(path, dpi=110)
    return figure


def duration_histogram(durations: list[float], path=None, limit: float = 30.0):
    """Histogram of clip durations in seconds, with Whisper's 30 s window marked."""
    figure, axis = plt.subplots(figsize=(7, 3.5))
    upper = max([limit, *durations])
    axis.hist(durations, bins=[upper * i / 60 for i in range(61)], color="#4c72b0")
    axis.set_xlim(0, upper * 1.02)
    axis.axvline(limit, color="#c44e52", linestyle="--", label=f"{limit:.0f} s: Whisper's window")
    axis.set(xlabel="clip duration (s)", ylabel="clips",
             title=f"{len(durations)} clips, {sum(durations) / 60:.1f} minutes in all")
    axis.legend()
    return _save(figure, path)


def loss_curve(history: list[dict], path=None):
    """Training loss per logged step (history: dicts with "step" and "loss")."""
    figure, axis = plt.subplots(figsize=(7, 3.5))
    steps = [entry["step"] for entry in history]
    axis.plot(steps, [entry["loss"] for entry in history], marker="o", color="#4c72b0")
    axis.set(xlabel="step", ylabel="training loss", title="Training loss")
    axis.grid(alpha=0.3)
    return _save(figure, path)


def bar_chart(groups: dict[str, dict[str, float]], path=None, ylabel: str = "",
              title: str = "", percent: bool = True):
    """Grouped bars: groups maps a series name to {category: value}."""
    categories = list(next(iter(groups.values())))
    width = 0.8 / len(groups)
    figure, axis = plt.subplots(figsize=(7, 3.8))
    for index, (name, values) in enumerate(groups.items()):
        positions = [i + index * width for i in range(len(categories))]
        heights = [values[c] * (100 if percent else 1) for c in categories]
        bars = axis.bar(positions, heights, width, label=name)
        axis.bar_label(bars, fmt="%.1f", fontsize=8)
    axis.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(categories))], categories)
    axis.set(ylabel=ylabel, title=title)
    axis.legend()
    return _save(figure, path)
