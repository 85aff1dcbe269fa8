"""Running the service: Prometheus metrics, request IDs in JSON logs, probes, 405's Allow, and
a SIGTERM that lets the running request finish."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cadenza.serve.app import create_app
from cadenza.serve.logs import JsonFormatter, RequestIdFilter
from cadenza.serve.settings import ServeSettings
from tests.serve.conftest import running_server


@pytest.fixture(scope="module")
def json_service(checkpoints: Path, tmp_path_factory: pytest.TempPathFactory):
    settings = ServeSettings.from_dict({
        "checkpoints": str(checkpoints), "work_dir": str(tmp_path_factory.mktemp("ops")),
        "log_format": "json", "sample": {"n": 1, "sample_rate": 16000},
    })  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_metrics_count_requests_by_route_template_never_by_path(json_service):
    client = json_service
    r = client.post("/api/generate", json={"model": "smoke", "n": 1, "bars": 1})
    assert r.status_code == 200
    assert client.post("/api/generate", json={"model": "nope"}).status_code == 404
    r = client.get("/api/listeners/listener0/history", params={"model": "smoke_recommender"})
    assert r.status_code == 200
    client.get("/no/such/route")
    for page in ("/openapi.json", "/docs", "/static-offline-docs/swagger-ui.css"):
        assert client.get(page).status_code == 200, page
    text = client.get("/metrics").text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    assert 'cadenza_requests_total{method="POST",route="/api/generate",status="200"} 1.0' in text
    assert 'cadenza_requests_total{method="POST",route="/api/generate",status="404"} 1.0' in text
    assert 'route="/api/listeners/{listener}/history"' in text and "listener0" not in text
    assert 'route="unmatched",status="404"' in text
    assert 'cadenza_requests_total{method="GET",route="unmatched",status="200"}' not in text
    for page in ("/openapi.json", "/docs", "/static-offline-docs"):  # the docs' files: one route
        assert f'cadenza_requests_total{{method="GET",route="{page}",status="200"}} 1.0' in text
    assert 'cadenza_request_seconds_bucket{le="0.005",method="POST",route="/api/generate"}' in text
    assert 'cadenza_jobs_total{kind="generate"} 1.0' in text
    for gauge in ("cadenza_queue_depth 0.0", "cadenza_workers_busy 0.0"):
        assert gauge in text


def test_every_request_has_an_id_that_its_json_log_line_carries(json_service):
    client = json_service
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("cadenza")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        ours = client.get("/api/models", headers={"X-Request-ID": "gateway-42.a_b"})
        fresh = client.get("/api/models", headers={"X-Request-ID": "bad id\nforged log line"})
        failed = client.post("/api/generate", json={"model": "smoke", "n": "two"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert ours.headers["X-Request-ID"] == "gateway-42.a_b"
    rid = fresh.headers["X-Request-ID"]
    assert rid != "bad id\nforged log line" and len(rid) == 16
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_id = {line["request_id"]: line for line in lines if line["msg"].startswith(("GET", "POST"))}
    assert by_id["gateway-42.a_b"]["route"] == "/api/models" and by_id[rid]["status"] == 200
    bad = by_id[failed.headers["X-Request-ID"]]
    assert bad["status"] == 422 and bad["level"] == "info" and bad["ms"] >= 0
    assert {"ts", "logger", "method", "caller"} <= set(bad)


def test_probes_and_a_wrong_method_names_the_allowed_ones(json_service):
    client = json_service
    assert client.get("/api/live").json() == {"status": "alive"}
    assert client.get("/api/ready").status_code == 200
    r = client.delete("/api/generate")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json() == {"error": "Method Not Allowed", "status": 405}


@pytest.mark.slow
def test_sigterm_lets_the_running_request_finish_then_exits(checkpoints, tmp_path):
    with running_server(checkpoints, tmp_path, "limits.max_bars=256",
                        "shutdown_timeout_s=60") as (url, pid):  # fmt: skip
        body = {"model": "smoke", "n": 4, "bars": 256, "seed": 1}
        with httpx.Client(base_url=url, timeout=120) as http:
            t0 = time.monotonic()
            assert http.post("/api/generate", json={**body, "n": 1, "bars": 8}).status_code == 200
            done: dict = {}

            def long_request() -> None:
                r = http.post("/api/generate", json=body)
                done.update(status=r.status_code, at=time.monotonic(), body=r.json())

            worker = threading.Thread(target=long_request)
            worker.start()
            time.sleep(1.0)  # the request is running when the signal comes
            signalled = time.monotonic()
            os.kill(pid, signal.SIGTERM)
            worker.join(timeout=120)
        assert done["status"] == 200, done
        assert done["at"] > signalled and len(done["body"]["items"]) == 4
        assert t0 < signalled
        deadline = time.monotonic() + 30
        while not exited(pid):
            if time.monotonic() > deadline:
                pytest.fail("cadenza-serve did not exit after the request finished")
            time.sleep(0.2)


def exited(pid: int) -> bool:
    """Gone, or a zombie waiting for its parent (the test) to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True
