"""Checkpoint -> MIDI files (+ piano-roll PNGs) with a producer's controls. Used by
`cadenza-sample` and by `train` when `sample.n > 0`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from cadenza.errors import BadMidiError, ConfigError
from cadenza.io.midi import load_midi, save_midi, tracks_of
from cadenza.models.base import GenerativeModule, check_float, check_int
from cadenza.viz import save_pianoroll_png

log = logging.getLogger("cadenza")
AUDIO_FORMATS = ("wav", "flac", "ogg")


def resolve_length(model: GenerativeModule, steps: Any, bars: Any) -> int:
    """Length in model steps: `steps` wins; else `bars` (4/4) converted by the codec."""
    if steps is not None:
        return check_int("steps", steps)
    if bars is not None:
        return model.codec.steps_for_bars(check_float("bars", bars, minimum=1e-6))
    raise ConfigError("give a length: steps=N (model steps) or bars=N (4/4 bars)")


def load_primer(model: GenerativeModule, path: str | Path) -> torch.Tensor:
    """A MIDI file encoded with the checkpoint's own codec (guarded like the data pipeline)."""
    primer = model.codec.encode(load_midi(path))
    if model.codec.kind == "tokens" and primer[-1].item() == 2:  # drop EOS: we continue it
        primer = primer[:-1]
    return primer


def load_condition(model: GenerativeModule, path: str | Path) -> torch.Tensor:
    """The condition track [T, P] a track-conditional model plays against, from a MIDI file:
    the checkpoint's own track selection, or for a file without that track (a bare melody)
    the skyline of all its notes."""
    if not getattr(model, "conditional", False):
        raise ConfigError(f"condition=... needs a track-conditional gan; this is a {model.family}")
    pm = load_midi(path)
    try:
        condition = model.condition_from_roll(model.codec.encode(pm))
    except BadMidiError as e:  # none of the checkpoint's tracks is in the file
        if e.reason != "no_notes":
            raise
        condition = torch.zeros(0)
    if not condition.any():
        codec = model.codec
        skyline = type(codec).from_dict({**codec.to_dict(), "tracks": ["top"] * codec.n_tracks})
        condition = skyline.encode(pm)[:, 0]
    return condition


def generate_to_files(
    model: GenerativeModule,
    out_dir: str | Path,
    n: int = 8,
    seed: int = 0,
    temperature: float | None = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    steps: int | None = None,
    bars: float | None = 8,
    primer: str | None = None,
    condition: str | None = None,
    png: bool = True,
    prefix: str = "sample",
    render: str | None = None,
    synth: str = "auto",
    soundfont: str | None = None,
    sample_rate: int = 44100,
    **_: Any,
) -> list[Path]:
    """Write n samples as `<prefix>_000.mid` (+ `.png`) and `samples.json`; returns MIDI paths.
    `render=wav` (or flac / ogg) also renders each MIDI to audio beside it (io.render).
    A model of audio features (mel_vae) writes `<prefix>_000.wav` + a spectrogram PNG instead.

    The same seed and controls give the same notes (one torch.Generator drives every draw).
    """
    if render is not None and render not in AUDIO_FORMATS:
        raise ConfigError(f"render must be null or one of {list(AUDIO_FORMATS)}, got {render!r}")
    n = check_int("n", n)
    temperature = 1.0 if temperature is None else temperature
    # A VAE writes windows of its own fixed length (model.bars); other families take one.
    fixed = getattr(model, "window_steps", None)
    length = fixed if fixed is not None else resolve_length(model, steps, bars)
    generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    kwargs: dict[str, Any] = {"temperature": temperature, "generator": generator}
    if top_k is not None:
        kwargs["top_k"] = top_k
    if top_p is not None:
        kwargs["top_p"] = top_p

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model.codec.kind == "features":
        if primer is not None or condition is not None:
            raise ConfigError(f"the {model.family} family takes no primer= or condition=")
        controls = {"n": n, "seed": seed, "temperature": temperature}
        max_len = None if fixed else length
        return _audio_to_files(model, out, n, max_len, kwargs, png, prefix, controls)
    if condition is not None:
        # The accompaniment is as long as the melody unless steps= asks for a length.
        cond = load_condition(model, condition)
        asked = None if steps is None else length
        midis = model.generate(n, condition=cond, max_len=asked, **kwargs)
    elif primer is None:
        midis = model.generate(n, max_len=None if fixed else length, **kwargs)
    else:
        # `length` counts the new music after the primer, as a producer means it.
        if not hasattr(model, "continue_from"):
            raise ConfigError(f"the {model.family} family cannot continue a primer")
        pieces = model.continue_from(load_primer(model, primer), n=n, steps=length, **kwargs)
        midis = [model.codec.decode(x) for x in pieces]
    paths, meta = [], []
    for i, pm in enumerate(midis):
        path = save_midi(pm, out / f"{prefix}_{i:03d}.mid")
        paths.append(path)
        notes = sum(len(t.notes) for t in tracks_of(pm))
        if png:
            save_pianoroll_png(pm, path.with_suffix(".png"), title=f"{prefix} {i} (seed {seed})")
        meta.append({"file": path.name, "notes": notes, "seconds": round(pm.get_end_time(), 3)})
        if notes == 0:
            log.warning("%s has no notes: try a higher temperature or a longer length", path)
        elif render is not None:
            from cadenza.io.render import render_to_file

            audio = render_to_file(pm, path.with_suffix(f".{render}"), sample_rate=sample_rate,
                                   synth=synth, soundfont=soundfont)  # fmt: skip
            meta[-1]["audio"] = audio.name
    controls = {
        "n": n,
        "seed": seed,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "steps": length,
        "primer": str(primer) if primer else None,
        "condition": str(condition) if condition else None,
        "render": render,
        "codec": model.codec.to_dict(),
        "family": model.family,
    }
    (out / "samples.json").write_text(json.dumps({"controls": controls, "samples": meta}, indent=2))
    return paths


def _audio_to_files(
    model: GenerativeModule, out: Path, n: int, max_len: int | None, kwargs: dict[str, Any],
    png: bool, prefix: str, controls: dict[str, Any],
) -> list[Path]:  # fmt: skip
    """Spectrogram samples heard through the codec (Griffin-Lim): WAV + PNG + samples.json."""
    from cadenza.io.audio import save_audio
    from cadenza.viz_spectrogram import save_spectrogram_png

    codec = model.codec
    kwargs = {k: v for k, v in kwargs.items() if k not in ("top_k", "top_p")}
    frames = model.sample(n, max_len=max_len, **kwargs)
    paths, meta = [], []
    for i, x in enumerate(frames):
        path = save_audio(codec.decode(x), out / f"{prefix}_{i:03d}.wav")
        if png:
            save_spectrogram_png(codec.to_db(x), path.with_suffix(".png"),
                                 codec.frames_per_second, title=f"{prefix} {i}")  # fmt: skip
        paths.append(path)
        meta.append({"file": path.name, "seconds": round(len(x) / codec.frames_per_second, 3)})
    controls = {**controls, "steps": len(frames[0]), "codec": codec.to_dict(),
                "family": model.family}  # fmt: skip
    (out / "samples.json").write_text(json.dumps({"controls": controls, "samples": meta}, indent=2))
    return paths
