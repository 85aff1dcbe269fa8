"""Batched generation (serve/batching.py): concurrent generate requests for one model and the
same controls share a sampling loop, bounded in rows, and each keeps the notes of its own seed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cadenza.errors import BadMidiError, ConfigError
from cadenza.io.midi import load_midi_bytes, tracks_of
from cadenza.serve.app import Workers, create_app
from cadenza.serve.batching import Batcher
from cadenza.serve.errors import RequestError
from cadenza.serve.settings import ServeSettings


class FakeSampler:
    """Records each loop's requests; every piece is (seed, row) so a mix-up shows."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.loops: list[list[tuple[int, int]]] = []
        self.seconds = seconds
        self.lock = threading.Lock()

    def __call__(self, requests: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
        with self.lock:
            self.loops.append(list(requests))
        time.sleep(self.seconds)
        return [[(seed, row) for row in range(n)] for n, seed in requests]


def _concurrently(batcher: Batcher, sampler: FakeSampler, asks: list[tuple[str, int, int]]):
    with ThreadPoolExecutor(len(asks)) as pool:
        futures = [pool.submit(batcher.draw, key, n, seed, sampler) for key, n, seed in asks]
        return [f.result(timeout=30) for f in futures]


def test_concurrent_requests_share_loops_and_each_gets_its_own_pieces() -> None:
    workers = Workers(1, timeout=30)
    sampler = FakeSampler(seconds=0.05)  # the slot stays busy while others arrive
    sizes: list[tuple[int, int]] = []
    batcher = Batcher(workers.slot, window_s=0.05, max_rows=4,
                      observe=lambda r, rows: sizes.append((r, rows)))  # fmt: skip
    asks = [("m", 1 + i % 2, 100 + i) for i in range(12)]  # 18 rows
    out = _concurrently(batcher, sampler, asks)
    for (_, n, seed), pieces in zip(asks, out, strict=True):
        assert pieces == [(seed, row) for row in range(n)]
    assert all(sum(n for n, _ in loop) <= 4 for loop in sampler.loops)  # bounded
    assert len(sampler.loops) < len(asks)  # shared: fewer loops than requests
    assert sorted(seed for loop in sampler.loops for _, seed in loop) == list(range(100, 112))
    assert sum(r for r, _ in sizes) == 12 and max(r for r, _ in sizes) > 1


def test_different_controls_never_share_a_loop() -> None:
    sampler = FakeSampler(seconds=0.02)
    batcher = Batcher(Workers(1, timeout=30).slot, window_s=0.05, max_rows=16)
    _concurrently(batcher, sampler, [("a" if i % 2 else "b", 1, i) for i in range(8)])
    for loop in sampler.loops:
        assert len({seed % 2 for _, seed in loop}) == 1  # one key per loop


def test_a_request_alone_does_not_wait_for_company() -> None:
    batcher = Batcher(Workers(1, timeout=30).slot, window_s=5.0, max_rows=16)
    started = time.monotonic()
    assert batcher.draw("m", 2, 7, FakeSampler()) == [(7, 0), (7, 1)]
    assert time.monotonic() - started < 1.0  # not the 5 s window


def test_a_request_larger_than_a_batch_is_drawn_alone() -> None:
    sampler = FakeSampler()
    batcher = Batcher(Workers(1, timeout=30).slot, window_s=0.01, max_rows=4)
    assert len(batcher.draw("m", 6, 1, sampler)) == 6
    assert sampler.loops == [[(6, 1)]]


def test_every_member_gets_the_loops_error_and_the_batcher_recovers() -> None:
    def broken(requests: list[tuple[int, int]]) -> list:
        time.sleep(0.05)
        raise RequestError(503, "busy")

    batcher = Batcher(Workers(1, timeout=30).slot, window_s=0.05, max_rows=16)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(batcher.draw, "m", 1, i, broken) for i in range(4)]
        for f in futures:
            with pytest.raises(RequestError):
                f.result(timeout=30)
    assert batcher.stats() == {"open": 0, "active": 0}
    assert batcher.draw("m", 1, 3, FakeSampler()) == [(3, 0)]


def test_batch_rows_beyond_what_keeps_notes_exact_is_refused(settings: ServeSettings) -> None:
    with pytest.raises(ConfigError, match="batch_rows"):
        ServeSettings.from_dict({"checkpoints": str(settings.checkpoints), "batch_rows": 64})


@contextmanager
def _slow_slots(batcher: Batcher, seconds: float) -> Iterator[None]:
    """Hold each sampling slot `seconds` longer, so concurrent requests pile up behind it."""
    plain = batcher.slot

    @contextmanager
    def slow() -> Iterator[None]:
        with plain():
            time.sleep(seconds)
            yield

    batcher.slot = slow
    try:
        yield
    finally:
        batcher.slot = plain


def _notes(client: TestClient, job: dict) -> list[tuple]:
    """The notes of the job's first piece (a smoke model may write a silent one: none)."""
    try:
        pm = load_midi_bytes(client.get(job["items"][0]["midi"]).content, name="sample")
    except BadMidiError as e:
        assert "no notes" in str(e)
        return []
    return [tuple(row) for t in tracks_of(pm) for row in t.notes.round(6).tolist()]


@pytest.mark.parametrize("model", ["smoke", "smoke_transformer"])
def test_served_requests_batched_or_alone_give_the_same_notes(
    settings: ServeSettings, tmp_path: Path, model: str
) -> None:
    """Through the app: 6 concurrent requests share sampling loops (as /metrics counts them),
    and each request's MIDI equals the one its seed gives alone."""
    local = ServeSettings.from_dict({
        "checkpoints": str(settings.checkpoints), "work_dir": str(tmp_path / "work"),
        "workers": 1, "batch_window_ms": 200, "sample": {"n": 1},
    })  # fmt: skip
    app = create_app(local)
    body = {"model": model, "bars": 4, "render": False}
    with TestClient(app, raise_server_exceptions=False) as client:
        alone = {}
        for seed in range(6):
            r = client.post("/api/generate", json=body | {"seed": seed})
            assert r.status_code == 200, r.text
            alone[seed] = _notes(client, r.json())
        assert sum(map(bool, alone.values())) >= 3  # most seeds write notes to compare
        with _slow_slots(app.state.batcher, 0.3), ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(
                lambda seed: client.post("/api/generate", json=body | {"seed": seed}), range(6)
            ))  # fmt: skip
        for seed, r in enumerate(answers):
            assert r.status_code == 200, r.text
            assert r.json()["controls"]["seed"] == seed
            assert _notes(client, r.json()) == alone[seed], f"seed {seed}"
        metrics = client.get("/metrics").text
    # 6 alone + the concurrent ones in fewer loops than requests.
    count = float(metrics.split("cadenza_batch_requests_count ")[1].split()[0])
    total = float(metrics.split("cadenza_batch_requests_sum ")[1].split()[0])
    assert total == 12 and count < 12
