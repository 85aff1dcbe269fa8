"""Any track -> one fixed-size vector of audio statistics, the content input of the track embedder.

The recommender must embed a catalog song, a user's upload and a freshly generated MIDI the same
way, so everything goes through audio: MIDI is rendered (io.render), audio files are read
(io.audio), and the same features are taken from the first `max_seconds` of each. Frame-level
features [T, F] become time statistics [F], so the vector's size does not depend on the length.

Blocks of the summary, in order (`SUMMARY_NAMES` names every dimension):

- timbre: MFCC 0..19 time mean, std, and std of the frame-to-frame change (`mfccNN_mean`,
  `_std`, `_delta_std`): the spectral envelope (which instruments, how bright), how much it
  varies over the piece, and how fast it moves (sustained pads vs busy plucked parts);
- harmony: chroma mean and std per pitch class (`chroma_C_mean` ... `chroma_B_std`): which
  pitch classes sound, hence key and mode, and how much the harmony moves;
- spectral shape: the log-mel spectrum pooled into 8 bands of equal mel width, time mean and std
  in dB below the clip's loudest bin (`melband0_db_mean` = lowest): a coarse, level-independent
  equaliser curve (bass-heavy vs thin), which the low MFCCs only hint at;
- spectral stats and level: centroid, bandwidth, 85 % rolloff (kHz), flatness (0 = tonal,
  1 = noise), RMS level (dBFS) and zero-crossing rate, time mean and std: brightness,
  noisiness (drums, distortion) and loudness / dynamics;
- rhythm: onset strength mean, std and 95th percentile (how percussive and how dense the
  attacks are), tempo in BPM and the coefficient of variation of the beat intervals (a steady
  pulse vs rubato).

Units differ between blocks (dB, kHz, BPM), so the embedder should standardise each dimension
over its catalog before mixing them. Everything is deterministic and finite for any audio that
is not silent; silent or unreadable input raises a BadFileError (`audio_summaries` lists it).
"""

from __future__ import annotations

import logging
import numbers
import os
import warnings
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.errors import BadAudioError, BadFileError, CadenzaError, ConfigError
from cadenza.io.audio import (
    SILENCE_PEAK,
    AudioFeatures,
    Waveform,
    beats,
    chroma,
    load_audio,
    log_mel,
    mfcc,
    onset_strength,
    spectral_stats,
)
from cadenza.io.render import render_midi

__all__ = ["MIDI_SUFFIXES", "SUMMARY_NAMES", "audio_summaries", "audio_summary"]

MIDI_SUFFIXES = (".mid", ".midi")
# Fixed here, not taken from `features`: the embedder's input size must not change when someone
# analyses with a different n_mfcc / n_mels.
N_MFCC = 20
N_BANDS = 8
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SPECTRAL = ("centroid_khz", "bandwidth_khz", "rolloff_khz", "flatness", "rms_db", "zcr")
RMS_FLOOR_DB = -100.0  # log of digital silence in a fade-out: a floor, not -inf

log = logging.getLogger("cadenza")


def _summary_names() -> tuple[str, ...]:
    names: list[str] = []
    for stat in ("mean", "std", "delta_std"):
        names += [f"mfcc{k:02d}_{stat}" for k in range(N_MFCC)]
    for stat in ("mean", "std"):
        names += [f"chroma_{pc}_{stat}" for pc in PITCH_CLASSES]
    for stat in ("mean", "std"):
        names += [f"melband{b}_db_{stat}" for b in range(N_BANDS)]
    for name in SPECTRAL:
        names += [f"{name}_mean", f"{name}_std"]
    names += ["onset_mean", "onset_std", "onset_p95", "tempo_bpm", "beat_interval_cv"]
    return tuple(names)


SUMMARY_NAMES: tuple[str, ...] = _summary_names()


def audio_summary(
    track: Any,
    features: AudioFeatures | None = None,
    *,
    max_seconds: float | None = 60.0,
    synth: str = "auto",
    soundfont: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """A track -> float32 [len(SUMMARY_NAMES)] (see the module docstring for the blocks).

    `track`: a .mid/.midi path or a PrettyMIDI (rendered with `synth` / `soundfont` at
    `features.sample_rate`), any other path (read as audio), or a Waveform. Only the first
    `max_seconds` are analysed (None: all of it). Raises BadMidiError / BadAudioError for an
    unusable file or silent audio, ConfigError for bad arguments.
    """
    p = AudioFeatures() if features is None else features
    if p.n_mels < N_BANDS:
        raise ConfigError(f"features.n_mels must be at least {N_BANDS} for the audio summary")
    wave = _waveform(track, p, _checked_seconds(max_seconds), synth, soundfont)

    with warnings.catch_warnings():
        # A clip shorter than one FFT frame still has (zero-padded, centred) frames, and its
        # statistics are what the caller asked for; librosa's warning would only repeat it.
        warnings.filterwarnings("ignore", message="n_fft=.*is too large for input signal")
        return _summary(wave, p)


def _summary(wave: Waveform, p: AudioFeatures) -> np.ndarray:
    mel_db = log_mel(wave, p)  # [T, n_mels]
    bands = np.stack([b.mean(axis=1) for b in np.array_split(mel_db, N_BANDS, axis=1)], axis=1)
    cepstra = mfcc(wave, replace(p, n_mfcc=N_MFCC))  # [T, 20]
    stats = spectral_stats(wave, p)
    rms_db = 20 * np.log10(np.maximum(stats["rms"].astype(np.float64), 10 ** (RMS_FLOOR_DB / 20)))
    spectral = np.stack([stats["centroid"] / 1000, stats["bandwidth"] / 1000,
                         stats["rolloff"] / 1000, stats["flatness"], rms_db, stats["zcr"]],
                        axis=1)  # fmt: skip
    onsets = onset_strength(wave, p).astype(np.float64)
    tempo, beat_times = beats(wave, p)

    parts = [
        *_mean_std(cepstra),
        _delta_std(cepstra),
        *_mean_std(chroma(wave, p)),
        *_mean_std(bands),
        np.stack(_mean_std(spectral), axis=1).reshape(-1),  # name_mean, name_std pairs
        [onsets.mean(), onsets.std(), np.percentile(onsets, 95)],
        [tempo, _interval_cv(beat_times)],
    ]
    out = np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1) for x in parts])
    assert out.shape == (len(SUMMARY_NAMES),), out.shape
    return out.astype(np.float32)


