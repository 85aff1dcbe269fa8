"""What a VAE's latent code holds: KL, active units, interpolation paths.

Active units (Burda et al., 2016): a latent dimension is active when its posterior mean moves
with the input, Cov_x(E_q[z_d | x]) > 0.01. Few active units with a small KL is posterior
collapse: the decoder has learned to ignore z.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

ACTIVE_UNIT_THRESHOLD = 0.01


def kl_to_standard_normal(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) in nats: mu, sigma [B, Z] -> [B]."""
    return 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).sum(dim=-1)


def slerp(a: torch.Tensor, b: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation, as MusicVAE: a, b [Z], alphas [S] in [0, 1] -> [S, Z].

    Under a Gaussian prior most mass sits near a shell; a straight line between two codes cuts
    through the low-norm middle, which decodes to atypical, often near-empty music.
    """
    a64, b64 = a.double(), b.double()
    cos = torch.dot(a64, b64) / (a64.norm() * b64.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    t = alphas.double()[:, None]
    if omega.abs() < 1e-6:  # (anti)parallel codes: the line is the arc
        out = (1 - t) * a64 + t * b64
    else:
        out = (torch.sin((1 - t) * omega) * a64 + torch.sin(t * omega) * b64) / torch.sin(omega)
    return out.to(a.dtype)


class ActiveUnits(Metric):
    """Counts active latent units from posterior means over an epoch (and over DDP ranks)."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    total: torch.Tensor
    total_sq: torch.Tensor
    n: torch.Tensor

    def __init__(self, latent: int, threshold: float = ACTIVE_UNIT_THRESHOLD, **kw: object):
        super().__init__(**kw)
        self.threshold = threshold
        self.add_state("total", torch.zeros(latent, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total_sq", torch.zeros(latent, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, mu: torch.Tensor) -> None:
        mu = mu.detach().double()  # [B, Z]
        self.total += mu.sum(0)
        self.total_sq += mu.pow(2).sum(0)
        self.n += mu.shape[0]

    def variances(self) -> torch.Tensor:
        """[Z] variance of each posterior-mean dimension over the inputs seen."""
        n = self.n.clamp_min(1)
        return self.total_sq / n - (self.total / n).pow(2)

    def compute(self) -> torch.Tensor:
        if self.n < 2:
            return torch.tensor(float("nan"), device=self.device)
        return (self.variances() > self.threshold).sum().float()
