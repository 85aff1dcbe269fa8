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
from cadenza.generation.writers import TEMPO_RANGE
from cadenza.metrics.attributes import ATTRIBUTES
from cadenza.models import Ability, CadenzaModule, ClassifierModule, GenerativeModule
from cadenza.models.base import read_checkpoint
from cadenza.recommend.index import ExactIndex, NearestNeighbourIndex
from cadenza.recommend.module import RecommenderModule
from cadenza.serve.auth import Caller
from cadenza.serve.settings import Limits

log = logging.getLogger("cadenza")
USERS_LISTED = 50  # enough to pick from in the studio; the rest are accepted by name
# What the service offers for each declared ability (the studio builds its forms from these).
MODES = {Ability.CONTINUE: "primer", Ability.CONDITION: "condition",
         Ability.INTERPOLATE: "interpolate", Ability.ATTRIBUTES: "attribute",
         Ability.LATENT_WALK: "latent_walk", Ability.STYLE: "style"}  # fmt: skip


@dataclass
class Served:
    name: str
    path: Path
    model: Any
    # The catalog's index, built once: a recommendation is then one matrix product.
    catalog: NearestNeighbourIndex | None = None

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def kind(self) -> str:
        """generator, recommender or classifier (load_served serves nothing else)."""
        return kind_of(self.model)


KINDS = {GenerativeModule: "generator", RecommenderModule: "recommender",
         ClassifierModule: "classifier"}  # fmt: skip


def kind_of(model: Any) -> str:
    for cls, kind in KINDS.items():
        if isinstance(model, cls):
            return kind
    raise CadenzaError(f"a {model.family} checkpoint: the service serves generators, "
                       "recommenders and classifiers")  # fmt: skip


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


def load_served(name: str, path: Path, root: Path, device: torch.device | None = None) -> Served:
    """One checkpoint, ready to serve; a generator is moved to `device` (default: the CPU)."""
    real = path.resolve()
    if not real.is_relative_to(root.resolve()):
        raise CadenzaError(f"{path} links outside the checkpoints folder ({real}); not served")
    # Weights only (read_checkpoint): a checkpoint from a stranger cannot run code here.
    model = CadenzaModule.from_checkpoint(read_checkpoint(real), real)
    kind_of(model)  # a family the service cannot serve is reported, not served
    if isinstance(model, GenerativeModule) and device is not None:
        model = model.to(device)
    if isinstance(model, RecommenderModule):
        with torch.no_grad():
            catalog = ExactIndex().build(model.catalog_embeddings().numpy())
        return Served(name, path, model, catalog=catalog)
    return Served(name, path, model)


def load_all(
    root: Path, max_models: int, device: torch.device | None = None
) -> tuple[dict[str, Served], list[dict[str, str]]]:
    served: dict[str, Served] = {}
    failed: list[dict[str, str]] = []
    for name, path in find_checkpoints(root).items():
        if len(served) >= max_models:
            failed.append({"file": str(path), "error": f"more than max_models={max_models}"})
            continue
        try:
            served[name] = load_served(name, path, root, device)
            log.info("serving %s (%s) from %s", name, served[name].family, path)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the service
            log.warning("not serving %s: %s", path, e)
            failed.append({"file": str(path), "error": str(e)[:500]})
    return served, failed


def modes(s: Served) -> list[str]:
    """What a served model can do: its family's declaration, in the service's words."""
    if s.kind != "generator":
        return ["recommend" if s.kind == "recommender" else "classify"]
    # "generate": new pieces from nothing. A track-conditional GAN only accompanies a melody
    # ("condition"), on the same route.
    new = ["generate"] if s.model.can(Ability.PRIOR) else []
    return [*new, *(mode for ability, mode in MODES.items() if s.model.can(ability))]


def takes_filters(s: Served) -> bool:
    """top-k / top-p filter the next token of a family that declares it."""
    return s.kind == "generator" and s.model.can(Ability.TOKEN_FILTERS)


def _listeners_shown(keys: list[Any], caller: Caller) -> list[str]:
    if caller.admin:
        return [str(u) for u in keys[:USERS_LISTED]]
    return [caller.listener] if caller.listener in map(str, keys) else []


