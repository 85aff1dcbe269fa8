"""Listening data as a sparse user x item matrix, and RecBole's random 8:1:1 split per user.

Implicit feedback: a user either played an artist or not, so the matrix holds 1 per pair; the
play counts stay beside it (`Interactions.plays`) for models that weigh confidence by them.
Rows and columns are dense indices 0..n-1; `user_ids` / `item_ids` map them back to the file's
IDs (Last.fm artist IDs are not contiguous).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cadenza.errors import CadenzaError, ConfigError
from cadenza.paths import data_root

LASTFM_DIR = "lastfm-hetrec2011-2k"
LASTFM_HEADER = ("userID", "artistID", "weight")


@dataclass(frozen=True)
class Interactions:
    matrix: sp.csr_matrix  # [n_users, n_items] float32, 1.0 per (user, item) pair
    plays: sp.csr_matrix  # [n_users, n_items] float32, same pattern, the play counts
    user_ids: np.ndarray  # [n_users] the file's ID of each row
    item_ids: np.ndarray  # [n_items] the file's ID of each column

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]


def from_triples(users: np.ndarray, items: np.ndarray, weights: np.ndarray) -> Interactions:
    """Interactions from parallel arrays of raw IDs and weights [N]; repeated pairs add up."""
    user_ids, rows = np.unique(users, return_inverse=True)
    item_ids, cols = np.unique(items, return_inverse=True)
    shape = (len(user_ids), len(item_ids))
    plays = sp.csr_matrix((np.asarray(weights, np.float32), (rows, cols)), shape=shape)
    plays.sum_duplicates()
    matrix = plays.copy()
    matrix.data[:] = 1.0
    return Interactions(matrix, plays, user_ids, item_ids)


def lastfm_path(root: Path | None = None) -> Path:
    return (root or data_root()) / LASTFM_DIR / "user_artists.dat"


def load_lastfm(root: Path | None = None) -> Interactions:
    """HetRec 2011 Last.fm 2K user_artists.dat: 1,892 users x 17,632 artists, 92,834 pairs."""
    path = lastfm_path(root)
    if not path.is_file():
        env = os.environ.get("CADENZA_DATA")
        where = f"$CADENZA_DATA={env}" if env else "$CADENZA_DATA is unset, so the root is ./data"
        raise CadenzaError(
            f"Last.fm listening data not found: {path} is missing ({where}). Set CADENZA_DATA to "
            f"the folder that holds {LASTFM_DIR}/ (e.g. ../shared/data)."
        )
    # The GroupLens original has CRLF line ends; split() takes tabs, CR and LF alike.
    header, _, body = path.read_text(encoding="utf-8").partition("\n")
    if tuple(header.split()) != LASTFM_HEADER:
        raise CadenzaError(
            f"{path}: expected the header {' '.join(LASTFM_HEADER)!r} (tab-separated), got "
            f"{header.strip()!r}; point CADENZA_DATA at HetRec's original files."
        )
    values = np.array(body.split(), dtype=np.int64)
    if values.size % 3:
        raise CadenzaError(f"{path}: a row does not have 3 fields (userID, artistID, weight)")
    table = values.reshape(-1, 3)
    return from_triples(table[:, 0], table[:, 1], table[:, 2])


@dataclass(frozen=True)
class Split:
    """Disjoint train / valid / test matrices, each [n_users, n_items], that add up to the data."""

    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    seed: int

    @property
    def seen_before_test(self) -> sp.csr_matrix:
        """train + valid: what the test stage masks (RecBole ranks test after both)."""
        return (self.train + self.valid).tocsr()


def split_sizes(n: int, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> tuple[int, ...]:
    """How many of a user's n interactions go to each part: RecBole's `_calcu_split_ids`.

    Every part but the first gets floor(ratio * n) and the first (train) the rest. Then, last
    part first (test, then valid), a part whose exact share is under one interaction
    (0 < ratio * n < 1) takes one from train, as long as train keeps more than one. For 8:1:1:
    n = 1 -> (1, 0, 0); n = 2 -> (1, 0, 1); 3 <= n <= 19 -> (n - 2, 1, 1); n = 20 -> (16, 2, 2);
    n = 50 -> (40, 5, 5). A user with one pair is thus train-only and never evaluated.
    """
    total = float(sum(ratios))
    shares = [r / total for r in ratios]
    counts = [int(s * n) for s in shares]
    counts[0] = n - sum(counts[1:])
    for i in range(1, len(shares)):
        if counts[0] <= 1:
            break
        if 0 < shares[-i] * n < 1:
            counts[-i] += 1
            counts[0] -= 1
    return tuple(counts)


def split_per_user(
    matrix: sp.csr_matrix, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Split:
    """RecBole's `split: {RS: [0.8, 0.1, 0.1]}, group_by: user, order: RO` on a user x item matrix.

    Each user's items are put in a random order (RecBole shuffles all interactions, then groups
    them by user: the same per-user distribution; the draws differ, RecBole uses torch's RNG)
    and cut by `split_sizes`. Values (1s or play counts) are carried over. Same seed, same split.
    """
    if len(ratios) != 3 or min(ratios) < 0 or sum(ratios) <= 0:
        raise ConfigError(f"split ratios must be three non-negative numbers (train, valid, test), "
                          f"e.g. (0.8, 0.1, 0.1); got {tuple(ratios)}")  # fmt: skip
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()  # the shuffle must not depend on how the input happened to be stored
    rng = np.random.default_rng(seed)
    parts: list[tuple[list, list, list]] = [([], [], []) for _ in range(3)]
    for user in range(matrix.shape[0]):
        lo, hi = matrix.indptr[user], matrix.indptr[user + 1]
        order = lo + rng.permutation(hi - lo)
        bounds = np.cumsum((0, *split_sizes(hi - lo, ratios)))
        for part, (a, b) in zip(parts, zip(bounds[:-1], bounds[1:])):
            part[0].append(np.full(b - a, user))
            part[1].append(matrix.indices[order[a:b]])
            part[2].append(matrix.data[order[a:b]])
    train, valid, test = (
        sp.csr_matrix(
            (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
            shape=matrix.shape,
            dtype=matrix.dtype,
        )
        for rows, cols, data in parts
    )
    return Split(train, valid, test, seed)


LASTFM_TAGS_HEADER = ("userID", "artistID", "tagID", "day", "month", "year")


@dataclass(frozen=True)
class TagAssignments:
    """Last.fm tag assignments of training pairs, as parallel arrays, and the tags' words."""

    users: np.ndarray  # [A] row index of the user who tagged
    items: np.ndarray  # [A] column index of the artist tagged
    tags: np.ndarray  # [A] the file's tag ID
    names: dict[int, str]  # tag ID -> its words (tags.dat)


