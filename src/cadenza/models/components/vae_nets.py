"""MusicVAE's networks (Roberts et al., 2018) as plain nn.Modules.

Tokens are [B, T, K]: K tracks (1 for a melody) of ids in [0, V). Every track has its own
embedding rows and its own softmax, so one network serves melodies and multi-track windows.

- BiLSTMEncoder: x [B, T, K] -> mu, sigma [B, Z] (final states of both directions).
- FlatDecoder: one LSTM over all T steps; z sets its initial state and is fed at every step.
- HierarchicalDecoder: a "conductor" LSTM emits one embedding per bar from z; a bottom LSTM,
  restarted from each bar's embedding, writes that bar. Its gradient paths are one bar long
  instead of T steps, which is what lets a 16-bar decoder keep listening to z. Optionally
  (`content_head`) each bar's embedding also predicts which ids occur in that bar.

Decoder inputs are the previous tokens (`shift_right`): PAD (id 0, never inside a window) is
the start symbol. Across bar lines the bottom decoder gets the last token of the bar before, so a
bar that opens with HOLD knows which note it holds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cadenza.models.components.recurrent import LSTM

# tokens [B, K] -> next tokens [B, K]: argmax, or a draw with temperature / generator
Picker = Callable[[torch.Tensor], torch.Tensor]


def shift_right(x: torch.Tensor, start: int = 0) -> torch.Tensor:
    """[B, T, K] -> [B, T, K]: the token before each step, `start` at t = 0."""
    return F.pad(x[:, :-1], (0, 0, 1, 0), value=start)


class TrackEmbedding(nn.Module):
    """[B, T, K] ids -> [B, T, K * E]: one table with a block of V rows per track."""

    def __init__(self, vocab: int, tracks: int, dim: int) -> None:
        super().__init__()
        self.vocab, self.tracks = vocab, tracks
        self.table = nn.Embedding(vocab * tracks, dim)
        self.register_buffer("offsets", torch.arange(tracks) * vocab, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.table(x + self.offsets)  # [B, T, K, E]
        return e.flatten(-2)


def _initial_state(
    proj: nn.Linear, code: torch.Tensor, layers: int, hidden: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """code [N, C] -> LSTM (h0, c0), each [layers, N, H], through tanh(Linear) as MusicVAE."""
    hc = torch.tanh(proj(code)).view(code.shape[0], 2, layers, hidden)
    hc = hc.permute(1, 2, 0, 3).contiguous()  # [2, layers, N, H]
    return hc[0], hc[1]


class BiLSTMEncoder(nn.Module):
    def __init__(
        self, vocab: int, tracks: int, embed: int, hidden: int, layers: int, latent: int
    ) -> None:
        super().__init__()
        self.embed = TrackEmbedding(vocab, tracks, embed)
        self.rnn = LSTM(tracks * embed, hidden, layers, batch_first=True, bidirectional=True)
        self.to_mu = nn.Linear(2 * hidden, latent)
        self.to_sigma = nn.Linear(2 * hidden, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, K] -> mu [B, Z], sigma [B, Z] (> 0)."""
        _, (h_n, _) = self.rnn(self.embed(x))  # h_n [layers * 2, B, H]
        last = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # [B, 2H]: forward and backward
        # softplus, as MusicVAE: sigma stays positive without exp's blow-ups early in training.
        return self.to_mu(last), F.softplus(self.to_sigma(last)) + 1e-5


