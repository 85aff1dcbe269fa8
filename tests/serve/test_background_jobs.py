"""Background jobs (serve/tasks.py): 202 and an ID, progress while sampling, the result read
back (also after a restart), cancelling, checks at submission, and a shutdown that finishes
what runs."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cadenza.serve.app import create_app
from cadenza.serve.settings import ServeSettings

LONG = {"model": "smoke", "n": 4, "bars": 256, "seed": 5}  # 2,048 steps: seconds of sampling


def settings_for(checkpoints: Path, work: Path) -> ServeSettings:
    return ServeSettings.from_dict({
        "checkpoints": str(checkpoints), "work_dir": str(work),
        "limits": {"max_bars": 256}, "sample": {"n": 1, "sample_rate": 8000},
    })  # fmt: skip


def wait_for(client: TestClient, url: str, until, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(url).json()
        if until(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def unsigned(result: dict) -> dict:
    """A job's answer without its links' expiry and signature."""
    return json.loads(re.sub(r"\?expires=\d+&sig=[0-9a-f]+", "", json.dumps(result)))


def finished(status: dict) -> bool:
    return status["status"] in ("done", "failed", "cancelled")


def test_a_background_job_answers_202_then_its_result_also_after_a_restart(checkpoints, tmp_path):
    settings = settings_for(checkpoints, tmp_path / "work")
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/jobs/generate", json={"model": "smoke", "n": 2, "bars": 2,
                                                    "seed": 9})  # fmt: skip
        assert r.status_code == 202, r.text
        task = r.json()
        assert r.headers["location"] == task["url"] == f"/api/jobs/{task['id']}"
        assert task["status"] in ("queued", "running", "done") and task["kind"] == "generate"
        done = wait_for(client, task["url"], finished)
        assert done["status"] == "done" and done["progress"] == 1.0 and done["error"] is None
        items = done["result"]["items"]
        assert len(items) == 2 and client.get(items[0]["midi"]).status_code == 200
        # The same request answered at once writes the same notes.
        now = client.post("/api/generate", json={"model": "smoke", "n": 2, "bars": 2,
                                                 "seed": 9}).json()  # fmt: skip
        assert [i["notes"] for i in now["items"]] == [i["notes"] for i in items]
        assert [t["id"] for t in client.get("/api/jobs").json()["jobs"]] == [task["id"]]
    # A restart: the finished job is read back, and a record the previous process left
    # unfinished is failed, saying what to do.
    stale = tmp_path / "work" / "tasks" / ("0" * 32)
    stale.mkdir()
    (stale / ".owner").write_text(json.dumps({"key": "open", "listener": None}))
    (stale / "task.json").write_text(
        json.dumps(
            {
                "id": "0" * 32,
                "kind": "generate",
                "status": "running",
                "submitted": 1.0,
                "started": 2.0,
                "finished": None,
                "result": None,
                "error": None,
                "progress": 0.4,
            }
        )
    )
    with TestClient(create_app(settings)) as client:
        again = client.get(task["url"]).json()
        # The same answer, its file links signed afresh (the first ones expire).
        assert again["status"] == "done" and unsigned(again["result"]) == unsigned(done["result"])
        assert client.get(again["result"]["items"][0]["midi"]).status_code == 200
        lost = client.get(f"/api/jobs/{'0' * 32}").json()
        assert lost["status"] == "failed" and lost["error"]["status"] == 503
        assert "submit it again" in lost["error"]["error"]


def test_progress_rises_and_a_cancelled_job_stops_and_leaves_nothing(checkpoints, tmp_path):
    settings = settings_for(checkpoints, tmp_path / "work")
    with TestClient(create_app(settings)) as client:
        task = client.post("/api/jobs/generate", json=LONG).json()
        running = wait_for(client, task["url"], lambda s: s["progress"] > 0.02 or finished(s))
        assert running["status"] == "running" and 0 < running["progress"] < 1
        later = wait_for(client, task["url"], lambda s: s["progress"] > running["progress"])
        assert later["status"] == "running"
        t0 = time.monotonic()
        r = client.delete(task["url"])
        assert r.status_code == 200 and r.json()["status"] in ("running", "cancelled")
        gone = wait_for(client, task["url"], finished, timeout=10)
        assert gone["status"] == "cancelled" and gone["result"] is None
        assert time.monotonic() - t0 < 5  # stopped at a step, not at the end of 2,048
        assert not any((tmp_path / "work" / "jobs").iterdir())  # what it wrote is deleted
        # Cancelling again, or a finished job, changes nothing.
        assert client.delete(task["url"]).json()["status"] == "cancelled"


def test_a_cancel_while_the_files_are_written_is_honoured_and_leaves_nothing(
    checkpoints, tmp_path, monkeypatch
):
    """The sampling loop, which checks the flag, is over by then: the pieces are written and
    rendered, and the job must still end cancelled, not done."""
    import cadenza.generation as generation

    written, go_on = threading.Event(), threading.Event()
    write_pieces = generation.write_pieces

    def held_after_writing(*args, **kwargs):
        out = write_pieces(*args, **kwargs)  # every file written and rendered, for real
        written.set()
        assert go_on.wait(60)  # still in its write phase until the test has cancelled it
        return out

    monkeypatch.setattr(generation, "write_pieces", held_after_writing)
    jobs = tmp_path / "work" / "jobs"
    with TestClient(create_app(settings_for(checkpoints, tmp_path / "work"))) as client:
        body = {"model": "smoke", "n": 2, "bars": 2, "seed": 4, "render": True}
        task = client.post("/api/jobs/generate", json=body).json()
        assert written.wait(120), client.get(task["url"]).json()
        (folder,) = jobs.iterdir()
        assert {p.suffix for p in folder.iterdir()} >= {".mid", ".png", ".wav"}
        running = client.get(task["url"]).json()
        assert running["status"] == "running" and running["progress"] > 0.9  # its last step
        r = client.delete(task["url"])
        assert r.status_code == 200 and r.json()["status"] == "running"
        go_on.set()
        gone = wait_for(client, task["url"], finished, timeout=30)
        assert gone["status"] == "cancelled" and gone["result"] is None, gone
        assert not folder.exists() and not any(jobs.iterdir())  # what it wrote is deleted
        record = json.loads((tmp_path / "work" / "tasks" / task["id"] / "task.json").read_text())
        assert record["status"] == "cancelled" and record["result"] is None
        assert client.delete(task["url"]).json()["status"] == "cancelled"
        # A job nobody cancels still ends done, with its files.
        later = client.post("/api/jobs/generate", json={**body, "render": False}).json()
        done = wait_for(client, later["url"], finished)
        assert done["status"] == "done", done
        assert client.get(done["result"]["items"][0]["midi"]).status_code == 200


def test_a_cancel_while_pieces_are_rendered_stops_before_the_next_one(
    checkpoints, tmp_path, monkeypatch
):
    """Rendering is the slow part of writing: a cancel between two pieces' renders stops the
    job there, the next piece never rendered, and what it wrote is deleted."""
    import cadenza.generation.writers as writers

    rendered, go_on, calls = threading.Event(), threading.Event(), []
    write_piece = writers.write_piece

    def held_after_one(*args, **kwargs):
        entry = write_piece(*args, **kwargs)  # the real MIDI, PNG and WAV
        calls.append(entry["file"])
        rendered.set()
        assert go_on.wait(60)
        return entry

    monkeypatch.setattr(writers, "write_piece", held_after_one)
    with TestClient(create_app(settings_for(checkpoints, tmp_path / "work"))) as client:
        body = {"model": "smoke", "n": 3, "bars": 2, "seed": 4, "render": True}
        task = client.post("/api/jobs/generate", json=body).json()
        assert rendered.wait(120), client.get(task["url"]).json()
        assert client.delete(task["url"]).json()["status"] == "running"
        go_on.set()
        gone = wait_for(client, task["url"], finished, timeout=30)
        assert gone["status"] == "cancelled" and gone["result"] is None, gone
        assert calls == ["sample_000.mid"]  # pieces 2 and 3 were never written
        assert not any((tmp_path / "work" / "jobs").iterdir())


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"model": "nope"}, 404, "no model"),
        ({"model": "smoke", "n": 99}, 422, "limits.max_n"),
        ({"model": "smoke", "primer": "f" * 32}, 404, "no upload"),
        ({"model": "smoke", "n": "2"}, 422, "n"),
    ],
    ids=["unknown-model", "over-cap", "unknown-upload", "not-a-number"],
)
def test_a_bad_background_request_is_a_4xx_at_submission(checkpoints, tmp_path, body, status,
                                                          says):  # fmt: skip
    with TestClient(create_app(settings_for(checkpoints, tmp_path / "w"))) as client:
        r = client.post("/api/jobs/generate", json=body)
        assert r.status_code == status and says in r.json()["error"], r.text
        assert client.get("/api/jobs").json()["jobs"] == []  # nothing was queued
        assert client.get(f"/api/jobs/{'a' * 32}").status_code == 404


def test_shutdown_finishes_the_running_job(checkpoints, tmp_path):
    settings = settings_for(checkpoints, tmp_path / "work")
    app = create_app(settings)
    client = TestClient(app)
    client.__enter__()
    task = client.post("/api/jobs/generate", json={**LONG, "n": 1, "bars": 64}).json()
    wait_for(client, task["url"], lambda s: s["status"] == "running")
    stopper = threading.Thread(target=client.__exit__, args=(None, None, None))
    stopper.start()  # the app's shutdown: waits for the running job
    stopper.join(timeout=120)
    record = json.loads((tmp_path / "work" / "tasks" / task["id"] / "task.json").read_text())
    assert record["status"] == "done" and record["result"]["items"]


def test_one_key_cannot_fill_the_queue_for_the_others(tmp_path):
    """max_queued_jobs_per_key: a key's next job over its share is a 503 naming the setting;
    another key's still queues."""
    from contextlib import contextmanager

    from cadenza.serve.auth import Caller
    from cadenza.serve.errors import RequestError
    from cadenza.serve.store import Store
    from cadenza.serve.tasks import Tasks

    release = threading.Event()

    class HeldWorkers:  # every job waits for its worker slot until released
        n = 1

        @contextmanager
        def slot(self, wait: bool = False):
            release.wait(30)
            yield

    class Answer:
        def model_dump(self, mode: str) -> dict:
            return {}

    store = Store(tmp_path, keep_jobs=50, keep_uploads=50)
    tasks = Tasks(store, HeldWorkers(), max_queued=10, max_queued_per_key=2)
    a = Caller("a", frozenset({"generate"}), key_id="aa" * 8)
    b = Caller("b", frozenset({"generate"}), key_id="bb" * 8)
    try:
        for _ in range(2):
            tasks.submit("generate", a, None, Answer)
        with pytest.raises(RequestError, match="max_queued_jobs_per_key=2") as refused:
            tasks.submit("generate", a, None, Answer)
        assert refused.value.status == 503 and "this key (a)" in str(refused.value)
        tasks.submit("generate", b, None, Answer)
    finally:
        release.set()
        tasks.shutdown()
