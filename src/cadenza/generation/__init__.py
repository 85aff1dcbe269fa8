"""Generation: a checkpoint and a producer's controls -> pieces in memory -> files.

    pieces = generate(model, n=4, seed=0, temperature=0.9, bars=8)   # in memory
    write_pieces(pieces, "out/", render="wav")                       # MIDI + PNG + WAV + report

`generate_to_files` does both; `exploration` moves in a latent space (VAE reconstruct /
interpolate / attributes, GAN latent walk).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cadenza.generation.pieces import Piece, generate, generate_batch, resolve_length, to_pieces
from cadenza.generation.writers import AUDIO_FORMATS, check_render, check_tempo, write_pieces
from cadenza.models.base import GenerativeModule


def generate_to_files(
    model: GenerativeModule,
    out_dir: str | Path,
    n: int = 8,
    *,
    png: bool = True,
    render: str | None = None,
    synth: str = "auto",
    soundfont: str | None = None,
    sample_rate: int = 44100,
    tempo: float | None = None,
    **controls: Any,
) -> list[Piece]:
    """`generate` (controls: seed, temperature, top_k, top_p, steps, bars, primer, condition,
    prefix, record) then `write_pieces`: `<prefix>_000.mid` (+ `.png`, + audio with `render=`)
    at `tempo` (quarter notes a minute; null: the codec's) or `.wav` for a model of audio, and
    `samples.json`. Returns the pieces, whose `files` name what was written."""
    check_render(render)
    check_tempo(tempo, model.codec.output)  # before any sampling
    pieces = generate(model, n, **controls)
    write_pieces(pieces, out_dir, png=png, render=render, synth=synth, soundfont=soundfont,
                 sample_rate=sample_rate, tempo=tempo)  # fmt: skip
    return pieces


__all__ = [
    "AUDIO_FORMATS", "Piece", "check_tempo", "generate", "generate_batch", "generate_to_files",
    "resolve_length",
    "to_pieces",
    "write_pieces",
]  # fmt: skip
