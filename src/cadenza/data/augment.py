"""Augmentation on encoded pieces: cheap, no re-parse, done per item in the Dataset."""

from __future__ import annotations

import numpy as np

from cadenza.representations.base import Codec

_TRIES = 4


def random_transpose(
    codec: Codec, x: np.ndarray, low: int, high: int, rng: np.random.Generator
) -> np.ndarray:
    """Shift `x` ([T, D] frames or [L] tokens) by a random k in [low, high] that stays in range.

    A few draws are tried because a piece near the edge of the codec's range only fits some
    shifts; if none fits, the piece is returned unshifted rather than dropped.
    """
    if low > high:
        raise ValueError(f"transpose range [{low}, {high}] is empty")
    for _ in range(_TRIES):
        k = int(rng.integers(low, high + 1))
        if k == 0:
            return x
        shifted = codec.transpose(x, k)
        if shifted is not None:
            return shifted
    return x
