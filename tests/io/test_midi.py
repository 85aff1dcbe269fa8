"""cadenza.io.midi: guarded loading, note arrays, beat mapping, writing; real and broken files."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from cadenza.errors import BadMidiError, CadenzaError
from cadenza.io.midi import (
    TrackNotes,
    align_to_bar,
    at_tempo,
    build_midi,
    load_midi,
    load_midi_bytes,
    midi_to_bytes,
    notes_from_pitch_steps,
    save_midi,
    time_to_beats,
    tracks_of,
)
from cadenza.representations import EventCodec, PianoRollCodec
from tests.fixtures.data import data_root, real_midi, real_midi_params
from tests.fixtures.midi_factory import (
    SCALE,
    scale_notes,
    write_broken_folder,
    write_drums_only,
    write_scale,
    write_two_tracks,
)

TICK = 0.5 / 480  # one tick at 120 bpm, resolution 480: the precision a written file keeps


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    folder = tmp_path_factory.mktemp("broken")
    return folder, write_broken_folder(folder)


BROKEN_NAMES = ["empty.mid", "silent.mid", "truncated.mid", "notes.mid", "My Song.MID"]


@pytest.mark.parametrize("name", BROKEN_NAMES)
def test_broken_file_gives_reason_and_names_file(broken, name):
    folder, expected = broken
    with pytest.raises(BadMidiError) as info:
        load_midi(folder / name)
    assert info.value.reason == expected[name]
    assert name in str(info.value)
    assert info.value.path == str(folder / name)


@pytest.mark.parametrize("name", BROKEN_NAMES)
def test_broken_bytes_give_same_reason(broken, name):
    folder, expected = broken
    with pytest.raises(BadMidiError) as info:
        load_midi_bytes((folder / name).read_bytes(), name="upload.mid")
    assert info.value.reason == expected[name]
    assert "upload.mid" in str(info.value)


@pytest.mark.parametrize("codec", [PianoRollCodec(), EventCodec()], ids=["pianoroll", "events"])
def test_drums_only_loads_but_codecs_reject(broken, codec):
    folder, expected = broken
    pm = load_midi(folder / "drums_only.mid")
    assert [len(t.notes) for t in tracks_of(pm)] == [16]
    assert tracks_of(pm, include_drums=False) == []
    with pytest.raises(BadMidiError) as info:
        codec.encode(pm)
    assert info.value.reason == expected["drums_only.mid"] == "no_notes"


@pytest.mark.parametrize("cut", [0.1, 0.3, 0.6, 0.9, 0.99], ids=lambda c: f"cut{int(c * 100)}")
def test_truncation_is_deterministic_on_a_real_file(cut):
    data = real_midi("pop909/midi/001.mid").read_bytes()
    with pytest.raises(BadMidiError) as info:
        load_midi_bytes(data[: int(len(data) * cut)], name="cut.mid")
    assert info.value.reason == "truncated"


def test_too_long_and_missing(tmp_path):
    late = np.array([[0.0, 1.0, 60, 80], [3700.0, 3701.0, 62, 80]])
    path = save_midi(build_midi([TrackNotes(0, False, "late", late)]), tmp_path / "late.mid")
    with pytest.raises(BadMidiError) as info:
        load_midi(path)
    assert info.value.reason == "too_long"
    with pytest.raises(CadenzaError, match="no such MIDI file"):
        load_midi(tmp_path / "absent.mid")


def test_scale_written_and_read_back(tmp_path):
    path = write_scale(tmp_path / "deep" / "er" / "scale.mid")
    assert path.is_file() and sorted(p.name for p in path.parent.iterdir()) == ["scale.mid"]
    (track,) = tracks_of(load_midi(path))
    assert track.notes.shape == (8, 4) and track.notes.dtype == np.float64
    np.testing.assert_allclose(track.notes, scale_notes(), atol=TICK)
    assert track.notes[:, 2].tolist() == SCALE


def test_two_tracks_keep_order_programs_and_names(tmp_path):
    pm = load_midi(write_two_tracks(tmp_path / "two.mid"))
    tracks = tracks_of(pm)
    assert [(t.program, t.name, len(t.notes)) for t in tracks] == [
        (0, "melody", 8),
        (32, "bass", 4),
    ]
    # Sorted by start then pitch.
    for t in tracks:
        order = np.lexsort((t.notes[:, 2], t.notes[:, 0]))
        assert order.tolist() == list(range(len(t.notes)))


def test_bytes_round_trip():
    pm = build_midi([TrackNotes(0, False, "scale", scale_notes())], tempo=90.0)
    data = midi_to_bytes(pm)
    assert data[:4] == b"MThd"
    back = load_midi_bytes(data)
    # A file stores whole microseconds per beat, so 90 bpm comes back within 1e-6.
    np.testing.assert_allclose(back.get_tempo_changes()[1], [90.0], rtol=1e-5)
    np.testing.assert_allclose(tracks_of(back)[0].notes, scale_notes(), atol=60 / 90 / 480)


@pytest.mark.parametrize("tempo", [60.0, 90.0, 120.0, 150.0])
def test_time_to_beats_constant_tempo(tmp_path, tempo):
    pm = load_midi_bytes(
        midi_to_bytes(build_midi([TrackNotes(0, False, "", scale_notes())], tempo))
    )
    np.testing.assert_allclose(pm.get_beats()[1] - pm.get_beats()[0], 60 / tempo, rtol=1e-5)
    times = np.array([0.0, 0.5, 1.25, 100.0])  # 100 s is far past the end: extrapolated
    np.testing.assert_allclose(time_to_beats(pm, times), times * tempo / 60, rtol=1e-5)


@pytest.mark.parametrize("rel", [p.values[0] for p in real_midi_params()[-3:]], ids=str)
def test_time_to_beats_follows_tempo_changes(rel):
    pm = load_midi(real_midi(rel))
    assert len(pm.get_tempo_changes()[0]) > 5  # piano-midi.de files carry a tempo map
    beats = pm.get_beats()
    np.testing.assert_allclose(time_to_beats(pm, beats), np.arange(len(beats)), atol=1e-6)


def test_time_to_beats_counts_quarters_in_six_eight():
    pm = load_midi(real_midi("nottingham/MIDI/jigs1.mid"))
    assert (pm.time_signature_changes[0].numerator, pm.time_signature_changes[0].denominator) == (
        6,
        8,
    )
    starts = np.concatenate([t.notes[:, 0] for t in tracks_of(pm)])
    sixteenths = time_to_beats(pm, starts) * 4
    np.testing.assert_allclose(sixteenths, np.round(sixteenths), atol=1e-6)
    on_eighths = np.isclose(sixteenths % 2, 0)
    assert on_eighths.mean() > 0.95  # a jig is eighth notes, with a few ornaments between
    # get_beats() steps in dotted quarters here: an eighth would sit at 1/3 of its beat.
    assert np.isclose(pm.get_beats()[1], 0.75)


def test_align_to_bar_puts_the_downbeat_on_a_bar_line_and_keeps_beat_positions():
    # A scale a third of a beat late at 90 bpm: its first note is the downbeat.
    notes = scale_notes()
    notes[:, :2] = notes[:, :2] * 120 / 90 + (1 / 3) * 60 / 90  # one beat each, 1/3 beat late
    pm = load_midi_bytes(midi_to_bytes(build_midi([TrackNotes(5, False, "lead", notes)], 90.0)))
    before = time_to_beats(pm, tracks_of(pm)[0].notes[:, 0])
    out = align_to_bar(pm, downbeat_s=float(tracks_of(pm)[0].notes[0, 0]), tempo=120.0)
    track = tracks_of(out)[0]
    after = time_to_beats(out, track.notes[:, 0])
    assert after[0] == pytest.approx(4.0, abs=1e-6)  # 1/3 beat in -> the next bar line
    np.testing.assert_allclose(after - before, 4.0 - 1 / 3, atol=2e-3)  # one shift for all
    np.testing.assert_allclose(after % 1, 0.0, atol=1e-6)  # back on the beat grid
    assert (track.program, track.name) == (5, "lead")
    np.testing.assert_array_equal(track.notes[:, 2:], notes[:, 2:])
    assert out.get_tempo_changes()[1] == pytest.approx([120.0])
    # A downbeat already on a bar line moves nothing.
    again = align_to_bar(out, downbeat_s=float(track.notes[0, 0]))
    np.testing.assert_allclose(tracks_of(again)[0].notes, track.notes, atol=1e-9)


def test_align_to_bar_follows_a_tempo_map():
    pm = load_midi(real_midi("pop909/midi/004.mid"))
    raw = np.concatenate([t.notes for t in tracks_of(pm)])
    raw_beats = time_to_beats(pm, raw[:, 0])
    out = align_to_bar(pm, downbeat_s=float(raw[:, 0].min()))
    moved = time_to_beats(out, np.concatenate([t.notes for t in tracks_of(out)])[:, 0])
    shift = np.sort(moved) - np.sort(raw_beats)
    assert np.ptp(shift) < 1e-6 and 0 <= shift[0] < 4  # every note moved by the same beats
    assert [t.name for t in tracks_of(out)] == [t.name for t in tracks_of(pm)]


def test_at_tempo_keeps_every_note_on_its_beat_through_a_tempo_map():
    """A piece written at another tempo: the same notes on the same beats (as the file keeps
    them, to a tick) at one tempo. Albeniz's Espana has 553 tempo changes."""
    pm = load_midi(real_midi("piano-midi-de/midis/Albeniz/alb_esp1.mid"))
    out = load_midi_bytes(midi_to_bytes(at_tempo(pm, 75.0)))  # as a producer's file holds it
    assert out.get_tempo_changes()[1] == pytest.approx([75.0], abs=1e-4)
    assert [(t.program, t.is_drum, t.name) for t in tracks_of(out)] == [
        (t.program, t.is_drum, t.name) for t in tracks_of(pm)
    ]
    for a, b in zip(tracks_of(pm), tracks_of(out), strict=True):
        assert len(a.notes) == len(b.notes) > 0
        beats_a = time_to_beats(pm, a.notes[:, :2].ravel())
        beats_b = time_to_beats(out, b.notes[:, :2].ravel())
        np.testing.assert_allclose(np.sort(beats_b), np.sort(beats_a), atol=1.5 / pm.resolution)
        np.testing.assert_array_equal(np.sort(b.notes[:, 2]), np.sort(a.notes[:, 2]))
    last = time_to_beats(pm, np.array([max(t.notes[:, 1].max() for t in tracks_of(pm))]))[0]
    assert out.get_end_time() == pytest.approx(last * 60 / 75, abs=0.01)
    assert pm.get_tempo_changes()[0].size == 553  # the source is left as it was