def lastfm_tag_assignments(
    data: Interactions, allowed: sp.csr_matrix, root: Path | None = None
) -> TagAssignments:
    """user_taggedartists.dat, keeping only assignments whose (user, artist) pair is in
    `allowed` (the training split): a user who tagged an artist has heard them, so tags from
    held-out pairs would leak the answer."""
    path = lastfm_path(root).with_name("user_taggedartists.dat")
    if not path.is_file():
        raise CadenzaError(f"Last.fm tags not found: {path} is missing; set CADENZA_DATA")
    header, _, body = path.read_text(encoding="utf-8").partition("\n")
    if tuple(header.split()) != LASTFM_TAGS_HEADER:
        raise CadenzaError(f"{path}: unexpected header {header.strip()!r}")
    rows = np.array(body.split(), dtype=np.int64).reshape(-1, len(LASTFM_TAGS_HEADER))
    u = np.searchsorted(data.user_ids, rows[:, 0]).clip(max=data.n_users - 1)
    i = np.searchsorted(data.item_ids, rows[:, 1]).clip(max=data.n_items - 1)
    ok = (data.user_ids[u] == rows[:, 0]) & (data.item_ids[i] == rows[:, 1])
    ok &= np.asarray(sp.csr_matrix(allowed)[u, i]).ravel() > 0
    return TagAssignments(u[ok], i[ok], rows[ok, 2], lastfm_tag_names(path.with_name("tags.dat")))


