"""The KL term of both VAE families (MusicVAE's recipe): a weight that ramps up linearly over
the first optimizer steps (KL annealing), and free bits: KL below `free_bits` bits per window
costs nothing, which keeps the posterior from collapsing while the decoder is still weak."""

from __future__ import annotations

import math

import torch


class KLSchedule:
    def __init__(self, beta: float, warmup_steps: int, free_bits: float) -> None:
        self.beta, self.warmup_steps, self.free_bits = float(beta), int(warmup_steps), free_bits

    def beta_at(self, step: int) -> float:
        """The KL weight after `step` optimizer steps."""
        w = self.warmup_steps
        return self.beta * (1.0 if w == 0 else min(1.0, step / w))

    def penalty(self, kl: torch.Tensor, step: int) -> torch.Tensor:
        """KL per window [B] (nats) -> the batch's weighted KL above the free bits (scalar)."""
        free_nats = self.free_bits * math.log(2.0)
        return self.beta_at(step) * (kl - free_nats).clamp_min(0).mean()
