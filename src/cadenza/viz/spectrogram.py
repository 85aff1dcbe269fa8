"""Spectrogram pictures: log-mel frames [T, M] in dB (time across, mel bands up), one PNG or
a sheet of many. Same Agg-canvas, atomic-write approach as the piano rolls in viz.py."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cadenza.viz.files import save_figure


def _draw(ax: Axes, db: np.ndarray, title: str | None, frames_per_second: float) -> None:
    db = np.asarray(db, dtype=np.float32)  # [T, M]
    seconds = len(db) / frames_per_second
    ax.imshow(db.T, origin="lower", aspect="auto", cmap="magma", vmin=min(-80.0, db.min()),
              vmax=0.0, extent=(0.0, seconds, 0, db.shape[1]), interpolation="nearest")  # fmt: skip
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    if title:
        ax.set_title(title, fontsize="medium")


def save_spectrogram_png(
    db: np.ndarray, path: str | os.PathLike[str], frames_per_second: float,
    title: str | None = None,
) -> Path:  # fmt: skip
    """One [T, M] dB spectrogram -> PNG at `path` (written atomically)."""
    fig = Figure(figsize=(12, 4), layout="constrained")
    _draw(fig.add_subplot(1, 1, 1), db, title, frames_per_second)
    return save_figure(fig, path)


def save_spectrogram_sheet(
    dbs: list[np.ndarray], path: str | os.PathLike[str], frames_per_second: float,
    titles: list[str] | None = None, cols: int = 4,
) -> Path:  # fmt: skip
    """Several [T, M] dB spectrograms -> one PNG grid (`cols` per row)."""
    if not dbs:
        raise ValueError("save_spectrogram_sheet needs at least one spectrogram")
    titles = list(titles) if titles is not None else [f"#{i}" for i in range(len(dbs))]
    cols = min(cols, len(dbs))
    rows = math.ceil(len(dbs) / cols)
    fig = Figure(figsize=(4 * cols, 2.6 * rows), layout="constrained")
    for i, db in enumerate(dbs):
        _draw(fig.add_subplot(rows, cols, i + 1), db, titles[i], frames_per_second)
    return save_figure(fig, path)
