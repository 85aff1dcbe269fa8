"""The service's only files: uploads and job folders under one work_dir, each with its owner.

Names that reach the file system are ours (random hex ids) or checked against a strict pattern
and resolved inside the folder they belong to, so no request can name a path outside work_dir.
Each job and upload is a folder holding an `.owner` record: the key that made it (its name, and
its fingerprint, which is what owns it), and the pseudonym of the listener whose data it holds
(if any: the listener a recommendation was for, or whose token made it). Only that key or an
admin reads it back, and forgetting a listener deletes every folder with their pseudonym, made
by a token since revoked or not. The disk stays bounded twice over: the oldest folders beyond
keep_jobs / keep_uploads go as new ones arrive, and any older than keep_hours go at the next
sweep.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cadenza.atomic import write_atomically
from cadenza.serve.auth import Caller, FileLinks
from cadenza.serve.errors import NotFoundError, RequestError

log = logging.getLogger("cadenza")
ID = re.compile(r"[0-9a-f]{32}")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
OWNER = ".owner"  # never downloadable: FILE_NAME must start with a letter or digit
UPLOAD = "upload.mid"


class Store:
    def __init__(self, work_dir: Path, keep_jobs: int, keep_uploads: int,
                 keep_hours: float | None = None, links: FileLinks | None = None,
                 pseudonym_of: Callable[[str], str] | None = None) -> None:  # fmt: skip
        self.root = work_dir.resolve()
        self.jobs = self.root / "jobs"
        self.uploads = self.root / "uploads"
        self.tasks = self.root / "tasks"  # background jobs' records (serve/tasks.py)
        # Owner-only, as the pseudonym secret: jobs and uploads hold listeners' picks and music.
        for d in (self.jobs, self.uploads, self.tasks):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            d.chmod(0o700)  # a work_dir an earlier version made world-readable too
        self.keep_jobs, self.keep_uploads, self.keep_hours = keep_jobs, keep_uploads, keep_hours
        self.links = links
        self.pseudonym_of = pseudonym_of  # a listener token's folders are stamped as its listener's
        self._lock = threading.Lock()

    def url(self, job: str, path: Path | str | None) -> str | None:
        """A job file's download URL: signed (`FileLinks`), so that a browser's <audio> or a
        shared link fetches it without the key, until the link expires."""
        if path is None:
            return None
        name = Path(path).name
        return self.links.url(job, name) if self.links else f"/api/files/{job}/{name}"

    # --- jobs -------------------------------------------------------------------------------
    def new_job(self, caller: Caller, listener: str | None = None) -> tuple[str, Path]:
        """A fresh job folder owned by `caller`, holding data of `listener` (a pseudonym)."""
        return self._new_folder(self.jobs, self.keep_jobs, caller, listener)

    def _new_folder(self, under: Path, keep: int, caller: Caller,
                    listener: str | None) -> tuple[str, Path]:  # fmt: skip
        """A random id's folder under `under`, with its owner record; the oldest beyond
        `keep` go."""
        name = secrets.token_hex(16)
        path = under / name
        path.mkdir(mode=0o700)
        if listener is None and caller.listener is not None and self.pseudonym_of is not None:
            listener = self.pseudonym_of(caller.listener)  # what their token makes is theirs
        _write_owner(path, caller, listener)
        self._prune(under, keep, newest=path)
        return name, path

    def job_dir(self, job: str, caller: Caller | None) -> Path:
        """caller None: the request carried a valid signed link instead of a key."""
        if not isinstance(job, str) or not ID.fullmatch(job) or not (self.jobs / job).is_dir():
            raise NotFoundError(f"no job {job!r} (jobs are kept for the newest {self.keep_jobs}"
                                f"{self._hours()})")  # fmt: skip
        folder = self.jobs / job
        if caller is not None:
            _check_owner(folder, caller, f"job {job}")
        return folder

    def job_links(self, job: str, caller: Caller) -> dict[str, str]:
        """Every downloadable file of a job the caller made (or any, for an admin) -> a fresh
        signed link: an immediate job's links expire, and its answer cannot be read again."""
        folder = self.job_dir(job, caller)
        return {p.name: str(self.url(job, p)) for p in sorted(folder.iterdir())
                if p.is_file() and FILE_NAME.fullmatch(p.name)}  # fmt: skip

    def job_file(self, job: str, name: str, caller: Caller | None) -> Path:
        folder = self.job_dir(job, caller)
        if not FILE_NAME.fullmatch(name or ""):
            raise NotFoundError(f"no file {name!r} in job {job}")
        path = (folder / name).resolve()
        if path.parent != folder.resolve() or not path.is_file():
            raise NotFoundError(f"no file {name!r} in job {job}")
        return path

    def remove_job(self, job: str | None) -> None:
        """Delete a job's folder (a background job cancelled after it wrote its files)."""
        if isinstance(job, str) and ID.fullmatch(job):
            shutil.rmtree(self.jobs / job, ignore_errors=True)

    # --- background jobs' records --------------------------------------------------------------
    def new_task(self, caller: Caller, listener: str | None) -> tuple[str, Path]:
        return self._new_folder(self.tasks, self.keep_jobs, caller, listener)

    def task_dir(self, task: str, caller: Caller) -> Path:
        if not isinstance(task, str) or not ID.fullmatch(task) or not (self.tasks / task).is_dir():
            raise NotFoundError(f"no job {task!r} (kept for the newest {self.keep_jobs}"
                                f"{self._hours()})")  # fmt: skip
        _check_owner(self.tasks / task, caller, f"job {task}")
        return self.tasks / task

    def task_folders(self, caller: Caller) -> list[Path]:
        """The records `caller` may read (an admin: all)."""
        return [p for p in self.tasks.iterdir()
                if ID.fullmatch(p.name) and caller.owns(_read_owner(p))]  # fmt: skip

    # --- uploads ----------------------------------------------------------------------------
    def save_upload(self, data: bytes, caller: Caller) -> tuple[str, Path]:
        upload, folder = self._new_folder(self.uploads, self.keep_uploads, caller, None)
        (folder / UPLOAD).write_bytes(data)
        return upload, folder / UPLOAD

    def upload_path(self, upload: str, caller: Caller, field: str = "upload") -> Path:
        ok = isinstance(upload, str) and ID.fullmatch(upload) is not None
        path = self.uploads / upload / UPLOAD if ok else None
        if path is None or not path.is_file():
            raise NotFoundError(
                f"{field}: no upload {upload!r}; POST the MIDI file to /api/uploads first and "
                f"pass the id it returns (uploads are kept for the newest {self.keep_uploads}"
                f"{self._hours()})"
            )
        _check_owner(path.parent, caller, f"{field}: upload {upload}")
        return path

    # --- a listener's data, and expiry --------------------------------------------------------
    def remove_listener(self, pseudonym: str, tokens: set[str]) -> dict[str, int]:
        """Delete every job and upload holding `pseudonym`'s data, or made with one of their
        listener `tokens` (key names: records written before folders were stamped with their
        token's listener). -> how many of each went."""
        gone = {"jobs": 0, "uploads": 0}
        for kind, folder in (("jobs", self.jobs), ("uploads", self.uploads), ("jobs", self.tasks)):
            for entry in list(folder.iterdir()):
                owner = _read_owner(entry)
                if owner.get("listener") == pseudonym or owner.get("key") in tokens:
                    shutil.rmtree(entry, ignore_errors=True)
                    gone[kind] += 1
        return gone

    def expire(self, now: float | None = None) -> int:
        """Delete jobs and uploads older than keep_hours. -> how many went."""
        if not self.keep_hours:
            return 0
        cutoff = (now or time.time()) - self.keep_hours * 3600
        gone = 0
        for folder in (self.jobs, self.uploads, self.tasks):
            for entry in list(folder.iterdir()):
                mtime = _mtime(entry)
                if mtime is not None and mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
                    gone += 1
        return gone

    def _hours(self) -> str:
        return f", for at most {self.keep_hours:g} h" if self.keep_hours else ""

    # --- disk bound -------------------------------------------------------------------------
    def _prune(self, folder: Path, keep: int, newest: Path) -> None:
        # Processes of `processes: N` prune the same folder: an entry may vanish under us.
        with self._lock:
            entries = sorted(((m, p) for p in folder.iterdir() if (m := _mtime(p)) is not None),
                             key=lambda e: e[0], reverse=True)  # fmt: skip
            for _, old in entries[keep:]:
                if old == newest:
                    continue
                if old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)

    def writable(self) -> bool:
        """Whether a job could be written now (readiness)."""
        probe = self.jobs / f".ready.{secrets.token_hex(4)}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
            return True
        except OSError:
            return False

    def bytes_used(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())


