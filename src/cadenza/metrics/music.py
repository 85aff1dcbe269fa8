"""Music statistics of multi-track binary piano rolls: MuseGAN's and MusPy's objective metrics.

Sources (each function names its own):
- MuseGAN: Dong, Hsiao, Yang & Yang, "MuseGAN: Multi-track sequential generative adversarial
  networks for symbolic music generation and accompaniment", AAAI 2018, and their pypianoroll
  package (`pypianoroll.metrics`).
- MusPy: Dong, Chen, Dubnov, McAuley & Berg-Kirkpatrick, "MusPy: A toolkit for symbolic music
  generation", ISMIR 2020 (`muspy.metrics`), which collects the features Yang & Lerch (2018,
  "On the evaluation of generative models in music") compare as distributions.

The unit is a `Roll`: bool [T, K, P] (time steps, tracks, pitches). A note is a run of True
along time in one track and pitch, so a note re-struck with no gap merges with the one before;
MuseGAN and pypianoroll count notes the same way. Bars are 4/4: `4 * steps_per_beat` steps, and a
trailing partial bar counts as a bar (padded with silence).

Drum tracks carry instruments, not pitches, so every pitch statistic skips them (as MusPy does);
the drum-pattern rate reads only them, and the groove reads every track.

One piece's or one set's metrics: `music_sets`; comparing two sets: `music_compare`; MIDI files
to rolls: `music_rolls`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Pitch classes of C major and C natural minor; other keys are rotations.
_MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], bool)
_MINOR = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], bool)

# pypianoroll's drum_in_pattern_rate masks, per beat resolution: the grid period in steps (an
# 8th or 16th note, an 8th-note triplet at 9 and 18). A step on the grid weighs 1, one step
# either side weighs `tolerance`, anything else 0.
DRUM_GRID_PERIOD = {4: 2, 6: 3, 8: 2, 9: 3, 12: 3, 16: 4, 18: 6, 24: 6}

# Radii of the fifths, minor-thirds and major-thirds circles (Harte et al. 2006, eq. 3).
TONAL_RADII = (1.0, 1.0, 0.5)


@dataclass(frozen=True, eq=False)
class Roll:
    """One piece. `roll`: bool [T, K, P]; a [T, P] array is read as one track.

    low_pitch: MIDI pitch of column 0. steps_per_beat: grid steps per quarter note.
    drums: per track, whether it is a drum track (default: none are). names: per track, the key
    used in per-track metric names (default `track<i>`, which lines tracks up by index across the
    pieces of a set).
    """

    roll: np.ndarray
    low_pitch: int = 0
    steps_per_beat: int = 12
    drums: Sequence[bool] | None = None
    names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        arr = np.asarray(self.roll).astype(bool)
        if arr.ndim == 2:
            arr = arr[:, None, :]
        if arr.ndim != 3:
            raise ValueError(f"roll must be [T, K, P] or [T, P], got shape {arr.shape}")
        if int(self.steps_per_beat) < 1:
            raise ValueError(f"steps_per_beat must be >= 1, got {self.steps_per_beat}")
        k = arr.shape[1]
        drums = tuple(bool(d) for d in self.drums) if self.drums is not None else (False,) * k
        names = tuple(str(n) for n in self.names) if self.names is not None else None
        if len(drums) != k or (names is not None and len(names) != k):
            raise ValueError(f"drums/names must have one entry per track ({k})")
        object.__setattr__(self, "roll", arr)
        object.__setattr__(self, "drums", drums)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "steps_per_beat", int(self.steps_per_beat))
        object.__setattr__(self, "low_pitch", int(self.low_pitch))

    @property
    def bar_steps(self) -> int:
        return 4 * self.steps_per_beat

    @property
    def n_tracks(self) -> int:
        return self.roll.shape[1]

    def key(self, k: int) -> str:
        return self.names[k] if self.names else f"track{k}"

    def pitched(self) -> list[int]:
        return [k for k in range(self.n_tracks) if not self.drums[k]]

    def drum_tracks(self) -> list[int]:
        return [k for k in range(self.n_tracks) if self.drums[k]]

    @functools.cached_property
    def notes(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """`notes_of` each track, found once: a piece's metrics read them a dozen times."""
        return [notes_of(self.roll[:, k]) for k in range(self.n_tracks)]

    @functools.cached_property
    def bar_chroma(self) -> list[np.ndarray]:
        """`_bar_chroma` of each track, found once (every pair of tracks reads two)."""
        return [_bar_chroma(self.roll[:, k], self.bar_steps, self.low_pitch)
                for k in range(self.n_tracks)]  # fmt: skip


