"""MidiTok's tokenizations: the only module in Cadenza that imports miditok.

A tokenizer is rebuilt from a plain dict (its name, MidiTok's TokenizerConfig settings and, once
trained, its learned vocabulary), so a checkpoint's codec carries everything and no file or hub
download is needed to sample. Scores come in and go out as symusic Scores
(`cadenza.io.midi.to_symusic` / `from_symusic`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

import miditok
import symusic

from cadenza.errors import ConfigError

# MidiTok's tokenizations that write one sequence of single ids (CPWord, Octuple and MuMIDI
# stack several ids per step; MMM needs its programs).
TOKENIZATIONS = ("REMI", "TSD", "MIDILike", "Structured")
MODELS = ("BPE", "Unigram")
# What the codec takes and passes to MidiTok's TokenizerConfig (JSON-safe values only).
SETTINGS = {
    "pitch_range": (21, 109),
    "beat_res": {"0_4": 8, "4_12": 4},  # beats [a, b) -> positions per beat, as MidiTok's
    "num_velocities": 32,
    "use_velocities": True,
    "use_chords": False,
    "use_rests": False,
    "use_tempos": False,
    "use_time_signatures": False,
    "use_programs": False,
    # Tracks merged onto one piano track can strike one key twice at once: keep one note.
    "remove_duplicated_notes": True,
    "num_tempos": 32,
    "tempo_range": (40, 250),
}
SPECIAL = ("PAD", "BOS", "EOS", "MASK")


def check_settings(tokenization: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings with defaults filled in, or a ConfigError naming representation.<key>."""
    if tokenization not in TOKENIZATIONS:
        raise ConfigError(
            f"representation.tokenizer must be one of {list(TOKENIZATIONS)} (MidiTok's "
            f"single-sequence tokenizations), got {tokenization!r}"
        )
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ConfigError(
            f"representation.{unknown[0]} is not a setting of the miditok codec; settings: "
            f"{sorted(SETTINGS)}"
        )
    out = {**SETTINGS, **{k: _plain(v) for k, v in settings.items()}}
    try:
        tokenizer_for(tokenization, out)
    except ConfigError:
        raise
    except Exception as e:  # MidiTok validates its config with asserts and ValueErrors
        key = next((k for k in settings if k in str(e)), None)
        where = f"representation.{key}" if key else "representation (miditok settings)"
        raise ConfigError(f"{where}: MidiTok refuses {settings}: {type(e).__name__}: {e}") from e
    return out


