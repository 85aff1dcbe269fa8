"""Model families. Importing this package registers every family with GenerativeModule."""

from __future__ import annotations

from cadenza.models.base import FAMILIES, GenerativeModule
from cadenza.models.gan import GANModule
from cadenza.models.lstm import LSTMModule
from cadenza.models.mel_vae import MelVAEModule
from cadenza.models.vae import VAEModule

__all__ = ["FAMILIES", "GANModule", "GenerativeModule", "LSTMModule", "MelVAEModule", "VAEModule"]
