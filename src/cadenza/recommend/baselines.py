"""Collaborative-filtering baselines that any recommender of ours must beat, and their tuning.

Every model follows one contract (`Recommender`): `fit(train, valid=None)` on a sparse
[n_users, n_items] matrix of implicit feedback, then `scores(users) -> [B, n_items]` (higher is
better; the evaluator masks items the user already has). The baselines ignore `valid`; a model
that stops early may use it.

- Popularity: how many training users have each item, the same list for everyone.
- ItemKNN: cosine item-item similarity with shrinkage, sim(i, j) = |U_i ∩ U_j| /
  (sqrt(|U_i| |U_j|) + shrink), each item keeping its k nearest neighbours (RecBole's ItemKNN).
- UserKNN: the same cosine between users, each user's k nearest listeners voting with their
  similarity for what they played.
- EASE (Steck 2019): B = argmin |X - XB|^2 + lam |B|^2 with diag(B) = 0, closed form.
- ALS (Hu, Koren & Volinsky 2008) and BPR (Rendle et al. 2009) from `implicit`, on the CPU.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from cadenza.errors import CadenzaError
from cadenza.metrics.ranking import evaluate
from cadenza.recommend.interactions import Split


class Recommender(Protocol):
    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None) -> Recommender: ...

    def scores(self, users: np.ndarray) -> np.ndarray: ...  # users [B] -> [B, n_items]


def _binary(train: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(train, dtype=np.float64, copy=True)
    x.eliminate_zeros()
    x.data[:] = 1.0
    return x


class Popularity:
    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None) -> Popularity:
        self.counts = _binary(train).getnnz(axis=0).astype(np.float64)  # [I] users per item
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.counts, (len(users), 1))


def top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep each row's k largest entries (ties: lower column first). [R, C] -> [R, C]."""
    m = sp.csr_matrix(matrix)
    m.sort_indices()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((-m.data, rows))  # row by row, largest first; stable, so deterministic
    rank = np.arange(m.nnz) - m.indptr[rows[order]]
    keep = np.sort(order[rank < k])
    return sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)


class ItemKNN:
    def __init__(self, k: int = 100, shrink: float = 0.0) -> None:
        self.k, self.shrink = k, shrink

    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None) -> ItemKNN:
        self.x = _binary(train)
        norms = np.sqrt(self.x.getnnz(axis=0))  # [I] |U_i|^(1/2) for binary columns
        sim = (self.x.T @ self.x).tocsr()  # [I, I] co-occurrence counts
        sim.setdiag(0.0)  # an item is not its own neighbour (the diagonal is stored: no copy)
        sim.eliminate_zeros()
        rows = np.repeat(np.arange(sim.shape[0]), np.diff(sim.indptr))
        sim.data /= norms[rows] * norms[sim.indices] + self.shrink
        # Row j of top_k holds j's neighbours; transposed, W[i, j] = sim(i, j) for i among them,
        # so score(u, j) = sum over the user's items i of W[i, j].
        self.weights = top_k_per_row(sim, self.k).T.tocsr()  # [I, I]
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return (self.x[users] @ self.weights).toarray()


