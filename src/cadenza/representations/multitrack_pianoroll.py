"""Several piano rolls on one beat grid, one channel per track: MuseGAN's multi-track roll.

Dong et al. (2018) model a pop arrangement (bass, drums, guitar, piano, strings) as a binary
tensor [T, K, P]: K tracks, each its own polyphonic piano roll over the same P pitches, so a
convolution sees which track plays what. Here every track is a MelodyCodec-style instrument
selection (POP909's MELODY, BRIDGE, PIANO by name; a chorale's voices by index). Unlike
MultiTrackMelodyCodec, a track keeps all its notes (chords stay chords); like PianoRollCodec, a
note re-struck with no gap merges with the one before, and notes outside the pitch range are
dropped rather than folded, so every kept note keeps its pitch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cadenza.errors import BadMidiError, ConfigError
from cadenza.io.midi import TrackNotes, build_midi
from cadenza.representations import melody
from cadenza.representations.base import Codec, check_pitch_range, check_steps_per_beat
from cadenza.representations.melody import HOLD, REST
from cadenza.representations.multitrack import (
    DEFAULT_TRACKS,
    check_programs,
    check_tracks,
    per_track,
)
from cadenza.representations.pianoroll import (
    notes_to_roll,
    quantize_notes,
    roll_runs,
    shift_pitches,
)


class MultiTrackPianoRollCodec(Codec):
    """PrettyMIDI <-> FloatTensor [T, K, P] of 0/1; channel k is the roll of `tracks[k]`.

    tracks: instrument selections as MelodyCodec reads them ("top", "program:N", "index:N",
    "name:TEXT"); "top" keeps only the highest sounding pitch per step (the skyline).
    programs: General MIDI program of each decoded track (default 0, piano, for all).
    drums: per track, whether it selects among drum instruments (and decodes as drums); a
    drum track is never transposed. A track the file lacks, or whose notes all fall outside
    the range, is all zeros; only a file with no note in any track is a bad file.
    """

    name = "multitrack_pianoroll"
    kind = "frames"

    def __init__(
        self,
        tracks: Sequence[str] = DEFAULT_TRACKS,
        steps_per_beat: int = 4,
        low_pitch: int = 24,
        high_pitch: int = 107,
        tempo: float = 120.0,
        programs: Sequence[int] | None = None,
        drums: Sequence[bool] | None = None,
    ) -> None:
        self.tracks = check_tracks(tracks)
        self._selects = [
            melody._parse_instrument(t, key=f"representation.tracks[{i}]")
            for i, t in enumerate(self.tracks)
        ]
        K = len(self.tracks)
        self.programs = check_programs(programs, K)
        self.drums = per_track(
            "drums", drums, K, False, lambda d: isinstance(d, bool), "booleans (true = drums)"
        )
        self.steps_per_beat = check_steps_per_beat(steps_per_beat)
        self.low_pitch, self.high_pitch = check_pitch_range(low_pitch, high_pitch)
        if isinstance(tempo, bool) or not isinstance(tempo, int | float) or not tempo > 0:
            raise ConfigError(f"representation.tempo must be a number > 0, got {tempo!r}")
        self.tempo = float(tempo)

    # --- sizes -----------------------------------------------------------------------------
    @property
    def n_tracks(self) -> int:
        return len(self.tracks)

    @property
    def n_pitches(self) -> int:
        return self.high_pitch - self.low_pitch + 1

    @property
    def row_shape(self) -> tuple[int, ...]:
        return (self.n_tracks, self.n_pitches)

    @property
    def feature_dim(self) -> int:
        """Values per step, K * P (for models that flatten the tracks)."""
        return self.n_tracks * self.n_pitches

    @property
    def steps_per_bar(self) -> int:
        return self.steps_for_bars(1)

    # --- both directions -------------------------------------------------------------------
    def quantize(self, midi: Any) -> list[np.ndarray]:
        """Per track, int64 [N, 3] (on_step, off_step, pitch) of its notes within range, as
        PianoRollCodec quantizes them (before the skyline of a "top" track)."""
        return [
            quantize_notes(
                midi,
                melody.select_notes(midi, select, drums=drum),
                self.steps_per_beat,
                self.low_pitch,
                self.high_pitch,
            )
            for select, drum in zip(self._selects, self.drums)
        ]

    def encode(self, midi: Any) -> torch.Tensor:
        """PrettyMIDI -> FloatTensor [T, K, P] of 0/1; T = the last note-off step of any
        track. Overlapping notes of one pitch simply union."""
        blocks = self.quantize(midi)
        T = max((int(b[:, 1].max()) for b in blocks if len(b)), default=0)
        if T == 0:
            raise BadMidiError(
                "<multitrack_pianoroll>",
                "no_notes",
                f"no note in any of the tracks {self.tracks} within "
                f"{self.low_pitch}..{self.high_pitch}",
            )
        active = notes_to_roll(blocks, T, self.n_pitches, self.low_pitch)  # [T, K, P]
        for k, (mode, _) in enumerate(self._selects):
            if mode == "top":
                active[:, k] = _skyline(active[:, k])
        roll = active.astype(np.float32)
        return torch.from_numpy(roll)

    def notes(self, x: torch.Tensor | np.ndarray) -> list[np.ndarray]:
        """Roll [T, K, P] -> K int64 arrays [N_k, 3] (on_step, off_step, pitch): each run of
        values > 0.5 is one note, so a model's probabilities read too."""
        return roll_runs(self._roll(x) > 0.5, self.low_pitch)

    def decode(self, x: torch.Tensor | np.ndarray) -> Any:
        """Roll [T, K, P] (float, values > 0.5 on, or bool) -> PrettyMIDI at `tempo` with K
        instruments in track order, empty ones kept so that `index:k` finds track k again. A
        `name:TEXT` track is named TEXT (so re-encoding finds it); any other is named after its
        selection."""
        sec_per_step = 60.0 / (self.tempo * self.steps_per_beat)
        parts = []
        for k, runs in enumerate(self.notes(x)):
            notes = np.zeros((len(runs), 4))
            notes[:, 0:2] = runs[:, 0:2] * sec_per_step
            notes[:, 2] = runs[:, 2]
            notes[:, 3] = 80
            t = self.tracks[k]
            name = t.partition(":")[2] if t.startswith("name:") else t
            parts.append(TrackNotes(self.programs[k], self.drums[k], name, notes))
        return build_midi(parts, tempo=self.tempo)

    def _roll(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """x as a numpy roll [T, K, P] in its own dtype (a flat [T, K * P] is accepted too)."""
        arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
        if arr.ndim == 2 and arr.shape[1] == self.feature_dim:
            arr = arr.reshape(len(arr), self.n_tracks, self.n_pitches)
        if arr.ndim != 3 or arr.shape[1:] != self.row_shape:
            raise ValueError(
                f"{self.name} expects a roll [T, {self.n_tracks}, {self.n_pitches}], "
                f"got {arr.shape}"
            )
        return arr

    # --- lengths, windows, augmentation, persistence ---------------------------------------
    def steps_for_bars(self, bars: float) -> int:
        return round(bars * 4 * self.steps_per_beat)

    def window_starts(
        self, roll: np.ndarray, bars: int, hop_bars: int = 1, max_rest_fraction: float = 0.5
    ) -> list[int]:
        """Bar-aligned starts of full `bars`-bar windows of roll [T, K, P], every `hop_bars`;
        a window is left out when more than `max_rest_fraction` of its steps are silent in
        every track, so one resting track never drops a window the others fill."""
        arr = self._roll(roll)
        silent = ~(arr > 0.5).any(axis=(1, 2))  # [T]
        # The melody filter counts REST ids: a [T] stand-in with REST exactly where all rest.
        proxy = np.where(silent, REST, HOLD)
        return melody.window_starts(
            proxy, bars, hop_bars, max_rest_fraction, steps_per_bar=self.steps_per_bar
        )

    def cut_window(self, roll: np.ndarray, start: int, bars: int) -> np.ndarray:
        """roll[start : start + L] as a new [L, K, P] array (L = bars * steps_per_bar), in the
        roll's dtype; past the end of the piece it is silence. A note held into the window
        simply starts at step 0: a roll needs no repair, unlike melody tokens."""
        arr = self._roll(roll)
        length = bars * self.steps_per_bar
        out = np.zeros((length, *self.row_shape), dtype=arr.dtype)
        piece = arr[start : start + length]
        out[: len(piece)] = piece
        return out

    def windows(
        self, roll: np.ndarray, bars: int, hop_bars: int = 1, max_rest_fraction: float = 0.5
    ) -> list[np.ndarray]:
        """Every window [bars * steps_per_bar, K, P] that `window_starts` keeps."""
        starts = self.window_starts(roll, bars, hop_bars, max_rest_fraction)
        return [self.cut_window(roll, s, bars) for s in starts]

    def transpose(self, x: np.ndarray, semitones: int) -> np.ndarray | None:
        """Shift every pitched track of roll [T, K, P] by `semitones` (same shape and dtype
        back); None if a note would leave [low_pitch, high_pitch]. Drum tracks stay put: their
        "pitch" is which drum is struck."""
        k = int(semitones)
        roll = self._roll(x)
        pitched = [i for i, d in enumerate(self.drums) if not d]
        out = np.array(roll, copy=True)
        if k == 0 or not pitched:
            return out.reshape(np.shape(x))
        shifted = shift_pitches(roll[:, pitched], k)  # [T, K', P]
        if shifted is None:
            return None
        out[:, pitched] = shifted
        return out.reshape(np.shape(x))

    def params(self) -> dict[str, Any]:
        return {
            "tracks": list(self.tracks),
            "steps_per_beat": self.steps_per_beat,
            "low_pitch": self.low_pitch,
            "high_pitch": self.high_pitch,
            "tempo": self.tempo,
            "programs": list(self.programs),
            "drums": list(self.drums),
        }


def _skyline(active: np.ndarray) -> np.ndarray:
    """Bool [T, P] -> bool [T, P] with only the highest active pitch of each step."""
    out = np.zeros_like(active)
    sounding = active.any(axis=1)
    top = active.shape[1] - 1 - np.argmax(active[:, ::-1], axis=1)
    out[sounding, top[sounding]] = True
    return out