# --- helpers ---------------------------------------------------------------------------------
def notes_of(track: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bool [T, P] -> (onset step, offset step, pitch column), int [N] each: one per run,
    ordered by pitch, then time."""
    track = np.asarray(track, bool)
    cols = np.flatnonzero(track.any(axis=0))  # a piece sounds a third of the 128 pitches or less
    # [used pitches, T + 2], contiguous and pitch-major so on/off pairs line up.
    padded = np.zeros((len(cols), track.shape[0] + 2), np.int8)
    padded[:, 1:-1] = track[:, cols].T
    change = np.diff(padded, axis=1)
    row_on, t_on = np.nonzero(change == 1)
    _, t_off = np.nonzero(change == -1)
    return t_on, t_off, cols[row_on]


def _bars(track: np.ndarray, bar_steps: int) -> np.ndarray:
    """bool [T, P] -> [n_bars, bar_steps, P], the last bar padded with silence."""
    n_bars = -(-track.shape[0] // bar_steps)
    padded = np.zeros((n_bars * bar_steps, track.shape[1]), bool)
    padded[: track.shape[0]] = track
    return padded.reshape(n_bars, bar_steps, track.shape[1])


def _bar_chroma(track: np.ndarray, bar_steps: int, low_pitch: int) -> np.ndarray:
    """bool [T, P] -> float [n_bars, 12]: sounding steps per pitch class in each bar."""
    per_pitch = _bars(track, bar_steps).sum(axis=1, dtype=np.float64)  # [n_bars, P]
    fold = np.zeros((track.shape[1], 12))
    fold[np.arange(track.shape[1]), (low_pitch + np.arange(track.shape[1])) % 12] = 1.0
    return per_pitch @ fold


def ratio(part: tuple[float, float]) -> float:
    """(numerator, denominator) -> their quotient, NaN for a zero denominator."""
    num, den = part
    return float(num) / float(den) if den > 0 else math.nan


def default_qn_threshold(steps_per_beat: int) -> int:
    """Steps of a 32nd note, rounded up: MuseGAN's 3 at 24 steps/beat, pypianoroll's 2 at 12."""
    return max(1, math.ceil(steps_per_beat / 8))


# --- MuseGAN, per track ----------------------------------------------------------------------
def empty_bar_counts(track: np.ndarray, bar_steps: int) -> tuple[float, float]:
    """(empty bars, bars): the parts `set_metrics` pools."""
    return empty_bar_counts_from(_bar_chroma(track, bar_steps, 0))


def empty_bar_counts_from(chroma: np.ndarray) -> tuple[float, float]:
    """`empty_bar_counts` of a track's bar chroma [n_bars, 12] (a Roll's `bar_chroma`): a bar
    is empty when no step of it sounds, so its chroma sums to 0."""
    return float(np.count_nonzero(chroma.sum(axis=1) == 0)), float(len(chroma))


def empty_bar_rate(track: np.ndarray, bar_steps: int) -> float:
    """EB (MuseGAN): fraction of the track's bars with no sounding note. bool [T, P].

    NaN for a zero-length track.
    """
    return ratio(empty_bar_counts(track, bar_steps))


def used_pitch_class_counts(
    track: np.ndarray, bar_steps: int, low_pitch: int
) -> tuple[float, float]:
    """(sum of pitch classes over non-empty bars, non-empty bars)."""
    return used_pitch_class_counts_from(_bar_chroma(track, bar_steps, low_pitch))


def used_pitch_class_counts_from(chroma: np.ndarray) -> tuple[float, float]:
    """`used_pitch_class_counts` of a track's bar chroma [n_bars, 12] (a Roll's `bar_chroma`)."""
    pcs = np.count_nonzero(chroma, axis=1)
    return float(pcs.sum()), float(np.count_nonzero(pcs))


def used_pitch_classes(track: np.ndarray, bar_steps: int, low_pitch: int = 0) -> float:
    """UPC (MuseGAN): distinct pitch classes sounding in a bar (0..12), averaged over the
    track's non-empty bars only, so silence does not pull it down (EB reports silence).

    NaN when every bar is empty.
    """
    return ratio(used_pitch_class_counts(track, bar_steps, low_pitch))


def qualified_note_counts(track: np.ndarray, threshold: int) -> tuple[float, float]:
    """(qualified notes, notes)."""
    return qualified_note_counts_from(notes_of(track), threshold)


def qualified_note_counts_from(
    notes: tuple[np.ndarray, ...], threshold: int
) -> tuple[float, float]:
    """`qualified_note_counts` of a track's `notes_of` (a Roll's `notes`)."""
    on, off, _ = notes
    return float(np.count_nonzero(off - on >= threshold)), float(len(on))


def qualified_note_rate(track: np.ndarray, threshold: int) -> float:
    """QN (MuseGAN / pypianoroll): fraction of notes at least `threshold` steps long.

    MuseGAN counts notes shorter than a 32nd note (3 steps at 24 steps/beat) as fragments; see
    `default_qn_threshold`. At 4 steps/beat the threshold is 1 step and every note qualifies,
    so QN says nothing there. NaN when the track has no note.
    """
    return ratio(qualified_note_counts(track, threshold))


def drum_pattern_counts(
    track: np.ndarray, steps_per_beat: int, tolerance: float, onsets_only: bool
) -> tuple[float, float]:
    """(weighted hits on the grid, hits); see `drum_pattern_rate`."""
    steps = notes_of(track)[0] if onsets_only else np.nonzero(track)[0]
    return drum_pattern_counts_from(steps, steps_per_beat, tolerance)


def drum_pattern_counts_from(
    steps: np.ndarray, steps_per_beat: int, tolerance: float
) -> tuple[float, float]:
    """`drum_pattern_counts` of the hits' steps (onsets, or every sounding step)."""
    if steps_per_beat not in DRUM_GRID_PERIOD:
        raise ValueError(
            f"drum-pattern rate is defined for {sorted(DRUM_GRID_PERIOD)} steps per beat, "
            f"got {steps_per_beat}"
        )
    period = DRUM_GRID_PERIOD[steps_per_beat]
    phase = steps % period
    weight = np.where(phase == 0, 1.0, np.where((phase == 1) | (phase == period - 1), tolerance, 0))
    return float(weight.sum()), float(len(steps))


