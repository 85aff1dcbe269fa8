"""A VAE checkpoint as a producer's instrument: reconstruct a phrase, morph one phrase into
another, push a melody along an attribute. Used by `cadenza-sample mode=...`.

Every function writes MIDI files (+ piano-roll PNGs) and a JSON report of what it did and
measured, so the numbers a producer sees are the numbers in the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadenza.errors import ConfigError
from cadenza.io.midi import load_midi, save_midi
from cadenza.metrics.attributes import ATTRIBUTES, parse_attribute, window_attributes
from cadenza.models.base import GenerativeModule, check_int
from cadenza.representations.melody import REST
from cadenza.viz import save_pianoroll_png, save_pianoroll_sheet


def require_vae(model: GenerativeModule, mode: str) -> Any:
    if not hasattr(model, "interpolate"):
        raise ConfigError(
            f"mode={mode} needs a vae checkpoint (a latent space to move in); this one is the "
            f"{model.family} family: use mode=prior"
        )
    return model


def load_window(model: Any, path: str | Path) -> torch.Tensor:
    """The model-length window of a MIDI file: the first bar-aligned window that is not mostly
    rests (else the first), REST-padded at the end if the file is shorter. [T] or [T, K]."""
    codec, bars = model.codec, model.hparams.bars
    tokens = codec.encode(load_midi(path)).numpy()
    T = model.window_steps
    if len(tokens) < T:
        pad = np.full((T - len(tokens), *tokens.shape[1:]), REST, dtype=tokens.dtype)
        tokens = np.concatenate([tokens, pad])
    starts = codec.window_starts(tokens, bars) or [0]
    return torch.from_numpy(codec.cut_window(tokens, starts[0], bars).astype(np.int64))


def _attrs(model: Any, x: torch.Tensor) -> dict[str, float]:
    return {
        k: _num(v) for k, v in window_attributes(model.codec, model._untrack(x).numpy()).items()
    }


def _num(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 4)


def _write(model: Any, x: torch.Tensor, path: Path, png: bool, title: str) -> dict[str, Any]:
    pm = model.codec.decode(model._untrack(x))
    save_midi(pm, path)
    if png:
        save_pianoroll_png(pm, path.with_suffix(".png"), title=title)
    return {"file": path.name, "attributes": _attrs(model, x)}


def _report(out: Path, report: dict[str, Any]) -> None:
    (out / "samples.json").write_text(json.dumps(report, indent=2))


def reconstruct_to_files(
    model: Any, input: str, out_dir: str | Path, n: int = 1, temperature: float | None = None,
    seed: int = 0, png: bool = True, attribute: str | None = None, prefix: str = "reconstruction",
) -> list[Path]:  # fmt: skip
    """Encode `input`'s first window, decode it n times (greedy when temperature is None, so
    n > 1 only differs with a temperature): variations around an idea. With `attribute`, the
    code is shifted first."""
    model = require_vae(model, "reconstruct")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = load_window(model, input)
    mu, _ = model.encode(x[None])
    z = mu.cpu().repeat(check_int("n", n), 1)
    shift = _shift(model, attribute)
    generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    ys = model.decode(z + shift, temperature, generator)
    entries = [_write(model, x[..., None] if x.dim() == 1 else x, out / "input.mid", png, "input")]
    paths = []
    xt = x if x.dim() == 2 else x[:, None]
    for i, y in enumerate(ys):
        path = out / f"{prefix}_{i:03d}.mid"
        e = _write(model, y, path, png, f"{prefix} {i}")
        e["token_accuracy_vs_input"] = round(float((y == xt).float().mean()), 4)
        entries.append(e)
        paths.append(path)
    report = {"mode": "reconstruct", "input": str(input), "temperature": temperature,
              "attribute": attribute, "samples": entries}  # fmt: skip
    if attribute:
        report["attribute_change"] = _change(model, attribute, [model.decode(z[:1])[0]], list(ys))
    _report(out, report)
    return paths


def interpolate_to_files(
    model: Any, a: str, b: str, out_dir: str | Path, steps: int = 8,
    temperature: float | None = None, seed: int = 0, png: bool = True, prefix: str = "interp",
) -> list[Path]:  # fmt: skip
    """`steps` windows along the latent path from a's first window to b's (endpoints
    included), as MIDI files plus one piano-roll sheet of the whole path."""
    model = require_vae(model, "interpolate")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    xa, xb = load_window(model, a), load_window(model, b)
    torch.manual_seed(check_int("seed", seed, minimum=0))
    path_windows = model.interpolate(xa, xb, check_int("steps", steps, minimum=2), temperature)
    paths, entries, pms = [], [], []
    for i, y in enumerate(path_windows):
        path = out / f"{prefix}_{i:03d}.mid"
        entries.append(_write(model, y, path, False, ""))
        pms.append(model.codec.decode(model._untrack(y)))
        paths.append(path)
    alphas = np.linspace(0, 1, len(pms))
    if png:
        save_pianoroll_sheet(
            pms, out / f"{prefix}_sheet.png", [f"{i}: a={t:.2f}" for i, t in enumerate(alphas)]
        )
    _report(out, {"mode": "interpolate", "a": str(a), "b": str(b), "steps": len(pms),
                  "temperature": temperature, "samples": entries})  # fmt: skip
    return paths


def _shift(model: Any, attribute: str | None) -> torch.Tensor:
    if not attribute:
        return torch.zeros(model.hparams.latent_size)
    try:
        name, amount = parse_attribute(attribute)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return model.attribute_shift(name, amount).cpu()


def _change(model: Any, attribute: str, before: list, after: list) -> dict[str, Any]:
    """Mean of the attribute over the windows before and after the shift."""
    name, amount = parse_attribute(attribute)

    def mean(ws: list) -> float:
        vals = [window_attributes(model.codec, model._untrack(w).numpy())[name] for w in ws]
        return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")

    b, a = mean(before), mean(after)
    return {"attribute": name, "unit": ATTRIBUTES[name], "asked": amount,
            "before": _num(b), "after": _num(a), "change": _num(a - b)}  # fmt: skip


def prior_with_attribute_to_files(
    model: Any, attribute: str, out_dir: str | Path, n: int = 8, temperature: float = 1.0,
    seed: int = 0, png: bool = True, prefix: str = "sample",
) -> tuple[list[Path], dict[str, Any]]:  # fmt: skip
    """n prior samples decoded twice, from z and from z + the attribute shift (same draws),
    as `base_NNN.mid` and `<prefix>_NNN.mid`; returns the paths and the achieved change."""
    model = require_vae(model, "prior attribute")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = check_int("n", n)
    shift = _shift(model, attribute)
    z = torch.randn(n, model.hparams.latent_size, generator=torch.Generator().manual_seed(seed))
    before = model.decode(z, temperature, torch.Generator().manual_seed(seed + 1))
    after = model.decode(z + shift, temperature, torch.Generator().manual_seed(seed + 1))
    paths, entries = [], []
    for i, (x0, x1) in enumerate(zip(before, after)):
        base = _write(model, x0, out / f"base_{i:03d}.mid", png, f"base {i}")
        shifted = _write(
            model, x1, out / f"{prefix}_{i:03d}.mid", png, f"{prefix} {i} ({attribute})"
        )
        entries.append({"base": base, "shifted": shifted})
        paths.append(out / f"{prefix}_{i:03d}.mid")
    change = _change(model, attribute, list(before), list(after))
    _report(out, {"mode": "prior", "attribute": attribute, "temperature": temperature,
                  "seed": seed, "attribute_change": change, "samples": entries})  # fmt: skip
    return paths, change


def latent_walk_to_files(
    model: Any, out_dir: str | Path, steps: int = 8, seed: int = 0, png: bool = True,
    prefix: str = "interp", temperature: float | None = None,
) -> list[Path]:  # fmt: skip
    """A GAN has no encoder, so its interpolation walks between two random points of its
    latent space (drawn from `seed`): `steps` phrases as MIDI files plus one sheet."""
    if not hasattr(model, "interpolation_latents"):
        raise ConfigError("a latent walk needs a gan checkpoint; a vae interpolates a= b= files")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    path_latents = model.interpolation_latents(steps, g)
    scale = 1.0 if temperature is None else temperature
    path_latents = [{k: v * scale for k, v in z.items()} for z in path_latents]
    paths, entries, pms = [], [], []
    for i, z in enumerate(path_latents):
        roll = model.sample(1, latents=[z])[0]
        pm = model.codec.decode(roll)
        path = save_midi(pm, out / f"{prefix}_{i:03d}.mid")
        if png:
            save_pianoroll_png(pm, path.with_suffix(".png"), title=f"{prefix} {i}/{steps - 1}")
        pms.append(pm)
        paths.append(path)
        entries.append({"file": path.name, "notes": sum(len(n) for n in model.codec.notes(roll))})
    if png:
        titles = [f"{i}: t={t:.2f}" for i, t in enumerate(np.linspace(0, 1, len(pms)))]
        save_pianoroll_sheet(pms, out / f"{prefix}_sheet.png", titles)
    _report(out, {"mode": "interpolate", "family": model.family, "seed": seed,
                  "steps": len(pms), "temperature": scale, "samples": entries})  # fmt: skip
    return paths
