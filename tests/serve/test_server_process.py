"""The real `cadenza-serve` process over real HTTP: it binds loopback, serves, answers a bad
request with a 4xx, and the next request still works."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers import run_cli
from tests.serve.conftest import SERVED, running_server

pytestmark = pytest.mark.slow


def test_the_real_server_process_serves_generate_and_recommend(serve_url: str) -> None:
    assert serve_url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
    with httpx.Client(base_url=serve_url, timeout=120) as http:
        assert http.get("/api/health").json()["models"] == len(SERVED)
        r = http.post("/api/generate", json={"model": "smoke", "n": 1, "bars": 2, "render": True})
        assert r.status_code == 200, r.text
        item = r.json()["items"][0]
        assert http.get(item["midi"]).content[:4] == b"MThd"
        assert http.get(item["audio"]).content[:4] == b"RIFF"
        bad = http.post("/api/generate", content=b"{not json",
                        headers={"content-type": "application/json"})  # fmt: skip
        assert bad.status_code == 422 and "JSON" in bad.json()["error"]
        rec = http.post("/api/recommend", json={"model": "smoke_recommender",
                                                "user": "listener3", "k": 3})  # fmt: skip
        assert rec.status_code == 200 and len(rec.json()["picks"]) == 3
        assert http.get("/openapi.json").json()["info"]["title"] == "Cadenza"


def test_a_wrong_setting_stops_the_server_before_it_listens(tmp_path) -> None:
    proc = run_cli("cadenza-serve", f"checkpoints={tmp_path}/none", "port=0", cwd=tmp_path)
    assert proc.returncode == 2 and "listening" not in proc.stdout
    assert f"checkpoints={tmp_path}/none: no such folder" in proc.stderr


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_processes_2_serves_from_two_worker_processes_and_stops_them(checkpoints, tmp_path):
    with running_server(checkpoints, tmp_path, "processes=2", "workers=1") as (url, pid):
        # Hydra's process runs uvicorn's supervisor, which runs one process per worker.
        workers = _children(pid)
        assert len(workers) >= 2
        body = {"model": "smoke", "n": 1, "bars": 2}
        with httpx.Client(base_url=url, timeout=120) as http, ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: http.post("/api/generate", json=body), range(4)))
            assert [a.status_code for a in answers] == [200] * 4
            assert http.get(answers[0].json()["items"][0]["midi"]).content[:4] == b"MThd"
            assert http.get("/api/health").json()["models"] == len(SERVED)
    deadline = time.monotonic() + 10
    while [p for p in workers if Path(f"/proc/{p}").exists()] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if Path(f"/proc/{p}").exists()]  # none left running