def _plain(value: Any) -> Any:
    """OmegaConf containers -> lists and dicts, so settings compare and serialise."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value


def _config(settings: dict[str, Any]) -> miditok.TokenizerConfig:
    s = dict(settings)
    for key in ("beat_res",):
        table = s[key]
        if not isinstance(table, dict) or not table:
            raise ConfigError(
                f"representation.{key} must map beat ranges 'a_b' to positions per beat, e.g. "
                f"{{'0_4': 8, '4_12': 4}}, got {table!r}"
            )
        try:
            s[key] = {tuple(int(x) for x in k.split("_")): int(v) for k, v in table.items()}
        except ValueError as e:
            raise ConfigError(
                f"representation.{key}: keys are beat ranges 'a_b' (e.g. '0_4'), got {table!r}"
            ) from e
    for key in ("pitch_range", "tempo_range"):
        value = s[key]
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ConfigError(f"representation.{key} must be [low, high], got {value!r}")
        s[key] = (int(value[0]), int(value[1]))
    return miditok.TokenizerConfig(special_tokens=list(SPECIAL), **s)


def tokenizer_for(
    tokenization: str, settings: dict[str, Any], vocabulary: dict[str, Any] | None = None
) -> miditok.MusicTokenizer:
    """A MidiTok tokenizer from our dict; `vocabulary` is what `learned_vocabulary` returned."""
    cls = getattr(miditok, tokenization)
    config = _config(settings)
    if vocabulary is None:
        return cls(config)
    # MidiTok reloads a trained tokenizer only from a params file: write one and read it back.
    params = {"config": config.to_dict(serialize=True), "tokenization": tokenization}
    params |= vocabulary
    fd, path = tempfile.mkstemp(suffix=".json", prefix="cadenza-tokenizer-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(params, f)
        return cls(params=path)
    finally:
        os.unlink(path)


def learned_vocabulary(tokenizer: miditok.MusicTokenizer) -> dict[str, Any] | None:
    """The trained part of a tokenizer as JSON-safe values (None if untrained)."""
    if not tokenizer.is_trained:
        return None
    d = tokenizer.to_dict()
    return {k: d[k] for k in ("_vocab_base", "_model", "_vocab_base_byte_to_token")}


def encode(tokenizer: miditok.MusicTokenizer, score: symusic.Score) -> list[int]:
    """A Score -> one sequence of base ids (before any learned vocabulary)."""
    seq = tokenizer.encode(score, encode_ids=False)
    if isinstance(seq, list):  # one sequence per track: the codec merges tracks beforehand
        seq = seq[0] if seq else miditok.TokSequence(ids=[])
    return [int(i) for i in seq.ids]


def _words(tokenizer: miditok.MusicTokenizer, ids: Sequence[int]) -> list[str]:
    """Base ids as the strings a learned vocabulary is trained on and applied to: one per bar
    where the tokenization writes Bar tokens (REMI, TSD), so no learned token spans a bar
    line; else the whole sequence."""
    vocab = base_vocabulary(tokenizer)
    bar = vocab.get("Bar_None")
    chunks: list[list[int]] = [[]]
    for i in ids:
        if i == bar and chunks[-1]:
            chunks.append([])
        chunks[-1].append(int(i))
    return [tokenizer._ids_to_bytes(c, as_one_str=True) for c in chunks if c]


def base_to_learned(tokenizer: miditok.MusicTokenizer, ids: Sequence[int]) -> list[int]:
    """Base ids -> the trained vocabulary's ids, bar by bar (no re-parse)."""
    if not ids:
        return []
    return list(tokenizer._model.encode(_words(tokenizer, ids), is_pretokenized=True).ids)


def decode(tokenizer: miditok.MusicTokenizer, ids: Sequence[int]) -> symusic.Score:
    """Ids (base, or learned if the tokenizer is trained) -> a symusic Score. Learned ids go
    back to base ids first (MidiTok's own decode reads Unigram ids as nothing)."""
    seq = miditok.TokSequence(ids=[int(i) for i in ids], are_ids_encoded=tokenizer.is_trained)
    if tokenizer.is_trained and seq.ids:
        tokenizer.decode_token_ids(seq)
    return tokenizer.decode(seq if tokenizer.one_token_stream else [seq])


def train(
    tokenizer: miditok.MusicTokenizer,
    base_sequences: Iterable[Sequence[int]],
    vocab_size: int,
    model: str = "BPE",
) -> None:
    """Learn a vocabulary of `vocab_size` ids (BPE or Unigram) from base-id sequences, in
    place, on the same bar-long words `base_to_learned` applies it to."""
    words = [w for ids in base_sequences for w in _words(tokenizer, ids)]
    tokenizer.train(vocab_size=vocab_size, model=model, iterator=[words])


def quantised(tokenizer: miditok.MusicTokenizer, score: symusic.Score) -> symusic.Score:
    """What a round trip through `tokenizer` can give back: MidiTok's own preprocessing of
    `score` (times on its beat grid, velocities in its bins, pitches in its range)."""
    return tokenizer.preprocess_score(score.copy())


def special_ids(tokenizer: miditok.MusicTokenizer) -> list[int]:
    """The ids of PAD, BOS, EOS and MASK in the tokenizer's vocabulary: the base ids (0-3)
    before training and with BPE; wherever the model put them with Unigram."""
    base = [int(tokenizer.vocab[f"{s}_None"]) if not tokenizer.is_trained else
            int(tokenizer._vocab_base[f"{s}_None"]) for s in SPECIAL]  # fmt: skip
    if not tokenizer.is_trained:
        return base
    to_byte = tokenizer._vocab_base_id_to_byte
    return [int(tokenizer.vocab_model[to_byte[i]]) for i in base]


def base_vocabulary(tokenizer: miditok.MusicTokenizer) -> dict[str, int]:
    """Token name -> base id, before any learned merges."""
    vocab = tokenizer._vocab_base if tokenizer.is_trained else tokenizer.vocab
    return {str(k): int(v) for k, v in vocab.items()}
