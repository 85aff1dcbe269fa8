"""The contract every model family keeps, declared as data the rest of the code reads.

`CadenzaModule` is what every family shares, generative or not: the family registry, weights-only
checkpoint I/O, and the optimizer / scheduler partials of the model config.

`GenerativeModule` adds the generative contract. A family declares what it can do (`abilities`),
whether it writes windows of one fixed length (`window_steps`), and what its output is (MIDI or
audio, owned by the codec). The CLI, the service, generation and training read that declaration
(`model.declaration()`, `model.can(...)`, `model.require(...)`); they never test a family's name
or probe it with `hasattr`. An ability a family lacks answers with one clear error naming what it
can do instead.

A family implements `training_step` / `validation_step` over `Batch`, and
`sample(n, *, condition=None, max_len=None, temperature=1.0, generator=None, **controls)`
returning codec tensors, plus the methods of the abilities it declares.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from cadenza.errors import CadenzaError, ConfigError
from cadenza.representations.base import Codec

log = logging.getLogger("cadenza")

FAMILIES: dict[str, type[CadenzaModule]] = {}


class Ability(StrEnum):
    """What a generative family can do beyond training."""

    PRIOR = "prior"  # new pieces from nothing: sample(n)
    CONTINUE = "continue"  # continue a primer: continue_from(primer, n, steps)
    CONDITION = "condition"  # write the other tracks for a condition track: sample(condition=)
    RECONSTRUCT = "reconstruct"  # encode a window and decode it back: encode / reconstruct
    INTERPOLATE = "interpolate"  # a latent path between two encoded windows: interpolate(a, b)
    LATENT_WALK = "latent_walk"  # a path between two random latents: interpolation_latents
    ATTRIBUTES = "attributes"  # attribute vectors added to codes: attribute_shift(name, amount)
    TOKEN_FILTERS = "token_filters"  # top_k / top_p on a next-token distribution
    STYLE = "style"  # generate in a named style or a mix of styles: sample(style=)


# How an error names an ability a user asked for.
ABILITY_WORDS = {
    Ability.PRIOR: "sample new pieces",
    Ability.CONTINUE: "continue a primer (primer=)",
    Ability.CONDITION: "accompany a condition track (condition=)",
    Ability.RECONSTRUCT: "reconstruct an input (mode=reconstruct)",
    Ability.INTERPOLATE: "interpolate between two inputs (mode=interpolate a= b=)",
    Ability.LATENT_WALK: "walk between two random latents (mode=interpolate)",
    Ability.ATTRIBUTES: "shift along attribute vectors (attribute=)",
    Ability.TOKEN_FILTERS: "filter next tokens (top_k=, top_p=)",
    Ability.STYLE: "generate in a style (style=)",
}


class AbilityError(ConfigError):
    """A request for something a family has not declared it can do."""


@dataclass(frozen=True)
class Declaration:
    """What a generative model can do, as the CLI, the service and generation read it."""

    family: str
    abilities: frozenset[Ability]
    window_steps: int | None  # every piece is exactly this many codec steps; None: any length
    output: str  # "midi" | "audio" (the codec's)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "abilities": sorted(self.abilities),
                "window_steps": self.window_steps, "output": self.output}  # fmt: skip


class CadenzaModule(pl.LightningModule):
    """Every family: registered by name, checkpoints with plain containers only."""

    family: ClassVar[str]
    # How a wrong checkpoint is named in the error `load` raises, and what to do instead.
    checkpoint_kind: ClassVar[str] = "Cadenza model"
    checkpoint_hint: ClassVar[str] = ""
    # DDP must look for parameters without gradients (a GAN's alternating steps leave one net
    # without any); the training loop asks the strategy for it only where a family says so.
    ddp_find_unused_parameters: ClassVar[bool] = False
    # Whether `load(map_location=...)` moves it there (generators); recommenders and classifiers
    # build their inputs on the CPU, so they stay there.
    runs_on_devices: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "family" in cls.__dict__:
            FAMILIES[cls.family] = cls

    # --- optimisation -------------------------------------------------------------------------
    def set_optimization(
        self, optimizer: Any, scheduler: Any = None, scheduler_monitor: Any = "val/nll"
    ) -> None:
        """Validate and keep the optimizer / scheduler partials of the model config."""
        for key, fn in (("optimizer", optimizer), ("scheduler", scheduler)):
            if fn is not None and not callable(fn):
                raise ConfigError(
                    f"model.{key} must be a partial (`_partial_: true` in the config), got {fn!r}"
                )
        if not isinstance(scheduler_monitor, str) or not scheduler_monitor:
            raise ConfigError("model.scheduler_monitor must be a metric key, e.g. val/nll")
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_monitor = scheduler_monitor

    def make_optimizer(self, params: Any, **defaults: Any) -> torch.optim.Optimizer:
        """The configured optimizer over `params` (Adam with `defaults` when none is set)."""
        factory = getattr(self, "optimizer_factory", None)
        if factory is None:
            return torch.optim.Adam(params, **({"lr": 1e-3} | defaults))
        return factory(params=params)

    def configure_optimizers(self) -> Any:
        opt = self.make_optimizer(self.parameters())
        if getattr(self, "scheduler_factory", None) is None:
            return opt
        sched = self.scheduler_factory(optimizer=opt)
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "monitor": self.scheduler_monitor},
        }

    # --- checkpoints --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Plain containers only, so `load` can use torch.load(weights_only=True): a checkpoint
        # from a stranger then cannot run code. The family name lets `load` pick the class.
        hp = _plain(dict(checkpoint.get("hyper_parameters") or {}))
        hp["family"] = self.family
        checkpoint["hyper_parameters"] = hp
        checkpoint.pop("hparams_type", None)

    @classmethod
    def load(cls, ckpt_path: str | Path, map_location: str | torch.device = "cpu") -> Any:
        """Rebuild a family from a checkpoint: codec and hyper-parameters come from inside it.
        A generative model is on `map_location` (a device this process can use); recommenders
        and classifiers run on the CPU (a few small matrix products), wherever it was read."""
        path = Path(ckpt_path)
        model = cls.from_checkpoint(read_checkpoint(path, map_location), path)
        return model.to(torch.device(map_location)) if model.runs_on_devices else model

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], path: str | Path) -> Any:
        """`load` for a checkpoint dict already read (weights only) from `path`. Called on a
        base class it builds whichever family the checkpoint names, as long as that family is
        a subclass (GenerativeModule.load refuses a recommender and says so)."""
        hp = dict(ckpt.get("hyper_parameters") or {})
        family = hp.pop("family", None)
        target = FAMILIES.get(family)
        if target is None or not issubclass(target, cls):
            known = sorted(f for f, c in FAMILIES.items() if issubclass(c, cls))
            raise CadenzaError(f"{path} is not a {cls.checkpoint_kind} checkpoint (family="
                               f"{family!r}; this reads {known}){cls.checkpoint_hint}")  # fmt: skip
        model = target(**_known_arguments(target, hp, path))
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()


class GenerativeModule(CadenzaModule):
    """A family that writes music. Subclasses set `family`, override `abilities` when they can
    do more than sample new pieces, and set `window_steps` when every piece has one length."""

    runs_on_devices: ClassVar[bool] = True

    checkpoint_kind = "Cadenza generative model"

    def __init__(self, codec: dict | Codec) -> None:
        super().__init__()
        self.codec = codec if isinstance(codec, Codec) else Codec.from_dict(dict(codec))
        self.window_steps: int | None = None

    # --- the declaration ----------------------------------------------------------------------
    @property
    def abilities(self) -> frozenset[Ability]:
        return frozenset({Ability.PRIOR})

    def declaration(self) -> Declaration:
        # frozenset(): a family that declares a plain set still gives a hashable declaration.
        return Declaration(self.family, frozenset(self.abilities), self.window_steps,
                           self.codec.output)  # fmt: skip

    def can(self, ability: Ability) -> bool:
        return ability in self.abilities

    @property
    def styles(self) -> list[str]:
        """The named styles a style-conditional family writes in (Ability.STYLE); else none."""
        return []

    def require(self, ability: Ability) -> None:
        """One clear error when asked for an ability this family has not declared."""
        if ability in self.abilities:
            return
        can = "; ".join(ABILITY_WORDS[a] for a in Ability if a in self.abilities)
        raise AbilityError(
            f"this {self.family} model cannot {ABILITY_WORDS[ability]}; it can: {can or 'nothing'}"
        )

    # --- the family contract ------------------------------------------------------------------
    def sample(
        self,
        n: int,
        *,
        condition: Any = None,
        max_len: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        **controls: Any,
    ) -> list[torch.Tensor]:
        """n pieces as codec tensors (tokens [L] or frames [T, D]), each of its own length, on
        the CPU.

        max_len: the most steps a returned piece holds, a primer included (a family with a
            window, `window_steps`, may only crop it); None: the family's default length.
        temperature: scales the logits (or the prior's spread, for latent families).
        generator: a torch.Generator, or the service's RowGenerators (one seeded stream per
            request in a batch). Draw only through `cadenza.models.sampling` (`uniform`,
            `normal`, `sample_categorical`), which read either, so a request batched with
            others gets the notes it would get alone.
        condition: the condition of a family that declares CONDITION (ignored otherwise).
        controls: the ability-specific inputs a family declares (`top_k`, `top_p` with
            TOKEN_FILTERS, `primer` with CONTINUE, `style` with STYLE, `attribute` with
            ATTRIBUTES); one asked of a family without its ability is `self.require(...)`'s
            clear error, as LSTMModule.sample does for top_k.
        """
        raise NotImplementedError

    # The methods of the optional abilities. A family that declares one overrides its method;
    # for any other family they answer with the clear error.
    def continue_from(self, primer: torch.Tensor, n: int = 1, steps: int | None = None,
                      **controls: Any) -> list[torch.Tensor]:  # fmt: skip
        self.require(Ability.CONTINUE)
        raise NotImplementedError

    def condition_from_roll(self, x: torch.Tensor) -> torch.Tensor:
        """The condition track of an encoded piece."""
        self.require(Ability.CONDITION)
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.require(Ability.RECONSTRUCT)
        raise NotImplementedError

    def decode(self, z: torch.Tensor, temperature: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """Codes [B, Z] -> windows; temperature None decodes greedily."""
        self.require(Ability.RECONSTRUCT)
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor, **controls: Any) -> torch.Tensor:
        self.require(Ability.RECONSTRUCT)
        raise NotImplementedError

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8,
                    **controls: Any) -> torch.Tensor:  # fmt: skip
        self.require(Ability.INTERPOLATE)
        raise NotImplementedError

    def interpolation_latents(self, steps: int, generator: torch.Generator | None = None) -> list:
        self.require(Ability.LATENT_WALK)
        raise NotImplementedError

    def attribute_shift(self, name: str, amount: float) -> torch.Tensor:
        self.require(Ability.ATTRIBUTES)
        raise NotImplementedError

    def attribute_gaps_by_name(self) -> dict[str, float]:
        """The attributes `attribute_shift` can move -> what an amount of 1.0 asks for, in the
        attribute's units (metrics.attributes.ATTRIBUTES)."""
        self.require(Ability.ATTRIBUTES)
        raise NotImplementedError

    def as_piece(self, x: torch.Tensor) -> torch.Tensor:
        """A window as the model returns it -> the codec's own shape (identity by default)."""
        return x

    @classmethod
    def load(
        cls, ckpt_path: str | Path, map_location: str | torch.device = "cpu"
    ) -> GenerativeModule:
        return super().load(ckpt_path, map_location)


