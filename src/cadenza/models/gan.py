"""GANModule: the "gan" family, MuseGAN over fixed phrases of multi-track piano rolls.

A phrase is `bars` bars of every track at once, generated in one forward pass (no left-to-right
sampling), which is what makes a GAN the fast family for drafts of whole arrangements.

Objective, `objective`:
  wgan_gp  MuseGAN's own: Wasserstein critic with gradient penalty (Gulrajani et al., 2017),
           `n_critic` critic updates per generator update.
  r1       non-saturating loss with an R1 penalty on real data (Mescheder et al., 2018, "Which
           training methods for GANs do actually converge?": locally convergent where WGAN-GP
           is not guaranteed to be), applied lazily every `r1_every` critic steps as StyleGAN2
           does. One critic step per generator step, and the penalty's double backward is paid
           once in 16 steps: about 5x less compute per generator update on a CPU.
Both networks train with manual optimization (two Adam optimizers, both checkpointed); an
exponential moving average of the generator (`ema`) is what samples and validation use.

`binarize: ste` feeds the critic hard 0/1 rolls with straight-through gradients (BinaryMuseGAN,
Dong & Yang 2018), so the critic judges exactly the notes a sample will contain.

`condition_track` (an index or a codec track selection such as name:MELODY) makes the
generator track-conditional: it reads that track of a real phrase and writes the others; the
critic sees the real condition track beside the generated ones, so it judges the fit.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cadenza.data.batch import Batch
from cadenza.errors import ConfigError
from cadenza.metrics.music import (
    default_qn_threshold,
    empty_bar_counts,
    qualified_note_counts,
    ratio,
    used_pitch_class_counts,
)
from cadenza.models.base import Ability, GenerativeModule, check_float, check_int, codec_dict
from cadenza.models.components.gan_nets import (
    GRIDS,
    INPUT_NORMS,
    MODES,
    Discriminator,
    Generator,
    gradient_penalty,
)
from cadenza.models.sampling import normal

OBJECTIVES = ("wgan_gp", "r1")
# The bar: qualified-note rate within 10 points of the real data's, empty-bar rate and
# used pitch classes within 20 % of it. MuseGAN's three intra-track statistics.
TOLERANCE = {"qualified_note_rate": ("points", 0.10), "empty_bar_rate": ("relative", 0.20),
             "used_pitch_classes": ("relative", 0.20)}  # fmt: skip


def phrase_stats(
    rolls: np.ndarray, low_pitch: int, steps_per_beat: int, drums: Any = None
) -> dict[str, float]:
    """MuseGAN's EB, UPC and QN over bool rolls [M, T, K, P], the bars and notes of every
    phrase and non-drum track pooled (as `cadenza.metrics.music_sets.set_metrics` pools)."""
    bar, threshold = 4 * steps_per_beat, default_qn_threshold(steps_per_beat)
    drums = drums or [False] * rolls.shape[2]
    sums = {k: [0.0, 0.0] for k in TOLERANCE}
    for roll in rolls:
        for k in (k for k in range(roll.shape[1]) if not drums[k]):
            track = roll[:, k]
            for name, (num, den) in (
                ("empty_bar_rate", empty_bar_counts(track, bar)),
                ("used_pitch_classes", used_pitch_class_counts(track, bar, low_pitch)),
                ("qualified_note_rate", qualified_note_counts(track, threshold)),
            ):
                sums[name][0] += num
                sums[name][1] += den
    return {name: ratio((num, den)) for name, (num, den) in sums.items()}


def stat_gap(generated: dict[str, float], real: dict[str, float]) -> float:
    """The largest deviation of `generated` from `real` over TOLERANCE's statistics, in units
    of each one's tolerance: <= 1 means all are within (NaN if one is undefined)."""
    gaps = []
    for name, (kind, tol) in TOLERANCE.items():
        g, r = generated[name], real[name]
        scale = tol if kind == "points" else tol * abs(r)
        gaps.append(abs(g - r) / scale if scale > 0 else math.inf * (g != r))
    return float(max(gaps))


