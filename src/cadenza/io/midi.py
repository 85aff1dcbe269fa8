"""MIDI in and out: the only module in Cadenza that imports pretty_midi or symusic.

Two readers, one set of semantics:
- `read_score` (symusic's C++ parser, ~0.2 ms a file) is what bulk ingestion uses: sources hand
  codecs a `Score`, notes per instrument plus the tempo map, and nothing else.
- `load_midi` (pretty_midi, ~5-65 ms a file) returns a `PrettyMIDI`, for producers and the public
  API: sampling primers, rendering, the service's uploads. Files are written by symusic when
  they hold only notes, tempos and time signatures, else by pretty_midi (`midi_to_bytes`).
Codecs read either through `tracks_of` and `time_to_beats`, so both give the same encodings.

How a file is read (`read_score`; where pretty_midi differs, it says so):
- Tempo: every set-tempo event, on whichever track it sits (SMF type 1 puts them in the first;
  files that put them elsewhere still mean them). pretty_midi reads the first track only.
  Beat positions do not depend on this (a note's beat is its tick / ticks per quarter either way);
  times in seconds do.
- Seconds come from ticks exactly as pretty_midi computes them (the same float64 operations), so
  a file with its tempo map in the first track gives bit-identical times and encodings.
- A note-off ends every note of its channel and pitch then sounding, as a synthesizer releases
  every voice on that key (FluidSynth does): a re-strike before the release ends at the same
  note-off as the note it overlaps. This is pretty_midi's reading; symusic's own (and MidiTok's)
  pairs each note-off with the earliest open note instead, and `read_score` converts it.
- Zero-length notes (on and off at one tick) are dropped: nothing sounds (pretty_midi too).
- Instruments: one per (track, channel, program) with at least one note, tracks in file order;
  within a track, in symusic's order. pretty_midi orders a track's instruments by when their
  first note ends (the two differ only for tracks that hold several channels or programs), and
  keeps instruments that hold only controls or bends, so index selections (index:N) can differ
  on such files.
- A piece ends at its last note-off (`Score.get_end_time`); pretty_midi's end also counts
  control changes, bends and meta events. `MAX_SECONDS` is checked against the note end.

Everything above this layer sees notes as plain arrays (`TrackNotes.notes` [N, 4] =
start_s, end_s, pitch, velocity), a `Score`, or a `PrettyMIDI` handed back unchanged. A bad file
never escapes as a mido/pretty_midi/symusic exception: it becomes `BadMidiError` with a stable
reason (empty_file, not_midi, truncated, corrupt, no_notes, too_long), the same from both readers.
"""

from __future__ import annotations

import copy
import functools
import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi
import symusic

from cadenza.atomic import write_atomically
from cadenza.errors import BadMidiError, CadenzaError

MAX_SECONDS = 3600.0  # longer than any real piece in our corpora: a sign of a garbage tempo map

__all__ = [
    "MAX_SECONDS",
    "Score",
    "as_pretty_midi",
    "TrackNotes",
    "align_to_bar",
    "build_midi",
    "build_score",
    "clip_midi",
    "from_symusic",
    "load_midi",
    "load_midi_bytes",
    "midi_to_bytes",
    "notes_from_pitch_steps",
    "read_score",
    "read_score_bytes",
    "save_midi",
    "time_to_beats",
    "to_symusic",
    "tracks_of",
    "write_transposed",
]


@dataclass
class TrackNotes:
    """One instrument's notes. `notes`: float64 [N, 4] (start_s, end_s, pitch, velocity)."""

    program: int
    is_drum: bool
    name: str
    notes: np.ndarray


@dataclass(frozen=True)
class TimeSignature:
    """A time signature from `time` seconds on (the fields of pretty_midi's own)."""

    numerator: int
    denominator: int
    time: float


