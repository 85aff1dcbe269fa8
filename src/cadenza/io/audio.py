"""Audio in and out, and audio features: the only module in Cadenza that imports librosa and
soundfile (libsndfile).

Everything above this layer sees a `Waveform` (mono float32 samples + sample rate) and plain
numpy feature matrices laid out time first, [T, F], like the codecs' frames. A bad file never
escapes as a libsndfile / audioread exception: it becomes `BadAudioError` with a stable reason,
so the data pipeline can skip it and say why.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import soundfile

from cadenza.atomic import write_atomically
from cadenza.errors import BadAudioError, CadenzaError, ConfigError
from cadenza.io.audio_truncation import flac_cut_short, ogg_unfinished, pcm_shortfall

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
# Peak below -80 dBFS (a 16-bit file's last few bits): nothing a listener or a model can use.
SILENCE_PEAK = 1e-4
MAX_SECONDS = 3600.0

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioFeatures",
    "Waveform",
    "beats",
    "chroma",
    "cqt",
    "load_audio",
    "log_mel",
    "mel_to_audio",
    "mfcc",
    "onset_strength",
    "resample",
    "save_audio",
    "spectral_stats",
    "warm_up",
]


@dataclass
class Waveform:
    """Mono audio. `samples`: float32 [N] in [-1, 1]; `sample_rate` in Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    def at(self, sample_rate: int) -> Waveform:
        """This audio at `sample_rate` (itself when it already is)."""
        if sample_rate == self.sample_rate:
            return self
        return Waveform(resample(self.samples, self.sample_rate, sample_rate), sample_rate)


@dataclass(frozen=True)
class AudioFeatures:
    """Analysis parameters shared by every feature (configs: `features` / the mel codec).

    Defaults follow common music-ML practice at 22.05 kHz: 1024-point FFT, hop 256 (~11.6 ms),
    80 mel bands from 30 Hz; CQT of 7 octaves from C1 at 12 bins per octave.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    fmin: float = 30.0
    fmax: float | None = None
    top_db: float = 80.0
    cqt_fmin: float = 32.70319566257483  # C1
    cqt_bins_per_octave: int = 12
    cqt_octaves: int = 7
    n_mfcc: int = 20

    def __post_init__(self) -> None:
        for key in ("sample_rate", "n_fft", "hop_length", "n_mels", "cqt_bins_per_octave",
                    "cqt_octaves", "n_mfcc"):  # fmt: skip
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"features.{key} must be a positive integer, got {value!r}")
        nyquist = self.sample_rate / 2
        if not 0 <= self.fmin < nyquist:
            raise ConfigError(f"features.fmin must lie in [0, {nyquist}) Hz, got {self.fmin}")
        if self.fmax is not None and not self.fmin < self.fmax <= nyquist:
            raise ConfigError(
                f"features.fmax must lie in ({self.fmin}, {nyquist}] Hz or be null, got {self.fmax}"
            )
        if self.top_db <= 0:
            raise ConfigError(f"features.top_db must be > 0, got {self.top_db}")
        top = self.cqt_fmin * 2**self.cqt_octaves
        if top >= nyquist:
            raise ConfigError(
                f"features: a CQT of {self.cqt_octaves} octaves from {self.cqt_fmin:.1f} Hz "
                f"reaches {top:.0f} Hz, above the Nyquist frequency {nyquist:.0f} Hz; lower "
                "features.cqt_octaves or raise features.sample_rate"
            )

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AudioFeatures:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown features key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- files -------------------------------------------------------------------------------------
def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = None,
    *,
    max_seconds: float | None = None,
    min_seconds: float = 0.0,
) -> Waveform:
    """Read WAV/FLAC/OGG/MP3/AIFF -> mono Waveform (resampled to `sample_rate` if given).

    `max_seconds` reads only the start of the file (a 3600 s cap applies otherwise).
    Raises BadAudioError: empty_file, not_audio, truncated, corrupt, silent, too_short,
    too_long.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise CadenzaError(f"{path}: no such audio file; check the path") from e
    if size == 0:
        raise BadAudioError(str(path), "empty_file", "0 bytes")
    head = _head(path)
    # libsndfile hands a .mp3 with no MPEG header to mpg123 anyway, which prints its resync
    # attempts on stderr and fails with "not a regular file (possibly a pipe?)": a file that is
    # no MP3 is told so here, before either speaks.
    if path.suffix.lower() == ".mp3" and not _looks_like_audio(head):
        raise BadAudioError(str(path), "not_audio", _no_header(head))
    try:
        info = soundfile.info(str(path))
    except Exception as e:  # libsndfile's "Format not recognised" and friends
        # A file that starts like a sound file but does not open is broken audio, not a stray
        # text file: the reason tells a user which of the two to look for.
        if not _looks_like_audio(head):
            raise BadAudioError(str(path), "not_audio", _no_header(head)) from e
        if head.startswith(b"OggS"):
            _check_ogg_end(path, None)
        raise BadAudioError(str(path), "corrupt", _first_line(e)) from e
    _check_pcm_length(path, info)
    if info.format == "OGG":
        _check_ogg_end(path, info.samplerate)
    if info.frames <= 0 or info.samplerate <= 0:
        raise BadAudioError(str(path), "empty_file", "no audio frames")
    seconds = info.frames / info.samplerate
    if max_seconds is None and seconds > MAX_SECONDS:
        raise BadAudioError(str(path), "too_long", f"{seconds:.0f} s > {MAX_SECONDS:.0f} s")
    frames = -1 if max_seconds is None else int(round(max_seconds * info.samplerate))
    try:
        data, sr = soundfile.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except Exception as e:  # a header that parses over a body that does not
        if info.format == "FLAC" and flac_cut_short(path, info.frames):
            promised = info.frames / info.samplerate
            detail = f"the stream stops before the {promised:.2f} s its header promises"
            raise BadAudioError(str(path), "truncated", detail) from e
        raise BadAudioError(str(path), "corrupt", _first_line(e)) from e
    wanted = info.frames if frames < 0 else min(frames, info.frames)
    # A header that promises more than the body holds (a cut download): reported, not padded.
    # 1 % slack: an MP3's header only estimates its length.
    if len(data) < 0.99 * wanted:
        detail = f"header says {wanted / sr:.2f} s, file holds {len(data) / sr:.2f} s"
        raise BadAudioError(str(path), "truncated", detail)
    samples = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return _checked(Waveform(np.ascontiguousarray(samples, np.float32), int(sr)), str(path),
                    sample_rate, min_seconds)  # fmt: skip


