"""Decoder-only Transformers over token ids and over piano-roll frames: pre-norm blocks, rotary
positions, PyTorch's scaled_dot_product_attention (a GPU gets its flash kernel), and a key/value
cache for sampling, preallocated and written in place.

Shapes: B batch, T time, D model width, H heads, Dh = D / H, L layers, K keys of a frame.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cadenza.data.batch import Batch
from cadenza.models.components.rnn import FrameOutput, _trim, generate_tokens, next_token_loss


def rotary_angles(
    offset: int, length: int, dh: int, device: torch.device, base: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) [T, Dh/2] of positions offset..offset+T-1."""
    inv_freq = base ** (-torch.arange(0, dh, 2, device=device, dtype=torch.float32) / dh)
    pos = torch.arange(offset, offset + length, device=device, dtype=torch.float32)
    angles = pos[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn each channel pair (i, i + Dh/2) of x [..., T, Dh] by its position's angle."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)  # [..., T, Dh/2] each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def rotate(x: torch.Tensor, offset: int) -> torch.Tensor:
    """Rotary position embedding of x [B, H, T, Dh] at positions offset..offset+T-1."""
    return apply_rotary(x, *rotary_angles(offset, x.shape[-2], x.shape[-1], x.device))


class KVCache:
    """Keys and values of every layer, [L, 2, N, H, T_max, Dh], allocated once per sample call
    (at the first write, in the keys' dtype, so autocast is respected) and written in place: a
    step costs attention over what is there, not a copy of it (growing the cache with torch.cat
    copies O(T) per step, which dominated sampling at n=8)."""

    def __init__(self, layers: int, length: int, step: StepTables | None = None) -> None:
        self.layers, self.length = layers, length
        self.buf: torch.Tensor | None = None
        self.step = step  # what Decoder.step needs, gathered once per sample call

    def update(
        self, layer: int, offset: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v [N, H, T, Dh] at offset..offset+T-1 -> all keys, values up to there."""
        end = offset + k.shape[2]
        if end > self.length:
            raise ValueError(f"the cache holds {self.length} positions, asked for {end}")
        if self.buf is None:
            N, H, _, Dh = k.shape
            self.buf = k.new_empty(self.layers, 2, N, H, self.length, Dh)
        kv = self.buf[layer]
        kv[0, :, :, offset:end] = k
        kv[1, :, :, offset:end] = v
        return kv[0, :, :, :end], kv[1, :, :, :end]


class StepTables:
    """For Decoder.step: every block's parameters in one flat tuple (reading 12 parameters a
    block through nn.Module attribute lookups costs more than some of the kernels they feed), and
    the rotary rotation of every position as a [Dh, Dh] matrix built from a (cos, sin) table
    [T, Dh]: R = I * cos + J * sin, so x @ R is `apply_rotary` in one matmul."""

    def __init__(self, decoder: Decoder, length: int) -> None:
        def t(w: torch.Tensor) -> torch.Tensor:  # [out, in] -> [in, out], contiguous
            return w.detach().t().contiguous()

        # Weights transposed once: addmm(b, x, W^T stored) runs 1.3-1.5x faster than
        # F.linear on the 1-8 rows of a sampling step (measured on the 2-core CPU).
        self.params = tuple(
            (b.norm1.weight, b.norm1.bias, t(b.attn.qkv.weight), b.attn.qkv.bias,
             t(b.attn.proj.weight), b.attn.proj.bias, b.norm2.weight, b.norm2.bias,
             t(b.mlp[0].weight), b.mlp[0].bias, t(b.mlp[2].weight), b.mlp[2].bias)
            for b in decoder.blocks
        )  # fmt: skip
        self.final = (decoder.norm.weight, decoder.norm.bias)
        dh, device = decoder.head_dim, decoder.norm.weight.device
        cos, sin = rotary_angles(0, length, dh, device)  # [T, Dh/2]
        self.cos, self.sin = cos.repeat(1, 2), sin.repeat(1, 2)  # [T, Dh]
        half = torch.arange(dh // 2, device=device)
        self.eye = torch.eye(dh, device=device)
        self.turn = torch.zeros(dh, dh, device=device)  # J: x @ (J * sin) = [-x2 s, x1 s]
        self.turn[half, half + dh // 2] = 1.0
        self.turn[half + dh // 2, half] = -1.0

    def rotation(self, position: int) -> torch.Tensor:
        """[Dh, Dh]: row vector x -> x @ R turns pair (i, i + Dh/2) by the position's angle."""
        return torch.addcmul(self.eye * self.cos[position], self.turn, self.sin[position])


class SelfAttention(nn.Module):
    """Causal self-attention with H query heads sharing Hkv key/value heads (grouped-query
    attention, Ainslie et al. 2023; Hkv = H is plain multi-head, Hkv = 1 multi-query): query
    heads g*G..g*G+G-1 (G = H / Hkv) read key/value head g. The cache, and the memory a
    sampling step reads, shrink by G."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.dropout = n_heads, n_kv_heads, dropout
        self.head_dim = d_model // n_heads
        self.qkv = nn.Linear(d_model, d_model + 2 * n_kv_heads * self.head_dim)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, rot: tuple[torch.Tensor, torch.Tensor],
                cache: KVCache | None, layer: int, offset: int) -> torch.Tensor:  # fmt: skip
        """x [B, T, D] at positions offset.. -> y [B, T, D], attending to positions <= its own."""
        B, T, D = x.shape
        H, Hkv, Dh = self.n_heads, self.n_kv_heads, self.head_dim
        qkv = self.qkv(x).view(B, T, H + 2 * Hkv, Dh).transpose(1, 2)  # [B, H+2Hkv, T, Dh]
        qk = apply_rotary(qkv[:, : H + Hkv], *rot)  # queries and keys turned together
        q, k, v = qk[:, :H], qk[:, H:], qkv[:, H + Hkv :]  # [B, H|Hkv, T, Dh]
        mask = None
        if cache is not None:
            k, v = cache.update(layer, offset, k, v)  # [B, Hkv, offset+T, Dh]
            if T > 1 and offset > 0:  # a block of new steps after cached ones
                pos = torch.arange(offset + T, device=x.device)
                mask = pos[None, :] <= pos[offset:, None]  # [T, offset+T]
        if T == 1 and Hkv < H:
            # One sampling step sees every cached key: each group's G queries become G rows
            # against its one key/value head, so the keys are read once, not G times.
            y = F.scaled_dot_product_attention(q.reshape(B, Hkv, H // Hkv, Dh), k, v)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=mask is None and T > 1 and offset == 0,
                dropout_p=self.dropout if self.training else 0.0, enable_gqa=Hkv < H,
            )  # fmt: skip
        return self.proj(y.reshape(B, H, T, Dh).transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    """Pre-norm: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, n_kv_heads, dropout)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, rot: tuple[torch.Tensor, torch.Tensor],
                cache: KVCache | None, layer: int, offset: int) -> torch.Tensor:  # fmt: skip
        x = x + self.drop(self.attn(self.norm1(x), rot, cache, layer, offset))
        return x + self.drop(self.mlp(self.norm2(x)))


