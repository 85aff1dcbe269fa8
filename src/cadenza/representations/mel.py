"""MelCodec: audio <-> normalised log-mel frames [T, n_mels], for models that hear rather
than read music.

encode takes a Waveform (resampled to the codec's rate) or a PrettyMIDI (rendered first, with
FluidSynth when the set-up installed it); decode turns frames back into audio by Griffin-Lim,
so sampled spectrograms can be heard. Frames are dB relative to the clip's loudest bin, floored
`top_db` below it and scaled to [0, 1] (x = 1 + dB / top_db): level-independent, bounded for a
sigmoid output, and the clip's loudness (which a render's gain sets anyway) is not modelled.

A "bar" is a nominal 4/4 bar at `bpm` (2 s at 120 BPM): audio has no bar lines, and the data
pipeline's windows (`data.window_bars`) and sampling lengths (`bars=`) need a unit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cadenza.errors import BadAudioError, ConfigError
from cadenza.io.audio import AudioFeatures, Waveform, log_mel, mel_to_audio
from cadenza.representations.base import Codec

# A frame whose loudest band is 60 dB below the clip's peak counts as quiet ("rest") when the
# data pipeline drops windows that are mostly silence (data.max_rest_fraction).
QUIET_DB = -60.0


class MelCodec(Codec):
    name = "mel"
    kind = "features"
    output = "audio"
    # Mel bands are not laid out in semitones: no transposition by shifting rows.
    transposes = False
    no_transpose_reason = "audio features are not laid out in semitones"

    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 80,
        fmin: float = 30.0,
        fmax: float | None = None,
        top_db: float = 80.0,
        bpm: float = 120.0,
        griffin_lim_iters: int = 64,
        synth: str = "auto",
    ) -> None:
        # AudioFeatures validates the analysis values and names the key in its message.
        self.features = AudioFeatures(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
            fmin=float(fmin), fmax=None if fmax is None else float(fmax), top_db=float(top_db),
        )  # fmt: skip
        if isinstance(bpm, bool) or not isinstance(bpm, int | float) or not 20 <= bpm <= 400:
            raise ConfigError(f"representation.bpm must be a tempo in 20..400, got {bpm!r}")
        if isinstance(griffin_lim_iters, bool) or not isinstance(griffin_lim_iters, int):
            raise ConfigError(
                f"representation.griffin_lim_iters must be an integer, got {griffin_lim_iters!r}"
            )
        if griffin_lim_iters < 1:
            raise ConfigError("representation.griffin_lim_iters must be >= 1")
        from cadenza.io.render import SYNTHS

        if synth not in SYNTHS:
            raise ConfigError(f"representation.synth must be one of {list(SYNTHS)}, got {synth!r}")
        self.bpm = float(bpm)
        self.griffin_lim_iters = griffin_lim_iters
        self.synth = synth

    # --- sizes -------------------------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        return self.features.n_mels

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def storage_dtype(self) -> np.dtype:
        # [0, 1] values: float16 keeps ~3 significant digits (<0.03 dB at top_db 80), half of
        # float32's cache.
        return np.dtype(np.float16)

    @property
    def frames_per_second(self) -> float:
        return self.features.frames_per_second

    # --- both directions ---------------------------------------------------------------------
    def encode(self, audio: Any) -> torch.Tensor:
        """Waveform or PrettyMIDI -> [T, n_mels] float32 in [0, 1]."""
        if not isinstance(audio, Waveform):
            from cadenza.io.render import render_midi  # a PrettyMIDI: hear it first

            audio = render_midi(audio, self.sample_rate, synth=self.synth)
        if len(audio.samples) == 0 or not np.abs(audio.samples).max() > 0:
            raise BadAudioError("<waveform>", "silent", "no signal to analyse")
        db = log_mel(audio, self.features)  # [T, M], max 0, floor -top_db
        return torch.from_numpy(1.0 + db / self.features.top_db)

    def decode(self, x: torch.Tensor) -> Waveform:
        """[T, n_mels] in [0, 1] (encoded or generated) -> audio by Griffin-Lim, peak -1 dBFS."""
        frames = np.clip(_numpy(x), 0.0, 1.0)
        db = (frames - 1.0) * self.features.top_db
        return mel_to_audio(db, self.features, n_iter=self.griffin_lim_iters)

    def to_db(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Frames -> dB below the clip's peak (for pictures and error figures in dB)."""
        return (np.clip(_numpy(x), 0.0, 1.0) - 1.0) * self.features.top_db

    # --- lengths and windows -----------------------------------------------------------------
    def steps_for_bars(self, bars: float) -> int:
        return max(1, int(round(bars * 4 * 60.0 / self.bpm * self.frames_per_second)))

    def window_starts(
        self, piece: np.ndarray, bars: int, hop_bars: int, max_rest_fraction: float
    ) -> list[int]:
        """Starts of `bars`-bar windows every `hop_bars` bars, keeping those whose share of
        quiet frames is at most `max_rest_fraction` (so silence is not learnt as music)."""
        length, hop = self.steps_for_bars(bars), self.steps_for_bars(hop_bars)
        if len(piece) < length:
            return []
        quiet = np.asarray(piece).max(axis=1) < 1.0 + QUIET_DB / self.features.top_db  # [T]
        csum = np.concatenate([[0], np.cumsum(quiet)])
        starts = np.arange(0, len(piece) - length + 1, hop)
        share = (csum[starts + length] - csum[starts]) / length
        return starts[share <= max_rest_fraction].tolist()

    def cut_window(self, piece: np.ndarray, start: int, bars: int) -> np.ndarray:
        return np.asarray(piece[start : start + self.steps_for_bars(bars)])

    def transpose(self, x: np.ndarray, semitones: int) -> np.ndarray | None:
        # Mel bands are not semitones apart: shifting them would not transpose the music.
        return x if semitones == 0 else None

    # --- persistence -------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        f = self.features
        return {
            "sample_rate": f.sample_rate,
            "n_fft": f.n_fft,
            "hop_length": f.hop_length,
            "n_mels": f.n_mels,
            "fmin": f.fmin,
            "fmax": f.fmax,
            "top_db": f.top_db,
            "bpm": self.bpm,
            "griffin_lim_iters": self.griffin_lim_iters,
            "synth": self.synth,
        }


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)
