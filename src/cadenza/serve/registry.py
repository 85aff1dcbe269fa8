"""The checkpoints a service serves: found under one folder, loaded weights-only, described.

`checkpoints/<name>/latest.ckpt` (what `cadenza-train` writes) is served as `<name>`; a loose
`x.ckpt` as its path without `.ckpt`. A checkpoint that cannot be read is reported in
`/api/health` and left out; it never stops the others from being served.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cadenza.errors import CadenzaError
from cadenza.models.base import FAMILIES, GenerativeModule, read_checkpoint
from cadenza.recommend.index import ExactIndex, NearestNeighbourIndex
from cadenza.serve.settings import Limits

log = logging.getLogger("cadenza")
RECOMMENDER = "recommender"
USERS_LISTED = 50  # enough to pick from in the studio; the rest are accepted by name


@dataclass
class Served:
    name: str
    path: Path
    model: Any
    family: str
    # The catalog's index, built once: a recommendation is then one matrix product.
    catalog: NearestNeighbourIndex | None = None

    @property
    def kind(self) -> str:
        return "recommender" if self.family == RECOMMENDER else "generator"


def find_checkpoints(root: Path) -> dict[str, Path]:
    """name -> checkpoint file. Links (latest.ckpt) must resolve inside `root`."""
    root = root.resolve()
    if root.is_file():
        return {root.stem: root}
    found: dict[str, Path] = {}
    latest_dirs = sorted(p.parent for p in root.rglob("latest.ckpt"))
    for d in latest_dirs:
        found[d.relative_to(root).as_posix() or d.name] = d / "latest.ckpt"
    for p in sorted(root.rglob("*.ckpt")):
        if p.name.startswith(".") or any(p.is_relative_to(d) for d in latest_dirs):
            continue  # run folders behind a latest.ckpt, and half-written temporaries
        found[p.relative_to(root).with_suffix("").as_posix()] = p
    return found


def load_served(name: str, path: Path, root: Path) -> Served:
    real = path.resolve()
    if not real.is_relative_to(root.resolve()):
        raise CadenzaError(f"{path} links outside the checkpoints folder ({real}); not served")
    # Weights only (read_checkpoint): a checkpoint from a stranger cannot run code here.
    ckpt = read_checkpoint(real)  # read once; the family picks the class
    family = (ckpt.get("hyper_parameters") or {}).get("family")
    if family == RECOMMENDER:
        from cadenza.recommend.module import RecommenderModule

        model = RecommenderModule.from_checkpoint(ckpt, real)
        with torch.no_grad():
            catalog = ExactIndex().build(model.catalog_embeddings().numpy())
        return Served(name, path, model, family, catalog=catalog)
    if family not in FAMILIES:
        raise CadenzaError(f"{path}: not a Cadenza checkpoint (family={family!r})")
    return Served(name, path, GenerativeModule.from_checkpoint(ckpt, real), family)


def load_all(root: Path, max_models: int) -> tuple[dict[str, Served], list[dict[str, str]]]:
    served: dict[str, Served] = {}
    failed: list[dict[str, str]] = []
    for name, path in find_checkpoints(root).items():
        if len(served) >= max_models:
            failed.append({"file": str(path), "error": f"more than max_models={max_models}"})
            continue
        try:
            served[name] = load_served(name, path, root)
            log.info("serving %s (%s) from %s", name, served[name].family, path)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the service
            log.warning("not serving %s: %s", path, e)
            failed.append({"file": str(path), "error": str(e)[:500]})
    return served, failed


def modes(s: Served) -> list[str]:
    """What a served model can do, by the methods its family has."""
    if s.kind == "recommender":
        return ["recommend"]
    m = s.model
    out = ["generate"]
    if hasattr(m, "continue_from"):
        out.append("primer")
    if getattr(m, "conditional", False):
        out.append("condition")
    if hasattr(m, "interpolate") and m.codec.kind != "features":
        out += ["interpolate", "attribute"]
    if hasattr(m, "interpolation_latents"):
        out.append("latent_walk")
    return out


def takes_filters(s: Served) -> bool:
    """top-k / top-p filter the next event of an autoregressive token model (not a vae's
    decoder, which samples whole windows, nor frame models)."""
    return s.kind == "generator" and s.model.codec.kind == "tokens" and s.family == "lstm"


def _range(lo: float, hi: float, default: Any) -> dict[str, Any]:
    return {"min": lo, "max": hi, "default": default}


def describe(s: Served, limits: Limits) -> dict[str, Any]:
    """What the studio and API clients need to build a form for this model."""
    info: dict[str, Any] = {"name": s.name, "family": s.family, "kind": s.kind, "users": [],
                            "contexts": [], "n_items": None}  # fmt: skip
    if s.kind == "recommender":
        hp = s.model.hparams
        info |= {
            "output": None, "codec": None, "modes": modes(s), "controls": {},
            "users": [str(u) for u in (hp.user_keys or [])[:USERS_LISTED]],
            "contexts": list(s.model.contexts or []), "n_items": int(hp.n_items),
            "content": hp.get("feature_kind"),
        }  # fmt: skip
        return info
    m, codec = s.model, s.model.codec
    fixed = getattr(m, "window_steps", None) is not None
    tokens = takes_filters(s)
    info |= {
        "output": "audio" if codec.kind == "features" else "midi",
        "codec": codec.to_dict(),
        "modes": modes(s),
        "controls": {
            "n": _range(1, limits.max_n, 4),
            "bars": None if fixed else _range(1, limits.max_bars, 8),
            "steps": None if fixed else _range(1, limits.max_steps, None),
            "temperature": _range(0.05, 5.0, 1.0),
            "top_k": _range(1, 1000, None) if tokens else None,
            "top_p": _range(0.01, 1.0, None) if tokens else None,
            "seed": _range(0, 2**31 - 1, 0),
        },
    }
    return info
