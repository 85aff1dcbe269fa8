"""io/render.py: MIDI whose sound is known (A4, a C major chord, drums) through both synths,
the length rules, the fallback when FluidSynth is missing, and cadenza-render end to end."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cadenza.errors import BadMidiError, CadenzaError, ConfigError
from cadenza.io import render
from cadenza.io.audio import (
    AudioFeatures,
    Waveform,
    chroma,
    cqt,
    cqt_frequencies,
    load_audio,
    spectral_stats,
)
from cadenza.io.midi import TrackNotes, build_midi, clip_midi, save_midi, tracks_of
from cadenza.io.render import (
    DEFAULT_SAMPLE_RATE,
    SYNTHS,
    find_soundfont,
    fluidsynth_status,
    render_midi,
    render_to_file,
)

SR = 22050
P = AudioFeatures()
PEAK = 10 ** (-1 / 20)


def piece(*notes: tuple[float, float, int, int], program: int = 0, drums: bool = False):
    """(start_s, end_s, pitch, velocity) rows -> a one-track PrettyMIDI."""
    rows = np.array(notes, dtype=np.float64).reshape(-1, 4)
    return build_midi([TrackNotes(program, drums, "", rows)])


def require_fluidsynth() -> None:
    usable, why = fluidsynth_status()
    if usable:
        return
    if os.environ.get("CI") == "true":  # the set-up installs it; a skip here would hide that
        pytest.fail(f"FluidSynth is not usable in CI ({why}); `make setup` should install it")
    pytest.skip(f"FluidSynth is not usable here: {why}")


@pytest.fixture(params=["fluidsynth", "builtin"])
def synth(request: pytest.FixtureRequest) -> str:
    if request.param == "fluidsynth":
        require_fluidsynth()
    return request.param


@pytest.fixture
def no_fluidsynth(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine without the fluidsynth program, and no fallback warning given yet."""
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    monkeypatch.setattr(render, "_warned", False)


def rms(w: Waveform, start_s: float, end_s: float) -> float:
    seg = w.samples[int(start_s * w.sample_rate) : int(end_s * w.sample_rate)]
    return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))


# --- pitch: what the tests of io/audio.py prove for sines, here for rendered notes ------------
def test_a4_renders_at_440_hz_and_chroma_a(synth: str) -> None:
    w = render_midi(piece((0.0, 1.0, 69, 100)), SR, synth=synth)
    spectrum = cqt(w, P).mean(0)
    assert cqt_frequencies(P)[spectrum.argmax()] == pytest.approx(440.0, rel=1e-6)
    ch = chroma(w, P).mean(0)
    assert ch.argmax() == 9  # A
    assert ch[9] > 3 * np.delete(ch, 9).max()


def test_c_major_chord_shows_c_e_g_in_chroma(synth: str) -> None:
    w = render_midi(piece((0, 1.5, 60, 100), (0, 1.5, 64, 100), (0, 1.5, 67, 100)), SR, synth=synth)
    ch = chroma(w, P).mean(0)
    assert set(np.argsort(ch)[-3:].tolist()) == {0, 4, 7}


def test_louder_velocity_is_louder_by_its_square(synth: str) -> None:
    w = render_midi(piece((0.0, 0.8, 60, 40), (1.0, 1.8, 60, 120)), SR, synth=synth)
    # Amplitude ~ velocity^2 in both synths (FluidSynth's default curve): (120/40)^2 = 9.
    assert rms(w, 1.0, 1.5) / rms(w, 0.0, 0.5) == pytest.approx(9.0, rel=0.25)


def test_drums_are_noise_bursts_hats_bright_kicks_dark(synth: str) -> None:
    def centroid(key: int) -> float:
        w = render_midi(piece((0.1, 0.3, key, 100), drums=True), SR, synth=synth)
        st = spectral_stats(w, P)
        return float(np.average(st["centroid"], weights=st["rms"]))

    kick, hat = centroid(36), centroid(42)
    assert hat > 4000 and hat > 3 * kick