def test_notes_from_pitch_steps_holds_repeated_pitches():
    steps = [[60], [60, 64], [64], [], [60], [60]]
    tr = notes_from_pitch_steps(steps, seconds_per_step=0.5, velocity=70, program=5)
    assert (tr.program, tr.is_drum) == (5, False)
    assert tr.notes.tolist() == [[0.0, 1.0, 60, 70], [0.5, 1.5, 64, 70], [2.0, 3.0, 60, 70]]


def test_boulanger_roll_survives_midi_and_pianoroll_codec():
    with gzip.open(data_root() / "boulanger2012-polyphonic/Nottingham.json.gz") as f:
        pieces = json.load(f)
    steps = pieces["test"][0]  # eighth-note steps
    pm = load_midi_bytes(midi_to_bytes(build_midi([notes_from_pitch_steps(steps, 0.25)])))
    roll = PianoRollCodec(steps_per_beat=2).encode(pm).numpy()
    last = max(t for t, s in enumerate(steps) if s) + 1
    expected = np.zeros((last, 88), np.float32)
    for t, s in enumerate(steps[:last]):
        expected[t, np.array(s, dtype=int) - 21] = 1
    assert roll.shape == expected.shape
    np.testing.assert_array_equal(roll, expected)


@pytest.mark.parametrize("rel", [p.values[0] for p in real_midi_params()], ids=str)
def test_real_files_load_with_notes(rel):
    pm = load_midi(real_midi(rel))
    tracks = tracks_of(pm)
    n_notes = sum(len(t.notes) for t in tracks)
    assert n_notes == sum(len(i.notes) for i in pm.instruments) > 50
    assert all(((t.notes[:, 1] >= t.notes[:, 0]).all()) for t in tracks)
    if rel.startswith("pop909"):
        assert [t.name for t in tracks] == ["MELODY", "BRIDGE", "PIANO"]