def checkpoint_file(path: str | Path, key: str | None = None, kind: str = "file") -> Path:
    """The checkpoint file `path` names, or a CadenzaError saying what to pass: a folder (a
    run's, an experiment's) names the file in it. `key`: the command's key as typed, said back
    (`generator=x: checkpoint not found (pass generator=...)`); without it (a Python caller's
    path) the message says what to give, not a command's key."""
    path = Path(path)
    said = f"{key}={path}" if key else str(path)
    give = f"pass {key}=/path/to/{kind}.ckpt" if key else "give the path of a .ckpt file"
    if path.is_dir():
        files = [path / name for name in ("latest.ckpt", "last.ckpt")]
        inside = next((f for f in files if f.is_file()), None)
        hint = f"did you mean {inside}?" if inside else give
        raise CadenzaError(f"{said} is a folder, not a checkpoint: {hint}")
    if not path.is_file():
        raise CadenzaError(f"{said}: checkpoint not found ({give})")
    return path


def read_checkpoint(
    path: Path, map_location: str | torch.device = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """A checkpoint's dict with the weights only (torch.load(weights_only=True): a file from a
    stranger cannot run code); a missing or unreadable file is a CadenzaError. `mmap`: tensors
    stay on disk until read, for a caller that looks at shapes and settings only."""
    checkpoint_file(path)
    device = torch.device(map_location)
    if device.type == "cuda" and not torch.cuda.is_available():
        # torch's own message would be read as a damaged file (_why_unreadable).
        raise CadenzaError(f"map_location={map_location}: this process sees no CUDA device "
                           f"(CUDA_VISIBLE_DEVICES, or a CPU build of torch); load {path.name} "
                           "with map_location='cpu'")  # fmt: skip
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user problem
        raise CadenzaError(f"cannot read checkpoint {path}: {_why_unreadable(path, e)}") from e


def _why_unreadable(path: Path, e: Exception) -> str:
    """What is wrong with a file torch.load refused, in words: its own message can be a bare
    number (random bytes read as a pickle) or nothing at all (an empty file)."""
    with open(path, "rb") as f:
        head = f.read(4)
    first = (str(e).strip().splitlines() or [""])[0][:160]
    if not head:
        return "the file is empty"
    if not head.startswith((b"PK", b"\x80")):  # neither torch's zip nor a pickle
        return f"not a PyTorch checkpoint (it starts with {head!r})"
    if "weights only load failed" in str(e).lower():
        return ("it holds objects that weights-only loading refuses to unpickle (it reads "
                "tensors and plain values only, so a file from a stranger cannot run code): "
                "not a Cadenza checkpoint, or not one to trust")  # fmt: skip
    if head.startswith(b"PK"):  # torch.save writes a zip archive
        return f"a damaged or truncated checkpoint archive ({type(e).__name__}: {first})"
    return f"unreadable ({type(e).__name__}: {first or 'no message'})"


def _known_arguments(target: type, hp: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The hyper-parameters the family's constructor still takes; a setting an older version
    saved and this one dropped is named in a warning, not a crash."""
    params = inspect.signature(target.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return hp
    unknown = sorted(set(hp) - set(params))
    if unknown:
        log.warning("%s: ignoring settings this version of %s no longer has: %s", path,
                    target.family, unknown)  # fmt: skip
    return {k: v for k, v in hp.items() if k in params}


def _plain(obj: Any) -> Any:
    """DictConfig / AttributeDict / tuples -> dicts, lists and primitives."""
    if isinstance(obj, DictConfig | ListConfig):
        obj = OmegaConf.to_container(obj, resolve=True)
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def check_int(name: str, value: Any, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Validate a config integer at start-up; the message names the key."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, str) or float(value) != int(value):
                raise ValueError
            value = int(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{name} must be an integer >= {minimum}, got {value!r}; "
                f"fix the override, e.g. {name}={max(minimum, 1) * 256}"
            ) from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value}")
    return value


SEED_MAX = 2**63 - 1  # what a torch.Generator takes


def check_seed(seed: Any, name: str = "seed") -> int:
    """A sampling seed: a whole number in 0..2**63-1 (1.0 is 1; 2**70 is an error naming the
    key, where torch.Generator said "Overflow when unpacking long long")."""
    return check_int(name, seed, minimum=0, maximum=SEED_MAX)


def check_float(
    name: str, value: Any, *, minimum: float = 0.0, maximum: float | None = None
) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        hi = "" if maximum is None else f" and <= {maximum}"
        raise ConfigError(f"{name} must be >= {minimum}{hi}, got {value}")
    return value


def codec_dict(codec: Any) -> dict[str, Any]:
    """A codec (object, dict or DictConfig) as a plain dict (JSON-safe), so checkpoints load
    with weights_only=True."""
    if isinstance(codec, Codec):
        return codec.to_dict()
    if isinstance(codec, DictConfig):
        return OmegaConf.to_container(codec, resolve=True)  # type: ignore[return-value]
    if isinstance(codec, dict):
        return dict(codec)
    raise ConfigError(f"model.codec must be a codec dict (codec.to_dict()), got {type(codec)}")
