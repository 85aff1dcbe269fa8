"""Piano-roll pictures of MIDI: one note = one bar (seconds vs pitch), one colour per track.

Uses matplotlib's object API with the Agg canvas, never pyplot: no global backend switch, no
display needed, and safe to call from worker threads.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from cadenza.io.midi import tracks_of
from cadenza.viz.files import save_figure

_COLOURS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
]


def _draw(ax: Axes, pm: Any, title: str | None, legend: bool) -> int:
    """Draw every note of `pm` on `ax`; returns the number of notes drawn."""
    tracks = [t for t in tracks_of(pm) if len(t.notes)]
    handles, lows, highs, ends = [], [], [], [0.0]
    for k, tr in enumerate(tracks):
        n = tr.notes  # [N, 4] start_s, end_s, pitch, velocity
        x0, x1, y = n[:, 0], n[:, 1], n[:, 2]
        # One PolyCollection of rectangles: thousands of notes draw in milliseconds (barh
        # would make one Artist per note).
        verts = np.stack(
            [
                np.stack([x0, y - 0.4], 1),
                np.stack([x1, y - 0.4], 1),
                np.stack([x1, y + 0.4], 1),
                np.stack([x0, y + 0.4], 1),
            ],
            axis=1,
        )
        colour = _COLOURS[k % len(_COLOURS)]
        ax.add_collection(PolyCollection(verts, facecolors=colour, edgecolors="none"))
        label = tr.name or ("drums" if tr.is_drum else f"program {tr.program}")
        handles.append(Patch(color=colour, label=f"{k}: {label}"))
        lows.append(y.min())
        highs.append(y.max())
        ends.append(x1.max())
    if lows:
        ax.set_ylim(min(lows) - 1.5, max(highs) + 1.5)
    ax.set_xlim(0, max(ends) * 1.01 or 1.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    if title:
        ax.set_title(title, fontsize="medium")
    if legend and len(handles) > 1:
        ax.legend(handles=handles, loc="upper right", fontsize="small")
    ax.grid(True, axis="y", alpha=0.2)
    return sum(len(t.notes) for t in tracks)


def save_pianoroll_png(pm: Any, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """One PrettyMIDI -> a PNG piano roll at `path` (written atomically); returns the path.
    Fixed margins, not the constrained layout: the layout pass was half of the 140 ms a piece
    took, and a service writes one picture per generated piece (issue 21's throughput)."""
    fig = Figure(figsize=(12, 5))
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.1, top=0.93)
    _draw(fig.add_subplot(1, 1, 1), pm, title, legend=True)
    return save_figure(fig, path)


def save_pianoroll_sheet(
    pms: list[Any], path: str | os.PathLike[str], titles: list[str] | None = None
) -> Path:
    """Several PrettyMIDI objects -> one PNG grid of small rolls (up to 4 per row)."""
    if not pms:
        raise ValueError("save_pianoroll_sheet needs at least one MIDI object")
    titles = list(titles) if titles is not None else [f"#{i}" for i in range(len(pms))]
    cols = min(4, len(pms))
    rows = math.ceil(len(pms) / cols)
    fig = Figure(figsize=(4 * cols, 3 * rows), layout="constrained")
    for i, pm in enumerate(pms):
        _draw(fig.add_subplot(rows, cols, i + 1), pm, titles[i], legend=False)
    return save_figure(fig, path)
