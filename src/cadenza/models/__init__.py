"""Model families. Importing this package imports every module in it, and each family registers
itself with the contract (models/base.py) by subclassing it: a new family is one more module
here, with nothing to add to this file. The names below are the `_target_`s of configs/model/."""

from __future__ import annotations

import importlib
import pkgutil

from cadenza.models.base import (
    FAMILIES,
    Ability,
    AbilityError,
    CadenzaModule,
    Declaration,
    GenerativeModule,
)

for _module in pkgutil.iter_modules(__path__):
    if not _module.ispkg and _module.name not in ("base", "sampling"):
        importlib.import_module(f"{__name__}.{_module.name}")

from cadenza.models.classifier import ClassifierModule  # noqa: E402
from cadenza.models.gan import GANModule  # noqa: E402
from cadenza.models.lstm import LSTMModule  # noqa: E402
from cadenza.models.mel_vae import MelVAEModule  # noqa: E402
from cadenza.models.transformer import TransformerModule  # noqa: E402
from cadenza.models.vae import VAEModule  # noqa: E402

__all__ = [
    "FAMILIES", "Ability", "AbilityError", "CadenzaModule", "ClassifierModule", "Declaration",
    "GANModule",
    "GenerativeModule", "LSTMModule", "MelVAEModule", "TransformerModule", "VAEModule",
]  # fmt: skip
