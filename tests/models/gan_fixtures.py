"""Real POP909 phrases and small GANs for the gan tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from cadenza.data.datasets import collate
from cadenza.io.midi import load_midi
from cadenza.models import GANModule
from cadenza.representations import MultiTrackPianoRollCodec
from tests.fixtures.data import data_root

POP909_TRACKS = ["name:MELODY", "name:BRIDGE", "name:PIANO"]


def pop909_codec(steps_per_beat: int = 4) -> MultiTrackPianoRollCodec:
    return MultiTrackPianoRollCodec(
        tracks=POP909_TRACKS, steps_per_beat=steps_per_beat, low_pitch=24, high_pitch=107
    )


def pop909_phrases(codec: MultiTrackPianoRollCodec, songs: int = 3, bars: int = 4) -> np.ndarray:
    """Every 4-bar window (hop 4) of the first `songs` POP909 files: float32 [M, T, K, P]."""
    root = data_root() / "pop909" / "midi"
    windows = []
    for i in range(1, songs + 1):
        roll = codec.encode(load_midi(root / f"{i:03d}.mid")).numpy()
        windows += codec.windows(roll, bars, hop_bars=bars)
    return np.stack(windows).astype(np.float32)


def small_gan(codec: MultiTrackPianoRollCodec, **kw) -> GANModule:
    args = dict(bars=4, latent_size=8, generator_hidden=16, critic_hidden=16)
    return GANModule(codec=codec.to_dict(), **{**args, **kw})


def loader(phrases: np.ndarray, batch_size: int = 8) -> DataLoader:
    items = [(torch.from_numpy(x), i) for i, x in enumerate(phrases)]
    return DataLoader(items, batch_size=batch_size, collate_fn=collate)


def fit(
    model: GANModule,
    phrases: np.ndarray,
    root: Path,
    steps: int,
    ckpt_path: str | None = None,
    **kw,
) -> pl.Trainer:
    trainer = pl.Trainer(
        max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=root, num_sanity_val_steps=0,
        limit_val_batches=0, **kw,
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=loader(phrases), ckpt_path=ckpt_path)
    return trainer
