"""Musical attributes of a melody window, the axes a producer pushes a VAE's latent along.

Computed from quantised notes (on_step, off_step, pitch) so that they read the same for data
windows and for decoded samples. MusicVAE (Roberts et al., 2018, sec. 5.4) builds one latent
"attribute vector" per attribute this way: the mean code of windows high in the attribute minus
the mean code of windows low in it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Name -> unit, for reports.
ATTRIBUTES: dict[str, str] = {
    "density": "notes per bar",
    "pitch_range": "semitones",
    "mean_pitch": "MIDI pitch",
    "syncopation": "fraction of onsets off the beat",
}


def note_attributes(
    notes: np.ndarray | Sequence[np.ndarray], n_steps: int, steps_per_beat: int = 4
) -> dict[str, float]:
    """Attributes of int [N, 3] (on_step, off_step, pitch) notes over a window of n_steps.

    A list of such arrays (one per track) is pooled. An empty window has density 0, syncopation
    0, and NaN pitch attributes (there is no pitch to measure), so averages skip it explicitly.
    """
    if not isinstance(notes, np.ndarray):
        notes = np.concatenate([np.asarray(n).reshape(-1, 3) for n in notes] or [np.zeros((0, 3))])
    notes = np.asarray(notes).reshape(-1, 3)
    bars = max(n_steps, 1) / (4 * steps_per_beat)
    if len(notes) == 0:
        return {"density": 0.0, "pitch_range": np.nan, "mean_pitch": np.nan, "syncopation": 0.0}
    pitch = notes[:, 2].astype(np.float64)
    return {
        "density": len(notes) / bars,
        "pitch_range": float(pitch.max() - pitch.min()),
        "mean_pitch": float(pitch.mean()),
        "syncopation": float(np.mean(notes[:, 0] % steps_per_beat != 0)),
    }


def window_attributes(codec: object, x: np.ndarray) -> dict[str, float]:
    """Attributes of one codec window: tokens [L] (melody) or [L, K] (multi-track)."""
    notes = codec.notes(x)  # type: ignore[attr-defined]
    return note_attributes(notes, len(x), codec.steps_per_beat)  # type: ignore[attr-defined]


def attribute_table(codec: object, windows: Sequence[np.ndarray]) -> np.ndarray:
    """float64 [N, len(ATTRIBUTES)] for N windows, columns in ATTRIBUTES order."""
    rows = [window_attributes(codec, np.asarray(w)) for w in windows]
    return np.array([[r[a] for a in ATTRIBUTES] for r in rows], dtype=np.float64).reshape(
        -1, len(ATTRIBUTES)
    )


def attribute_vectors(
    codes: np.ndarray, table: np.ndarray, quantile: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """MusicVAE attribute vectors: codes [N, Z], attribute table [N, A] -> vectors [A, Z] and
    the attribute gap [A] between the high and low groups (so a shift of 1.0 along a vector
    asks for about that much change in the attribute).

    For each attribute, windows in the top `quantile` minus those in the bottom `quantile`
    (ties broken by the quantile thresholds; NaN rows skipped). An attribute with no spread in
    the data gets a zero vector.
    """
    codes = np.asarray(codes, dtype=np.float64)
    A = table.shape[1]
    vectors = np.zeros((A, codes.shape[1]))
    gaps = np.zeros(A)
    for a in range(A):
        ok = ~np.isnan(table[:, a])
        values, z = table[ok, a], codes[ok]
        if len(values) < 2:
            continue
        low_t, high_t = np.quantile(values, [quantile, 1 - quantile])
        low, high = values <= low_t, values >= high_t
        if high_t <= low_t or not low.any() or not high.any():
            continue
        vectors[a] = z[high].mean(0) - z[low].mean(0)
        gaps[a] = values[high].mean() - values[low].mean()
    return vectors, gaps


def parse_attribute(spec: str) -> tuple[str, float]:
    """'density:+1.5' -> ('density', 1.5); raises ValueError with the known names."""
    name, sep, amount = str(spec).partition(":")
    if not sep or name not in ATTRIBUTES:
        raise ValueError(
            f"attribute must be NAME:AMOUNT with NAME one of {sorted(ATTRIBUTES)}, got {spec!r}"
        )
    try:
        value = float(amount)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value):  # "nan" and "inf" parse as floats
        raise ValueError(f"attribute amount must be a finite number, got {amount!r} in {spec!r}")
    return name, value
