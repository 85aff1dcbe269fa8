"""A latent space as a producer's instrument: reconstruct a phrase, morph one phrase into
another, push a melody along an attribute (a VAE), or walk between two random points (a GAN).
Used by `cadenza-sample mode=...` and the service.

Each exploration returns pieces in memory; its `*_to_files` form writes them (MIDI + PNG, or
WAV + spectrogram for a model of audio) with a JSON report of what it did and measured, so the
numbers a producer sees are the numbers in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadenza.errors import ConfigError
from cadenza.generation.inputs import describe_input, window_tensor
from cadenza.generation.pieces import Piece, to_pieces
from cadenza.generation.writers import check_tempo, write_piece, write_report, write_sheet
from cadenza.metrics.attributes import ATTRIBUTES, parse_attribute, window_attributes
from cadenza.models.base import Ability, GenerativeModule, check_int, check_seed
from cadenza.progress import stop_if_cancelled

# What an exploration measured, beside its controls in samples.json.
REPORT_EXTRAS = ("attribute_change",)


@dataclass
class Exploration:
    """What an exploration made: `pieces` (its answer), `inputs` (what it started from, e.g.
    the encoded input or the unshifted base pieces), and its report."""

    pieces: list[Piece]
    report: dict[str, Any]
    inputs: list[Piece] = field(default_factory=list)
    sheet: bool = False  # one picture of the whole path is worth writing

    def write(self, out_dir: str | Path, png: bool = True, **audio: Any) -> list[Piece]:
        """Every piece (+ picture, + audio with render=) and `samples.json`; with a path,
        `<prefix>_sheet.png` too. Returns the written answer pieces."""
        out = Path(out_dir)
        for p in self.pieces:  # before any file is written
            check_tempo(audio.get("tempo"), p.output)
        out.mkdir(parents=True, exist_ok=True)
        entries = {}
        for p in [*self.inputs, *self.pieces]:
            stop_if_cancelled()  # a background job cancelled while it renders stops here
            entries[p.name] = write_piece(p, out, png=png, **audio)
        # The layout of every samples.json (write_pieces' too): "controls", then the answer's
        # "samples"; here also the "inputs" it started from, and what the mode measured.
        controls = {k: v for k, v in self.report.items() if k not in REPORT_EXTRAS}
        controls |= {"render": audio.get("render"), "tempo": audio.get("tempo")}
        samples = [entries[p.name] for p in self.pieces]
        if self.report.get("mode") == "prior" and self.inputs:  # pieces[i] is inputs[i] shifted
            samples = [{**e, "base": entries[b.name]["file"]}
                       for e, b in zip(samples, self.inputs)]  # fmt: skip
        report = {"controls": controls, "samples": samples,
                  "inputs": [entries[p.name] for p in self.inputs],
                  **{k: v for k, v in self.report.items() if k in REPORT_EXTRAS}}  # fmt: skip
        if self.sheet and png and self.pieces:
            prefix = self.pieces[0].name.rsplit("_", 1)[0]
            alphas = np.linspace(0, 1, len(self.pieces))
            write_sheet(self.pieces, out / f"{prefix}_sheet.png",
                        [f"{i}: t={t:.2f}" for i, t in enumerate(alphas)],
                        tempo=audio.get("tempo"))  # fmt: skip
        write_report(out, report)
        return self.pieces


def _measure(model: GenerativeModule, pieces: list[Piece]) -> list[Piece]:
    """Melody attributes (density, pitch range, ...) of each piece of a model that has them."""
    if model.can(Ability.ATTRIBUTES):
        for p in pieces:
            attrs = window_attributes(model.codec, p.tensor.numpy())
            p.meta["attributes"] = {k: _num(v) for k, v in attrs.items()}
    return pieces


def _num(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 4)


def _shift(model: GenerativeModule, attribute: str | None, latent: int) -> torch.Tensor:
    if not attribute:
        return torch.zeros(latent)
    model.require(Ability.ATTRIBUTES)
    try:
        name, amount = parse_attribute(attribute)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return model.attribute_shift(name, amount).cpu()


def _change(model: GenerativeModule, attribute: str, before: list[Piece],
            after: list[Piece]) -> dict[str, Any]:  # fmt: skip
    """Mean of the attribute over the pieces before and after the shift."""
    name, amount = parse_attribute(attribute)

    def mean(ps: list[Piece]) -> float:
        vals = [window_attributes(model.codec, p.tensor.numpy())[name] for p in ps]
        return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")

    b, a = mean(before), mean(after)
    return {"attribute": name, "unit": ATTRIBUTES[name], "asked": amount,
            "before": _num(b), "after": _num(a), "change": _num(a - b)}  # fmt: skip


def _similarity(model: GenerativeModule, y: Piece, x: Piece) -> dict[str, float]:
    """How close a reconstruction is to its input: share of equal tokens / steps, or for
    audio the mean absolute error in dB."""
    if y.output == "audio":
        err = np.abs(model.codec.to_db(y.tensor) - model.codec.to_db(x.tensor)).mean()
        return {"error_db_vs_input": round(float(err), 3)}
    return {"token_accuracy_vs_input": round(float((y.tensor == x.tensor).float().mean()), 4)}


def reconstruct(
    model: GenerativeModule, input: Any, n: int = 1, temperature: float | None = None,
    seed: int = 0, attribute: str | None = None, prefix: str = "reconstruction",
) -> Exploration:  # fmt: skip
    """Encode `input`'s first window, decode it n times (greedy when temperature is None, so
    n > 1 only differs with a temperature): variations around an idea. With `attribute`, the
    code is shifted first."""
    model.require(Ability.RECONSTRUCT)
    n, seed = check_int("n", n), check_seed(seed)
    x = window_tensor(model, input)
    mu, _ = model.encode(x[None])
    z = mu.cpu().repeat(n, 1)
    shift = _shift(model, attribute, z.shape[1])
    generator = torch.Generator().manual_seed(seed)
    ys = model.decode(z + shift, temperature=temperature, generator=generator)
    controls = {"family": model.family, "mode": "reconstruct", "input": describe_input(input),
                "n": n, "temperature": temperature, "seed": seed,
                "attribute": attribute}  # fmt: skip
    (source,) = _measure(model, to_pieces(model, [x], controls, names=["input"]))
    pieces = _measure(model, to_pieces(model, list(ys), controls, prefix, windows=True))
    for p in pieces:
        p.meta |= _similarity(model, p, source)
    report = dict(controls)  # the seed too: with a temperature it picks the variations
    if attribute:
        base = to_pieces(model, [model.decode(z[:1])[0]], controls, "unshifted", windows=True)
        report["attribute_change"] = _change(model, attribute, base, pieces)
    return Exploration(pieces, report, inputs=[source])


def interpolate(
    model: GenerativeModule, a: Any, b: Any, steps: int = 8, temperature: float | None = None,
    seed: int = 0, prefix: str = "interp",
) -> Exploration:  # fmt: skip
    """`steps` windows along the latent path from a's first window to b's (endpoints
    included)."""
    model.require(Ability.INTERPOLATE)
    seed = check_seed(seed)
    xa, xb = window_tensor(model, a), window_tensor(model, b)
    # A generator of its own, not torch's global one: a service interpolates in several
    # threads at once, and each request's seed must decide its notes alone.
    generator = torch.Generator().manual_seed(seed)
    path = model.interpolate(xa, xb, check_int("steps", steps, minimum=2), temperature=temperature,
                             generator=generator)  # fmt: skip
    controls = {"family": model.family, "mode": "interpolate", "a": describe_input(a),
                "b": describe_input(b), "steps": len(path), "temperature": temperature,
                "seed": seed}  # fmt: skip
    pieces = _measure(model, to_pieces(model, list(path), controls, prefix, windows=True))
    report = dict(controls)
    return Exploration(pieces, report, sheet=True)


def prior_with_attribute(
    model: GenerativeModule, attribute: str, n: int = 8, temperature: float = 1.0,
    seed: int = 0, prefix: str = "sample",
) -> Exploration:  # fmt: skip
    """n prior samples decoded twice, from z and from z + the attribute shift (same draws):
    the shifted ones are the answer, the unshifted `base_NNN` ones its inputs."""
    model.require(Ability.ATTRIBUTES)
    n, seed = check_int("n", n), check_seed(seed)
    latent = model.hparams.latent_size
    shift = _shift(model, attribute, latent)
    z = torch.randn(n, latent, generator=torch.Generator().manual_seed(seed))
    before = model.decode(z, temperature=temperature,
                          generator=torch.Generator().manual_seed(seed + 1))  # fmt: skip
    after = model.decode(z + shift, temperature=temperature,
                         generator=torch.Generator().manual_seed(seed + 1))  # fmt: skip
    controls = {"family": model.family, "mode": "prior", "n": n, "attribute": attribute,
                "temperature": temperature, "seed": seed}  # fmt: skip
    base = _measure(model, to_pieces(model, list(before), controls, "base", windows=True))
    shifted = _measure(model, to_pieces(model, list(after), controls, prefix, windows=True))
    report = dict(controls)
    report["attribute_change"] = _change(model, attribute, base, shifted)
    return Exploration(shifted, report, inputs=base)


def latent_walk(
    model: GenerativeModule, steps: int = 8, seed: int = 0, temperature: float | None = None,
    prefix: str = "interp",
) -> Exploration:  # fmt: skip
    """A family with no encoder walks between two random points of its latent space (drawn
    from `seed`): `steps` phrases along the great circle between them."""
    model.require(Ability.LATENT_WALK)
    seed = check_seed(seed)
    g = torch.Generator().manual_seed(seed)
    scale = 1.0 if temperature is None else temperature
    path = [{k: v * scale for k, v in z.items()} for z in model.interpolation_latents(steps, g)]
    rolls = [model.sample(1, latents=[z])[0] for z in path]
    controls = {"family": model.family, "mode": "interpolate", "seed": seed,
                "steps": len(rolls), "temperature": scale}  # fmt: skip
    return Exploration(to_pieces(model, rolls, controls, prefix), dict(controls), sheet=True)


# --- the same, written to files -----------------------------------------------------------
def reconstruct_to_files(model: GenerativeModule, input: Any, out_dir: str | Path,
                         png: bool = True, audio: dict | None = None,
                         **kwargs: Any) -> list[Piece]:  # fmt: skip
    return reconstruct(model, input, **kwargs).write(out_dir, png, **(audio or {}))


def interpolate_to_files(model: GenerativeModule, a: Any, b: Any, out_dir: str | Path,
                         png: bool = True, audio: dict | None = None,
                         **kwargs: Any) -> list[Piece]:  # fmt: skip
    return interpolate(model, a, b, **kwargs).write(out_dir, png, **(audio or {}))


def prior_with_attribute_to_files(model: GenerativeModule, attribute: str, out_dir: str | Path,
                                  png: bool = True, audio: dict | None = None,
                                  **kwargs: Any) -> tuple[list[Piece], dict[str, Any]]:  # fmt: skip
    exploration = prior_with_attribute(model, attribute, **kwargs)
    return exploration.write(out_dir, png, **(audio or {})), exploration.report["attribute_change"]


def latent_walk_to_files(model: GenerativeModule, out_dir: str | Path, png: bool = True,
                         audio: dict | None = None, **kwargs: Any) -> list[Piece]:  # fmt: skip
    return latent_walk(model, **kwargs).write(out_dir, png, **(audio or {}))