# --- the Waveform: length, rate, type, level ----------------------------------------------
@pytest.mark.parametrize("sample_rate", [22050, DEFAULT_SAMPLE_RATE], ids=lambda sr: f"{sr}Hz")
def test_waveform_length_rate_dtype_and_peak(synth: str, sample_rate: int) -> None:
    w = render_midi(piece((0.5, 1.0, 60, 90), (0.75, 1.5, 72, 90)), sample_rate, synth=synth)
    assert w.sample_rate == sample_rate
    assert w.samples.dtype == np.float32 and w.samples.ndim == 1
    assert len(w.samples) == round((1.5 + render.TAIL_S) * sample_rate)  # last end + tail
    assert float(np.abs(w.samples).max()) == pytest.approx(PEAK, rel=1e-5)  # -1 dBFS
    assert float(np.abs(w.samples[: int(0.45 * sample_rate)]).max()) < 1e-3  # before the note
    assert rms(w, 0.55, 1.0) > 0.05
    assert w.samples[-1] == 0.0  # faded out, not cut mid-wave


def test_path_and_prettymidi_render_the_same(synth: str, tmp_path: Path) -> None:
    pm = piece((0.0, 0.5, 64, 80), (0.5, 1.0, 67, 80))
    from_path = render_midi(save_midi(pm, tmp_path / "a.mid"), SR, synth=synth)
    np.testing.assert_allclose(from_path.samples, render_midi(pm, SR, synth=synth).samples,
                               atol=1e-6)  # fmt: skip


def test_max_seconds_cuts_and_keeps_the_start(synth: str) -> None:
    pm = piece(*[(float(t), t + 0.5, 60 + 2 * t, 90) for t in range(4)])
    full = render_midi(pm, SR, synth=synth)
    cut = render_midi(pm, SR, synth=synth, max_seconds=1.6)
    assert len(full.samples) == round((3.5 + render.TAIL_S) * SR)
    assert len(cut.samples) == round(1.6 * SR)
    # The same music up to the cut (each normalised to its own peak, hence the correlation).
    n = int(1.5 * SR)
    assert np.corrcoef(full.samples[:n], cut.samples[:n])[0, 1] > 0.999


def test_clip_midi_drops_later_notes_and_leaves_the_input_alone() -> None:
    pm = piece((0.0, 1.0, 60, 90), (0.8, 2.0, 62, 90), (1.5, 2.5, 64, 90))
    notes = tracks_of(clip_midi(pm, 1.2))[0].notes
    np.testing.assert_allclose(notes[:, :3], [[0.0, 1.0, 60], [0.8, 1.2, 62]], atol=1e-3)
    assert len(tracks_of(pm)[0].notes) == 3 and pm.instruments[0].notes[1].end == 2.0


def test_no_notes_is_bad_midi() -> None:
    for pm in (build_midi([]), build_midi([TrackNotes(0, False, "", np.zeros((0, 4)))])):
        with pytest.raises(BadMidiError) as e:
            render_midi(pm, SR, synth="builtin")
        assert e.value.reason == "no_notes"
    with pytest.raises(BadMidiError, match="none before 1.0 s") as e:
        render_midi(piece((2.0, 3.0, 60, 90)), SR, synth="builtin", max_seconds=1.0)
    assert e.value.reason == "no_notes"


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"synth": "timidity"}, "timidity"),
        ({"sample_rate": 4000}, "8000..96000"),
        ({"sample_rate": 22050.0}, "integer"),
        ({"max_seconds": 0}, "max_seconds"),
    ],
    ids=["unknown-synth", "low-rate", "float-rate", "zero-max-seconds"],
)
def test_bad_arguments_are_config_errors(kwargs: dict, names: str) -> None:
    with pytest.raises(ConfigError, match=names) as e:
        render_midi(piece((0.0, 1.0, 60, 90)), **kwargs)
    if "synth" in kwargs:
        assert str(list(SYNTHS)) in str(e.value)


def test_builtin_renders_a_minute_of_piano_fast() -> None:
    rng = np.random.default_rng(0)
    starts = np.repeat(np.arange(0, 60, 0.25), 4)  # 4-note chords, 4 a second: 960 notes
    rows = [(s, s + rng.uniform(0.2, 2.0), int(p), 80) for s, p in zip(starts,
            rng.integers(36, 96, len(starts)))]  # fmt: skip
    t0 = time.perf_counter()
    w = render_midi(piece(*rows), DEFAULT_SAMPLE_RATE, synth="builtin")
    elapsed = time.perf_counter() - t0
    assert w.seconds > 60
    assert elapsed < 5.0, f"{elapsed:.2f} s for {w.seconds:.0f} s of audio"  # ~0.1 s measured


