"""The built-in synthesizer: plain additive synthesis, for machines without FluidSynth.

It is not meant to sound like an instrument, only to put every note's pitch, onset, length and
loudness into audio faithfully, so audio features (CQT, chroma, mel) of a render mean what they
say. Pitch is exact equal temperament (A4 = 440 Hz) with exact integer harmonics.

Speed comes from rendering each (timbre, pitch) once as a template from onset to silence and
adding a scaled slice of it for every note of that pitch: the work per note is one or two
multiply-adds per sample, not a sum of sines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from cadenza.io.midi import TrackNotes

__all__ = ["synthesize"]


@dataclass(frozen=True)
class _Timbre:
    harmonics: tuple[float, ...]  # amplitude of harmonic k = 1, 2, ...
    attack_s: float
    decay_s: float | None  # e-folding time of the fundamental at C4; None: held notes sustain
    release_s: float  # e-folding time after note-off


# Struck and plucked strings fade while held and stop fast when let go (dampers); higher
# harmonics fade sooner, which is what makes a piano tone mellow over its decay.
_STRUCK = _Timbre((1.0, 0.45, 0.25, 0.15, 0.1, 0.06, 0.04, 0.03), 0.004, 2.5, 0.08)
# Organs, bowed strings, winds and synth pads hold their level: a brighter, saw-like spectrum.
_HELD = _Timbre((1.0, 0.5, 0.33, 0.25, 0.2, 0.15, 0.12, 0.1), 0.03, None, 0.12)
# GM program families (program // 8) that sustain: organ, strings, ensemble, brass, reed, pipe,
# synth lead, synth pad.
_HELD_FAMILIES = frozenset({2, 5, 6, 7, 8, 9, 10, 11})
_QUIET_DB = 70.0  # a template ends where the decay has fallen this far
_DRUM_GAIN = 0.6  # noise bursts are denser than tones at the same peak


def synthesize(tracks: list[TrackNotes], sample_rate: int, n_samples: int) -> np.ndarray:
    """Notes of every track -> mono float32 [n_samples], not normalised (peak may pass 1)."""
    out = np.zeros(n_samples, dtype=np.float32)
    melodic: dict[tuple[_Timbre, int], list[np.ndarray]] = {}
    drums: dict[int, list[np.ndarray]] = {}
    for tr in tracks:
        notes = np.asarray(tr.notes, dtype=np.float64).reshape(-1, 4)
        for pitch in np.unique(notes[:, 2]).astype(int):
            rows = notes[notes[:, 2] == pitch]
            if tr.is_drum:
                drums.setdefault(int(pitch), []).append(rows)
            else:
                timbre = _HELD if tr.program // 8 in _HELD_FAMILIES else _STRUCK
                melodic.setdefault((timbre, int(pitch)), []).append(rows)
    for (timbre, pitch), groups in melodic.items():
        _add_tones(out, np.concatenate(groups), timbre, pitch, sample_rate)
    for key, groups in drums.items():
        burst = _drum(key, sample_rate)
        for start, _, _, velocity in np.concatenate(groups):
            _add(out, int(round(start * sample_rate)), burst * (_DRUM_GAIN * _loudness(velocity)))
    return out


def _loudness(velocity: float) -> float:
    # Amplitude ~ velocity squared: the curve of the MIDI/DLS default (and FluidSynth's).
    return float(np.clip(velocity, 1, 127) / 127.0) ** 2


def _add(out: np.ndarray, start: int, wave: np.ndarray) -> None:
    n = min(len(wave), len(out) - start)
    if n > 0 and start >= 0:
        out[start : start + n] += wave[:n]


def _add_tones(
    out: np.ndarray, notes: np.ndarray, timbre: _Timbre, pitch: int, sample_rate: int
) -> None:
    """Every note [N, 4] of one pitch in one timbre, from one shared template."""
    hz = 440.0 * 2.0 ** ((pitch - 69) / 12)
    if hz >= 0.45 * sample_rate:
        return  # above what this sample rate can carry
    # After note-off: ~60 dB down over 7 time constants, then nothing.
    tau = timbre.release_s * sample_rate
    release = np.exp(-np.arange(int(7 * tau)) / tau)
    held = np.maximum(np.round((notes[:, 1] - notes[:, 0]) * sample_rate).astype(int), 1)
    length = int(held.max()) + len(release)
    decay_s = None if timbre.decay_s is None else _decay_s(timbre.decay_s, pitch)
    if decay_s is not None:  # a note held past this has faded out: no need to compute it
        length = min(length, int(decay_s * _QUIET_DB / 8.69 * sample_rate) + 1)
    tone = _template(timbre, hz, decay_s, sample_rate, length)
    for start_s, hold, velocity in zip(notes[:, 0], held, notes[:, 3]):
        start, amp = int(round(start_s * sample_rate)), _loudness(velocity)
        _add(out, start, tone[:hold] * amp)
        tail = tone[hold : hold + len(release)]
        _add(out, start + hold, tail * (release[: len(tail)] * amp).astype(np.float32))


def _decay_s(at_c4: float, pitch: int) -> float:
    # Low strings ring longer than high ones: the time constant halves every two octaves.
    return float(np.clip(at_c4 * 2.0 ** (-(pitch - 60) / 24), 0.3, 10.0))


def _template(
    timbre: _Timbre, hz: float, decay_s: float | None, sample_rate: int, length: int
) -> np.ndarray:
    """One note from onset, held for `length` samples: float32 [length]."""
    t = np.arange(length) / sample_rate
    phase = 2 * np.pi * hz * t
    tone = np.zeros(length)
    for k, amp in enumerate(timbre.harmonics, start=1):
        if k * hz >= 0.45 * sample_rate:
            break
        partial = amp * np.sin(k * phase)
        if decay_s is not None:
            partial *= np.exp(-t * (1 + 0.5 * (k - 1)) / decay_s)
        tone += partial
    attack = max(int(timbre.attack_s * sample_rate), 1)
    ramp = min(attack, length)
    tone[:ramp] *= np.arange(ramp) / attack
    return tone.astype(np.float32) / sum(timbre.harmonics)


# GM percussion keys (channel 10) by the sound they name; toms map to their body's pitch (Hz),
# cymbals to their decay time (s).
_KICKS = {35, 36}
_SNARES = {37, 38, 39, 40}
_TOMS = {41: 80, 43: 100, 45: 120, 47: 145, 48: 170, 50: 200}
_CLOSED_HATS = {42, 44}
_CYMBALS = {46: 0.3, 49: 0.7, 51: 0.5, 52: 0.7, 53: 0.4, 55: 0.5, 57: 0.7, 59: 0.5}


def _drum(key: int, sample_rate: int) -> np.ndarray:
    """A short filtered noise burst (with a falling tone for kicks and toms): float32 [n]."""
    if key in _KICKS:
        band, decay, body = (30.0, 200.0), 0.05, 55.0
    elif key in _SNARES:
        band, decay, body = (1000.0, 8000.0), 0.09, 190.0
    elif key in _TOMS:
        band, decay, body = (60.0, 1500.0), 0.06, float(_TOMS[key])
    elif key in _CLOSED_HATS:
        band, decay, body = (7000.0, 16000.0), 0.03, 0.0
    elif key in _CYMBALS:
        band, decay, body = (5000.0, 16000.0), _CYMBALS[key], 0.0
    else:
        band, decay, body = (500.0, 5000.0), 0.06, 0.0
    n = int(decay * 6 * sample_rate)
    t = np.arange(n) / sample_rate
    # Seeded by key: the same file always renders to the same samples (render caches rely on it).
    noise = np.random.default_rng(key).standard_normal(n)
    nyquist = sample_rate / 2
    low, high = min(band[0], 0.4 * nyquist), min(band[1], 0.9 * nyquist)
    sos = signal.butter(2, (low, high), btype="bandpass", fs=sample_rate, output="sos")
    noise = signal.sosfilt(sos, noise)
    burst = noise / (np.abs(noise).max() + 1e-12) * np.exp(-t / decay)
    if body:
        # The drum head's pitch falls quickly after the hit; its tone outlasts the noise.
        sweep = body * (1 + 1.5 * np.exp(-t / 0.02))
        burst = 0.5 * burst + np.sin(2 * np.pi * np.cumsum(sweep) / sample_rate) * np.exp(
            -t / (decay * 2.5)
        )
    onset = max(int(0.001 * sample_rate), 1)  # 1 ms fade-in: a hard edge clicks
    burst[:onset] *= np.linspace(0, 1, onset)
    return (burst / (np.abs(burst).max() + 1e-12)).astype(np.float32)
