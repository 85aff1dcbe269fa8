"""MidiTokCodec: MidiTok's single-sequence tokenizations (REMI, TSD, MIDI-Like, Structured) as a
Cadenza token codec, with an optional learned vocabulary (BPE or Unigram).

    representation=miditok representation.tokenizer=TSD representation.vocab_size=2000

Ids [L]: BOS, MidiTok's ids, EOS (PAD 0, BOS 1, EOS 2: MidiTok's special tokens, which keep their
ids in a learned vocabulary). Without `use_programs` every pitched track is merged onto one piano
track first (drums dropped), as `representation=pianoroll tracks=merge` does; with it, MidiTok's
Program tokens keep instruments apart in one sequence.

A learned vocabulary is fitted when the data is prepared, on the training split only
(`cadenza.data.prepare`): pieces are first encoded with the base vocabulary and placed in their
splits as for any codec (by their files), then the vocabulary is learned from the training
pieces and every piece is re-written in it. The learned vocabulary lives in the codec's dict, so a
checkpoint rebuilds the tokenizer with no file at hand. Learned tokens span no bar line (REMI and
TSD sequences are cut at their Bar tokens first, as MidiTok does).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import torch

from cadenza.errors import BadMidiError, ConfigError
from cadenza.io import tokenizers as tk
from cadenza.io.midi import from_symusic, to_symusic
from cadenza.representations.base import Codec

PAD, BOS, EOS = 0, 1, 2


class MidiTokCodec(Codec):
    name = "miditok"
    kind = "tokens"

    def __init__(
        self,
        tokenizer: str = "REMI",
        vocab_size: int | None = None,
        vocab_model: str = "BPE",
        tokens_per_bar: float = 64.0,
        vocabulary: dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self.tokenizer = str(tokenizer)
        self.settings = tk.check_settings(self.tokenizer, settings)
        if vocab_model not in tk.MODELS:
            raise ConfigError(
                f"representation.vocab_model must be one of {list(tk.MODELS)}, got {vocab_model!r}"
            )
        self.vocab_model = vocab_model
        base = tk.tokenizer_for(self.tokenizer, self.settings).vocab_size
        if vocab_size is not None and (
            isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= base
        ):
            raise ConfigError(
                f"representation.vocab_size (the learned vocabulary) must be null or an integer "
                f"above the {self.tokenizer} base vocabulary of {base} ids, got {vocab_size!r}"
            )
        self.target_vocab_size = vocab_size
        if not tokens_per_bar > 0:
            raise ConfigError(f"representation.tokens_per_bar must be > 0, got {tokens_per_bar}")
        self.tokens_per_bar = float(tokens_per_bar)
        self.vocabulary = vocabulary

    @cached_property
    def miditok(self) -> Any:
        """The MidiTok tokenizer this codec speaks through (built once, from the dict)."""
        return tk.tokenizer_for(self.tokenizer, self.settings, self.vocabulary)

    # --- sizes ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """The learned vocabulary's size once fitted; before, the size it is fitted to (a model
        is sized after fitting: MusicDataModule.model_sizing)."""
        if self.vocabulary is None and self.target_vocab_size is not None:
            return self.target_vocab_size
        return int(self.miditok.vocab_size)

    pad_id, bos_id, eos_id = PAD, BOS, EOS

    @cached_property
    def _ours(self) -> tuple[np.ndarray, np.ndarray]:
        """(MidiTok id -> our id, our id -> MidiTok id): PAD, BOS, EOS and MASK are always
        0-3 here. BPE keeps them there; Unigram puts them anywhere, so ids are swapped."""
        size = int(self.miditok.vocab_size)
        ours, theirs = np.arange(size), np.arange(size)
        for k, m in enumerate(tk.special_ids(self.miditok)):
            j = theirs[k]  # the MidiTok id that maps to our id k now
            ours[m], ours[j] = k, ours[m]
            theirs[k], theirs[ours[j]] = m, j
        return ours, theirs

    # --- a learned vocabulary ------------------------------------------------------------------
    @property
    def learns_vocabulary(self) -> bool:
        """True until a configured vocabulary has been fitted (see `fit`)."""
        return self.target_vocab_size is not None and self.vocabulary is None

    def fit(self, base_pieces: Iterable[np.ndarray]) -> MidiTokCodec:
        """A new codec whose vocabulary (`vocab_size` ids, `vocab_model`) is learned from these
        pieces as this codec encoded them (the training split's: prepare's job)."""
        tok = tk.tokenizer_for(self.tokenizer, self.settings)
        contents = (self._content(p) for p in base_pieces)
        tk.train(tok, contents, int(self.target_vocab_size or 0), self.vocab_model)
        return MidiTokCodec(**{**self.params(), "vocabulary": tk.learned_vocabulary(tok)})

    def learned_ids(self, base_piece: np.ndarray) -> np.ndarray:
        """A piece encoded before fitting -> the same piece in this (fitted) codec's ids."""
        learned = tk.base_to_learned(self.miditok, self._content(base_piece))
        return np.array([BOS, *self._ours[0][np.asarray(learned, dtype=np.int64)], EOS])

    def _content(self, ids: Sequence[int] | np.ndarray) -> list[int]:
        """Ids without BOS / PAD / MASK, up to the first EOS."""
        out = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if i == EOS:
                break
            if i > 3:
                out.append(int(i))
        return out

    # --- both directions -----------------------------------------------------------------------
    def encode(self, midi: Any) -> torch.Tensor:
        """Score / PrettyMIDI -> LongTensor [L]: BOS, ids, EOS."""
        score = to_symusic(midi, merge=not self.settings["use_programs"])
        if not any(len(t.notes) for t in score.tracks):
            raise BadMidiError("<miditok>", "no_notes", "no pitched note to tokenize")
        ids = tk.encode(self.miditok, score)
        if not ids:
            raise BadMidiError(
                "<miditok>", "no_notes", f"no note within {self.settings['pitch_range']}"
            )
        if self.vocabulary is not None:
            return torch.from_numpy(self.learned_ids(np.asarray(ids)))
        return torch.tensor([BOS, *ids, EOS], dtype=torch.long)

    def decode(self, x: torch.Tensor | np.ndarray) -> Any:
        """Ids [L] (encoded or generated) -> PrettyMIDI; stops at EOS, skips special ids."""
        ids = self._content(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
        theirs = self._ours[1][np.asarray(ids, dtype=np.int64)].tolist() if ids else []
        return from_symusic(tk.decode(self.miditok, theirs))

    # --- lengths, augmentation, persistence ----------------------------------------------------
    def steps_for_bars(self, bars: float) -> int:
        return max(1, round(bars * self.tokens_per_bar))

    @property
    def transposes(self) -> bool:
        # Learned tokens hold several pitches at once: there is no id to shift.
        return self.vocabulary is None and self.target_vocab_size is None

    no_transpose_reason = "a learned vocabulary's tokens hold several pitches at once"

    @cached_property
    def _pitch_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """Base ids of Pitch tokens and their pitches."""
        vocab = tk.base_vocabulary(self.miditok)
        pairs = [(i, int(t.split("_")[1])) for t, i in vocab.items() if t.startswith("Pitch_")]
        ids, pitches = (np.array(v, dtype=np.int64) for v in zip(*pairs))
        return ids, pitches

    def transpose(self, x: np.ndarray, semitones: int) -> np.ndarray | None:
        """Base ids [L] with every Pitch token moved; None if one leaves the pitch range."""
        if not self.transposes:
            return None
        ids, pitches = self._pitch_ids
        lookup = np.full(int(max(ids.max(), np.max(x, initial=0))) + 1, -1, dtype=np.int64)
        lookup[ids] = pitches
        x = np.asarray(x)
        p = lookup[x]
        is_pitch = p >= 0
        moved = p[is_pitch] + int(semitones)
        by_pitch = dict(zip(pitches.tolist(), ids.tolist()))
        if len(moved) and (moved.min() < pitches.min() or moved.max() > pitches.max()):
            return None
        out = np.array(x, copy=True)
        out[is_pitch] = [by_pitch[m] for m in moved.tolist()]
        return out

    def params(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer,
            "vocab_size": self.target_vocab_size,
            "vocab_model": self.vocab_model,
            "tokens_per_bar": self.tokens_per_bar,
            "vocabulary": self.vocabulary,
            **self.settings,
        }
