"""MIDI -> audio: FluidSynth with a General MIDI SoundFont, or the built-in synthesizer.

FluidSynth (the `fluidsynth` program, run as a subprocess) with a GM SoundFont sounds like the
instruments the file names; `make setup` installs both on Debian/Ubuntu. Where either is
missing, "auto" says so once and renders with the built-in additive synthesizer (io/synth.py),
so that rendering, and everything built on it, still works on a bare machine.
"""

from __future__ import annotations

import logging
import numbers
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.errors import BadAudioError, BadMidiError, CadenzaError, ConfigError
from cadenza.io.audio import Waveform, load_audio, save_audio
from cadenza.io.midi import as_pretty_midi, clip_midi, load_midi, save_midi, tracks_of
from cadenza.io.synth import synthesize

SYNTHS = ("auto", "fluidsynth", "builtin")
DEFAULT_SAMPLE_RATE = 44100
# Where distributions put a GM SoundFont: Debian/Ubuntu (fluid-soundfont-gm, timgm6mb-soundfont),
# Fedora/Arch, Homebrew.
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)
INSTALL_HINT = (
    "run `make setup`, or `sudo apt-get install fluidsynth fluid-soundfont-gm` "
    "(or point $CADENZA_SOUNDFONT at a General MIDI .sf2 file)"
)
# After the last note-off: the release and some of the reverb, then a cut (with a short fade).
TAIL_S = 1.0
FADE_S = 0.02
PEAK = 10 ** (-1 / 20)  # -1 dBFS: headroom for lossy encoders and resampling overshoot
# 0.6 keeps a dense piano score well under full scale (POP909 peaks near 0.55); the float file
# format means louder scores still do not clip before we normalise.
FLUIDSYNTH_GAIN = 0.6
# Seconds a render may take beyond twice the music's length before it counts as stalled.
FLUIDSYNTH_TIMEOUT_S = 60.0

log = logging.getLogger("cadenza")
_warned = False  # the fallback warning is given once per process, not once per file

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "SYNTHS",
    "find_soundfont",
    "fluidsynth_status",
    "render_midi",
    "render_to_file",
]


def find_soundfont(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The SoundFont to use: `explicit`, else $CADENZA_SOUNDFONT, else the first GM SoundFont
    found where distributions install one; None if there is none. A path the user named that
    does not exist or is not a SoundFont raises CadenzaError (a typo should not quietly change
    the sound)."""
    named = ((explicit, "soundfont"), (os.environ.get("CADENZA_SOUNDFONT"), "$CADENZA_SOUNDFONT"))
    for given, what in named:
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise CadenzaError(f"{what} {path}: no such file; give the path of a .sf2 file")
            # FluidSynth skips a file it cannot read and plays its own default SoundFont instead,
            # exiting 0: the wrong sound, silently, unless we look first.
            if not _is_soundfont(path):
                raise CadenzaError(f"{what} {path}: not a SoundFont (.sf2/.sf3) file")
            return path
    return next((Path(p) for p in SOUNDFONT_CANDIDATES if Path(p).is_file()), None)


def _is_soundfont(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(12)
    return head[:4] == b"RIFF" and head[8:12] == b"sfbk"


def fluidsynth_status(
    soundfont: str | os.PathLike[str] | None = None,
) -> tuple[bool, str]:
    """(True, the SoundFont's path) when FluidSynth can render, else (False, what is missing)."""
    sf2 = find_soundfont(soundfont)
    if shutil.which("fluidsynth") is None:
        return False, "no `fluidsynth` program on PATH"
    if sf2 is None:
        return False, "no General MIDI SoundFont (looked in /usr/share/sounds/sf2 and the like)"
    return True, str(sf2)


def render_midi(
    midi: Any,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    *,
    synth: str = "auto",
    soundfont: str | os.PathLike[str] | None = None,
    max_seconds: float | None = None,
) -> Waveform:
    """A PrettyMIDI (or a .mid path) -> mono float32 Waveform at `sample_rate`, peak -1 dBFS.

    Length: the last note's end plus TAIL_S, cut at `max_seconds` (nothing after it is
    rendered). Raises BadMidiError (a bad file; no_notes also when no note starts before
    `max_seconds`), ConfigError (a bad argument), CadenzaError (FluidSynth asked for but
    missing, or failing).
    """
    if synth not in SYNTHS:
        raise ConfigError(f"synth must be one of {list(SYNTHS)}, got {synth!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise ConfigError(f"sample_rate must be an integer number of Hz, got {sample_rate!r}")
    if not 8000 <= sample_rate <= 96000:  # FluidSynth's own range
        raise ConfigError(f"sample_rate must lie in 8000..96000 Hz, got {sample_rate}")
    if max_seconds is not None and (
        isinstance(max_seconds, bool)
        or not isinstance(max_seconds, numbers.Real)
        or not max_seconds > 0
    ):
        raise ConfigError(f"max_seconds must be a positive number of seconds, got {max_seconds!r}")
    name = str(midi) if isinstance(midi, str | os.PathLike) else "<PrettyMIDI>"
    pm = load_midi(midi) if isinstance(midi, str | os.PathLike) else as_pretty_midi(midi)
    if not hasattr(pm, "instruments"):
        raise TypeError(f"render_midi takes a PrettyMIDI or a path, got {type(midi).__name__}")
    if max_seconds is not None:
        pm = clip_midi(pm, float(max_seconds))
    tracks = tracks_of(pm)
    ends = [float(tr.notes[:, 1].max()) for tr in tracks if len(tr.notes)]
    if not ends:
        raise BadMidiError(name, "no_notes", f"none before {max_seconds} s" if max_seconds else "")
    seconds = max(ends) + TAIL_S
    if max_seconds is not None:
        seconds = min(seconds, float(max_seconds))
    n = int(round(seconds * sample_rate))

    samples = None
    if _use_fluidsynth(synth, soundfont):
        try:
            samples = _fluidsynth(pm, int(sample_rate), soundfont, seconds)
        except FluidSynthHungError as e:
            if synth == "fluidsynth":
                raise
            log.warning("%s: rendering %s with the built-in synthesizer instead", e, name)
    if samples is None:
        samples = synthesize(tracks, int(sample_rate), n)
    return Waveform(_finish(samples, n, int(sample_rate)), int(sample_rate))


def render_to_file(midi: Any, out_path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """render_midi, then save as .wav / .flac / .ogg (by suffix, atomically). Returns the path."""
    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".wav", ".flac", ".ogg"):  # before, not after, the work
        raise CadenzaError(f"{out_path}: write audio as .wav, .flac or .ogg")
    return save_audio(render_midi(midi, **kwargs), out_path)


def _use_fluidsynth(synth: str, soundfont: str | os.PathLike[str] | None) -> bool:
    if synth == "builtin":
        return False
    global _warned
    usable, why = fluidsynth_status(soundfont)
    if synth == "fluidsynth" and not usable:
        raise CadenzaError(f"cannot render with FluidSynth: {why}; {INSTALL_HINT}")
    if not usable and not _warned:
        _warned = True
        log.warning(
            "FluidSynth is not usable (%s), so MIDI is rendered with the plainer built-in "
            "synthesizer; for General MIDI instruments %s",
            why,
            INSTALL_HINT,
        )
    return usable


def _fluidsynth(
    pm: Any, sample_rate: int, soundfont: str | os.PathLike[str] | None, seconds: float
) -> np.ndarray:
    exe, sf2 = shutil.which("fluidsynth"), find_soundfont(soundfont)
    assert exe is not None and sf2 is not None  # _use_fluidsynth checked both
    with tempfile.TemporaryDirectory(prefix="cadenza-render-") as tmp:
        mid, wav = save_midi(pm, Path(tmp) / "in.mid"), Path(tmp) / "out.wav"
        # -ni: no shell, no MIDI input; -F: render as fast as possible into a file. 32-bit float
        # samples, so a loud passage is never clipped before normalisation.
        cmd = [exe, "-ni", "-q", "-g", str(FLUIDSYNTH_GAIN), "-r", str(sample_rate),
               "-O", "float", "-T", "wav", "-F", str(wav), str(sf2), str(mid)]  # fmt: skip
        frames = int(seconds * sample_rate)
        # 40-170x real time measured (BENCHMARKS.md); the limit catches a stalled process.
        timeout = FLUIDSYNTH_TIMEOUT_S + 2 * seconds
        early = _run_until_written(cmd, wav, frames, timeout, sf2.name)
        if early is not None:
            return early
        try:
            return load_audio(wav, sample_rate, max_seconds=seconds).samples
        except BadAudioError as e:
            if e.reason == "silent":  # e.g. only keys the SoundFont has no sample for
                return np.zeros(0, dtype=np.float32)
            raise CadenzaError(f"fluidsynth wrote an unreadable file: {e}") from e


class FluidSynthHungError(CadenzaError):
    """fluidsynth ran past its time limit without writing the audio asked for."""


def _run_until_written(
    cmd: list[str], wav: Path, frames: int, timeout: float, soundfont_name: str
) -> np.ndarray | None:
    """Run fluidsynth until it exits (None: read `wav` as usual) or until `wav` holds the
    `frames` asked for (-> them, mono; the process is stopped). FluidSynth 2.3.1 and later
    render until no voice sounds, and a voice that never falls silent keeps a render going for
    ever (FluidSynth issue #1257); the audio we keep ends at `frames` anyway."""
    enough = 4096 + frames * 2 * 4  # header (at most) + stereo float32 frames
    started = time.monotonic()
    log_path = wav.with_name("stderr.txt")  # a file, not a pipe: a full pipe would stall it
    with (
        log_path.open("w") as log_file,
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file) as proc,
    ):
        while proc.poll() is None:
            if wav.is_file() and wav.stat().st_size >= enough:
                proc.kill()
                proc.wait()
                return _float_wav_frames(wav.read_bytes(), frames)
            if time.monotonic() - started > timeout:
                proc.kill()
                proc.wait()
                raise FluidSynthHungError(f"fluidsynth took over {timeout:.0f} s; giving up")
            time.sleep(0.02)
        if proc.returncode != 0 or not wav.is_file():
            lines = log_path.read_text(errors="replace").strip().splitlines()
            last = lines[-1] if lines else f"exit status {proc.returncode}"
            raise CadenzaError(f"fluidsynth failed on {soundfont_name}: {last}")
    return None


def _float_wav_frames(data: bytes, frames: int) -> np.ndarray:
    """The first `frames` of a float32 WAV that is still being written (its sizes are not
    filled in yet), mixed to mono."""
    channels, pos = 2, 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"fmt ":
            channels = int.from_bytes(data[pos + 10 : pos + 12], "little")
        elif chunk == b"data":
            raw = data[pos + 8 : pos + 8 + frames * channels * 4]
            usable = len(raw) // (4 * channels) * 4 * channels
            return np.frombuffer(raw[:usable], "<f4").reshape(-1, channels).mean(axis=1)
        pos += 8 + size + (size & 1)
    raise CadenzaError("fluidsynth wrote a WAV file without audio data")


def _finish(samples: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """Exactly n samples, faded out over the last FADE_S (a cut must not click), peak -1 dBFS."""
    out = np.zeros(n, dtype=np.float32)
    m = min(n, len(samples))
    out[:m] = samples[:m]
    fade = min(int(FADE_S * sample_rate), n)
    out[n - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    peak = float(np.abs(out).max()) if n else 0.0
    return out * np.float32(PEAK / peak) if peak > 0 else out
