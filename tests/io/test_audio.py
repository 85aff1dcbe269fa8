"""io/audio.py on sounds whose answer is known: sines, chords, and broken files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from cadenza.errors import BadAudioError, CadenzaError, ConfigError
from cadenza.io.audio import (
    AudioFeatures,
    Waveform,
    beats,
    chroma,
    cqt,
    cqt_frequencies,
    load_audio,
    log_mel,
    mel_to_audio,
    mfcc,
    onset_strength,
    save_audio,
    spectral_stats,
)
from tests.fixtures.data import real_midi

SR = 22050
P = AudioFeatures()


def tone(*hz: float, seconds: float = 2.0, sr: int = SR, amp: float = 0.3) -> Waveform:
    t = np.arange(int(seconds * sr)) / sr
    y = sum(amp * np.sin(2 * np.pi * f * t) for f in hz)
    return Waveform(np.asarray(y, dtype=np.float32), sr)


def clicks(bpm: float, seconds: float = 8.0, sr: int = SR) -> Waveform:
    """A short decaying noise burst on every beat."""
    y = np.zeros(int(seconds * sr), dtype=np.float32)
    burst = np.random.default_rng(0).normal(0, 0.5, 400) * np.exp(-np.arange(400) / 60)
    for start in (np.arange(0, seconds, 60 / bpm) * sr).astype(int):
        seg = y[start : start + 400]
        seg += burst[: len(seg)].astype(np.float32)
    return Waveform(y, sr)


def test_a4_sine_peaks_at_440_hz_in_cqt_and_at_a_in_chroma() -> None:
    w = tone(440.0)
    C = cqt(w, P)
    assert C.shape == (1 + len(w.samples) // P.hop_length, 84) and C.dtype == np.float32
    peak = cqt_frequencies(P)[C.mean(0).argmax()]
    assert peak == pytest.approx(440.0, rel=1e-6)
    ch = chroma(w, P).mean(0)
    assert ch.argmax() == 9  # A
    assert ch[9] > 5 * np.delete(ch, 9).max()


def test_c_major_chord_shows_c_e_g_in_chroma() -> None:
    # C4 E4 G4 in equal temperament
    ch = chroma(tone(261.6256, 329.6276, 391.9954), P).mean(0)
    assert set(np.argsort(ch)[-3:].tolist()) == {0, 4, 7}


def test_log_mel_shapes_dtypes_and_floor() -> None:
    w = tone(440.0, seconds=1.0)
    M = log_mel(w, P)
    assert M.shape == (1 + SR // P.hop_length, P.n_mels) and M.dtype == np.float32
    assert M.max() == pytest.approx(0.0) and M.min() >= -P.top_db
    # 440 Hz lands in the band whose centre is nearest 440 Hz
    p64 = AudioFeatures(n_mels=64)
    assert log_mel(w, p64).shape == (M.shape[0], 64)


def test_features_resample_to_the_analysis_rate() -> None:
    w = tone(440.0, seconds=1.0, sr=44100)
    assert log_mel(w, P).shape[0] == 1 + SR // P.hop_length
    assert cqt_frequencies(P)[cqt(w, P).mean(0).argmax()] == pytest.approx(440.0)


def test_onsets_and_tempo_of_a_click_track() -> None:
    w = clicks(120.0)
    env = onset_strength(w, P)
    assert env.shape == (1 + len(w.samples) // P.hop_length,)
    bpm, times = beats(w, P)
    assert bpm == pytest.approx(120.0, rel=0.05)
    assert np.median(np.diff(times)) == pytest.approx(0.5, abs=0.03)


def test_mfcc_and_spectral_stats() -> None:
    w = tone(440.0)
    assert mfcc(w, P).shape == (log_mel(w, P).shape[0], P.n_mfcc)
    s = spectral_stats(w, P)
    assert set(s) == {"centroid", "bandwidth", "rolloff", "flatness", "rms", "zcr"}
    assert np.median(s["centroid"]) == pytest.approx(440.0, rel=0.05)
    noise = Waveform(np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32), SR)
    assert np.median(spectral_stats(noise, P)["flatness"]) > 50 * np.median(s["flatness"])


def test_griffin_lim_inverts_a_mel_spectrogram() -> None:
    w = tone(261.6256, 329.6276, 391.9954, seconds=1.5)
    M = log_mel(w, P)
    back = mel_to_audio(M, P)
    assert back.sample_rate == SR and abs(len(back.samples) - len(w.samples)) <= P.hop_length
    assert np.abs(back.samples).max() == pytest.approx(10 ** (-1 / 20), rel=1e-3)
    M2 = log_mel(back, P)
    n = min(len(M), len(M2))
    loud = M[:n] > -40  # the bins that carry the chord
    # Mel pseudo-inverse + 64 Griffin-Lim iterations: measured 4.4 dB on this chord.
    assert np.abs(M[:n][loud] - M2[:n][loud]).mean() < 6.0  # dB
    # 80 mel bands are ~60 Hz wide here, coarser than these semitones: what survives the
    # inversion is the band profile: the same three loudest bands, the same overall shape.
    assert set(np.argsort(M.mean(0))[-3:]) == set(np.argsort(M2.mean(0))[-3:])
    assert np.corrcoef(M.mean(0), M2.mean(0))[0, 1] > 0.85  # measured 0.90


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_formats_round_trip_with_resampling(tmp_path: Path, suffix: str) -> None:
    import soundfile  # the test writes MP3 directly: save_audio keeps to lossless + OGG

    w = tone(440.0, seconds=1.0, sr=44100)
    path = tmp_path / f"a{suffix}"
    if suffix == ".mp3":
        soundfile.write(str(path), w.samples, w.sample_rate, format="MP3")
    else:
        save_audio(w, path)
    back = load_audio(path, sample_rate=SR)
    assert back.sample_rate == SR and back.samples.dtype == np.float32
    assert back.seconds == pytest.approx(1.0, abs=0.06)  # MP3 pads a frame or so
    assert cqt_frequencies(P)[cqt(back, P).mean(0).argmax()] == pytest.approx(440.0)


def test_stereo_is_mixed_to_mono_and_max_seconds_cuts(tmp_path: Path) -> None:
    import soundfile

    left, right = tone(440.0, seconds=3.0).samples, tone(660.0, seconds=3.0).samples
    soundfile.write(str(tmp_path / "s.wav"), np.stack([left, right], 1), SR)
    w = load_audio(tmp_path / "s.wav", max_seconds=1.0)
    assert w.samples.ndim == 1 and w.seconds == pytest.approx(1.0)
    assert np.allclose(w.samples, (left[:SR] + right[:SR]) / 2, atol=1e-4)


def test_save_scales_down_instead_of_clipping(tmp_path: Path) -> None:
    loud = Waveform(tone(440.0, seconds=0.5).samples * 10, SR)
    back = load_audio(save_audio(loud, tmp_path / "loud.wav"))
    assert np.abs(back.samples).max() == pytest.approx(1.0, abs=1e-3)


def broken_files(folder: Path) -> dict[str, str]:
    """name -> the reason load_audio must give."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_text("this is not audio\n" * 50)
    (folder / "noise.flac").write_bytes(b"fLaC" + os.urandom(4000))
    save_audio(Waveform(np.zeros(SR, dtype=np.float32), SR), folder / "silent.wav")
    good = save_audio(tone(440.0, seconds=2.0), folder / "cut.flac").read_bytes()
    (folder / "cut.flac").write_bytes(good[: len(good) // 3])
    return {
        "empty.wav": "empty_file",
        "text.wav": "not_audio",
        "noise.flac": "corrupt",
        "silent.wav": "silent",
        "cut.flac": "truncated",
    }


def test_broken_files_raise_their_reason(tmp_path: Path) -> None:
    expected = broken_files(tmp_path)
    for name, reason in expected.items():
        with pytest.raises(BadAudioError) as err:
            load_audio(tmp_path / name)
        assert err.value.reason == reason, (name, str(err.value))
        assert name in str(err.value)
    with pytest.raises(BadAudioError, match="too short"):
        load_audio(save_audio(tone(440.0, seconds=0.2), tmp_path / "short.wav"), min_seconds=1)
    with pytest.raises(CadenzaError, match="no such audio file"):
        load_audio(tmp_path / "missing.wav")


@pytest.fixture(scope="module")
def rendered_tune(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real Nottingham tune rendered (6 s, built-in synthesizer) to WAV, FLAC, Ogg Vorbis and
    AIFF (16-bit, as a DAW bounces it)."""
    import soundfile

    from cadenza.io.render import render_to_file

    folder = tmp_path_factory.mktemp("rendered")
    midi = real_midi("nottingham/MIDI/ashover1.mid")
    files = {suffix: render_to_file(midi, folder / f"ashover1.{suffix}", synth="builtin",
                                    sample_rate=SR, max_seconds=6.0)
             for suffix in ("wav", "flac", "ogg")}  # fmt: skip
    files["aiff"] = folder / "ashover1.aiff"
    soundfile.write(files["aiff"], load_audio(files["wav"]).samples, SR, subtype="PCM_16")
    return files


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "aiff"])
def test_a_file_cut_to_a_third_is_truncated_not_a_shorter_piece(
    rendered_tune: dict[str, Path], tmp_path: Path, suffix: str
) -> None:
    whole = rendered_tune[suffix]
    assert load_audio(whole).seconds == pytest.approx(6.0, abs=0.01)
    data = whole.read_bytes()
    cut = tmp_path / whole.name
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(BadAudioError) as err:
        load_audio(cut)
    assert err.value.reason == "truncated", str(err.value)
    if suffix in ("wav", "aiff"):  # the header's length against the bytes present
        assert "header says 6.00 s, file holds 2.00 s" in str(err.value)


def test_an_ogg_cut_between_its_pages_is_truncated(
    rendered_tune: dict[str, Path], tmp_path: Path
) -> None:
    """Cut exactly where its last page starts: every page left is whole, and libsndfile reads
    them as a shorter piece; no page closes the stream."""
    data = rendered_tune["ogg"].read_bytes()
    (tmp_path / "cut.ogg").write_bytes(data[: data.rfind(b"OggS")])
    with pytest.raises(BadAudioError) as err:
        load_audio(tmp_path / "cut.ogg")
    assert err.value.reason == "truncated", str(err.value)
    assert re.search(r"the Ogg stream stops after [0-5]\.\d\d s before its end", str(err.value))


def test_damage_inside_a_flac_is_corrupt_not_truncated(
    rendered_tune: dict[str, Path], tmp_path: Path
) -> None:
    """Zeroed bytes in the middle: the stream's last frame is still there, whole and on time."""
    data = bytearray(rendered_tune["flac"].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(2000)
    (tmp_path / "damaged.flac").write_bytes(data)
    with pytest.raises(BadAudioError) as err:
        load_audio(tmp_path / "damaged.flac")
    assert err.value.reason == "corrupt", str(err.value)


def test_a_text_file_named_mp3_is_not_audio_and_says_so_quietly(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.mp3").write_text("this is not audio\n" * 50)
    with pytest.raises(BadAudioError) as err:
        load_audio(tmp_path / "notes.mp3")
    assert err.value.reason == "not_audio"
    assert "pipe" not in str(err.value) and "b'this is '" in str(err.value)
    out, errors = capfd.readouterr()  # mpg123 writes to the process's own stderr
    assert "MPEG" not in errors and "resync" not in errors, errors


def test_bad_feature_parameters_name_the_key() -> None:
    with pytest.raises(ConfigError, match="features.n_mels"):
        AudioFeatures(n_mels=0)
    with pytest.raises(ConfigError, match="features.fmax"):
        AudioFeatures(fmax=20000.0)  # above Nyquist at 22.05 kHz
    with pytest.raises(ConfigError, match="cqt_octaves"):
        AudioFeatures(sample_rate=8000)
    with pytest.raises(ConfigError, match="unknown features key"):
        AudioFeatures.from_dict({"n_mel": 80})
    assert AudioFeatures.from_dict(AudioFeatures(n_mels=40).to_dict()).n_mels == 40
