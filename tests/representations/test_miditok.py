"""representation=miditok: MidiTok's tokenizations on real files, round trips against MidiTok's
own quantised original, a learned vocabulary fitted on the training split only and carried in
the codec's dict, and config errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cadenza.data.prepare import prepare
from cadenza.data.sources import Pop909Source
from cadenza.errors import ConfigError
from cadenza.io import tokenizers as tk
from cadenza.io.midi import read_score, to_symusic, tracks_of
from cadenza.representations import Codec, MidiTokCodec
from tests.fixtures.data import data_root, real_midi

FILES = [
    "pop909/midi/001.mid",
    "nottingham/MIDI/jigs1.mid",
    "piano-midi-de/midis/Chopin/chpn-p7.mid",
]


def notes(score) -> list[tuple[int, int, int, int]]:  # noqa: ANN001 - a symusic Score
    return sorted((n.time, n.duration, n.pitch, n.velocity) for t in score.tracks for n in t.notes)


@pytest.mark.parametrize("tokenizer", tk.TOKENIZATIONS)
@pytest.mark.parametrize("rel", FILES, ids=lambda r: Path(r).stem)
def test_round_trip_gives_miditoks_quantised_original(tokenizer: str, rel: str) -> None:
    codec = MidiTokCodec(tokenizer=tokenizer)
    score = read_score(real_midi(rel))
    ids = codec.encode(score)
    assert ids[0] == codec.bos_id and ids[-1] == codec.eos_id
    assert int(ids.max()) < codec.vocab_size
    reference = notes(tk.quantised(codec.miditok, to_symusic(score, merge=True)))
    decoded = notes(tk.decode(codec.miditok, ids[1:-1].tolist()))
    n_notes = len(decoded)
    onsets = lambda ns: sorted((t, p) for t, _, p, _ in ns)  # noqa: E731
    assert onsets(decoded) == onsets(reference)
    if tokenizer == "MIDILike":
        # Note-offs, not durations: a re-strike while the same key sounds cannot say which note
        # an off ends, nor which velocity is whose (MidiTok's own limit), so only notes without
        # such an overlap must come back whole (in POP909's 001, merged onto one track, 82 of
        # 1,520 notes overlap another of their pitch; 28 of them come back changed).
        overlapping = _overlapping(reference)
        assert len(overlapping) < 0.1 * len(reference)
        decoded = [n for n in decoded if (n[0], n[2]) not in overlapping]
        reference = [n for n in reference if (n[0], n[2]) not in overlapping]
    assert decoded == reference
    # And as a PrettyMIDI, what samples are written from: one piano track, every note.
    pm = codec.decode(ids)
    assert sum(len(t.notes) for t in tracks_of(pm)) == n_notes


def _overlapping(ns: list[tuple[int, int, int, int]]) -> set[tuple[int, int]]:
    """(onset, pitch) of notes that overlap another note of their pitch."""
    out: set[tuple[int, int]] = set()
    last_end: dict[int, tuple[int, int]] = {}
    for t, d, p, _ in sorted(ns, key=lambda n: (n[2], n[0])):
        if p in last_end and t < last_end[p][0]:
            out |= {(t, p), (last_end[p][1], p)}
        if p not in last_end or t + d > last_end[p][0]:
            last_end[p] = (t + d, t)
    return out


def test_base_ids_transpose_and_come_back() -> None:
    codec = MidiTokCodec()
    ids = codec.encode(read_score(real_midi("nottingham/MIDI/jigs1.mid"))).numpy()
    up = codec.transpose(ids, 5)
    assert up is not None and len(up) == len(ids)
    a, b = tracks_of(codec.decode(ids))[0].notes, tracks_of(codec.decode(up))[0].notes
    np.testing.assert_array_equal(b[:, 2], a[:, 2] + 5)
    np.testing.assert_array_equal(codec.transpose(up, -5), ids)
    assert codec.transpose(ids, 60) is None  # past the pitch range


def test_prepare_learns_the_vocabulary_from_the_training_split_only(tmp_path: Path) -> None:
    source = Pop909Source(data_root() / "pop909" / "midi", limit=12)
    base = prepare(source, MidiTokCodec(), tmp_path, workers=0)
    learned = prepare(source, MidiTokCodec(vocab_size=600), tmp_path, workers=0)
    # The same pieces in the same splits: hashes come from the base encoding.
    key = lambda p: [(x["key"], x["id"], x["split"]) for x in p.manifest["pieces"]]  # noqa: E731
    assert key(learned) == key(base)
    fitted = learned.codec
    assert isinstance(fitted, MidiTokCodec) and not fitted.learns_vocabulary
    assert fitted.vocab_size == 600 and not fitted.transposes
    # Fitting on the base training pieces alone gives exactly the stored vocabulary.
    train = base.load_split("train")
    again = MidiTokCodec(vocab_size=600).fit(train.piece(i) for i in range(len(train)))
    assert again == fitted
    # Every cached piece is its base piece in learned ids, shorter, and decodes to the same notes.
    for split in ("train", "test"):
        b, lrn = base.load_split(split), learned.load_split(split)
        for i in range(len(b)):
            np.testing.assert_array_equal(lrn.piece(i), fitted.learned_ids(b.piece(i)))
            assert len(lrn.piece(i)) < len(b.piece(i))
        first_base, first = MidiTokCodec().decode(b.piece(0)), fitted.decode(lrn.piece(0))
        np.testing.assert_allclose(tracks_of(first)[0].notes, tracks_of(first_base)[0].notes)


def test_the_codec_dict_rebuilds_a_trained_tokenizer_with_no_file(tmp_path: Path) -> None:
    score = read_score(real_midi("pop909/midi/002.mid"))
    codec = MidiTokCodec(vocab_size=500).fit([MidiTokCodec().encode(score).numpy()])
    d = json.loads(json.dumps(codec.to_dict()))  # what a checkpoint holds: plain JSON values
    rebuilt = Codec.from_dict(d)
    assert rebuilt == codec and rebuilt.vocab_size == 500
    np.testing.assert_array_equal(rebuilt.encode(score), codec.encode(score))
    assert not list(tmp_path.iterdir())  # nothing written beside it


def test_a_unigram_vocabulary_is_learned_and_decodes_to_the_same_notes() -> None:
    score = read_score(real_midi("nottingham/MIDI/reelsa-c1.mid"))
    base = MidiTokCodec(tokenizer="TSD")
    ids = base.encode(score).numpy()
    codec = MidiTokCodec(tokenizer="TSD", vocab_size=400, vocab_model="Unigram").fit([ids])
    learned = codec.learned_ids(ids)
    assert len(learned) < len(ids) and int(learned.max()) < codec.vocab_size
    np.testing.assert_allclose(
        tracks_of(codec.decode(learned))[0].notes, tracks_of(base.decode(ids))[0].notes
    )


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"tokenizer": "Octuple"}, "representation.tokenizer"),
        ({"vocab_size": 10}, "representation.vocab_size"),
        ({"vocab_model": "WordPiece"}, "representation.vocab_model"),
        ({"beat_res": {"a": 2}}, "representation.beat_res"),
        ({"pitch_range": [200, 300]}, "representation.pitch_range"),
        ({"num_velocities": 0}, "representation.num_velocities"),
        ({"use_chord": True}, "representation.use_chord"),
        ({"tokens_per_bar": 0}, "representation.tokens_per_bar"),
    ],
)
def test_a_wrong_setting_fails_at_start_up_naming_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        MidiTokCodec(**kwargs)
