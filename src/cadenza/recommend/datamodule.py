"""Listening data for the recommender family: a Catalog (tracks, their content, who played what,
split) and the DataModule that serves users to the RecommenderModule.

Two catalogs:
- `LastfmCatalog`: Last.fm HetRec 2K user-artist plays under RecBole's 8:1:1 split per user;
  an artist's content is the TF-IDF of the tags that *training* pairs gave it (a tag that user u
  gave artist a says u knows a, so tags of held-out pairs would leak the answer).
- `StyleCatalog`: real pieces in four styles (`style_catalog.py`) with simulated listeners whose
  tastes mix styles; content = the pieces' symbolic features; a stratified share of the tracks
  is cold: every play of them is held out of training (`Catalog.cold_*`), so they can only be
  recommended from their notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import scipy.sparse as sp
import torch
from torch.utils.data import DataLoader

from cadenza.errors import ConfigError
from cadenza.models.base import check_int
from cadenza.recommend.interactions import (
    Interactions,
    lastfm_artists,
    lastfm_path,
    lastfm_tag_assignments,
    lastfm_tags,
    load_lastfm,
    split_per_user,
    tag_descriptions,
)


@dataclass
class Catalog:
    item_keys: list[str]
    user_keys: list[str]
    features: np.ndarray  # [I, F] float32, standardised content (F may be 0)
    feature_mean: np.ndarray  # [F] what standardises a new track's raw features
    feature_std: np.ndarray  # [F]
    history: sp.csr_matrix  # [U, I] float32 training weights (log plays, or 1)
    train: sp.csr_matrix  # [U, I] binary
    valid: sp.csr_matrix
    test: sp.csr_matrix
    item_context: np.ndarray  # [I] int64, index into `contexts`, -1 for none
    contexts: list[str] = field(default_factory=list)
    cold_items: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cold_test: sp.csr_matrix | None = None  # [U, I] plays of cold tracks (never trained on)
    description: str = ""
    feature_kind: str | None = None  # what `features` are: "symbolic" (notes), "lastfm_tags"
    feature_names: list[str] | None = None  # which SYMBOLIC_NAMES dims, or which tags
    # Words about tracks and listeners ("" for none), from which the model learns text -> taste
    # (text_taste.py): Last.fm tags, or the four styles' descriptions. None: no words at all.
    item_text: list[str] | None = None
    user_text: list[str] | None = None
    # What a listener calls each track, where the data names it (Last.fm: artists.dat); the key
    # stays the stable ID. None: the keys are the names (the styles' keys are file paths).
    item_names: list[str] | None = None

    @property
    def known(self) -> np.ndarray:
        """[I] bool: tracks with at least one training play (they have a trained ID vector)."""
        return self.train.getnnz(axis=0) > 0


def standardise(raw: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z-score with the mean/std of `rows` (warm tracks only: cold ones are 'unseen')."""
    mean = raw[rows].mean(axis=0)
    std = raw[rows].std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return ((raw - mean) / std).astype(np.float32), mean.astype(np.float32), std.astype(np.float32)


class LastfmCatalog:
    def __init__(self, root: str | Path | None = None, split_seed: int = 0,
                 ratios: Sequence[float] = (0.8, 0.1, 0.1), tags: int = 500,
                 weighting: str = "log_plays") -> None:  # fmt: skip
        if weighting not in ("log_plays", "binary"):
            raise ConfigError(f"data.source.weighting must be log_plays or binary, got "
                              f"{weighting!r}")  # fmt: skip
        self.root = Path(root) if root is not None else None
        self.split_seed, self.ratios = int(split_seed), tuple(ratios)
        self.tags = check_int("data.source.tags", tags, minimum=0)
        self.weighting = weighting

    def describe(self) -> str:
        return f"Last.fm HetRec 2K ({lastfm_path(self.root)}), split seed {self.split_seed}"

    def build(self) -> Catalog:
        data = load_lastfm(self.root)
        split = split_per_user(data.matrix, self.ratios, seed=self.split_seed)
        return lastfm_catalog(data, split.train, split.valid, split.test, self.tags,
                              self.weighting, self.root, self.describe())  # fmt: skip


