"""MultiTrackMelodyCodec: exact [T, K] tokens for a hand-made trio, round trips on real Bach
chorales from music21, transposition, windows, persistence, clear errors, and the cache."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cadenza.data.datasets import WindowDataset, collate
from cadenza.data.prepare import prepare
from cadenza.data.sources import MidiFolderSource
from cadenza.data.splits import SPLITS
from cadenza.errors import BadMidiError, ConfigError
from cadenza.io.corpus import corpus_paths, corpus_to_midi_bytes
from cadenza.io.midi import TrackNotes, build_midi, load_midi, load_midi_bytes, save_midi, tracks_of
from cadenza.paths import config_dir
from cadenza.representations import Codec, MelodyCodec, MultiTrackMelodyCodec
from cadenza.representations.melody import HOLD, PAD, REST

H, R = HOLD, REST
LOW = 36
S = 0.125  # one 16th note in seconds at 120 bpm
TRIO = ["index:0", "index:1", "index:2"]


def on(pitch: int) -> int:
    return 3 + pitch - LOW


def part(name: str, rows, program: int = 0, is_drum: bool = False) -> TrackNotes:
    return TrackNotes(program, is_drum, name, np.array(rows, dtype=np.float64).reshape(-1, 4))


# Soprano: C5 quarter, D5 eighth, eighth rest, E5 eighth struck twice (12 steps).
SOPRANO = [(0.0, 0.5, 72, 90), (0.5, 0.75, 74, 90), (1.0, 1.25, 76, 90), (1.25, 1.5, 76, 90)]
ALTO = [(0.25, 0.75, 67, 90)]  # enters on the third 16th, gone after 6 steps
BASS = [(0.0, 1.5, 48, 90), (1.5, 2.0, 24, 90)]  # C1 folds up two octaves to C2 = 36
SOPRANO_TOKENS = [on(72), H, H, H, on(74), H, R, R, on(76), H, on(76), H] + [R] * 4
ALTO_TOKENS = [R, R, on(67), H, H, H] + [R] * 10
BASS_TOKENS = [on(48)] + [H] * 11 + [on(36), H, H, H]


def trio_midi():
    drums = part("Drums", [(0.0, 0.1, 36, 100)], is_drum=True)  # never a voice, never indexed
    return build_midi(
        [drums, part("Soprano", SOPRANO), part("Alto", ALTO, 41), part("Bass", BASS, 32)]
    )


def test_hand_made_trio_tokens():
    codec = MultiTrackMelodyCodec(TRIO)
    x = codec.encode(trio_midi())
    assert x.dtype == torch.int64 and x.shape == (16, 3)
    assert x.T.tolist() == [SOPRANO_TOKENS, ALTO_TOKENS, BASS_TOKENS]
    assert codec.row_shape == (3,) and codec.n_tracks == 3 and codec.steps_per_bar == 16
    assert codec.vocab_size == 3 + 49 == MelodyCodec(low_pitch=36, high_pitch=84).vocab_size
    # Each column is what a MelodyCodec with that selection encodes, padded with REST.
    for k, tc in enumerate(codec.track_codecs):
        alone = tc.encode(trio_midi()).tolist()
        assert x[: len(alone), k].tolist() == alone and set(x[len(alone) :, k].tolist()) <= {R}


def test_selection_by_name_and_missing_track_is_rest():
    codec = MultiTrackMelodyCodec(["name:bass", "index:7", "name:SOPRANO", "program:41"])
    x = codec.encode(trio_midi())
    assert x.T.tolist() == [BASS_TOKENS, [R] * 16, SOPRANO_TOKENS, ALTO_TOKENS]


def test_decode_notes_programs_names_and_round_trip():
    codec = MultiTrackMelodyCodec(TRIO, programs=[73, 41, 32])
    x = codec.encode(trio_midi())
    notes = codec.notes(x)
    assert [n.tolist() for n in notes] == [
        [[0, 4, 72], [4, 6, 74], [8, 10, 76], [10, 12, 76]],
        [[2, 6, 67]],
        [[0, 12, 48], [12, 16, 36]],
    ]
    pm = codec.decode(x)
    tracks = tracks_of(pm)
    assert [(t.program, t.is_drum, t.name) for t in tracks] == [
        (73, False, "index:0"),
        (41, False, "index:1"),
        (32, False, "index:2"),
    ]
    for t, n in zip(tracks, notes):
        np.testing.assert_allclose(t.notes[:, :3], np.c_[n[:, :2] * S, n[:, 2]])
    assert torch.equal(codec.encode(pm), x)
    # name:TEXT tracks decode under TEXT, so the selection finds them again.
    named = MultiTrackMelodyCodec(["name:Bass", "name:Soprano"])
    y = named.encode(trio_midi())
    assert [t.name for t in tracks_of(named.decode(y))] == ["Bass", "Soprano"]
    assert torch.equal(named.encode(named.decode(y)), y)


def test_decode_stops_each_track_at_pad_and_keeps_empty_tracks():
    codec = MultiTrackMelodyCodec(["index:0", "index:1"])
    x = torch.tensor([[on(60), R], [H, R], [PAD, R], [on(62), PAD]])
    assert [n.tolist() for n in codec.notes(x)] == [[[0, 2, 60]], []]
    tracks = tracks_of(codec.decode(x))
    assert len(tracks) == 2 and len(tracks[1].notes) == 0  # index:1 stays index 1
    with pytest.raises(ValueError, match=r"\[T, 2\]"):
        codec.decode(torch.tensor([on(60), H]))


# --- real Bach chorales (music21) -------------------------------------------------------------
# Four-part chorales whose music21 parts are exactly Soprano, Alto, Tenor, Bass (370 of the 433
# bach files are; the others lead with instruments such as horns, or are one-part Roman-numeral
# analyses).
CHORALES = ["bwv10.7", "bwv101.7", "bwv102.7", "bwv103.6", "bwv104.6"]
SATB = ["Soprano", "Alto", "Tenor", "Bass"]


@cache
def _chorale(stem: str):
    (path,) = [p for p in corpus_paths("bach") if p.name.split(".mxl")[0] == stem]
    return load_midi_bytes(corpus_to_midi_bytes(path), stem)


@pytest.mark.parametrize("stem", CHORALES)
def test_round_trip_on_bach_chorales(stem):
    pm = _chorale(stem)
    # music21 renders each part as one instrument, in score order, all program 0.
    assert [(t.name, t.program, t.is_drum) for t in tracks_of(pm)] == [(n, 0, False) for n in SATB]
    codec = MultiTrackMelodyCodec()  # index:0..3, 36..84
    x = codec.encode(pm)
    assert x.shape[1] == 4 and x.min() >= HOLD and x.max() < codec.vocab_size
    assert all(x[0, k] != HOLD for k in range(4))
    decoded = codec.decode(x)
    assert torch.equal(codec.encode(decoded), x)
    # Every voice lies within 36..84 and is monophonic: each note comes back, none folded.
    for k, (voice, tc) in enumerate(zip(tracks_of(pm), codec.track_codecs)):
        pitches = voice.notes[:, 2]
        assert pitches.min() >= LOW and pitches.max() <= 84
        np.testing.assert_array_equal(codec.notes(x)[k], tc.quantize(pm))
        assert len(codec.notes(x)[k]) == len(voice.notes)
    assert len(x) == max(int(n[:, 1].max()) for n in codec.notes(x))


def test_chorale_voices_by_name_skip_leading_instruments():
    # bwv1.6 opens with a horn part: index:0..3 would take Horn, S, A, T; names find S, A, T, B.
    pm = load_midi_bytes(
        corpus_to_midi_bytes([p for p in corpus_paths("bach") if p.name == "bwv1.6.mxl"][0])
    )
    assert [t.name for t in tracks_of(pm)] == ["Horn 2", *SATB]
    by_name = MultiTrackMelodyCodec([f"name:{n}" for n in SATB]).encode(pm)
    by_index = MultiTrackMelodyCodec([f"index:{k}" for k in range(1, 5)]).encode(pm)
    assert torch.equal(by_name, by_index)


def test_transpose_on_chorale_and_windows_shape():
    codec = MultiTrackMelodyCodec()
    x = codec.encode(_chorale("bwv102.7")).numpy().astype(np.int16)
    top = max(int(n[:, 2].max()) for n in codec.notes(x))
    low = min(int(n[:, 2].min()) for n in codec.notes(x))
    up = codec.transpose(x, 84 - top)
    assert up is not None and up.dtype == np.int16 and up.shape == x.shape
    np.testing.assert_array_equal(codec.transpose(up, top - 84), x)
    assert codec.transpose(x, 84 - top + 1) is None  # the soprano alone leaves the range
    assert codec.transpose(x, LOW - low) is not None and codec.transpose(x, LOW - low - 1) is None
    wins = codec.windows(x, bars=2)
    assert len(wins) == (len(x) - 32) // 16 + 1  # a chorale never falls silent for a bar
    for w, s in zip(wins, codec.window_starts(x, bars=2)):
        assert w.shape == (32, 4) and w.dtype == np.int16 and (w[0] != HOLD).all()
        np.testing.assert_array_equal(w[1:], x[s + 1 : s + 32])


@pytest.mark.parametrize("k", [0, 3, 8])
def test_transpose_matches_encoding_transposed_notes(k):
    codec = MultiTrackMelodyCodec(TRIO)
    x = codec.encode(trio_midi()).numpy()

    def moved(rows):
        return [(s, e, p + k, v) for s, e, p, v in rows]

    bass = [(0.0, 1.5, 48 + k, 90), (1.5, 2.0, 36 + k, 90)]  # the folded C1 as it encodes
    pm = build_midi([part("s", moved(SOPRANO)), part("a", moved(ALTO)), part("b", bass)])
    got = codec.transpose(x, k)
    assert got is not None
    np.testing.assert_array_equal(got, codec.encode(pm).numpy())


def test_transpose_is_none_when_any_track_leaves_the_range():
    codec = MultiTrackMelodyCodec(TRIO)
    x = codec.encode(trio_midi()).numpy()
    # The bass touches 36, the bottom key; the soprano's E5 (76) can rise 8 to 84.
    assert codec.transpose(x, -1) is None
    assert codec.transpose(x, 8) is not None and codec.transpose(x, 9) is None
    specials = np.array([[R, H], [PAD, R]])
    np.testing.assert_array_equal(codec.transpose(specials, 40), specials)


# --- windows ---------------------------------------------------------------------------------
def test_windows_drop_only_silent_steps_and_fix_leading_hold_per_track():
    # Bar 0: both voices; bar 1: voice 0 holds its note on, voice 1 rests; bar 2: silence.
    v0 = [on(60)] + [H] * 31 + [R] * 16
    v1 = [on(48)] + [H] * 7 + [R] * 8 + [R] * 16 + [R] * 16
    tokens = np.array([v0, v1], dtype=np.int16).T  # [48, 2]
    codec = MultiTrackMelodyCodec(["index:0", "index:1"])
    assert codec.window_starts(tokens, bars=1) == [0, 16]  # one resting voice is not silence
    wins = codec.windows(tokens, bars=1)
    assert [w.shape for w in wins] == [(16, 2), (16, 2)]
    assert wins[1][0].tolist() == [on(60), R] and wins[1][1:, 0].tolist() == [H] * 15
    assert tokens[16].tolist() == [H, R]  # the input is not changed
    assert codec.window_starts(tokens, bars=1, max_rest_fraction=1.0) == [0, 16, 32]
    assert codec.window_starts(tokens, bars=2) == [0, 16]  # 16 of 32 steps silent: not more
    assert codec.window_starts(tokens, bars=2, max_rest_fraction=0.4) == [0]
    assert codec.window_starts(tokens, bars=1, hop_bars=2) == [0]
    assert codec.windows(tokens, bars=4) == []
    with pytest.raises(ConfigError):
        codec.window_starts(tokens, bars=0)


# --- persistence, configs, errors ------------------------------------------------------------
def test_dict_round_trip_and_sizes():
    codec = MultiTrackMelodyCodec(
        ("name:MELODY", "name:BRIDGE"), steps_per_beat=2, low_pitch=48, high_pitch=96, tempo=90.0
    )
    d = json.loads(json.dumps(codec.to_dict()))
    assert d == {
        "name": "multitrack_melody",
        "tracks": ["name:MELODY", "name:BRIDGE"],
        "steps_per_beat": 2,
        "low_pitch": 48,
        "high_pitch": 96,
        "tempo": 90.0,
        "programs": [0, 0],
    }
    again = Codec.from_dict(d)
    assert isinstance(again, MultiTrackMelodyCodec) and again == codec
    assert hash(again) == hash(codec)
    assert again.vocab_size == 52 and again.steps_for_bars(2) == 16 and again.kind == "tokens"
    assert again.storage_dtype == np.int16 and again.row_shape == (2,)
    assert [c.instrument for c in again.track_codecs] == ["name:MELODY", "name:BRIDGE"]
    assert again != MultiTrackMelodyCodec(("name:MELODY", "name:BRIDGE"), programs=[0, 1])
    with pytest.raises(AttributeError):
        _ = codec.feature_dim


def test_configs_instantiate_with_plain_lists():
    multi = instantiate(OmegaConf.load(config_dir() / "representation" / "multitrack_melody.yaml"))
    assert multi == MultiTrackMelodyCodec(programs=[52] * 4)
    assert type(multi.params()["tracks"]) is list and type(multi.params()["programs"]) is list
    json.dumps(multi.to_dict())
    mono = instantiate(OmegaConf.load(config_dir() / "representation" / "melody.yaml"))
    assert mono == MelodyCodec()


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"tracks": "index:0"}, "representation.tracks"),
        ({"tracks": []}, "representation.tracks"),
        ({"tracks": ["index:0", "voice"]}, r"representation.tracks\[1\]"),
        ({"tracks": ["name:"]}, r"representation.tracks\[0\]"),
        ({"tracks": ["index:0", "index:1"], "programs": [0]}, "representation.programs"),
        ({"tracks": ["index:0"], "programs": [128]}, "representation.programs"),
        ({"tracks": ["index:0"], "programs": [True]}, "representation.programs"),
        ({"tracks": ["index:0"], "programs": "0"}, "representation.programs"),
        ({"low_pitch": 90, "high_pitch": 80}, "pitch range"),
        ({"steps_per_beat": 0}, "representation.steps_per_beat"),
        ({"tempo": 0.0}, "representation.tempo"),
    ],
    ids=lambda v: str(v)[:40] if isinstance(v, dict) else "",
)
def test_bad_params_raise_config_error(bad, key):
    with pytest.raises(ConfigError, match=key):
        MultiTrackMelodyCodec(**bad)


@pytest.mark.parametrize(
    "tracks",
    [
        [part("d", [(0.0, 1.0, 40, 100)], is_drum=True)],
        [],
        [part("a", []), part("b", [])],
        [part("a", []), part("b", []), part("c", []), part("late", [(0.0, 1.0, 60, 90)])],
    ],
    ids=["drums_only", "no_instruments", "empty_instruments", "only_unselected_track"],
)
def test_no_notes_in_any_track_raises_bad_midi(tracks):
    with pytest.raises(BadMidiError) as info:
        MultiTrackMelodyCodec(TRIO).encode(build_midi(tracks))
    assert info.value.reason == "no_notes"


# --- the prepared cache and batches ----------------------------------------------------------
def write_trio(path: Path, seed: int) -> Path:
    """A distinct two-voice piece per seed: 8 + seed quarter notes over half-note bass."""
    rng = np.random.default_rng(seed)
    n = 8 + seed
    top = [(0.5 * i, 0.5 * (i + 1), 60 + int(rng.integers(0, 12)), 90) for i in range(n)]
    bass = [(1.0 * i, 1.0 * (i + 1), 40 + int(rng.integers(0, 8)), 80) for i in range(n // 2)]
    return save_midi(build_midi([part("top", top), part("bass", bass, 32)]), path)


def test_prepare_caches_multitrack_rows_and_batches(tmp_path: Path):
    root = tmp_path / "midi"
    for i in range(5):
        write_trio(root / f"{i}.mid", seed=i)
    save_midi(build_midi([part("d", [(0.0, 1.0, 40, 100)], is_drum=True)]), root / "drums.mid")
    codec = MultiTrackMelodyCodec(["index:0", "index:1"])
    p = prepare(MidiFolderSource(root), codec, tmp_path / "cache", workers=2)
    assert p.skipped_counts == {"no_notes": 1}
    assert p.codec == codec
    seen = {}
    for name in SPLITS:
        split = p.load_split(name)
        assert split.data.ndim == 2 and split.data.shape == (split.total_steps, 2)
        assert split.data.dtype == np.int16
        for i, key in enumerate(split.keys):
            seen[key] = split.piece(i)
    assert sorted(seen) == [f"{i}.mid" for i in range(5)]
    for key, piece in seen.items():
        want = codec.encode(load_midi(root / key)).numpy()
        assert piece.shape == want.shape == (4 * (8 + int(key[0])), 2)
        np.testing.assert_array_equal(piece, want)

    a, b = (torch.from_numpy(np.array(seen[k], dtype=np.int64)) for k in ("0.mid", "2.mid"))
    batch = collate([(a, 0), (b, 1)])
    assert batch.x.shape == (2, len(b), 2) and batch.x.dtype == torch.long
    assert batch.lengths.tolist() == [len(a), len(b)]
    assert torch.equal(batch.x[0, : len(a)], a) and (batch.x[0, len(a) :] == PAD).all()

    train = p.load_split("train")
    windows = WindowDataset(
        train,
        bars=1,
        hop_bars=1,
        max_rest_fraction=0.5,
        transpose=None,
        codec=codec,
        training=False,
    )
    assert len(windows) == sum(len(train.piece(i)) // 16 for i in range(len(train)))
    x, _ = windows[0]
    assert x.shape == (16, 2) and x.dtype == torch.int64
