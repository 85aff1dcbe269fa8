"""prepare(): bad files counted, dedup, deterministic splits, cache hits, real benchmarks."""

from __future__ import annotations

import gzip
import json
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cadenza.data.prepare import prepare
from cadenza.data.sources import BoulangerSource, MidiFolderSource, Music21Source
from cadenza.errors import CadenzaError
from cadenza.io.midi import TrackNotes, build_midi, save_midi
from cadenza.representations import EventCodec, PianoRollCodec
from tests.fixtures.data import data_root
from tests.fixtures.midi_factory import chord_notes, write_broken_folder

ROLL = PianoRollCodec(steps_per_beat=4)


def write_piece(path: Path, seed: int, name: str = "piece") -> Path:
    """A distinct little melody per seed: 8 + seed % 5 quarter notes at 120 bpm."""
    rng = np.random.default_rng(seed)
    n = 8 + seed % 5
    pitches = 48 + rng.integers(0, 24, n)
    notes = np.array([(0.5 * i, 0.5 * (i + 1), p, 80) for i, p in enumerate(pitches)], float)
    return save_midi(build_midi([TrackNotes(0, False, name, notes)]), path)


def make_good_folder(root: Path, n: int = 8) -> list[str]:
    """n good pieces in nested folders, names with spaces, .mid/.MID/.midi; returns their keys."""
    names = ["a.mid", "Deep/b c.MID", "Deep/er/d e f.midi", "x.MIDI"]
    keys = []
    for i in range(n):
        rel = f"set {i % 3}/{i}-" + names[i % len(names)]
        write_piece(root / rel, seed=i)
        keys.append(rel)
    (root / "readme.txt").write_text("not a MIDI file, ignored by extension")
    return sorted(keys)


def test_bad_files_are_counted_per_reason_and_good_ones_kept(tmp_path: Path) -> None:
    root = tmp_path / "midi"
    good = make_good_folder(root)
    broken = write_broken_folder(root / "broken stuff")
    # Same notes, different bytes (track name): a duplicate of the chords piece.
    save_midi(build_midi([TrackNotes(0, False, "one", chord_notes())]), root / "dup1.mid")
    save_midi(build_midi([TrackNotes(0, False, "two", chord_notes())]), root / "dup2.mid")
    assert (root / "dup1.mid").read_bytes() != (root / "dup2.mid").read_bytes()

    p = prepare(MidiFolderSource(str(root)), ROLL, tmp_path / "cache", workers=2)

    expected = Counter(broken.values()) + Counter({"duplicate": 1})
    assert p.skipped_counts == dict(expected)
    skipped = {s["key"]: s["reason"] for s in p.manifest["skipped"]}
    assert skipped == {
        **{f"broken stuff/{name}": reason for name, reason in broken.items()},
        "dup2.mid": "duplicate",
    }
    kept = sorted(piece["key"] for piece in p.manifest["pieces"])
    assert kept == sorted([*good, "dup1.mid"])
    summary = p.summary()
    for reason, count in expected.items():
        assert f"{reason} {count}" in summary
    assert f"skipped {sum(expected.values())}" in summary
    # Every piece is where the manifest says, with the steps the codec gives.
    for name in ("train", "valid", "test"):
        split = p.load_split(name)
        assert isinstance(split.data, np.memmap) and split.data.dtype == np.uint8
        assert split.data.shape == (split.total_steps, ROLL.feature_dim)
        assert len(split) == p.manifest["splits"][name]["pieces"]
    first = next(x for x in p.manifest["pieces"] if x["key"] == good[0])
    split = p.load_split(first["split"])
    piece = split.piece(split.keys.index(good[0]))
    expected_roll = ROLL.encode(MidiFolderSource(str(root)).load(_item(root, good[0]))).numpy()
    np.testing.assert_array_equal(piece, expected_roll.astype(np.uint8))


def _item(root: Path, key: str):
    return next(i for i in MidiFolderSource(str(root)).items() if i.key == key)