@dataclass(frozen=True, eq=False)
class Score:
    """A MIDI file as bulk ingestion reads it (`read_score`): its instruments' notes in seconds
    and its tempo map. Answers the questions codecs ask of a PrettyMIDI (`tracks_of`,
    `time_to_beats`, `get_tempo_changes`, `get_end_time`, `resolution`) and pickles cheaply.

    tempo_ticks [C] int64 / tick_scales [C] float64: from tick tempo_ticks[i] on, one tick lasts
    tick_scales[i] seconds (pretty_midi's own representation of a tempo map)."""

    tracks: tuple[TrackNotes, ...]
    resolution: int
    tempo_ticks: np.ndarray
    tick_scales: np.ndarray
    time_signature_changes: tuple[TimeSignature, ...] = ()

    @functools.cached_property
    def tempo_seconds(self) -> np.ndarray:
        """[C] float64: when each tempo segment starts, in seconds."""
        widths = np.diff(self.tempo_ticks).astype(np.float64) * self.tick_scales[:-1]
        out = np.zeros(len(self.tempo_ticks))
        for i, w in enumerate(widths):  # sequential, as pretty_midi accumulates them
            out[i + 1] = out[i] + w
        return out

    def ticks_to_seconds(self, ticks: np.ndarray) -> np.ndarray:
        """Ticks -> seconds through the tempo map, with pretty_midi's float64 arithmetic."""
        ticks = np.asarray(ticks, dtype=np.int64)
        seg = np.searchsorted(self.tempo_ticks, ticks, side="right") - 1
        return self.tempo_seconds[seg] + self.tick_scales[seg] * (ticks - self.tempo_ticks[seg])

    def get_tempo_changes(self) -> tuple[np.ndarray, np.ndarray]:
        """(seconds [C], quarter notes per minute [C]), as PrettyMIDI.get_tempo_changes."""
        return self.tempo_seconds, 60.0 / (self.tick_scales * self.resolution)

    def get_end_time(self) -> float:
        """The last note-off, in seconds (0 for a file without notes)."""
        return max((float(t.notes[:, 1].max()) for t in self.tracks if len(t.notes)), default=0.0)


def read_score(path: str | os.PathLike[str]) -> Score:
    """Parse a MIDI file with symusic into a `Score`, or raise BadMidiError (as `load_midi`)."""
    return read_score_bytes(_read_bytes(Path(path)), name=str(path))


def read_score_bytes(data: bytes, name: str = "<bytes>") -> Score:
    """MIDI bytes -> `Score`, with the same guards and reasons as `load_midi_bytes`."""
    data = _check_container(data, name)
    try:
        sym = symusic.Score.from_midi(data)
    except Exception as e:  # symusic raises RuntimeError / ValueError with the parser's text
        raise BadMidiError(name, "corrupt", f"{type(e).__name__}: {e}"[:200]) from e
    ticks, scales = _tick_scales(sym)
    resolution = int(sym.ticks_per_quarter)
    empty = Score((), resolution, ticks, scales)
    tracks = []
    for tr in sym.tracks:
        if not tr.note_num():
            continue  # controls or bends only; symusic also splits a track at a program change
        arr = tr.notes.numpy()
        start = arr["time"].astype(np.int64)
        pitch = arr["pitch"].astype(np.int64)
        end, keep = _end_at_first_note_off(start, start + arr["duration"].astype(np.int64), pitch)
        notes = np.empty((int(keep.sum()), 4), dtype=np.float64)
        notes[:, 0] = empty.ticks_to_seconds(start[keep])
        notes[:, 1] = empty.ticks_to_seconds(end[keep])
        notes[:, 2] = pitch[keep]
        notes[:, 3] = arr["velocity"][keep]
        tracks.append(_sorted(TrackNotes(int(tr.program), bool(tr.is_drum), str(tr.name), notes)))
    signatures = tuple(
        TimeSignature(int(ts.numerator), int(ts.denominator), float(t))
        for ts, t in zip(
            sym.time_signatures,
            empty.ticks_to_seconds(np.array([int(ts.time) for ts in sym.time_signatures])),
        )
    )
    score = Score(tuple(tracks), resolution, ticks, scales, signatures)
    _check_notes([t.notes for t in score.tracks], score.get_end_time(), name)
    return score