class HierarchicalEncoder(nn.Module):
    """x [B, T, K] -> mu, sigma [B, Z]: a bidirectional LSTM reads each bar, a second one reads
    the U bar summaries. Every step reaches z through at most S + U steps instead of T, which
    makes a 16-bar encoder learn far sooner (Magenta's HierarchicalLstmEncoder)."""

    def __init__(
        self, vocab: int, tracks: int, embed: int, hidden: int, latent: int, bars: int
    ) -> None:
        super().__init__()
        self.bars = bars
        self.embed = TrackEmbedding(vocab, tracks, embed)
        self.bar_rnn = LSTM(tracks * embed, hidden, batch_first=True, bidirectional=True)
        self.song_rnn = LSTM(2 * hidden, hidden, batch_first=True, bidirectional=True)
        self.to_mu = nn.Linear(2 * hidden, latent)
        self.to_sigma = nn.Linear(2 * hidden, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, K = x.shape
        e = self.embed(x).reshape(B * self.bars, T // self.bars, -1)  # [B*U, S, K*E]
        _, (h_bar, _) = self.bar_rnn(e)  # [2, B*U, H]
        bars = torch.cat([h_bar[0], h_bar[1]], dim=-1).view(B, self.bars, -1)  # [B, U, 2H]
        _, (h_n, _) = self.song_rnn(bars)
        last = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # [B, 2H]
        return self.to_mu(last), F.softplus(self.to_sigma(last)) + 1e-5


class _TokenLSTM(nn.Module):
    """An LSTM over [previous tokens ; a code] whose initial state comes from the code."""

    def __init__(
        self, vocab: int, tracks: int, embed: int, hidden: int, layers: int, code: int,
        dropout: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.vocab, self.tracks, self.hidden, self.layers = vocab, tracks, hidden, layers
        self.embed = TrackEmbedding(vocab, tracks, embed)
        self.init = nn.Linear(code, 2 * layers * hidden)
        self.rnn = LSTM(
            tracks * embed + code, hidden, layers, batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )  # fmt: skip
        self.head = nn.Linear(hidden, tracks * vocab)

    def forward(self, code: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """code [N, C], inputs [N, S, K] -> logits [N, S, K, V] (teacher forced)."""
        N, S, K = inputs.shape
        h = torch.cat([self.embed(inputs), code[:, None].expand(N, S, code.shape[-1])], dim=-1)
        out, _ = self.rnn(h, _initial_state(self.init, code, self.layers, self.hidden))
        return self.head(out).view(N, S, K, self.vocab)

    def run(self, code: torch.Tensor, prev: torch.Tensor, steps: int, pick: Picker) -> torch.Tensor:
        """Autoregressive: code [N, C], prev [N, K] (token before the first) -> [N, steps, K]."""
        state = _initial_state(self.init, code, self.layers, self.hidden)
        step = self.rnn.stepper() or self.rnn.step  # the cheap cell where there is one
        out = []
        for _ in range(steps):
            h = torch.cat([self.embed(prev[:, None]), code[:, None]], dim=-1)  # [N, 1, K*E+C]
            y, state = step(h[:, 0], state)  # [N, Hs]
            prev = pick(self.head(y).view(-1, self.tracks, self.vocab))  # [N, K]
            out.append(prev)
        return torch.stack(out, dim=1)


class FlatDecoder(nn.Module):
    def __init__(
        self, vocab: int, tracks: int, embed: int, hidden: int, layers: int, latent: int,
        dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.lstm = _TokenLSTM(vocab, tracks, embed, hidden, layers, latent, dropout)

    def forward(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """z [B, Z], inputs [B, T, K] (shift_right of the target) -> logits [B, T, K, V]."""
        return self.lstm(z, inputs)

    def generate(self, z: torch.Tensor, steps: int, pick: Picker) -> torch.Tensor:
        """z [B, Z] -> tokens [B, steps, K]."""
        start = torch.zeros(z.shape[0], self.lstm.tracks, dtype=torch.long, device=z.device)
        return self.lstm.run(z, start, steps, pick)


class HierarchicalDecoder(nn.Module):
    def __init__(
        self, vocab: int, tracks: int, embed: int, hidden: int, layers: int, latent: int,
        bars: int, conductor_hidden: int, conductor_layers: int = 2, dropout: float = 0.0,
        content_head: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.bars, self.c_hidden, self.c_layers = bars, conductor_hidden, conductor_layers
        self.conductor_init = nn.Linear(latent, 2 * conductor_layers * conductor_hidden)
        # z is the conductor's input at every bar: its only input, and a short path to z.
        self.conductor = LSTM(
            latent, conductor_hidden, conductor_layers, batch_first=True,
            dropout=dropout if conductor_layers > 1 else 0.0,
        )  # fmt: skip
        self.bar = _TokenLSTM(vocab, tracks, embed, hidden, layers, conductor_hidden, dropout)
        # Only built when asked for, so checkpoints without it load unchanged.
        self.content = nn.Linear(conductor_hidden, tracks * vocab) if content_head else None

    def conduct(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, Z] -> one embedding per bar [B, U, C]."""
        state = _initial_state(self.conductor_init, z, self.c_layers, self.c_hidden)
        out, _ = self.conductor(z[:, None].expand(-1, self.bars, -1), state)
        return out

    def bar_content(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, Z] -> logits [B, U, K, V] that each id occurs in each bar (content_head)."""
        if self.content is None:
            raise RuntimeError("this decoder was built without content_head")
        c = self.conduct(z)  # [B, U, C]
        return self.content(c).view(z.shape[0], self.bars, self.bar.tracks, self.bar.vocab)

    def forward(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """z [B, Z], inputs [B, T, K] (T = bars * S) -> logits [B, T, K, V].

        Every bar is decoded at once, as a batch of B * U sequences of S steps.
        """
        B, T, K = inputs.shape
        U = self.bars
        c = self.conduct(z).reshape(B * U, -1)  # [B*U, C]
        logits = self.bar(c, inputs.reshape(B * U, T // U, K))  # [B*U, S, K, V]
        return logits.reshape(B, T, K, -1)

    def generate(self, z: torch.Tensor, steps: int, pick: Picker) -> torch.Tensor:
        """z [B, Z] -> tokens [B, steps, K]; bar by bar, each bar's first input the last token
        of the bar before."""
        c = self.conduct(z)  # [B, U, C]
        S = steps // self.bars
        prev = torch.zeros(z.shape[0], self.bar.tracks, dtype=torch.long, device=z.device)
        bars = []
        for u in range(self.bars):
            bar = self.bar.run(c[:, u], prev, S, pick)  # [B, S, K]
            bars.append(bar)
            prev = bar[:, -1]
        return torch.cat(bars, dim=1)
