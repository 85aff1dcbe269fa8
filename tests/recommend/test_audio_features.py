"""recommend/audio_features.py: the summary's size, what its named dimensions measure (chroma of
a known chord, flatness of a sine vs noise), that every kind of input gives the same vector, that
a batch lists bad files instead of failing, and real POP909 songs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from cadenza.errors import BadAudioError, BadMidiError, ConfigError
from cadenza.io.audio import AudioFeatures, Waveform, save_audio
from cadenza.io.midi import TrackNotes, build_midi, save_midi
from cadenza.recommend.audio_features import SUMMARY_NAMES, audio_summaries, audio_summary
from tests.fixtures.data import data_root
from tests.io.test_render import require_fluidsynth

SR = AudioFeatures().sample_rate
D = len(SUMMARY_NAMES)
INDEX = {name: i for i, name in enumerate(SUMMARY_NAMES)}


@pytest.fixture(params=["fluidsynth", "builtin"])
def synth(request: pytest.FixtureRequest) -> str:
    if request.param == "fluidsynth":
        require_fluidsynth()
    return request.param


def sine(hz: float, seconds: float, amplitude: float = 0.5) -> Waveform:
    t = np.arange(int(seconds * SR)) / SR
    return Waveform((amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32), SR)


def c_major_chord(seconds: float = 3.0):
    """C4-E4-G4 held for `seconds`, piano."""
    rows = np.array([(0.0, seconds, p, 90) for p in (60, 64, 67)], dtype=np.float64)
    return build_midi([TrackNotes(0, False, "chord", rows)])


def value(v: np.ndarray, name: str) -> float:
    return float(v[INDEX[name]])


# --- size and names ------------------------------------------------------------------------
def test_names_are_unique_and_readable() -> None:
    assert len(set(SUMMARY_NAMES)) == D and 100 <= D <= 200
    for name in ("mfcc03_mean", "chroma_E_mean", "chroma_C#_std", "tempo_bpm", "flatness_mean",
                 "rms_db_std", "onset_mean", "melband0_db_mean"):  # fmt: skip
        assert name in INDEX


@pytest.mark.parametrize("seconds", [0.03, 5.0, 30.0], ids=["30ms", "5s", "30s"])
def test_same_size_and_finite_for_any_length(seconds: float) -> None:
    v = audio_summary(sine(440.0, seconds))
    assert v.shape == (D,) and v.dtype == np.float32
    assert np.isfinite(v).all()


def test_long_midi_same_size_and_max_seconds_keeps_the_start() -> None:
    wave = sine(330.0, 20.0)
    wave.samples[int(8 * SR) :] = sine(1000.0, 12.0, 0.1).samples  # a different second half
    head = Waveform(wave.samples[: 5 * SR], SR)
    np.testing.assert_array_equal(audio_summary(wave, max_seconds=5.0), audio_summary(head))
    assert not np.array_equal(audio_summary(wave, max_seconds=None), audio_summary(head))
    v = audio_summary(c_major_chord(40.0), max_seconds=30.0, synth="builtin")
    assert v.shape == (D,) and np.isfinite(v).all()


def test_other_features_keep_the_size() -> None:
    # n_mfcc / n_mels of the analysis must not change what the embedder is fed.
    p = AudioFeatures(n_mfcc=13, n_mels=40, sample_rate=16000, cqt_octaves=6)
    v = audio_summary(sine(440.0, 2.0), p)
    assert v.shape == (D,) and np.isfinite(v).all()


# --- the dimensions mean what their names say -------------------------------------------------
def test_c_major_chord_chroma_peaks_at_c_e_g(synth: str) -> None:
    v = audio_summary(c_major_chord(), synth=synth)
    means = {pc: value(v, f"chroma_{pc}_mean") for pc in
             ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")}  # fmt: skip
    top3 = sorted(means, key=means.get, reverse=True)[:3]
    assert set(top3) == {"C", "E", "G"}, means


def test_noise_is_flat_and_bright_a_sine_is_not() -> None:
    rng = np.random.default_rng(0)
    noise = Waveform((0.3 * rng.standard_normal(3 * SR)).astype(np.float32), SR)
    tone, hiss = audio_summary(sine(440.0, 3.0)), audio_summary(noise)
    assert value(hiss, "flatness_mean") > 0.3 > 0.01 > value(tone, "flatness_mean")
    assert value(hiss, "centroid_khz_mean") > 3.0 > 1.0 > value(tone, "centroid_khz_mean")
    assert value(tone, "chroma_A_mean") == pytest.approx(1.0, abs=0.05)


def test_midi_path_and_prettymidi_and_repeat_give_identical_vectors(
    synth: str, tmp_path: Path
) -> None:
    pm = c_major_chord(2.0)
    path = save_midi(pm, tmp_path / "chord.mid")
    from_pm = audio_summary(pm, synth=synth)
    np.testing.assert_array_equal(audio_summary(path, synth=synth), from_pm)
    np.testing.assert_array_equal(audio_summary(str(path), synth=synth), from_pm)
    np.testing.assert_array_equal(audio_summary(pm, synth=synth), from_pm)


def test_audio_file_and_its_waveform_agree(tmp_path: Path) -> None:
    # A noise floor at -40 dB, as any recording has: a bare sine's bandwidth would be set by the
    # 16-bit file's quantisation noise alone (0.05 kHz as floats, 0.12 kHz from the file).
    noise = 0.005 * np.random.default_rng(0).standard_normal(2 * SR)
    wave = Waveform(sine(440.0, 2.0).samples + noise.astype(np.float32), SR)
    path = save_audio(wave, tmp_path / "a4.wav")
    np.testing.assert_allclose(audio_summary(path), audio_summary(wave), rtol=1e-3, atol=1e-2)


# --- bad input ----------------------------------------------------------------------------
def test_batch_keeps_good_rows_and_lists_bad_files_with_reasons(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("not a sound file\n")
    silent = save_audio(Waveform(np.zeros(SR, dtype=np.float32), SR), tmp_path / "silent.wav")
    tone = save_audio(sine(440.0, 2.0), tmp_path / "a4.wav")
    chord = save_midi(c_major_chord(2.0), tmp_path / "chord.mid")
    no_notes = save_midi(build_midi([]), tmp_path / "no_notes.mid")
    tracks = [empty, tone, text, silent, chord, no_notes, tmp_path / "gone.wav"]

    rows, skipped = audio_summaries(tracks, synth="builtin")

    assert rows.shape == (2, D) and rows.dtype == np.float32 and np.isfinite(rows).all()
    np.testing.assert_array_equal(rows[0], audio_summary(tone))
    np.testing.assert_array_equal(rows[1], audio_summary(chord, synth="builtin"))
    got = {(Path(s["track"]).name, s["index"], s["reason"]) for s in skipped}
    assert got == {("empty.wav", 0, "empty_file"), ("notes.wav", 2, "not_audio"),
                   ("silent.wav", 3, "silent"), ("no_notes.mid", 5, "no_notes"),
                   ("gone.wav", 6, "missing")}  # fmt: skip
    assert all(isinstance(s["detail"], str) for s in skipped)


def test_batch_of_nothing_usable_is_an_empty_matrix(tmp_path: Path) -> None:
    rows, skipped = audio_summaries([Waveform(np.zeros(100, dtype=np.float32), SR)])
    assert rows.shape == (0, D)
    assert skipped == [{"track": "<Waveform>", "index": 0, "reason": "silent",
                        "detail": "peak -240 dBFS"}]  # fmt: skip


def test_silent_or_empty_waveform_and_empty_midi_raise_bad_file_errors() -> None:
    with pytest.raises(BadAudioError, match="silent"):
        audio_summary(Waveform(np.zeros(SR, dtype=np.float32), SR))
    with pytest.raises(BadAudioError, match="empty file"):
        audio_summary(Waveform(np.zeros(0, dtype=np.float32), SR))
    with pytest.raises(BadMidiError, match="no notes"):
        audio_summary(build_midi([]), synth="builtin")


@pytest.mark.parametrize("max_seconds", [0, -1.0, True, "60"])
def test_bad_max_seconds_is_a_config_error(max_seconds: object) -> None:
    with pytest.raises(ConfigError, match="max_seconds"):
        audio_summary(sine(440.0, 1.0), max_seconds=max_seconds)  # type: ignore[arg-type]


def test_too_few_mel_bands_is_a_config_error_and_a_wrong_type_a_type_error() -> None:
    with pytest.raises(ConfigError, match="n_mels"):
        audio_summary(sine(440.0, 1.0), AudioFeatures(n_mels=4))
    with pytest.raises(TypeError, match="got ndarray"):
        audio_summary(np.zeros(SR, dtype=np.float32))


# --- real songs ---------------------------------------------------------------------------
def test_two_pop909_songs_give_plausible_different_vectors() -> None:
    folder = data_root() / "pop909" / "midi"
    if not folder.is_dir():
        msg = f"POP909 MIDI files not found at {folder}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    rows, skipped = audio_summaries([folder / "001.mid", folder / "002.mid"], max_seconds=30.0)
    assert skipped == [] and rows.shape == (2, D) and np.isfinite(rows).all()
    for v in rows:
        assert 40.0 <= value(v, "tempo_bpm") <= 240.0
        assert -60.0 < value(v, "rms_db_mean") < 0.0
        chroma_means = [value(v, n) for n in SUMMARY_NAMES if n.startswith("chroma_")
                        and n.endswith("_mean")]  # fmt: skip
        # A song uses several pitch classes: none sounds in every frame, none is absent.
        assert len(chroma_means) == 12 and 0.05 < min(chroma_means) <= max(chroma_means) < 0.95
    # Two songs differ clearly, not by rounding: in at least a quarter of the dimensions by 5 %.
    relative = np.abs(rows[0] - rows[1]) / (np.abs(rows).max(axis=0) + 1e-6)
    assert (relative > 0.05).mean() > 0.25, relative
