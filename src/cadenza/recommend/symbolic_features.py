"""Any MIDI piece -> one fixed-size vector of symbolic statistics, the score-side counterpart of
audio_features.

Read straight from the notes (no rendering), so it costs a few milliseconds beyond parsing and
sees what audio blurs: the key, the exact rhythm grid, the instrumentation as written. Times
are counted in quarter-note beats through the tempo map (io.midi.time_to_beats), so a piece
played faster changes the per-second dims and the tempo, not the rhythm dims.

Blocks of the summary, in order (`SYMBOLIC_NAMES` names every dimension). All pitched
(non-drum) notes count together; drums only give `drum_density`.

- pitch classes: duration-weighted histogram, sum 1 (`pc_C` .. `pc_B`): the absolute key;
- key: the same histogram rotated to the Krumhansl-Schmuckler tonic (`deg_0` = tonic ..
  `deg_11`), which is the same for a piece in any transposition, then `mode_major` (0/1),
  `key_clarity` (the winning key's profile correlation) and `key_margin` (winner minus the
  runner-up; small for modal or chromatic music);
- pitch: mean, std, min, max of the MIDI pitch / 127 (register and range);
- top voice: histogram of |interval| between successive onsets' highest pitches, bins
  0, 1, ..., 5, 6-7, 8-12, >12 semitones, and `top_up_share` (rising share of the moves):
  stepwise folk melodies vs leaping piano figuration;
- density: notes and distinct onsets per beat, notes per second;
- polyphony: time-weighted mean of the notes sounding (over sounding time), the most at once,
  and the share of the piece that is silent;
- durations in beats, share of notes per log2 bin centred on 1/8, 1/4, 1/2, 1, 2, >=4 beats;
- inter-onset intervals in beats: median, coefficient of variation, and the share of the most
  common interval (a metronomic chorale vs free rubato);
- velocity mean and std / 127 (zero std: a score with one dynamic, as in the JSB arrays);
- instruments: pitched tracks with notes, distinct programs, share of notes per General MIDI
  family (`gm_piano` .. `gm_sound_fx`, program // 8), drum notes per beat;
- tempo: time-weighted mean bpm / 200, its coefficient of variation, log(1 + tempo changes);
- rhythm grid: share of onsets on the beat, on the 8th grid, the 16th grid and the triplet
  grid (syncopation shows as on_8th well above on_beat; the grid's phase is the most common
  onset position within the beat, see `_grid_shares`), and whether the first time signature
  is in triple metre (3/4, 6/8; 0 when there is none);
- length: log(1 + beats) of the whole piece.

Units differ between blocks, so use `standardise` over a catalog before mixing them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cadenza.errors import BadMidiError, CadenzaError
from cadenza.io.midi import time_to_beats, tracks_of

__all__ = ["SYMBOLIC_NAMES", "standardise", "symbolic_summary"]

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
INTERVAL_EDGES = np.array([0, 1, 2, 3, 4, 5, 6, 8, 13, 1000])  # |semitones| bins, left-closed
INTERVAL_LABELS = ("0", "1", "2", "3", "4", "5", "6_7", "8_12", "gt12")
# log2 bins centred on 1/8 .. 4 beats, edges half-way (in log2) between the centres.
DURATION_EDGES = 2.0 ** np.array([-2.5, -1.5, -0.5, 0.5, 1.5])
DURATION_LABELS = ("le_1_8", "1_4", "1_2", "1", "2", "ge_4")
GM_FAMILIES = (
    "piano", "chromatic_perc", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth_lead", "synth_pad", "synth_fx", "ethnic", "percussive", "sound_fx",
)  # fmt: skip
ONSET_MERGE_BEATS = 1 / 24  # onsets closer than this are one chord (a performed, spread chord)
GRID_TOL_BEATS = 0.05
PHASE_BINS = 48  # the beat phase is found on a 1/48-beat grid
IOI_ROUND = 24  # intervals are compared on a 1/24-beat grid to find the most common one
MIN_SPAN_BEATS = 0.25  # floor for a degenerate piece, so densities stay finite


def _names() -> tuple[str, ...]:
    names = [f"pc_{pc}" for pc in PITCH_CLASSES]
    names += [f"deg_{k}" for k in range(12)]
    names += ["mode_major", "key_clarity", "key_margin"]
    names += ["pitch_mean", "pitch_std", "pitch_min", "pitch_max"]
    names += [f"top_int_{b}" for b in INTERVAL_LABELS] + ["top_up_share"]
    names += ["notes_per_beat", "onsets_per_beat", "notes_per_second"]
    names += ["polyphony_mean", "polyphony_max", "silence_share"]
    names += [f"dur_{b}" for b in DURATION_LABELS]
    names += ["ioi_median_beats", "ioi_cv", "ioi_mode_share"]
    names += ["velocity_mean", "velocity_std"]
    names += ["n_instruments", "n_programs"] + [f"gm_{f}" for f in GM_FAMILIES]
    names += ["drum_density"]
    names += ["tempo_bpm", "tempo_cv", "tempo_changes_log"]
    names += ["on_beat", "on_8th", "on_16th", "on_triplet", "meter_triple"]
    names += ["length_beats_log"]
    return tuple(names)


SYMBOLIC_NAMES: tuple[str, ...] = _names()


def symbolic_summary(pm: Any, name: str = "<PrettyMIDI>") -> np.ndarray:
    """A PrettyMIDI -> float32 [len(SYMBOLIC_NAMES)] (see the module docstring for the blocks).

    `name` labels the error: a piece with no pitched notes (empty, or drums only) raises
    BadMidiError(name, "no_notes"), and one whose timing yields non-finite numbers
    BadMidiError(name, "corrupt"). Deterministic, and finite for every other piece.
    """
    tracks = tracks_of(pm)
    pitched = [t for t in tracks if not t.is_drum and len(t.notes)]
    if not pitched:
        raise BadMidiError(name, "no_notes", "no pitched (non-drum) notes")
    notes = np.concatenate([t.notes for t in pitched])  # [N, 4] start_s, end_s, pitch, velocity
    notes = notes[np.lexsort((notes[:, 2], notes[:, 0]))]
    n_drum = sum(len(t.notes) for t in tracks if t.is_drum)

    on = time_to_beats(pm, notes[:, 0])  # [N] beats
    off = np.maximum(time_to_beats(pm, notes[:, 1]), on)
    pitch, vel = notes[:, 2], notes[:, 3]
    span = max(float(off.max() - on.min()), MIN_SPAN_BEATS)
    seconds = max(float(notes[:, 1].max() - notes[:, 0].min()), 1e-3)
    groups = _onset_groups(on)  # [N] chord index of each note
    chord_on = on[np.r_[True, np.diff(groups) > 0]]  # [C] first onset of each chord
    top = np.full(groups[-1] + 1, -1.0)
    np.maximum.at(top, groups, pitch)  # [C] highest pitch of each chord: the skyline melody

    pc = _pitch_class_histogram(pitch, off - on)
    tonic, major, clarity, margin = _key(pc)
    families = np.zeros(len(GM_FAMILIES))
    for t in pitched:
        families[t.program // 8] += len(t.notes)

    parts = [
        pc,
        np.roll(pc, -tonic),
        [float(major), clarity, margin],
        [pitch.mean() / 127, pitch.std() / 127, pitch.min() / 127, pitch.max() / 127],
        _interval_histogram(top),
        [len(notes) / span, len(chord_on) / span, len(notes) / seconds],
        _polyphony(on, off),
        _share(np.digitize(off - on, DURATION_EDGES), len(DURATION_LABELS)),
        _ioi_stats(chord_on),
        [vel.mean() / 127, vel.std() / 127],
        [len(pitched), len({t.program for t in pitched}), *(families / len(notes))],
        [n_drum / span],
        _tempo_stats(pm),
        _grid_shares(chord_on),
        [_triple_metre(pm)],
        [np.log1p(span)],
    ]
    out = np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1) for x in parts])
    assert out.shape == (len(SYMBOLIC_NAMES),), out.shape
    if not np.isfinite(out).all():
        bad = [n for n, v in zip(SYMBOLIC_NAMES, out) if not np.isfinite(v)]
        raise BadMidiError(name, "corrupt", f"non-finite features {bad[:5]} (broken timing?)")
    return out.astype(np.float32)


def standardise(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N, F] -> (z [N, F] float32, mean [F], std [F]) per dimension over the N rows.

    A constant dimension (std ~ 0, e.g. no catalog piece has brass) gets std 1, so it becomes
    0 rather than NaN; apply the same mean/std to new tracks: (x - mean) / std.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise CadenzaError(f"standardise takes a non-empty [N, F] matrix, got shape {x.shape}")
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return ((x - mean) / std).astype(np.float32), mean.astype(np.float32), std.astype(np.float32)


# --- blocks ----------------------------------------------------------------------------------
def _share(bins: np.ndarray, n: int) -> np.ndarray:
    """Integer bin indices [M] -> share per bin [n] (zeros for no data)."""
    counts = np.bincount(bins, minlength=n)[:n].astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def _onset_groups(on: np.ndarray) -> np.ndarray:
    """Sorted onsets [N] -> chord index [N]: a new chord wherever the gap exceeds the merge."""
    return np.cumsum(np.r_[0, np.diff(on) > ONSET_MERGE_BEATS])


def _pitch_class_histogram(pitch: np.ndarray, beats: np.ndarray) -> np.ndarray:
    # Grace notes of zero length still count a little, so a piece of them is not all zeros.
    weights = np.maximum(beats, 1e-3)
    hist = np.bincount(pitch.astype(np.int64) % 12, weights=weights, minlength=12)
    return hist / hist.sum()


def _key(pc: np.ndarray) -> tuple[int, bool, float, float]:
    """Krumhansl-Schmuckler: correlate the histogram with the 24 rotated key profiles.

    Returns (tonic pitch class, major?, best correlation, best minus second best). A flat
    histogram (all twelve equal) correlates with nothing: C major, clarity 0.
    """
    if pc.std() < 1e-12:
        return 0, True, 0.0, 0.0
    profiles = np.stack([np.roll(p, k) for p in (KK_MAJOR, KK_MINOR) for k in range(12)])
    corr = np.array([np.corrcoef(pc, p)[0, 1] for p in profiles])  # [24] major C.., minor C..
    order = np.argsort(-corr, kind="stable")
    best = int(order[0])
    return best % 12, best < 12, float(corr[best]), float(corr[best] - corr[order[1]])


def _interval_histogram(top: np.ndarray) -> np.ndarray:
    """Skyline pitches [C] -> interval shares [9] + rising share of the non-zero moves."""
    steps = np.diff(top)
    hist = _share(np.digitize(np.abs(steps), INTERVAL_EDGES) - 1, len(INTERVAL_LABELS))
    moves = steps[steps != 0]
    up = float((moves > 0).mean()) if len(moves) else 0.5
    return np.r_[hist, up]


def _polyphony(on: np.ndarray, off: np.ndarray) -> list[float]:
    """(mean notes sounding while any sounds, most at once, silent share of the span)."""
    times = np.r_[on, off]
    delta = np.r_[np.ones(len(on)), -np.ones(len(off))]
    order = np.lexsort((delta, times))  # at a tie, ends first: a repeated note is not two
    count = np.cumsum(delta[order])  # [2N] notes sounding after each event
    dt = np.diff(times[order])  # [2N - 1] how long that count lasts
    level = count[:-1]
    sounding = dt[level > 0].sum()
    total = max(float(dt.sum()), 1e-9)
    mean = float((level * dt).sum() / sounding) if sounding > 0 else float(count.max())
    return [mean, float(count.max()), float(1.0 - sounding / total)]


def _ioi_stats(chord_on: np.ndarray) -> list[float]:
    """Inter-onset intervals in beats -> (median, coefficient of variation, mode share)."""
    ioi = np.diff(chord_on)
    if len(ioi) == 0:
        return [0.0, 0.0, 1.0]
    _, counts = np.unique(np.round(ioi * IOI_ROUND), return_counts=True)
    return [float(np.median(ioi)), float(ioi.std() / ioi.mean()), float(counts.max() / len(ioi))]


def _tempo_stats(pm: Any) -> list[float]:
    """(time-weighted mean bpm / 200, its coefficient of variation, log(1 + changes))."""
    change_s, qpm = pm.get_tempo_changes()
    if len(qpm) == 0:
        return [120.0 / 200, 0.0, 0.0]
    end = max(float(pm.get_end_time()), float(change_s[-1]))
    dt = np.diff(np.r_[change_s, end])
    dt = dt if dt.sum() > 0 else np.ones(len(qpm))
    mean = float((qpm * dt).sum() / dt.sum())
    std = float(np.sqrt(((qpm - mean) ** 2 * dt).sum() / dt.sum()))
    return [mean / 200, std / mean, float(np.log1p(len(qpm) - 1))]


def _grid_shares(chord_on: np.ndarray) -> list[float]:
    """Share of onsets within GRID_TOL_BEATS of the 1, 1/2, 1/4 and 1/3-beat grids.

    The grid starts where onsets most often fall within the beat, not at 0: POP909's songs
    are quantised, but to beats that sit a fraction of a beat after the file's own (a lead-in),
    which would otherwise read as every note being off the beat.
    """
    slot = np.round((chord_on % 1.0) * PHASE_BINS).astype(np.int64) % PHASE_BINS
    phase = np.argmax(np.bincount(slot, minlength=PHASE_BINS)) / PHASE_BINS
    out = []
    for per_beat in (1, 2, 4, 3):
        x = (chord_on - phase) * per_beat
        out.append(float((np.abs(x - np.round(x)) < GRID_TOL_BEATS * per_beat).mean()))
    return out


def _triple_metre(pm: Any) -> float:
    sigs = getattr(pm, "time_signature_changes", [])
    return float(bool(sigs) and sigs[0].numerator % 3 == 0)


# The dims that describe the notes alone: invariant to key (no raw pitch classes), register
# (no mean / lowest / highest pitch; the spread stays), tempo, dynamics, instrumentation and
# length. What a recommender should judge generated pieces by: a generator's key, octave,
# tempo, program and length are settings of how its data was encoded and how it was sampled
# and rendered (Boulanger's JSB set is transposed to C, sits an octave above the Coconet
# chorales, and is rebuilt at 120 bpm as one piano track).
_NOT_NOTES = ("pc_", "pitch_mean", "pitch_min", "pitch_max", "velocity_", "n_instruments",
              "n_programs", "gm_", "drum_density", "tempo_", "notes_per_second",
              "length_beats_log")  # fmt: skip
NOTE_FEATURES: tuple[str, ...] = tuple(
    n for n in SYMBOLIC_NAMES if not any(n.startswith(p) for p in _NOT_NOTES)
)
