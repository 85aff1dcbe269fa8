"""The service's only files: uploads and job folders under one work_dir.

Names that reach the file system are ours (random hex ids) or checked against a strict pattern
and resolved inside the folder they belong to, so no request can name a path outside work_dir.
Old jobs and uploads are deleted as new ones arrive: the disk used stays bounded.
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
from pathlib import Path

from cadenza.serve.errors import NotFoundError

ID = re.compile(r"[0-9a-f]{32}")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class Store:
    def __init__(self, work_dir: Path, keep_jobs: int, keep_uploads: int) -> None:
        self.root = work_dir.resolve()
        self.jobs = self.root / "jobs"
        self.uploads = self.root / "uploads"
        for d in (self.jobs, self.uploads):
            d.mkdir(parents=True, exist_ok=True)
        self.keep_jobs, self.keep_uploads = keep_jobs, keep_uploads
        self._lock = threading.Lock()

    # --- jobs -------------------------------------------------------------------------------
    def new_job(self) -> tuple[str, Path]:
        job = secrets.token_hex(16)
        path = self.jobs / job
        path.mkdir()
        self._prune(self.jobs, self.keep_jobs, newest=path)
        return job, path

    def job_dir(self, job: str) -> Path:
        if not isinstance(job, str) or not ID.fullmatch(job) or not (self.jobs / job).is_dir():
            raise NotFoundError(f"no job {job!r} (jobs are kept for the newest {self.keep_jobs})")
        return self.jobs / job

    def job_file(self, job: str, name: str) -> Path:
        folder = self.job_dir(job)
        if not FILE_NAME.fullmatch(name or ""):
            raise NotFoundError(f"no file {name!r} in job {job}")
        path = (folder / name).resolve()
        if path.parent != folder.resolve() or not path.is_file():
            raise NotFoundError(f"no file {name!r} in job {job}")
        return path

    # --- uploads ----------------------------------------------------------------------------
    def save_upload(self, data: bytes) -> tuple[str, Path]:
        upload = secrets.token_hex(16)
        path = self.uploads / f"{upload}.mid"
        path.write_bytes(data)
        self._prune(self.uploads, self.keep_uploads, newest=path)
        return upload, path

    def upload_path(self, upload: str, field: str = "upload") -> Path:
        path = self.uploads / f"{upload}.mid"
        if not isinstance(upload, str) or not ID.fullmatch(upload) or not path.is_file():
            raise NotFoundError(
                f"{field}: no upload {upload!r}; POST the MIDI file to /api/uploads first and "
                "pass the id it returns"
            )
        return path

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

    def bytes_used(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None
