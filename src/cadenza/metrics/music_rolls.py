"""MIDI files -> `Roll`s for the music statistics, reading MIDI only through `cadenza.io.midi`.

Quantised as `PianoRollCodec` does (on = floor(beats * spb + 0.5), off = max(rounded off,
on + 1)), but keeping every instrument, drums included and flagged, one track each in file order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.errors import BadMidiError, CadenzaError, ConfigError
from cadenza.io.midi import read_score, time_to_beats, tracks_of
from cadenza.metrics.music import Roll
from cadenza.representations.pianoroll import notes_to_roll

log = logging.getLogger(__name__)

MIDI_SUFFIXES = (".mid", ".midi")

PathLike = str | os.PathLike[str]


def roll_from_midi(
    pm: Any, steps_per_beat: int = 12, low_pitch: int = 0, high_pitch: int = 127
) -> Roll | None:
    """A Score (`read_score`) or a PrettyMIDI -> Roll [T, instruments, high - low + 1], T = the
    last note-off step.

    Notes outside [low_pitch, high_pitch] are dropped; None when no note is left. Track keys are
    left to the default `track<i>`: instrument names differ from file to file ("Piano", "Acoustic
    Grand"), the index is what lines tracks of a set up.
    """
    tracks = tracks_of(pm, include_drums=True)
    blocks = []  # per track, int64 [N, 3]: on step, off step, pitch
    for track in tracks:
        notes = track.notes[(track.notes[:, 2] >= low_pitch) & (track.notes[:, 2] <= high_pitch)]
        # floor(x + 0.5), not np.round: half-steps always go up, as in PianoRollCodec.
        on = np.floor(time_to_beats(pm, notes[:, 0]) * steps_per_beat + 0.5).astype(np.int64)
        off = np.floor(time_to_beats(pm, notes[:, 1]) * steps_per_beat + 0.5).astype(np.int64)
        off = np.maximum(off, on + 1)
        on = np.maximum(on, 0)  # a note before the first beat (pickup rounding) starts at step 0
        blocks.append(np.stack([on, off, notes[:, 2].astype(np.int64)], 1))
    if not sum(len(b) for b in blocks):
        return None
    steps = max(int(b[:, 1].max()) for b in blocks if len(b))
    # Overlapping repeats of one pitch merge into one held note, as in every binary roll.
    roll = notes_to_roll(blocks, steps, high_pitch - low_pitch + 1, low_pitch)
    drums = [t.is_drum for t in tracks]
    return Roll(roll, low_pitch=low_pitch, steps_per_beat=steps_per_beat, drums=drums)


def midi_paths(folder_or_files: PathLike | Sequence[PathLike]) -> list[Path]:
    """A folder -> its .mid/.midi files (any letter case, recursively, sorted); a file -> itself;
    a list -> as given. CadenzaError when a single path does not exist."""
    if isinstance(folder_or_files, str | os.PathLike):
        root = Path(folder_or_files)
        if root.is_dir():
            return sorted(
                p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()
            )
        if root.is_file():
            return [root]
        raise CadenzaError(f"{root}: no such MIDI file or folder; check the path")
    return [Path(p) for p in folder_or_files]


def load_rolls(
    folder_or_files: PathLike | Sequence[PathLike],
    steps_per_beat: int = 12,
    low_pitch: int = 0,
    high_pitch: int = 127,
    warn: bool = True,
) -> tuple[list[Roll], list[tuple[str, str]]]:
    """(one Roll per readable file, [(path, reason)] of the files skipped).

    A file that cannot be read (empty, not MIDI, truncated, corrupt, no notes, missing) or has no
    note in the pitch range is skipped with a reason (BadMidiError's stable key, then its detail)
    and one warning lists them all; the rest of the folder is still read.
    """
    if int(steps_per_beat) != steps_per_beat or steps_per_beat < 1:
        raise ConfigError(f"steps_per_beat must be a positive integer, got {steps_per_beat!r}")
    if not 0 <= low_pitch <= high_pitch <= 127:
        raise ConfigError(
            f"need 0 <= low_pitch <= high_pitch <= 127, got {low_pitch}, {high_pitch}"
        )
    rolls: list[Roll] = []
    skipped: list[tuple[str, str]] = []
    for path in midi_paths(folder_or_files):
        try:
            # symusic, as bulk ingestion reads: the same rolls as pretty_midi's reading on
            # every real file (tests/metrics), at a fraction of the time.
            roll = roll_from_midi(read_score(path), int(steps_per_beat), low_pitch, high_pitch)
        except BadMidiError as e:
            skipped.append((str(path), f"{e.reason}: {e.detail}" if e.detail else e.reason))
            continue
        except CadenzaError as e:  # a listed file that does not exist
            skipped.append((str(path), f"missing: {e}"))
            continue
        if roll is None:
            skipped.append((str(path), f"no notes in pitches {low_pitch}..{high_pitch}"))
        else:
            rolls.append(roll)
    if skipped and warn:  # warn=False: the caller reports the list itself
        listing = "; ".join(f"{p} ({reason})" for p, reason in skipped)
        log.warning("skipped %d unreadable MIDI file(s): %s", len(skipped), listing)
    return rolls, skipped
