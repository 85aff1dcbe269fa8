"""MusicDataModule: config validation, batch shapes and padding, crops, transposition."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from cadenza.data import MusicDataModule
from cadenza.data.augment import random_transpose
from cadenza.data.batch import Batch
from cadenza.data.sources import BoulangerSource, MidiFolderSource
from cadenza.errors import ConfigError
from cadenza.io.midi import TrackNotes, build_midi, save_midi
from cadenza.representations import EventCodec, MultiTrackPianoRollCodec, PianoRollCodec
from tests.fixtures.data import data_root
from tests.helpers import compose_train

ROLL = PianoRollCodec(steps_per_beat=4)


@pytest.fixture
def midi_folder(tmp_path: Path) -> Path:
    """12 pieces of 10..32 beats (40..128 frames at 4 steps/beat), pitches 48..83."""
    rng = np.random.default_rng(0)
    for i in range(12):
        n = 10 + 2 * i
        pitches = 48 + rng.integers(0, 36, n)
        notes = np.array([(0.5 * k, 0.5 * (k + 1), p, 90) for k, p in enumerate(pitches)], float)
        save_midi(build_midi([TrackNotes(0, False, "m", notes)]), tmp_path / "in" / f"{i}.mid")
    return tmp_path / "in"


def make_dm(folder: Path, tmp_path: Path, **kwargs: object) -> MusicDataModule:
    args = {"codec": ROLL, "cache_dir": str(tmp_path / "cache"), "prepare_workers": 0}
    dm = MusicDataModule(MidiFolderSource(str(folder)), **{**args, **kwargs})  # type: ignore[arg-type]
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_train_batches_are_padded_random_crops(midi_folder: Path, tmp_path: Path) -> None:
    dm = make_dm(midi_folder, tmp_path, batch_size=4, train_window=64)
    train = dm.split("train")
    assert len(train) >= 8
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, Batch)
    B, T, D = batch.x.shape
    assert B == 4 and D == ROLL.feature_dim == 88 and batch.x.dtype == torch.float32
    assert T == int(batch.lengths.max()) <= 64
    for b in range(B):
        n, i = int(batch.lengths[b]), int(batch.index[b])
        assert n == min(64, int(train.lengths[i]))
        assert not batch.x[b, n:].any()  # zero padding after the piece
        crop = batch.x[b, :n].numpy().astype(np.uint8)
        piece = train.piece(i)
        # The crop is a contiguous window of the stored piece.
        assert any(np.array_equal(piece[s : s + n], crop) for s in range(len(piece) - n + 1)), (
            f"item {i} is not a window of its piece"
        )
    assert batch.mask.sum() == batch.lengths.sum()


def test_eval_batches_are_whole_pieces(midi_folder: Path, tmp_path: Path) -> None:
    dm = make_dm(midi_folder, tmp_path, batch_size=2, eval_batch_size=8, train_window=16)
    for loader, split in ((dm.val_dataloader(), "valid"), (dm.test_dataloader(), "test")):
        data = dm.split(split)
        seen = []
        for batch in loader:
            for b, i in enumerate(batch.index.tolist()):
                n = int(batch.lengths[b])
                assert n == int(data.lengths[i])
                np.testing.assert_array_equal(batch.x[b, :n].numpy(), data.piece(i))
                seen.append(i)
        assert sorted(seen) == list(range(len(data))) and seen


def test_token_batches_pad_with_zero(midi_folder: Path, tmp_path: Path) -> None:
    codec = EventCodec()
    dm = make_dm(midi_folder, tmp_path, codec=codec, batch_size=3)
    batch = next(iter(dm.val_dataloader()))
    assert batch.x.dtype == torch.long and batch.x.ndim == 2
    for b, i in enumerate(batch.index.tolist()):
        n = int(batch.lengths[b])
        piece = dm.split("valid").piece(i)
        np.testing.assert_array_equal(batch.x[b, :n].numpy(), piece)
        assert batch.x[b, 0] == 1 and batch.x[b, n - 1] == 2 and not batch.x[b, n:].any()
    assert int(batch.x.max()) < codec.vocab_size


def test_transpose_shifts_pitch_and_stays_in_range(midi_folder: Path, tmp_path: Path) -> None:
    dm = make_dm(midi_folder, tmp_path, batch_size=12, transpose=[3, 3])
    train = dm.split("train")
    batch = next(iter(dm.train_dataloader()))
    for b, i in enumerate(batch.index.tolist()):
        n = int(batch.lengths[b])
        piece = train.piece(i)
        np.testing.assert_array_equal(batch.x[b, :n].numpy(), np.roll(piece, 3, axis=1))
        assert batch.x[b, :n].sum() == piece.sum()


def test_random_transpose_falls_back_when_nothing_fits() -> None:
    rng = np.random.default_rng(0)
    roll = np.zeros((4, 88), np.uint8)
    roll[:, 87] = 1  # the top key: any upward shift would lose it
    assert random_transpose(ROLL, roll, 1, 6, rng) is roll
    roll[:, 87], roll[:, 40] = 0, 1
    shifts = set()
    for _ in range(50):
        out = random_transpose(ROLL, roll, -5, 6, rng)
        assert out.shape == roll.shape and out.sum() == roll.sum()
        shifts.add(int(np.flatnonzero(out[0])[0]) - 40)
    assert shifts == set(range(-5, 7))


def test_codec_is_ready_before_any_preparation(midi_folder: Path, tmp_path: Path) -> None:
    dm = MusicDataModule(MidiFolderSource(str(midi_folder)), ROLL, cache_dir=str(tmp_path / "c"))
    assert dm.codec.feature_dim == 88
    assert not (tmp_path / "c").exists()


def test_empty_split_gives_no_batches_and_a_warning(
    midi_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dm = make_dm(midi_folder, tmp_path, valid_fraction=0.0, test_fraction=0.2)
    with caplog.at_level(logging.WARNING, logger="cadenza"):
        assert dm.val_dataloader() == []
    assert "'valid'" in caplog.text and "empty" in caplog.text
    assert len(dm.test_dataloader()) >= 1


def test_worker_processes_serve_the_same_batches(midi_folder: Path, tmp_path: Path) -> None:
    dm = make_dm(midi_folder, tmp_path, num_workers=1, eval_batch_size=4)
    loader = dm.val_dataloader()
    assert loader.persistent_workers
    lengths = sorted(int(n) for batch in loader for n in batch.lengths)
    assert lengths == sorted(dm.split("valid").lengths.tolist())


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("batch_size", "abc"),
        ("batch_size", 0),
        ("eval_batch_size", -1),
        ("train_window", 2.5),
        ("transpose", [6, -5]),
        ("transpose", "up"),
        ("num_workers", -1),
        ("prepare_workers", True),
        ("valid_fraction", 1.5),
    ],
)
def test_bad_arguments_name_their_key(tmp_path: Path, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"data.{key}") as err:
        MusicDataModule(MidiFolderSource(str(tmp_path)), ROLL, **{key: value})  # type: ignore[arg-type]
    assert repr(value) in str(err.value) or str(value) in str(err.value)


@pytest.mark.parametrize(
    ("codec", "says"),
    [("mel", "audio features are not laid out in semitones"),
     ("bpe", "a learned vocabulary's tokens hold several pitches at once")],
)  # fmt: skip
def test_transpose_on_a_codec_that_cannot_says_why(tmp_path: Path, codec: str, says: str) -> None:
    from cadenza.representations import MelCodec, MidiTokCodec

    made = MelCodec() if codec == "mel" else MidiTokCodec(vocab_size=600)
    with pytest.raises(ConfigError, match="set data.transpose=null") as err:
        MusicDataModule(MidiFolderSource(str(tmp_path)), made, transpose=[-5, 6])
    assert says in str(err.value)


def test_jsb_datamodule_serves_the_benchmark(tmp_path: Path) -> None:
    source = BoulangerSource("jsb", root=str(data_root()))
    codec = PianoRollCodec(steps_per_beat=source.steps_per_beat)
    dm = MusicDataModule(source, codec, cache_dir=str(tmp_path / "cache"), batch_size=8)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.prepared.sizes()["train"] == (229, 13807)
    total = sum(int(b.lengths.sum()) for b in dm.val_dataloader())
    assert total == 4602
    batch = next(iter(dm.train_dataloader()))
    assert batch.x.shape[0] == 8 and batch.x.shape[2] == 88
    # Every frame of a chorale has 0..4 voices sounding.
    assert int(batch.x.sum(-1).max()) <= 4


def write_band(path: Path, seed: int) -> None:
    """A distinct 3-track piece per seed: 8 + seed bars of a 4-note chord per half note, a
    quarter-note line on top and a whole-note bass."""
    rng = np.random.default_rng(seed)
    bars = 8 + seed
    chords, line, bass = [], [], []
    for b in range(bars):
        root = 48 + int(rng.integers(0, 12))
        bass.append((2.0 * b, 2.0 * (b + 1), root - 12, 80))  # a bar is 2 s at 120 bpm
        for h in range(2):
            t = 2.0 * b + h
            chords += [(t, t + 1.0, root + d, 70) for d in (0, 4, 7, 10)]
        line += [(2.0 * b + 0.5 * q, 2.0 * b + 0.5 * (q + 1), 72 + int(rng.integers(0, 8)), 90)
                 for q in range(4)]  # fmt: skip
    parts = [("lead", line), ("chords", chords), ("bass", bass)]
    tracks = [TrackNotes(0, False, name, np.array(rows, float)) for name, rows in parts]
    save_midi(build_midi(tracks), path)


def test_multitrack_pianoroll_windows_come_as_float_rolls(tmp_path: Path) -> None:
    for i in range(8):
        write_band(tmp_path / "band" / f"{i}.mid", seed=i)
    codec = MultiTrackPianoRollCodec(["name:lead", "name:chords", "name:bass"], steps_per_beat=4)
    L = 4 * codec.steps_per_bar  # 64 steps
    dm = make_dm(
        tmp_path / "band", tmp_path, codec=codec, window_bars=4, batch_size=4, transpose=[-5, 6]
    )
    train = dm.split("train")
    assert train.data.dtype == np.uint8 and train.data.shape[1:] == (3, 84)
    batch = next(iter(dm.train_dataloader()))
    assert batch.x.dtype == torch.float32 and batch.x.shape == (4, L, 3, 84)
    assert batch.lengths.tolist() == [L] * 4
    assert set(batch.x.unique().tolist()) == {0.0, 1.0}
    # Every window has its 4 chord notes and one bass note sounding at every step.
    assert (batch.x[:, :, 1].sum(-1) == 4).all() and (batch.x[:, :, 2].sum(-1) == 1).all()
    # Validation: non-overlapping 4-bar windows, untouched; a partial window at the end is left
    # out.
    valid, windows = dm.split("valid"), dm.dataset("valid")
    assert len(windows) == sum(len(valid.piece(i)) // L for i in range(len(valid))) > 0
    for x, i in windows:
        piece, start = (int(v) for v in windows.index[i])
        assert x.dtype == torch.float32 and x.shape == (L, 3, 84) and start % L == 0
        np.testing.assert_array_equal(x.numpy(), valid.piece(piece)[start : start + L])


def test_window_bars_needs_a_windowing_codec(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="multitrack_pianoroll"):
        MusicDataModule(MidiFolderSource(str(tmp_path)), ROLL, window_bars=4)


@pytest.mark.parametrize(
    ("data", "overrides", "source_type", "row"),
    [
        ("jsb_satb", ["representation.tracks=[index:0,index:1,index:2,index:3]",
                      "representation.steps_per_beat=4", "representation.low_pitch=36",
                      "representation.high_pitch=83", "representation.programs=[52,52,52,52]"],
         "CoconetSource", (4, 48)),
        ("pop909_multitrack", [], "Pop909Source", (3, 84)),
    ],
    ids=["jsb_satb", "pop909_multitrack"],
)  # fmt: skip
def test_multitrack_data_configs_build(
    tmp_path: Path, data: str, overrides: list[str], source_type: str, row: tuple
) -> None:
    cfg = compose_train(
        tmp_path,
        [f"data={data}", "representation=multitrack_pianoroll", f"paths.data_dir={data_root()}"]
        + overrides,
    )
    dm = instantiate(cfg.data)  # builds the source and codec only; nothing is prepared
    assert type(dm.source).__name__ == source_type and dm.codec.row_shape == row
    assert (dm.window_bars, dm.window_hop_bars, dm.max_rest_fraction) == (4, 1, 0.5)
    assert dm.transpose == (-5, 6) and dm.batch_size == 32
    assert dm.source.items()  # the data is where the config says