class Decoder(nn.Module):
    """Embedded inputs [B, T, D] -> blocks -> final norm -> [B, T, D]."""

    def __init__(
        self, d_model: int, n_layers: int, n_heads: int, dropout: float, n_kv_heads: int | None
    ) -> None:
        super().__init__()
        kv = n_kv_heads or n_heads
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, kv, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, offset: int = 0
    ) -> torch.Tensor:
        """x at positions offset..; with a cache, positions before offset come from it. The
        rotary angles are computed once for all blocks (a table kept between sampling steps
        measured no faster: BENCHMARKS.md, sampling latency)."""
        if x.shape[1] == 1 and cache is not None and cache.buf is not None and not self.training:
            return self.step(x[:, 0], cache, offset)[:, None]  # a sampling step
        rot = rotary_angles(offset, x.shape[1], x.shape[2] // self.n_heads, x.device)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, rot, cache, i, offset)
        return self.norm(x)

    def step(self, x: torch.Tensor, cache: KVCache, offset: int) -> torch.Tensor:
        """One new position at `offset` after cached ones, in inference: x [N, D] -> [N, D],
        equal to forward(x[:, None], cache, offset)[:, 0] (tested). The same arithmetic in
        functional calls on flat parameters, rotary as one matmul: at the widths sampled on a
        CPU a step is ~40 tiny kernels, and nn.Module calls and lookups cost as much as they
        did (845 -> 449 us a step for jsb_transformer at n=1; BENCHMARKS.md, sampling latency)."""
        tables = cache.step
        if tables is None or cache.buf is None:
            raise ValueError("Decoder.step needs a cache from new_cache() that forward has begun")
        N, D = x.shape
        H, Dh = self.n_heads, self.head_dim
        Hkv = cache.buf.shape[3]
        if offset >= cache.length:
            raise ValueError(f"the cache holds {cache.length} positions, asked for {offset + 1}")
        rot = tables.rotation(offset).to(x.dtype)  # [Dh, Dh]
        for layer, params in enumerate(tables.params):
            n1w, n1b, qkv_w, qkv_b, proj_w, proj_b, n2w, n2b, w1, b1, w2, b2 = params
            h = F.layer_norm(x, (D,), n1w, n1b)
            qkv = torch.addmm(qkv_b, h, qkv_w).view(N, H + 2 * Hkv, Dh)
            qk = qkv[:, : H + Hkv] @ rot  # [N, H+Hkv, Dh], queries and keys turned
            kv = cache.buf[layer]  # [2, N, Hkv, T, Dh]
            kv[0, :, :, offset] = qk[:, H:]
            kv[1, :, :, offset] = qkv[:, H + Hkv :]
            q = qk[:, :H].reshape(N, Hkv, H // Hkv, Dh)  # each group's queries as rows
            y = F.scaled_dot_product_attention(
                q, kv[0, :, :, : offset + 1], kv[1, :, :, : offset + 1]
            )  # [N, Hkv, G, Dh]
            x = x + torch.addmm(proj_b, y.reshape(N, D), proj_w)
            h = F.layer_norm(x, (D,), n2w, n2b)
            x = x + torch.addmm(b2, F.gelu(torch.addmm(b1, h, w1)), w2)
        return F.layer_norm(x, (D,), *tables.final)

    def new_cache(self, length: int) -> KVCache:
        return KVCache(len(self.blocks), length, StepTables(self, length))


class StylePrefix(nn.Module):
    """A learned vector per style, [S, D], mixed by weights [B, S] (one-hot: a named style; a
    mix: a listener's taste over styles; zeros: no style) -> [B, D], which a network adds to
    its first input (a condition prefix). Initialised N(0, 0.02) like every matrix here."""

    def __init__(self, n_styles: int, d_model: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(n_styles, d_model))

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        return weights.to(self.table.dtype) @ self.table


def _gpt2_init(module: nn.Module) -> None:
    """N(0, 0.02) for every matrix (GPT-2's scale); biases and norms keep their defaults."""
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.normal_(p, std=0.02)


def window_bounds(length: int, window: int) -> list[tuple[int, int, int]]:
    """(start, first scored position, end) of each window that scores `length` tokens:
    the first window scores positions 1..window-1, each later one is shifted by window // 2 and
    scores only the positions its predecessor did not, so every position is scored exactly once
    and every one after the first window sees at least window // 2 tokens of context."""
    if window < 2:
        raise ValueError(f"an evaluation window needs at least 2 tokens, got {window}")
    bounds, end, lo = [], min(length, window), 1
    while True:
        bounds.append((max(0, end - window), lo, end))
        if end >= length:
            return bounds
        lo, end = end, min(length, end + window // 2)


def windowed_token_loss(
    net: nn.Module, batch: Batch, window: int, chunk: int = 32, **inputs: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """`next_token_loss` of pieces longer than `window` tokens, scored in overlapping windows
    (`window_bounds`): attention costs window^2 per window instead of T^2 per piece, so a
    27,000-token piece is validated in seconds, and no position is asked for more context than
    training crops gave. The same (nll summed, count) over the same targets; a cond [B, D] goes
    with each of its row's windows. Windows run `chunk` at a time to bound memory."""
    x, mask = _trim(batch)
    B, T = x.shape
    if window >= T:
        return next_token_loss(net, batch, **inputs)
    lengths = batch.lengths.to(x.device)
    rows, starts, los, his = [], [], [], []
    for s, lo, e in window_bounds(T, window):
        for b in range(B):
            if int(lengths[b]) > lo:  # this window scores at least one real token of row b
                rows.append(b), starts.append(s), los.append(lo), his.append(e)
    offsets = torch.arange(window, device=x.device)
    nll = torch.zeros((), device=x.device)
    count = torch.zeros((), dtype=torch.long, device=x.device)
    for i in range(0, len(rows), chunk):
        row = torch.tensor(rows[i : i + chunk], device=x.device)
        start = torch.tensor(starts[i : i + chunk], device=x.device)
        pos = start[:, None] + offsets  # [C, W] positions of each window's tokens
        tokens = x[row[:, None], pos]  # [C, W]
        lo = torch.tensor(los[i : i + chunk], device=x.device)[:, None]
        hi = torch.tensor(his[i : i + chunk], device=x.device)[:, None]
        target = pos[:, 1:]  # [C, W-1] what out[:, t] predicts
        scored = (target >= lo) & (target < hi) & (target < lengths[row][:, None])
        cond = {k: v[row] for k, v in inputs.items()}
        out, _ = net(tokens[:, :-1], **cond)  # [C, W-1, D]
        logits = net.head(out[scored])
        nll = nll + F.cross_entropy(logits.float(), tokens[:, 1:][scored], reduction="sum")
        count = count + scored.sum()
    return nll, count


class TokenTransformer(nn.Module):
    """Next-token Transformer: embedding [V, D] -> Decoder -> logits through the same embedding
    (weight tying). The same loss and sampling loop as TokenLSTM (components/rnn.py)."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        dropout: float = 0.1,
        pad_id: int = 0,
        n_kv_heads: int | None = None,
        n_styles: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.decoder = Decoder(d_model, n_layers, n_heads, dropout, n_kv_heads)
        self.head = nn.Linear(d_model, vocab_size)
        self.head.weight = self.embed.weight  # tied
        self.style = StylePrefix(n_styles, d_model) if n_styles else None
        _gpt2_init(self)

    def forward(
        self,
        tokens: torch.Tensor,
        cache: KVCache | None = None,
        offset: int = 0,
        cond: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """tokens [B, T] at positions offset.. -> (hidden [B, T, D], cache); out[:, t] predicts
        tokens[:, t+1]. cond [B, D] (a style vector) is added to the input at position 0."""
        x = self.embed(tokens)
        if cond is not None and offset == 0:
            x = torch.cat([x[:, :1] + cond[:, None].to(x.dtype), x[:, 1:]], dim=1)
        return self.decoder(x, cache, offset), cache

    def loss(self, batch: Batch, **inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy summed over predicted real tokens x[:, 1:], their number); right
        padding never reaches a real position under the causal mask."""
        return next_token_loss(self, batch, **inputs)

    @torch.inference_mode()
    def generate(
        self,
        prefix: torch.Tensor,
        steps: int,
        *,
        use_cache: bool = True,
        cond: torch.Tensor | None = None,
        **controls: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """prefix [N, P] (P >= 1) + up to `steps` new tokens -> (tokens [N, P+S], lengths [N]);
        cond [N, D] as in forward; `controls` as `generate_tokens`. use_cache=False recomputes
        the whole sequence at every step (what the cache saves: benchmarks/sampling_latency.py
        measures both)."""
        P = prefix.shape[1]
        cache = self.decoder.new_cache(P + steps) if use_cache else None
        out, _ = self(prefix, cache, cond=cond)
        drawn: list[torch.Tensor] = []

        def advance(tok: torch.Tensor, cache: KVCache | None, t: int) -> tuple[torch.Tensor, Any]:
            if cache is not None:
                out, _ = self(tok[:, None], cache, offset=P + t)
            else:
                drawn.append(tok)
                out, _ = self(torch.cat([prefix, torch.stack(drawn, 1)], 1), cond=cond)
            return self.head(out[:, -1]), cache

        return generate_tokens(self.head(out[:, -1]), cache, advance, prefix, steps, **controls)


class FrameTransformer(FrameOutput):
    """p(x_t | x_<t) over binary frames [B, T, K] (K keys): frame t-1 projected to D is the
    input at step t, a learned start vector the input at t=0; the Decoder's output at t gives
    p(x_t) through a NADE over the keys (or independent sigmoids), as FrameLSTM's."""

    def __init__(
        self,
        feature_dim: int,
        d_model: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        dropout: float = 0.1,
        output: str = "nade",
        nade_hidden: int = 150,
        n_kv_heads: int | None = None,
        n_styles: int = 0,
    ) -> None:
        super().__init__()
        self.input_proj = nn.Linear(feature_dim, d_model)
        self.start = nn.Parameter(torch.zeros(d_model))  # [D], input at t=0
        self.decoder = Decoder(d_model, n_layers, n_heads, dropout, n_kv_heads)
        self.style = StylePrefix(n_styles, d_model) if n_styles else None
        _gpt2_init(self)
        self._build_output(d_model, feature_dim, output, nade_hidden)  # NADE keeps its own init

    def _inputs(
        self, x: torch.Tensor, start: bool, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Frames [B, T, K] -> inputs [B, T(+1), D], after the start vector (+ cond [B, D])."""
        inp = self.input_proj(x.float())  # [B, T, D]
        if not start:
            return inp
        first = self.start.expand(x.shape[0], 1, -1)
        if cond is not None:
            first = first + cond[:, None].to(first.dtype)
        return torch.cat([first, inp], dim=1)

    def forward(
        self, x: torch.Tensor, state: Any = None, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, None]:
        """x [B, T, K] -> outputs [B, T, D] where out[:, t] predicts x[:, t]; cond [B, D] (a
        style vector) is added to the start input."""
        return self.decoder(self._inputs(x[:, :-1], start=True, cond=cond)), None

    @torch.inference_mode()
    def generate(
        self,
        n: int,
        steps: int,
        *,
        primer: torch.Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n continuations of `steps` new frames -> [n, steps, K]; primer [n, P, K] or None.
        The start vector and the primer go through in one pass, then one cached step a frame
        (use_cache=False recomputes the whole piece at every step instead)."""
        K = self.feature_dim
        piece = primer if primer is not None else self.start.new_zeros(n, 0, K)  # [n, P, K]
        P = piece.shape[1]
        cache = self.decoder.new_cache(P + steps) if use_cache else None
        out = self.decoder(self._inputs(piece, True, cond), cache)[:, -1]  # [n, D]: frame P

        def advance(frames: list[torch.Tensor], t: int) -> torch.Tensor:
            if cache is not None and not self.training:
                return self.decoder.step(self.input_proj(frames[-1]), cache, 1 + P + t)
            if cache is not None:
                new = self._inputs(frames[-1][:, None], False)  # [n, 1, D]
                return self.decoder(new, cache, 1 + P + t)[:, -1]
            whole = torch.cat([piece, torch.stack(frames, 1)], 1)
            return self.decoder(self._inputs(whole, True, cond))[:, -1]

        return self.draw_frames(out, steps, advance, temperature, generator)
