"""Monophonic melody tokens on a 16th-note grid: MusicVAE's melody representation.

Roberts et al. (2018) encode a melody as one event per 16th note: a note-on for a pitch, a
"hold" that continues the sounding note, or a rest. Here id 0 is PAD (the Batch pads with 0), so
the ids are 0 PAD, 1 HOLD, 2 REST, then NOTE_ON for each pitch in [low_pitch, high_pitch]
(48..84 is MusicVAE's 2-bar melody range). A note re-struck at the same pitch gets a new NOTE_ON,
so unlike a piano roll, repeated notes survive the round trip.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cadenza.errors import BadMidiError, ConfigError
from cadenza.io.midi import TrackNotes, build_midi, time_to_beats, tracks_of
from cadenza.representations.base import Codec, check_pitch_range, check_steps_per_beat

PAD, HOLD, REST = 0, 1, 2
FIRST_NOTE = 3


class MelodyCodec(Codec):
    """PrettyMIDI <-> LongTensor [T] of ids: one token per grid step (16th notes by default).

    instrument: "top" (skyline of every non-drum note: the highest pitch sounding at each step),
    "program:N" (the first non-drum instrument with General MIDI program N), "index:N" (the
    N-th non-drum instrument, from 0) or "name:TEXT" (the first non-drum instrument whose track
    name is TEXT, ignoring case and surrounding spaces: POP909's MELODY, BRIDGE, PIANO).
    """

    name = "melody"
    kind = "tokens"
    rest_value = REST

    def __init__(
        self,
        steps_per_beat: int = 4,
        low_pitch: int = 48,
        high_pitch: int = 84,
        instrument: str = "top",
        tempo: float = 120.0,
        program: int = 0,
    ) -> None:
        check_steps_per_beat(steps_per_beat)
        check_pitch_range(low_pitch, high_pitch)
        if tempo <= 0:
            raise ConfigError(f"representation.tempo must be > 0, got {tempo}")
        self.steps_per_beat = int(steps_per_beat)
        self.low_pitch = int(low_pitch)
        self.high_pitch = int(high_pitch)
        self.instrument = str(instrument)
        self._select = _parse_instrument(self.instrument)
        self.tempo = float(tempo)
        self.program = int(program)

    @property
    def n_pitches(self) -> int:
        return self.high_pitch - self.low_pitch + 1

    @property
    def vocab_size(self) -> int:
        return FIRST_NOTE + self.n_pitches

    @property
    def token_events(self) -> tuple[int, ...]:
        """PAD, HOLD, REST are their own classes; every NOTE_ON is class FIRST_NOTE."""
        return (PAD, HOLD, REST) + (FIRST_NOTE,) * self.n_pitches

    def note_on(self, pitch: int) -> int:
        """Token id of NOTE_ON(pitch)."""
        return FIRST_NOTE + int(pitch) - self.low_pitch

    @property
    def steps_per_bar(self) -> int:
        return self.steps_for_bars(1)

    # --- encode ----------------------------------------------------------------------------
    def fold(self, pitches: np.ndarray) -> np.ndarray:
        """Move out-of-range pitches by whole octaves into range; -1 where no octave fits."""
        p = np.asarray(pitches, dtype=np.int64).copy()
        low = p < self.low_pitch
        p[low] += 12 * -((p[low] - self.low_pitch) // 12)  # ceil((low_pitch - p) / 12) octaves up
        high = p > self.high_pitch
        p[high] -= 12 * -((self.high_pitch - p[high]) // 12)
        p[(p < self.low_pitch) | (p > self.high_pitch)] = -1
        return p

    def quantize(self, midi: Any) -> np.ndarray:
        """int64 [N, 3] (on_step, off_step, pitch) of the chosen instrument's notes, folded into
        range (notes no octave can hold are dropped). A note covers [on, max(off, on + 1))."""
        notes = select_notes(midi, self._select)
        pitch = self.fold(notes[:, 2])
        notes, pitch = notes[pitch >= 0], pitch[pitch >= 0]
        # floor(x + 0.5), not np.round: half-steps always go up, as in PianoRollCodec.
        on = np.floor(time_to_beats(midi, notes[:, 0]) * self.steps_per_beat + 0.5)
        off = np.floor(time_to_beats(midi, notes[:, 1]) * self.steps_per_beat + 0.5)
        off = np.maximum(off, on + 1)
        return np.stack([on, off, pitch], axis=1).astype(np.int64).reshape(-1, 3)

    def encode(self, midi: Any) -> torch.Tensor:
        """PrettyMIDI -> LongTensor [T]; T = last note-off step of the melody."""
        notes = self.quantize(midi)
        if len(notes) == 0:
            raise BadMidiError(
                "<melody>",
                "no_notes",
                f"no {self.instrument!r} melody note within {self.low_pitch}..{self.high_pitch}"
                " (even after octave folding)",
            )
        T = int(notes[:, 1].max())
        top = np.full(T, -1, dtype=np.int64)  # [T] highest sounding pitch, -1 = silence
        for on, off, pitch in notes[np.argsort(notes[:, 2], kind="stable")]:
            top[on:off] = pitch  # ascending pitch order: the highest note is written last
        onset = np.zeros(T, dtype=bool)  # a note of the top pitch starts here: a (re-)strike
        hit = top[notes[:, 0]] == notes[:, 2]
        onset[notes[hit, 0]] = True
        prev = np.concatenate([[-1], top[:-1]])
        tokens = np.where(
            top < 0,
            REST,
            # A new top pitch (say, a lower voice showing once a higher note ends) is a new note.
            np.where(onset | (top != prev), FIRST_NOTE + top - self.low_pitch, HOLD),
        )
        return torch.from_numpy(tokens.astype(np.int64))

    # --- decode ----------------------------------------------------------------------------
    def notes(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Tokens [L] -> int64 [N, 3] (on_step, off_step, pitch).

        HOLD with no note sounding (at the start, after REST) counts as REST; PAD ends the piece.
        """
        ids = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x).reshape(-1)
        out: list[tuple[int, int, int]] = []
        start, pitch = -1, -1
        t = 0
        for t, tok in enumerate(ids.tolist()):
            if tok == PAD:
                break
            if tok == HOLD and start >= 0:
                continue
            if start >= 0:
                out.append((start, t, pitch))
                start = -1
            if tok >= FIRST_NOTE:
                start, pitch = t, self.low_pitch + min(tok, self.vocab_size - 1) - FIRST_NOTE
        else:
            t = len(ids)
        if start >= 0:
            out.append((start, t, pitch))
        return np.array(out, dtype=np.int64).reshape(-1, 3)

    def decode(self, x: torch.Tensor) -> Any:
        """Tokens [L] -> PrettyMIDI at `tempo` with one instrument (`program`)."""
        return build_midi([self.track(x)], tempo=self.tempo)

    def track(self, x: torch.Tensor | np.ndarray, name: str = "melody") -> TrackNotes:
        """Tokens [L] -> one `program` track in seconds at `tempo` (velocity 80)."""
        runs = self.notes(x)
        sec_per_step = 60.0 / (self.tempo * self.steps_per_beat)
        notes = np.zeros((len(runs), 4))
        notes[:, 0:2] = runs[:, 0:2] * sec_per_step
        notes[:, 2] = runs[:, 2]
        notes[:, 3] = 80
        return TrackNotes(self.program, False, name, notes)

    # --- lengths, windows, augmentation, persistence ---------------------------------------
    def steps_for_bars(self, bars: float) -> int:
        return round(bars * 4 * self.steps_per_beat)

    def windows(
        self, tokens: np.ndarray, bars: int, hop_bars: int = 1, max_rest_fraction: float = 0.5
    ) -> list[np.ndarray]:
        """`windows` on this codec's bar length."""
        return windows(tokens, bars, hop_bars, max_rest_fraction, steps_per_bar=self.steps_per_bar)

    def window_starts(
        self, tokens: np.ndarray, bars: int, hop_bars: int = 1, max_rest_fraction: float = 0.5
    ) -> list[int]:
        """Start steps of the windows `windows` would return (datasets index these lazily)."""
        return window_starts(
            tokens, bars, hop_bars, max_rest_fraction, steps_per_bar=self.steps_per_bar
        )

    def cut_window(self, tokens: np.ndarray, start: int, bars: int) -> np.ndarray:
        """The `bars`-bar window at `start`, standing on its own (see `windows`)."""
        return cut_window(tokens, start, bars * self.steps_per_bar)

    def transpose(self, x: np.ndarray, semitones: int) -> np.ndarray | None:
        """Shift every NOTE_ON by `semitones`; None if one would leave [low_pitch, high_pitch]."""
        arr = np.asarray(x)
        out = arr.copy()
        is_note = arr >= FIRST_NOTE
        shifted = arr[is_note].astype(np.int64) + int(semitones)
        if shifted.size and (shifted.min() < FIRST_NOTE or shifted.max() >= self.vocab_size):
            return None
        out[is_note] = shifted.astype(arr.dtype)
        return out

    def params(self) -> dict[str, Any]:
        return {
            "steps_per_beat": self.steps_per_beat,
            "low_pitch": self.low_pitch,
            "high_pitch": self.high_pitch,
            "instrument": self.instrument,
            "tempo": self.tempo,
            "program": self.program,
        }


