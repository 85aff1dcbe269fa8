"""Convolutional encoder / decoder over spectrogram patches [B, T, F] (time x mel bands).

Four stride-2 2-D convolutions halve time and frequency each (a 16x smaller grid), so a patch
is padded to multiples of 16 on the way in and cropped on the way out: any window length or
band count works. The decoder mirrors the encoder with transposed convolutions.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

DOWNSAMPLING = 16  # 2 ** (number of stride-2 layers)


def _padded(n: int) -> int:
    return -(-n // DOWNSAMPLING) * DOWNSAMPLING


def _block(c_in: int, c_out: int, transpose: bool = False) -> nn.Sequential:
    conv = (
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
        if transpose
        else nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)
    )
    # GroupNorm, not BatchNorm: statistics per example keep DDP ranks and eval consistent.
    return nn.Sequential(conv, nn.GroupNorm(min(8, c_out), c_out), nn.SiLU())


class ConvEncoder(nn.Module):
    """[B, T, F] -> (mu [B, Z], sigma [B, Z])."""

    def __init__(self, steps: int, bands: int, channels: int, latent_size: int) -> None:
        super().__init__()
        self.steps, self.bands = steps, bands
        widths = [1, channels, channels * 2, channels * 4, channels * 8]
        self.convs = nn.Sequential(*[_block(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.grid = (_padded(steps) // DOWNSAMPLING, _padded(bands) // DOWNSAMPLING)
        flat = widths[-1] * self.grid[0] * self.grid[1]
        self.to_params = nn.Linear(flat, 2 * latent_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B = x.shape[0]
        pad_t, pad_f = _padded(self.steps) - x.shape[1], _padded(self.bands) - x.shape[2]
        h = F.pad(x, (0, pad_f, 0, pad_t)).unsqueeze(1)  # [B, 1, T', F']
        h = self.convs(h).reshape(B, -1)  # [B, C * T'/16 * F'/16]
        mu, pre_sigma = self.to_params(h).chunk(2, dim=-1)  # [B, Z] each
        return mu, F.softplus(pre_sigma) + 1e-4


class ConvDecoder(nn.Module):
    """z [B, Z] -> [B, T, F] in (0, 1) (sigmoid: the codec's frames are bounded)."""

    def __init__(self, steps: int, bands: int, channels: int, latent_size: int) -> None:
        super().__init__()
        self.steps, self.bands = steps, bands
        widths = [channels * 8, channels * 4, channels * 2, channels]
        self.grid = (_padded(steps) // DOWNSAMPLING, _padded(bands) // DOWNSAMPLING)
        self.width = widths[0]
        self.from_z = nn.Linear(latent_size, widths[0] * self.grid[0] * self.grid[1])
        self.deconvs = nn.Sequential(
            *[_block(a, b, transpose=True) for a, b in zip(widths[:-1], widths[1:])]
        )
        self.out = nn.ConvTranspose2d(widths[-1], 1, 4, stride=2, padding=1)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        B = z.shape[0]
        h = self.from_z(z).reshape(B, self.width, *self.grid)  # [B, C, T'/16, F'/16]
        h = self.out(self.deconvs(h))[:, 0]  # [B, T', F']
        return h[:, : self.steps, : self.bands]  # [B, T, F]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))