def _end_at_first_note_off(
    start: np.ndarray, end: np.ndarray, pitch: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """symusic's notes of one channel (each note-off ends the earliest open note of its pitch)
    -> the notes a synthesizer plays: a note-off releases every note of its pitch then sounding
    (FluidSynth releases every voice on the key), so a note ends at the first note-off of its
    pitch after it starts. Zero-length notes are dropped. Returns (end [N], keep [N] bool).

    Every note-off that ends a note in the first reading is one of `end`, so the first note-off
    after each onset is the smallest of them past it."""
    keep = end > start
    if not keep.any():
        return end, keep
    span = int(max(end.max(), start.max())) + 1
    offs = np.sort(pitch * span + end)  # every note-off, ordered by (pitch, tick)
    at = np.searchsorted(offs, pitch * span + start, side="right")
    found = at < len(offs)
    first = offs[np.minimum(at, len(offs) - 1)]
    found &= first // span == pitch  # the next note-off is one of this pitch
    return np.where(found, first % span, end), keep & found


def _tick_scales(sym: symusic.Score) -> tuple[np.ndarray, np.ndarray]:
    """The tempo map as pretty_midi builds it: 120 qpm until a tempo says otherwise, a tempo at
    tick 0 replacing it, and a repeated tempo adding no segment."""
    resolution = int(sym.ticks_per_quarter)
    ticks, scales = [0], [60.0 / (120.0 * resolution)]
    for tempo in sym.tempos:
        scale = 60.0 / ((6e7 / int(tempo.mspq)) * resolution)
        if int(tempo.time) == 0:
            ticks, scales = [0], [scale]
        elif scale != scales[-1]:
            ticks.append(int(tempo.time))
            scales.append(scale)
    return np.asarray(ticks, dtype=np.int64), np.asarray(scales, dtype=np.float64)


def to_symusic(midi: pretty_midi.PrettyMIDI | Score, merge: bool = False) -> symusic.Score:
    """A symusic Score in ticks (for MidiTok): every note at its beat position, through the tempo
    map, on the file's grid; the tempo map and time signatures come along. merge=True puts every
    pitched note on one piano track (drums dropped), for single-instrument tokenizations."""
    resolution = int(midi.resolution)
    out = symusic.Score(resolution)
    tracks = tracks_of(midi, include_drums=not merge)
    if merge:
        notes = [t.notes for t in tracks]
        tracks = [
            TrackNotes(0, False, "merged", np.concatenate(notes) if notes else np.zeros((0, 4)))
        ]
    for t in tracks:
        ticks = np.round(time_to_beats(midi, t.notes[:, :2].ravel()) * resolution).astype(np.int32)
        on, off = ticks.reshape(-1, 2).T
        track = symusic.Track(t.name, int(t.program), bool(t.is_drum))
        track.notes = symusic.Note.from_numpy(
            on, np.maximum(off - on, 1).astype(np.int32), t.notes[:, 2].astype(np.int8),
            np.clip(t.notes[:, 3], 1, 127).astype(np.int8),
        )  # fmt: skip
        out.tracks.append(track)
    change_s, qpm = midi.get_tempo_changes()
    beats = time_to_beats(midi, np.asarray(change_s))
    for b, q in zip(beats, qpm):
        out.tempos.append(symusic.Tempo(int(round(b * resolution)), mspq=int(round(6e7 / q))))
    for ts in getattr(midi, "time_signature_changes", []):
        at = int(round(float(time_to_beats(midi, np.array([ts.time]))[0]) * resolution))
        out.time_signatures.append(symusic.TimeSignature(at, ts.numerator, ts.denominator))
    return out


def from_symusic(score: symusic.Score) -> pretty_midi.PrettyMIDI:
    """A PrettyMIDI of a symusic Score (what MidiTok decodes to), through MIDI bytes, so tempo
    map and instruments are read exactly as `load_midi` reads a file; a Score without notes
    gives a PrettyMIDI without notes (decoding a model's output must not fail)."""
    data = score.dumps_midi()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tempo events on non-zero tracks: harmless here
        return pretty_midi.PrettyMIDI(io.BytesIO(data))


def as_pretty_midi(midi: pretty_midi.PrettyMIDI | Score) -> pretty_midi.PrettyMIDI:
    """A PrettyMIDI for what needs one (rendering): a Score's notes keep their times in seconds
    at one constant tempo (its first), so they sound the same; its tempo map is not kept."""
    if isinstance(midi, Score):
        qpm = float(60.0 / (midi.tick_scales[0] * midi.resolution))
        return build_midi(list(midi.tracks), tempo=qpm, resolution=midi.resolution)
    return midi


# --- loading ---------------------------------------------------------------------------------
def load_midi(path: str | os.PathLike[str]) -> pretty_midi.PrettyMIDI:
    """Parse a MIDI file, or raise BadMidiError naming the file and why it is unusable."""
    return load_midi_bytes(_read_bytes(Path(path)), name=str(path))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise CadenzaError(f"{path}: no such MIDI file; check the path") from e
    except OSError as e:
        raise BadMidiError(str(path), "corrupt", f"cannot read: {e}") from e


def _check_container(data: bytes, name: str) -> bytes:
    """The plain SMF inside `data`, or BadMidiError: empty_file, not_midi, truncated."""
    if len(data) == 0:
        raise BadMidiError(name, "empty_file")
    data = _strip_riff(data)
    if not data.startswith(b"MThd"):
        raise BadMidiError(name, "not_midi", "no MThd header")
    # Checking chunk lengths ourselves makes "truncated" deterministic: a parser's own reaction
    # to a short file depends on where the cut falls (EOFError, KeyError, or fewer tracks).
    short = _truncation(data)
    if short:
        raise BadMidiError(name, "truncated", short)
    return data


def _check_notes(tracks: Any, end: float, name: str) -> None:
    if not any(len(t) for t in tracks):
        raise BadMidiError(name, "no_notes")
    if not np.isfinite(end) or end > MAX_SECONDS:
        raise BadMidiError(name, "too_long", f"ends at {end:.0f} s > {MAX_SECONDS:.0f} s")


def load_midi_bytes(data: bytes, name: str = "<bytes>") -> pretty_midi.PrettyMIDI:
    """Parse MIDI bytes (uploads, music21 conversions) with the same guards as `load_midi`."""
    data = _check_container(data, name)
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
    _check_notes([inst.notes for inst in pm.instruments], end, name)
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
def tracks_of(pm: pretty_midi.PrettyMIDI | Score, include_drums: bool = True) -> list[TrackNotes]:
    """Instruments in file order (empty ones kept, so indices stay stable), notes sorted."""
    if isinstance(pm, Score):  # sorted and read-only already
        return [t for t in pm.tracks if include_drums or not t.is_drum]
    if not isinstance(pm, pretty_midi.PrettyMIDI):
        # Every codec's encode, and the piano rolls, read music through here: a path or bytes
        # would otherwise fail as "'str' object has no attribute 'instruments'".
        raise TypeError(f"expected a PrettyMIDI (or a cadenza.io.midi Score), got "
                        f"{type(pm).__name__}; "
                        "read a file with cadenza.io.midi.load_midi(path)")  # fmt: skip
    out = []
    for inst in pm.instruments:
        if inst.is_drum and not include_drums:
            continue
        notes = np.array(
            [(n.start, n.end, n.pitch, n.velocity) for n in inst.notes], dtype=np.float64
        ).reshape(-1, 4)
        out.append(_sorted(TrackNotes(int(inst.program), bool(inst.is_drum), inst.name, notes)))
    return out


def _sorted(track: TrackNotes) -> TrackNotes:
    """A copy with its notes sorted by onset, then pitch (ties keep their order), read-only (a
    Score hands the same arrays to every reader)."""
    notes = track.notes[np.lexsort((track.notes[:, 2], track.notes[:, 0]))]
    notes.flags.writeable = False
    return TrackNotes(track.program, track.is_drum, track.name, notes)


def time_to_beats(pm: pretty_midi.PrettyMIDI | Score, times: np.ndarray) -> np.ndarray:
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
    pm: pretty_midi.PrettyMIDI | Score,
    downbeat_s: float,
    beats_per_bar: int = 4,
    tempo: float = 120.0,
) -> pretty_midi.PrettyMIDI | Score:
    """`pm` re-timed so the downbeat at `downbeat_s` falls on a bar line of `beats_per_bar`
    quarter-note beats counted from 0, at one constant `tempo`: a new PrettyMIDI, or a new Score
    when given one.

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
    build = build_score if isinstance(pm, Score) else build_midi
    return build(tracks, tempo=tempo, resolution=resolution)


def at_tempo(pm: pretty_midi.PrettyMIDI, qpm: float) -> pretty_midi.PrettyMIDI:
    """`pm`'s notes on the same beats at one tempo of `qpm` quarter notes a minute, as a new
    PrettyMIDI: a generated piece (notes only) written at the tempo a producer asks for. Only
    notes survive, as in `align_to_bar`, which this is with the downbeat at 0."""
    return align_to_bar(pm, 0.0, tempo=qpm)


# --- writing ---------------------------------------------------------------------------------
def build_midi(
    tracks: list[TrackNotes], tempo: float = 120.0, resolution: int = 480
) -> pretty_midi.PrettyMIDI:
    """Notes in seconds -> PrettyMIDI at one constant tempo (get_beats() matches `tempo`)."""
    # initial_tempo sets the tick scale, which is what write() and get_tempo_changes() read.
    pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=float(tempo))
    for tr in tracks:
        inst = pretty_midi.Instrument(program=int(tr.program), is_drum=tr.is_drum, name=tr.name)
        notes = _writable(tr.notes)
        velocities = notes[:, 3].astype(int).tolist()
        pitches = notes[:, 2].astype(int).tolist()
        inst.notes.extend(
            pretty_midi.Note(velocity=v, pitch=p, start=s, end=e)
            for (s, e), p, v in zip(notes[:, :2].tolist(), pitches, velocities)
        )
        pm.instruments.append(inst)
    return pm


def build_score(tracks: list[TrackNotes], tempo: float = 120.0, resolution: int = 480) -> Score:
    """`build_midi` without the PrettyMIDI, for sources that make their pieces from arrays: the
    same notes at the same times, and the same encodings, in a fraction of the time."""
    scale = np.array([60.0 / (float(tempo) * resolution)])  # pretty_midi's initial_tempo scale
    kept = tuple(
        _sorted(TrackNotes(t.program, t.is_drum, t.name, _writable(t.notes))) for t in tracks
    )
    return Score(kept, int(resolution), np.zeros(1, dtype=np.int64), scale)


def _writable(notes: np.ndarray) -> np.ndarray:
    """Notes [N, 4] as a file can hold them: no zero-length notes (they would write as an off
    before the on), pitches 0..127, whole velocities 1..127. Vectorised: per-note clipping
    dominated bulk preparation time."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    notes = notes[notes[:, 1] > notes[:, 0]]
    notes[:, 2] = np.clip(np.trunc(notes[:, 2]), 0, 127)
    notes[:, 3] = np.clip(np.round(notes[:, 3]), 1, 127)
    return notes


