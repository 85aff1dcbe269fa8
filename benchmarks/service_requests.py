"""The requests of benchmarks/service_load.py: the valid bodies its clients send, and the fault
phase (bad requests, each followed by a valid one; see service_load.py's docstring)."""

from __future__ import annotations

import argparse
import json
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import httpx


# --- requests ----------------------------------------------------------------------------------
class Bodies:
    """The valid request bodies, each new: seeds count up, listeners are taken in turn."""

    def __init__(
        self, gen: str | None, rec: str | None, users: list[str], bars: float, render: bool,
        explain: bool = True,
    ):  # fmt: skip
        self.gen, self.rec, self.users, self.bars, self.render = gen, rec, users, bars, render
        self.explain = explain
        self._n = 0
        self._lock = threading.Lock()

    def _next(self) -> int:
        with self._lock:
            self._n += 1
            return self._n

    def generate(self) -> dict[str, Any]:
        n = self._next()
        return {"model": self.gen, "n": 1, "bars": self.bars, "seed": n, "render": self.render}

    def recommend(self) -> dict[str, Any]:
        user = self.users[self._next() % len(self.users)] if self.users else None
        return {"model": self.rec, "user": user, "k": 10, "explain": self.explain}


def call(client: httpx.Client, endpoint: str, body: dict[str, Any]) -> tuple[str, bool]:
    """POST one valid request -> (status code or exception name, ok)."""
    try:
        r = client.post(f"/api/{endpoint}", json=body)
    except httpx.HTTPError as e:
        return type(e).__name__, False
    ok = 200 <= r.status_code < 300
    if ok:  # a 2xx without the promised body is an error too
        try:
            ok = isinstance(r.json().get("items" if endpoint == "generate" else "picks"), list)
        except (ValueError, AttributeError):
            ok = False
    return str(r.status_code), ok


# --- the fault phase ---------------------------------------------------------------------------
def midi_file(notes: int = 16) -> bytes:
    """A small valid type-0 MIDI file: `notes` quarter notes of a C major scale, 480 ticks/beat."""
    events = b"\x00\xff\x51\x03\x07\xa1\x20"  # tempo 120 bpm
    for i in range(notes):
        pitch = 60 + (0, 2, 4, 5, 7, 9, 11, 12)[i % 8]
        events += bytes([0x00, 0x90, pitch, 80]) + b"\x83\x60" + bytes([0x80, pitch, 0])
    events += b"\x00\xff\x2f\x00"
    return (
        b"MThd"
        + struct.pack(">IHHH", 6, 0, 1, 480)
        + b"MTrk"
        + struct.pack(">I", len(events))
        + events
    )


class Fault(NamedTuple):
    name: str
    path: str
    kwargs: dict[str, Any]  # for httpx.Client.post
    spec: tuple[int, ...]  # the codes the API spec names for it
    method: str = "POST"


def fault_cases(gen: str | None, rec: str | None, max_upload: int) -> list[Fault]:
    def up(name: str, data: bytes) -> dict[str, Any]:
        return {"files": {"file": (name, data)}}

    mid = midi_file()
    corrupt = mid[:14] + b"MTrk\x00\x00\x40\x00" + bytes(range(200))  # track claims 16 KiB
    huge = mid + bytes(max_upload)  # just over limits.max_upload_bytes
    cases = [
        Fault("upload over max_upload_bytes", "/api/uploads", up("big.mid", huge), (413,)),
        Fault("upload corrupt MIDI", "/api/uploads", up("bad.mid", corrupt), (422,)),
        Fault("upload not MIDI", "/api/uploads", up("a.mid", b"not a MIDI file\n" * 8), (422,)),
        Fault("upload empty", "/api/uploads", up("empty.mid", b""), (422,)),
        Fault("upload without file field", "/api/uploads", {"data": {"x": "1"}}, (422,)),
        Fault("unknown API route", "/api/no_such_route", {}, (404,), "GET"),
        Fault("GET on a POST route", "/api/generate", {}, (405,), "GET"),
        Fault("unknown model info", "/api/models/no_such_model", {}, (404,), "GET"),
        Fault("unknown job file", f"/api/files/{'0' * 32}/sample_000.mid", {}, (404,), "GET"),
    ]
    big = max_upload + 1024
    for endpoint, model in (("generate", gen), ("recommend", rec)):
        if model is None:
            continue
        p, m = f"/api/{endpoint}", {"model": model}
        broken = {
            "content": b'{"model": "x", "n": ',
            "headers": {"content-type": "application/json"},
        }
        cases += [
            Fault(f"{endpoint} malformed JSON", p, broken, (422, 400)),
            Fault(f"{endpoint} JSON not an object", p, {"json": [1, 2, 3]}, (422,)),
            Fault(f"{endpoint} unknown model", p, {"json": {"model": "no_such_model"}}, (404,)),
            Fault(f"{endpoint} unknown field", p, {"json": {**m, "colour": "red"}}, (422,)),
            Fault(f"{endpoint} model missing", p, {"json": {"seed": 1}}, (422,)),
            Fault(f"{endpoint} seed a string", p, {"json": {**m, "seed": "7"}}, (422,)),
            Fault(f"{endpoint} seed negative", p, {"json": {**m, "seed": -1}}, (422,)),
            Fault(f"{endpoint} body too large", p, {"json": {**m, "pad": "x" * big}}, (413,)),
        ]
    g, r = {"model": gen}, {"model": rec}
    if gen is not None:
        cases += [
            Fault("generate n a string", "/api/generate", {"json": {**g, "n": "2"}}, (422,)),
            Fault("generate n above max_n", "/api/generate", {"json": {**g, "n": 10**4}}, (422,)),
            Fault("generate bars a list", "/api/generate", {"json": {**g, "bars": [4]}}, (422,)),
            Fault("generate bars above max", "/api/generate", {"json": {**g, "bars": 1e6}}, (422,)),
            Fault("generate unknown primer", "/api/generate",
                  {"json": {**g, "primer": "0" * 32, "bars": 1}}, (404,)),
        ]  # fmt: skip
    if rec is not None:
        cases += [
            Fault("recommend k a string", "/api/recommend", {"json": {**r, "k": "10"}}, (422,)),
            Fault("recommend k zero", "/api/recommend", {"json": {**r, "k": 0}}, (422,)),
            Fault("recommend k above max_k", "/api/recommend", {"json": {**r, "k": 10**4}}, (422,)),
            Fault("recommend unknown user", "/api/recommend",
                  {"json": {**r, "user": "nobody_at_all_42"}}, (404, 400)),
        ]  # fmt: skip
        if gen is not None:
            more = {"k": 5, "generator": gen, "candidates": 4, "bars": 1}
            cases += [
                Fault("generate with the recommender", "/api/generate",
                      {"json": {"model": rec, "n": 1, "bars": 1}}, (400,)),
                Fault("recommend k > candidates", "/api/recommend",
                      {"json": {**r, **more}}, (422,)),
            ]  # fmt: skip
    return cases


