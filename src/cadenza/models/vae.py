"""VAEModule: the "vae" family, MusicVAE over fixed windows of melody (or multi-track) tokens.

Training: bidirectional-LSTM encoder -> z ~ q(z|x) -> flat or hierarchical LSTM decoder,
teacher forced, with parallel scheduled sampling (Mihaylova & Martins, 2019: a first pass
without gradients guesses every step, a random share of the inputs is swapped for the guesses,
a second pass learns) so that the decoder learns to read its own outputs. The KL term is
weighted by a beta that ramps up linearly (annealing) and is free below `free_bits` bits, as in
MusicVAE: that much information in z costs nothing, which keeps the posterior from collapsing.

Validation logs per epoch: reconstruction accuracy teacher forced and fully sampled (greedy,
the decoder reading only its own outputs), KL, ELBO, active units, and refits the attribute
vectors (density, pitch range, ...) that `sample(attribute=...)` adds to z.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cadenza.data.batch import Batch
from cadenza.errors import ConfigError
from cadenza.metrics.attributes import ATTRIBUTES, attribute_table, attribute_vectors
from cadenza.metrics.likelihood import NLLAggregator
from cadenza.metrics.reconstruction import ActiveUnits, kl_to_standard_normal, slerp
from cadenza.models.base import Ability, GenerativeModule, check_float, check_int, codec_dict
from cadenza.models.components.kl import KLSchedule
from cadenza.models.components.vae_nets import (
    BiLSTMEncoder,
    FlatDecoder,
    HierarchicalDecoder,
    HierarchicalEncoder,
    shift_right,
)
from cadenza.models.sampling import (
    GREEDY_TEMPERATURE,
    check_controls,
    event_first_argmax,
    normal,
    sample_categorical,
)

STAGES = ("val", "test")
# Metric names logged per stage; each is an exact ratio of sums over the epoch and all ranks.
# Greedy decoding: "event" picks hold / rest / note-on first, then the pitch; "token" the likeliest
# id. Both are argmaxes; they differ when a note surely starts but its pitch is uncertain.
GREEDY = ("event", "token")
RATIOS = ("recon_acc_tf", "recon_acc_sampled", "recon_nll", "kl", "elbo", "nll")


class VAEModule(GenerativeModule):
    family = "vae"

    def __init__(
        self,
        codec: dict,
        bars: int = 2,
        decoder: str = "flat",
        encoder: str = "flat",
        latent_size: int = 256,
        embedding_dim: int = 64,
        encoder_hidden: int = 512,
        encoder_layers: int = 1,
        decoder_hidden: int = 512,
        decoder_layers: int = 2,
        conductor_hidden: int = 512,
        conductor_layers: int = 2,
        dropout: float = 0.0,
        beta: float = 0.2,
        kl_warmup_steps: int = 2000,
        free_bits: float = 48.0,
        scheduled_sampling_rate: float = 0.0,
        scheduled_sampling_max: float = 0.5,
        input_dropout: float = 0.0,
        bar_content_weight: float = 0.0,
        sampled_eval_batches: int | None = None,
        greedy: str = "event",
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/nll",
    ) -> None:
        codec = codec_dict(codec)
        super().__init__(codec)
        if self.codec.kind != "tokens" or not hasattr(self.codec, "window_starts"):
            raise ConfigError(
                f"the vae family needs a windowed token codec (representation=melody or "
                f"multitrack_melody), got {self.codec.name}"
            )
        if bars is None:
            raise ConfigError(
                "model.bars is null: the vae family trains on fixed windows; set "
                "data.window_bars=2 (or 16), which model.bars follows"
            )
        bars = check_int("model.bars", bars)
        for key, value in (("decoder", decoder), ("encoder", encoder)):
            if value not in ("flat", "hierarchical"):
                raise ConfigError(f"model.{key} must be 'flat' or 'hierarchical', got {value!r}")
        latent_size = check_int("model.latent_size", latent_size)
        embedding_dim = check_int("model.embedding_dim", embedding_dim)
        encoder_hidden = check_int("model.encoder_hidden", encoder_hidden)
        encoder_layers = check_int("model.encoder_layers", encoder_layers)
        decoder_hidden = check_int("model.decoder_hidden", decoder_hidden)
        decoder_layers = check_int("model.decoder_layers", decoder_layers)
        conductor_hidden = check_int("model.conductor_hidden", conductor_hidden)
        conductor_layers = check_int("model.conductor_layers", conductor_layers)
        dropout = check_float("model.dropout", dropout, maximum=0.99)
        beta = check_float("model.beta", beta)
        kl_warmup_steps = check_int("model.kl_warmup_steps", kl_warmup_steps, minimum=0)
        free_bits = check_float("model.free_bits", free_bits)
        scheduled_sampling_rate = check_float(
            "model.scheduled_sampling_rate", scheduled_sampling_rate
        )
        scheduled_sampling_max = check_float(
            "model.scheduled_sampling_max", scheduled_sampling_max, maximum=1.0
        )
        input_dropout = check_float("model.input_dropout", input_dropout, maximum=0.99)
        bar_content_weight = check_float("model.bar_content_weight", bar_content_weight)
        if bar_content_weight > 0 and decoder != "hierarchical":
            raise ConfigError(
                "model.bar_content_weight trains the conductor's bar embeddings: it needs "
                f"model.decoder=hierarchical, got {decoder!r}"
            )
        if greedy not in GREEDY:
            raise ConfigError(f"model.greedy must be one of {list(GREEDY)}, got {greedy!r}")
        if sampled_eval_batches is not None:
            sampled_eval_batches = check_int("model.sampled_eval_batches", sampled_eval_batches)
        self.set_optimization(optimizer, scheduler, scheduler_monitor)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])

        self.window_steps = self.codec.steps_for_bars(bars)  # every example is this long
        events = self.codec.token_events if greedy == "event" else None
        self.register_buffer(
            "token_events",
            torch.tensor(events if events is not None else [], dtype=torch.long),
            persistent=False,
        )
        self.kl = KLSchedule(beta, kl_warmup_steps, free_bits)
        self.tracks = self.codec.row_shape[0] if self.codec.row_shape else 1
        V, K = self.codec.vocab_size, self.tracks
        self.encoder: BiLSTMEncoder | HierarchicalEncoder
        if encoder == "flat":
            self.encoder = BiLSTMEncoder(
                V, K, embedding_dim, encoder_hidden, encoder_layers, latent_size
            )
        else:
            self.encoder = HierarchicalEncoder(
                V, K, embedding_dim, encoder_hidden, latent_size, bars
            )
        self.decoder: FlatDecoder | HierarchicalDecoder
        if decoder == "flat":
            self.decoder = FlatDecoder(
                V, K, embedding_dim, decoder_hidden, decoder_layers, latent_size, dropout
            )
        else:
            self.decoder = HierarchicalDecoder(
                V, K, embedding_dim, decoder_hidden, decoder_layers, latent_size, bars,
                conductor_hidden, conductor_layers, dropout,
                content_head=bar_content_weight > 0,
            )  # fmt: skip
        # Attribute vectors [A, Z] and the attribute gap [A] they span, refit every validation
        # epoch (so every checkpoint carries its own) or by fit_attributes().
        self.register_buffer("attribute_vectors", torch.zeros(len(ATTRIBUTES), latent_size))
        self.register_buffer("attribute_gaps", torch.zeros(len(ATTRIBUTES)))
        self.ratios = torch.nn.ModuleDict(
            {f"{s}_{m}": NLLAggregator() for s in STAGES for m in RATIOS}
        )
        self.active_units = torch.nn.ModuleDict({s: ActiveUnits(latent_size) for s in STAGES})
        self._attr_codes: list[np.ndarray] = []
        self._attr_windows: list[np.ndarray] = []

    # --- shapes ----------------------------------------------------------------------------
    def as_tracks(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens [B, T] (melody) or [B, T, K] -> [B, T, K], checked against the window."""
        x = x[..., None] if x.dim() == 2 else x
        if x.dim() != 3 or x.shape[1:] != (self.window_steps, self.tracks):
            raise ConfigError(
                f"this VAE reads windows of {self.hparams.bars} bars = [B, {self.window_steps}, "
                f"{self.tracks}] tokens, got {list(x.shape)}: set data.window_bars="
                f"{self.hparams.bars}"
            )
        return x.long()

    def as_piece(self, x: torch.Tensor) -> torch.Tensor:
        """[T, K] -> the codec's own shape ([T] for a melody)."""
        return x[..., 0] if not self.codec.row_shape else x

    @property
    def abilities(self) -> frozenset[Ability]:
        return frozenset({Ability.PRIOR, Ability.RECONSTRUCT, Ability.INTERPOLATE,
                          Ability.ATTRIBUTES})  # fmt: skip

    def greedy(self, logits: torch.Tensor) -> torch.Tensor:
        """The decoder's deterministic pick, logits [..., V] -> ids [...]: event first, then
        pitch (model.greedy=event, for codecs that group ids into events), or the likeliest id."""
        if len(self.token_events):
            return event_first_argmax(logits, self.token_events)
        return logits.float().argmax(-1)

    # --- the VAE interface -----------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows [B, T(, K)] -> posterior mu, sigma [B, Z]."""
        return self.encoder(self.as_tracks(x).to(self.device))

    @torch.no_grad()
    def decode(
        self,
        z: torch.Tensor,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Codes [B, Z] -> windows [B, T, K] on the CPU; temperature None decodes greedily."""
        if temperature is not None:
            check_controls(temperature)

        def pick(logits: torch.Tensor) -> torch.Tensor:
            if temperature is None or temperature <= GREEDY_TEMPERATURE:
                return self.greedy(logits)
            return sample_categorical(logits, temperature=temperature, generator=generator)

        was_training = self.training
        self.eval()
        try:
            return self.decoder.generate(z.to(self.device), self.window_steps, pick).cpu()
        finally:
            self.train(was_training)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """Windows [B, T(, K)] -> decode(mu) [B, T, K]."""
        mu, _ = self.encode(x)
        return self.decode(mu, temperature)

    @torch.no_grad()
    def interpolate(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        steps: int = 8,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Two windows [T(, K)] -> `steps` windows [steps, T, K] along the slerp of their codes
        (endpoints included); with a temperature, `generator` draws the notes."""
        steps = check_int("steps", steps, minimum=2)
        mu, _ = self.encode(torch.stack([torch.as_tensor(a), torch.as_tensor(b)]))
        path = slerp(mu[0], mu[1], torch.linspace(0, 1, steps, device=mu.device))
        return self.decode(path, temperature, generator=generator)

    def attribute_shift(self, name: str, amount: float) -> torch.Tensor:
        """[Z]: `amount` times the named attribute vector (fit from data; see fit_attributes)."""
        if name not in ATTRIBUTES:
            raise ConfigError(f"unknown attribute {name!r}; known: {sorted(ATTRIBUTES)}")
        a = list(ATTRIBUTES).index(name)
        if float(self.attribute_gaps[a]) == 0.0:
            raise ConfigError(
                f"this checkpoint has no {name!r} attribute vector (no validation epoch ran, or "
                "the data has no spread in it)"
            )
        return float(amount) * self.attribute_vectors[a]

    def attribute_gaps_by_name(self) -> dict[str, float]:
        """Fitted attributes -> the gap between the data's top and bottom quarters (what an
        amount of 1.0 asks for); an attribute without a vector is left out."""
        gaps = self.attribute_gaps.tolist()
        return {name: round(gap, 4) for name, gap in zip(ATTRIBUTES, gaps) if gap != 0.0}

    @torch.no_grad()
    def fit_attributes(self, windows: torch.Tensor, batch_size: int = 256) -> None:
        """Refit the attribute vectors from windows [N, T(, K)] (e.g. the training windows)."""
        x = self.as_tracks(torch.as_tensor(windows))
        codes = [self.encode(x[i : i + batch_size])[0].cpu() for i in range(0, len(x), batch_size)]
        self._set_attributes(torch.cat(codes).numpy(), x.cpu().numpy())

    def _set_attributes(self, codes: np.ndarray, windows: np.ndarray) -> None:
        """codes [N, Z] and their windows [N, T, K] -> attribute buffers."""
        table = attribute_table(
            self.codec, [self.as_piece(torch.as_tensor(w)).numpy() for w in windows]
        )
        vectors, gaps = attribute_vectors(codes, table)
        self.attribute_vectors.copy_(torch.as_tensor(vectors, dtype=torch.float32))
        self.attribute_gaps.copy_(torch.as_tensor(gaps, dtype=torch.float32))

    # --- the family contract ----------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        condition: Any = None,
        max_len: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        attribute: tuple[str, float] | None = None,
    ) -> list[torch.Tensor]:
        """n windows from the prior z ~ N(0, I) (plus an attribute shift), each [T] or [T, K].

        A VAE's length is its window (model.bars); max_len, if given, must not exceed it and
        crops. `condition` is ignored: this family is unconditional.
        """
        n = check_int("n", n)
        check_controls(temperature)
        if max_len is not None and check_int("max_len", max_len) > self.window_steps:
            raise ConfigError(
                f"this VAE writes {self.hparams.bars}-bar windows ({self.window_steps} steps); "
                f"max_len={max_len} is longer"
            )
        z = normal((n, self.hparams.latent_size), generator=generator)
        if attribute is not None:
            z = z + self.attribute_shift(*attribute).cpu()
        out = self.decode(z, temperature, generator)
        return [self.as_piece(x[:max_len]) for x in out]

    # --- training ---------------------------------------------------------------------------
    def sampling_probability(self) -> float:
        """MusicVAE's inverse-sigmoid schedule, capped: 1 - r / (r + exp(step / r))."""
        r = self.hparams.scheduled_sampling_rate
        if r <= 0:
            return 0.0
        p = 1.0 - r / (r + math.exp(min(self.global_step / r, 50.0)))
        return min(p, self.hparams.scheduled_sampling_max)

    def _losses(
        self, x: torch.Tensor, z: torch.Tensor, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> logits [B, T, K, V], reconstruction NLL per window [B] (nats)."""
        logits = self.decoder(z, inputs)
        nll = F.cross_entropy(logits.flatten(0, 2).float(), x.flatten(), reduction="none")
        return logits, nll.view(x.shape[0], -1).sum(1)

    def _bar_content_nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x [B, T, K], z [B, Z] -> [B]: binary cross-entropy (nats, summed over bars, tracks and
        ids) of the conductor's guess of which ids each bar holds.

        An auxiliary target (model.bar_content_weight): a 16-bar model learned rhythm long
        before pitch (onset F1 0.86, onset-and-pitch F1 0.19; BENCHMARKS.md). This asks z,
        through each bar's embedding, for the bar's pitches directly, a gradient path of one
        conductor step instead of a run of bar-decoder steps.
        """
        B, T, K = x.shape
        U = self.hparams.bars
        present = F.one_hot(x.view(B, U, T // U, K), self.codec.vocab_size).amax(2)  # [B,U,K,V]
        logits = self.decoder.bar_content(z)
        bce = F.binary_cross_entropy_with_logits(logits.float(), present.float(), reduction="none")
        return bce.flatten(1).sum(1)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x = self.as_tracks(batch.x)
        mu, sigma = self.encoder(x)
        z = mu + sigma * torch.randn_like(sigma)
        inputs = shift_right(x)
        p = self.sampling_probability()
        if p > 0:
            with torch.no_grad():
                guess = sample_categorical(self.decoder(z, inputs))  # [B, T, K]
            swap = torch.rand(x.shape[:2], device=x.device)[..., None] < p
            inputs = torch.where(swap, shift_right(guess), inputs)
        if self.hparams.input_dropout > 0:
            # Word dropout (Bowman et al., 2016): a share of the previous tokens the decoder
            # reads become the start symbol, so it must take what it writes from z.
            drop = torch.rand(x.shape[:2], device=x.device)[..., None] < self.hparams.input_dropout
            inputs = inputs.masked_fill(drop, 0)
        _, recon = self._losses(x, z, inputs)
        kl = kl_to_standard_normal(mu, sigma)  # [B]
        beta = self.kl.beta_at(self.global_step)
        loss = recon.mean() + self.kl.penalty(kl, self.global_step)
        B = len(batch)
        if self.hparams.bar_content_weight > 0:
            content = self._bar_content_nll(x, z)  # [B]
            loss = loss + self.hparams.bar_content_weight * content.mean()
            self.log("train/bar_content_nll", content.mean(), on_step=True, batch_size=B)
        self.log("train/loss", loss, on_step=True, prog_bar=True, batch_size=B)
        self.log_dict(
            {"train/recon_nll": recon.mean(), "train/kl": kl.mean(), "train/beta": beta,
             "train/sampling_probability": p},
            on_step=True, batch_size=B,
        )  # fmt: skip
        return loss

    def _evaluate(self, batch: Batch, batch_idx: int, stage: str) -> None:
        x = self.as_tracks(batch.x)
        B, T, K = x.shape
        mu, sigma = self.encoder(x)
        inputs = shift_right(x)
        # The ELBO with one posterior draw; accuracies from the posterior mean, as a producer
        # reconstructs.
        _, recon = self._losses(x, mu + sigma * torch.randn_like(sigma), inputs)
        logits_mu = self.decoder(mu, inputs)
        kl = kl_to_standard_normal(mu, sigma)
        r = self.ratios
        r[f"{stage}_recon_acc_tf"].update((self.greedy(logits_mu) == x).sum(), x.numel())
        limit = self.hparams.sampled_eval_batches
        if stage == "test" or limit is None or batch_idx < limit:
            guess = self.decoder.generate(mu, T, self.greedy)
            r[f"{stage}_recon_acc_sampled"].update((guess == x).sum(), x.numel())
        r[f"{stage}_recon_nll"].update(recon.sum(), B)
        r[f"{stage}_kl"].update(kl.sum(), B)
        r[f"{stage}_elbo"].update(-(recon + kl).sum(), B)
        r[f"{stage}_nll"].update((recon + kl).sum(), B * T * K)  # -ELBO per token: an NLL bound
        self.active_units[stage].update(mu)
        for m in RATIOS:
            self.log(f"{stage}/{m}", r[f"{stage}_{m}"], on_step=False, on_epoch=True,
                     prog_bar=m == "recon_acc_sampled")  # fmt: skip
        self.log(f"{stage}/active_units", self.active_units[stage], on_step=False, on_epoch=True)
        if stage == "val":
            self._attr_codes.append(mu.detach().float().cpu().numpy())
            self._attr_windows.append(x.cpu().numpy())

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def on_validation_epoch_end(self) -> None:
        if self._attr_codes:
            self._set_attributes(
                np.concatenate(self._attr_codes), np.concatenate(self._attr_windows)
            )
            if self.trainer.world_size > 1:  # each rank fit on its shard: average the estimates
                for buf in (self.attribute_vectors, self.attribute_gaps):
                    buf.copy_(self.trainer.strategy.reduce(buf.to(self.device), reduce_op="mean"))
        self._attr_codes, self._attr_windows = [], []
