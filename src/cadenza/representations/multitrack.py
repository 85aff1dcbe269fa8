"""Several monophonic voices on one 16th-note grid: MusicVAE's multi-track ("trio") tokens.

Roberts et al. (2018) model a trio (melody, bass, drums) as parallel melody-like sequences that
share one clock. Here every track is a `MelodyCodec` selection (a chorale's soprano, alto, tenor
and bass by index; POP909's MELODY and BRIDGE by name) over one shared vocabulary, so a piece
is tokens [T, K]: one MelodyCodec id per step and track. The same NOTE_ON id means the same
pitch in every track, which keeps transposition one array operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cadenza.errors import BadMidiError, ConfigError
from cadenza.io.midi import build_midi
from cadenza.representations import melody
from cadenza.representations.base import Codec
from cadenza.representations.melody import HOLD, REST, MelodyCodec

DEFAULT_TRACKS = ("index:0", "index:1", "index:2", "index:3")


def check_tracks(tracks: Any) -> list[str]:
    """`representation.tracks` as a list of selection strings; one bare string is refused.
    (Hydra hands over ListConfig, not list, so any sequence is accepted.)"""
    if isinstance(tracks, str) or not isinstance(tracks, Sequence) or len(tracks) == 0:
        raise ConfigError(
            "representation.tracks must be a non-empty list of instrument selections "
            f"(e.g. [index:0, index:1] or [name:MELODY, name:BRIDGE]), got {tracks!r}"
        )
    return [str(t) for t in tracks]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def per_track(key: str, values: Any, n: int, default: Any, ok: Any, what: str) -> list[Any]:
    """`values` checked as one entry per track (None: `default` for all), as a plain list."""
    if values is None:
        return [default] * n
    if (
        isinstance(values, str)
        or not isinstance(values, Sequence)
        or len(values) != n
        or not all(ok(v) for v in values)
    ):
        raise ConfigError(
            f"representation.{key} must be null or {n} {what}, one per track, got {values!r}"
        )
    return list(values)


def check_programs(programs: Any, n: int) -> list[int]:
    """`representation.programs`: null (piano for all) or one General MIDI program per track."""
    return per_track("programs", programs, n, 0, lambda p: _is_int(p) and 0 <= p <= 127,
                     "General MIDI programs (integers 0..127)")  # fmt: skip


class MultiTrackMelodyCodec(Codec):
    """PrettyMIDI <-> LongTensor [T, K] of MelodyCodec ids, column k from `tracks[k]`.

    tracks: MelodyCodec instrument selections ("top", "program:N", "index:N", "name:TEXT").
    programs: General MIDI program of each decoded track (default 0, piano, for all).
    A track the file lacks, or whose notes all fall outside the range, is all REST; only a
    file with no note in any track is a bad file.
    """

    name = "multitrack_melody"
    kind = "tokens"
    rest_value = REST

    def __init__(
        self,
        tracks: Sequence[str] = DEFAULT_TRACKS,
        steps_per_beat: int = 4,
        low_pitch: int = 36,
        high_pitch: int = 84,
        tempo: float = 120.0,
        programs: Sequence[int] | None = None,
    ) -> None:
        tracks = check_tracks(tracks)
        for i, t in enumerate(tracks):
            melody._parse_instrument(t, key=f"representation.tracks[{i}]")
        programs = check_programs(programs, len(tracks))
        self.tracks = tracks
        self.programs = [int(p) for p in programs]
        # One codec per track: they check steps_per_beat, the pitch range and tempo themselves.
        self.track_codecs = [
            MelodyCodec(steps_per_beat, low_pitch, high_pitch, instrument=t, tempo=tempo, program=p)
            for t, p in zip(self.tracks, self.programs)
        ]
        first = self.track_codecs[0]
        self.steps_per_beat, self.tempo = first.steps_per_beat, first.tempo
        self.low_pitch, self.high_pitch = first.low_pitch, first.high_pitch

    # --- sizes -----------------------------------------------------------------------------
    @property
    def n_tracks(self) -> int:
        return len(self.tracks)

    @property
    def row_shape(self) -> tuple[int, ...]:
        return (self.n_tracks,)

    @property
    def token_events(self) -> tuple[int, ...]:
        return self.track_codecs[0].token_events

    @property
    def vocab_size(self) -> int:
        """Ids per track (every track shares MelodyCodec's vocabulary)."""
        return self.track_codecs[0].vocab_size

    @property
    def steps_per_bar(self) -> int:
        return self.steps_for_bars(1)

    # --- both directions -------------------------------------------------------------------
    def encode(self, midi: Any) -> torch.Tensor:
        """PrettyMIDI -> LongTensor [T, K]; T = the last note-off of any track, shorter tracks
        end in REST."""
        columns = []
        for codec in self.track_codecs:
            try:
                columns.append(codec.encode(midi).numpy())
            except BadMidiError as e:
                # A missing or silent voice (a trio without its bass) is rest, not a bad file.
                if e.reason != "no_notes":
                    raise
                columns.append(np.zeros(0, dtype=np.int64))
        T = max(len(c) for c in columns)
        if T == 0:
            raise BadMidiError(
                "<multitrack_melody>",
                "no_notes",
                f"no note in any of the tracks {self.tracks} within "
                f"{self.low_pitch}..{self.high_pitch} (even after octave folding)",
            )
        out = np.full((T, self.n_tracks), REST, dtype=np.int64)
        for k, column in enumerate(columns):
            out[: len(column), k] = column
        return torch.from_numpy(out)

    def notes(self, x: torch.Tensor | np.ndarray) -> list[np.ndarray]:
        """Tokens [T, K] -> K int64 arrays [N_k, 3] (on_step, off_step, pitch), as
        MelodyCodec.notes reads each column (PAD ends a track)."""
        arr = self._check(x)
        return [codec.notes(arr[:, k]) for k, codec in enumerate(self.track_codecs)]

    def decode(self, x: torch.Tensor | np.ndarray) -> Any:
        """Tokens [T, K] -> PrettyMIDI at `tempo` with K instruments in track order, empty
        ones kept so that `index:k` finds track k again. A `name:TEXT` track is named TEXT
        (so re-encoding finds it); any other is named after its selection."""
        arr = self._check(x)
        names = [t.partition(":")[2] if t.startswith("name:") else t for t in self.tracks]
        parts = [c.track(arr[:, k], names[k]) for k, c in enumerate(self.track_codecs)]
        return build_midi(parts, tempo=self.tempo)

    def _check(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
        if arr.ndim != 2 or arr.shape[1] != self.n_tracks:
            raise ValueError(f"{self.name} expects tokens [T, {self.n_tracks}], got {arr.shape}")
        return arr

    # --- lengths, windows, augmentation, persistence ---------------------------------------
    def steps_for_bars(self, bars: float) -> int:
        return round(bars * 4 * self.steps_per_beat)

    def window_starts(
        self, tokens: np.ndarray, bars: int, hop_bars: int = 1, max_rest_fraction: float = 0.5
    ) -> list[int]:
        """Bar-aligned starts of `bars`-bar windows of tokens [T, K], every `hop_bars`; a
        window is left out when more than `max_rest_fraction` of its steps are silent (REST in
        every track), so one resting voice never drops a window the others fill."""
        arr = self._check(tokens)
        silent = (arr == REST).all(axis=1)  # [T]
        # The melody filter counts REST ids; a [T] stand-in with REST exactly where all rest.
        proxy = np.where(silent, REST, HOLD)
        return melody.window_starts(
            proxy, bars, hop_bars, max_rest_fraction, steps_per_bar=self.steps_per_bar
        )

    def cut_window(self, tokens: np.ndarray, start: int, bars: int) -> np.ndarray:
        """tokens[start : start + L] as [L, K], each track's leading HOLD replaced by the note
        it holds (or REST), so the window decodes on its own."""
        arr = self._check(tokens)
        length = bars * self.steps_per_bar
        return np.stack(
            [melody.cut_window(arr[:, k], start, length) for k in range(self.n_tracks)], axis=1
        )

    def windows(
        self, tokens: np.ndarray, bars: int, hop_bars: int = 1, max_rest_fraction: float = 0.5
    ) -> list[np.ndarray]:
        """Every window [bars * steps_per_bar, K] that `window_starts` keeps."""
        starts = self.window_starts(tokens, bars, hop_bars, max_rest_fraction)
        return [self.cut_window(tokens, s, bars) for s in starts]

    def transpose(self, x: np.ndarray, semitones: int) -> np.ndarray | None:
        """Shift every NOTE_ON of tokens [T, K] by `semitones`; None if any track's note would
        leave [low_pitch, high_pitch]. The vocabulary is shared, so one call covers all."""
        return self.track_codecs[0].transpose(x, semitones)

    def params(self) -> dict[str, Any]:
        return {
            "tracks": list(self.tracks),
            "steps_per_beat": self.steps_per_beat,
            "low_pitch": self.low_pitch,
            "high_pitch": self.high_pitch,
            "tempo": self.tempo,
            "programs": list(self.programs),
        }
