"""Conditional NADE output layer for binary frames (RNN-NADE, Boulanger-Lewandowski et al. 2012).

NADE (Larochelle & Murray 2011) factorises p(v) = prod_d p(v_d | v_<d) with a hidden layer
shared across d:

    a_d = b_h + W[:, :d] v_<d                 [H]   (W [H, D])
    p(v_d = 1 | v_<d) = sigmoid(b_v[d] + V[d] . sigmoid(a_d))     (V [D, H])

In the RNN-NADE the recurrent state supplies per-step biases b_v [.., D] and b_h [.., H]; the
weights W, V are shared over time. Teacher-forced log_prob computes all D conditionals at once
with an exclusive cumsum of v_j W[:, j] over j (memory N*D*H); sampling is sequential over D.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cadenza.models.sampling import GREEDY_TEMPERATURE, uniform

# Rows per chunk when no gradient is needed: bounds the [n, D, H] temporaries to ~64 MB at
# D=88, H=150. With autograd the saved activations of every chunk stay alive anyway, so
# chunking would only add overhead there.
EVAL_CHUNK_ELEMENTS = 16_000_000
# Use the sparse path while a frame's non-zeros K satisfy K + 1 <= D / SPARSE_FRACTION.
SPARSE_FRACTION = 4
# Up to this many rows, a CPU draw runs row by row in NumPy: a round is ~4 calls of ~1-2 us
# there against ~9 torch kernels of ~3-5 us (a 16-bar piece at n=1: 474 -> 85 us a frame on
# the 2-core CPU, equal at 16 rows, slower beyond). A row's notes then depend on nothing but
# that row, which keeps a batched request's notes equal to its notes alone (serve batches at
# most this many rows).
ROWWISE_MAX_ROWS = 16


class NADE(nn.Module):
    def __init__(self, visible_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.visible_dim = visible_dim
        self.hidden_dim = hidden_dim
        # Uniform(+-1/sqrt(fan_in)), as nn.Linear; a_d sums up to D inputs, so W is scaled by D.
        self.W = nn.Parameter(torch.empty(hidden_dim, visible_dim))  # [H, D]
        self.V = nn.Parameter(torch.empty(visible_dim, hidden_dim))  # [D, H]
        nn.init.uniform_(self.W, -1 / math.sqrt(visible_dim), 1 / math.sqrt(visible_dim))
        nn.init.uniform_(self.V, -1 / math.sqrt(hidden_dim), 1 / math.sqrt(hidden_dim))

    def logits(
        self, v: torch.Tensor, b_v: torch.Tensor, b_h: torch.Tensor, method: str = "auto"
    ) -> torch.Tensor:
        """Teacher-forced conditional logits: v [N, D], b_v [N, D], b_h [N, H] -> [N, D].

        method: "dense" (cumsum over all D), "sparse" (one hidden state per gap between
        non-zeros) or "auto" (sparse while frames are sparse). Both are exact.
        """
        if method not in ("auto", "dense", "sparse"):
            raise ValueError(f"method must be auto|dense|sparse, got {method!r}")
        nnz = int((v != 0).sum(dim=1).max()) if v.numel() else 0
        sparse_enough = nnz + 1 <= max(1, self.visible_dim // SPARSE_FRACTION)
        if method == "sparse" or (method == "auto" and sparse_enough):
            return self._logits_sparse(v, b_v, b_h, nnz)
        return self._logits_dense(v, b_v, b_h)

    def _logits_dense(self, v: torch.Tensor, b_v: torch.Tensor, b_h: torch.Tensor) -> torch.Tensor:
        # contrib[n, j, :] = v[n, j] * W[:, j]; its exclusive cumsum over j is W[:, :d] v_<d.
        contrib = v.unsqueeze(-1) * self.W.t()  # [N, D, H]
        acts = torch.cumsum(contrib, dim=1)  # [N, D, H], inclusive
        # Shift by one along D (exclusive) and add the per-step hidden bias.
        pre = torch.cat([b_h.unsqueeze(1), acts[:, :-1] + b_h.unsqueeze(1)], dim=1)  # [N, D, H]
        h = torch.sigmoid(pre)  # [N, D, H]
        # logits[n, d] = b_v[n, d] + sum_h V[d, h] h[n, d, h]: a batched (over d) mat-vec.
        hv = torch.bmm(h.transpose(0, 1), self.V.unsqueeze(-1)).squeeze(-1).t()  # [N, D]
        return b_v + hv

    def _logits_sparse(
        self, v: torch.Tensor, b_v: torch.Tensor, b_h: torch.Tensor, nnz: int
    ) -> torch.Tensor:
        # a_d only changes after a non-zero v_j, so a frame with K notes has just K+1 distinct
        # hidden states (one per gap between notes). Piano rolls hold a few notes out of 88,
        # so this is ~D/(K+1) times less work than the dense path, and exact for any v.
        N, D = v.shape
        pos = torch.arange(D, device=v.device).expand(N, D)
        # Indices of the non-zeros in increasing order, padded with D (a zero column of W).
        keys = torch.where(v != 0, pos, torch.full_like(pos, D))
        idx = keys.sort(dim=1).values[:, :nnz]  # [N, K]
        Wt = F.pad(self.W.t(), (0, 0, 0, 1))  # [D + 1, H], last row zero
        vals = F.pad(v, (0, 1)).gather(1, idx)  # [N, K], 0 at padding
        cols = F.embedding(idx, Wt) * vals.unsqueeze(-1)  # [N, K, H]
        # Pre-activation of each gap k: b_h + sum of the first k note columns.
        acts = torch.cumsum(cols, dim=1) + b_h.unsqueeze(1)  # [N, K, H]
        pre = torch.cat([b_h.unsqueeze(1), acts], dim=1)  # [N, K+1, H]
        hv = torch.sigmoid(pre) @ self.V.t()  # [N, K+1, D]
        gap = (torch.cumsum(v != 0, dim=1) - (v != 0).long()).unsqueeze(1)  # [N, 1, D]
        return b_v + hv.gather(1, gap).squeeze(1)  # [N, D]

    def log_prob(
        self, v: torch.Tensor, b_v: torch.Tensor, b_h: torch.Tensor, method: str = "auto"
    ) -> torch.Tensor:
        """log p(v): v [N, D] (0/1 float), b_v [N, D], b_h [N, H] -> [N]."""
        if v.shape[0] == 0:
            return b_v.new_zeros(0)
        v = v.to(b_v.dtype)
        if torch.is_grad_enabled():
            return self._log_prob(v, b_v, b_h, method)
        rows = max(1, EVAL_CHUNK_ELEMENTS // (self.visible_dim * self.hidden_dim))
        parts = [
            self._log_prob(v[i : i + rows], b_v[i : i + rows], b_h[i : i + rows], method)
            for i in range(0, v.shape[0], rows)
        ]
        return torch.cat(parts)

    def _log_prob(
        self, v: torch.Tensor, b_v: torch.Tensor, b_h: torch.Tensor, method: str
    ) -> torch.Tensor:
        logits = self.logits(v, b_v, b_h, method)  # [N, D]
        # log Bernoulli(v | sigmoid(logit)) = -BCE-with-logits, numerically stable.
        nll = F.binary_cross_entropy_with_logits(logits, v, reduction="none")  # [N, D]
        return -nll.sum(dim=-1)

    @torch.no_grad()
    def sample(
        self,
        b_v: torch.Tensor,
        b_h: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """b_v [N, D], b_h [N, H] -> v [N, D] float 0/1, drawn unit by unit from p(v_d | v_<d).

        temperature divides each conditional logit (<= GREEDY_TEMPERATURE: take the mode).

        Exactly the unit-by-unit draw with one uniform u_d per unit (v_d = u_d < p_d), done
        note by note: the hidden state only changes after a 1, so from a row's last 1 every
        later unit's probability is known at once, and the row jumps to its next unit with
        u_d < p_d. A frame with K notes takes K + 1 rounds instead of D (piano rolls: a few
        notes of 88 keys), for the same samples as the sequential loop.
        """
        N, D = b_v.shape
        # One uniform per unit drawn up front: the stream matches across devices and chunks.
        u = uniform((N, D), b_v.device, generator)  # [N, D]
        # u_d < sigmoid(logit_d / T)  <=>  V_d . h_d > T * logit(u_d) - b_v[d]: the threshold is
        # fixed per frame, so a round compares one matmul against it (logit 0 when greedy).
        if b_v.device.type == "cpu" and N <= ROWWISE_MAX_ROWS and b_v.dtype == torch.float32:
            return self._sample_rows(u, b_v, b_h, temperature)
        if temperature <= GREEDY_TEMPERATURE:
            threshold = -b_v
        else:
            threshold = temperature * (torch.log(u) - torch.log1p(-u)) - b_v  # [N, D]
        v = b_v.new_zeros(N, D)
        a = b_h.clone()  # [N, H], running pre-activation W[:, :d] v_<d + b_h
        Wt, Vt = self.W.t(), self.V.t()  # [D, H], [H, D]
        units = torch.arange(D, device=b_v.device)
        start = torch.zeros(N, dtype=torch.long, device=b_v.device)  # first undecided; D: done
        # Every row each round (a finished row's start is D, so it finds nothing): at sampling
        # batch sizes that costs less than compacting the rows still deciding.
        while True:
            on = (torch.sigmoid(a) @ Vt > threshold) & (units >= start[:, None])  # [N, D]
            nxt = torch.where(on, units, D).min(dim=1).values  # [N], D: no further 1
            found = nxt < D
            if not bool(found.any()):
                return v
            pick, hit = nxt.clamp(max=D - 1), found[:, None].to(v.dtype)  # [N], [N, 1]
            v.scatter_add_(1, pick[:, None], hit)  # each unit is set at most once
            a += hit.to(a.dtype) * Wt[pick]
            start = torch.where(found, nxt + 1, D)

    def _sample_rows(
        self, u: torch.Tensor, b_v: torch.Tensor, b_h: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        """`sample`'s note-by-note draw one row at a time in NumPy (CPU, float32): uniforms u,
        b_v [N, D], b_h [N, H] -> v [N, D]. Each round: every later unit's test at once, jump
        to the first unit that turns on, add its column of W."""
        bias, pre = b_v.detach().numpy(), b_h.detach().float().numpy()
        if temperature <= GREEDY_TEMPERATURE:
            thresholds = -bias
        else:
            un = u.numpy()
            thresholds = temperature * (np.log(un) - np.log1p(-un)) - bias  # as in `sample`
        W, V = self.W.detach().numpy(), self.V.detach().numpy()  # [H, D], [D, H]; views
        N, D = thresholds.shape
        v = np.zeros((N, D), dtype=np.float32)
        for row in range(N):
            a, th, start = pre[row], thresholds[row], 0  # a [H]: W[:, :d] v_<d + b_h
            while start < D:
                on = V[start:] @ (1.0 / (1.0 + np.exp(-a))) > th[start:]
                first = int(on.argmax())  # the first True, or 0 when there is none
                if not on[first]:
                    break
                d = start + first
                v[row, d] = 1.0
                a = a + W[:, d]
                start = d + 1
        return torch.from_numpy(v)
