"""A small recommender over the real Last.fm HetRec 2K catalog (every artist, every listener,
artists.dat's names), trained for one epoch (~15 s; its picks for listener 2, who plays 80s
pop, are a-ha and Pet Shop Boys) and saved as a checkpoint the way training saves one: what the
tests of catalog names, empty tastes and the CLI read."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import torch

from cadenza.recommend.datamodule import Catalog, LastfmCatalog
from cadenza.recommend.fit import fit_recommender
from cadenza.recommend.module import RecommenderModule
from tests.fixtures.data import data_root


@functools.cache
def lastfm_catalog() -> Catalog:
    root = data_root()  # skips (fails in CI) without the real data
    return LastfmCatalog(root, tags=20).build()  # 20 tags: content enough to explain


@functools.cache
def _trained() -> RecommenderModule:
    return fit_recommender(lastfm_catalog(), max_epochs=1, patience=1, seed=0, batch_size=256,
                           lr=0.01, dim=8, heads=2, hidden=16)  # fmt: skip


def lastfm_model() -> RecommenderModule:
    """A copy of the session's one trained model (a test may forget its listeners)."""
    return copy.deepcopy(_trained())


def save_lastfm_checkpoint(path: Path, names: bool = True) -> Path:
    """The checkpoint Lightning would write (hparams made plain by `on_save_checkpoint`);
    names=False writes one as a checkpoint from before catalogs kept names."""
    model = lastfm_model()
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(ckpt)
    if not names:
        del ckpt["hyper_parameters"]["item_names"]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path