def lastfm_catalog(
    data: Interactions, train: sp.csr_matrix, valid: sp.csr_matrix,
    test: sp.csr_matrix | None = None, tags: int = 500, weighting: str = "log_plays",
    root: Path | None = None, description: str = "",
) -> Catalog:  # fmt: skip
    """A Catalog over Last.fm from a split; history and tags come from `train` only."""
    history = sp.csr_matrix(train, dtype=np.float32)
    if weighting == "log_plays":
        history = sp.csr_matrix(sp.csr_matrix(train).multiply(data.plays), dtype=np.float32)
        history.data = np.log1p(history.data)
    assigned = lastfm_tag_assignments(data, train, root)
    features, tag_words = lastfm_tags(assigned, data.n_items, tags)  # [I, T] L2 rows
    f = features.shape[1]
    # Words: an artist's ten most used training tags; a listener's ten most used, less any
    # that name an artist (a description of taste, not a list of artists).
    describe = dict(names=assigned.names, per_owner=10)
    item_text = tag_descriptions(assigned.items, assigned.tags, data.n_items, **describe)
    artists = lastfm_artists(root)
    user_text = tag_descriptions(assigned.users, assigned.tags, data.n_users,
                                 banned={n.lower() for n in artists.values()},
                                 **describe)  # fmt: skip
    return Catalog(
        item_keys=[str(i) for i in data.item_ids], user_keys=[str(u) for u in data.user_ids],
        features=features, feature_mean=np.zeros(f, np.float32),
        feature_std=np.ones(f, np.float32), history=history, train=sp.csr_matrix(train),
        valid=sp.csr_matrix(valid),
        test=sp.csr_matrix(train.shape, dtype=np.float32) if test is None else test,
        item_context=np.full(data.n_items, -1, np.int64), description=description,
        feature_kind="lastfm_tags", feature_names=tag_words, item_text=item_text,
        user_text=user_text, item_names=[artists.get(int(i), str(i)) for i in data.item_ids],
    )  # fmt: skip


class StyleListenersCatalog:
    def __init__(self, per_style: int = 150, n_users: int = 1000,
                 listens: Sequence[int] = (20, 60), concentration: float = 0.3,
                 cold_fraction: float = 0.2, seed: int = 0, root: str | Path | None = None,
                 workers: int = 2, features: str = "notes") -> None:  # fmt: skip
        if features not in ("notes", "all"):
            raise ConfigError(f"data.source.features must be notes or all, got {features!r}")
        self.features = features
        self.per_style = check_int("data.source.per_style", per_style, minimum=2)
        self.n_users = check_int("data.source.n_users", n_users)
        self.listens, self.concentration = tuple(listens), float(concentration)
        self.cold_fraction, self.seed = float(cold_fraction), int(seed)
        self.root, self.workers = root, int(workers)

    def describe(self) -> str:
        return (f"{self.per_style} pieces per style x 4 styles, {self.n_users} simulated "
                f"listeners (tastes mix styles), seed {self.seed}")  # fmt: skip

    def build(self) -> Catalog:
        from cadenza.recommend.style_catalog import (
            STYLE_TEXT,
            STYLES,
            cold_start_split,
            load_style_catalog,
            simulate_listeners,
        )

        cat = load_style_catalog(self.per_style, self.seed, self.root, self.workers)
        listeners = simulate_listeners(cat.styles, self.n_users, tuple(self.listens),
                                       self.concentration, seed=self.seed)  # fmt: skip
        warm, cold = cold_start_split(cat.styles, self.cold_fraction, seed=self.seed)
        is_cold = np.zeros(cat.n_tracks, bool)
        is_cold[cold] = True
        plays = listeners.matrix.tocsr()
        warm_plays = sp.csr_matrix(plays.multiply(~is_cold[None, :]))
        warm_plays.eliminate_zeros()
        split = split_per_user(warm_plays, (0.8, 0.1, 0.1), seed=self.seed)
        cold_test = sp.csr_matrix(plays.multiply(is_cold[None, :]))
        cold_test.eliminate_zeros()
        from cadenza.recommend.symbolic_features import NOTE_FEATURES, SYMBOLIC_NAMES

        names = list(NOTE_FEATURES if self.features == "notes" else SYMBOLIC_NAMES)
        raw = cat.features[:, [SYMBOLIC_NAMES.index(n) for n in names]]
        z, mean, std = standardise(raw, warm)
        return Catalog(
            item_keys=list(cat.keys), user_keys=[f"listener{u}" for u in range(self.n_users)],
            features=z, feature_mean=mean, feature_std=std,
            history=split.train.astype(np.float32), train=split.train, valid=split.valid,
            test=split.test, item_context=cat.styles.astype(np.int64), contexts=list(STYLES),
            cold_items=cold, cold_test=cold_test, description=self.describe(),
            feature_kind="symbolic", feature_names=names,
            item_text=[STYLE_TEXT[STYLES[s]] for s in cat.styles],
        )  # fmt: skip


