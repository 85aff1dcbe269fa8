"""A decoder-only Transformer over token ids: pre-norm blocks, rotary positions, PyTorch's
scaled_dot_product_attention (a GPU gets its flash kernel), tied input/output embeddings, and a
key/value cache for sampling. Shapes: B batch, T time, D model width, H heads, Dh = D / H."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cadenza.data.batch import Batch
from cadenza.models.components.rnn import generate_tokens, next_token_loss

Cache = list[tuple[torch.Tensor, torch.Tensor]]  # per block: keys, values [B, H, T, Dh]


def rotate(x: torch.Tensor, offset: int, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding of x [B, H, T, Dh] at positions offset..offset+T-1."""
    dh = x.shape[-1]
    inv_freq = base ** (-torch.arange(0, dh, 2, device=x.device, dtype=torch.float32) / dh)
    pos = torch.arange(offset, offset + x.shape[-2], device=x.device, dtype=torch.float32)
    angles = pos[:, None] * inv_freq[None, :]  # [T, Dh/2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # [B, H, T, Dh/2, 2]
    return out.flatten(-2)


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None, offset: int
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x [B, T, D] at positions offset.. -> (y [B, T, D], keys and values so far)."""
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k = rotate(q, offset), rotate(k, offset)  # [B, H, T, Dh]
        if past is not None:  # one new step against everything before it: no mask needed
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=past is None and T > 1,
            dropout_p=self.dropout if self.training else 0.0,
        )  # fmt: skip
        return self.proj(y.transpose(1, 2).reshape(B, T, D)), (k, v)


class Block(nn.Module):
    """Pre-norm: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None, offset: int
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, kv = self.attn(self.norm1(x), past, offset)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.norm2(x))), kv


class TokenTransformer(nn.Module):
    """Next-token Transformer: embedding [V, D] -> blocks -> norm -> logits through the same
    embedding (weight tying). The same loss and sampling loop as TokenLSTM (components/rnn.py)."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        dropout: float = 0.1,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self.head.weight = self.embed.weight  # tied
        for p in self.parameters():  # GPT-2's init scale; the tied matrix is set here once
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def forward(
        self, tokens: torch.Tensor, cache: Cache | None = None, offset: int = 0
    ) -> tuple[torch.Tensor, Cache]:
        """tokens [B, T] at positions offset.. -> (hidden [B, T, D], cache); out[:, t] predicts
        tokens[:, t+1]. With a cache, T must be 1 (one new step)."""
        x = self.drop(self.embed(tokens))
        new: Cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, cache[i] if cache is not None else None, offset)
            new.append(kv)
        return self.norm(x), new

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy summed over predicted real tokens x[:, 1:], their number); right
        padding never reaches a real position under the causal mask."""
        return next_token_loss(self, batch)

    @torch.no_grad()
    def generate(
        self, prefix: torch.Tensor, steps: int, *, use_cache: bool = True, **controls: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """prefix [N, P] (P >= 1) + up to `steps` new tokens -> (tokens [N, P+S], lengths [N]);
        `controls` as `generate_tokens`. use_cache=False recomputes the whole sequence at every
        step (what the cache saves: benchmarks/sampling_latency.py measures both)."""
        P = prefix.shape[1]
        out, cache = self(prefix)
        drawn: list[torch.Tensor] = []

        def advance(tok: torch.Tensor, cache: Cache, t: int) -> tuple[torch.Tensor, Cache]:
            if use_cache:
                out, cache = self(tok[:, None], cache, offset=P + t)
            else:
                drawn.append(tok)
                out, _ = self(torch.cat([prefix, torch.stack(drawn, 1)], 1))
            return self.head(out[:, -1]), cache

        return generate_tokens(self.head(out[:, -1]), cache, advance, prefix, steps, **controls)