def drum_pattern_rate(
    track: np.ndarray, steps_per_beat: int, tolerance: float = 0.1, onsets_only: bool = True
) -> float:
    """DP (MuseGAN, pypianoroll's `drum_in_pattern_rate`): weighted fraction of drum hits on
    the grid of `DRUM_GRID_PERIOD` (16th notes at 8, 12, 16, 24 steps/beat; 8th notes at 4 and
    6; 8th-note triplets at 9 and 18). A hit on the grid counts 1, one step off counts
    `tolerance`, further off 0.

    pypianoroll weighs every sounding (step, pitch) cell; that equals counting hits only when
    each drum hit lasts one step. Drum notes in MIDI files last a few steps at fine grids, which
    would count their tails as off-grid hits, so by default each note counts once, at its onset
    (`onsets_only=False` gives pypianoroll's count). NaN when the track has no hit; ValueError
    for another resolution.
    """
    return ratio(drum_pattern_counts(track, steps_per_beat, tolerance, onsets_only))


def _tonal_matrix(radii: Sequence[float] = TONAL_RADII) -> np.ndarray:
    """[6, 12]: Harte et al. (2006) eq. 2, pitch class l -> circles of fifths, minor and major
    thirds."""
    r1, r2, r3 = radii
    pc = np.arange(12)
    return np.stack(
        [
            r1 * np.sin(pc * 7 * np.pi / 6),
            r1 * np.cos(pc * 7 * np.pi / 6),
            r2 * np.sin(pc * 3 * np.pi / 2),
            r2 * np.cos(pc * 3 * np.pi / 2),
            r3 * np.sin(pc * 2 * np.pi / 3),
            r3 * np.cos(pc * 2 * np.pi / 3),
        ]
    )


def tonal_distance(
    track_a: np.ndarray, track_b: np.ndarray, bar_steps: int, low_pitch: int = 0
) -> float:
    """TD (MuseGAN): Euclidean distance between the two tracks' 6-D tonal centroids (Harte,
    Sandler & Gasser 2006) of each bar's chroma, averaged over the bars where both sound.

    A bar's chroma counts sounding steps per pitch class and is normalised to sum 1 before the
    projection, so a held note weighs by its length. Both tracks are bool [T, P] of one piece.
    NaN when no bar has both tracks sounding.
    """
    return _chroma_distance(
        _bar_chroma(track_a, bar_steps, low_pitch), _bar_chroma(track_b, bar_steps, low_pitch)
    )


