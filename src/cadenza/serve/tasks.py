"""Long work in the background: submit (202 and an ID), poll its status and progress, read its
result, cancel it.

A background job runs the same function as the endpoint that answers at once (`serve/jobs.py`),
checked the same way before it is queued, so a bad request is still a 4xx at submission. It runs
on its own thread pool and takes a model worker slot like any request (waiting for one instead
of answering 503), so background and immediate work share the same cap. It does not belong to a
connection: a client that disconnects loses nothing, and polls again later.

Its record, `work_dir/tasks/<id>/task.json`, is written at every change of status (queued,
running, done, failed, cancelled), with the result when it is done. After a restart the finished
ones are read back; one that was queued or running then is marked failed, saying to submit it
again. Records are owned (`.owner`, as jobs are), expire with keep_hours, and go with their
listener. A record names its listener by pseudonym (read back, their own token sees their ID
again), and keeps its file links unsigned: reading it signs them afresh. Progress is the
fraction of the current sampling loop (`cadenza.progress`); cancelling a running job stops it at
its next step and deletes what it wrote. A cancel that arrives after the sampling, while the
pieces are written or rendered, is honoured when the work returns: the job ends cancelled and
its folder is deleted. Whether it ends done or cancelled is decided under the lock the cancel
takes, so a cancel answered while the job runs is never lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadenza.atomic import write_atomically
from cadenza.errors import BadFileError, CadenzaError
from cadenza.progress import JobCancelledError, Progress, tracking
from cadenza.serve.auth import Caller
from cadenza.serve.errors import NotFoundError, RequestError
from cadenza.serve.store import ID, Store

log = logging.getLogger("cadenza")
FINISHED = ("done", "failed", "cancelled")
# A file's link, signed or not, under the service's root_path or not.
FILE_LINK = re.compile(r"(/[^?]*)?/api/files/(?P<job>[0-9a-f]{32})/(?P<name>[^/?]+)(\?.*)?")


@dataclass
class Task:
    id: str
    kind: str
    status: str = "queued"
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    progress: Progress = field(default_factory=Progress, repr=False)
    owner: str | None = field(default=None, repr=False)  # the key's, for its share of the queue

    def view(self, prefix: str = "") -> dict[str, Any]:
        """What GET /api/jobs/{id} answers (the `TaskStatus` schema); `prefix`: the service's
        root_path, which its `url` is followed under."""
        done = 1.0 if self.status == "done" else round(self.progress.fraction, 3)
        return {"id": self.id, "kind": self.kind, "status": self.status, "progress": done,
                "submitted": self.submitted, "started": self.started,
                "finished": self.finished, "result": self.result, "error": self.error,
                "url": f"{prefix}/api/jobs/{self.id}"}  # fmt: skip


class Tasks:
    def __init__(self, store: Store, workers: Any, max_queued: int, metrics: Any = None,
                 pseudonym_of: Callable[[str], str] = lambda listener: listener,
                 max_queued_per_key: int | None = None) -> None:  # fmt: skip
        self.store, self.workers, self.metrics = store, workers, metrics
        self.max_queued = max_queued
        self.pseudonym_of = pseudonym_of
        self.max_queued_per_key = max_queued_per_key or max_queued
        self.pool = ThreadPoolExecutor(max_workers=workers.n, thread_name_prefix="cadenza-job")
        self._live: dict[str, Task] = {}
        self._lock = threading.Lock()
        self._recover()

    # --- submit, read, cancel ---------------------------------------------------------------
    def submit(self, kind: str, caller: Caller, listener: str | None,
               work: Callable[[], Any]) -> Task:  # fmt: skip
        """Queue `work` (it returns a pydantic model: the endpoint's answer) as `caller`'s."""
        owner = caller.key_id or caller.name
        with self._lock:
            waiting = sum(t.status == "queued" for t in self._live.values())
            if waiting >= self.max_queued:
                raise RequestError(503, f"busy: {waiting} jobs are queued (max_queued_jobs="
                                        f"{self.max_queued}); retry later")  # fmt: skip
            # One key cannot fill the queue for everyone else.
            own = sum(t.status == "queued" and t.owner == owner for t in self._live.values())
            if own >= self.max_queued_per_key:
                raise RequestError(503, f"busy: this key ({caller.name}) has {own} jobs queued "
                                        f"(max_queued_jobs_per_key={self.max_queued_per_key}); "
                                        "retry when one has started")  # fmt: skip
            task_id, _ = self.store.new_task(caller, listener)
            task = Task(task_id, kind, owner=owner)
            self._live[task_id] = task
        self._save(task)
        self.pool.submit(self._run, task, work)
        return task

    def get(self, task_id: str, caller: Caller) -> Task:
        folder = self.store.task_dir(task_id, caller)  # 404 / 403
        with self._lock:
            live = self._live.get(task_id)
        if live is not None:
            return live
        task = _load(folder)
        task.result = self._relinked(self._named(task.result, caller))
        return task

    def _named(self, result: dict[str, Any] | None, caller: Caller) -> dict[str, Any] | None:
        """A recommendation's record names its listener by pseudonym; their own token reads
        their ID back (an admin reads the pseudonym, as the logs name them)."""
        listener = (result or {}).get("listener")
        if not isinstance(listener, dict) or listener.get("user_pseudonym") is None:
            return result
        if caller.listener is not None and (
            self.pseudonym_of(caller.listener) == listener["user_pseudonym"]
        ):
            listener = {k: v for k, v in listener.items() if k != "user_pseudonym"}
            listener["user"] = caller.listener
        return {**result, "listener": listener}

    def _for_disk(self, result: dict[str, Any] | None) -> dict[str, Any] | None:
        """A result as its record keeps it: links without their signatures (a link opens its
        file to whoever reads it; `_relinked` signs them again), the listener by pseudonym."""
        out = _map_links(result, lambda job, name: f"/api/files/{job}/{name}")
        listener = (out or {}).get("listener")
        if isinstance(listener, dict) and listener.get("user") is not None:
            pseudonym = self.pseudonym_of(str(listener["user"]))
            out["listener"] = {**listener, "user": None, "user_pseudonym": pseudonym}
        return out

    def _relinked(self, value: Any) -> Any:
        """A finished job's answer with its file links signed afresh: the record keeps the links
        signed when it finished, which expire (link_minutes); reading it again gives new ones,
        as an expired link's 401 tells its holder."""
        return _map_links(value, self.store.url)

    def cancel(self, task_id: str, caller: Caller) -> Task:
        task = self.get(task_id, caller)
        with self._lock:  # `_finish` decides done or cancelled under the same lock
            if task.status in FINISHED:
                return task
            task.progress.cancel()
        if task.status == "queued":  # it will see the flag as it starts, and not start
            self._finish(task, "cancelled")
        return task

    def mine(self, caller: Caller) -> list[Task]:
        out = []
        for folder in self.store.task_folders(caller):
            try:
                out.append(self.get(folder.name, caller))
            except (NotFoundError, OSError, ValueError):
                continue  # deleted or expired between the listing and the read
        return sorted(out, key=lambda t: -t.submitted)

    def depth(self) -> int:
        with self._lock:
            return sum(t.status == "queued" for t in self._live.values())

    # --- running ----------------------------------------------------------------------------
    def _run(self, task: Task, work: Callable[[], Any]) -> None:
        if task.progress.cancelled or task.status in FINISHED:
            self._finish(task, "cancelled")
            return
        try:
            with self.workers.slot(wait=True):
                task.status, task.started = "running", time.time()
                self._save(task)
                with tracking(task.progress):
                    answer = work()
            self._finish(task, "done", answer.model_dump(mode="json"))
        except JobCancelledError:
            self._finish(task, "cancelled")
        except RequestError as e:
            self._failed(task, e.status, str(e))
        except NotFoundError as e:
            self._failed(task, 404, str(e))
        except BadFileError as e:
            self._failed(task, 422, str(e))
        except CadenzaError as e:
            self._failed(task, 400, str(e))
        except Exception as e:  # noqa: BLE001 - one job's failure, never the service's
            log.exception("job %s (%s) failed", task.id, task.kind)
            self._failed(task, 500, f"internal error ({type(e).__name__})")

    def _failed(self, task: Task, status: int, message: str) -> None:
        task.error = {"status": status, "error": message}
        self._finish(task, "failed")

    def _finish(self, task: Task, status: str, result: dict[str, Any] | None = None) -> None:
        """`result`: the answer of work that returned ("done")."""
        with self._lock:
            if task.status in FINISHED:
                return
            if status == "done" and task.progress.cancelled:
                # Cancelled after its last sampling step (while it wrote or rendered its files),
                # which the sampling loop could not see: honoured here, under the lock `cancel`
                # takes, so a cancel answered while the job ran is never lost.
                status = "cancelled"
            else:
                task.result = result
            task.status, task.finished = status, time.time()
            self._live.pop(task.id, None)
        if status == "cancelled" and result is not None:
            # What it wrote goes, as for a cancel while it sampled, before its record says so.
            self.store.remove_job(result.get("job"))
        self._save(task)
        if self.metrics is not None:
            self.metrics.tasks.labels(task.kind, status).inc()

    def shutdown(self) -> None:
        """Finish the running jobs; the queued ones are cancelled (their clients see it)."""
        with self._lock:
            queued = [t for t in self._live.values() if t.status == "queued"]
        for task in queued:
            task.progress.cancel()
            task.error = {"status": 503, "error": "the service shut down before this job "
                                                  "started; submit it again"}  # fmt: skip
            self._finish(task, "cancelled")
        self.pool.shutdown(wait=True, cancel_futures=True)

    # --- records ----------------------------------------------------------------------------
    def _save(self, task: Task) -> None:
        record = {k: v for k, v in task.view().items() if k != "url"}
        record["progress"] = task.progress.fraction
        record["result"] = self._for_disk(record["result"])
        # FileNotFoundError: its folder was deleted (its listener forgotten, or expired) while
        # it ran; the record goes with it.
        with contextlib.suppress(FileNotFoundError):
            write_atomically(self.store.tasks / task.id / "task.json", json.dumps(record),
                             parents=False)  # fmt: skip

    def _recover(self) -> None:
        """Records left by the previous process: one that had not finished never will."""
        for folder in self.store.tasks.iterdir():
            if not ID.fullmatch(folder.name):
                continue
            try:
                task = _load(folder)
            except (OSError, ValueError):
                continue
            if task.status not in FINISHED:
                task.status, task.finished = "failed", time.time()
                task.error = {"status": 503, "error": "the service restarted before this job "
                                                      "finished; submit it again"}  # fmt: skip
                self._save(task)


def _map_links(value: Any, link: Callable[[str, str], Any]) -> Any:
    """`value` with every file link in it replaced by link(job, name), anywhere in it."""
    if isinstance(value, dict):
        return {k: _map_links(v, link) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_links(v, link) for v in value]
    if isinstance(value, str) and (found := FILE_LINK.fullmatch(value)):
        return link(found["job"], found["name"])
    return value


def _load(folder: Path) -> Task:
    record = json.loads((folder / "task.json").read_text())
    progress = Progress()
    progress.fraction = float(record.pop("progress", 0.0))
    record.pop("url", None)
    return Task(**record, progress=progress)
