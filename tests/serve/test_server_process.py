"""The real `cadenza-serve` process over real HTTP: it binds loopback, serves, answers a bad
request with a 4xx, and the next request still works."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def test_the_real_server_process_serves_generate_and_recommend(serve_url: str) -> None:
    assert serve_url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
    with httpx.Client(base_url=serve_url, timeout=120) as http:
        assert http.get("/api/health").json()["models"] == 5
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
