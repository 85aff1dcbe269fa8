"""cadenza-eval mode=music: two folders of MIDI in, one table and one JSON report out."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cadenza.errors import ConfigError
from cadenza.metrics.music_eval import evaluate_music, format_table, write_report
from tests.fixtures.midi_factory import write_chords, write_scale, write_two_tracks
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("music")
    reference, generated = root / "reference", root / "generated"
    for i, transpose in enumerate((0, 2, 5)):
        write_chords(reference / f"chords_{i}.mid", transpose)
    for i, transpose in enumerate((0, 3)):
        write_scale(generated / f"scale_{i}.mid", transpose)
    write_two_tracks(generated / "sub" / "two.MID")
    (generated / "broken.mid").write_bytes(b"not a midi file at all")
    return generated, reference


def test_evaluate_music_report(folders: tuple[Path, Path], tmp_path: Path) -> None:
    generated, reference = folders
    report = evaluate_music(generated, reference, steps_per_beat=12)
    assert set(report) >= {"reference", "generated", "overlap", "kl", "skipped"}
    assert report["n_pieces"] == {"reference": 3, "generated": 3}
    assert [(s["set"], Path(s["path"]).name) for s in report["skipped"]] == [
        ("generated", "broken.mid")
    ]
    ref = report["reference"]
    # I IV | V I, two beats per chord: {C E G F A} and {G B D C E} -> 5 classes in each bar
    assert ref["used_pitch_classes"] == 5.0
    assert ref["scale_consistency"] == 1.0  # every chord file is diatonic in its key
    assert ref["polyphony"] == 3.0 and ref["empty_bar_rate"] == 0.0
    # the scales: one note per beat, 8 beats = 2 bars -> 4 notes per bar (the two-track file
    # adds 4 bass notes: 12 / 2 = 6), mean (4 + 4 + 6) / 3
    assert report["generated"]["note_density"] == pytest.approx(14 / 3)
    assert report["generated"]["polyphony"] < ref["polyphony"]
    assert report["method"]["polyphony"] == "histogram"  # 3.0 in every reference piece
    assert report["overlap"]["polyphony"] < 0.5
    assert set(report["overlap"]) == set(report["kl"])
    table = format_table(report)
    assert table.splitlines()[0].split() == ["metric", "reference", "generated", "overlap", "KL"]
    # a metric undefined for both sets is NaN in Python, null in the JSON
    assert math.isnan(ref["drum_pattern_rate"])
    saved = json.loads(write_report(report, tmp_path / "r" / "music.json").read_text())
    assert saved["reference"]["drum_pattern_rate"] is None
    assert saved["reference"]["used_pitch_classes"] == 5.0


@pytest.mark.parametrize(
    ("generated", "message"),
    [
        (None, "generated must be set"),
        ("nowhere", "generated=nowhere"),
        ([], "a list of MIDI file paths, got an empty list"),
        ([b"MThd"], r"a list of MIDI file paths, got \['bytes'\]"),
        (3, "got int"),
    ],
    ids=["unset", "missing-folder", "empty-list", "list-of-bytes", "a-number"],
)
def test_evaluate_music_names_the_bad_key(
    folders: tuple[Path, Path], generated: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        evaluate_music(generated, folders[1])


def test_a_list_of_files_is_a_set_as_a_folder_is(folders: tuple[Path, Path]) -> None:
    """From Python, a set is also a list of files (as sorted(folder.glob("*.mid")) gives);
    a broken or missing one is skipped and listed, as in a folder."""
    generated, reference = folders
    files = [*sorted(generated.rglob("*.mid")), *sorted(generated.rglob("*.MID"))]
    listed = evaluate_music([*files, generated / "missing.mid"], [str(p) for p in
                            sorted(reference.glob("*.mid"))])  # fmt: skip
    whole = evaluate_music(generated, reference)
    assert listed["n_pieces"] == whole["n_pieces"] == {"reference": 3, "generated": 3}
    assert listed["generated"] == pytest.approx(whole["generated"], nan_ok=True)
    assert {Path(s["path"]).name for s in listed["skipped"]} == {"broken.mid", "missing.mid"}


def test_a_folder_of_broken_files_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "junk" / "a.mid").parent.mkdir()
    (tmp_path / "junk" / "a.mid").write_bytes(b"")
    write_chords(tmp_path / "ref" / "c.mid")
    with pytest.raises(ConfigError, match=r"generated=.*junk: no readable MIDI files \(empty_file"):
        evaluate_music(tmp_path / "junk", tmp_path / "ref")


def test_cli_writes_table_and_json(folders: tuple[Path, Path], tmp_path: Path) -> None:
    generated, reference = folders
    out = tmp_path / "eval" / "music.json"
    proc = run_cli(
        "cadenza-eval",
        "mode=music",
        f"generated={generated}",
        f"reference={reference}",
        f"out={out}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "used_pitch_classes" in proc.stdout and "broken.mid" in proc.stdout
    # The two-track piece makes a track1 the one-track reference lacks: said, not only nan.
    assert ("note: tracks are compared by position, and the sets differ: generated track0, "
            "track1; reference track0") in proc.stdout  # fmt: skip
    # Each skipped file is listed once, under its set (not again by the reader's warning).
    listed = [line for line in proc.stdout.splitlines() if "broken.mid" in line]
    assert len(listed) == 1 and listed[0].startswith("skipped (generated): ")
    assert listed[0].count("broken.mid") == 1 and "broken.mid" not in proc.stderr
    report = json.loads(out.read_text())
    assert set(report) >= {"reference", "generated", "overlap", "kl", "skipped"}
    assert report["reference"]["used_pitch_classes"] == 5.0
    assert 0.0 <= report["overlap"]["note_density"] <= 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mode=music", "reference=REF"], "generated"),
        (["mode=music", "generated=REF", "reference=/no/such/dir"], "reference=/no/such/dir"),
        (["mode=music", "generated=REF", "reference=REF", "steps_per_beat=0"], "steps_per_beat"),
        (["mode=pitch"], "mode must be"),
        ([], "ckpt_path must be set"),
        (["ckpt_path=model.ckpt"], "model.ckpt: checkpoint not found"),
        (["mode=music", "generated=REF", "reference=REF", "out=REF"], "is a folder: give the"),
    ],
    ids=[
        "no-generated",
        "missing-reference",
        "zero-steps",
        "bad-mode",
        "nll-without-ckpt",
        "nll-missing-ckpt",
        "out-is-a-folder",
    ],
)
def test_cli_errors_are_one_clear_line(
    folders: tuple[Path, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    args = [a.replace("REF", str(folders[1])) for a in args]
    proc = run_cli("cadenza-eval", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cadenza: error:" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr
