"""Torch Dataset over one memory-mapped split, and the collate that makes a Batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from cadenza.data.augment import random_transpose
from cadenza.data.batch import Batch, Condition
from cadenza.data.prepare import SplitData
from cadenza.representations.base import Codec


def item_rng() -> np.random.Generator:
    """A numpy generator for one item's augmentation, seeded from torch's RNG: distinct per
    DataLoader worker and reproducible under Lightning's seed_everything(workers=True), unlike
    a numpy generator made once."""
    return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))


class PieceDataset(Dataset):
    """Item i -> (x, i): x is frames or features [T, D] float32, or tokens [L] long.

    Training with a `window` gives a random crop of `window` steps (shorter pieces whole) and an
    optional random transpose in [low, high]; eval gives whole pieces, untouched.
    """

    def __init__(
        self,
        split: SplitData,
        *,
        window: int | None,
        transpose: tuple[int, int] | None,
        codec: Codec,
        training: bool,
    ) -> None:
        self.split = split
        self.window = window
        self.transpose = tuple(transpose) if transpose is not None else None
        self.codec = codec
        self.training = training

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.split.piece(i)
        if self.training:
            rng = item_rng()
            if self.window is not None and len(x) > self.window:
                start = int(rng.integers(0, len(x) - self.window + 1))
                x = x[start : start + self.window]
            if self.transpose is not None:
                x = random_transpose(self.codec, np.asarray(x), *self.transpose, rng)
        # Copy out of the read-only memmap; torch wants writable memory.
        return torch.as_tensor(np.array(x), dtype=self.codec.tensor_dtype), i


class WindowDataset(Dataset):
    """Fixed-length, bar-aligned windows of every piece (a VAE's training examples).

    Built from the codec's `window_starts` / `cut_window` (MelodyCodec, MultiTrackMelodyCodec,
    MultiTrackPianoRollCodec): item i -> (window, i), tokens [L] or [L, K] long or frames
    [L, K, P] float32. Only (piece, start) pairs are kept, so a corpus with 10^5 windows costs a
    few MB. Training adds the random transpose of `PieceDataset`.
    """

    def __init__(
        self,
        split: SplitData,
        *,
        bars: int,
        hop_bars: int,
        max_rest_fraction: float,
        transpose: tuple[int, int] | None,
        codec: Codec,
        training: bool,
    ) -> None:
        self.split = split
        self.bars = bars
        self.codec = codec
        self.transpose = tuple(transpose) if transpose is not None else None
        self.training = training
        self.index = np.array(
            [
                (i, start)
                for i in range(len(split))
                for start in codec.window_starts(split.piece(i), bars, hop_bars, max_rest_fraction)
            ],
            dtype=np.int64,
        ).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        piece, start = (int(v) for v in self.index[i])
        x = self.codec.cut_window(self.split.piece(piece), start, self.bars)
        if self.training and self.transpose is not None:
            rng = item_rng()
            x = random_transpose(self.codec, x, *self.transpose, rng)
        # A new array either way (astype copies), so the read-only memmap is never handed out.
        return torch.as_tensor(np.array(x), dtype=self.codec.tensor_dtype), i


class PieceWindows(Dataset):
    """Every piece of a split cut into consecutive windows of `window` steps (the last one
    shorter): item j -> (window, j), `pieces[j]` the piece it came from. How a model trained
    on crops of that length is evaluated on whole pieces without reading anything longer than
    it trained on (data.eval_window; the classifier averages a piece's windows)."""

    def __init__(self, split: SplitData, window: int, codec: Codec) -> None:
        self.split, self.window, self.codec, self.training = split, window, codec, False
        self.index = np.array(
            [(i, start) for i in range(len(split))
             for start in range(0, max(len(split.piece(i)), 1), window)],
            dtype=np.int64,
        ).reshape(-1, 2)  # fmt: skip
        self.pieces = self.index[:, 0]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, int]:
        piece, start = (int(v) for v in self.index[j])
        x = self.split.piece(piece)[start : start + self.window]
        return torch.as_tensor(np.array(x), dtype=self.codec.tensor_dtype), j


