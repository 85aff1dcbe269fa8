"""Nearest-neighbour search over track embeddings: exact by matrix product, approximate by FAISS.

Every index follows one contract: `build(embeddings [N, D])`, then
`search(queries [B, D], k, exclude=None) -> (scores [B, k] float32, ids [B, k] int64)` by inner
product (higher is better), best first. `k` above N gives N columns. A slot with nothing to fill
it (every other track excluded, or an IVF probe that reached too few tracks) holds id -1 and
score -inf, FAISS's own convention, so shapes never depend on the data.

- `ExactIndex`: scores in bounded chunks of queries x catalog rows (so 1000 queries against 1M
  tracks never hold a [1000, 1M] matrix), top-k by torch.topk, equal scores ordered by lower id.
- `FaissIndex("ivf")`: IndexIVFFlat, inner product. nlist defaults to 4 sqrt(N); k-means wants at
  least 39 training vectors per list, so a small catalog gets nlist = N // 39 lists, and one of
  under 78 tracks (fewer than two lists) is searched exactly by IndexFlatIP.
- `FaissIndex("hnsw")`: IndexHNSWFlat, inner product, over the distinct vectors: identical ones
  (every track a recommender never saw played, with no content, has the same embedding: 2,236 of
  Last.fm's 17,632) are one node, expanded to their tracks by id. As nodes they made a clique the
  graph's search could not leave: top-10 agreement with exact search was 0.75 at any efSearch.

`exclude` (tracks the user has already heard) is exact for ExactIndex; the FAISS indexes fetch
k + (longest exclude list) neighbours and drop the excluded ones, so an approximate result misses
what the over-fetch did not reach. faiss is imported only when a FaissIndex is built.
"""

from __future__ import annotations

import inspect
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import torch

from cadenza.errors import CadenzaError, ConfigError

KINDS = ("exact", "ivf", "hnsw")
MIN_PER_LIST = 39  # FAISS k-means warns below 39 training vectors per centroid
BLOCK = 1 << 24  # scores held at once: a [b, c] float32 chunk of 64 MB

Exclude = Sequence[Sequence[int] | np.ndarray] | None
Result = tuple[np.ndarray, np.ndarray]  # scores [B, k] float32, ids [B, k] int64