class UserKNN:
    """Cosine user-user similarity with shrinkage over the users' binary histories, each user
    keeping its k nearest neighbours: score(u, j) = sum over u's neighbours v of sim(u, v)
    x[v, j] (a listener hears what listeners like them played)."""

    def __init__(self, k: int = 100, shrink: float = 0.0) -> None:
        self.k, self.shrink = k, shrink

    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None) -> UserKNN:
        self.x = _binary(train)
        self._norms = np.sqrt(self.x.getnnz(axis=1)).astype(np.float64)  # [U]
        return self

    def similarities(self, rows: sp.csr_matrix, users: np.ndarray | None = None) -> sp.csr_matrix:
        """Histories rows [B, I] (binary) -> their k nearest training users [B, U]; `users`
        [B] names the training user each row is, so no one is their own neighbour."""
        rows = _binary(rows)
        sim = (rows @ self.x.T).tocsr()  # [B, U] shared items
        if users is not None:  # drop (row b, users[b]) without changing the sparsity pattern
            own_entry = sp.csr_matrix(
                (np.ones(len(users)), (np.arange(len(users)), users)), shape=sim.shape
            )
            sim = (sim - sim.multiply(own_entry)).tocsr()
            sim.eliminate_zeros()
        own = np.sqrt(rows.getnnz(axis=1))[np.repeat(np.arange(sim.shape[0]), np.diff(sim.indptr))]
        sim.data /= own * self._norms[sim.indices] + self.shrink
        return top_k_per_row(sim, self.k)

    def scores_for(self, rows: sp.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        return (self.similarities(rows, users) @ self.x).toarray()

    def scores(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users)
        return self.scores_for(self.x[users], users)


class EASE:
    """With P = (X^T X + lam I)^-1, B = I - P diag(P)^-1 (so B_jj = 0).

    Last.fm has 10x more items (17,632) than users (1,892): an [I, I] inverse is 2.5 GB and
    minutes of CPU, so when U < I the same P comes from Woodbury's identity,
    P = (I - X^T (X X^T + lam I)^-1 X) / lam, with only a [U, U] system solved and P never
    formed; scores X_u B = X_u - (X_u P) / diag(P). Exact, not an approximation.
    """

    def __init__(self, lam: float = 500.0) -> None:
        self.lam = lam

    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None) -> EASE:
        self.x = _binary(train)
        n_users, n_items = self.x.shape
        if n_items <= n_users:
            gram = (self.x.T @ self.x).toarray() + self.lam * np.eye(n_items)
            p = scipy.linalg.inv(gram)
            self._b = np.eye(n_items) - p / np.diag(p)  # [I, I]
            return self
        self._b = None
        gram_u = (self.x @ self.x.T).toarray() + self.lam * np.eye(n_users)  # [U, U]
        self._kinv_x = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram_u), self.x.toarray())
        leverage = np.asarray(self.x.multiply(self._kinv_x).sum(axis=0)).ravel()  # [I]
        self._diag_p = (1.0 - leverage) / self.lam  # [I] diag(P)
        return self

    def _xp(self, xb: sp.csr_matrix) -> np.ndarray:
        """X_b P, [B, I], from the dual form."""
        return (xb.toarray() - (xb @ self.x.T).toarray() @ self._kinv_x) / self.lam

    def scores(self, users: np.ndarray) -> np.ndarray:
        xb = self.x[users]
        if self._b is not None:
            return np.asarray(xb @ self._b)
        return xb.toarray() - self._xp(xb) / self._diag_p

    def item_weights(self) -> np.ndarray:
        """B [I, I], formed explicitly: for tests and small catalogs only."""
        if self._b is not None:
            return self._b
        p = self._xp(sp.identity(self.x.shape[1], format="csr"))
        return np.eye(self.x.shape[1]) - p / self._diag_p


def _implicit():
    try:
        import implicit.cpu.als
        import implicit.cpu.bpr
        from threadpoolctl import threadpool_limits
    except ImportError as err:
        raise CadenzaError(
            "the ALS and BPR baselines need the `implicit` package: pip install implicit"
        ) from err
    return implicit.cpu, threadpool_limits


class _ImplicitMF:
    """An `implicit` factor model. The CPU classes are used directly, so a machine with CUDA
    gives the same numbers; BLAS is held to one thread while fitting, as `implicit` asks,
    because it parallelises over users itself and nested threads slow it down many times."""

    threads: int

    def _model(self, cpu: Any) -> Any:
        raise NotImplementedError

    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None) -> _ImplicitMF:
        cpu, threadpool_limits = _implicit()
        with threadpool_limits(1, "blas"):  # (it checks, and warns, when the model is built)
            model = self._model(cpu)
            model.fit(_binary(train).astype(np.float32), show_progress=False)
        self.user_factors = np.asarray(model.user_factors)  # [U, F]
        self.item_factors = np.asarray(model.item_factors)  # [I, F]
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors[users] @ self.item_factors.T


class ALS(_ImplicitMF):
    """Confidence alpha on each played pair, 1 on every other (implicit's convention)."""

    def __init__(self, factors: int = 128, regularization: float = 0.1, alpha: float = 1.0,
                 iterations: int = 15, seed: int = 0, threads: int | None = None,
                 ) -> None:  # fmt: skip
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed = iterations, seed
        self.threads = threads or os.cpu_count() or 1

    def _model(self, cpu: Any) -> Any:
        return cpu.als.AlternatingLeastSquares(
            factors=self.factors, regularization=self.regularization, alpha=self.alpha,
            iterations=self.iterations, random_state=self.seed, num_threads=self.threads,
        )  # fmt: skip