def test_all_broken_folder_is_one_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "only broken"
    write_broken_folder(root)
    with pytest.raises(CadenzaError) as err:
        prepare(MidiFolderSource(str(root)), ROLL, tmp_path / "cache", workers=0)
    msg = str(err.value)
    assert str(root) in msg
    for reason in ("empty_file 1", "no_notes 2", "truncated 1", "not_midi 1", "corrupt 1"):
        assert reason in msg
    assert not list((tmp_path / "cache").rglob("manifest.json"))


def test_splits_depend_on_content_not_names_or_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(30):
        write_piece(a / f"{i:02d}.mid", seed=i)
        # The same files, named to sort in the reverse order, in another folder layout.
        (b / f"sub {i % 4}").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(a / f"{i:02d}.mid", b / f"sub {i % 4}" / f"{99 - i:02d}.midi")
    pa = prepare(MidiFolderSource(str(a)), ROLL, tmp_path / "cache", workers=0)
    pb = prepare(MidiFolderSource(str(b)), ROLL, tmp_path / "cache", workers=2)
    split_a = {x["id"]: x["split"] for x in pa.manifest["pieces"]}
    split_b = {x["id"]: x["split"] for x in pb.manifest["pieces"]}
    assert len(split_a) == 30 and split_a == split_b
    assert set(split_a.values()) == {"train", "valid", "test"}
    # Inline and worker-process encoding write identical arrays.
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(
            np.sort(pa.load_split(name).lengths), np.sort(pb.load_split(name).lengths)
        )


def test_every_codec_splits_a_dataset_the_same_way(tmp_path: Path) -> None:
    """The split is the file's, not the encoding's: a piano roll and an event codec (and any
    tokenizer) are tested on the same pieces. Split by encoded content, two codecs of POP909
    shared 8 of ~100 test songs."""
    from cadenza.representations.events import EventCodec

    root = tmp_path / "midi"
    for i in range(40):
        write_piece(root / f"{i:02d}.mid", seed=i)
    by_codec = [
        {x["key"]: x["split"] for x in prepare(MidiFolderSource(str(root)), codec,
                                                tmp_path / "cache", workers=0).manifest["pieces"]}
        for codec in (ROLL, EventCodec())
    ]  # fmt: skip
    assert len(by_codec[0]) == 40 and by_codec[0] == by_codec[1]
    assert set(by_codec[0].values()) == {"train", "valid", "test"}


def test_second_prepare_is_a_cache_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "midi"
    make_good_folder(root, n=5)
    first = prepare(MidiFolderSource(str(root)), ROLL, tmp_path / "cache")
    assert not first.cache_hit

    def no_parsing(*_args: object) -> None:
        raise AssertionError("a cache hit must not parse any file")

    monkeypatch.setattr(MidiFolderSource, "load", no_parsing)
    started = time.perf_counter()
    again = prepare(MidiFolderSource(str(root)), ROLL, tmp_path / "cache")
    elapsed = time.perf_counter() - started
    assert again.cache_hit and elapsed < 0.5
    assert again.folder == first.folder
    assert again.manifest["created"] == first.manifest["created"]
    monkeypatch.undo()

    # A new file changes the fingerprint -> a new cache folder with one more piece.
    write_piece(root / "new.mid", seed=99)
    changed = prepare(MidiFolderSource(str(root)), ROLL, tmp_path / "cache", workers=0)
    assert not changed.cache_hit and changed.folder != first.folder
    assert len(changed.manifest["pieces"]) == len(first.manifest["pieces"]) + 1
    # force re-encodes into the same folder.
    forced = prepare(MidiFolderSource(str(root)), ROLL, tmp_path / "cache", force=True)
    assert forced.folder == changed.folder
    assert forced.manifest["created"] != changed.manifest["created"]


def test_tokens_are_stored_as_int16(tmp_path: Path) -> None:
    root = tmp_path / "midi"
    make_good_folder(root, n=4)
    codec = EventCodec()
    p = prepare(MidiFolderSource(str(root)), codec, tmp_path / "cache", workers=0)
    assert p.manifest["codec"] == codec.to_dict() and p.codec == codec
    total = 0
    for name in ("train", "valid", "test"):
        split = p.load_split(name)
        assert split.data.dtype == np.int16 and split.data.ndim == 1
        for i in range(len(split)):
            piece = split.piece(i)
            assert piece[0] == 1 and piece[-1] == 2  # BOS ... EOS
        total += len(split)
    assert total == 4


