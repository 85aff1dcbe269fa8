"""MuseGAN's networks (Dong et al., AAAI 2018), bar-level and convolutional.

Shapes: B batch, K tracks, N bars per phrase, S steps per bar, P pitches, O = P / 12 octaves,
z latent size. A phrase is x [B, K, N, S, P] of values in [0, 1].

Generator latents (MuseGAN §3.2): shared across tracks or private to one; time-independent (one
per phrase) or time-dependent (a temporal network turns one vector into one per bar).
  composer: shared only; one network writes every track (tracks are its output channels).
  jamming:  private only; K independent networks (grouped convolutions, groups = K).
  hybrid:   both; K networks, each reading the shared and its own private latents.
A track is polyphonic (an independent sigmoid per pitch and step) or monophonic (a softmax per
step over its pitches and silence: one note at a time by construction, as a melody is).
The bar network works on an octave grid [t, O] and expands each octave to 12 pitches last, as
MuseGAN's pitch-time branch does; time is doubled by nearest upsampling + 3x3 convolution,
which avoids the checkerboard rhythm that strided transposed convolutions print into rolls.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("composer", "jamming", "hybrid")
INPUT_NORMS = ("channel", "position")
GRIDS = ("step", "sixteenth")
UPSAMPLINGS = 4  # the bar network doubles time 4 times: S = 16 * t0


class GroupedLinear(nn.Module):
    """G independent Linear layers applied at once: [B, G, i] -> [B, G, o]."""

    def __init__(self, groups: int, d_in: int, d_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(groups, d_out))
        nn.init.kaiming_uniform_(self.weight.view(groups * d_in, d_out).T, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bgi,gio->bgo", x, self.weight) + self.bias


class TemporalNet(nn.Module):
    """One vector per phrase -> one per bar, for each of G groups: [B, G, z] -> [B, G, N, z]."""

    def __init__(self, groups: int, latent: int, bars: int, hidden: int) -> None:
        super().__init__()
        self.bars, self.latent = bars, latent
        self.l1 = GroupedLinear(groups, latent, hidden)
        self.l2 = GroupedLinear(groups, hidden, bars * latent)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.l1(z))
        return self.l2(h).view(z.shape[0], z.shape[1], self.bars, self.latent)


def group_channels(hidden: int) -> list[int]:
    """Channels per group at t0, 2 t0, ..., 16 t0 = S: halved at every doubling of time, so
    each block costs about the same (the high-resolution end is where CPU time goes)."""
    return [max(hidden >> i, 4) for i in range(UPSAMPLINGS + 1)]


class Generator(nn.Module):
    """Latents (+ a condition roll) -> phrase probabilities x [B, K, N, S, P]."""

    def __init__(
        self,
        n_tracks: int,
        n_bars: int,
        steps_per_bar: int,
        n_pitches: int,
        latent_size: int,
        mode: str = "hybrid",
        hidden: int = 128,
        conditional: bool = False,
        monophonic: tuple[int, ...] = (),
        input_norm: str = "channel",
        modulate: bool = False,
        grid: str = "step",
    ) -> None:
        super().__init__()
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        if grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
        self.K, self.N, self.S, self.P = n_tracks, n_bars, steps_per_bar, n_pitches
        self.monophonic = tuple(monophonic)
        # grid=sixteenth: the network writes 16 cells per bar and each lasts hold = S / 16
        # steps, so no note is shorter than a sixteenth (POP909 is written in sixteenths once
        # its bars are aligned: issue 16). step: one cell per step.
        self.hold = steps_per_bar // 16 if grid == "sixteenth" else 1
        self.O, self.z, self.mode = n_pitches // 12, latent_size, mode
        self.t0 = steps_per_bar // 16 // self.hold
        shared, private = mode in ("composer", "hybrid"), mode in ("jamming", "hybrid")
        self.G = 1 if mode == "composer" else n_tracks  # independent networks
        d_in = 2 * latent_size * (shared + private)  # time-independent + per-bar, per kind
        if shared:
            self.temporal_shared = TemporalNet(1, latent_size, n_bars, hidden)
        if private:
            self.temporal_private = TemporalNet(n_tracks, latent_size, n_bars, hidden)
        ch = group_channels(hidden)
        G = self.G
        self.project = GroupedLinear(G, d_in, ch[0] * self.t0 * self.O)
        # channel: BatchNorm per channel, as the blocks below (a learned bias per position of
        # the first grid survives it, and a trained generator writes that bias as one fixed
        # phrase whatever its latents: issue 16). position: every unit of the first grid is
        # normalised across the batch with no affine shift, so the only thing at a position is
        # what the latents put there.
        self.input_norm = input_norm
        first = G * ch[0] * self.t0 * self.O
        self.norm0 = (
            nn.BatchNorm2d(G * ch[0])
            if input_norm == "channel"
            else nn.BatchNorm1d(first, affine=False)
        )
        # modulate: the latents enter every block, not only the first grid (BigGAN's conditional
        # BatchNorm: each block's gains and biases are a function of the bar's code), so no
        # block can settle on one phrase whatever the latents (issue 16's collapse).
        self.modulate = modulate
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=(2, 1), mode="nearest"),
                nn.Conv2d(G * ch[i], G * ch[i + 1], (3, 3), padding=1, groups=G),
                nn.BatchNorm2d(G * ch[i + 1], affine=not modulate),
                *([] if modulate else [nn.ReLU()]),
            )
            for i in range(UPSAMPLINGS)
        )
        if modulate:
            self.styles = nn.ModuleList(
                GroupedLinear(G, d_in, 2 * ch[i + 1]) for i in range(UPSAMPLINGS)
            )
        # Each octave cell becomes 12 pitches: [t, O] -> [t, 12 O]. Output channels = tracks.
        self.to_pitches = nn.ConvTranspose2d(G * ch[-1], n_tracks, (1, 12), (1, 12), groups=G)
        # A monophonic track plays one pitch or none per step: one more logit per step, for
        # silence, read from every octave at once ([t, O] -> [t, 1]).
        if self.monophonic:
            self.to_silence = nn.Conv2d(G * ch[-1], n_tracks, (1, self.O), groups=G)
        self.encoder = ConditionEncoder(ch, G, hidden // 4) if conditional else None

    def latent_sizes(self) -> dict[str, tuple[int, ...]]:
        """Shapes (without the batch) of the latents `forward` reads, by name."""
        z, K = self.z, self.K
        sizes: dict[str, tuple[int, ...]] = {}
        if hasattr(self, "temporal_shared"):
            sizes |= {"shared": (1, z), "shared_time": (1, z)}
        if hasattr(self, "temporal_private"):
            sizes |= {"private": (K, z), "private_time": (K, z)}
        return sizes

    def bar_codes(self, latents: dict[str, torch.Tensor]) -> torch.Tensor:
        """-> [B, N, G, d_in]: every group's input vector for every bar."""
        parts = []
        if "shared" in latents:
            B = latents["shared"].shape[0]
            per_bar = self.temporal_shared(latents["shared_time"])  # [B, 1, N, z]
            parts += [latents["shared"][:, :, None].expand(-1, -1, self.N, -1), per_bar]
        if "private" in latents:
            B = latents["private"].shape[0]
            per_bar = self.temporal_private(latents["private_time"])  # [B, K, N, z]
            parts += [latents["private"][:, :, None].expand(-1, -1, self.N, -1), per_bar]
        # Shared parts are [B, 1, N, z]: broadcast to every group before joining.
        parts = [p.expand(B, self.G, self.N, -1) for p in parts]
        return torch.cat(parts, dim=-1).transpose(1, 2)  # [B, N, G, d_in]

    def forward(
        self, latents: dict[str, torch.Tensor], condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """latents: see `latent_sizes`; condition: one track's roll [B, N, S, P] (conditional
        generator only). -> probabilities [B, K, N, S, P]."""
        codes = self.bar_codes(latents)  # [B, N, G, d_in]
        B = codes.shape[0]
        h = self.project(codes.flatten(0, 1))  # [B N, G, ch0 t0 O]
        grid = (B * self.N, -1, self.t0, self.O)  # [B N, G ch0, t0, O]
        if self.input_norm == "position":  # BatchNorm1d over every unit of the grid
            h = self.norm0(h.reshape(B * self.N, -1)).reshape(grid)
        else:  # BatchNorm2d per channel
            h = self.norm0(h.reshape(grid))
        h = F.relu(h)
        if condition is not None and self.hold > 1:  # a cell sounds where any of its steps do
            condition = condition.unflatten(2, (-1, self.hold)).amax(3)  # [B, N, S / hold, P]
        skips = self.encoder(condition) if self.encoder is not None else None
        for i, block in enumerate(self.blocks):
            h = block(h)  # [B N, G ch, t, O], t doubles
            if self.modulate:
                gain, bias = self.styles[i](codes.flatten(0, 1)).chunk(2, dim=-1)  # [B N, G, ch]
                h = F.relu(
                    h * (1 + gain.flatten(1)[..., None, None]) + bias.flatten(1)[..., None, None]
                )
            if skips is not None:
                h = h + skips[i]
        logits = self.to_pitches(h)  # [B N, K, S, P]
        out = torch.sigmoid(logits)
        if self.monophonic:
            # Softmax over the P pitches and silence: the pitches' probabilities sum to at
            # most 1, and 1 - their sum is the probability of silence.
            mono = list(self.monophonic)
            joint = torch.cat([logits[:, mono], self.to_silence(h)[:, mono]], dim=-1)
            out = out.clone()
            out[:, mono] = torch.softmax(joint.float(), dim=-1)[..., : self.P].to(out.dtype)
        out = out.repeat_interleave(self.hold, dim=2)  # [B N, K, S, P]
        out = out.view(B, self.N, self.K, self.S, self.P)
        return out.transpose(1, 2)  # [B, K, N, S, P]


class ConditionEncoder(nn.Module):
    """A condition track [B, N, S, P] -> one additive feature map per generator block, at the
    block's resolution (a U-Net skip, as MuseGAN's track-conditional generator has), so the
    accompaniment can line up with the melody's onsets step by step."""

    def __init__(self, gen_channels: list[int], groups: int, width: int) -> None:
        super().__init__()
        width = max(width, 4)
        self.octaves = nn.Conv2d(1, width, (1, 12), (1, 12))  # [S, P] -> [S, O]
        self.down = nn.ModuleList(
            nn.Conv2d(width, width, (3, 3), stride=(2, 1), padding=1)
            for _ in range(UPSAMPLINGS - 1)
        )
        # Block i works at 2^(i+1) t0 steps with gen_channels[i + 1] channels per group.
        self.proj = nn.ModuleList(
            nn.Conv2d(width, groups * c, 1) for c in gen_channels[1 : UPSAMPLINGS + 1]
        )

    def forward(self, cond: torch.Tensor) -> list[torch.Tensor]:
        B, N, S, P = cond.shape
        h = F.leaky_relu(self.octaves(cond.reshape(B * N, 1, S, P)), 0.2)  # [B N, w, S, O]
        maps = [h]
        for conv in self.down:
            h = F.leaky_relu(conv(h), 0.2)
            maps.append(h)  # S/2, S/4, S/8
        maps.reverse()  # coarsest first, like the generator's blocks
        return [proj(m) for proj, m in zip(self.proj, maps)]


class Discriminator(nn.Module):
    """WGAN critic: phrase x [B, K, N, S, P] -> score [B] (no normalisation layers: the
    gradient penalty is per sample).

    Each track first goes through its own layers (groups = K) reading its roll and its onset
    map (x_t - x_{t-1} > 0): MuseGAN's onset stream, which lets the critic see fragmented notes
    directly. Shared layers then mix the tracks per bar, and a last layer reads the bars in
    order.

    minibatch_std > 1 adds ProGAN's minibatch standard deviation (Karras et al., 2018) before
    that last layer: per bar, how much the bar features vary across groups of that many phrases.
    A generator that writes the same phrase for every latent is then visible to the critic in a
    single batch, instead of being chased from mode to mode."""

    def __init__(
        self, n_tracks: int, n_bars: int, steps_per_bar: int, n_pitches: int, hidden: int = 128,
        minibatch_std: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.minibatch_std = minibatch_std
        K, c = n_tracks, max(hidden // 4, 4)
        t0 = steps_per_bar // 16
        self.private = nn.Sequential(
            nn.Conv2d(2 * K, K * c, (1, 12), (1, 12), groups=K),  # [S, P] -> [S, O]
            nn.LeakyReLU(0.2),
            nn.Conv2d(K * c, K * c, (3, 3), stride=(2, 1), padding=1, groups=K),  # S/2
            nn.LeakyReLU(0.2),
        )
        layers: list[nn.Module] = []
        width = K * c
        for out in (hidden // 2, hidden, hidden):  # S/4, S/8, S/16 = t0
            layers += [nn.Conv2d(width, out, (3, 3), stride=(2, 1), padding=1), nn.LeakyReLU(0.2)]
            width = out
        self.shared = nn.Sequential(*layers)
        self.bar_features = width * t0 * (n_pitches // 12)
        self.phrase = nn.Sequential(
            # across neighbouring bars; + 1 channel for the minibatch standard deviation
            nn.Conv1d(self.bar_features + (minibatch_std > 1), hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
        )
        self.score = nn.Linear(hidden * n_bars, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, K, N, S, P = x.shape
        bars = x.transpose(1, 2).reshape(B * N, K, S, P)
        onsets = (bars - F.pad(bars, (0, 0, 1, 0))[:, :, :-1]).clamp_min(0)
        # Interleave roll and onsets per track so each group sees its own two channels.
        h = torch.stack([bars, onsets], dim=2).view(B * N, 2 * K, S, P)
        h = self.shared(self.private(h))  # [B N, C, t0, O]
        h = h.reshape(B, N, self.bar_features).transpose(1, 2)  # [B, F, N]
        if self.minibatch_std > 1:
            h = torch.cat([h, batch_spread(h, self.minibatch_std)], dim=1)  # [B, F + 1, N]
        return self.score(self.phrase(h).flatten(1)).squeeze(1)


def batch_spread(h: torch.Tensor, group: int) -> torch.Tensor:
    """h [B, F, N] -> [B, 1, N]: the standard deviation of each feature across a group of
    phrases, averaged over features, per bar; every phrase gets its group's value. Groups are
    the largest divisor of B up to `group`; a batch of one has no spread (zeros)."""
    B, F_, N = h.shape
    g = max(d for d in range(1, min(group, B) + 1) if B % d == 0)
    if g == 1:
        return h.new_zeros(B, 1, N)
    grouped = h.float().view(g, B // g, F_, N)  # phrase i sits in group i % (B // g)
    spread = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=1, keepdim=True)
    return spread.to(h.dtype).repeat(g, 1, 1)  # [B, 1, N]


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al., 2017): E[(||grad D(x_hat)||_2 - 1)^2] on random points
    between real and fake samples. -> scalar."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
