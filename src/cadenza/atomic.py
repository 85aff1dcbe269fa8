"""Files that are never half-written: one way to write any file a reader may open at any time.

A file is written whole under a temporary name in its own folder, then renamed onto its path.
`os.replace` is atomic on POSIX within one filesystem, so a reader (another process, a resumed
run, a browser downloading a job's MIDI) sees the old file or the new one, never a truncated
one. A killed writer leaves at most a hidden `.<name>.<pid>....tmp` beside it, a name no scan
for `*.mid`, `*.ckpt` or `*.json` matches.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

# Temp names are unique per process, thread and call: two threads writing one path (a job's
# record saved by its worker while a request cancels it) never write into the same temp file.
_calls = itertools.count()
_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.\d+\.\d+\.tmp")


def write_atomically(
    path: str | os.PathLike[str],
    content: bytes | str | Callable[[Path], object],
    *,
    private: bool = False,
    durable: bool = False,
    parents: bool = True,
) -> Path:
    """Write `content` (bytes, text as UTF-8, or `write(tmp_path)` for writers that take a path)
    to `path`, creating its parents. The temp file is removed if anything fails.

    private: owner-only (0600) from the first byte, for secrets and key digests; otherwise the
        umask's usual mode, as `open(path, "w")` would give.
    durable: fsync before the rename, so a power cut cannot leave the new name on empty data
        (checkpoints); everything else trades that for speed.
    parents: False for a record inside a folder that someone else may delete (a job's): a
        FileNotFoundError then says it has gone, where creating it again would bring it back.
    """
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path, 0o600 if private else 0o666)
    try:
        if isinstance(content, bytes | str):
            tmp.write_bytes(_as_bytes(content))
        else:
            content(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def create_once(
    path: str | os.PathLike[str], content: bytes | str, *, private: bool = False
) -> bool:
    """Write `path` whole unless it exists (False then, and it is left as it is). Of several
    processes starting at once one writes it and all read the same; a writer killed midway
    leaves no empty file behind that would later be read as the content (an empty secret)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path, 0o600 if private else 0o666)
    try:
        tmp.write_bytes(_as_bytes(content))
        os.link(tmp, path)  # fails if `path` exists: creation and content in one step
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _as_bytes(content: bytes | str) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def _create_temp(path: Path, mode: int) -> Path:
    """An empty, new sibling of `path` with `mode` (less the umask); O_EXCL so a leftover from a
    killed process that had the same pid is never reused."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}."
                             f"{next(_calls)}.tmp")  # fmt: skip
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
            return tmp
        except FileExistsError:
            continue


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp files that writers killed mid-write left in `folder` (not below it): those
    whose process is no longer running on this machine. A killed checkpoint write leaves a file
    as large as the checkpoint, which nothing else would ever remove. Returns what was deleted."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        match = _TEMP.fullmatch(tmp.name)
        if match is None or _running(int(match["pid"])):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