def test_drums_written_as_drums(tmp_path):
    (track,) = tracks_of(load_midi(write_drums_only(tmp_path / "d.mid")))
    assert track.is_drum and sorted(set(track.notes[:, 2].tolist())) == [36, 38]


def test_factory_transposes(tmp_path):
    (track,) = tracks_of(load_midi(write_scale(tmp_path / "s.mid", transpose=2)))
    assert track.notes[:, 2].tolist() == [p + 2 for p in SCALE]


def _written_back(pm, fast: bool):
    """pm written by the symusic path (fast) or by pretty_midi's own writer, then read."""
    import io as _io

    if fast:
        return load_midi_bytes(midi_to_bytes(pm))
    buf = _io.BytesIO()
    pm.write(buf)
    return load_midi_bytes(buf.getvalue())


@pytest.mark.parametrize("rel", [p.values[0] for p in real_midi_params()], ids=str)
def test_notes_only_files_are_written_as_pretty_midi_writes_them(rel):
    """midi_to_bytes writes a notes-only PrettyMIDI through symusic: the same instruments,
    notes (within a tick), tempo map and time signatures as pretty_midi's writer, on real
    files stripped of what that path leaves to pretty_midi."""
    pm = load_midi(real_midi(rel))
    for inst in pm.instruments:
        inst.control_changes, inst.pitch_bends = [], []
    pm.lyrics, pm.key_signature_changes = [], []
    pm.instruments = [i for i in pm.instruments if i.notes]
    fast, slow = _written_back(pm, True), _written_back(pm, False)
    tick = 60.0 / (pm.get_tempo_changes()[1].max() * pm.resolution)  # s, at the fastest tempo
    assert [(i.program, i.is_drum, i.name) for i in fast.instruments] == [
        (i.program, i.is_drum, i.name) for i in slow.instruments
    ]
    for a, b in zip(tracks_of(fast), tracks_of(slow), strict=True):
        assert a.notes.shape == b.notes.shape
        np.testing.assert_array_equal(a.notes[:, 2:], b.notes[:, 2:])
        np.testing.assert_allclose(a.notes[:, :2], b.notes[:, :2], atol=2 * tick)
    np.testing.assert_allclose(fast.get_tempo_changes()[1], slow.get_tempo_changes()[1], rtol=1e-5)
    assert [(t.numerator, t.denominator) for t in fast.time_signature_changes] == [
        (t.numerator, t.denominator) for t in slow.time_signature_changes
    ]


def test_controls_and_key_signatures_go_through_pretty_midi():
    import pretty_midi

    pm = build_midi([TrackNotes(0, False, "scale", scale_notes())], tempo=100.0)
    pm.instruments[0].control_changes.append(pretty_midi.ControlChange(64, 127, 0.5))
    pm.key_signature_changes.append(pretty_midi.KeySignature(2, 0.0))  # D major
    back = load_midi_bytes(midi_to_bytes(pm))
    assert [(c.number, c.value) for c in back.instruments[0].control_changes] == [(64, 127)]
    assert [k.key_number for k in back.key_signature_changes] == [2]


@pytest.mark.parametrize("given", ["piece.mid", b"MThd", None], ids=["path", "bytes", "none"])
def test_a_codec_given_a_path_says_to_read_the_file_first(given) -> None:
    for codec in (PianoRollCodec(), EventCodec()):
        with pytest.raises(TypeError, match=r"expected a PrettyMIDI .*load_midi\(path\)"):
            codec.encode(given)
