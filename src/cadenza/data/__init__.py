"""Data: sources of pieces, prepare-once caching, datasets and the DataModule."""

from __future__ import annotations

from cadenza.data import sources
from cadenza.data.datamodule import MusicDataModule
from cadenza.data.prepare import PreparedData, SplitData, prepare
from cadenza.data.sources import (
    BoulangerSource,
    MidiFolderSource,
    Music21Source,
    Pop909Source,
    Source,
)

__all__ = [
    "BoulangerSource",
    "MidiFolderSource",
    "Music21Source",
    "MusicDataModule",
    "Pop909Source",
    "PreparedData",
    "Source",
    "SplitData",
    "prepare",
    "sources",
]
