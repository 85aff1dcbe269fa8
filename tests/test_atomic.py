"""write_atomically: every file a reader may open while it is written (checkpoints, MIDI, WAV,
PNG, manifests, job records, key files) goes through it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cadenza.atomic import create_once, remove_stale_temps, write_atomically


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_bytes_text_and_a_writer_that_takes_a_path(tmp_path: Path) -> None:
    assert write_atomically(tmp_path / "a" / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert write_atomically(tmp_path / "c.txt", "Bachchoräle").read_text("utf-8") == "Bachchoräle"
    out = write_atomically(tmp_path / "d.txt", lambda tmp: tmp.write_text("by path"))
    assert out == tmp_path / "d.txt" and out.read_text() == "by path"
    write_atomically(tmp_path / "d.txt", "again", durable=True)  # replaces; fsync'd first
    assert out.read_text() == "again"
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "a") == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = write_atomically(tmp_path / "report.json", '{"old": true}')

    def killed_midway(tmp: Path) -> None:
        tmp.write_text('{"new": tr')
        raise KeyboardInterrupt  # as if the process were stopped during the write

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, killed_midway)
    assert path.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_modes_private_is_owner_only_and_the_rest_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        plain = write_atomically(tmp_path / "piece.mid", b"MThd")
        secret = write_atomically(tmp_path / "keys.yaml", "keys: []", private=True)
        with open(tmp_path / "by_open.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(plain.stat().st_mode) == stat.S_IMODE(
        (tmp_path / "by_open.txt").stat().st_mode
    )
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_parents_false_in_a_deleted_folder_raises_and_does_not_bring_it_back(
    tmp_path: Path,
) -> None:
    gone = tmp_path / "job"  # a job folder deleted while its worker still saves its record
    with pytest.raises(FileNotFoundError):
        write_atomically(gone / "task.json", "{}", parents=False)
    assert not gone.exists()


def test_threads_writing_one_path_never_collide_and_a_reader_sees_only_whole_files(
    tmp_path: Path,
) -> None:
    """A job's record is saved by its worker while a request thread cancels it: with one temp
    name per process, one thread's rename took the other's file away (FileNotFoundError)."""
    path = tmp_path / "task.json"
    payloads = [bytes([65 + i]) * 200_000 for i in range(6)]
    write_atomically(path, payloads[0])
    errors: list[BaseException] = []
    seen: set[bytes] = set()
    done = threading.Event()

    def writer(payload: bytes) -> None:
        try:
            for _ in range(30):
                write_atomically(path, payload)
        except BaseException as e:  # noqa: BLE001 - collected and asserted on below
            errors.append(e)

    def reader() -> None:
        while not done.is_set():
            seen.add(path.read_bytes())

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    assert errors == []
    assert seen and seen <= set(payloads)  # never an empty, short or mixed file
    assert path.read_bytes() in payloads and _leftovers(tmp_path) == []


def test_create_once_writes_whole_or_leaves_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "work" / ".secret"
    assert create_once(path, "first", private=True) is True
    assert create_once(path, "second", private=True) is False
    assert path.read_text() == "first" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _leftovers(path.parent) == []


def test_create_once_from_many_threads_gives_one_content_read_by_all(tmp_path: Path) -> None:
    path = tmp_path / ".secret"
    won: list[bool] = []
    threads = [
        threading.Thread(target=lambda i=i: won.append(create_once(path, f"{i:064d}")))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won.count(True) == 1 and len(path.read_text()) == 64


def test_stale_temps_of_killed_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(gone.stdout)  # a process that has exited
    stale = tmp_path / f".epoch003.ckpt.{dead}.140.7.tmp"
    live = tmp_path / f".last.ckpt.{os.getpid()}.140.8.tmp"  # this process may still write it
    other = tmp_path / ".notes.tmp"  # not a name write_atomically gives
    for f in (stale, live, other):
        f.write_bytes(b"x")
    (tmp_path / "below").mkdir()
    deeper = tmp_path / "below" / f".a.ckpt.{dead}.1.1.tmp"
    deeper.write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists() and deeper.exists()
