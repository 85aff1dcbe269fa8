"""Binary piano roll on a beat grid: the representation of Boulanger-Lewandowski's benchmarks.

Frames are `steps_per_beat` per quarter note, so a piece's rhythm survives tempo changes. Each
frame is `n_tracks` blocks of `n_pitches` 0/1 values; a held note is a run of 1s, so a note
re-struck with no gap merges with the one before (as in the original benchmark rolls).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cadenza.errors import BadMidiError, ConfigError
from cadenza.io.midi import TrackNotes, build_midi, time_to_beats, tracks_of
from cadenza.representations.base import Codec, check_pitch_range, check_steps_per_beat


class PianoRollCodec(Codec):
    """PrettyMIDI <-> FloatTensor [T, n_tracks * n_pitches] of 0/1.

    tracks: "merge" (every non-drum instrument in one block) or "instruments:N" (the first N
    non-drum instruments in file order, one block each; missing ones stay silent).
    """

    name = "pianoroll"
    kind = "frames"

    def __init__(
        self,
        steps_per_beat: int = 4,
        low_pitch: int = 21,
        high_pitch: int = 108,
        tracks: str = "merge",
        tempo: float = 120.0,
        program: int = 0,
        max_steps: int | None = None,
    ) -> None:
        check_steps_per_beat(steps_per_beat)
        check_pitch_range(low_pitch, high_pitch)
        self.steps_per_beat = int(steps_per_beat)
        self.low_pitch = int(low_pitch)
        self.high_pitch = int(high_pitch)
        self.tracks = str(tracks)
        self.n_tracks = _parse_tracks(self.tracks)
        self.tempo = float(tempo)
        self.program = int(program)
        self.max_steps = None if max_steps is None else int(max_steps)

    @property
    def n_pitches(self) -> int:
        return self.high_pitch - self.low_pitch + 1

    @property
    def feature_dim(self) -> int:
        return self.n_tracks * self.n_pitches

    # --- encode ----------------------------------------------------------------------------
    def quantize(self, midi: Any) -> list[np.ndarray]:
        """Per track block, int64 [N, 3] (on_step, off_step, pitch) of the notes kept.

        on = round(beat * steps_per_beat); a note covers [on, max(off, on + 1)).
        """
        pitched = tracks_of(midi, include_drums=False)
        if self.tracks == "merge":
            groups = [np.concatenate([t.notes for t in pitched])] if pitched else []
        else:
            groups = [t.notes for t in pitched[: self.n_tracks]]
        blocks = [
            quantize_notes(midi, notes, self.steps_per_beat, self.low_pitch, self.high_pitch)
            for notes in groups
        ]
        blocks += [np.zeros((0, 3), np.int64)] * (self.n_tracks - len(blocks))
        return blocks

    def encode(self, midi: Any) -> torch.Tensor:
        """PrettyMIDI -> FloatTensor [T, D] of 0/1; T = last note-off step (cut to max_steps)."""
        blocks = self.quantize(midi)
        T = max((int(b[:, 1].max()) for b in blocks if len(b)), default=0)
        if T == 0:
            raise BadMidiError(
                "<pianoroll>", "no_notes", f"no pitched note in {self.low_pitch}..{self.high_pitch}"
            )
        roll = notes_to_roll(blocks, T, self.n_pitches, self.low_pitch).astype(np.float32)
        if self.max_steps is not None:
            roll = roll[: self.max_steps]
        return torch.from_numpy(roll.reshape(len(roll), self.feature_dim))

    # --- decode ----------------------------------------------------------------------------
    def runs(self, x: torch.Tensor | np.ndarray) -> list[np.ndarray]:
        """Runs of active frames per block: int64 [N, 3] (on_step, off_step, pitch).

        Values > 0.5 count as on, so probabilities from a model decode too.
        """
        arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.feature_dim:
            raise ValueError(f"expected frames [T, {self.feature_dim}] ({self.n_tracks} track(s) x "
                             f"{self.n_pitches} pitches), got {list(arr.shape)}")  # fmt: skip
        return roll_runs(arr.reshape(len(arr), self.n_tracks, self.n_pitches) > 0.5, self.low_pitch)

    def decode(self, x: torch.Tensor) -> Any:
        """[T, D] frames -> PrettyMIDI at `tempo`, one instrument per block (empty ones kept)."""
        sec_per_step = 60.0 / (self.tempo * self.steps_per_beat)
        tracks = []
        for k, runs in enumerate(self.runs(x)):
            notes = np.zeros((len(runs), 4))
            notes[:, 0:2] = runs[:, 0:2] * sec_per_step
            notes[:, 2] = runs[:, 2]
            notes[:, 3] = 80
            name = "piano roll" if self.n_tracks == 1 else f"track {k}"
            tracks.append(TrackNotes(self.program, False, name, notes))
        return build_midi(tracks, tempo=self.tempo)

    # --- lengths, augmentation, persistence ------------------------------------------------
    def steps_for_bars(self, bars: float) -> int:
        return round(bars * 4 * self.steps_per_beat)

    def transpose(self, x: np.ndarray, semitones: int) -> np.ndarray | None:
        """[T, D] -> [T, D] shifted `semitones` within each block; None if a note falls out."""
        roll = np.asarray(x).reshape(len(x), self.n_tracks, self.n_pitches)
        out = shift_pitches(roll, int(semitones))
        return None if out is None else out.reshape(np.shape(x))

    def params(self) -> dict[str, Any]:
        return {
            "steps_per_beat": self.steps_per_beat,
            "low_pitch": self.low_pitch,
            "high_pitch": self.high_pitch,
            "tracks": self.tracks,
            "tempo": self.tempo,
            "program": self.program,
            "max_steps": self.max_steps,
        }


def quantize_notes(
    midi: Any, notes: np.ndarray, steps_per_beat: int, low_pitch: int, high_pitch: int
) -> np.ndarray:
    """Notes [N, 4] in seconds -> int64 [M, 3] (on_step, off_step, pitch) of those within
    low_pitch..high_pitch (the rest are dropped, not folded).

    on = round(beat * steps_per_beat); a note covers [on, max(off, on + 1)), so a note shorter
    than a step still sounds for one.
    """
    notes = notes[(notes[:, 2] >= low_pitch) & (notes[:, 2] <= high_pitch)]
    # floor(x + 0.5), not np.round: half-steps always go up, never to the even neighbour.
    on = np.floor(time_to_beats(midi, notes[:, 0]) * steps_per_beat + 0.5)
    off = np.floor(time_to_beats(midi, notes[:, 1]) * steps_per_beat + 0.5)
    off = np.maximum(off, on + 1)
    return np.stack([on, off, notes[:, 2]], axis=1).astype(np.int64).reshape(-1, 3)


def notes_to_roll(
    blocks: list[np.ndarray], steps: int, n_pitches: int, low_pitch: int
) -> np.ndarray:
    """Per track, int64 [N, 3] (on_step, off_step, pitch) -> bool roll [steps, K, P]: a step is on
    while any note of that pitch holds (overlapping notes union). Vectorised over the cells
    the notes cover: a loop over notes, or a cumulative sum over the whole roll, was most of
    bulk preparation's time."""
    roll = np.zeros((steps, len(blocks), n_pitches), dtype=bool)
    for k, block in enumerate(blocks):
        if not len(block):
            continue
        lengths = block[:, 1] - block[:, 0]
        # Cell j of note i (counted over all notes) is step on_i + j - first_cell_i.
        first_cell = np.cumsum(lengths) - lengths
        cells = np.repeat(block[:, 0] - first_cell, lengths) + np.arange(int(lengths.sum()))
        roll[cells, k, np.repeat(block[:, 2] - low_pitch, lengths)] = True
    return roll