class BPR(_ImplicitMF):
    """One thread by default: `implicit`'s BPR is Hogwild SGD, so with several threads the
    result depends on timing and a seed no longer fixes the figure."""

    def __init__(self, factors: int = 128, learning_rate: float = 0.05,
                 regularization: float = 0.01, iterations: int = 100, seed: int = 0,
                 threads: int = 1) -> None:  # fmt: skip
        self.factors, self.learning_rate = factors, learning_rate
        self.regularization, self.iterations = regularization, iterations
        self.seed, self.threads = seed, threads

    def _model(self, cpu: Any) -> Any:
        return cpu.bpr.BayesianPersonalizedRanking(
            factors=self.factors, learning_rate=self.learning_rate,
            regularization=self.regularization, iterations=self.iterations,
            random_state=self.seed, num_threads=self.threads, verify_negative_samples=True,
        )  # fmt: skip


# What each baseline is tuned over on the validation split. The ranges were set by a look at
# seed 0's validation figures on Last.fm 2K, so that each one brackets what works there and a
# winner at a grid's end shows up (TuneResult.at_edge) rather than passing silently:
# - EASE: lam 50-100 is best here, lower than the 100-1000 often quoted; both ends are kept.
# - ALS: with binary input, `implicit` gives positives confidence alpha and the rest 1; 256
#   factors only work with heavy regularization (reg / alpha around 3-5; reg 0.1-1 overfits
#   badly: valid NDCG@10 0.09-0.12 at 256 factors). 512 factors at alpha 10, reg 50 matched
#   256 (0.1930 vs 0.1926) at 3x the time, so the grid stops at 256.
# - BPR (`implicit`'s SGD): small learning rates win; reg 0.001 and 0.1 were worse than 0.01
#   at lr 0.01, and 1000 epochs at lr 0.001 gained ~0.001 over 300 at 0.003 for 4x the time.
GRIDS: dict[str, dict[str, Sequence[Any]]] = {
    "popularity": {},
    "itemknn": {"k": (10, 25, 50, 100, 200, 400, 800), "shrink": (0.0, 10.0, 50.0)},
    "userknn": {"k": (10, 25, 50, 100, 200, 400), "shrink": (0.0, 10.0, 50.0)},
    "ease": {"lam": (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)},
    "als": {
        "factors": (64, 128, 256),
        "alpha": (5.0, 10.0, 20.0),
        "regularization": (10.0, 30.0, 50.0, 100.0),
        "iterations": (15,),
    },
    "bpr": {
        "factors": (64, 128),
        "learning_rate": (0.001, 0.003, 0.01),
        "regularization": (0.01,),
        "iterations": (100, 300),
    },
}
FACTORIES: dict[str, Callable[[dict[str, Any], int], Recommender]] = {
    "popularity": lambda p, seed: Popularity(),
    "itemknn": lambda p, seed: ItemKNN(**p),
    "userknn": lambda p, seed: UserKNN(**p),
    "ease": lambda p, seed: EASE(**p),
    "als": lambda p, seed: ALS(**p, seed=seed),
    "bpr": lambda p, seed: BPR(**p, seed=seed),
}


def grid_configs(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid, in order; the empty grid is one empty config."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


@dataclass
class TuneResult:
    params: dict[str, Any]  # the chosen config
    model: Recommender  # fitted on train with `params`: the model that is scored on test
    valid: dict[str, float]  # its validation metrics
    trials: list[dict[str, Any]] = field(default_factory=list)  # every config's valid metrics
    at_edge: list[str] = field(default_factory=list)  # axes where it chose the grid's end


def tune(
    make: Callable[[dict[str, Any]], Recommender],
    grid: Mapping[str, Sequence[Any]],
    split: Split,
    select: str = "ndcg@10",
    log: Callable[[str], None] | None = None,
) -> TuneResult:
    """Fit every config on split.train, rank split.valid (train masked), keep the best by
    `select` (validation NDCG@10 by default). Only the best fitted model is kept."""
    best: TuneResult | None = None
    trials = []
    for params in grid_configs(grid):
        started = time.perf_counter()
        model = make(params).fit(split.train, split.valid)
        fit_s = time.perf_counter() - started
        valid = evaluate(model.scores, split.train, split.valid)
        trials.append({"params": params, "valid": valid, "fit_seconds": round(fit_s, 2)})
        if log:
            log(f"  {params} valid {select} {valid[select]:.4f} (fit {fit_s:.1f}s)")
        if best is None or valid[select] > best.valid[select]:
            best = TuneResult(params, model, valid)
    assert best is not None
    best.trials = trials
    best.at_edge = [
        k for k, values in grid.items()
        if len(values) > 1 and best.params[k] in (values[0], values[-1])
    ]  # fmt: skip
    return best