def _chroma_distance(ca: np.ndarray, cb: np.ndarray) -> float:
    """`tonal_distance` of two tracks' bar chroma [n_bars, 12]."""
    both = (ca.sum(1) > 0) & (cb.sum(1) > 0)
    if not both.any():
        return math.nan
    tonal = _tonal_matrix()
    ta = (ca[both] / ca[both].sum(1, keepdims=True)) @ tonal.T
    tb = (cb[both] / cb[both].sum(1, keepdims=True)) @ tonal.T
    return float(np.linalg.norm(ta - tb, axis=1).mean())


def tonal_distances(roll: Roll) -> dict[str, float]:
    """TD of every pair of non-drum tracks, keyed `<key a>-<key b>` in track order."""
    tracks = roll.pitched()
    return {
        f"{roll.key(a)}-{roll.key(b)}": _chroma_distance(roll.bar_chroma[a], roll.bar_chroma[b])
        for i, a in enumerate(tracks)
        for b in tracks[i + 1 :]
    }


# --- MusPy / Yang & Lerch, over the piece ----------------------------------------------------
def _pitched_notes(roll: Roll) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(onset, offset, MIDI pitch) of every note of every non-drum track, concatenated."""
    parts = [roll.notes[k] for k in roll.pitched()]
    if not parts:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)
    on, off, col = (np.concatenate(x) for x in zip(*parts))
    return on, off, col + roll.low_pitch


def pitch_class_entropy(roll: Roll) -> float:
    """MusPy `pitch_class_entropy`: base-2 entropy of the histogram of the notes' pitch classes
    (each note counts once, whatever its length). Non-drum tracks. 0 for one pitch class,
    log2(12) for all twelve equally often; NaN without notes."""
    pitches = _pitched_notes(roll)[2]
    if len(pitches) == 0:
        return math.nan
    prob = np.bincount(pitches % 12, minlength=12) / len(pitches)
    prob = prob[prob > 0]
    return float(abs(-(prob * np.log2(prob)).sum()))  # abs: one class gives -0.0


def scale_consistency(roll: Roll) -> float:
    """MusPy `scale_consistency`: the largest fraction of notes whose pitch class lies in one
    major or natural-minor scale, over all 24. Non-drum tracks; NaN without notes."""
    pcs = _pitched_notes(roll)[2] % 12
    if len(pcs) == 0:
        return math.nan
    return float(
        max(np.roll(scale, root)[pcs].mean() for scale in (_MAJOR, _MINOR) for root in range(12))
    )


def groove_consistency(roll: Roll) -> float:
    """MusPy `groove_consistency`: 1 - mean Hamming distance between the onset patterns of
    neighbouring bars / steps per bar. A bar's pattern marks the steps where any track (drums
    included) starts a note. As in MusPy the piece ends with its last sounding step, so trailing
    silence adds no bars; NaN for fewer than 2 bars."""
    sounding = np.nonzero(roll.roll.any(axis=(1, 2)))[0]
    if len(sounding) == 0:
        return math.nan
    n_bars = -(-(int(sounding[-1]) + 1) // roll.bar_steps)
    if n_bars < 2:
        return math.nan
    onsets = np.zeros(n_bars * roll.bar_steps, bool)
    for k in range(roll.n_tracks):
        onsets[roll.notes[k][0]] = True
    patterns = onsets.reshape(n_bars, roll.bar_steps)
    hamming = np.count_nonzero(patterns[:-1] != patterns[1:])
    return float(1.0 - hamming / (roll.bar_steps * (n_bars - 1)))


def polyphony(roll: Roll) -> float:
    """MusPy `polyphony`: mean number of pitches sounding at once, over the steps where at least
    one sounds. Non-drum tracks merged (a pitch held in two tracks counts once); NaN if silent."""
    counts = roll.roll[:, roll.pitched()].any(axis=1).sum(axis=1)
    sounding = counts[counts > 0]
    return float(sounding.mean()) if len(sounding) else math.nan


def pitch_range(roll: Roll) -> float:
    """MusPy `pitch_range`: highest minus lowest sounding pitch, in semitones. Non-drum tracks;
    NaN without notes."""
    used = np.nonzero(roll.roll[:, roll.pitched()].any(axis=(0, 1)))[0]
    return float(used[-1] - used[0]) if len(used) else math.nan


def note_density(roll: Roll) -> float:
    """Notes per bar: non-drum notes (runs, summed over tracks) / bars of the roll (a partial
    last bar counts as one). Not in MusPy; Yang & Lerch's "note count" per bar. NaN if T == 0."""
    n_bars = -(-roll.roll.shape[0] // roll.bar_steps)
    return len(_pitched_notes(roll)[0]) / n_bars if n_bars else math.nan