class PieceIdCollate:
    """Another collate, plus the piece each item belongs to as `batch.extras["piece"]` [B]
    (the items of a PieceWindows dataset are windows of pieces)."""

    def __init__(self, inner: Callable[[Sequence[tuple[torch.Tensor, int]]], Batch],
                 item_pieces: np.ndarray) -> None:  # fmt: skip
        self.inner, self.item_pieces = inner, np.asarray(item_pieces, dtype=np.int64)

    def __call__(self, items: Sequence[tuple[torch.Tensor, int]]) -> Batch:
        batch = self.inner(items)
        batch.extras["piece"] = torch.from_numpy(self.item_pieces[batch.index.numpy()])
        return batch


def collate(items: Sequence[tuple[torch.Tensor, int]]) -> Batch:
    """Pad to the longest item with 0: frames or features -> x [B, T, D] float32 (multi-track
    rolls [B, T, K, P]), tokens -> x [B, T] long (multi-track tokens [B, T, K])."""
    if not items:
        raise ValueError("collate needs at least one item")
    lengths = torch.tensor([len(x) for x, _ in items], dtype=torch.long)
    index = torch.tensor([i for _, i in items], dtype=torch.long)
    T = int(lengths.max())
    first = items[0][0]
    x = torch.zeros(len(items), T, *first.shape[1:], dtype=first.dtype)
    for b, (piece, _) in enumerate(items):
        x[b, : len(piece)] = piece
    return Batch(x=x, lengths=lengths, index=index)


class StyleCollate:
    """`collate`, plus each item's style as `Condition(style=[B] long)` (a StyledSource's
    corpus). `item_styles` [len(dataset)]: the style index of every item of the dataset."""

    def __init__(self, item_styles: np.ndarray) -> None:
        self.item_styles = np.asarray(item_styles, dtype=np.int64)

    def __call__(self, items: Sequence[tuple[torch.Tensor, int]]) -> Batch:
        batch = collate(items)
        batch.condition = Condition(style=torch.from_numpy(self.item_styles[batch.index.numpy()]))
        return batch


def piece_features(codec: Codec, x: torch.Tensor) -> np.ndarray:
    """The symbolic features (recommend/symbolic_features.py) of the music an encoded item
    holds, decoded by its codec, so a training crop is described by what it contains; an item
    with no notes (a silent crop) gets zeros."""
    from cadenza.errors import BadFileError
    from cadenza.recommend.symbolic_features import SYMBOLIC_NAMES, symbolic_summary

    try:
        return symbolic_summary(codec.decode(x))
    except BadFileError:
        return np.zeros(len(SYMBOLIC_NAMES), dtype=np.float32)


class FeatureCollate:
    """Another collate, plus every item's `piece_features` as Condition.features [B, F]
    (data.symbolic_features=true: what the classifier family reads beside the sequence).

    `cache`: an evaluation split's items are the same whole pieces every epoch, so their
    features are computed once (for a long piano piece, the decode and features cost more than
    the model's pass); training crops differ every time and are never cached."""

    def __init__(self, inner: Callable[[Sequence[tuple[torch.Tensor, int]]], Batch], codec: Codec,
                 cache: bool = False) -> None:  # fmt: skip
        self.inner, self.codec = inner, codec
        self.cache: dict[int, np.ndarray] | None = {} if cache else None

    def _features(self, x: torch.Tensor, i: int) -> np.ndarray:
        if self.cache is None:
            return piece_features(self.codec, x)
        if i not in self.cache:
            self.cache[i] = piece_features(self.codec, x)
        return self.cache[i]

    def __call__(self, items: Sequence[tuple[torch.Tensor, int]]) -> Batch:
        batch = self.inner(items)
        features = np.stack([self._features(x, i) for x, i in items])
        batch.condition = batch.condition or Condition()
        batch.condition.features = torch.from_numpy(features)
        return batch
