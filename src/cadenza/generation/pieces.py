"""Generation in memory: a checkpoint and a producer's controls -> pieces.

A `Piece` holds what a model made (the codec tensor), what it sounds like (a PrettyMIDI, or a
Waveform for a model of audio features), and how it was made. Nothing here writes a file:
`generation.writers` does that, and the CLI, the service, the recommender and `train()` hand
pieces on without reading back what they wrote.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadenza.errors import ConfigError
from cadenza.generation.inputs import condition_tensor, describe_input, primer_tensor
from cadenza.io.midi import tracks_of
from cadenza.models.base import (
    Ability,
    GenerativeModule,
    check_float,
    check_int,
    check_seed,
)

log = logging.getLogger("cadenza")


@dataclass
class Piece:
    """One generated piece. `meta` is measured per piece (notes, seconds, attributes, ...);
    `controls` is how the whole set was made (family, seed, temperature, length, ...)."""

    name: str  # the stem its files get: sample_000
    tensor: torch.Tensor  # codec tensor: tokens [T], frames [T, D], rolls [T, K, P], ...
    music: Any  # PrettyMIDI (output "midi") or Waveform (output "audio")
    output: str  # "midi" | "audio"
    meta: dict[str, Any]
    controls: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)  # what writers wrote: midi/png/audio
    # The report entry of its files as last written (write_piece): at a `tempo`, their seconds
    # are not the piece's own, which stays as the model made it.
    written: dict[str, Any] = field(default_factory=dict)
    # A model of audio features: the spectrogram it made, in dB [T, M], for its picture.
    spectrogram_db: np.ndarray | None = None
    frames_per_second: float | None = None

    @classmethod
    def of_midi(cls, pm: Any, name: str, controls: dict[str, Any] | None = None) -> Piece:
        """A piece of MIDI from outside a model (an upload to render, say)."""
        meta = {"notes": sum(len(t.notes) for t in tracks_of(pm)),
                "seconds": round(pm.get_end_time(), 3)}  # fmt: skip
        return cls(name, torch.zeros(0), pm, "midi", meta, controls or {})

    @property
    def notes(self) -> int | None:
        return self.meta.get("notes")

    @property
    def seconds(self) -> float:
        return self.meta["seconds"]


def to_pieces(
    model: GenerativeModule,
    tensors: list[torch.Tensor],
    controls: dict[str, Any],
    prefix: str = "sample",
    names: list[str] | None = None,
    windows: bool = False,
) -> list[Piece]:
    """Decode codec tensors (as `sample` returns them; `windows`: as a latent model's decode
    returns them, reshaped by `model.as_piece`) into pieces, measuring each."""
    prefix = check_prefix(prefix)
    output = model.codec.output
    pieces = []
    for i, x in enumerate(tensors):
        x = model.as_piece(x.cpu()) if windows else x.cpu()
        music = model.codec.decode(x)
        if output == "audio":
            meta = {"seconds": round(len(music.samples) / music.sample_rate, 3)}
        else:
            meta = {"notes": sum(len(t.notes) for t in tracks_of(music)),
                    "seconds": round(music.get_end_time(), 3)}  # fmt: skip
        name = names[i] if names else f"{prefix}_{i:03d}"
        piece = Piece(name, x, music, output, meta, controls)
        if output == "audio":
            piece.spectrogram_db = model.codec.to_db(x)
            piece.frames_per_second = model.codec.frames_per_second
        pieces.append(piece)
    return pieces


PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_prefix(prefix: Any) -> str:
    """The stem of the pieces' file names (`<prefix>_000.mid`): a name, never a path, so no
    piece is written outside the folder it is written to. A number is its digits (Hydra reads
    prefix=2024 as one)."""
    if isinstance(prefix, int) and not isinstance(prefix, bool):
        prefix = str(prefix)
    if not isinstance(prefix, str) or not PREFIX.fullmatch(prefix):
        raise ConfigError(f"prefix={prefix!r}: a file-name stem of letters, digits, '.', '_' "
                          "and '-' (not a path: pieces are written in out_dir)")  # fmt: skip
    return prefix


# The longest piece one call writes: hours of music, past which a length is a typo (bars=1e9
# sampled until killed). The service's own caps (limits.max_bars, max_steps) are far lower.
MAX_BARS = 10_000


def resolve_length(model: GenerativeModule, steps: Any, bars: Any) -> int:
    """Length in model steps: `steps` wins; else `bars` (4/4) converted by the codec."""
    most = model.codec.steps_for_bars(MAX_BARS)
    if steps is not None:
        return check_int("steps", steps, maximum=most)
    if bars is not None:
        bars = check_float("bars", bars)
        if bars <= 0 or bars > MAX_BARS:
            raise ConfigError(f"bars must be > 0 and <= {MAX_BARS} (4/4 bars of new music), "
                              f"got {bars:g}")  # fmt: skip
        return model.codec.steps_for_bars(bars)
    raise ConfigError("give a length: steps=N (model steps) or bars=N (4/4 bars)")


def generate(
    model: GenerativeModule,
    n: int = 8,
    seed: int = 0,
    temperature: float | None = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    steps: int | None = None,
    bars: float | None = 8,
    primer: Any = None,
    condition: Any = None,
    style: Any = None,
    prefix: str = "sample",
    record: dict[str, Any] | None = None,
) -> list[Piece]:
    """n pieces from a model with a producer's controls, in memory.

    primer: a MIDI file (path), a PrettyMIDI or a codec tensor to continue; `steps`/`bars`
    then count the new music after it. condition: a melody to accompany (path, PrettyMIDI, a
    condition track [T, P] or an encoded piece). style: the style (a name) or style mix (name ->
    weight) of a style-conditional model, with or without a primer. A family with a fixed window
    writes windows of its own length. `record` overrides how inputs are named in the controls
    (a service names uploads by id, not by where it keeps them).

    The same seed and controls give the same notes (one torch.Generator drives every draw).
    """
    n, seed = check_int("n", n), check_seed(seed)
    prefix = check_prefix(prefix)
    if primer is not None and condition is not None:
        raise ConfigError("give primer= or condition=, not both")
    generator = torch.Generator().manual_seed(seed)
    tensors, length, temperature = _sample(model, n, generator, temperature, top_k, top_p, steps,
                                           bars, primer, condition, style)  # fmt: skip
    controls = _controls(model, n, seed, temperature, top_k, top_p, length, primer, condition,
                         style) | (record or {})  # fmt: skip
    return _pieces(model, tensors, controls, prefix)


def generate_batch(
    model: GenerativeModule,
    requests: list[tuple[int, int]],
    temperature: float | None = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    steps: int | None = None,
    bars: float | None = 8,
    style: Any = None,
    prefix: str = "sample",
) -> list[list[Piece]]:
    """Several requests of (n, seed), with the same controls, drawn in one batched sampling
    loop: one list of pieces per request, each the same notes `generate(model, n, seed, ...)`
    writes for it alone (`RowGenerators`: every request's rows draw from its own seeded
    stream). From the prior only: a primer or a condition is a request's own."""
    from cadenza.models.sampling import RowGenerators

    if not requests:
        return []
    prefix = check_prefix(prefix)
    requests = [(check_int("n", n), check_seed(seed)) for n, seed in requests]
    rows = RowGenerators([(n, torch.Generator().manual_seed(seed)) for n, seed in requests])
    tensors, length, temperature = _sample(model, rows.rows, rows, temperature, top_k, top_p,
                                           steps, bars, None, None, style)  # fmt: skip
    out, start = [], 0
    for n, seed in requests:
        controls = _controls(model, n, seed, temperature, top_k, top_p, length, None, None, style)
        out.append(_pieces(model, tensors[start : start + n], controls, prefix))
        start += n
    return out


