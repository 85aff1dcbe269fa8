"""StyledSource: several real corpora as one, each piece knowing its style, and the batches a
style-conditional model trains on carrying those styles."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cadenza.data import MusicDataModule
from cadenza.data.sources import BoulangerSource, MidiFolderSource, StyledSource
from cadenza.errors import CadenzaError
from cadenza.representations import PianoRollCodec
from tests.fixtures.data import data_root


def _styles(per_style: int | None = 12, seed: int = 0) -> StyledSource:
    root = data_root()
    return StyledSource(
        {
            "jsb": BoulangerSource("jsb"),
            "nottingham": MidiFolderSource(root / "nottingham" / "MIDI" / "melody", limit=40),
        },
        per_style=per_style,
        seed=seed,
    )


def test_keys_name_their_style_and_the_draw_is_fixed_by_the_seed() -> None:
    source = _styles()
    items = source.items()
    assert [it.key.split("/")[0] for it in items] == ["jsb"] * 12 + ["nottingham"] * 12
    assert [source.style_of(it.key) for it in items] == [0] * 12 + [1] * 12
    assert [it.key for it in _styles().items()] == [it.key for it in items]
    assert [it.key for it in _styles(seed=1).items()] != [it.key for it in items]
    # JSB keeps its published split; the loaded piece is the inner source's.
    jsb = items[0]
    assert jsb.split in ("train", "valid", "test")
    roll = PianoRollCodec(steps_per_beat=2).encode(source.load(jsb))
    assert roll.shape[0] > 8 and roll.sum() > 0
    with pytest.raises(KeyError, match="not a key"):
        source.style_of("pop909/001.mid")


def test_style_names_must_be_plain_words() -> None:
    with pytest.raises(CadenzaError, match="plain words"):
        StyledSource({"a/b": BoulangerSource("jsb")})
    with pytest.raises(CadenzaError, match="cadenza Sources"):
        StyledSource({"jsb": "not a source"})  # type: ignore[dict-item]


def test_a_style_set_to_none_is_left_out() -> None:
    """How an experiment drops styles from a config's list (`pop909: null`)."""
    source = StyledSource({"jsb": BoulangerSource("jsb"), "pop909": None}, per_style=3)
    assert source.style_names == ["jsb"] and len(source.items()) == 3
    with pytest.raises(CadenzaError, match="must map style names"):
        StyledSource({"pop909": None})


def test_batches_carry_each_piece_style(tmp_path: Path) -> None:
    source = _styles(per_style=30)
    dm = MusicDataModule(source, PianoRollCodec(steps_per_beat=2), cache_dir=str(tmp_path),
                         batch_size=8, train_window=32, prepare_workers=0)  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    assert dm.style_names == ["jsb", "nottingham"]
    for name, loader in (("train", dm.train_dataloader()), ("valid", dm.val_dataloader())):
        keys = dm.split(name).keys
        seen = set()
        for batch in loader:
            want = [source.style_of(keys[int(i)]) for i in batch.index]
            assert batch.condition.style.tolist() == want
            assert batch.condition.style.dtype == torch.long
            seen |= set(want)
        assert seen == {0, 1}, name