def windows(
    tokens: np.ndarray,
    bars: int,
    hop_bars: int = 1,
    max_rest_fraction: float = 0.5,
    *,
    steps_per_bar: int = 16,
) -> list[np.ndarray]:
    """Every `bars`-bar window [bars * steps_per_bar] starting on a bar line, every `hop_bars`.

    A window that starts inside a note gets that note's NOTE_ON in place of its leading HOLD (as
    MusicVAE's training windows do), so every window decodes on its own; windows with more than
    `max_rest_fraction` of their steps REST are left out. Partial windows at the end are dropped.
    """
    starts = window_starts(tokens, bars, hop_bars, max_rest_fraction, steps_per_bar=steps_per_bar)
    return [cut_window(tokens, s, bars * steps_per_bar) for s in starts]


def window_starts(
    tokens: np.ndarray,
    bars: int,
    hop_bars: int = 1,
    max_rest_fraction: float = 0.5,
    *,
    steps_per_bar: int = 16,
) -> list[int]:
    if bars < 1 or hop_bars < 1 or steps_per_bar < 1:
        raise ConfigError(
            f"windows need bars, hop_bars, steps_per_bar >= 1, got {bars}, {hop_bars}, "
            f"{steps_per_bar}"
        )
    tokens = np.asarray(tokens)
    length, hop = bars * steps_per_bar, hop_bars * steps_per_bar
    if len(tokens) < length:
        return []
    # Rests per window from one cumulative sum: O(T) for every start at once.
    rests = np.concatenate([[0], np.cumsum(tokens == REST)])
    starts = np.arange(0, len(tokens) - length + 1, hop)
    keep = rests[starts + length] - rests[starts] <= max_rest_fraction * length
    return starts[keep].tolist()


