"""Callbacks of our own. Lightning's ModelCheckpoint etc. are configured in configs/callbacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class SeenDataRecorder(pl.Callback):
    """Writes which training items each rank saw (`seen_rank<R>.json`).

    Used by the DDP test to prove that the ranks trained on different data; cheap enough to
    leave on when debugging a sampler.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.seen: list[int] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if getattr(batch, "index", None) is not None:
            self.seen.extend(int(i) for i in batch.index.tolist())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        rank = trainer.global_rank
        loader = trainer.train_dataloader
        size = len(loader.dataset) if loader is not None and hasattr(loader, "dataset") else None
        out = {
            "rank": rank,
            "world_size": trainer.world_size,
            "dataset_size": size,
            "seen": self.seen,
        }
        (self.out_dir / f"seen_rank{rank}.json").write_text(json.dumps(out))