def roll_runs(roll: np.ndarray, low_pitch: int) -> list[np.ndarray]:
    """Bool roll [T, K, P] -> per track k, int64 [N, 3] (on_step, off_step, pitch) of its runs
    of active steps, sorted by onset then pitch."""
    T, K, P = roll.shape
    padded = np.zeros((T + 2, K, P), dtype=np.int8)
    padded[1:-1] = roll
    edges = np.diff(padded, axis=0)  # +1 where a run starts, -1 one past where it ends
    out = []
    for k in range(K):
        st, sp = np.nonzero(edges[:, k] == 1)
        en, ep = np.nonzero(edges[:, k] == -1)
        # Sorting by (pitch, step) pairs each start with its own end.
        s_order, e_order = np.lexsort((st, sp)), np.lexsort((en, ep))
        runs = np.stack([st[s_order], en[e_order], sp[s_order] + low_pitch], axis=1)
        out.append(runs[np.lexsort((runs[:, 2], runs[:, 0]))].astype(np.int64))
    return out


def shift_pitches(roll: np.ndarray, k: int) -> np.ndarray | None:
    """A roll [T, K, P] moved k columns up the pitch axis (a new array); None if a note would
    fall off either end."""
    if k == 0:
        return np.array(roll, copy=True)
    lost = roll[:, :, -k:] if k > 0 else roll[:, :, :-k]
    if abs(k) >= roll.shape[2] or lost.any():
        return None if roll.any() else np.array(roll, copy=True)
    out = np.zeros_like(roll)
    if k > 0:
        out[:, :, k:] = roll[:, :, :-k]
    else:
        out[:, :, :k] = roll[:, :, -k:]
    return out


def _parse_tracks(tracks: str) -> int:
    if tracks == "merge":
        return 1
    head, _, count = tracks.partition(":")
    if head == "instruments" and count.isdigit() and int(count) >= 1:
        return int(count)
    raise ConfigError(
        f"representation.tracks must be 'merge' or 'instruments:N' (N >= 1), got {tracks!r}"
    )