def _matrix(x: Any, what: str, dim: int | None = None) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        hint = " (for one query pass q[None, :])" if a.ndim == 1 else ""
        raise CadenzaError(f"{what} must be a 2-D array [rows, dim], got shape {a.shape}{hint}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise CadenzaError(f"{what} is empty (shape {a.shape}); pass at least one row")
    if a.dtype.kind not in "fiu":
        raise CadenzaError(f"{what} must be real numbers, got dtype {a.dtype}")
    if dim is not None and a.shape[1] != dim:
        raise CadenzaError(
            f"{what} have {a.shape[1]} dims but the index was built on {dim}-dim embeddings; "
            "embed them with the same model"
        )
    a = np.ascontiguousarray(a, dtype=np.float32)
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise CadenzaError(
            f"{what} has NaN or inf (as float32) in {int(bad.sum())} row(s), first row "
            f"{int(np.argmax(bad))}; fix or drop those embeddings"
        )
    return a


def _check_exclude(exclude: Exclude, b: int, n: int) -> list[np.ndarray] | None:
    if exclude is None:
        return None
    if len(exclude) != b:
        raise CadenzaError(
            f"exclude needs one id list per query: {b} queries, {len(exclude)} lists"
        )
    out = [np.unique(np.asarray(e, dtype=np.int64).ravel()) for e in exclude]
    for row, e in enumerate(out):
        if e.size and (e[0] < 0 or e[-1] >= n):
            raise CadenzaError(
                f"exclude[{row}] holds id {int(e[0] if e[0] < 0 else e[-1])}, outside the "
                f"catalog's ids 0..{n - 1}"
            )
    return out if any(e.size for e in out) else None


class NearestNeighbourIndex(ABC):
    """Top-k by inner product over a catalog of embeddings; see the module docstring."""

    kind: str = ""

    def __init__(self) -> None:
        self.n = 0
        self.dim: int | None = None

    def build(self, embeddings: Any) -> Self:
        x = _matrix(embeddings, "embeddings")  # [N, D] float32
        self.n, self.dim = x.shape
        self._build(x, owned=not np.may_share_memory(x, np.asarray(embeddings)))
        return self

    def search(self, queries: Any, k: int, exclude: Exclude = None) -> Result:
        if self.dim is None:
            raise CadenzaError(f"{type(self).__name__}.search() before build(); build it first")
        q = _matrix(queries, "queries", self.dim)  # [B, D]
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise CadenzaError(f"k must be a whole number >= 1, got {k!r}")
        k = min(int(k), self.n)
        return self._search(q, k, _check_exclude(exclude, len(q), self.n))

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """Memory the built index holds, in bytes."""

    @abstractmethod
    def _build(self, x: np.ndarray, owned: bool) -> None: ...

    @abstractmethod
    def _search(self, q: np.ndarray, k: int, exclude: list[np.ndarray] | None) -> Result: ...


def _best_first(s: np.ndarray, i: np.ndarray, k: int) -> Result:
    """The k best of each row of candidates s, i [b, m], by score then lower id."""
    order = np.lexsort((i, -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)


class ExactIndex(NearestNeighbourIndex):
    """Brute force: every query against every track, in chunks of at most `block` scores."""

    kind = "exact"

    def __init__(self, block: int = BLOCK) -> None:
        super().__init__()
        self.block = block

    def _build(self, x: np.ndarray, owned: bool) -> None:
        # A view of the caller's array would change under the index if they edit it.
        self._x = torch.from_numpy(x if owned else x.copy())  # [N, D]

    @property
    def nbytes(self) -> int:
        return self._x.numel() * self._x.element_size()

    def _search(self, q: np.ndarray, k: int, exclude: list[np.ndarray] | None) -> Result:
        qc = min(len(q), 256)
        cc = max(k, self.block // qc)
        scores, ids = [], []
        for b0 in range(0, len(q), qc):
            qb = torch.from_numpy(q[b0 : b0 + qc])  # [b, D]
            if exclude is not None:
                ex = exclude[b0 : b0 + qc]
                ex_row = np.repeat(np.arange(len(ex)), [len(e) for e in ex])
                ex_id = np.concatenate(ex)
            best_s = np.empty((len(qb), 0), np.float32)
            best_i = np.empty((len(qb), 0), np.int64)
            for c0 in range(0, self.n, cc):
                s = qb @ self._x[c0 : c0 + cc].T  # [b, c]
                if exclude is not None:
                    hit = (ex_id >= c0) & (ex_id < c0 + s.shape[1])
                    s.numpy()[ex_row[hit], ex_id[hit] - c0] = -math.inf  # a view: edits s
                v, i = torch.topk(s, min(k, s.shape[1]), dim=1)
                v, i = v.numpy(), i.numpy() + c0
                v, i = self._with_boundary_ties(s.numpy(), v, i, c0)
                best_s, best_i = _best_first(
                    np.concatenate([best_s, v], 1), np.concatenate([best_i, i], 1), k
                )
            scores.append(best_s)
            ids.append(best_i)
        s, i = np.concatenate(scores), np.concatenate(ids)
        i[np.isneginf(s)] = -1
        return s, i

    @staticmethod
    def _with_boundary_ties(s: np.ndarray, v: np.ndarray, i: np.ndarray, c0: int) -> Result:
        """topk picks arbitrarily among scores equal to its last one; re-pick those rows so the
        lower ids win, which keeps results the same whatever the chunking."""
        last = v[:, -1:]  # [b, 1]
        ties = ((s >= last).sum(1) > v.shape[1]) & np.isfinite(last[:, 0])
        for r in np.flatnonzero(ties):
            cand = np.flatnonzero(s[r] >= last[r])
            v_r, i_r = _best_first(s[r, cand][None], (cand + c0)[None], v.shape[1])
            v[r], i[r] = v_r[0], i_r[0]
        return v, i


def _faiss() -> Any:
    # faiss's loader tries its AVX512 / AVX2 builds in turn and logs each miss at INFO, with
    # the ModuleNotFoundError, before falling back to one that loads: under a CLI's INFO
    # logging that reads as a failure on stdout. A build that truly fails still raises below.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        import faiss
    except ImportError as e:
        raise CadenzaError("approximate search needs faiss: pip install faiss-cpu") from e
    return faiss


class FaissIndex(NearestNeighbourIndex):
    """Approximate top-k with FAISS: `kind="ivf"` (IVFFlat) or `kind="hnsw"` (HNSWFlat).

    nprobe (IVF) and ef_search (HNSW) may be changed between searches without a rebuild.
    IVF's k-means trains on a seeded sample of at most `train_per_list * nlist` vectors.
    """

    def __init__(
        self, kind: str = "ivf", nlist: int | None = None, nprobe: int = 32, m: int = 32,
        ef_search: int = 128, ef_construction: int = 40, train_per_list: int = 64,
        train_iters: int = 10, seed: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        if kind not in ("ivf", "hnsw"):
            raise ConfigError(f"FaissIndex kind must be 'ivf' or 'hnsw', got {kind!r}")
        ints = dict(nprobe=nprobe, m=m, ef_search=ef_search, ef_construction=ef_construction)
        ints |= dict(train_iters=train_iters, train_per_list=train_per_list)
        ints |= {} if nlist is None else dict(nlist=nlist)
        for name, value in ints.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"index.{name} must be an integer >= 1, got {value!r}")
        if train_per_list < MIN_PER_LIST:
            raise ConfigError(f"index.train_per_list must be >= {MIN_PER_LIST} (k-means needs it)")
        self.kind, self.nlist, self.nprobe, self.m = kind, nlist, nprobe, m
        self.ef_search, self.ef_construction, self.seed = ef_search, ef_construction, seed
        self.train_per_list, self.train_iters = train_per_list, train_iters
        self.lists = 0  # IVF lists actually built (0: flat or HNSW)
        # HNSW over distinct vectors: the tracks of each node, ascending (None: all distinct)
        self._order: np.ndarray | None = None
        self._starts: np.ndarray | None = None

    def _build(self, x: np.ndarray, owned: bool) -> None:
        faiss = _faiss()
        n, d = x.shape
        ip = faiss.METRIC_INNER_PRODUCT
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.m, ip)
            index.hnsw.efConstruction = self.ef_construction
            x = self._distinct(x)
        else:
            self.lists = min(self.nlist or round(4 * math.sqrt(n)), n // MIN_PER_LIST)
            if self.lists < 2:
                self.lists, index = 0, faiss.IndexFlatIP(d)
            else:
                self._quantizer = faiss.IndexFlatIP(d)  # the IVF index does not own it
                index = faiss.IndexIVFFlat(self._quantizer, d, self.lists, ip)
                index.cp.niter, index.cp.seed = self.train_iters, self.seed
                rng = np.random.default_rng(self.seed)
                size = min(n, self.train_per_list * self.lists)
                index.train(x[np.sort(rng.choice(n, size, replace=False))])
        index.add(x)
        self._index = index

    def _distinct(self, x: np.ndarray) -> np.ndarray:
        """x's distinct rows, in order of first appearance; records each one's tracks."""
        rows = np.ascontiguousarray(x).view(np.dtype((np.void, x.dtype.itemsize * x.shape[1])))
        _, first, inverse = np.unique(rows.ravel(), return_index=True, return_inverse=True)
        if len(first) == len(x):
            return x
        rank = np.empty(len(first), np.int64)  # unique's sorted order -> order of appearance
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        node = rank[inverse.ravel()]  # [N]: each track's node
        self._order = np.argsort(node, kind="stable")  # tracks grouped by node, ids ascending
        self._starts = np.searchsorted(node[self._order], np.arange(len(first) + 1))
        return x[np.sort(first)]

    def _expand(self, s: np.ndarray, i: np.ndarray, fetch: int) -> Result:
        """Node results [B, f] -> track results [B, fetch]: each node's tracks, by id."""
        assert self._order is not None and self._starts is not None
        out_s = np.full((len(i), fetch), -math.inf, np.float32)
        out_i = np.full((len(i), fetch), -1, np.int64)
        for row, (srow, irow) in enumerate(zip(s, i, strict=True)):
            found = [(score, self._order[self._starts[u] : self._starts[u + 1]])
                     for score, u in zip(srow.tolist(), irow.tolist()) if u >= 0]  # fmt: skip
            if found:
                ids = np.concatenate([m for _, m in found])[:fetch]
                scores = np.concatenate([np.full(len(m), v, np.float32) for v, m in found])
                out_i[row, : len(ids)], out_s[row, : len(ids)] = ids, scores[: len(ids)]
        return out_s, out_i

    @property
    def nbytes(self) -> int:
        return int(_faiss().serialize_index(self._index).nbytes)

    def _search(self, q: np.ndarray, k: int, exclude: list[np.ndarray] | None) -> Result:
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = self.ef_search
        elif self.lists:
            self._index.nprobe = min(self.nprobe, self.lists)
        fetch = min(self.n, k + (max(len(e) for e in exclude) if exclude else 0))
        s, i = self._index.search(q, min(fetch, self._index.ntotal))  # [B, fetch]
        s, i = s.astype(np.float32, copy=False), i.astype(np.int64, copy=False)
        if self._order is not None:  # nodes -> their tracks
            s, i = self._expand(s, i, fetch)
        if exclude is not None:
            for row, e in enumerate(exclude):
                i[row, np.isin(i[row], e)] = -1
        missing = i < 0
        s[missing] = -math.inf
        i[missing] = -1
        if missing.any():  # close the gaps so the found ones come first, still best first
            order = np.argsort(missing, axis=1, kind="stable")
            s, i = np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)
        return s[:, :k], i[:, :k]


def make_index(kind: str, **kw: Any) -> NearestNeighbourIndex:
    """An unbuilt index: "exact" (ExactIndex), or "ivf" / "hnsw" (FaissIndex) with its options."""
    if kind not in KINDS:
        raise ConfigError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    cls = ExactIndex if kind == "exact" else FaissIndex
    allowed = set(inspect.signature(cls).parameters) - {"kind"}
    if unknown := sorted(set(kw) - allowed):
        raise ConfigError(
            f"index kind {kind!r} takes no option(s) {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(allowed))}"
        )
    return ExactIndex(**kw) if kind == "exact" else FaissIndex(kind, **kw)
