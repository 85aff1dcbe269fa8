"""A confusion matrix as a PNG: rows the true class, columns the predicted one, each cell
coloured by its share of the row (so a small class reads as clearly as a large one) and
labelled with its count."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cadenza.viz.files import save_figure


def save_confusion_png(
    counts: np.ndarray | list, classes: list[str], path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:  # fmt: skip
    """counts [C, C] (true x predicted) -> a PNG at `path` (written atomically)."""
    counts = np.asarray(counts, dtype=np.int64)
    n = len(classes)
    if counts.shape != (n, n):
        raise ValueError(f"counts must be [{n}, {n}] for {n} classes, got {list(counts.shape)}")
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    side = max(4.0, 0.5 * n + 2.0)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of the true class")
    ax.set_xticks(range(n), classes, rotation=60, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                colour = "white" if shares[i, j] > 0.5 else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour,
                        fontsize=8)  # fmt: skip
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"{title + ': ' if title else ''}accuracy {accuracy:.3f} of {counts.sum()}")
    return save_figure(fig, path)
