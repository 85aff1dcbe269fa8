"""Every music statistic of one piece, and of a set of pieces.

Keys: the plain names in `PIECE_METRICS` are over the whole piece; per-track values follow as
`<metric>/<track key>` and `tonal_distance/<a>-<b>`. Track keys are `track<i>` unless a `Roll`
names its tracks, so the pieces of a set line their tracks up by index (files of a set may hold
different numbers of tracks: a key is then averaged over the pieces that have that track).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cadenza.metrics.music import (
    DRUM_GRID_PERIOD,
    Roll,
    default_qn_threshold,
    drum_pattern_counts_from,
    empty_bar_counts_from,
    groove_consistency,
    note_density,
    pitch_class_entropy,
    pitch_range,
    polyphony,
    qualified_note_counts_from,
    ratio,
    scale_consistency,
    tonal_distances,
    used_pitch_class_counts_from,
)

PIECE_METRICS = (
    "empty_bar_rate",
    "used_pitch_classes",
    "qualified_note_rate",
    "drum_pattern_rate",
    "tonal_distance",
    "pitch_class_entropy",
    "scale_consistency",
    "groove_consistency",
    "polyphony",
    "pitch_range",
    "note_density",
)
# Pooled by set_metrics as a ratio of sums over the bars, notes or hits of every piece.
POOLED_METRICS = (
    "empty_bar_rate",
    "used_pitch_classes",
    "qualified_note_rate",
    "drum_pattern_rate",
)

_Part = float | tuple[float, float]  # a plain value, or (numerator, denominator) to pool


def _sum_parts(parts: Sequence[tuple[float, float]]) -> tuple[float, float]:
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def nanmean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN (and no RuntimeWarning) when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _piece_parts(roll: Roll, qn_threshold: int | None, dp_tolerance: float) -> dict[str, _Part]:
    """Every metric of one piece: pooled ones as (numerator, denominator), the rest as floats."""
    threshold = qn_threshold or default_qn_threshold(roll.steps_per_beat)
    eb = {roll.key(k): empty_bar_counts_from(roll.bar_chroma[k]) for k in range(roll.n_tracks)}
    upc = {roll.key(k): used_pitch_class_counts_from(roll.bar_chroma[k]) for k in roll.pitched()}
    qn = {roll.key(k): qualified_note_counts_from(roll.notes[k], threshold) for k in roll.pitched()}
    dp: dict[str, tuple[float, float]] = {}
    if roll.steps_per_beat in DRUM_GRID_PERIOD:  # elsewhere DP is undefined: NaN
        # Each hit counts once, at its onset (drum_pattern_counts' onsets_only).
        dp = {
            roll.key(k): drum_pattern_counts_from(
                roll.notes[k][0], roll.steps_per_beat, dp_tolerance
            )
            for k in roll.drum_tracks()
        }
    td = tonal_distances(roll)
    parts: dict[str, _Part] = {
        "empty_bar_rate": _sum_parts([eb[roll.key(k)] for k in roll.pitched()]),
        "used_pitch_classes": _sum_parts(list(upc.values())),
        "qualified_note_rate": _sum_parts(list(qn.values())),
        "drum_pattern_rate": _sum_parts(list(dp.values())),
        "tonal_distance": nanmean(list(td.values())),
        "pitch_class_entropy": pitch_class_entropy(roll),
        "scale_consistency": scale_consistency(roll),
        "groove_consistency": groove_consistency(roll),
        "polyphony": polyphony(roll),
        "pitch_range": pitch_range(roll),
        "note_density": note_density(roll),
    }
    per_track: dict[str, dict[str, _Part]] = {
        "empty_bar_rate": dict(eb),
        "used_pitch_classes": dict(upc),
        "qualified_note_rate": dict(qn),
        "drum_pattern_rate": dict(dp),
        "tonal_distance": dict(td),
    }
    for name, values in per_track.items():
        parts.update({f"{name}/{key}": value for key, value in values.items()})
    return parts


def piece_metrics(
    roll: Roll, qn_threshold: int | None = None, dp_tolerance: float = 0.1
) -> dict[str, float]:
    """Every metric of one piece; NaN where a metric is undefined (no notes, no drums...).

    Plain keys: EB, UPC and QN over the non-drum tracks (their bars and notes pooled), DP over
    the drum tracks (NaN at resolutions DP does not define), TD the mean over pairs of non-drum
    tracks, and the MusPy metrics as their functions in `cadenza.metrics.music` define them.
    Per track: EB for every track, UPC and QN for non-drum tracks, DP for drum tracks, TD for
    every pair of non-drum tracks. qn_threshold: None for `default_qn_threshold`.
    """
    parts = _piece_parts(roll, qn_threshold, dp_tolerance)
    return {k: ratio(v) if isinstance(v, tuple) else v for k, v in parts.items()}


def set_metrics(
    pieces: Sequence[Roll], qn_threshold: int | None = None, dp_tolerance: float = 0.1
) -> dict[str, float]:
    """Every metric over a set of pieces, keyed as in `piece_metrics`.

    EB, UPC, QN and DP (`POOLED_METRICS`, overall and per track) pool the bars, notes and hits
    of all pieces: a ratio of sums, not a mean of ratios, so a piece counts by its size and a
    piece where the ratio is undefined (no notes) simply adds nothing. Every other metric is the
    mean over the pieces where it is defined (NaN if none).
    """
    collected: dict[str, list[_Part]] = {}
    for roll in pieces:
        for key, part in _piece_parts(roll, qn_threshold, dp_tolerance).items():
            collected.setdefault(key, []).append(part)
    out = {}
    for key, parts in collected.items():
        if isinstance(parts[0], tuple):
            out[key] = ratio(_sum_parts(parts))  # type: ignore[arg-type]
        else:
            out[key] = nanmean(parts)  # type: ignore[arg-type]
    return out