def _write_owner(folder: Path, caller: Caller, listener: str | None) -> None:
    owner = {"key": caller.name, "key_id": caller.key_id, "listener": listener}
    write_atomically(folder / OWNER, json.dumps(owner))


def _read_owner(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / OWNER).read_text())
    except (OSError, ValueError):
        return {}  # an entry from before owners, or one being deleted: nobody's but admin's


def _check_owner(folder: Path, caller: Caller, what: str) -> None:
    if not caller.owns(_read_owner(folder)):
        raise RequestError(403, f"{what} was made with another key; only that key or an admin "
                                "key reads it")  # fmt: skip


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


class Sweeper:
    """Deletes jobs and uploads older than keep_hours: at start-up, then at most once a minute
    as requests arrive, and from a background thread for a service nobody calls."""

    def __init__(self, store: Store, keep_hours: float | None,
                 metrics: Any = None) -> None:  # fmt: skip
        self.store, self.keep_hours, self.metrics = store, keep_hours, metrics
        self._last = 0.0
        self.maybe()
        if keep_hours:
            threading.Thread(target=self._loop, daemon=True, name="cadenza-sweeper").start()

    def maybe(self) -> None:
        now = time.monotonic()
        if self.keep_hours and now - self._last >= 60.0:
            self._last = now
            gone = self.store.expire()
            if gone and self.metrics:
                self.metrics.expired.inc(gone)
            if gone:
                log.info("expired %d job/upload folder(s) older than keep_hours=%g", gone,
                         self.keep_hours)  # fmt: skip

    def _loop(self) -> None:
        while True:
            time.sleep(min(300.0, self.keep_hours * 360))
            self.maybe()