class _Users(torch.utils.data.Dataset):
    def __init__(self, users: np.ndarray) -> None:
        self.users = users

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, i: int) -> int:
        return int(self.users[i])


class _Collate:
    """User ids -> dense rows [B, I] of the named matrices (a class: it must pickle)."""

    def __init__(self, **matrices: sp.csr_matrix) -> None:
        self.matrices = matrices

    def __call__(self, users: list[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(users)
        out = {k: torch.from_numpy(m[idx].toarray().astype(np.float32))
               for k, m in self.matrices.items()}  # fmt: skip
        out["users"] = torch.from_numpy(idx)
        return out


class InteractionDataModule(pl.LightningDataModule):
    def __init__(self, source: Any, batch_size: int = 128, eval_batch_size: int = 256,
                 num_workers: int = 0) -> None:  # fmt: skip
        super().__init__()
        if not hasattr(source, "build"):
            raise ConfigError("data.source must be a catalog (LastfmCatalog or "
                              "StyleListenersCatalog)")  # fmt: skip
        self.source = source
        self.batch_size = check_int("data.batch_size", batch_size)
        self.eval_batch_size = check_int("data.eval_batch_size", eval_batch_size)
        self.num_workers = check_int("data.num_workers", num_workers, minimum=0)
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = self.source.build()
        return self._catalog

    def model_sizing(self) -> dict[str, Any]:
        """What the model is sized from (the recommender's codec): no size is written in YAML."""
        c = self.catalog
        return {"n_users": len(c.user_keys), "n_items": len(c.item_keys),
                "feature_dim": int(c.features.shape[1]), "n_history": int(c.history.nnz),
                "item_keys": c.item_keys, "user_keys": c.user_keys, "contexts": c.contexts,
                "feature_kind": c.feature_kind, "feature_names": c.feature_names,
                "item_names": c.item_names}  # fmt: skip

    def split(self, stage: str) -> np.ndarray:
        """Users with something to learn (train) or to rank (valid, test)."""
        c = self.catalog
        m = {"train": c.train, "valid": c.valid, "test": c.test}[stage]
        return np.flatnonzero(m.getnnz(axis=1) > 0)

    def dataset(self, stage: str, training: bool = False) -> _Users:
        return _Users(self.split(stage))

    def _loader(self, stage: str, collate: _Collate, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(self.dataset(stage), batch_size=batch_size, shuffle=shuffle,
                          collate_fn=collate, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", _Collate(history=self.catalog.history), self.batch_size,
                            shuffle=True)  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        c = self.catalog
        collate = _Collate(history=c.history, seen=c.train, heldout=c.valid)
        return self._loader("valid", collate, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        c = self.catalog
        collate = _Collate(history=c.history, seen=(c.train + c.valid).tocsr(), heldout=c.test)
        return self._loader("test", collate, self.eval_batch_size, shuffle=False)
