"""MIDI in and out: the only module in Cadenza that imports pretty_midi.

Everything above this layer sees notes as plain arrays (`TrackNotes.notes` [N, 4] =
start_s, end_s, pitch, velocity) or as a `PrettyMIDI` object handed back unchanged. A bad file
never escapes as a mido/pretty_midi exception: it becomes `BadMidiError` with a stable reason.
"""

from __future__ import annotations

import copy
import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi

from cadenza.errors import BadMidiError, CadenzaError

MAX_SECONDS = 3600.0  # longer than any real piece in our corpora: a sign of a garbage tempo map

__all__ = [
    "MAX_SECONDS",
    "TrackNotes",
    "align_to_bar",
    "build_midi",
    "clip_midi",
    "load_midi",
    "load_midi_bytes",
    "midi_to_bytes",
    "notes_from_pitch_steps",
    "save_midi",
    "time_to_beats",
    "tracks_of",
]


@dataclass
class TrackNotes:
    """One instrument's notes. `notes`: float64 [N, 4] (start_s, end_s, pitch, velocity)."""

    program: int
    is_drum: bool
    name: str
    notes: np.ndarray


# --- loading ---------------------------------------------------------------------------------
def load_midi(path: str | os.PathLike[str]) -> pretty_midi.PrettyMIDI:
    """Parse a MIDI file, or raise BadMidiError naming the file and why it is unusable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise CadenzaError(f"{path}: no such MIDI file; check the path") from e
    except OSError as e:
        raise BadMidiError(str(path), "corrupt", f"cannot read: {e}") from e
    return load_midi_bytes(data, name=str(path))


def load_midi_bytes(data: bytes, name: str = "<bytes>") -> pretty_midi.PrettyMIDI:
    """Parse MIDI bytes (uploads, music21 conversions) with the same guards as `load_midi`."""
    if len(data) == 0:
        raise BadMidiError(name, "empty_file")
    data = _strip_riff(data)
    if not data.startswith(b"MThd"):
        raise BadMidiError(name, "not_midi", "no MThd header")
    # Checking chunk lengths ourselves makes "truncated" deterministic: mido's own reaction to a
    # short file depends on where the cut falls (EOFError, KeyError, or silently fewer tracks).
    short = _truncation(data)
    if short:
        raise BadMidiError(name, "truncated", short)
    try:
        with warnings.catch_warnings():
            # pretty_midi warns about tempo events on non-zero tracks; common and harmless here.
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
            end = pm.get_end_time()
    except EOFError as e:
        raise BadMidiError(name, "truncated", f"data ends early ({type(e).__name__})") from e
    except Exception as e:  # mido/pretty_midi raise KeyError, IndexError, ValueError, OSError...
        raise BadMidiError(name, "corrupt", f"{type(e).__name__}: {e}"[:200]) from e
    if not any(inst.notes for inst in pm.instruments):
        raise BadMidiError(name, "no_notes")
    if not np.isfinite(end) or end > MAX_SECONDS:
        raise BadMidiError(name, "too_long", f"ends at {end:.0f} s > {MAX_SECONDS:.0f} s")
    return pm


def _strip_riff(data: bytes) -> bytes:
    # RIFF-wrapped MIDI (.rmi) carries a plain SMF inside; mido only reads the plain form.
    if data.startswith(b"RIFF"):
        at = data.find(b"MThd", 0, 64)
        if at >= 0:
            return data[at:]
    return data


def _truncation(data: bytes) -> str:
    """'' if every chunk the header promises is complete, else what is missing."""
    if len(data) < 14:
        return f"header is {len(data)} bytes, needs 14"
    (header_len,) = struct.unpack(">I", data[4:8])
    (n_tracks,) = struct.unpack(">H", data[10:12])
    pos, found = 8 + header_len, 0
    while found < n_tracks:
        if pos + 8 > len(data):
            return f"{found} of {n_tracks} tracks present"
        (length,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        if pos + 8 + length > len(data):
            return f"track chunk {found} needs {length} bytes, {len(data) - pos - 8} left"
        if data[pos : pos + 4] == b"MTrk":
            found += 1
        pos += 8 + length
    return ""


# --- reading notes ---------------------------------------------------------------------------
def tracks_of(pm: pretty_midi.PrettyMIDI, include_drums: bool = True) -> list[TrackNotes]:
    """Instruments in file order (empty ones kept, so indices stay stable), notes sorted."""
    out = []
    for inst in pm.instruments:
        if inst.is_drum and not include_drums:
            continue
        notes = np.array(
            [(n.start, n.end, n.pitch, n.velocity) for n in inst.notes], dtype=np.float64
        ).reshape(-1, 4)
        notes = notes[np.lexsort((notes[:, 2], notes[:, 0]))]
        out.append(TrackNotes(int(inst.program), bool(inst.is_drum), inst.name, notes))
    return out


def time_to_beats(pm: pretty_midi.PrettyMIDI, times: np.ndarray) -> np.ndarray:
    """Seconds [N] -> fractional quarter-note beats [N], following every tempo change.

    Counted from the tempo map rather than `pm.get_beats()`: in 6/8 (Nottingham's jigs)
    get_beats steps in dotted quarters, so an eighth note would fall on 1/3 of a beat and a
    4-steps-per-beat grid could not hold it. Past the last tempo change, the last tempo holds.
    """
    times = np.asarray(times, dtype=np.float64)
    change_s, qpm = pm.get_tempo_changes()
    if len(change_s) == 0:
        change_s, qpm = np.array([0.0]), np.array([120.0])
    beats_per_s = qpm / 60.0
    # Beats elapsed at each tempo change; before the first change the first tempo applies.
    beats_at = np.concatenate([[0.0], np.cumsum(np.diff(change_s) * beats_per_s[:-1])])
    seg = np.clip(np.searchsorted(change_s, times, side="right") - 1, 0, len(change_s) - 1)
    lead_in = change_s[0] * beats_per_s[0]  # pretty_midi's first change is at 0 s in practice
    return lead_in + beats_at[seg] + (times - change_s[seg]) * beats_per_s[seg]


def clip_midi(pm: pretty_midi.PrettyMIDI, seconds: float) -> pretty_midi.PrettyMIDI:
    """The first `seconds` of `pm` as a new PrettyMIDI (`pm` is left as it is): notes that
    start at or after `seconds` are dropped, notes still sounding then end there, and later
    control changes, bends and meta events go too, so a synthesizer has nothing after the cut
    to render. Tempo map and resolution are kept.
    """
    out = copy.copy(pm)  # shares the (read-only) tempo map; every list below is a new one
    out.instruments = []
    for inst in pm.instruments:
        new = pretty_midi.Instrument(program=inst.program, is_drum=inst.is_drum, name=inst.name)
        new.notes = [
            pretty_midi.Note(n.velocity, n.pitch, n.start, min(n.end, seconds))
            for n in inst.notes
            if n.start < seconds
        ]
        new.control_changes = [copy.copy(c) for c in inst.control_changes if c.time < seconds]
        new.pitch_bends = [copy.copy(b) for b in inst.pitch_bends if b.time < seconds]
        out.instruments.append(new)
    for key in ("key_signature_changes", "time_signature_changes", "lyrics", "text_events"):
        setattr(out, key, [copy.copy(e) for e in getattr(pm, key, []) if e.time < seconds])
    return out


def align_to_bar(
    pm: pretty_midi.PrettyMIDI, downbeat_s: float, beats_per_bar: int = 4, tempo: float = 120.0
) -> pretty_midi.PrettyMIDI:
    """`pm` re-timed so the downbeat at `downbeat_s` falls on a bar line of `beats_per_bar`
    quarter-note beats counted from 0, as a new PrettyMIDI at one constant `tempo`.

    A file whose first bar does not start at tick 0 (POP909 starts each song a fraction of a
    beat in) is otherwise cut into bars that straddle the real ones, and its notes sit between
    the steps of every grid. Notes keep their beat positions (through the tempo map), shifted
    by less than one bar; the downbeat's position is rounded to the file's ticks first, since
    annotations in seconds are rounded. Only notes survive: bends, controls and meta events go.
    """
    resolution = pm.resolution
    beat = float(time_to_beats(pm, np.array([downbeat_s]))[0])
    beat = round(beat * resolution) / resolution
    pad = (-beat) % beats_per_bar  # beats added in front: the downbeat lands on a bar line
    seconds_per_beat = 60.0 / tempo
    tracks = []
    for tr in tracks_of(pm):
        notes = tr.notes.copy()
        notes[:, :2] = (time_to_beats(pm, notes[:, :2].ravel()).reshape(-1, 2) + pad) * (
            seconds_per_beat
        )
        tracks.append(TrackNotes(tr.program, tr.is_drum, tr.name, notes))
    return build_midi(tracks, tempo=tempo, resolution=resolution)


# --- writing ---------------------------------------------------------------------------------
def build_midi(
    tracks: list[TrackNotes], tempo: float = 120.0, resolution: int = 480
) -> pretty_midi.PrettyMIDI:
    """Notes in seconds -> PrettyMIDI at one constant tempo (get_beats() matches `tempo`)."""
    # initial_tempo sets the tick scale, which is what write() and get_tempo_changes() read.
    pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=float(tempo))
    for tr in tracks:
        inst = pretty_midi.Instrument(program=int(tr.program), is_drum=tr.is_drum, name=tr.name)
        notes = np.asarray(tr.notes, dtype=np.float64).reshape(-1, 4)
        notes = notes[notes[:, 1] > notes[:, 0]]  # zero-length notes write as an off before the on
        # Clip once, vectorised: per-note np.clip calls dominated bulk preparation time.
        velocities = np.clip(np.round(notes[:, 3]), 1, 127).astype(int).tolist()
        pitches = np.clip(notes[:, 2], 0, 127).astype(int).tolist()
        inst.notes.extend(
            pretty_midi.Note(velocity=v, pitch=p, start=s, end=e)
            for (s, e), p, v in zip(notes[:, :2].tolist(), pitches, velocities)
        )
        pm.instruments.append(inst)
    return pm


def save_midi(pm: pretty_midi.PrettyMIDI, path: str | os.PathLike[str]) -> Path:
    """Write atomically (temp file in the same folder, then os.replace); creates parents."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(midi_to_bytes(pm))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def midi_to_bytes(pm: pretty_midi.PrettyMIDI) -> bytes:
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def notes_from_pitch_steps(
    steps: list[list[int]], seconds_per_step: float, velocity: int = 80, program: int = 0
) -> TrackNotes:
    """Pitch-set piano roll (one list of pitches per step) -> one track of held notes.

    A pitch present in consecutive steps is one held note, as in Boulanger-Lewandowski's rolls
    (which cannot tell a held note from a re-struck one).
    """
    open_at: dict[int, int] = {}
    notes: list[tuple[float, float, float, float]] = []

    def close(pitch: int, step: int) -> None:
        start = open_at.pop(pitch)
        notes.append((start * seconds_per_step, step * seconds_per_step, pitch, velocity))

    for t, step in enumerate(steps):
        now = {int(p) for p in step}
        for p in [p for p in open_at if p not in now]:
            close(p, t)
        for p in now - open_at.keys():
            open_at[p] = t
    for p in list(open_at):
        close(p, len(steps))
    arr = np.array(notes, dtype=np.float64).reshape(-1, 4)
    arr = arr[np.lexsort((arr[:, 2], arr[:, 0]))]
    return TrackNotes(program=program, is_drum=False, name="", notes=arr)