# --- FluidSynth missing: fall back once, or say how to install ---------------------------
def test_auto_falls_back_to_builtin_with_one_warning(
    no_fluidsynth: None, caplog: pytest.LogCaptureFixture
) -> None:
    pm = piece((0.0, 1.0, 69, 100))
    with caplog.at_level(logging.WARNING, logger="cadenza"):
        first = render_midi(pm, SR, synth="auto")
        second = render_midi(pm, SR, synth="auto")
    warnings = [r for r in caplog.records if r.name == "cadenza" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "fluidsynth" in warnings[0].getMessage() and "make setup" in warnings[0].getMessage()
    builtin = render_midi(pm, SR, synth="builtin")
    assert np.array_equal(first.samples, builtin.samples)
    assert np.array_equal(second.samples, builtin.samples)


def test_fluidsynth_asked_for_but_missing_says_how_to_install(no_fluidsynth: None) -> None:
    with pytest.raises(CadenzaError, match="apt-get install fluidsynth fluid-soundfont-gm"):
        render_midi(piece((0.0, 1.0, 69, 100)), SR, synth="fluidsynth")
    assert fluidsynth_status() == (False, "no `fluidsynth` program on PATH")


def test_no_soundfont_found_is_not_usable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CADENZA_SOUNDFONT", raising=False)
    monkeypatch.setattr(render, "SOUNDFONT_CANDIDATES", (str(tmp_path / "none.sf2"),))
    monkeypatch.setattr(render.shutil, "which", lambda name: "/usr/bin/fluidsynth")
    assert find_soundfont() is None
    usable, why = fluidsynth_status()
    assert not usable and "SoundFont" in why


def fake_soundfont(path: Path) -> Path:
    path.write_bytes(b"RIFF" + (100).to_bytes(4, "little") + b"sfbk" + bytes(100))
    return path


def test_find_soundfont_order_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    explicit, env = fake_soundfont(tmp_path / "a.sf2"), fake_soundfont(tmp_path / "b.sf2")
    found = fake_soundfont(tmp_path / "c.sf2")
    monkeypatch.setattr(render, "SOUNDFONT_CANDIDATES", (str(tmp_path / "x.sf2"), str(found)))
    monkeypatch.delenv("CADENZA_SOUNDFONT", raising=False)
    assert find_soundfont() == found
    monkeypatch.setenv("CADENZA_SOUNDFONT", str(env))
    assert find_soundfont() == env
    assert find_soundfont(explicit) == explicit
    with pytest.raises(CadenzaError, match="missing.sf2: no such file"):
        find_soundfont(tmp_path / "missing.sf2")
    (tmp_path / "junk.sf2").write_bytes(b"not a soundfont at all")
    with pytest.raises(CadenzaError, match="junk.sf2: not a SoundFont"):
        find_soundfont(tmp_path / "junk.sf2")
    monkeypatch.setenv("CADENZA_SOUNDFONT", str(tmp_path / "gone.sf2"))
    with pytest.raises(CadenzaError, match=r"\$CADENZA_SOUNDFONT .*gone.sf2"):
        find_soundfont()


def test_failing_fluidsynth_reports_its_last_stderr_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    exe = tmp_path / "fluidsynth"
    exe.write_text("#!/bin/sh\necho 'loading' >&2\necho 'fluidsynth: error: out of voices' >&2\n"
                   "exit 3\n")  # fmt: skip
    exe.chmod(0o755)
    monkeypatch.setattr(render.shutil, "which", lambda name: str(exe))
    monkeypatch.setenv("CADENZA_SOUNDFONT", str(fake_soundfont(tmp_path / "gm.sf2")))
    with pytest.raises(CadenzaError, match="fluidsynth failed on gm.sf2: .*out of voices$"):
        render_midi(piece((0.0, 1.0, 60, 90)), SR, synth="fluidsynth")


FAKE_FLUIDSYNTH = """#!{python}
import struct, sys, time
args = sys.argv
out, rate = args[args.index("-F") + 1], int(args[args.index("-r") + 1])
with open(out, "wb") as f:
    if {writes}:  # a float WAV whose sizes are not filled in yet, as while rendering
        f.write(b"RIFF" + bytes(4) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
                + struct.pack("<HHIIHH", 3, 2, rate, rate * 8, 8, 32) + b"data" + bytes(4))
        f.write(struct.pack("<f", 0.25) * (2 * rate * 5))
        f.flush()
    time.sleep(120)  # and then never exits, as FluidSynth 2.3.1 does on a voice that never ends
"""


def _fake_fluidsynth(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, writes: bool) -> None:
    exe = tmp_path / "fluidsynth"
    exe.write_text(FAKE_FLUIDSYNTH.format(python=sys.executable, writes=writes))
    exe.chmod(0o755)
    monkeypatch.setattr(render.shutil, "which", lambda name: str(exe))
    monkeypatch.setenv("CADENZA_SOUNDFONT", str(fake_soundfont(tmp_path / "gm.sf2")))
    monkeypatch.setattr(render, "FLUIDSYNTH_TIMEOUT_S", 1.0)


def test_a_render_that_never_ends_is_stopped_once_the_music_is_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_fluidsynth(monkeypatch, tmp_path, writes=True)
    started = time.monotonic()
    wave = render_midi(piece((0.0, 1.0, 60, 90)), SR, synth="fluidsynth")
    assert time.monotonic() - started < 3.0  # not the time limit, nor the fake's 120 s
    assert len(wave.samples) == round((1.0 + render.TAIL_S) * SR)
    assert float(np.abs(wave.samples[: SR // 2]).min()) > 0.5  # its constant 0.25, at -1 dBFS


def test_a_stalled_fluidsynth_falls_back_to_the_built_in_synth_unless_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _fake_fluidsynth(monkeypatch, tmp_path, writes=False)
    with pytest.raises(CadenzaError, match="fluidsynth took over 5 s; giving up"):
        render_midi(piece((0.0, 1.0, 60, 90)), SR, synth="fluidsynth")
    with caplog.at_level(logging.WARNING):
        wave = render_midi(piece((0.0, 1.0, 69, 100)), SR, synth="auto")
    assert len(wave.samples) == round((1.0 + render.TAIL_S) * SR) and wave.samples.any()
    assert "with the built-in synthesizer instead" in caplog.text


# --- files and the command line --------------------------------------------------------
def test_render_to_file_writes_what_it_rendered(tmp_path: Path) -> None:
    pm = piece((0.0, 1.0, 69, 100))
    out = render_to_file(pm, tmp_path / "sub" / "a4.flac", sample_rate=SR, synth="builtin")
    back = load_audio(out)
    assert out == tmp_path / "sub" / "a4.flac"
    assert back.sample_rate == SR and len(back.samples) == round((1.0 + render.TAIL_S) * SR)
    with pytest.raises(CadenzaError, match=r"\.wav, \.flac or \.ogg"):
        render_to_file(pm, tmp_path / "a4.mp3", synth="builtin")


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "cadenza.cli.render", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_cli_renders_a_readable_wav(synth: str, tmp_path: Path) -> None:
    mid = save_midi(piece((0.0, 0.5, 60, 90), (0.5, 1.25, 64, 90)), tmp_path / "in.mid")
    out = tmp_path / "out.wav"
    done = cli(mid, out, "--sample-rate", SR, "--synth", synth)
    assert done.returncode == 0, done.stderr
    back = load_audio(out)
    assert back.sample_rate == SR
    assert len(back.samples) == round((1.25 + render.TAIL_S) * SR)
    assert float(np.abs(back.samples).max()) == pytest.approx(PEAK, abs=1e-3)  # 16-bit file
    assert str(out) in done.stdout and f"{back.seconds:.2f} s" in done.stdout
    assert f"synth {synth}" in done.stdout


def test_cli_max_seconds(tmp_path: Path) -> None:
    mid = save_midi(piece((0.0, 3.0, 60, 90)), tmp_path / "in.mid")
    done = cli(mid, tmp_path / "out.flac", "--synth", "builtin", "--max-seconds", "1.5")
    assert done.returncode == 0, done.stderr
    assert load_audio(tmp_path / "out.flac").seconds == pytest.approx(1.5, abs=1e-4)


@pytest.mark.parametrize(
    "content",
    [os.urandom(512), b"MThd" + os.urandom(60)],
    ids=["random-bytes", "midi-header-then-garbage"],
)
def test_cli_corrupt_midi_exits_2_without_traceback(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "bad.mid").write_bytes(content)
    done = cli(tmp_path / "bad.mid", tmp_path / "out.wav")
    assert done.returncode == 2
    assert done.stderr.startswith("cadenza: error:") and "bad.mid" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.wav").exists()


def test_cli_missing_input_exits_2(tmp_path: Path) -> None:
    done = cli(tmp_path / "nope.mid", tmp_path / "out.wav", "--synth", "builtin")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"cadenza: error: {tmp_path / 'nope.mid'}: no such MIDI file; check the path"
    ]
