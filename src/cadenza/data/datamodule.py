"""One LightningDataModule serves every model family: a Source, a Codec, and a cache.

Build it first: `.codec` is ready at construction, so the model is sized from it. Lightning runs
`prepare_data` on one process per node (the slow, cached encode), then `setup` on every rank,
which only reads the manifest and memory-maps the split arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from cadenza.data.datasets import (
    FeatureCollate,
    PieceDataset,
    PieceIdCollate,
    PieceWindows,
    StyleCollate,
    WindowDataset,
    collate,
)
from cadenza.data.prepare import PreparedData, SplitData, prepare
from cadenza.data.sources import Source, StyledSource
from cadenza.data.splits import check_fractions
from cadenza.errors import ConfigError
from cadenza.paths import cache_root
from cadenza.representations.base import Codec

log = logging.getLogger("cadenza")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(key: str, value: Any, optional: bool = False) -> int | None:
    if optional and value is None:
        return None
    if not _is_int(value) or value < 1:
        extra = " or null" if optional else ""
        raise ConfigError(f"data.{key} must be a positive integer{extra}, got {value!r}")
    return int(value)


def _non_negative_int(key: str, value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise ConfigError(f"data.{key} must be an integer >= 0, got {value!r}")
    return int(value)


def _transpose_range(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    # OmegaConf's ListConfig is a Sequence but not a list; a str is a Sequence we must refuse.
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    if not ok or not all(_is_int(v) for v in value) or value[0] > value[1]:
        raise ConfigError(
            f"data.transpose must be null or [low, high] semitones with low <= high "
            f"(e.g. [-5, 6]), got {value!r}"
        )
    return int(value[0]), int(value[1])


class MusicDataModule(pl.LightningDataModule):
    """Batches of encoded pieces (`Batch`: x [B, T, D] frames or [B, T] tokens, lengths [B];
    a multi-track codec adds its track axes, e.g. rolls [B, T, K, P])."""

    def __init__(
        self,
        source: Source,
        codec: Codec,
        cache_dir: str | None = None,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        train_window: int | None = None,
        transpose: Sequence[int] | None = None,
        num_workers: int = 0,
        prepare_workers: int = 2,
        valid_fraction: float = 0.1,
        test_fraction: float = 0.1,
        root: str | None = None,
        window_bars: int | None = None,
        window_hop_bars: int = 1,
        max_rest_fraction: float = 0.5,
        symbolic_features: bool = False,
        eval_window: int | None = None,
    ) -> None:
        super().__init__()
        # Everything is checked here, before any slow work, so a bad override fails in a second.
        if not isinstance(source, Source):
            raise ConfigError(f"data.source must be a cadenza Source, got {type(source).__name__}")
        if not isinstance(codec, Codec):
            raise ConfigError(
                f"data.codec (the representation) must be a cadenza Codec, "
                f"got {type(codec).__name__}"
            )
        if cache_dir is not None and not isinstance(cache_dir, str | Path):
            raise ConfigError(f"data.cache_dir must be a path or null, got {cache_dir!r}")
        check_fractions(valid_fraction, test_fraction)
        self.source = source
        self.codec = codec
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_root()
        self.batch_size = _positive_int("batch_size", batch_size)
        self.eval_batch_size = (
            _positive_int("eval_batch_size", eval_batch_size, optional=True) or self.batch_size
        )
        self.train_window = _positive_int("train_window", train_window, optional=True)
        self.transpose = _transpose_range(transpose)
        if self.transpose is not None and not codec.transposes:
            raise ConfigError(
                f"data.transpose={list(self.transpose)} but the {codec.name} codec cannot "
                f"transpose ({codec.no_transpose_reason}): set data.transpose=null"
            )
        self.num_workers = _non_negative_int("num_workers", num_workers)
        self.prepare_workers = _non_negative_int("prepare_workers", prepare_workers)
        self.valid_fraction = float(valid_fraction)
        self.test_fraction = float(test_fraction)
        # Fixed windows of `window_bars` bars (a VAE's examples): training takes one every
        # `window_hop_bars`; validation and test take non-overlapping ones, so no step counts twice.
        self.window_bars = _positive_int("window_bars", window_bars, optional=True)
        self.window_hop_bars = _positive_int("window_hop_bars", window_hop_bars)
        if isinstance(max_rest_fraction, bool) or not isinstance(max_rest_fraction, int | float):
            raise ConfigError(f"data.max_rest_fraction must be a number, got {max_rest_fraction!r}")
        if not 0.0 <= max_rest_fraction <= 1.0:
            raise ConfigError(f"data.max_rest_fraction must lie in [0, 1], got {max_rest_fraction}")
        self.max_rest_fraction = float(max_rest_fraction)
        if getattr(source, "gives", "midi") == "audio" and codec.output == "midi":
            # Before the window check, whose advice (window_bars=null) would only lead to
            # every file skipped as corrupt.
            raise ConfigError(f"{source.describe()} gives audio, and the {codec.name} codec "
                              "encodes MIDI: set representation=mel")  # fmt: skip
        if self.window_bars is not None and not codec.cuts_windows:
            raise ConfigError(
                f"data.window_bars needs a codec that cuts bar windows (melody, "
                f"multitrack_melody, multitrack_pianoroll); {codec.name} does not: set "
                f"data.window_bars=null"
            )
        if not isinstance(symbolic_features, bool):
            raise ConfigError(
                f"data.symbolic_features must be true or false, got {symbolic_features!r}"
            )
        if symbolic_features and codec.output != "midi":
            raise ConfigError(
                f"data.symbolic_features=true describes MIDI; the {codec.name} codec holds "
                "audio features: set data.symbolic_features=false"
            )
        # Validation and test read consecutive windows of this many steps of each piece (with
        # the piece each came from, batch.extras["piece"]) instead of whole pieces: what a
        # model trained on crops must be evaluated on (the classifier averages them).
        self.eval_window = _positive_int("eval_window", eval_window, optional=True)
        if self.eval_window is not None and self.window_bars is not None:
            raise ConfigError(
                "data.eval_window windows whole pieces; data.window_bars already cuts bar "
                "windows: set one of them to null"
            )
        # Each batch also carries the symbolic features of each item's music (Condition.features),
        # computed from the decoded item as it is drawn: what model=classifier reads beside it.
        self.symbolic_features = symbolic_features
        self.root = root  # only for messages: sources already hold their own paths
        self._prepared: PreparedData | None = None
        self._splits: dict[str, SplitData] = {}
        self._windows: dict[tuple[str, bool], WindowDataset] = {}
        self._eval_windows: dict[tuple[str, bool], PieceWindows] = {}

    def model_sizing(self) -> dict[str, Any]:
        """What the model is sized from: the codec (no dimension is written twice in YAML). A
        codec that learns its vocabulary is fitted first (preparing the data), so the model is
        sized from, and its checkpoints carry, the fitted one."""
        if self.codec.learns_vocabulary:
            self.prepared  # noqa: B018 - prepares, and adopts the fitted codec
        return {"codec": self.codec.to_dict()}

    # --- preparation -------------------------------------------------------------------------
    def prepare_cache(self, force: bool = False) -> PreparedData:
        """Encode and cache the dataset (instant when this exact config is cached already)."""
        prepared = prepare(
            self.source,
            self.codec,
            self.cache_dir,
            workers=self.prepare_workers,
            valid_fraction=self.valid_fraction,
            test_fraction=self.test_fraction,
            force=force,
        )
        if self.codec.learns_vocabulary:
            self.codec = prepared.codec  # the same settings, with the learned vocabulary
        return prepared

    def prepare_data(self) -> None:
        if self._prepared is None:  # train() may have prepared already, to check the splits
            self._prepared = self.prepare_cache()

    def setup(self, stage: str | None = None) -> None:
        # Instant on a cache hit; on ranks that skipped prepare_data it reads what rank 0 wrote.
        if self._prepared is None:
            self._prepared = self.prepare_cache()
        if not self._splits:
            self._splits = {s: self._prepared.load_split(s) for s in ("train", "valid", "test")}

    @property
    def prepared(self) -> PreparedData:
        """The cache this module reads (prepared on first access if need be)."""
        if self._prepared is None:
            self._prepared = self.prepare_cache()
        return self._prepared

    def split(self, name: str) -> SplitData:
        if not self._splits:
            self.setup()
        return self._splits[name]

    # --- loaders -----------------------------------------------------------------------------
    def _loader(self, name: str, training: bool) -> DataLoader | list:
        split = self.split(name)
        if len(split) == 0:
            log.warning("data split %r of %s is empty; no %s batches", name, self.source, name)
            return []
        dataset = self.dataset(name, training)
        if len(dataset) == 0:
            log.warning(
                "no %d-bar window in data split %r of %s", self.window_bars, name, self.source
            )
            return []
        return DataLoader(
            dataset,
            batch_size=self.batch_size if training else self.eval_batch_size,
            shuffle=training,
            num_workers=self.num_workers,
            collate_fn=self._collate(name, dataset),
            persistent_workers=self.num_workers > 0,
        )

    @property
    def style_names(self) -> list[str] | None:
        """The styles a conditional model can be asked for: a StyledSource's, else None."""
        return list(self.source.style_names) if isinstance(self.source, StyledSource) else None

    def _collate(self, name: str, dataset: PieceDataset | WindowDataset | PieceWindows
                 ) -> Callable:  # fmt: skip
        inner = self._labels_collate(name, dataset)
        if isinstance(dataset, PieceWindows):
            inner = PieceIdCollate(inner, dataset.pieces)
        if not self.symbolic_features:
            return inner
        return FeatureCollate(inner, self.codec, cache=not dataset.training)

    def _labels_collate(self, name: str, dataset: PieceDataset | WindowDataset) -> Callable:
        if not isinstance(self.source, StyledSource):
            return collate
        split = self.split(name)
        piece_styles = np.array([self.source.style_of(k) for k in split.keys], dtype=np.int64)
        if isinstance(dataset, WindowDataset | PieceWindows):  # item i: a window of index[i, 0]
            return StyleCollate(piece_styles[dataset.index[:, 0]])
        return StyleCollate(piece_styles)

    def dataset(
        self, name: str, training: bool | None = None
    ) -> PieceDataset | WindowDataset | PieceWindows:
        """The Dataset behind a split's loader (training: crops/windows + augmentation)."""
        training = name == "train" if training is None else training
        split = self.split(name)
        if self.eval_window is not None and not training:
            key = (name, False)
            if key not in self._eval_windows:
                self._eval_windows[key] = PieceWindows(split, self.eval_window, self.codec)
            return self._eval_windows[key]
        if self.window_bars is None:
            return PieceDataset(
                split,
                window=self.train_window if training else None,
                transpose=self.transpose if training else None,
                codec=self.codec,
                training=training,
            )
        key = (name, training)
        if key not in self._windows:  # indexing windows reads every piece: do it once
            self._windows[key] = WindowDataset(
                split,
                bars=self.window_bars,
                hop_bars=self.window_hop_bars if training else self.window_bars,
                max_rest_fraction=self.max_rest_fraction,
                transpose=self.transpose if training else None,
                codec=self.codec,
                training=training,
            )
        return self._windows[key]

    def train_dataloader(self) -> DataLoader | list:
        return self._loader("train", training=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("valid", training=False)

    def test_dataloader(self) -> DataLoader | list:
        return self._loader("test", training=False)
