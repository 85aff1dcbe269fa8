"""Likelihood metrics: unit conversions and an exact epoch-level NLL.

Averaging per-batch means is wrong when batches hold different numbers of frames or tokens (the
last batch, variable-length pieces, uneven DDP shards). `NLLAggregator` keeps the two sums and
divides once, after torchmetrics has summed them over ranks.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric

LN2 = math.log(2.0)


def nats_to_bits(nats: float | torch.Tensor) -> float | torch.Tensor:
    return nats / LN2


def perplexity(nll_per_token: float | torch.Tensor) -> float | torch.Tensor:
    """exp(NLL in nats per token)."""
    if isinstance(nll_per_token, torch.Tensor):
        return torch.exp(nll_per_token)
    return math.exp(nll_per_token)


class NLLAggregator(Metric):
    """Accumulates (nll_sum, count) over batches and ranks; compute() -> sum / count.

    float64 states so that 10^7 summed frames lose no precision.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    nll_sum: torch.Tensor
    count: torch.Tensor

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.add_state("nll_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, nll_sum: torch.Tensor | float, count: torch.Tensor | float) -> None:
        self.nll_sum += torch.as_tensor(nll_sum, dtype=torch.float64, device=self.device).detach()
        self.count += torch.as_tensor(count, dtype=torch.float64, device=self.device).detach()

    def compute(self) -> torch.Tensor:
        # An empty epoch is NaN rather than 0, so it can never pass for a perfect model.
        if self.count <= 0:
            return torch.tensor(float("nan"), dtype=torch.float32, device=self.device)
        return (self.nll_sum / self.count).float()
