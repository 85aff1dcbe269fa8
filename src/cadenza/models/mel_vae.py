"""MelVAEModule: the "mel_vae" family, a convolutional VAE over log-mel spectrogram patches.

Each example is a window of `bars` nominal bars of MelCodec frames [T, M] (e.g. 1 bar = 2 s =
172 frames x 80 bands at 22.05 kHz / hop 256). The encoder's 2-D convolutions see local
time-frequency shapes (onsets, harmonics, formants) the same anywhere in the patch; z is a
Gaussian code; the decoder paints the patch back. Reconstruction is a Laplace likelihood with a
fixed scale (an L1 loss, which keeps spectrograms sharper than L2's averaging); the KL term has
MusicVAE's linear warm-up and free bits. Samples and reconstructions are heard through the
codec's Griffin-Lim decoder.

Logged per epoch: `val/nll` (negative ELBO per mel bin, nats), `val/recon_db` (mean absolute
error of the posterior-mean reconstruction, dB), `val/lsd_db` (log-spectral distance, dB),
`val/kl` (nats per window) and `val/active_units`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from cadenza.data.batch import Batch
from cadenza.errors import ConfigError
from cadenza.metrics.likelihood import NLLAggregator
from cadenza.metrics.reconstruction import ActiveUnits, kl_to_standard_normal, slerp
from cadenza.models.base import Ability, GenerativeModule, check_float, check_int, codec_dict
from cadenza.models.components.conv_vae_nets import ConvDecoder, ConvEncoder
from cadenza.models.components.kl import KLSchedule
from cadenza.models.sampling import check_controls, normal

STAGES = ("val", "test")
RATIOS = ("nll", "recon_db", "lsd_db", "kl")


class MelVAEModule(GenerativeModule):
    family = "mel_vae"

    def __init__(
        self,
        codec: dict,
        bars: int = 1,
        latent_size: int = 128,
        channels: int = 32,
        recon_scale: float = 0.05,
        beta: float = 1.0,
        kl_warmup_steps: int = 2000,
        free_bits: float = 32.0,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/nll",
    ) -> None:
        codec = codec_dict(codec)
        super().__init__(codec)
        if self.codec.kind != "features":
            raise ConfigError(
                f"the mel_vae family reads audio feature frames (representation=mel), got "
                f"{self.codec.name}"
            )
        if bars is None:
            raise ConfigError(
                "model.bars is null: the mel_vae trains on fixed windows; set data.window_bars=1, "
                "which model.bars follows"
            )
        bars = check_int("model.bars", bars)
        latent_size = check_int("model.latent_size", latent_size)
        channels = check_int("model.channels", channels)
        recon_scale = check_float("model.recon_scale", recon_scale, minimum=1e-4)
        beta = check_float("model.beta", beta)
        kl_warmup_steps = check_int("model.kl_warmup_steps", kl_warmup_steps, minimum=0)
        free_bits = check_float("model.free_bits", free_bits)
        self.set_optimization(optimizer, scheduler, scheduler_monitor)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])

        self.window_steps = self.codec.steps_for_bars(bars)
        self.kl = KLSchedule(beta, kl_warmup_steps, free_bits)
        self.bands = self.codec.feature_dim
        T, M = self.window_steps, self.bands
        self.encoder = ConvEncoder(T, M, channels, latent_size)
        self.decoder = ConvDecoder(T, M, channels, latent_size)
        self.ratios = torch.nn.ModuleDict(
            {f"{s}_{m}": NLLAggregator() for s in STAGES for m in RATIOS}
        )
        self.active_units = torch.nn.ModuleDict({s: ActiveUnits(latent_size) for s in STAGES})

    # --- shapes ------------------------------------------------------------------------------
    def check_window(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, M] float, checked against the window this model was built for."""
        if x.dim() != 3 or tuple(x.shape[1:]) != (self.window_steps, self.bands):
            raise ConfigError(
                f"this mel VAE reads windows of {self.hparams.bars} bar(s) = [B, "
                f"{self.window_steps}, {self.bands}] frames, got {list(x.shape)}: set "
                f"data.window_bars={self.hparams.bars}"
            )
        return x.float()

    @property
    def abilities(self) -> frozenset[Ability]:
        return frozenset({Ability.PRIOR, Ability.RECONSTRUCT, Ability.INTERPOLATE})

    # --- the VAE interface -------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows [B, T, M] -> posterior mu, sigma [B, Z]."""
        return self.encoder(self.check_window(x).to(self.device))

    @torch.no_grad()
    def decode(
        self, z: torch.Tensor, temperature: float | None = None, generator: Any = None
    ) -> torch.Tensor:
        """Codes [B, Z] -> windows [B, T, M] in [0, 1], on the CPU. The decoder paints the
        patch in one pass, so there is nothing to draw: temperature and generator change
        nothing (sample() scales the code instead)."""
        return self.decoder(z.to(self.device)).cpu()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """Windows [B, T, M] -> decode(mu) [B, T, M]."""
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def interpolate(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        steps: int = 8,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Two windows [T, M] -> [steps, T, M] along the slerp of their codes. The decoder
        draws nothing (its mel frames are its means): `generator` is taken, as VAE's, unused."""
        steps = check_int("steps", steps, minimum=2)
        mu, _ = self.encode(torch.stack([torch.as_tensor(a), torch.as_tensor(b)]))
        return self.decode(slerp(mu[0], mu[1], torch.linspace(0, 1, steps, device=mu.device)))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        condition: Any = None,
        max_len: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        **_: Any,
    ) -> list[torch.Tensor]:
        """n windows [T, M] from z ~ N(0, temperature^2 I). max_len crops (never extends)."""
        n = check_int("n", n)
        check_controls(temperature)
        if max_len is not None and check_int("max_len", max_len) > self.window_steps:
            raise ConfigError(
                f"this mel VAE writes {self.hparams.bars}-bar windows ({self.window_steps} "
                f"frames); max_len={max_len} is longer"
            )
        z = normal((n, self.hparams.latent_size), generator=generator) * temperature
        return [x[:max_len] for x in self.decode(z)]

    # --- training ----------------------------------------------------------------------------
    def _recon_nll(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Laplace NLL per window [B], nats: |x - x_hat| / b + log(2b) summed over bins."""
        b = self.hparams.recon_scale
        return ((x - x_hat).abs() / b + math.log(2 * b)).flatten(1).sum(1)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x = self.check_window(batch.x)
        mu, sigma = self.encoder(x)
        x_hat = self.decoder(mu + sigma * torch.randn_like(sigma))
        recon = self._recon_nll(x, x_hat)  # [B]
        kl = kl_to_standard_normal(mu, sigma)  # [B]
        beta = self.kl.beta_at(self.global_step)
        loss = (recon.mean() + self.kl.penalty(kl, self.global_step)) / x[0].numel()
        B = len(batch)
        self.log("train/loss", loss, on_step=True, prog_bar=True, batch_size=B)
        top_db = self.codec.features.top_db
        self.log_dict(
            {"train/recon_db": (x - x_hat).abs().mean() * top_db, "train/kl": kl.mean(),
             "train/beta": beta},
            on_step=True, batch_size=B,
        )  # fmt: skip
        return loss

    def _evaluate(self, batch: Batch, stage: str) -> None:
        x = self.check_window(batch.x)
        B, T, M = x.shape
        mu, sigma = self.encoder(x)
        recon = self._recon_nll(x, self.decoder(mu + sigma * torch.randn_like(sigma)))
        kl = kl_to_standard_normal(mu, sigma)
        err_db = (x - self.decoder(mu)) * self.codec.features.top_db  # [B, T, M]
        r = self.ratios
        r[f"{stage}_nll"].update((recon + kl).sum(), B * T * M)  # -ELBO per bin: an NLL bound
        r[f"{stage}_recon_db"].update(err_db.abs().sum(), B * T * M)
        r[f"{stage}_lsd_db"].update(err_db.pow(2).mean(-1).sqrt().sum(), B * T)
        r[f"{stage}_kl"].update(kl.sum(), B)
        self.active_units[stage].update(mu)
        for m in RATIOS:
            self.log(f"{stage}/{m}", r[f"{stage}_{m}"], on_step=False, on_epoch=True,
                     prog_bar=m == "recon_db")  # fmt: skip
        self.log(f"{stage}/active_units", self.active_units[stage], on_step=False, on_epoch=True)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")
