"""The Codec contract: one object owns both directions between music and tensors.

Like Magenta's data converters and MidiTok's tokenizers, a codec knows its own sizes, so the model
is sized from it and no dimension is written twice in YAML. `to_dict()` is stored in every
checkpoint; `Codec.from_dict()` rebuilds the exact codec for sampling with no config at hand.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from cadenza.errors import ConfigError

_REGISTRY: dict[str, type[Codec]] = {}


def check_pitch_range(low_pitch: int, high_pitch: int) -> tuple[int, int]:
    """Validated (low, high), inclusive MIDI pitches; every codec with a range shares this."""
    low = _whole("representation.low_pitch", low_pitch)
    high = _whole("representation.high_pitch", high_pitch)
    if not 0 <= low <= 127 or not 0 <= high <= 127:
        raise ConfigError(f"representation pitch range {low}..{high} must lie within 0..127")
    if low > high:
        raise ConfigError(f"representation pitch range {low}..{high}: low_pitch must be <= "
                          "high_pitch")  # fmt: skip
    return low, high


def check_steps_per_beat(steps_per_beat: int) -> int:
    steps = _whole("representation.steps_per_beat", steps_per_beat)
    if steps < 1:
        raise ConfigError(f"representation.steps_per_beat must be >= 1, got {steps}")
    return steps


def _whole(name: str, value: object) -> int:
    """A config integer (a whole float such as 4.0 too), else the error naming its key."""
    whole = isinstance(value, numbers.Real) and math.isfinite(value) and value == int(value)
    if isinstance(value, bool) or not whole:
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    return int(value)


class Codec(ABC):
    """Music <-> tensor.

    kind == "tokens": encode -> LongTensor [L] of ids in [0, vocab_size).
    kind == "frames": encode -> FloatTensor [T, feature_dim] of 0/1 (piano-roll style frames).
    kind == "features": encode -> FloatTensor [T, feature_dim] of real values (audio features);
    decode gives audio (a Waveform), not MIDI.
    """

    name: ClassVar[str]
    kind: ClassVar[str]  # "tokens" | "frames" | "features"
    # What `decode` gives, and so what generated pieces are written as: "midi" | "audio".
    output: ClassVar[str] = "midi"
    # The value of a silent step, which pads a piece shorter than a window.
    rest_value: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _REGISTRY[cls.name] = cls

    # --- sizes -----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        raise AttributeError(f"{type(self).__name__} is a frame codec: use feature_dim")

    @property
    def feature_dim(self) -> int:
        raise AttributeError(f"{type(self).__name__} is a token codec: use vocab_size")

    @property
    def token_events(self) -> tuple[int, ...] | None:
        """For a token codec whose steps are events (hold, rest, note-on of some pitch): the
        event class of every id, ids of one class sharing a number. A decoder that picks the
        event first and the pitch second reads this (a note-on's mass is split over every
        pitch, so a plain argmax over ids favours HOLD). None: ids are not grouped."""
        return None

    # --- both directions -------------------------------------------------------------------
    @abstractmethod
    def encode(self, midi: Any) -> torch.Tensor:
        """PrettyMIDI -> tensor. Raises BadMidiError(reason="no_notes") if nothing is left."""

    @abstractmethod
    def decode(self, x: torch.Tensor) -> Any:
        """Tensor (as `encode` returns, or generated) -> PrettyMIDI."""

    # --- musical lengths -------------------------------------------------------------------
    @abstractmethod
    def steps_for_bars(self, bars: float) -> int:
        """How many model steps (frames or tokens, an estimate for tokens) make `bars` 4/4 bars."""

    # --- augmentation on encoded data (cheap, no re-parse) ---------------------------------
    @abstractmethod
    def transpose(self, x: np.ndarray, semitones: int) -> np.ndarray | None:
        """Shift encoded music by `semitones`; None if a note would leave the codec's range."""

    # --- persistence -----------------------------------------------------------------------
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Constructor arguments: JSON-safe primitives only (checkpoints load weights_only)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Codec:
        d = dict(d)
        name = d.pop("name", None)
        if name not in _REGISTRY:
            raise ConfigError(f"unknown codec {name!r}; known codecs: {sorted(_REGISTRY)}")
        params = inspect.signature(_REGISTRY[name]).parameters
        takes = [k for k, p in params.items() if p.kind is not p.VAR_KEYWORD]
        open_ended = len(takes) < len(params)  # a **settings codec checks its own
        unknown = [] if open_ended else [k for k in d if k not in takes]
        if unknown:  # a TypeError about __init__ would not say which codec, or what it takes
            near = difflib.get_close_matches(str(unknown[0]), takes, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise ConfigError(f"{unknown[0]!r} is not a setting of the {name} codec: {hint}its "
                              f"settings are {', '.join(takes)}")  # fmt: skip
        return _REGISTRY[name](**d)

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one step of `encode`'s output: () for tokens [L], (D,) for frames [T, D].
        A multi-track token codec returns (K,): tokens [T, K], one id per track and step."""
        return () if self.kind == "tokens" else (self.feature_dim,)

    # Storage dtype of the cached arrays (frames are 0/1, tokens fit int16).
    @property
    def storage_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.kind == "frames" else np.int16)

    @property
    def tensor_dtype(self) -> torch.dtype:
        """What a model reads: token ids as long, frames and features as float32."""
        return torch.long if self.kind == "tokens" else torch.float32

    def check_storage(self) -> None:
        """Raise unless every value of this codec fits its storage dtype."""
        dtype = self.storage_dtype
        if self.kind == "tokens" and self.vocab_size > np.iinfo(dtype).max + 1:
            raise ConfigError(
                f"{self!r} has {self.vocab_size} tokens, more than its storage dtype {dtype} holds"
            )

    @property
    def learns_vocabulary(self) -> bool:
        """True for a codec that must learn its vocabulary from the training split before it
        encodes (MidiTok's BPE / Unigram): `prepare` then calls `fit(base pieces)` for the
        fitted codec and `learned_ids(piece)` on every piece, and stores the fitted codec."""
        return False

    @property
    def transposes(self) -> bool:
        """Whether `transpose` can shift this codec's music by semitones (data augmentation)."""
        return True

    # Why `transposes` is False, for the error that asks for data.transpose=null.
    no_transpose_reason = "its steps are not laid out in semitones"

    @property
    def cuts_windows(self) -> bool:
        """Whether the codec cuts bar-aligned windows (`window_starts` / `cut_window`)."""
        return callable(getattr(self, "window_starts", None))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
