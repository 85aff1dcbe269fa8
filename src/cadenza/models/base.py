"""GenerativeModule: the contract every model family keeps (DESIGN.md).

A family implements `training_step`/`validation_step` over `Batch` and
`sample(n, *, condition=None, max_len=None, temperature=1.0, generator=None) -> Tensor`
returning codec tensors. This base turns samples into MIDI (`generate`), owns the codec, and
loads any family from a checkpoint with the weights only (no pickled code is executed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch

from cadenza.errors import CadenzaError, ConfigError
from cadenza.representations.base import Codec

FAMILIES: dict[str, type[GenerativeModule]] = {}


class GenerativeModule(pl.LightningModule):
    family: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "family" in cls.__dict__:
            FAMILIES[cls.family] = cls

    def __init__(self, codec: dict | Codec) -> None:
        super().__init__()
        self.codec = codec if isinstance(codec, Codec) else Codec.from_dict(dict(codec))

    # --- the family contract ---------------------------------------------------------------
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
        """n pieces as codec tensors (tokens [L] or frames [T, D]), each of its own length."""
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------------
    def set_optimization(self, optimizer: Any, scheduler: Any, scheduler_monitor: Any) -> None:
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

    def configure_optimizers(self) -> Any:
        factory = getattr(self, "optimizer_factory", None)
        opt = (
            torch.optim.Adam(self.parameters(), lr=1e-3)
            if factory is None
            else factory(params=self.parameters())
        )
        if getattr(self, "scheduler_factory", None) is None:
            return opt
        sched = self.scheduler_factory(optimizer=opt)
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "monitor": self.scheduler_monitor},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Plain containers only, so `load` can use torch.load(weights_only=True): a checkpoint
        # from a stranger then cannot run code. The family name lets `load` pick the class.
        hp = _plain(dict(checkpoint.get("hyper_parameters") or {}))
        hp["family"] = self.family
        checkpoint["hyper_parameters"] = hp
        checkpoint.pop("hparams_type", None)

    @torch.no_grad()
    def generate(self, n: int, **kwargs: Any) -> list[Any]:
        """n pieces as PrettyMIDI objects."""
        was_training = self.training
        self.eval()
        try:
            return [self.codec.decode(x.cpu()) for x in self.sample(n, **kwargs)]
        finally:
            self.train(was_training)

    @classmethod
    def load(
        cls, ckpt_path: str | Path, map_location: str | torch.device = "cpu"
    ) -> GenerativeModule:
        """Rebuild any family from a checkpoint: codec and hyper-parameters come from inside it."""
        path = Path(ckpt_path)
        return cls.from_checkpoint(read_checkpoint(path, map_location), path)

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], path: str | Path) -> GenerativeModule:
        """`load` for a checkpoint dict already read (weights only) from `path`."""
        hp = ckpt.get("hyper_parameters") or {}
        family = hp.get("family")
        if family not in FAMILIES:
            raise CadenzaError(
                f"{path} is not a Cadenza model checkpoint (family={family!r}; known: "
                f"{sorted(FAMILIES)})"
            )
        target = FAMILIES[family]
        kwargs = {k: v for k, v in hp.items() if k != "family"}
        model = target(**kwargs)
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint's dict with the weights only (torch.load(weights_only=True): a file from a
    stranger cannot run code); a missing or unreadable file is a CadenzaError."""
    if not path.is_file():
        raise CadenzaError(f"checkpoint not found: {path} (pass ckpt_path=/path/to/file.ckpt)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user problem
        raise CadenzaError(f"cannot read checkpoint {path}: {e}") from e


def _plain(obj: Any) -> Any:
    """DictConfig / AttributeDict / tuples -> dicts, lists and primitives."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, DictConfig | ListConfig):
            obj = OmegaConf.to_container(obj, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
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
    return value


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
