"""Checkpoints that are never half-written: a killed run leaves the previous file intact."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from cadenza.atomic import write_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file in the same folder, fsync, then os.replace onto the target
    (`write_atomically`): a reader, or a resumed run, sees the old checkpoint or the new one,
    never a truncated file.

    `after_save`, when set (training.callbacks.LatestLink), runs once the file is in place and
    before ModelCheckpoint deletes the one it replaces."""

    after_save: Callable[[Path], None] | None = None

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        write_atomically(path, lambda tmp: torch.save(checkpoint, tmp), durable=True)
        if self.after_save is not None:
            self.after_save(Path(path))


def link_latest(target: Path, link: Path) -> Path:
    """Point `link` (e.g. checkpoints/bach_lstm/latest.ckpt) at `target`, atomically."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)
    return link