def run_faults(url: str, bodies: Bodies, endpoints: Sequence[str], max_upload: int,
               args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """Bad requests, each followed by a valid one, for args.fault_seconds (at least one pass)."""
    seconds, timeout = args.fault_seconds, args.timeout
    cases = fault_cases(bodies.gen, bodies.rec, max_upload)
    valid: list[tuple[str, Callable[[httpx.Client], tuple[str, bool]]]] = [
        (e, lambda c, e=e: call(c, e, getattr(bodies, e)())) for e in endpoints
    ]

    def upload(c: httpx.Client) -> tuple[str, bool]:
        try:
            r = c.post("/api/uploads", files={"file": ("scale.mid", midi_file())})
        except httpx.HTTPError as e:
            return type(e).__name__, False
        try:
            return str(r.status_code), r.status_code == 201 and "upload" in r.json()
        except ValueError:
            return str(r.status_code), False

    valid.append(("upload", upload))
    per_case: dict[str, dict[str, Any]] = {
        c.name: {"spec": list(c.spec), "sent": 0, "codes": Counter()} for c in cases
    }
    out = Counter()
    problems: list[str] = []  # each once

    def note(problem: str) -> None:
        if problem not in problems and len(problems) < 50:
            problems.append(problem)

    started = time.perf_counter()
    i = 0
    with httpx.Client(base_url=url, timeout=timeout) as client:
        while i < len(cases) or time.perf_counter() - started < seconds:
            name, path, kwargs, spec, method = cases[i % len(cases)]
            entry = per_case[name]
            entry["sent"] += 1
            try:
                r = client.request(method, path, **kwargs)
                code, body = r.status_code, r.text
            except httpx.HTTPError as e:
                code, body = None, type(e).__name__
            entry["codes"][str(code)] += 1
            out["bad_sent"] += 1
            if code is not None and 400 <= code < 500:
                out["bad_4xx"] += 1
                out["bad_as_spec"] += code in spec
                try:
                    err = json.loads(body)
                    shaped = isinstance(err.get("error"), str) and err.get("status") == code
                except (ValueError, AttributeError):
                    shaped = False
                out["bad_error_body_ok"] += shaped
                if code not in spec:
                    note(f"{name}: got {code}, the spec says {' or '.join(map(str, spec))}")
                if not shaped:
                    note(f"{name}: {code} body is not {{error, status}}: {body[:200]}")
            else:
                out["bad_5xx" if code and code >= 500 else "bad_other"] += 1
                note(f"{name}: got {code}, want a 4xx: {body[:300]}")
            what, check = valid[i % len(valid)]
            got, ok = check(client)
            out["valid_sent"] += 1
            out["valid_ok"] += ok
            if not ok:
                note(f"valid {what} after '{name}' failed: {got}")
            i += 1
    for entry in per_case.values():
        entry["codes"] = dict(entry["codes"])
    keys = ("bad_sent", "bad_4xx", "bad_as_spec", "bad_error_body_ok", "bad_5xx", "bad_other",
            "valid_sent", "valid_ok")  # fmt: skip
    return {
        **{k: out[k] for k in keys},
        "passed": out["bad_4xx"] == out["bad_sent"] and out["valid_ok"] == out["valid_sent"],
        "seconds": round(time.perf_counter() - started, 1),
        "cases": per_case,
        "problems": problems,
    }
