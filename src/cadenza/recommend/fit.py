"""Fit a RecommenderModule on a Catalog in-process, and wrap it in the baselines' contract.

`cadenza-train experiment=lastfm_recommender` is how a user trains one (checkpoints, loggers,
DDP); this is what the benchmark and the tests call: the same module and data module, one
Lightning Trainer with early stopping on validation NDCG@10, the best epoch's weights kept in
memory (no files written).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytorch_lightning as pl
import scipy.sparse as sp
import torch

from cadenza.recommend.datamodule import Catalog, InteractionDataModule, lastfm_catalog
from cadenza.recommend.interactions import Interactions
from cadenza.recommend.module import RecommenderModule


class _KeepBest(pl.Callback):
    """The weights of the epoch with the best `monitor` (higher is better), in memory."""

    def __init__(self, monitor: str = "val/ndcg@10", log: Any = None) -> None:
        self.monitor, self.best, self.state, self.epoch = monitor, -np.inf, None, -1
        self.say = log

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if self.say and value is not None:
            self.say(f"    epoch {trainer.current_epoch}: {self.monitor} {float(value):.4f}")
        if value is not None and not trainer.sanity_checking and float(value) > self.best:
            self.best, self.epoch = float(value), trainer.current_epoch
            self.state = copy.deepcopy(module.state_dict())


class _FixedSource:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def build(self) -> Catalog:
        return self.catalog

    def describe(self) -> str:
        return self.catalog.description or "in-memory catalog"


def fit_recommender(
    catalog: Catalog,
    max_epochs: int = 30,
    patience: int = 4,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
    log: Any = None,
    **model_kwargs: Any,
) -> RecommenderModule:
    """Train on catalog.train (selecting the epoch on catalog.valid); returns the best epoch."""
    pl.seed_everything(seed, workers=True, verbose=False)
    dm = InteractionDataModule(_FixedSource(catalog), batch_size=batch_size)
    model = RecommenderModule(
        **dm.model_sizing(),
        optimizer=lambda params: torch.optim.Adam(params, lr=lr),
        **model_kwargs,
    )
    keep = _KeepBest(log=log)
    stop = pl.callbacks.EarlyStopping("val/ndcg@10", mode="max", patience=patience)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=max_epochs, callbacks=[keep, stop],
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, deterministic=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    if keep.state is not None:
        model.load_state_dict(keep.state)
    if log:
        log(f"    best epoch {keep.epoch} of {trainer.current_epoch + 1}, valid ndcg@10 "
            f"{keep.best:.4f}")  # fmt: skip
    model.best_epoch = keep.epoch
    return model.eval()


class TasteRecommender:
    """The baselines' contract (`fit(train, valid)`, `scores(users)`) around the module."""

    def __init__(self, data: Interactions, seed: int = 0, tags: int = 500,
                 weighting: str = "log_plays", max_epochs: int = 30, patience: int = 4,
                 lr: float = 1e-3, **model_kwargs: Any) -> None:  # fmt: skip
        self.data, self.seed, self.tags, self.weighting = data, seed, tags, weighting
        self.max_epochs, self.patience, self.lr = max_epochs, patience, lr
        self.model_kwargs = model_kwargs

    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None) -> TasteRecommender:
        if valid is None:
            raise ValueError("TasteRecommender selects its epoch on a validation split")
        catalog = lastfm_catalog(self.data, train, valid, tags=self.tags, weighting=self.weighting)
        self.model = fit_recommender(catalog, self.max_epochs, self.patience, self.seed,
                                     lr=self.lr, log=print, **self.model_kwargs)  # fmt: skip
        with torch.no_grad():
            self._tracks = self.model.catalog_embeddings()
        return self

    @torch.no_grad()
    def scores(self, users: np.ndarray) -> np.ndarray:
        tastes = self.model.user_taste(torch.as_tensor(np.asarray(users)))
        return self.model.score(tastes, self._tracks).numpy()


class ContentOnly:
    """A TasteRecommender's content-based recommender: the listener's taste as learned, every
    track embedded from its content (Last.fm: its tags) as a cold track would be. Fits the
    hybrid only if it has not been fitted yet (one training serves both)."""

    def __init__(self, hybrid: TasteRecommender) -> None:
        self.hybrid = hybrid

    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None) -> ContentOnly:
        if not hasattr(self.hybrid, "model"):
            self.hybrid.fit(train, valid)
        with torch.no_grad():
            self._tracks = self.hybrid.model.catalog_embeddings(content_only=True)
        return self

    @torch.no_grad()
    def scores(self, users: np.ndarray) -> np.ndarray:
        tastes = self.hybrid.model.user_taste(torch.as_tensor(np.asarray(users)))
        return self.hybrid.model.score(tastes, self._tracks).numpy()
