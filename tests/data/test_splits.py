"""Hash splits: deterministic, proportional, canonical splits win, tiny folders still validate."""

from __future__ import annotations

import hashlib
import random

import pytest

from cadenza.data.splits import assign_splits, check_fractions, split_for
from cadenza.errors import ConfigError


def _hashes(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha1(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


def test_split_for_is_a_pure_function_with_the_asked_proportions() -> None:
    hashes = _hashes(20000)
    splits = [split_for(h, 0.1, 0.2) for h in hashes]
    assert splits == [split_for(h, 0.1, 0.2) for h in hashes]
    share = {s: splits.count(s) / len(splits) for s in ("train", "valid", "test")}
    assert share["valid"] == pytest.approx(0.1, abs=0.01)
    assert share["test"] == pytest.approx(0.2, abs=0.01)
    assert split_for("0" * 40, 0.1, 0.1) == "test" and split_for("f" * 40, 0.1, 0.1) == "train"
    assert {split_for(h, 0.0, 0.0) for h in hashes[:100]} == {"train"}


def test_growing_a_folder_never_moves_old_pieces() -> None:
    old = _hashes(500)
    new = old + _hashes(500, salt="new")
    before = assign_splits(old, [None] * 500, 0.1, 0.1)
    after = assign_splits(new, [None] * 1000, 0.1, 0.1)
    assert after[:500] == before


def test_canonical_split_wins() -> None:
    hashes = _hashes(6)
    canonical = ["train", "train", "valid", "test", "test", "train"]
    assert assign_splits(hashes, canonical, 0.5, 0.4) == canonical
    # An all-canonical source gets no tiny-folder moves, even with an empty valid split.
    only_train = ["train"] * 6
    assert assign_splits(hashes, only_train, 0.1, 0.1) == only_train


def test_tiny_folder_fills_valid_and_test_from_smallest_hashes() -> None:
    # These hashes all land in train by themselves.
    hashes = ["f" * 40, "e" * 40, "d" * 40, "c" * 40]
    assert {split_for(h, 0.1, 0.1) for h in hashes} == {"train"}
    got = dict(zip(hashes, assign_splits(hashes, [None] * 4, 0.1, 0.1)))
    assert got == {"c" * 40: "valid", "d" * 40: "test", "e" * 40: "train", "f" * 40: "train"}
    # Independent of listing order.
    for seed in range(5):
        shuffled = hashes[:]
        random.Random(seed).shuffle(shuffled)
        assert dict(zip(shuffled, assign_splits(shuffled, [None] * 4, 0.1, 0.1))) == got
    # Two pieces are too few to give any away; a split not asked for stays empty.
    assert assign_splits(hashes[:2], [None] * 2, 0.1, 0.1) == ["train", "train"]
    assert sorted(assign_splits(hashes, [None] * 4, 0.0, 0.1)) == [
        "test",
        "train",
        "train",
        "train",
    ]


def test_an_empty_split_takes_from_the_other_held_out_split() -> None:
    # Two pieces in test, one in train: valid takes test's smaller hash, not train's only one.
    hashes = ["0" * 40, "1" + "0" * 39, "f" * 40]
    assert [split_for(h, 0.25, 0.25) for h in hashes] == ["test", "test", "train"]
    assert assign_splits(hashes, [None] * 3, 0.25, 0.25) == ["valid", "test", "train"]


def test_train_is_never_empty() -> None:
    # Both hashes fall in test on their own; the larger one is moved back to train.
    hashes = ["0" * 40, "1" + "0" * 39]
    assert [split_for(h, 0.1, 0.1) for h in hashes] == ["test", "test"]
    assert assign_splits(hashes, [None, None], 0.1, 0.1) == ["test", "train"]


@pytest.mark.parametrize(
    ("valid", "test", "key"),
    [(-0.1, 0.1, "data.valid_fraction"), (0.1, 1.0, "data.test_fraction"), ("x", 0.1, "valid")],
)
def test_bad_fractions_name_the_key(valid: object, test: object, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        check_fractions(valid, test)  # type: ignore[arg-type]


def test_fractions_must_leave_training_data() -> None:
    with pytest.raises(ConfigError, match="< 1"):
        check_fractions(0.5, 0.5)