def lastfm_tag_names(path: Path) -> dict[int, str]:
    """tags.dat: tag ID -> its words, lower-cased (the GroupLens file is Latin-1)."""
    if not path.is_file():
        raise CadenzaError(f"Last.fm tag names not found: {path} is missing; set CADENZA_DATA")
    header, _, body = path.read_text(encoding="latin-1").partition("\n")
    if tuple(header.split()) != ("tagID", "tagValue"):
        raise CadenzaError(f"{path}: unexpected header {header.strip()!r}")
    names = {}
    for line in body.splitlines():
        tag, _, value = line.partition("\t")
        if tag.strip():
            names[int(tag)] = " ".join(value.split()).lower()
    return names


def lastfm_artists(root: Path | None = None) -> dict[int, str]:
    """artists.dat: artist ID -> name as Last.fm writes it (runs of blanks made one space)."""
    path = lastfm_path(root).with_name("artists.dat")
    if not path.is_file():
        raise CadenzaError(f"Last.fm artists not found: {path} is missing; set CADENZA_DATA")
    names = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) > 1 and fields[0].strip().isdigit():
            names[int(fields[0])] = " ".join(fields[1].split())
    return names


def lastfm_artist_names(root: Path | None = None) -> set[str]:
    """artists.dat's names, lower-cased: what a description built from tags must not contain."""
    return {name.lower() for name in lastfm_artists(root).values()}


def tag_descriptions(
    owners: np.ndarray, tags: np.ndarray, n_owners: int, names: dict[int, str],
    banned: set[str] = frozenset(), per_owner: int = 10,
) -> list[str]:  # fmt: skip
    """Each owner's (user's or artist's) `per_owner` most used tags as words, "rock, indie,
    90s" ("" for none): by how often the owner used the tag, ties by the tag's use overall.
    Tags whose words are in `banned` (artist names) are left out, so a listener's description
    never names an artist."""
    overall = np.bincount(tags, minlength=int(tags.max(initial=0)) + 1)
    out = []
    order = np.argsort(owners, kind="stable")
    bounds = np.searchsorted(owners[order], np.arange(n_owners + 1))
    for o in range(n_owners):
        mine = tags[order[bounds[o] : bounds[o + 1]]]
        ids, counts = np.unique(mine, return_counts=True)
        ranked = ids[np.lexsort((ids, -overall[ids], -counts))]
        words = [names.get(int(t), "") for t in ranked]
        out.append(", ".join([w for w in words if w and w not in banned][:per_owner]))
    return out


def lastfm_tags(
    assigned: TagAssignments, n_items: int, n_tags: int = 500
) -> tuple[np.ndarray, list[str]]:
    """Artists' content from their training tags: [n_items, n_tags] float32, L2 rows, and each
    column's tag words.

    The `n_tags` most used tags are kept; each artist's counts are log-scaled, weighted by
    inverse document frequency and unit-normalised (an untagged artist is all zeros).
    """
    if n_tags == 0:
        return np.zeros((n_items, 0), np.float32), []
    items, tags = assigned.items, assigned.tags
    tag_ids, counts = np.unique(tags, return_counts=True)
    top = np.sort(tag_ids[np.argsort(-counts, kind="stable")[:n_tags]])
    keep = np.isin(tags, top)
    cols = np.searchsorted(top, tags[keep])
    x = sp.csr_matrix(
        (np.ones(keep.sum(), np.float32), (items[keep], cols)), shape=(n_items, len(top))
    )
    x.sum_duplicates()
    x.data = np.log1p(x.data)
    idf = np.log(n_items / (1.0 + x.getnnz(axis=0))).astype(np.float32)
    dense = x.toarray() * idf
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    names = [assigned.names.get(int(t), str(t)) for t in top]
    return (dense / np.maximum(norms, 1e-8)).astype(np.float32), names