def _range(lo: float, hi: float, default: Any) -> dict[str, Any]:
    return {"min": lo, "max": hi, "default": default}


def _bars_range(codec: Any, limits: Limits, default: float) -> dict[str, Any]:
    """Bars up to limits.max_bars that also fit limits.max_steps in this codec's steps (a token
    model's bar is many steps: 40 bars of events are 2,400), so a form offers what is taken."""
    most = next((b for b in range(limits.max_bars, 0, -1)
                 if codec.steps_for_bars(b) <= limits.max_steps), 1)  # fmt: skip
    return _range(1, most, min(default, most))


def _attributes(s: Served) -> list[dict[str, Any]]:
    """What `attribute=NAME:AMOUNT` can move on this model: each fitted attribute, its unit, and
    `gap`, what an amount of 1.0 asks for (the data's top quarter's mean minus its bottom's)."""
    if not s.model.can(Ability.ATTRIBUTES):
        return []
    return [{"name": name, "unit": ATTRIBUTES[name], "gap": gap}
            for name, gap in s.model.attribute_gaps_by_name().items()]  # fmt: skip


def describe(s: Served, limits: Limits, caller: Caller,
             defaults: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """What the studio and API clients need to build a form for this model: each control's
    range, and the default a request that leaves it out gets (`defaults`, serve.yaml's
    `sample.*`). A recommender's listeners are listed to an admin only; a listener token sees
    its own listener."""
    info: dict[str, Any] = {"name": s.name, "family": s.family, "kind": s.kind, "users": [],
                            "n_users": None, "contexts": [], "n_items": None}  # fmt: skip
    if s.kind == "recommender":
        hp = s.model.hparams
        info |= {
            "output": None, "codec": None, "modes": modes(s), "controls": {},
            "users": _listeners_shown(hp.user_keys or [], caller),
            # How many there are, to an admin: `users` lists the first USERS_LISTED.
            "n_users": len(hp.user_keys or []) if caller.admin else None,
            "contexts": list(s.model.contexts or []), "n_items": int(hp.n_items),
            "content": hp.get("feature_kind"), "text": s.model.text_map is not None,
        }  # fmt: skip
        return info
    if s.kind == "classifier":
        info |= {
            "output": None, "codec": s.model.codec.to_dict(), "modes": modes(s), "controls": {},
            "classes": s.model.classes,
            # What it listens to: a mel classifier hears an uploaded MIDI file rendered.
            "hears": "audio" if s.model.hears_audio else "midi",
        }  # fmt: skip
        return info
    declaration = s.model.declaration()
    fixed = declaration.window_steps is not None
    tokens = takes_filters(s)
    d = {"n": 1, "bars": 8, "seed": 0, "temperature": None, "top_k": None, "top_p": None,
         "tempo": None} | (defaults or {})  # fmt: skip
    midi = declaration.output == "midi"
    info |= {
        "output": declaration.output,
        "codec": s.model.codec.to_dict(),
        "modes": modes(s),
        "abilities": sorted(declaration.abilities),
        "window_steps": declaration.window_steps,
        "styles": s.model.styles,
        "attributes": _attributes(s),
        "controls": {
            "n": _range(1, limits.max_n, d["n"]),
            # An accompaniment is as long as its melody: no bars (steps may cut it).
            "bars": None
            if fixed or "generate" not in modes(s)
            else _bars_range(s.model.codec, limits, d["bars"]),
            "steps": None if fixed else _range(1, limits.max_steps, None),
            # null: 1.0 for new pieces (the model as trained)
            "temperature": _range(0.05, 5.0, d["temperature"] or 1.0),
            "top_k": _range(1, 1000, d["top_k"]) if tokens else None,
            "top_p": _range(0.01, 1.0, d["top_p"]) if tokens else None,
            "seed": _range(0, 2**31 - 1, d["seed"]),
            "tempo": _range(*TEMPO_RANGE, d["tempo"]) if midi else None,
        },
    }
    return info
