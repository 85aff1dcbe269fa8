"""Deterministic train/valid/test split from a hash of each piece.

The hash is of the piece's file (`Source.file_of`: its bytes), or of its encoded content where it
has no file of its own. Never of the encoding where there is a file: two codecs then split a
dataset the same way, so models that read it differently are tested on the same pieces. Never
of file names or listing order either: the same piece lands in the same split on every machine,
after a folder is reorganised, and when new files are added (old pieces never move between
splits, which keeps test sets honest).
"""

from __future__ import annotations

from collections.abc import Sequence

from cadenza.errors import ConfigError

SPLITS = ("train", "valid", "test")

# 15 hex digits = 60 bits: the fraction it maps to is exact in a float64.
_HEX_DIGITS = 15


def check_fractions(valid_fraction: float, test_fraction: float) -> None:
    for key, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise ConfigError(f"data.{key} must be a number in [0, 1), got {value!r}")
    if valid_fraction + test_fraction >= 1:
        raise ConfigError(
            f"data.valid_fraction + data.test_fraction must be < 1 to leave pieces for training, "
            f"got {valid_fraction} + {test_fraction}"
        )


def hash_position(hash_hex: str) -> float:
    """The hash as a number in [0, 1)."""
    return int(hash_hex[:_HEX_DIGITS], 16) / 16**_HEX_DIGITS


def split_for(hash_hex: str, valid_fraction: float, test_fraction: float) -> str:
    """'train' | 'valid' | 'test' for one piece, from its sha1 hex digest (file or content)."""
    u = hash_position(hash_hex)
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


def assign_splits(
    hashes: Sequence[str],
    canonical: Sequence[str | None],
    valid_fraction: float,
    test_fraction: float,
) -> list[str]:
    """Split for every piece. A dataset's own (canonical) split always wins.

    Pieces without a canonical split are split by hash. A tiny folder can leave valid or test
    empty by chance, which silently disables validation; so when at least 3 pieces are hash-split
    and a split that was asked for (fraction > 0) is empty, the train piece with the smallest
    hash moves there (or, with one train piece left, the other held-out split's, where it has
    two). Train is never left empty while pieces exist: the largest hash goes back.
    All of this depends on hashes only, so it is as deterministic as the split itself.
    """
    out = [
        c if c is not None else split_for(h, valid_fraction, test_fraction)
        for h, c in zip(hashes, canonical)
    ]
    free = [i for i, c in enumerate(canonical) if c is None]
    if not free:
        return out

    def members(split: str) -> list[int]:
        return sorted((i for i in free if out[i] == split), key=lambda i: hashes[i])

    if not members("train"):
        out[max(free, key=lambda i: hashes[i])] = "train"
    if len(free) >= 3:
        for split, other, fraction in (("valid", "test", valid_fraction),
                                       ("test", "valid", test_fraction)):  # fmt: skip
            donor = next((m for m in (members("train"), members(other)) if len(m) >= 2), None)
            if fraction > 0 and not members(split) and donor:
                out[donor[0]] = split
    return out