def _checked(wave: Waveform, name: str, sample_rate: int | None, min_seconds: float) -> Waveform:
    if len(wave.samples) == 0:
        raise BadAudioError(name, "empty_file", "no audio frames")
    if not np.isfinite(wave.samples).all():
        raise BadAudioError(name, "corrupt", "samples that are not finite numbers")
    peak = float(np.abs(wave.samples).max())
    if peak < SILENCE_PEAK:
        raise BadAudioError(name, "silent", f"peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS")
    if wave.seconds < min_seconds:
        raise BadAudioError(name, "too_short", f"{wave.seconds:.2f} s < {min_seconds} s")
    return wave.at(sample_rate) if sample_rate else wave


def save_audio(wave: Waveform, path: str | os.PathLike[str]) -> Path:
    """Write 16-bit WAV / FLAC / OGG (by suffix) atomically; peaks above 1 are scaled down
    rather than clipped. Creates parent folders."""
    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower())
    if fmt is None:
        raise CadenzaError(f"{path}: write audio as .wav, .flac or .ogg")
    samples = np.asarray(wave.samples, dtype=np.float32)
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    if peak > 1.0:
        samples = samples / peak
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    return write_atomically(path, lambda tmp: soundfile.write(
        str(tmp), samples, int(wave.sample_rate), format=fmt, subtype=subtype))  # fmt: skip


