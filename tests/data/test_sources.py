"""Sources: what they list, what they load, and the errors a user sees for a wrong path/name."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from cadenza.data.sources import (
    BoulangerSource,
    CoconetSource,
    MidiFolderSource,
    Music21Source,
    Pop909Source,
)
from cadenza.errors import BadMidiError, CadenzaError
from cadenza.io.midi import tracks_of
from cadenza.representations import MultiTrackPianoRollCodec
from tests.fixtures.data import data_root
from tests.fixtures.midi_factory import SCALE, write_broken_folder, write_chords, write_scale


def test_folder_lists_midi_recursively_in_any_case(tmp_path: Path) -> None:
    write_scale(tmp_path / "a scale.mid")
    write_chords(tmp_path / "Sub Folder" / "Chords.MID")
    write_scale(tmp_path / "Sub Folder" / "deeper" / "x.midi")
    write_scale(tmp_path / "y.MIDI")
    (tmp_path / "notes.txt").write_text("not listed")
    (tmp_path / "fake.mid.bak").write_text("not listed")

    source = MidiFolderSource(str(tmp_path))
    items = source.items()
    assert [i.key for i in items] == [
        "Sub Folder/Chords.MID",
        "Sub Folder/deeper/x.midi",
        "a scale.mid",
        "y.MIDI",
    ]
    assert all(i.split is None for i in items)
    pm = source.load(items[2])
    np.testing.assert_array_equal(tracks_of(pm)[0].notes[:, 2], SCALE)
    assert source.to_dict()["files"] == 4
    assert [i.key for i in MidiFolderSource(str(tmp_path), limit=2).items()] == [
        "Sub Folder/Chords.MID",
        "Sub Folder/deeper/x.midi",
    ]
    # Workers receive the source by pickle.
    assert pickle.loads(pickle.dumps(source)).load(items[2]) is not None


def test_folder_fingerprint_follows_file_changes(tmp_path: Path) -> None:
    write_scale(tmp_path / "a.mid")
    before = MidiFolderSource(str(tmp_path)).to_dict()
    assert before == MidiFolderSource(str(tmp_path)).to_dict()
    time.sleep(0.01)
    write_chords(tmp_path / "a.mid")
    after = MidiFolderSource(str(tmp_path)).to_dict()
    assert after["fingerprint"] != before["fingerprint"]
    write_scale(tmp_path / "b.mid")
    assert MidiFolderSource(str(tmp_path)).to_dict()["files"] == 2


def test_folder_load_raises_bad_midi_with_reason(tmp_path: Path) -> None:
    expected = write_broken_folder(tmp_path)
    source = MidiFolderSource(str(tmp_path))
    reasons = {}
    for item in source.items():
        try:
            source.load(item)
        except BadMidiError as e:
            reasons[item.key] = e.reason
    # drums_only.mid loads; only the codec rejects it.
    assert reasons == {k: v for k, v in expected.items() if k != "drums_only.mid"}


def test_missing_or_empty_folder_says_what_to_set(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(CadenzaError, match="data.root=") as err:
        MidiFolderSource(str(missing)).items()
    assert str(missing) in str(err.value)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "song.wav").write_bytes(b"RIFF")
    with pytest.raises(CadenzaError, match="no .mid/.midi files") as err:
        MidiFolderSource(str(tmp_path / "empty")).items()
    assert str(tmp_path / "empty") in str(err.value)


def test_boulanger_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(CadenzaError) as err:
        BoulangerSource("bach")
    for name in ("jsb", "nottingham", "musedata", "piano_midi"):
        assert name in str(err.value)


def test_boulanger_missing_file_says_set_cadenza_data(tmp_path: Path) -> None:
    with pytest.raises(CadenzaError, match="CADENZA_DATA") as err:
        BoulangerSource("jsb", root=str(tmp_path)).items()
    assert "JSB_Chorales.json.gz" in str(err.value)


@pytest.mark.parametrize(
    ("name", "steps_per_beat", "counts"),
    [
        ("jsb", 1, {"train": 229, "valid": 76, "test": 77}),
        ("nottingham", 2, {"train": 694, "valid": 173, "test": 170}),
        ("musedata", 2, {"train": 524, "valid": 135, "test": 124}),
        ("piano_midi", 2, {"train": 87, "valid": 12, "test": 25}),
    ],
)
def test_boulanger_lists_canonical_splits(name: str, steps_per_beat: int, counts: dict) -> None:
    source = BoulangerSource(name, root=str(data_root()))
    assert source.steps_per_beat == steps_per_beat
    items = source.items()
    got = {s: sum(1 for i in items if i.split == s) for s in counts}
    assert got == counts
    assert items[0].key == "train/0"


def test_boulanger_piece_becomes_held_notes_at_120_bpm() -> None:
    source = BoulangerSource("jsb", root=str(data_root()))
    item = source.items()[0]
    notes = tracks_of(source.load(item))[0].notes  # [N, 4] start_s, end_s, pitch, velocity
    # Quarter-note steps at 120 bpm: every note starts and ends on a multiple of 0.5 s.
    np.testing.assert_allclose(notes[:, :2] % 0.5, 0, atol=1e-6)
    first_step = sorted(int(p) for p in notes[notes[:, 0] == 0][:, 2])
    assert first_step == item.payload[0]
    # A pitch held over consecutive steps is one note, so there are fewer notes than step-pitches.
    assert len(notes) < sum(len(step) for step in item.payload)


def test_music21_source_lists_and_loads_bach() -> None:
    source = Music21Source("bach", limit=2)
    items = source.items()
    assert len(items) == 2 and all(i.key.startswith("bach/") for i in items)
    pm = source.load(items[0])
    assert sum(len(t.notes) for t in tracks_of(pm)) > 20
    assert source.to_dict()["files"] == 2


# --- Coconet's voice-separated JSB chorales --------------------------------------------------
def test_coconet_lists_the_canonical_split_as_four_named_voices() -> None:
    source = CoconetSource(root=str(data_root()))
    items = source.items()
    assert {s: sum(1 for i in items if i.split == s) for s in ("train", "valid", "test")} == {
        "train": 229,
        "valid": 76,
        "test": 77,
    }
    assert items[0].key == "train/0" and items[-1].key == "test/76"
    tracks = tracks_of(source.load(items[0]))
    assert [(t.name, t.program, t.is_drum) for t in tracks] == [
        (name, 52, False) for name in ("Soprano", "Alto", "Tenor", "Bass")
    ]
    assert source.to_dict()["bytes"] == 102808
    assert pickle.loads(pickle.dumps(source)).load(items[0]) is not None  # workers get it


@pytest.mark.parametrize("key", ["train/0", "valid/5", "test/76"])
def test_coconet_roll_has_one_note_per_voice_and_matches_the_arrays(key: str) -> None:
    source = CoconetSource(root=str(data_root()))
    item = next(i for i in source.items() if i.key == key)
    codec = MultiTrackPianoRollCodec(
        tracks=[f"index:{k}" for k in range(4)], steps_per_beat=4, low_pitch=36, high_pitch=83
    )
    roll = codec.encode(source.load(item)).numpy()  # [T, 4, 48]
    pitches = item.payload  # [T', 4] float32, NaN = silent
    assert roll.shape[1:] == (4, 48) and roll.sum(axis=2).max() <= 1
    # The roll ends with the last sounding step; trailing silence of every voice is not kept.
    last = int(np.flatnonzero(~np.isnan(pitches).all(axis=1))[-1]) + 1
    assert len(roll) == last
    want = np.full((last, 4), -1)
    sounding = ~np.isnan(pitches[:last])
    want[sounding] = pitches[:last][sounding]
    got = np.where(roll.any(axis=2), roll.argmax(axis=2) + 36, -1)
    np.testing.assert_array_equal(got, want)
    # Equal consecutive pitches are one held note: fewer notes than sounding steps.
    notes = codec.notes(roll)
    assert sum(map(len, notes)) < int(sounding.sum())
    for voice in notes:
        assert (voice[1:, 0] >= voice[:-1, 1]).all()  # one voice never overlaps itself


def test_coconet_missing_or_altered_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CadenzaError, match="CADENZA_DATA") as err:
        CoconetSource(root=str(tmp_path)).items()
    assert "Jsb16thSeparated.npz" in str(err.value) and "data.root" in str(err.value)
    fake = tmp_path / "jsb-chorales" / "Jsb16thSeparated.npz"
    fake.parent.mkdir()
    np.savez(fake, train=np.zeros(3))
    # Never unpickled: the digest is checked first.
    with pytest.raises(CadenzaError, match="sha256"):
        CoconetSource(root=str(tmp_path)).items()


def test_pop909_songs_start_on_a_bar_line_and_their_sixteenths_on_the_grid() -> None:
    """POP909's bars start a fraction of a beat into each file; aligned, the first annotated
    downbeat is a bar line and its onsets sit on sixteenths (a few are triplets or 32nds)."""
    from cadenza.io.midi import load_midi, time_to_beats

    root = data_root() / "pop909" / "midi"
    source = Pop909Source(root, limit=4)
    items = source.items()
    assert [i.key for i in items] == ["001.mid", "002.mid", "003.mid", "004.mid"]
    assert all(i.payload[1] is not None for i in items)
    assert "0 songs without any" in source.describe()
    assert pickle.loads(pickle.dumps(source)).items() == items  # workers re-read the archive
    raw_share = []
    for item in items:
        raw, aligned = load_midi(item.payload[0]), source.load(item)
        steps = [
            time_to_beats(pm, np.concatenate([t.notes for t in tracks_of(pm)])[:, 0]) * 12
            for pm in (raw, aligned)
        ]
        on_sixteenths = [np.mean(np.abs(s / 3 - np.round(s / 3)) < 1e-3) for s in steps]
        assert on_sixteenths[1] > 0.85, (item.key, on_sixteenths)
        raw_share.append(on_sixteenths[0])
        shift = steps[1].min() / 12 - steps[0].min() / 12  # beats every note moved by
        downbeat = time_to_beats(raw, [source.downbeats()[Path(item.key).stem]])[0] + shift
        off_bar_line = abs((downbeat + 2) % 4 - 2)
        assert off_bar_line < 2 / raw.resolution, item.key
        assert [t.name for t in tracks_of(aligned)] == ["MELODY", "BRIDGE", "PIANO"]
    assert min(raw_share) < 0.1  # read from tick 0, some songs' grids are a fraction off
    assert source.to_dict()["type"] == "pop909"
    assert (
        source.to_dict()["fingerprint"] == MidiFolderSource(root, limit=4).to_dict()["fingerprint"]
    )


def test_pop909_missing_annotations_say_what_to_set(tmp_path: Path) -> None:
    write_scale(tmp_path / "midi" / "001.mid")
    source = Pop909Source(tmp_path / "midi")
    with pytest.raises(CadenzaError, match="data.source.annotations"):
        source.items()
    unaligned = Pop909Source(tmp_path / "midi", align=False)  # the way out the error names
    (item,) = unaligned.items()
    assert item.payload[1] is None and "unaligned" in unaligned.describe()
    assert tracks_of(unaligned.load(item))[0].notes[0, 0] == 0.0