def _sample(
    model: GenerativeModule, n: int, generator: Any, temperature: float | None,
    top_k: int | None, top_p: float | None, steps: int | None, bars: float | None,
    primer: Any, condition: Any, style: Any,
) -> tuple[list[torch.Tensor], int, float]:  # fmt: skip
    """The codec tensors of n pieces drawn with `generator` (one, or `RowGenerators`), the
    length in steps they were asked for, and the temperature used."""
    temperature = 1.0 if temperature is None else temperature
    filters = {k: v for k, v in (("top_k", top_k), ("top_p", top_p)) if v is not None}
    if filters:
        model.require(Ability.TOKEN_FILTERS)
    fixed = model.declaration().window_steps
    if fixed is not None:
        length: int | None = fixed
    elif condition is not None and steps is None:
        length = None  # an accompaniment is as long as its melody: known once it is drawn
    else:
        length = resolve_length(model, steps, bars)
    kwargs: dict[str, Any] = {"temperature": temperature, "generator": generator, **filters}
    if style is not None:
        model.require(Ability.STYLE)
        kwargs["style"] = style
    was_training = model.training
    model.eval()  # during training too (a sheet of samples each epoch): no dropout, BN frozen
    try:
        with torch.no_grad():
            tensors = _draw(model, n, length, fixed, steps, primer, condition, kwargs)
    finally:
        model.train(was_training)
    return tensors, length if length is not None else len(tensors[0]), temperature


def _controls(
    model: GenerativeModule, n: int, seed: int, temperature: float, top_k: int | None,
    top_p: float | None, length: int, primer: Any, condition: Any, style: Any,
) -> dict[str, Any]:  # fmt: skip
    """How a set of pieces was made, as its report records it."""
    return {
        "family": model.family, "mode": "prior", "n": n, "seed": seed, "temperature": temperature,
        "top_k": top_k, "top_p": top_p, "steps": length,
        "primer": describe_input(primer), "condition": describe_input(condition),
        "style": style, "codec": model.codec.to_dict(),
    }  # fmt: skip


def _pieces(model: GenerativeModule, tensors: list[torch.Tensor], controls: dict[str, Any],
            prefix: str) -> list[Piece]:  # fmt: skip
    pieces = to_pieces(model, tensors, controls, prefix)
    for p in pieces:
        if p.notes == 0:
            log.warning("%s has no notes: try a higher temperature or a longer length", p.name)
    return pieces


def _draw(
    model: GenerativeModule, n: int, length: int | None, fixed: int | None, steps: int | None,
    primer: Any, condition: Any, kwargs: dict[str, Any],
) -> list[torch.Tensor]:  # fmt: skip
    """The codec tensors of n pieces, by what the request asks of the family."""
    if condition is not None:
        model.require(Ability.CONDITION)
        # The accompaniment is as long as the melody unless steps= asks for a length.
        cond = condition_tensor(model, condition)
        tensors = model.sample(n, condition=cond, max_len=None if steps is None else length,
                               **kwargs)  # fmt: skip
    elif primer is not None:
        model.require(Ability.CONTINUE)
        tensors = model.continue_from(primer_tensor(model, primer), n=n, steps=length, **kwargs)
    else:
        model.require(Ability.PRIOR)
        tensors = model.sample(n, max_len=None if fixed is not None else length, **kwargs)
    return tensors