def track_gap(
    generated: list[dict[str, float]], real: list[dict[str, float]], pooled: dict[str, float]
) -> float:
    """The largest deviation of any one track's statistics from that track's real ones, in
    units of the pooled bar's tolerance (relative tolerances scaled by the pooled real value).

    The pooled `stat_gap` can be met by compensation: a melody that never rests and a bridge
    that rests too often average out to the real empty-bar rate. This one cannot: <= 1 means
    every track alone is within the tolerance the pooled statistic must meet (NaN-free tracks
    only; a track whose real statistic is undefined, as QN of a silent track, is skipped)."""
    gaps = [0.0]
    for g, r in zip(generated, real):
        for name, (kind, tol) in TOLERANCE.items():
            if not (math.isfinite(r[name]) and math.isfinite(pooled[name])):
                continue
            scale = tol if kind == "points" else tol * abs(pooled[name])
            diff = abs(g[name] - r[name]) if math.isfinite(g[name]) else math.inf
            gaps.append(diff / scale if scale > 0 else math.inf * (diff > 0))
    return float(max(gaps))


BINARIZE = ("none", "ste", "stochastic")
STAGES = ("val", "test")


class GANModule(GenerativeModule):
    family = "gan"
    # The critic step leaves the generator without gradients and the generator step the
    # critic: DDP must look for unused parameters (the training loop asks the strategy).
    ddp_find_unused_parameters = True

    def __init__(
        self,
        codec: dict,
        bars: int = 4,
        mode: str = "hybrid",
        latent_size: int = 64,
        generator_hidden: int = 128,
        critic_hidden: int = 128,
        objective: str = "r1",
        n_critic: int = 1,
        gp_weight: float = 10.0,
        r1_gamma: float = 10.0,
        r1_every: int = 16,
        binarize: str = "ste",
        condition_track: int | str | None = None,
        monophonic: list[int | str] | None = None,
        ema_decay: float = 0.999,
        threshold: float = 0.5,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        critic_lr: float | None = None,
        minibatch_std: int = 0,
        input_norm: str = "channel",
        modulate: bool = False,
        grid: str = "step",
    ) -> None:
        codec = codec_dict(codec)
        super().__init__(codec)
        c = self.codec
        if c.kind != "frames" or len(c.row_shape) != 2 or not hasattr(c, "window_starts"):
            raise ConfigError(
                f"the gan family needs a multi-track piano roll (representation="
                f"multitrack_pianoroll), got {c.name}"
            )
        K, P = c.row_shape
        S = c.steps_per_bar
        if S % 16:
            raise ConfigError(
                f"the gan's bar network doubles time 4 times, so a bar needs a multiple of 16 "
                f"steps: representation.steps_per_beat={c.steps_per_beat} gives {S}; use 4, 8 "
                f"or 12"
            )
        if P % 12:
            raise ConfigError(
                f"the gan works in octaves: the pitch range must hold whole octaves, but "
                f"representation.low_pitch..high_pitch ({c.low_pitch}..{c.high_pitch}) has {P} "
                f"pitches (e.g. 24..107 = 84)"
            )
        if mode not in MODES:
            raise ConfigError(f"model.mode must be one of {list(MODES)}, got {mode!r}")
        if objective not in OBJECTIVES:
            raise ConfigError(
                f"model.objective must be one of {list(OBJECTIVES)}, got {objective!r}"
            )
        if binarize not in BINARIZE:
            raise ConfigError(f"model.binarize must be one of {list(BINARIZE)}, got {binarize!r}")
        if bars is None:  # as the VAE says it: the hint of check_int (model.bars=256) misleads
            raise ConfigError(
                "model.bars is null: the gan family writes fixed phrases; set "
                "data.window_bars=4 (MuseGAN's phrase), which model.bars follows"
            )
        bars = check_int("model.bars", bars)
        latent_size = check_int("model.latent_size", latent_size)
        generator_hidden = check_int("model.generator_hidden", generator_hidden, minimum=4)
        critic_hidden = check_int("model.critic_hidden", critic_hidden, minimum=4)
        n_critic = check_int("model.n_critic", n_critic)
        r1_every = check_int("model.r1_every", r1_every)
        gp_weight = check_float("model.gp_weight", gp_weight)
        r1_gamma = check_float("model.r1_gamma", r1_gamma)
        ema_decay = check_float("model.ema_decay", ema_decay, maximum=1.0)
        if critic_lr is not None:
            critic_lr = check_float("model.critic_lr", critic_lr, minimum=1e-12)
        if input_norm not in INPUT_NORMS:
            raise ConfigError(
                f"model.input_norm must be one of {list(INPUT_NORMS)}, got {input_norm!r}"
            )
        if grid not in GRIDS:
            raise ConfigError(f"model.grid must be one of {list(GRIDS)}, got {grid!r}")
        minibatch_std = check_int("model.minibatch_std", minibatch_std, minimum=0)
        threshold = check_float("model.threshold", threshold, minimum=1e-6, maximum=1.0)
        condition_track = self._condition_index(condition_track)
        mono = tuple(self._track_index(t, "model.monophonic") for t in monophonic or [])
        self.set_optimization(optimizer)
        self.save_hyperparameters(ignore=["codec", "optimizer"])
        self.hparams["codec"] = codec
        self.automatic_optimization = False

        self.K, self.N, self.S, self.P = K, bars, S, P
        self.phrase_steps = bars * S  # one generated phrase, in codec steps
        self.generator = Generator(
            K,
            bars,
            S,
            P,
            latent_size,
            mode,
            generator_hidden,
            condition_track is not None,
            mono,
            input_norm,
            bool(modulate),
            grid,
        )
        self.critic = Discriminator(K, bars, S, P, critic_hidden, minibatch_std)
        # The EMA generator is what samples; it never takes gradients (and DDP must not wait
        # for any). A plain module and a method, not torch's AveragedModel, whose averaging
        # closure cannot be pickled to ddp_spawn's processes.
        self.ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self._critic_steps = 0
        self._train_steps = 0
        self._rolls: dict[str, dict[str, list[np.ndarray]]] = {}

    def _condition_index(self, track: int | str | None) -> int | None:
        return None if track is None else self._track_index(track, "model.condition_track")

    def _track_index(self, track: int | str, key: str) -> int:
        tracks = list(getattr(self.codec, "tracks", []))
        if isinstance(track, str) and track in tracks:
            return tracks.index(track)
        if isinstance(track, int) and not isinstance(track, bool) and 0 <= track < len(tracks):
            return track
        raise ConfigError(
            f"{key} must be a track index 0..{len(tracks) - 1} or one of the codec's tracks "
            f"{tracks}, got {track!r}"
        )

    @property
    def track_names(self) -> list[str]:
        """The codec's tracks as metric names: name:MELODY -> MELODY, index:0 -> index_0."""
        return [t[5:] if t.startswith("name:") else t.replace(":", "_") for t in self.codec.tracks]

    @property
    def conditional(self) -> bool:
        return self.hparams.condition_track is not None

    @property
    def abilities(self) -> frozenset[Ability]:
        # A track-conditional generator always needs its condition track to play against.
        if self.conditional:
            return frozenset({Ability.CONDITION})
        return frozenset({Ability.PRIOR, Ability.LATENT_WALK})

    # --- shapes -----------------------------------------------------------------------------
    def to_phrase(self, x: torch.Tensor) -> torch.Tensor:
        """Codec rolls [B, N S, K, P] -> phrases [B, K, N, S, P]."""
        B = x.shape[0]
        return x.view(B, self.N, self.S, self.K, self.P).permute(0, 3, 1, 2, 4)

    def from_phrase(self, x: torch.Tensor) -> torch.Tensor:
        """Phrases [B, K, N, S, P] -> codec rolls [B, N S, K, P]."""
        return x.permute(0, 2, 3, 1, 4).reshape(x.shape[0], self.phrase_steps, self.K, self.P)

    def latents(
        self, n: int, generator: torch.Generator | None = None, scale: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """Fresh latents for n phrases (N(0, scale^2): scale < 1 is the truncation trick)."""
        return {
            k: scale * normal((n, *s), self.device, generator)
            for k, s in self.generator.latent_sizes().items()
        }

    def _generate(
        self, net: torch.nn.Module, latents: dict[str, torch.Tensor], real: torch.Tensor | None
    ) -> torch.Tensor:
        """Probabilities [B, K, N, S, P]; a conditional generator reads track c of `real` and
        that track is the real one in the output."""
        c = self.hparams.condition_track
        if c is None:
            return net(latents)
        out = net(latents, real[:, c])
        keep = torch.zeros(self.K, dtype=torch.bool, device=out.device)
        keep[c] = True
        return torch.where(keep[None, :, None, None, None], real, out)

    def hard_rolls(self, probs: torch.Tensor, draw: bool | None = None) -> torch.Tensor:
        """Probabilities [B, K, N, S, P] -> the 0/1 phrase they stand for. Polyphonic tracks:
        each pitch above `threshold`; monophonic ones: the likelier of the best pitch and
        silence. draw (default: binarize == stochastic, in training) samples instead: a
        Bernoulli per pitch, or one categorical draw per step over pitches and silence."""
        draw = self.training and self.hparams.binarize == "stochastic" if draw is None else draw
        p = probs.detach().float()
        hard = torch.bernoulli(p) if draw else (p > self.hparams.threshold).float()
        mono = list(self.generator.monophonic)  # the generator's own list, indices of K
        if mono:
            m = p[:, mono]  # [B, M, N, S, P]
            joint = torch.cat([m, (1 - m.sum(-1, keepdim=True)).clamp_min(0)], dim=-1)
            if draw:
                pick = torch.multinomial(joint.flatten(0, -2) + 1e-12, 1).view(joint.shape[:-1])
            else:
                pick = joint.argmax(-1)
            one_hot = F.one_hot(pick, joint.shape[-1])[..., :-1].float()  # silence -> all 0
            hard[:, mono] = one_hot
        return hard.to(probs.dtype)

    def _critic_input(self, probs: torch.Tensor) -> torch.Tensor:
        if self.hparams.binarize == "none":
            return probs
        hard = self.hard_rolls(probs)
        return probs + (hard - probs).detach()  # straight through: hard forward, soft gradient

    # --- training ---------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if self._trainer is None:
            return
        if self.trainer.gradient_clip_val:
            raise ConfigError(
                "the gan family trains with manual optimization: set trainer.gradient_clip_val="
                "null (the gan experiments do)"
            )
        if self.trainer.accumulate_grad_batches != 1:
            raise ConfigError("the gan family needs trainer.accumulate_grad_batches=1")

    def configure_optimizers(self) -> Any:
        # One optimizer per network, both from model.optimizer (MuseGAN's Adam betas when none
        # is configured); model.critic_lr gives the critic its own learning rate.
        opt_g = self.make_optimizer(self.generator.parameters(), betas=(0.5, 0.9))
        opt_d = self.make_optimizer(self.critic.parameters(), betas=(0.5, 0.9))
        if self.hparams.critic_lr is not None:
            for group in opt_d.param_groups:
                group["lr"] = self.hparams.critic_lr
        return [opt_g, opt_d]

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        """One optimizer step per batch: `n_critic` critic steps, then one generator step.

        One backward per step is what DDP expects (it syncs gradients once per forward); a
        critic and a generator backward in the same step would hang the ranks."""
        hp = self.hparams
        real = self.to_phrase(batch.x)
        if self._train_steps % (hp.n_critic + 1) < hp.n_critic:
            logs = self._critic_step(real)
        else:
            logs = self._generator_step(real)
        self._train_steps += 1
        self.log_dict(logs, on_step=True, batch_size=real.shape[0])

    def _critic_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        hp = self.hparams
        _, opt_d = self.optimizers()
        with torch.no_grad():
            fake = self._generate(self.generator, self.latents(real.shape[0]), real)
        if hp.binarize != "none":
            fake = self.hard_rolls(fake)
        lazy_r1 = hp.objective == "r1" and self._critic_steps % hp.r1_every == 0
        if lazy_r1:
            real = real.detach().requires_grad_(True)
        d_real, d_fake = self.critic(real), self.critic(fake)
        logs: dict[str, torch.Tensor] = {}
        if hp.objective == "wgan_gp":
            gp = gradient_penalty(self.critic, real, fake)
            # The small drift term (Karras et al., 2018) keeps the critic's scores near zero.
            d_loss = d_fake.mean() - d_real.mean() + hp.gp_weight * gp + 1e-3 * d_real.pow(2).mean()
            logs["train/gradient_penalty"] = gp.detach()
        else:
            d_loss = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
            if lazy_r1:
                (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
                r1 = grad.pow(2).flatten(1).sum(1).mean()
                d_loss = d_loss + hp.r1_gamma / 2 * r1 * hp.r1_every
                logs["train/r1"] = r1.detach()
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self._critic_steps += 1
        gap = (d_real - d_fake).mean().detach()
        return logs | {"train/critic_loss": d_loss.detach(), "train/critic_gap": gap}

    def _generator_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        hp = self.hparams
        opt_g, _ = self.optimizers()
        fake = self._generate(self.generator, self.latents(real.shape[0]), real)
        score = self.critic(self._critic_input(fake))
        g_loss = -score.mean() if hp.objective == "wgan_gp" else F.softplus(-score).mean()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self._update_ema(real)
        return {"train/generator_loss": g_loss.detach()}

    @torch.no_grad()
    def _update_ema(self, real: torch.Tensor) -> None:
        """ema <- d ema + (1 - d) generator, with d warming up as (1 + n) / (10 + n) (as TF's
        ExponentialMovingAverage does with num_updates) so early samples are not dominated by
        the random initialisation.

        BatchNorm statistics are the EMA's own: one forward of the averaged weights in training
        mode on fresh latents. Copying the generator's statistics (as before issue 16) gave the
        averaged weights statistics that were not theirs: their activations' variance measured
        about half the copied running variance, and whole tracks came out on or off in samples
        and validation where the critic had judged otherwise."""
        n = int(self.ema_updates)
        d = min(self.hparams.ema_decay, (1 + n) / (10 + n))
        for e, p in zip(self.ema.parameters(), self.generator.parameters()):
            e.lerp_(p, 1.0 - d)
        self.ema.train()
        self._generate(self.ema, self.latents(real.shape[0]), real)
        self.ema_updates += 1

    def on_train_batch_end(self, *args: Any) -> None:
        # Critic parameters collect gradients during the generator step; drop them now so a
        # checkpoint never carries stale ones.
        for p in self.critic.parameters():
            p.grad = None

    # --- validation / test ------------------------------------------------------------------
    def _evaluate(self, batch: Batch, stage: str) -> None:
        real = self.to_phrase(batch.x)
        B = real.shape[0]
        # A fixed seed per batch: the same latents every epoch, so epochs compare like for like.
        g = torch.Generator().manual_seed(int(batch.index[0]) if batch.index is not None else 0)
        fake = self._generate(self.ema, self.latents(B, g), real)
        hard = self.hard_rolls(fake, draw=False)
        gap = self.critic(real).mean() - self.critic(hard).mean()
        self.log(f"{stage}/critic_gap", gap, on_step=False, on_epoch=True, batch_size=B)
        rolls = self._rolls.setdefault(stage, {"real": [], "generated": []})
        rolls["real"].append(self.from_phrase(real).bool().cpu().numpy())
        rolls["generated"].append(self.from_phrase(hard).bool().cpu().numpy())

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _log_music(self, stage: str) -> None:
        """MuseGAN's statistics of the generated and the real phrases of this epoch, and
        `<stage>/stat_gap`: the largest deviation from the real data in units of the issue's
        tolerance (10 points of qualified-note rate, 20 % of empty-bar rate and used pitch
        classes): <= 1 means every one is within. Each rank measures its shard; ranks average."""
        rolls = self._rolls.pop(stage, None)
        if not rolls or not rolls["real"]:
            return
        c = self.codec
        args = (c.low_pitch, c.steps_per_beat, getattr(c, "drums", None))
        real_rolls, gen_rolls = np.concatenate(rolls["real"]), np.concatenate(rolls["generated"])
        real, gen = phrase_stats(real_rolls, *args), phrase_stats(gen_rolls, *args)
        values = {f"{stage}/real/{k}": v for k, v in real.items()}
        values |= {f"{stage}/gen/{k}": v for k, v in gen.items()}
        values[f"{stage}/stat_gap"] = stat_gap(gen, real)
        # The same statistics track by track, and the largest per-track deviation.
        drums = getattr(c, "drums", None) or [False] * self.K
        per_track: dict[str, list[dict[str, float]]] = {"real": [], "gen": []}
        for k, name in enumerate(self.track_names):
            if drums[k]:
                continue
            for kind, rs in (("real", real_rolls), ("gen", gen_rolls)):
                stats = phrase_stats(rs[:, :, k : k + 1], c.low_pitch, c.steps_per_beat)
                per_track[kind].append(stats)
                values |= {f"{stage}/{kind}/{name}/{s}": v for s, v in stats.items()}
        values[f"{stage}/track_gap"] = track_gap(per_track["gen"], per_track["real"], real)
        for k, v in values.items():
            t = torch.tensor(v if math.isfinite(v) else float("nan"), device=self.device)
            if self.trainer.world_size > 1:
                t = self.trainer.strategy.reduce(t, reduce_op="mean")
            self.log(k, t, on_step=False, on_epoch=True, sync_dist=False, rank_zero_only=False)

    def on_validation_epoch_end(self) -> None:
        self._log_music("val")

    def on_test_epoch_end(self) -> None:
        self._log_music("test")

    # --- checkpoints ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_steps"] = [self._train_steps, self._critic_steps]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._train_steps, self._critic_steps = checkpoint.get("gan_steps", [0, 0])

    # --- the family contract ----------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        condition: torch.Tensor | None = None,
        max_len: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        latents: list[dict[str, torch.Tensor]] | None = None,
        **controls: Any,
    ) -> list[torch.Tensor]:
        """n pieces as rolls [T, K, P] of 0/1 from the EMA generator.

        Length: one phrase (model.bars), or max_len steps made of consecutive phrases that share
        the piece's time-independent latents (so the phrases sound like one piece) and draw new
        per-bar ones. temperature scales the latents (below 1: more typical, less varied).
        condition: a roll of the condition track [T, P] (conditional model only); the pieces
        follow it phrase by phrase and are as long as it (or max_len).
        latents: explicit latents, one dict per phrase (e.g. points on an interpolation path);
        then every piece is those phrases.
        """
        n = check_int("n", n)
        if {"top_k", "top_p"} & set(controls):
            self.require(Ability.TOKEN_FILTERS)
        if controls:
            raise ConfigError(f"a gan takes no {sorted(controls)}; use temperature (latent "
                              "scale) and seed")  # fmt: skip
        scale = check_float("temperature", temperature, minimum=1e-6)
        self.require(Ability.PRIOR if condition is None else Ability.CONDITION)
        L = self.phrase_steps
        if condition is not None:
            length = len(condition) if max_len is None else check_int("max_len", max_len)
        else:
            length = L if max_len is None else check_int("max_len", max_len)
        phrases = len(latents) if latents is not None else math.ceil(length / L)
        length = phrases * L if latents is not None else length
        cond = None
        if condition is not None:
            cond = torch.zeros(phrases * L, self.P)
            m = min(len(condition), phrases * L)
            cond[:m] = torch.as_tensor(condition[:m], dtype=torch.float32)
            cond = cond.view(phrases, self.N, self.S, self.P).to(self.device)
        fixed = self.latents(n, generator, scale)  # the piece's time-independent latents
        out = []
        for p in range(phrases):
            if latents is not None:
                z = {k: v.to(self.device).expand(n, *v.shape[1:]) for k, v in latents[p].items()}
            else:
                z = self.latents(n, generator, scale)
                z |= {k: v for k, v in fixed.items() if not k.endswith("_time")}
            real = None
            if cond is not None:
                real = torch.zeros(n, self.K, self.N, self.S, self.P, device=self.device)
                real[:, self.hparams.condition_track] = cond[p]
            probs = self._generate(self.ema, z, real)
            out.append(self.from_phrase(self.hard_rolls(probs, draw=False).float()))
        rolls = torch.cat(out, dim=1)[:, :length].cpu()  # [n, T, K, P]
        return list(rolls)

    def interpolation_latents(
        self, steps: int, generator: torch.Generator | None = None
    ) -> list[dict[str, torch.Tensor]]:
        """`steps` latent points on the great circle (slerp) between two random draws: every
        latent moves at once, so the whole arrangement morphs from one phrase to another."""
        from cadenza.metrics.reconstruction import slerp

        steps = check_int("steps", steps, minimum=2)
        a, b = self.latents(1, generator), self.latents(1, generator)
        names = list(a)
        flat = lambda d: torch.cat([d[k].flatten().cpu() for k in names])  # noqa: E731
        path = slerp(flat(a), flat(b), torch.linspace(0.0, 1.0, steps)).float()  # [steps, Z]
        out = []
        for point in path:
            pieces = torch.split(point, [a[k].numel() for k in names])
            out.append({k: v.view_as(a[k]) for k, v in zip(names, pieces)})
        return out

    def condition_from_roll(self, roll: torch.Tensor) -> torch.Tensor:
        """The condition track [T, P] of a codec roll [T, K, P]; a file without that track
        (a bare melody) gives its notes of every track merged into the condition."""
        c = self.hparams.condition_track
        own = roll[:, c]
        return own if own.any() else roll.amax(dim=1)