def _raw_boulanger(name: str) -> dict[str, list[list[list[int]]]]:
    with gzip.open(data_root() / "boulanger2012-polyphonic" / f"{name}.json.gz", "rt") as f:
        return json.load(f)


def test_jsb_benchmark_matches_published_sizes_and_rolls(tmp_path: Path) -> None:
    source = BoulangerSource("jsb", root=str(data_root()))
    codec = PianoRollCodec(steps_per_beat=source.steps_per_beat, low_pitch=21, high_pitch=108)
    p = prepare(source, codec, tmp_path / "cache")
    assert p.sizes() == {"train": (229, 13807), "valid": (76, 4602), "test": (77, 4725)}
    assert p.skipped_counts == {}
    raw = _raw_boulanger("JSB_Chorales")
    for split_name, i in [("train", 0), ("train", 228), ("valid", 5), ("test", 76)]:
        split = p.load_split(split_name)
        assert split.keys[i] == f"{split_name}/{i}"  # canonical order is kept
        roll = split.piece(i)
        steps = [sorted(int(k) + 21 for k in np.flatnonzero(frame)) for frame in roll]
        assert steps == raw[split_name][i]


def test_nottingham_benchmark_keeps_its_canonical_split(tmp_path: Path) -> None:
    source = BoulangerSource("nottingham", root=str(data_root()))
    assert source.steps_per_beat == 2
    codec = PianoRollCodec(steps_per_beat=2)
    started = time.perf_counter()
    p = prepare(source, codec, tmp_path / "cache", workers=2)
    assert time.perf_counter() - started < 20
    raw = _raw_boulanger("Nottingham")
    # The roll ends at the last note-off, so trailing silent steps (2 train pieces) are not kept.
    expected = {
        s: (len(pieces), sum(len(_trim_silence(pc)) for pc in pieces)) for s, pieces in raw.items()
    }
    assert p.sizes() == expected
    assert {s: n for s, (n, _) in p.sizes().items()} == {"train": 694, "valid": 173, "test": 170}
    # Duplicates are kept (not skipped) so the benchmark's piece counts stay published ones.
    assert p.skipped_counts == {} and p.manifest["duplicates_kept"] >= 1


def _trim_silence(piece: list[list[int]]) -> list[list[int]]:
    end = max(t for t, step in enumerate(piece) if step) + 1
    return piece[:end]


def test_music21_bach_prepares_with_every_split_filled(tmp_path: Path) -> None:
    p = prepare(Music21Source("bach", limit=6), ROLL, tmp_path / "cache", workers=2)
    sizes = p.sizes()
    assert sum(n for n, _ in sizes.values()) + sum(p.skipped_counts.values()) == 6
    # Hash splits of 6 pieces would often leave valid/test empty; the tiny-folder rule fills them.
    assert all(n >= 1 and steps > 0 for n, steps in sizes.values())
    assert all(key.startswith("bach/") for key in p.load_split("train").keys)


def test_cache_folder_holds_only_finished_files(tmp_path: Path) -> None:
    root = tmp_path / "midi"
    make_good_folder(root, n=3)
    p = prepare(MidiFolderSource(str(root)), ROLL, tmp_path / "cache", workers=0)
    # The manifest is the last file written; nothing temporary is left beside it.
    assert sorted(f.name for f in p.folder.iterdir()) == [
        "manifest.json",
        "test.npy",
        "train.npy",
        "valid.npy",
    ]


def test_a_folder_of_only_broken_files_says_why_with_an_example_of_each(tmp_path: Path) -> None:
    reasons = write_broken_folder(tmp_path / "broken")
    with pytest.raises(CadenzaError, match="no usable piece") as err:
        prepare(MidiFolderSource(str(tmp_path / "broken")), PianoRollCodec(), tmp_path / "cache",
                workers=0)  # fmt: skip
    message = str(err.value)
    for reason, count in Counter(reasons.values()).items():
        assert f"{reason} {count}" in message
    assert "empty.mid: empty_file" in message  # a reason with no detail still reads as one
    assert ": ;" not in message and not message.endswith(": ")
