"""Plain LSTM networks for frames (RNN-NADE / sigmoid) and tokens, free of Lightning.

Both expose `loss(batch) -> (nll_sum, count)` and step-wise generation with an explicit LSTM
state `(h, c)`, each [num_layers, N, hidden_size], so a bare PyTorch loop (the benchmark) and the
Lightning module run the same code. Padding is handled by masking outputs: the LSTM is causal, so
padded steps at the end never reach the outputs of real steps, and packing would only add cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cadenza.data.batch import Batch
from cadenza.models.components.nade import NADE
from cadenza.models.components.recurrent import LSTM, LSTMStep, State
from cadenza.models.sampling import sample_bernoulli, sample_categorical
from cadenza.progress import tick


def _trim(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """x cut to the longest real sequence (no LSTM work on all-padding columns), and its mask."""
    T = int(batch.lengths.max()) if len(batch) else 0
    x = batch.x[:, :T]
    mask = torch.arange(T, device=x.device)[None, :] < batch.lengths[:, None]  # [B, T]
    return x, mask


class FrameOutput(nn.Module):
    """The output layer of a frame model, shared by FrameLSTM and FrameTransformer: the network's
    output at step t (`out` [.., Hs]) gives p(frame t) through a NADE (biases b_v [.., D] and
    b_h [.., nade_hidden] from `out`) or independent Bernoulli keys (logits [.., D])."""

    feature_dim: int
    output: str

    def _build_output(self, hidden: int, feature_dim: int, output: str, nade_hidden: int) -> None:
        if output not in ("nade", "sigmoid"):
            raise ValueError(f"output must be 'nade' or 'sigmoid', got {output!r}")
        self.feature_dim, self.output = feature_dim, output
        if output == "nade":
            self.to_bv = nn.Linear(hidden, feature_dim)
            self.to_bh = nn.Linear(hidden, nade_hidden)
            self.nade = NADE(feature_dim, nade_hidden)
        else:
            self.to_logits = nn.Linear(hidden, feature_dim)

    def log_prob(self, out: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """log p(v | out): out [N, Hs], v [N, D] -> [N] (summed over the D keys)."""
        if self.output == "nade":
            return self.nade.log_prob(v, self.to_bv(out), self.to_bh(out))
        logits = self.to_logits(out)  # [N, D]
        return -F.binary_cross_entropy_with_logits(logits, v, reduction="none").sum(-1)

    def loss(self, batch: Batch, **inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(NLL summed over keys and real frames, number of real frames); `inputs` go to the
        network's forward (a conditional network's `cond`)."""
        x, mask = _trim(batch)
        x = x.float()
        out, _ = self(x, **inputs)  # [B, T, Hs], out[:, t] predicts x[:, t]
        # Only real frames reach the output layer: padding costs no NADE work.
        lp = self.log_prob(out[mask], x[mask])  # [N]
        return -lp.sum(), mask.sum()

    def sample_frame(
        self, out: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """out [N, Hs] -> a frame [N, D] of 0/1 floats."""
        if self.output == "nade":
            return self.nade.sample(self.to_bv(out), self.to_bh(out), temperature, generator)
        return sample_bernoulli(self.to_logits(out), temperature=temperature, generator=generator)

    def draw_frames(
        self,
        out: torch.Tensor,
        steps: int,
        advance: Callable[[list[torch.Tensor], int], torch.Tensor],
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The sampling loop of every frame network: `out` [n, Hs] predicts the first new
        frame; `advance(frames so far, t)` gives the next output once frame t is drawn.
        -> [n, steps, D]."""
        frames: list[torch.Tensor] = []
        for t in range(steps):
            tick(t, steps)  # a background job's progress; raises if it was cancelled
            frames.append(self.sample_frame(out, temperature, generator))  # [n, D]
            if t + 1 < steps:
                out = advance(frames, t)
        if not frames:
            return out.new_zeros(out.shape[0], 0, self.feature_dim)
        return torch.stack(frames, dim=1)


class FrameLSTM(FrameOutput):
    """p(x_t | x_<t) over binary frames [B, T, D]; the input at step t is frame t-1.

    A learned start vector is the input at t=0, so the first frame is predicted too.
    output="nade": the LSTM state gives NADE biases b_v [.., D], b_h [.., nade_hidden];
    output="sigmoid": independent Bernoulli keys with logits [.., D].
    """

    def __init__(
        self,
        feature_dim: int,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        embedding_dim: int = 128,
        output: str = "nade",
        nade_hidden: int = 150,
    ) -> None:
        super().__init__()
        # embedding_dim=0 feeds the raw frame to the LSTM (Boulanger-Lewandowski's setup).
        self.input_proj: nn.Module = (
            nn.Linear(feature_dim, embedding_dim) if embedding_dim > 0 else nn.Identity()
        )
        in_dim = embedding_dim if embedding_dim > 0 else feature_dim
        self.start = nn.Parameter(torch.zeros(in_dim))  # [E], input at t=0
        # nn.LSTM's dropout acts only between layers; self.drop also covers the output.
        self.lstm = LSTM(
            in_dim, hidden_size, num_layers, batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )  # fmt: skip
        self.drop = nn.Dropout(dropout)
        self._build_output(hidden_size, feature_dim, output, nade_hidden)

    # --- teacher forcing -------------------------------------------------------------------
    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """x [B, T, D] -> LSTM outputs [B, T, Hs] where out[:, t] predicts x[:, t]."""
        B = x.shape[0]
        start = self.start.expand(B, 1, -1)  # [B, 1, E]
        inp = torch.cat([start, self.input_proj(x[:, :-1])], dim=1)  # [B, T, E]
        out, state = self.lstm(inp, state)
        return self.drop(out), state

    # --- generation ------------------------------------------------------------------------
    def initial_state(self, n: int, device: torch.device | None = None) -> State:
        L, Hs = self.lstm.num_layers, self.lstm.hidden_size
        zeros = torch.zeros(L, n, Hs, device=device or self.start.device)
        return zeros, zeros.clone()

    def step(
        self, frame: torch.Tensor | None, state: State, n: int = 1, cell: LSTMStep | None = None
    ) -> tuple[torch.Tensor, State]:
        """Feed one frame [N, D] (None: the start input for n rows) -> (out [N, Hs], state);
        through `cell` (the LSTM's `stepper()`) where there is one."""
        inp = self.start.expand(n, -1) if frame is None else self.input_proj(frame.float())
        out, state = (cell or self.lstm.step)(inp, state)
        return self.drop(out), state

    @torch.no_grad()
    def generate(
        self,
        n: int,
        steps: int,
        *,
        primer: torch.Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """n continuations of `steps` new frames -> [n, steps, D]; primer [n, P, D] or None."""
        cell = self.lstm.stepper()
        state = self.initial_state(n)
        out, state = self.step(None, state, n, cell)
        if primer is not None and primer.shape[1] > 0:
            # Consume the whole primer at once; the last output predicts the first new frame.
            inp = self.input_proj(primer.float())  # [n, P, E]
            seq, state = self.lstm(inp, state)
            out = self.drop(seq[:, -1])

        def advance(frames: list[torch.Tensor], t: int) -> torch.Tensor:
            nonlocal state
            out, state = self.step(frames[-1], state, cell=cell)
            return out

        return self.draw_frames(out, steps, advance, temperature, generator)


class TokenLSTM(nn.Module):
    """Next-token LSTM: embedding [V, E] -> LSTM -> Linear(Hs, V)."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        embedding_dim: int = 128,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.lstm = LSTM(
            embedding_dim, hidden_size, num_layers, batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )  # fmt: skip
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(
        self, tokens: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """tokens [B, T] -> (LSTM outputs [B, T, Hs], state); out[:, t] predicts tokens[:, t+1]."""
        out, state = self.lstm(self.embed(tokens), state)
        return self.drop(out), state

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy summed over predicted real tokens x[:, 1:], their number)."""
        return next_token_loss(self, batch)

    def step(
        self, tokens: torch.Tensor, state: State | None, cell: LSTMStep | None = None
    ) -> tuple[torch.Tensor, State]:
        """tokens [N] -> (next-token logits [N, V], state); through `cell` (the LSTM's
        `stepper()`, which needs a state to continue) where there is one."""
        out, state = (cell or self.lstm.step)(self.embed(tokens), state)
        return self.head(self.drop(out)), state

    @torch.no_grad()
    def generate(
        self, prefix: torch.Tensor, steps: int, **controls: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """prefix [N, P] (P >= 1) + up to `steps` new tokens -> (tokens [N, P+S], lengths [N]);
        `controls` as `generate_tokens`."""
        out, state = self(prefix)
        cell = self.lstm.stepper()

        def advance(tok: torch.Tensor, state: State, t: int) -> tuple[torch.Tensor, State]:
            return self.step(tok, state, cell)

        return generate_tokens(self.head(out[:, -1]), state, advance, prefix, steps, **controls)


def next_token_loss(
    net: nn.Module, batch: Batch, **inputs: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy summed over predicted real tokens x[:, 1:], their number) for any
    next-token network: `net(tokens, **inputs)` -> (hidden [B, T, H], state), `net.head` ->
    logits."""
    x, mask = _trim(batch)
    if x.shape[1] < 2:  # nothing to predict; keep the graph so backward() still works
        zero = net.head.bias.sum() * 0.0
        return zero, torch.zeros((), dtype=torch.long, device=x.device)
    out, _ = net(x[:, :-1], **inputs)  # [B, T-1, H]
    target_mask = mask[:, 1:]  # [B, T-1]: target x[:, t+1] is real
    logits = net.head(out[target_mask])  # [N, V], only real targets reach the head
    nll = F.cross_entropy(logits.float(), x[:, 1:][target_mask], reduction="sum")
    return nll, target_mask.sum()


def generate_tokens(
    logits: torch.Tensor,
    state: Any,
    advance: Callable[[torch.Tensor, Any, int], tuple[torch.Tensor, Any]],
    prefix: torch.Tensor,
    steps: int,
    *,
    eos_id: int,
    banned: Sequence[int] = (),
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampling loop of every next-token network. `logits` [N, V] follow the prefix [N, P];
    `advance(tok [N], state, t)` gives the next logits once token t is drawn.

    A row stops at its first EOS (kept in its length); later columns hold its EOS repeated.
    `banned` ids (PAD, BOS) are never sampled: the model was never trained to emit them."""
    N, P = prefix.shape
    lengths = torch.full((N,), P, dtype=torch.long, device=prefix.device)
    done = torch.zeros(N, dtype=torch.bool, device=prefix.device)
    new = []
    for t in range(steps):
        tick(t, steps)  # a background job's progress; raises if it was cancelled
        if banned:
            logits[:, list(banned)] = float("-inf")
        tok = sample_categorical(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )  # [N]
        tok = torch.where(done, torch.full_like(tok, eos_id), tok)
        new.append(tok)
        lengths += (~done).long()
        done |= tok == eos_id
        if bool(done.all()) or t + 1 == steps:
            break
        logits, state = advance(tok, state, t)
    tokens = torch.cat([prefix, torch.stack(new, 1)], 1) if new else prefix
    return tokens, lengths