def save_midi(pm: pretty_midi.PrettyMIDI, path: str | os.PathLike[str]) -> Path:
    """Write atomically (temp file in the same folder, then os.replace); creates parents."""
    return write_atomically(path, midi_to_bytes(pm))


def write_transposed(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], semitones: int
) -> Path:
    """A copy of the MIDI file `src` with every pitched note moved `semitones` (drums stay), as
    is, event for event otherwise (symusic reads and writes it: ~1 ms a file). For corpora
    made of many distinct copies of real files (benchmarks/ingest.py's memory check)."""
    score = symusic.Score.from_midi(_check_container(_read_bytes(Path(src)), str(src)))
    for track in score.tracks:
        if not track.is_drum:
            track.shift_pitch(int(semitones), inplace=True)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(dst))
    return dst


def midi_to_bytes(pm: pretty_midi.PrettyMIDI) -> bytes:
    """A Standard MIDI File of `pm`. One holding only notes, tempos and time signatures (every
    piece a model writes) goes through symusic (`to_symusic`: each note at its beat position,
    on pm's grid): 3.6 -> 0.23 ms for a 4-bar chorale and 76 -> 1.9 ms for POP909's song 875,
    with the notes pretty_midi's own writer gives (tested on real files); anything else (controls,
    bends, lyrics, text, key signatures, an instrument without notes) by pretty_midi, which
    writes all of it."""
    if _notes_only(pm):
        return to_symusic(pm).dumps_midi()
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def _notes_only(pm: pretty_midi.PrettyMIDI) -> bool:
    return (
        all(i.notes and not i.control_changes and not i.pitch_bends for i in pm.instruments)
        and not pm.lyrics
        and not getattr(pm, "text_events", None)
        and not pm.key_signature_changes
    )


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