def resample(samples: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality)."""
    out = librosa.resample(np.asarray(samples, np.float32), orig_sr=orig_sr, target_sr=target_sr,
                           res_type="soxr_hq")  # fmt: skip
    return np.ascontiguousarray(out, dtype=np.float32)


_MAGIC = (b"RIFF", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM")


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(8)


def _looks_like_audio(head: bytes) -> bool:
    # An MP3 without an ID3 tag starts with a frame: 11 sync bits set (0xFFE0 and up).
    return head.startswith(_MAGIC) or (len(head) > 1 and head[0] == 0xFF and head[1] >= 0xE0)


def _no_header(head: bytes) -> str:
    return f"no WAV, FLAC, OGG, MP3 or AIFF header; the file starts with {head!r}"


def _check_pcm_length(path: Path, info: Any) -> None:
    """A WAV or AIFF whose sound chunk promises more bytes than the file holds was cut short:
    libsndfile would read what is there as a whole, shorter piece (it sizes it by the file)."""
    shortfall = pcm_shortfall(path) if info.format in ("WAV", "AIFF") else None
    if shortfall is not None:
        declared, present = shortfall
        bytes_per_second = present / (info.frames / info.samplerate) if info.frames else 0.0
        detail = (f"header says {declared / bytes_per_second:.2f} s, file holds "
                  f"{present / bytes_per_second:.2f} s" if bytes_per_second
                  else f"header says {declared} bytes of audio, file holds {present}")  # fmt: skip
        raise BadAudioError(str(path), "truncated", detail)


def _check_ogg_end(path: Path, sample_rate: int | None) -> None:
    """An Ogg stream that stops before its end-of-stream page was cut: libsndfile reads the
    pages that are there as a shorter piece, or as no audio at all."""
    granule = ogg_unfinished(path)
    if granule is None:
        return
    held = f" after {granule / sample_rate:.2f} s" if sample_rate and granule > 0 else ""
    raise BadAudioError(str(path), "truncated", f"the Ogg stream stops{held} before its end")


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip()


# --- features: every one returns time first, [T, F] (or [T]) --------------------------------
@contextmanager
def _short_octaves_ok() -> Iterator[None]:
    # The CQT downsamples the signal once per octave; on a short clip the lowest octaves are
    # shorter than the FFT and librosa warns, though their (few) frames are still computed.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="n_fft=.*is too large for input signal")
        yield


def _at(wave: Waveform, p: AudioFeatures) -> np.ndarray:
    return wave.at(p.sample_rate).samples


def mel_power(wave: Waveform, p: AudioFeatures) -> np.ndarray:
    """Mel power spectrogram [T, n_mels] (Slaney-normalised filters, centred frames)."""
    S = librosa.feature.melspectrogram(
        y=_at(wave, p), sr=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length,
        n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax, power=2.0,
    )  # fmt: skip
    return np.ascontiguousarray(S.T, dtype=np.float32)


def log_mel(wave: Waveform, p: AudioFeatures, *, ref: float | None = None) -> np.ndarray:
    """Log-mel spectrogram in dB [T, n_mels], floored `top_db` below the reference: the
    loudest bin of this clip when `ref` is None (level-independent), else a fixed power."""
    S = mel_power(wave, p)
    reference = np.max if ref is None else ref
    # top_db floors every bin that far below the clip's loudest: digital silence stays finite.
    return librosa.power_to_db(S, ref=reference, amin=1e-10, top_db=p.top_db).astype(np.float32)


def mel_to_audio(mel_db: np.ndarray, p: AudioFeatures, *, n_iter: int = 64) -> Waveform:
    """[T, n_mels] dB (as `log_mel` returns) -> audio by Griffin-Lim (fast variant, momentum
    0.99, Perraudin et al. 2013) on the least-squares inverse of the mel filters. Peak -1 dBFS."""
    power = librosa.db_to_power(np.asarray(mel_db, np.float32).T)
    magnitude = librosa.feature.inverse.mel_to_stft(
        power, sr=p.sample_rate, n_fft=p.n_fft, power=2.0, fmin=p.fmin, fmax=p.fmax
    )
    y = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=p.hop_length, n_fft=p.n_fft,
                           momentum=0.99, init="random", random_state=0)  # fmt: skip
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak > 0:
        y = y * (10 ** (-1 / 20) / peak)
    return Waveform(np.ascontiguousarray(y, dtype=np.float32), p.sample_rate)


def cqt(wave: Waveform, p: AudioFeatures) -> np.ndarray:
    """Constant-Q magnitude [T, octaves * bins_per_octave]; bin k is cqt_fmin * 2^(k/bpo) Hz."""
    with _short_octaves_ok():
        C = librosa.cqt(
            _at(wave, p), sr=p.sample_rate, hop_length=p.hop_length, fmin=p.cqt_fmin,
            n_bins=p.cqt_octaves * p.cqt_bins_per_octave, bins_per_octave=p.cqt_bins_per_octave,
        )  # fmt: skip
    return np.ascontiguousarray(np.abs(C).T, dtype=np.float32)


def chroma(wave: Waveform, p: AudioFeatures) -> np.ndarray:
    """Chroma from the CQT [T, 12]; column 0 is C, 9 is A; each frame's maximum is 1.

    Tuning is A4 = 440 Hz, not estimated: rendered MIDI is in that tuning, and librosa's
    estimate (a piptrack pass, numba-compiled) was most of chroma's cost and crashed a fresh CI
    run with a segmentation fault from a broken numba cache entry of that very function."""
    with _short_octaves_ok():
        C = librosa.feature.chroma_cqt(
            y=_at(wave, p), sr=p.sample_rate, hop_length=p.hop_length, fmin=p.cqt_fmin,
            n_octaves=p.cqt_octaves, bins_per_octave=p.cqt_bins_per_octave * 3, tuning=0.0,
        )  # fmt: skip
    return np.ascontiguousarray(C.T, dtype=np.float32)


def onset_strength(wave: Waveform, p: AudioFeatures) -> np.ndarray:
    """Spectral-flux onset envelope [T] on the mel spectrogram."""
    env = librosa.onset.onset_strength(
        y=_at(wave, p), sr=p.sample_rate, hop_length=p.hop_length, n_fft=p.n_fft,
        n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax,
    )  # fmt: skip
    return np.ascontiguousarray(env, dtype=np.float32)


def beats(wave: Waveform, p: AudioFeatures) -> tuple[float, np.ndarray]:
    """(tempo in BPM, beat times in seconds [B]) by dynamic-programming beat tracking."""
    env = onset_strength(wave, p)
    with warnings.catch_warnings():  # "Empty onset envelope" on near-silent audio: tempo 0
        warnings.simplefilter("ignore")
        tempo, frames = librosa.beat.beat_track(
            onset_envelope=env, sr=p.sample_rate, hop_length=p.hop_length, units="frames"
        )
    times = librosa.frames_to_time(frames, sr=p.sample_rate, hop_length=p.hop_length)
    return float(np.atleast_1d(tempo)[0]), np.asarray(times, dtype=np.float64)


def mfcc(wave: Waveform, p: AudioFeatures) -> np.ndarray:
    """MFCCs [T, n_mfcc] of the log-mel spectrogram."""
    S_db = log_mel(wave, p).T
    M = librosa.feature.mfcc(S=S_db, n_mfcc=p.n_mfcc)
    return np.ascontiguousarray(M.T, dtype=np.float32)


def spectral_stats(wave: Waveform, p: AudioFeatures) -> dict[str, np.ndarray]:
    """Per-frame timbre and level descriptors, each [T]: centroid and bandwidth (Hz), rolloff
    (85 %, Hz), flatness (0..1), RMS level and zero-crossing rate."""
    y, sr = _at(wave, p), p.sample_rate
    S = np.abs(librosa.stft(y, n_fft=p.n_fft, hop_length=p.hop_length))
    out = {
        "centroid": librosa.feature.spectral_centroid(S=S, sr=sr),
        "bandwidth": librosa.feature.spectral_bandwidth(S=S, sr=sr),
        "rolloff": librosa.feature.spectral_rolloff(S=S, sr=sr, roll_percent=0.85),
        "flatness": librosa.feature.spectral_flatness(S=S),
        "rms": librosa.feature.rms(S=S, frame_length=p.n_fft),
        "zcr": librosa.feature.zero_crossing_rate(y, frame_length=p.n_fft, hop_length=p.hop_length),
    }
    return {k: np.ascontiguousarray(v[0], dtype=np.float32) for k, v in out.items()}


def hz_to_midi(hz: float | np.ndarray) -> float | np.ndarray:
    return librosa.hz_to_midi(hz)


def cqt_frequencies(p: AudioFeatures) -> np.ndarray:
    """Centre frequency (Hz) of every CQT bin [octaves * bins_per_octave]."""
    return librosa.cqt_frequencies(
        n_bins=p.cqt_octaves * p.cqt_bins_per_octave, fmin=p.cqt_fmin,
        bins_per_octave=p.cqt_bins_per_octave,
    )  # fmt: skip


def warm_up() -> float:
    """Run every librosa path above once, on two seconds of noise, so that numba compiles its
    kernels into its on-disk cache now (`make setup` calls this after installing). Cold, the
    first resample took 18-23 s and the first beat track 10 s on a 2-core VM, inside whatever
    happened to call them first. -> the seconds it took."""
    import time

    t0 = time.perf_counter()
    p = AudioFeatures()
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 2 * p.sample_rate).astype(np.float32)
    wave = Waveform(noise, p.sample_rate)
    wave.at(16000)
    mel_to_audio(log_mel(wave, p), p, n_iter=2)
    for feature in (cqt, chroma, beats, mfcc, spectral_stats):
        feature(wave, p)
    return time.perf_counter() - t0
