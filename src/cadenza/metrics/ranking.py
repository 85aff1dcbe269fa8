"""Top-k ranking metrics for full-catalog recommendation, with RecBole's definitions.

For one user with held-out items P (|P| >= 1) and a ranking of every item:

- Recall@k = |top-k ∩ P| / |P|: RecBole divides by |P|, not min(k, |P|), so a user with more
  than k held-out items cannot reach 1.
- NDCG@k = DCG@k / IDCG@k with binary relevance, DCG@k = sum over ranks r = 1..k of
  [item at r in P] / log2(r + 1), IDCG@k the same for a ranking with all of P first, i.e. over
  min(k, |P|) ranks.

Both are averaged over the users with at least one held-out item (a user with none has no
defined recall). Items the user already has (train, and for the test stage train + valid) are
masked to -inf before ranking: they are neither candidates nor misses, as in RecBole's
full-sort evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

ScoresFn = Callable[[np.ndarray], np.ndarray]  # user ids [B] -> scores [B, n_items]


def top_k_items(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best items per row, best first. scores [B, I] -> [B, min(k, I)].

    argpartition first: sorting 17 k items per user to keep 20 is the slow way.
    """
    n_items = scores.shape[1]
    k = min(k, n_items)
    if k < n_items:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n_items), scores.shape).copy()
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def hits_matrix(top: np.ndarray, heldout: sp.csr_matrix) -> np.ndarray:
    """[B, K] bool: is the item at each rank one of that row's held-out items (heldout [B, I])."""
    rows = np.repeat(np.arange(top.shape[0]), top.shape[1])
    return np.asarray(heldout[rows, top.ravel()]).reshape(top.shape) > 0


def recall_at_k(hits: np.ndarray, n_pos: np.ndarray, k: int) -> np.ndarray:
    """Per-user Recall@k. hits [B, K] (ranked, K >= k or all items), n_pos [B] -> [B]."""
    return hits[:, :k].sum(axis=1) / n_pos


def ndcg_at_k(hits: np.ndarray, n_pos: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k with binary relevance. hits [B, K], n_pos [B] -> [B]."""
    hits = hits[:, :k]
    discount = 1.0 / np.log2(np.arange(2, k + 2))  # [k]: rank r (1-based) weighs 1/log2(r+1)
    dcg = (hits * discount[: hits.shape[1]]).sum(axis=1)
    ideal = np.cumsum(discount)[np.minimum(n_pos, k) - 1]  # IDCG over min(k, |P|) ranks
    return dcg / ideal


def evaluate(
    scores_fn: ScoresFn,
    train: sp.csr_matrix,
    heldout: sp.csr_matrix,
    exclude: sp.csr_matrix | None = None,
    ks: Sequence[int] = (10, 20),
    batch_size: int = 512,
) -> dict[str, float]:
    """Mean Recall@k and NDCG@k over users with held-out items, ranking the full catalog.

    train, heldout, exclude: [n_users, n_items] sparse; the user's train items and, if given,
    its `exclude` items (valid, when scoring test) are masked to -inf. `scores_fn(users)`
    returns [B, n_items] for a batch of user ids. Returns {"recall@10": ..., "ndcg@10": ...}.
    """
    train, heldout = sp.csr_matrix(train), sp.csr_matrix(heldout)
    seen = train if exclude is None else train + sp.csr_matrix(exclude)
    n_pos_all = heldout.getnnz(axis=1)
    users = np.flatnonzero(n_pos_all > 0)
    k_max = max(ks)
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg")}
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        # A copy, as float64: the model may hand back a view of its own state (and float32
        # ties would reorder near-equal scores between runs).
        scores = np.array(scores_fn(batch), dtype=np.float64)
        if scores.shape != (len(batch), train.shape[1]):
            expected = (len(batch), train.shape[1])
            raise ValueError(f"scores_fn returned {scores.shape}, expected {expected}")
        if np.isnan(scores).any():  # NaN sorts unpredictably: a diverged model, not a ranking
            raise ValueError("scores_fn returned NaN scores")
        mask = seen[batch].tocoo()
        scores[mask.row, mask.col] = -np.inf
        hits = hits_matrix(top_k_items(scores, k_max), heldout[batch])
        n_pos = n_pos_all[batch]
        for k in ks:
            sums[f"recall@{k}"] += float(recall_at_k(hits, n_pos, k).sum())
            sums[f"ndcg@{k}"] += float(ndcg_at_k(hits, n_pos, k).sum())
    n_users = max(len(users), 1)
    out = {key: value / n_users for key, value in sums.items()}
    out["n_users"] = float(len(users))
    return out
