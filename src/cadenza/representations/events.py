"""Performance-RNN style event tokens (Oore et al. 2018): expressive timing, no beat grid.

Vocabulary, in id order:
    0 PAD, 1 BOS, 2 EOS,
    NOTE_ON  for each pitch in [low_pitch, high_pitch],
    NOTE_OFF for each pitch,
    TIME_SHIFT of 1..max_shift_steps steps (a step is 1/steps_per_second s),
    VELOCITY bin 0..velocity_bins-1 (emitted only when the bin changes).

A round trip is exact against the quantized notes (`quantize`): times on the 10 ms grid,
velocities at bin centres, and a note cut where the same pitch starts again (one pitch can
only sound once, so overlapping repeats could not be told apart on decode).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cadenza.errors import BadMidiError, ConfigError
from cadenza.io.midi import TrackNotes, build_midi, tracks_of
from cadenza.representations.base import Codec, check_pitch_range

PAD, BOS, EOS = 0, 1, 2
# Measured over 25 random files each with the defaults: Nottingham ~14 tokens/s, POP909 ~30,
# piano-midi.de ~39. 30 tokens/s is the planning figure; a 4/4 bar is taken at 120 bpm (2 s).
TOKENS_PER_SECOND = 30.0
SECONDS_PER_BAR = 2.0


class EventCodec(Codec):
    """PrettyMIDI <-> LongTensor [L] of event ids, BOS first and EOS last."""

    name = "events"
    kind = "tokens"
    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def __init__(
        self,
        low_pitch: int = 21,
        high_pitch: int = 108,
        steps_per_second: int = 100,
        max_shift_steps: int = 100,
        velocity_bins: int = 32,
        include_drums: bool = False,
        max_events: int | None = None,
        max_note_seconds: float | None = None,
    ) -> None:
        check_pitch_range(low_pitch, high_pitch)
        if not 1 <= velocity_bins <= 127:
            raise ConfigError(f"representation.velocity_bins must be 1..127, got {velocity_bins}")
        if steps_per_second < 1 or max_shift_steps < 1:
            raise ConfigError("representation.steps_per_second and max_shift_steps must be >= 1")
        if max_events is not None and max_events < 3:
            raise ConfigError(f"representation.max_events must be >= 3, got {max_events}")
        self.low_pitch = int(low_pitch)
        self.high_pitch = int(high_pitch)
        self.steps_per_second = int(steps_per_second)
        self.max_shift_steps = int(max_shift_steps)
        self.velocity_bins = int(velocity_bins)
        self.include_drums = bool(include_drums)
        self.max_events = None if max_events is None else int(max_events)
        if max_note_seconds is not None and not max_note_seconds > 0:
            raise ConfigError(
                f"representation.max_note_seconds must be > 0 or null, got {max_note_seconds}"
            )
        # Decoding only: a generated NOTE_ON whose NOTE_OFF never comes would otherwise drone to
        # the end of the piece (Magenta's Performance RNN caps note length the same way).
        self.max_note_seconds = None if max_note_seconds is None else float(max_note_seconds)
        n = self.high_pitch - self.low_pitch + 1
        self.n_pitches = n
        self.on_offset = 3
        self.off_offset = 3 + n
        self.shift_offset = 3 + 2 * n
        self.velocity_offset = self.shift_offset + self.max_shift_steps

    @property
    def vocab_size(self) -> int:
        return self.velocity_offset + self.velocity_bins

    # --- velocity bins ---------------------------------------------------------------------
    def velocity_bin(self, velocity: np.ndarray) -> np.ndarray:
        v = np.clip(np.asarray(velocity, dtype=np.int64), 0, 127)
        return np.minimum(v * self.velocity_bins // 128, self.velocity_bins - 1)

    def bin_velocity(self, b: np.ndarray) -> np.ndarray:
        """Bin -> its centre velocity (which falls back into the same bin)."""
        centre = np.floor((np.asarray(b) + 0.5) * 128 / self.velocity_bins + 0.5)
        return np.clip(centre, 1, 127).astype(np.int64)

    # --- encode ----------------------------------------------------------------------------
    def quantize(self, midi: Any) -> np.ndarray:
        """The notes a round trip preserves: int64 [N, 4] (on_step, off_step, pitch, vel_bin).

        Sorted by (on, pitch). A note lasts at least one step and is cut where the same pitch
        starts again; a same-pitch note that would then last zero steps is dropped (so of
        exact duplicates, the loudest is kept).
        """
        tracks = tracks_of(midi, include_drums=self.include_drums)
        notes = np.concatenate([t.notes for t in tracks]) if tracks else np.zeros((0, 4))
        notes = notes[(notes[:, 2] >= self.low_pitch) & (notes[:, 2] <= self.high_pitch)]
        on = np.floor(notes[:, 0] * self.steps_per_second + 0.5).astype(np.int64)
        off = np.floor(notes[:, 1] * self.steps_per_second + 0.5).astype(np.int64)
        off = np.maximum(off, on + 1)
        q = np.stack([on, off, notes[:, 2].astype(np.int64), self.velocity_bin(notes[:, 3])], 1)
        # By pitch, on, off, velocity: of exact duplicates the loudest (last) survives the cut.
        q = q[np.lexsort((q[:, 3], q[:, 1], q[:, 0], q[:, 2]))]
        same_pitch_next = np.zeros(len(q), dtype=bool)
        same_pitch_next[:-1] = q[1:, 2] == q[:-1, 2]
        cut = same_pitch_next.copy()
        cut[:-1] &= q[1:, 0] < q[:-1, 1]
        q[:-1, 1] = np.where(cut[:-1], q[1:, 0], q[:-1, 1])
        q = q[q[:, 1] > q[:, 0]]
        return q[np.lexsort((q[:, 2], q[:, 0]))]

    def encode(self, midi: Any) -> torch.Tensor:
        """PrettyMIDI -> LongTensor [L]: BOS, events, EOS (cut to max_events, EOS kept)."""
        q = self.quantize(midi)
        if len(q) == 0:
            raise BadMidiError(
                "<events>", "no_notes", f"no note in {self.low_pitch}..{self.high_pitch}"
            )
        # (time, kind, pitch, vel): kind 0 = off before kind 1 = on at the same step, so a
        # re-struck pitch closes before it reopens.
        offs = np.stack([q[:, 1], np.zeros(len(q), np.int64), q[:, 2], q[:, 3]], 1)
        ons = np.stack([q[:, 0], np.ones(len(q), np.int64), q[:, 2], q[:, 3]], 1)
        ev = np.concatenate([offs, ons])
        ev = ev[np.lexsort((ev[:, 2], ev[:, 1], ev[:, 0]))]
        tokens = [BOS]
        now, vel = 0, -1
        for t, kind, pitch, vb in ev.tolist():
            tokens += self._shift_tokens(t - now)
            now = t
            if kind == 1:
                if vb != vel:
                    tokens.append(self.velocity_offset + vb)
                    vel = vb
                tokens.append(self.on_offset + pitch - self.low_pitch)
            else:
                tokens.append(self.off_offset + pitch - self.low_pitch)
        tokens.append(EOS)
        if self.max_events is not None and len(tokens) > self.max_events:
            tokens = tokens[: self.max_events - 1] + [EOS]
        return torch.tensor(tokens, dtype=torch.long)

    def _shift_tokens(self, steps: int) -> list[int]:
        full, rest = divmod(steps, self.max_shift_steps)
        out = [self.shift_offset + self.max_shift_steps - 1] * full
        return out + [self.shift_offset + rest - 1] if rest else out

    # --- decode ----------------------------------------------------------------------------
    def decode_notes(self, tokens: torch.Tensor | np.ndarray | list[int]) -> np.ndarray:
        """Ids [L] -> int64 [N, 4] (on_step, off_step, pitch, velocity), sorted by (on, pitch).

        Tolerates model output: stops at EOS, skips PAD/BOS/unknown ids, ignores a note-off
        with no open note, closes dangling notes at the end (lasting at least one step), and
        cuts notes to `max_note_seconds` when that is set.
        """
        ids = np.asarray(tokens.detach().cpu() if isinstance(tokens, torch.Tensor) else tokens)
        open_notes: dict[int, list[tuple[int, int]]] = {}  # pitch -> FIFO of (on, velocity)
        notes: list[tuple[int, int, int, int]] = []
        now, vel = 0, 64
        for tok in ids.reshape(-1).tolist():
            if tok == EOS:
                break
            if self.on_offset <= tok < self.off_offset:
                pitch = tok - self.on_offset + self.low_pitch
                open_notes.setdefault(pitch, []).append((now, vel))
            elif self.off_offset <= tok < self.shift_offset:
                pitch = tok - self.off_offset + self.low_pitch
                if open_notes.get(pitch):
                    on, v = open_notes[pitch].pop(0)
                    if now > on:
                        notes.append((on, now, pitch, v))
            elif self.shift_offset <= tok < self.velocity_offset:
                now += tok - self.shift_offset + 1
            elif self.velocity_offset <= tok < self.vocab_size:
                vel = int(self.bin_velocity(tok - self.velocity_offset))
        for pitch, pending in open_notes.items():
            notes += [(on, max(now, on + 1), pitch, v) for on, v in pending]
        arr = np.array(notes, dtype=np.int64).reshape(-1, 4)
        if self.max_note_seconds is not None:
            longest = max(1, round(self.max_note_seconds * self.steps_per_second))
            arr[:, 1] = np.minimum(arr[:, 1], arr[:, 0] + longest)
        return arr[np.lexsort((arr[:, 2], arr[:, 0]))]

    def decode(self, x: torch.Tensor) -> Any:
        """Ids [L] -> PrettyMIDI (one piano track, 120 bpm so beats read sensibly)."""
        q = self.decode_notes(x).astype(np.float64)
        q[:, :2] /= self.steps_per_second
        return build_midi([TrackNotes(0, False, "events", q)], tempo=120.0)

    def seconds_of(self, tokens: torch.Tensor | np.ndarray | list[int]) -> float:
        """Total time the time-shift tokens span, up to the first EOS."""
        ids = np.asarray(tokens.detach().cpu() if isinstance(tokens, torch.Tensor) else tokens)
        ids = ids.reshape(-1)
        eos = np.nonzero(ids == EOS)[0]
        ids = ids[: eos[0]] if len(eos) else ids
        shifts = ids[(ids >= self.shift_offset) & (ids < self.velocity_offset)]
        return float((shifts - self.shift_offset + 1).sum()) / self.steps_per_second

    # --- lengths, augmentation, persistence ------------------------------------------------
    def steps_for_bars(self, bars: float) -> int:
        """An estimate: TOKENS_PER_SECOND tokens/s times 2 s per 4/4 bar at 120 bpm."""
        return max(1, round(bars * SECONDS_PER_BAR * TOKENS_PER_SECOND))

    def transpose(self, x: np.ndarray, semitones: int) -> np.ndarray | None:
        """Ids [L] -> ids [L] with NOTE_ON/NOTE_OFF shifted; None if a pitch leaves the range."""
        ids = np.array(x, copy=True)
        k = int(semitones)
        for lo in (self.on_offset, self.off_offset):
            mask = (ids >= lo) & (ids < lo + self.n_pitches)
            idx = ids[mask] - lo + k
            if len(idx) and (idx.min() < 0 or idx.max() >= self.n_pitches):
                return None
        ids[(ids >= self.on_offset) & (ids < self.shift_offset)] += k  # NOTE_ON and NOTE_OFF
        return ids

    def params(self) -> dict[str, Any]:
        return {
            "low_pitch": self.low_pitch,
            "high_pitch": self.high_pitch,
            "steps_per_second": self.steps_per_second,
            "max_shift_steps": self.max_shift_steps,
            "velocity_bins": self.velocity_bins,
            "include_drums": self.include_drums,
            "max_events": self.max_events,
            "max_note_seconds": self.max_note_seconds,
        }
