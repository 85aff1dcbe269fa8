"""recommend/symbolic_features.py: the vector's size and names, what its key, tempo and density
dims measure on pieces built note by note, that transposition moves only the absolute pitch
classes, the error for a piece with nothing to measure, real files, and `standardise`."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza.errors import BadMidiError, CadenzaError
from cadenza.io.midi import TrackNotes, build_midi, load_midi
from cadenza.recommend.symbolic_features import SYMBOLIC_NAMES, standardise, symbolic_summary
from tests.fixtures.data import NOTTINGHAM, PIANO_MIDI, POP909, real_midi
from tests.fixtures.midi_factory import chord_notes, scale_notes

F = len(SYMBOLIC_NAMES)
INDEX = {name: i for i, name in enumerate(SYMBOLIC_NAMES)}
PC = slice(INDEX["pc_C"], INDEX["pc_B"] + 1)
DEG = slice(INDEX["deg_0"], INDEX["deg_11"] + 1)


def piece(transpose: int = 0, speed: float = 1.0, drums: bool = False):
    """Scale over I-IV-V-I chords (program 32 bass-family chords), `speed` x faster."""
    melody, chords = scale_notes(), chord_notes()
    melody[:, 2] += transpose
    chords[:, 2] += transpose - 12
    melody[:, :2] /= speed
    chords[:, :2] /= speed
    tracks = [TrackNotes(0, False, "melody", melody), TrackNotes(32, False, "chords", chords)]
    if drums:
        hits = np.array([(0.5 * i, 0.5 * i + 0.1, 36, 100) for i in range(8)], dtype=np.float64)
        tracks.append(TrackNotes(0, True, "drums", hits / [speed, speed, 1, 1]))
    return build_midi(tracks, tempo=120.0 * speed)


def value(v: np.ndarray, name: str) -> float:
    return float(v[INDEX[name]])


def test_names_are_unique_and_sized() -> None:
    assert len(set(SYMBOLIC_NAMES)) == F and 60 <= F <= 90
    for name in ("pc_C#", "deg_0", "mode_major", "key_clarity", "top_int_2", "notes_per_beat",
                 "polyphony_max", "dur_1", "ioi_cv", "velocity_mean", "gm_piano",
                 "drum_density", "tempo_bpm", "on_8th", "length_beats_log"):  # fmt: skip
        assert name in INDEX
    v = symbolic_summary(piece(drums=True))
    assert v.shape == (F,) and v.dtype == np.float32 and np.isfinite(v).all()


def test_c_major_scale_is_c_major() -> None:
    v = symbolic_summary(build_midi([TrackNotes(0, False, "scale", scale_notes())]))
    assert np.argmax(v[DEG]) == 0 and np.argmax(v[PC]) == 0  # C twice, every other note once
    assert value(v, "mode_major") == 1.0 and value(v, "key_clarity") > 0.8
    assert v[PC].sum() == pytest.approx(1.0) and v[DEG].sum() == pytest.approx(1.0)
    # Eight quarter notes, one at a time, stepping up by 1 or 2 semitones.
    assert value(v, "notes_per_beat") == pytest.approx(1.0)
    assert value(v, "polyphony_max") == 1.0 and value(v, "dur_1") == pytest.approx(1.0)
    assert value(v, "top_int_1") + value(v, "top_int_2") == pytest.approx(1.0)
    assert value(v, "top_up_share") == 1.0 and value(v, "on_beat") == 1.0
    assert value(v, "length_beats_log") == pytest.approx(np.log1p(8.0), rel=1e-5)


def test_transposing_rolls_pitch_classes_but_not_scale_degrees() -> None:
    base, up = symbolic_summary(piece()), symbolic_summary(piece(transpose=2))
    np.testing.assert_allclose(up[PC], np.roll(base[PC], 2), atol=1e-6)
    assert not np.allclose(up[PC], base[PC])
    np.testing.assert_allclose(up[DEG], base[DEG], atol=1e-6)
    assert value(up, "mode_major") == value(base, "mode_major")
    assert value(up, "pitch_mean") == pytest.approx(value(base, "pitch_mean") + 2 / 127)


def test_double_tempo_doubles_per_second_not_per_beat() -> None:
    slow, fast = symbolic_summary(piece(drums=True)), symbolic_summary(piece(speed=2.0, drums=True))
    assert value(fast, "notes_per_second") == pytest.approx(2 * value(slow, "notes_per_second"))
    assert value(fast, "tempo_bpm") == pytest.approx(2 * value(slow, "tempo_bpm"))
    beat_dims = ["notes_per_beat", "onsets_per_beat", "drum_density", "length_beats_log",
                 "dur_1", "ioi_median_beats", "on_beat", "polyphony_mean"]  # fmt: skip
    for name in beat_dims:
        assert value(fast, name) == pytest.approx(value(slow, name), rel=1e-5), name
    assert value(slow, "drum_density") == pytest.approx(8 / 8)  # 8 hits over 8 beats


def test_instruments_and_families() -> None:
    v = symbolic_summary(piece(drums=True))
    assert value(v, "n_instruments") == 2 and value(v, "n_programs") == 2  # drums not counted
    assert value(v, "gm_piano") == pytest.approx(8 / 20)  # 8 scale notes, 12 chord notes
    assert value(v, "gm_bass") == pytest.approx(12 / 20)
    assert value(v, "polyphony_max") == 4  # a triad under a scale note


@pytest.mark.parametrize(
    "tracks",
    [[], [TrackNotes(0, True, "drums", np.array([[0.0, 0.1, 36, 100]]))]],
    ids=["no_tracks", "drums_only"],
)
def test_nothing_to_measure_raises(tracks: list) -> None:
    with pytest.raises(BadMidiError, match="song.mid: no notes") as info:
        symbolic_summary(build_midi(tracks), name="song.mid")
    assert info.value.reason == "no_notes"


@pytest.mark.parametrize(
    "rel",
    [f"nottingham/MIDI/{NOTTINGHAM[2]}.mid", f"pop909/midi/{POP909[0]}.mid",
     f"piano-midi-de/midis/{PIANO_MIDI[0]}.mid", f"piano-midi-de/midis/{PIANO_MIDI[2]}.mid"],
    ids=lambda r: r.split("/")[0] + ":" + r.rsplit("/", 1)[-1],
)  # fmt: skip
def test_real_files(rel: str) -> None:
    v = symbolic_summary(load_midi(real_midi(rel)), name=rel)
    assert v.shape == (F,) and np.isfinite(v).all()
    assert v[PC].sum() == pytest.approx(1.0, abs=1e-5) and 0 < value(v, "key_clarity") <= 1
    if rel.startswith("pop909"):
        assert value(v, "n_instruments") == 3  # MELODY, BRIDGE, PIANO
        # POP909 is quantised to beats offset from the file's own; the grid phase finds them.
        assert value(v, "on_16th") > 0.9
    if rel.startswith("nottingham"):
        assert value(v, "meter_triple") == 1.0  # jigs are in 6/8


def test_standardise() -> None:
    x = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 2.0], [5.0, 5.0, 4.0]])
    z, mean, std = standardise(x)
    np.testing.assert_allclose(mean, [3.0, 5.0, 2.0])
    assert std[1] == 1.0  # a constant column is not divided by zero
    np.testing.assert_allclose(z[:, 1], 0.0)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(z[:, [0, 2]].std(axis=0), 1.0, atol=1e-6)
    with pytest.raises(CadenzaError, match=r"\[N, F\]"):
        standardise(np.zeros((0, 3)))
