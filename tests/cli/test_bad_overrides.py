"""A wrong override fails at start-up with a message that names it, never a deep traceback
(in-process, as the CLI runs it; the exit status of a real process: test_entry_points.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import cli


@pytest.mark.parametrize(
    ("args", "code", "messages"),
    [
        (["data=nonexistent"], 1, ["data/nonexistent", "Available options"]),
        (["experiment=smoke", "model.hidden_size=abc"], 2, ["model.hidden_size", "abc"]),
        (["experiment=smoke", "model.dropout=2"], 2, ["model.dropout"]),
        (["experiment=smoke", "data.batch_size=0"], 2, ["data.batch_size"]),
        (["data=midi_folder"], 2, ["data.root must be set"]),
        (["data=midi_folder", "data.root=/no/such/folder"], 2, ["/no/such/folder"]),
        (["data=boulanger", "data.source.name=bogus"], 2, ["bogus", "jsb", "nottingham"]),
    ],
    ids=[
        "unknown-dataset",
        "hidden-size-abc",
        "dropout-2",
        "batch-size-0",
        "no-root",
        "missing-root",
        "unknown-boulanger",
    ],
)
def test_bad_override(tmp_path: Path, args: list[str], code: int, messages: list[str]) -> None:
    proc = cli("cadenza-train", *args, "logger=none", cwd=tmp_path)
    assert proc.returncode == code, proc.stderr[-2000:]
    for m in messages:
        assert m in proc.stderr
    assert "Traceback" not in proc.stderr