def audio_summaries(tracks: Iterable[Any], **kwargs: Any) -> tuple[np.ndarray, list[dict]]:
    """audio_summary for each track -> (float32 [N_ok, D] in input order, skipped).

    A file that cannot be used is skipped, not fatal, so one bad file never ends a batch:
    `skipped` holds {"track", "index", "reason", "detail"} for each (reason from the
    BadMidiError / BadAudioError, or "missing" for a path that does not exist). Errors that
    concern every track (a bad argument, FluidSynth asked for but missing) still raise.
    """
    rows: list[np.ndarray] = []
    skipped: list[dict] = []
    for i, track in enumerate(tracks):
        try:
            if isinstance(track, str | os.PathLike) and not Path(track).exists():
                skipped.append({"track": str(track), "index": i, "reason": "missing",
                                "detail": "no such file"})  # fmt: skip
                continue
            rows.append(audio_summary(track, **kwargs))
        except BadFileError as e:
            skipped.append({"track": _label(track), "index": i, "reason": e.reason,
                            "detail": e.detail})  # fmt: skip
    if skipped:
        reasons: dict[str, int] = {}
        for s in skipped:
            reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
        log.warning("audio summaries: skipped %d of %d tracks %s", len(skipped),
                    len(rows) + len(skipped), reasons)  # fmt: skip
    matrix = np.stack(rows) if rows else np.zeros((0, len(SUMMARY_NAMES)), dtype=np.float32)
    return matrix, skipped


# --- input -> Waveform ---------------------------------------------------------------------
def _checked_seconds(max_seconds: float | None) -> float | None:
    if max_seconds is None:
        return None
    if (isinstance(max_seconds, bool) or not isinstance(max_seconds, numbers.Real)
            or not max_seconds > 0):  # fmt: skip
        raise ConfigError(f"max_seconds must be a positive number of seconds or None, "
                          f"got {max_seconds!r}")  # fmt: skip
    return float(max_seconds)


def _waveform(
    track: Any,
    p: AudioFeatures,
    max_seconds: float | None,
    synth: str,
    soundfont: str | os.PathLike[str] | None,
) -> Waveform:
    sr = p.sample_rate
    if isinstance(track, str | os.PathLike):
        if Path(track).suffix.lower() in MIDI_SUFFIXES:
            wave = render_midi(track, sr, synth=synth, soundfont=soundfont,
                               max_seconds=max_seconds)  # fmt: skip
        else:
            return load_audio(track, sr, max_seconds=max_seconds)  # checks silence itself
    elif isinstance(track, Waveform):
        wave = track
        if max_seconds is not None:
            # Cut before resampling: no work on audio that is thrown away.
            n = int(round(max_seconds * wave.sample_rate))
            wave = Waveform(wave.samples[:n], wave.sample_rate)
    elif hasattr(track, "instruments"):  # a PrettyMIDI (only io/midi.py imports pretty_midi)
        wave = render_midi(track, sr, synth=synth, soundfont=soundfont, max_seconds=max_seconds)
    else:
        raise TypeError(
            "audio_summary takes a MIDI or audio path, a PrettyMIDI or a Waveform, "
            f"got {type(track).__name__}"
        )
    return _usable(wave, _label(track)).at(sr)


def _usable(wave: Waveform, name: str) -> Waveform:
    """The checks load_audio makes on files, for audio that never was a file: a rendered
    score whose notes the SoundFont cannot play, or a Waveform handed in."""
    samples = np.asarray(wave.samples, dtype=np.float32)
    if samples.ndim != 1:
        raise CadenzaError(f"{name}: a Waveform holds mono samples [N], got shape {samples.shape}")
    if len(samples) == 0:
        raise BadAudioError(name, "empty_file", "no samples")
    if not np.isfinite(samples).all():
        raise BadAudioError(name, "corrupt", "samples that are not finite numbers")
    peak = float(np.abs(samples).max())
    if peak < SILENCE_PEAK:
        raise BadAudioError(name, "silent", f"peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS")
    return Waveform(samples, int(wave.sample_rate))


def _label(track: Any) -> str:
    if isinstance(track, str | os.PathLike):
        return str(track)
    return "<Waveform>" if isinstance(track, Waveform) else f"<{type(track).__name__}>"


# --- time statistics -----------------------------------------------------------------------
def _mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[T, F] -> (mean [F], std [F]) over time."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=0), x.std(axis=0)


def _delta_std(x: np.ndarray) -> np.ndarray:
    """[T, F] -> std [F] of the frame-to-frame change; zeros for a single frame."""
    x = np.asarray(x, dtype=np.float64)
    return np.diff(x, axis=0).std(axis=0) if len(x) > 1 else np.zeros(x.shape[1])


def _interval_cv(times: np.ndarray) -> float:
    """Std / mean of the beat intervals: 0 for a metronome; 0 when too few beats to tell."""
    intervals = np.diff(np.asarray(times, dtype=np.float64))
    if len(intervals) < 2 or intervals.mean() <= 0:
        return 0.0
    return float(intervals.std() / intervals.mean())