def cut_window(tokens: np.ndarray, start: int, length: int) -> np.ndarray:
    """tokens[start : start + length], with a leading HOLD replaced by the note it holds."""
    tokens = np.asarray(tokens)
    win = tokens[start : start + length].copy()
    if len(win) and win[0] == HOLD:
        k = start
        while k > 0 and tokens[k] == HOLD:
            k -= 1
        win[0] = tokens[k] if tokens[k] >= FIRST_NOTE else REST
    return win


def select_notes(midi: Any, selection: tuple[str, int | str], drums: bool = False) -> np.ndarray:
    """float64 [N, 4] notes of the instrument(s) a parsed selection picks (see
    `_parse_instrument`); empty when the file has no such instrument.

    Only drum instruments are candidates when `drums`, only pitched ones otherwise, so
    "index:0" of a drum track is the first drum kit (MultiTrackPianoRollCodec's drum tracks).
    "top" returns every candidate's notes: the caller takes the skyline."""
    candidates = [t for t in tracks_of(midi) if t.is_drum == drums]
    mode, n = selection
    if mode == "top":
        chosen = [t.notes for t in candidates]
    elif mode == "program":
        chosen = [t.notes for t in candidates if t.program == n][:1]
    elif mode == "name":
        chosen = [t.notes for t in candidates if t.name.strip().casefold() == n][:1]
    else:
        k = int(n)
        chosen = [candidates[k].notes] if k < len(candidates) else []
    return np.concatenate(chosen) if chosen else np.zeros((0, 4))


def _parse_instrument(
    instrument: str, key: str = "representation.instrument"
) -> tuple[str, int | str]:
    """("top", 0), ("program", N), ("index", N) or ("name", casefolded TEXT); `key` names the
    config entry in the error (MultiTrackMelodyCodec checks each of its tracks with it)."""
    if instrument == "top":
        return "top", 0
    head, _, n = instrument.partition(":")
    if head in ("program", "index") and n.isdigit() and (head == "index" or int(n) <= 127):
        return head, int(n)
    if head == "name" and n.strip():
        return head, n.strip().casefold()
    raise ConfigError(
        f"{key} must be 'top', 'program:N' (0..127), 'index:N' or 'name:TEXT' (a track name), "
        f"got {instrument!r}"
    )
