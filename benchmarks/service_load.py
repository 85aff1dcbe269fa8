"""The real `cadenza-serve` under concurrent clients: throughput, latency, errors, memory.

Starts `cadenza-serve` as a subprocess on loopback (`port=0`: a free port, which the server
names in its "listening on" line; a fresh temporary work_dir; `keep_jobs=50`), waits for GET
/api/health, then for each endpoint (`--endpoints`: generate, recommend) and each number of
concurrent clients (`--levels`: 1 4 16) drives it for `--seconds` after `--warmup` seconds at
the same concurrency that are not counted. Each client is a thread with its own httpx.Client
that sends its next request as soon as the last one is answered.

- generate: `{"model": GEN, "n": 1, "bars": --bars, "seed": <new each request>, "render": false}`
  (`--render`: true, each piece also rendered to WAV);
- recommend: `{"model": REC, "user": <the model's listed users in turn>, "k": 10, "explain":
  true}` (`--no-explain`: false, the picks without their reasons).

GEN is `--generator` or the first model of kind generator with MIDI output, REC `--recommender`
or the first recommender, both from GET /api/models. A cell's figures cover the requests *started*
in its window: `requests`, `ok` (2xx with the expected body), `errors` (everything else: a non-2xx
answer, a 2xx whose body lacks `items` / `picks`, or an exception such as a client timeout), of
which `busy` are 503s (every worker stayed busy for the service's queue_timeout_s) and
`other_errors` the rest; `status_codes` counts every code seen (an exception by its name).
`req_per_s` is 2xx answers per second and `answers_per_s` all answers per second, over the time
from the window's start to the last of its requests' answers; latencies (p50 / p90 / p99, ms)
are of the 2xx answers.

Memory is the server process's VmRSS and VmHWM (peak) from /proc/<pid>/status: after start-up,
after start-up + a short warm-up of each endpoint (`start`), after every cell and at the `end`;
`tree_rss_mib` adds the server's child processes (renderers; the worker processes of
`processes=N`), and is what the table, `growth_mib` (end - start) and the per-round figures use.
The work_dir's size and job count are read at the same moments (the service deletes all but the
newest keep_jobs job folders).

The fault phase (`--faults`, on by default; `--no-faults` skips it) runs for `--fault-seconds`
(at least one pass over the cases): malformed JSON, wrong types, out-of-range values, unknown
fields, unknown models / uploads / routes, a wrong method, a JSON body and an upload just over
limits.max_upload_bytes (as GET /api/health names it), corrupt / empty / non-MIDI uploads, each
followed by a valid request (generate, recommend or a valid MIDI upload in turn). Every bad
request must get a 4xx (never a 5xx) and every valid request after it must succeed; whether the
code is the one the API spec names (404, 413, 422...) and the body is the spec's JSON
`{"error", "status"}` is counted too, and each departure is listed once in `problems`.

The clients run on the same machine as the server and take some of its CPU: on a small machine
the figures are a lower bound on what the server alone would do. Run it on an idle machine:

    python benchmarks/service_load.py --checkpoints checkpoints
    python benchmarks/service_load.py --seconds 3 --levels 1 4 --endpoints recommend --no-faults \\
        --out /tmp/service_load_try.json

Needs a generator and a recommender under --checkpoints (`cadenza-train experiment=bach_lstm`,
`cadenza-train experiment=styles_recommender`). Writes benchmarks/results/service_load.json as
{"parameters", "server": {startup_s, health at start and end, tracebacks in its log}, "cells":
[{endpoint, clients, requests, ok, errors, busy, req_per_s, latency_ms, memory, disk, ...}],
"memory": {start, end, growth_mib, timeline}, "work_dir": {before, after}, "faults",
"provenance": {command, machine, date, git_commit, ...}} (the whole file each run) and prints
the table last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx

from cadenza.atomic import write_atomically
from service_requests import Bodies, call, run_faults

RESULTS = Path(__file__).parent / "results" / "service_load.json"
REPO = Path(__file__).resolve().parent.parent
SERVE = Path(sys.executable).parent / "cadenza-serve"
ENDPOINTS = ("generate", "recommend")
KEEP_JOBS = 50
MIB = 1 << 20
LISTENING = re.compile(r"cadenza-serve: listening on (http://[\d.]+:\d+)")
MAKE_THEM = (
    "train them with `cadenza-train experiment=bach_lstm` (a generator) and "
    "`cadenza-train experiment=styles_recommender` (a recommender)"
)


# --- the server process ------------------------------------------------------------------------
def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                kids = [int(c) for c in children.read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def proc_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def dir_stats(root: Path) -> dict[str, Any]:
    def size(p: Path) -> int:
        try:
            return p.stat().st_size if p.is_file() else 0
        except OSError:  # deleted meanwhile by the service's pruning
            return 0

    jobs, uploads = root / "jobs", root / "uploads"
    return {
        "work_dir_mib": round(sum(size(p) for p in root.rglob("*")) / MIB, 2),
        "jobs_on_disk": sum(1 for _ in jobs.iterdir()) if jobs.is_dir() else 0,
        "uploads_on_disk": sum(1 for _ in uploads.iterdir()) if uploads.is_dir() else 0,
    }


class Server:
    """`cadenza-serve` in its own session (process group), always stopped by `stop()`."""

    def __init__(self, checkpoints: Path, work: Path, workers: int | None, extra: list[str]):
        if not SERVE.is_file():
            sys.exit(f"{SERVE} not found: install the project (`pip install -e .`) first")
        self.url = ""  # known once the server says which free port it took (port=0)
        self.work_dir, self.log = work / "serve", work / "server.log"
        self.args = [f"checkpoints={checkpoints.resolve()}", "host=127.0.0.1", "port=0",
                     f"work_dir={self.work_dir}", f"keep_jobs={KEEP_JOBS}"]  # fmt: skip
        self.args += [f"workers={workers}"] * (workers is not None) + extra
        with self.log.open("w") as log:
            cmd = [str(SERVE), *self.args]
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                sys.exit(
                    f"cadenza-serve exited with code {self.proc.returncode} before it "
                    f"answered; its log:\n{self.log_tail()}"
                )
            if not self.url and (said := LISTENING.search(self.log_tail(100_000))):
                self.url = said.group(1)
            try:
                r = httpx.get(self.url + "/api/health", timeout=5) if self.url else None
                if r is not None and r.status_code == 200:
                    return r.json(), time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        sys.exit(
            f"cadenza-serve did not answer /api/health within {timeout:.0f} s; its log:\n"
            f"{self.log_tail()}"
        )

    def memory(self) -> dict[str, float]:
        pid = self.proc.pid
        tree = sum(proc_kib(p, "VmRSS") for p in descendants(pid))
        rss = proc_kib(pid, "VmRSS")
        return {
            "rss_mib": round(rss / 1024, 1),
            "hwm_mib": round(proc_kib(pid, "VmHWM") / 1024, 1),
            "tree_rss_mib": round((rss + tree) / 1024, 1),
        }

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.is_file() else ""

    def tracebacks(self) -> dict[str, Any]:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        lines = text.splitlines()
        last = [lines[i + 1 :][:40] for i, line in enumerate(lines) if line.startswith("Traceback")]
        ends = [next((x for x in tb if x and not x.startswith(" ")), "") for tb in last]
        return {"tracebacks": len(last), "last_lines": sorted(set(ends))[:10]}

    def stop(self) -> None:
        """SIGINT (uvicorn's graceful stop), then SIGTERM, then SIGKILL to its process group.
        A second Ctrl-C meanwhile is ignored: it would leave the server running."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                return
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    k = (len(xs) - 1) * q / 100
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def latency_ms(ok_ms: list[float]) -> dict[str, float | None]:
    """p50 / p90 / p99 / mean / max of sorted latencies in ms (None when there are none)."""
    out = {f"p{q}": percentile(ok_ms, q) for q in (50, 90, 99)}
    out["mean"] = sum(ok_ms) / len(ok_ms) if ok_ms else None
    out["max"] = ok_ms[-1] if ok_ms else None
    return {k: None if v is None else round(v, 1) for k, v in out.items()}


def drive(url: str, endpoint: str, make: Callable[[], dict[str, Any]], clients: int,
          args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """`clients` threads, each its own httpx.Client, request after request for args.warmup +
    args.seconds; the figures are of the requests started in the last args.seconds."""
    warmup, seconds, timeout = args.warmup, args.seconds, args.timeout
    records: list[tuple[float, float, str, bool]] = []  # (start, end, code, ok)
    window: dict[str, float] = {}
    gate = threading.Barrier(clients + 1)

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=timeout) as client:
            gate.wait()
            while (t := time.perf_counter()) < window["end"]:
                code, ok = call(client, endpoint, make())
                records.append((t, time.perf_counter(), code, ok))

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
    for th in threads:
        th.start()
    window["start"] = time.perf_counter() + warmup
    window["end"] = window["start"] + seconds
    gate.wait()
    for th in threads:
        th.join()
    counted = [r for r in records if r[0] >= window["start"]]
    span = max([window["end"], *(r[1] for r in counted)]) - window["start"]
    codes = Counter(r[2] for r in counted)
    ok_ms = sorted((r[1] - r[0]) * 1000 for r in counted if r[3])
    busy = codes.get("503", 0)
    errors = len(counted) - len(ok_ms)
    return {
        "endpoint": endpoint,
        "clients": clients,
        "window_s": round(span, 2),
        "requests": len(counted),
        "ok": len(ok_ms),
        "errors": errors,
        "busy": busy,
        "other_errors": errors - busy,
        "error_rate": round(errors / len(counted), 4) if counted else None,
        "status_codes": dict(sorted(codes.items())),
        "req_per_s": round(len(ok_ms) / span, 2),
        "answers_per_s": round(len(counted) / span, 2),
        "latency_ms": latency_ms(ok_ms),
        "warmup_requests": len(records) - len(counted),
    }


# --- the run ------------------------------------------------------------------------------------
def pick_models(url: str, args: argparse.Namespace) -> tuple[str | None, str | None, list[str]]:
    models = httpx.get(url + "/api/models", timeout=30).json()["models"]
    by_name = {m["name"]: m for m in models}
    gens = [m["name"] for m in models if m["kind"] == "generator" and m.get("output") == "midi"]
    recs = [m["name"] for m in models if m["kind"] == "recommender"]
    gen = args.generator or (gens[0] if gens else None)
    rec = args.recommender or (recs[0] if recs else None)
    for flag, name in (("--generator", args.generator), ("--recommender", args.recommender)):
        if name is not None and name not in by_name:
            sys.exit(f"{flag} {name}: the service has no such model; it serves {sorted(by_name)}")
    missing = [what for what, name, endpoint in (
        ("generator with MIDI output", gen, "generate"), ("recommender", rec, "recommend"),
    ) if name is None and endpoint in args.endpoints]  # fmt: skip
    if missing:
        sys.exit(f"{args.checkpoints} holds no {' and no '.join(missing)} (the service serves "
                 f"{sorted(by_name) or 'nothing'}): {MAKE_THEM}")  # fmt: skip
    users = by_name[rec].get("users", []) if rec else []
    return gen, rec, users


def provenance(command: str, seconds: float, load_before: Sequence[float]) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )

    def git(*a: str) -> str:
        done = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "unknown"

    try:
        torch = version("torch")
    except PackageNotFoundError:
        torch = "absent"
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return {
        "command": command,
        "machine": f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GiB RAM, Python "
        f"{platform.python_version()}, torch {torch}, httpx {version('httpx')}, CPU",
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "wall_seconds": round(seconds, 1),
        "load_average_before_after": [list(load_before), [round(x, 2) for x in os.getloadavg()]],
    }


def table(
    cells: list[dict[str, Any]], memory: dict[str, Any], faults: dict[str, Any] | None
) -> str:
    lines = [
        f"{'round':>5s} {'endpoint':10s} {'clients':>7s} {'ok req/s':>9s} {'p50 ms':>8s} "
        f"{'p99 ms':>8s} {'errors':>7s} {'(503)':>6s} {'RSS after MiB':>14s}"
    ]
    for c in cells:
        p50, p99 = c["latency_ms"]["p50"], c["latency_ms"]["p99"]
        lines.append(
            f"{c.get('round', 1):5d} {c['endpoint']:10s} {c['clients']:7d} {c['req_per_s']:9.2f} "
            f"{p50 if p50 is not None else '-':>8} {p99 if p99 is not None else '-':>8} "
            f"{c['errors']:7d} {c['busy']:6d} {c['memory']['tree_rss_mib']:14.1f}"
        )
    lines.append(
        f"server RSS {memory['start']['tree_rss_mib']} -> {memory['end']['tree_rss_mib']} MiB "
        f"(growth {memory['growth_mib']:+.1f}, peak {memory['end']['hwm_mib']}); after each "
        f"round {memory['rss_after_round_mib']} MiB (last - first "
        f"{memory['growth_after_first_round_mib']:+.1f})"
    )
    if faults is not None:
        lines.append(
            f"faults: {faults['bad_4xx']}/{faults['bad_sent']} bad requests got a 4xx "
            f"({faults['bad_5xx']} a 5xx), {faults['valid_ok']}/{faults['valid_sent']} "
            f"valid ones after them succeeded: {'pass' if faults['passed'] else 'FAIL'}; "
            f"{faults['bad_4xx'] - faults['bad_as_spec']} not the spec's code, "
            f"{faults['bad_4xx'] - faults['bad_error_body_ok']} without the {{error, status}} body"
        )
    return "\n".join(lines)


def batch_counts(url: str) -> dict[str, float] | None:
    """The service's batched-generation counters from /metrics (sampling loops drawn, generate
    requests and pieces in them); None when it has none (a service without batching)."""
    try:
        text = httpx.get(url + "/metrics", timeout=30).text
    except httpx.HTTPError:
        return None
    found = dict(re.findall(r"^(cadenza_batch_(?:requests|rows)_(?:count|sum)) (\S+)$", text,
                            flags=re.MULTILINE))  # fmt: skip
    return {k: float(v) for k, v in found.items()} if len(found) == 4 else None


def batches_between(before: dict[str, float] | None, after: dict[str, float] | None
                    ) -> dict[str, Any] | None:  # fmt: skip
    """Sampling loops drawn in a cell, and the generate requests and pieces they held."""
    if before is None or after is None:
        return None
    loops = after["cadenza_batch_requests_count"] - before["cadenza_batch_requests_count"]
    requests = after["cadenza_batch_requests_sum"] - before["cadenza_batch_requests_sum"]
    rows = after["cadenza_batch_rows_sum"] - before["cadenza_batch_rows_sum"]
    return {"loops": int(loops), "requests": int(requests), "rows": int(rows),
            "requests_per_loop": round(requests / loops, 2) if loops else None}  # fmt: skip


def measure(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    health, startup = server.wait_ready(args.start_timeout)
    url = server.url
    print(f"cadenza-serve up on {url} in {startup:.1f} s: {json.dumps(health)}", flush=True)
    gen, rec, users = pick_models(url, args)
    after_startup = server.memory()
    bodies = Bodies(gen, rec, users, args.bars, args.render, args.explain)
    for endpoint in args.endpoints:  # first requests load lazily built state; not counted
        with httpx.Client(base_url=url, timeout=args.timeout) as client:
            for _ in range(3):
                code, ok = call(client, endpoint, getattr(bodies, endpoint)())
                if not ok:
                    sys.exit(
                        f"warm-up {endpoint} failed with {code}; server log:\n{server.log_tail()}"
                    )
    timeline = [{"at": "start", **server.memory(), **dir_stats(server.work_dir)}]
    print(
        f"models: generator {gen}, recommender {rec} ({len(users)} users listed); "
        f"after warm-up {timeline[0]}",
        flush=True,
    )
    cells, after_round = [], []
    # Every round repeats the same cells: the first warms the allocator, caches and every
    # thread's buffers; a leak shows as RSS that keeps rising from one round to the next.
    for rnd in range(1, args.rounds + 1):
        for endpoint in args.endpoints:
            for clients in args.levels:
                before = batch_counts(url)
                cell = drive(url, endpoint, getattr(bodies, endpoint), clients, args)
                cell["batches"] = batches_between(before, batch_counts(url))
                cell["round"] = rnd
                cell["memory"] = server.memory()
                cell["disk"] = dir_stats(server.work_dir)
                at = f"round {rnd} {endpoint} x{clients}"
                timeline.append({"at": at, **cell["memory"], **cell["disk"]})
                cells.append(cell)
                batched = cell["batches"] and cell["batches"]["requests_per_loop"]
                print(
                    f"{at}: {cell['req_per_s']} ok/s, p50 "
                    f"{cell['latency_ms']['p50']} ms, {cell['errors']} errors "
                    f"{cell['status_codes']}, RSS {cell['memory']['tree_rss_mib']} MiB"
                    + (f", {batched} requests per sampling loop" if batched else ""),
                    flush=True,
                )
        after_round.append(server.memory()["tree_rss_mib"])
    faults = None
    if args.faults:
        # GET /api/health names the service's limits; the spec's default where it does not
        max_upload = health.get("limits", {}).get("max_upload_bytes", MIB)
        faults = run_faults(url, bodies, args.endpoints, max_upload, args)
        faults["memory_after"] = server.memory()
        timeline.append({"at": "faults", **faults["memory_after"], **dir_stats(server.work_dir)})
        print(
            f"faults: {json.dumps({k: v for k, v in faults.items() if k != 'cases'})}", flush=True
        )
    try:
        health_end = httpx.get(url + "/api/health", timeout=30).json()
    except (httpx.HTTPError, ValueError) as e:
        health_end = {"error": f"{type(e).__name__}: {e}"}
    timeline.append({"at": "end", **server.memory(), **dir_stats(server.work_dir)})
    start, end = timeline[0], timeline[-1]
    disk = ("work_dir_mib", "jobs_on_disk", "uploads_on_disk")
    params = ("endpoints", "levels", "rounds", "seconds", "warmup", "bars", "render", "explain",
              "timeout")  # fmt: skip
    return {
        "parameters": {k: getattr(args, k) for k in params}
        | {"generator": gen, "recommender": rec, "users_cycled": len(users),
           "server_args": server.args},
        "server": {"startup_s": round(startup, 2), "health_start": health,
                   "health_end": health_end, "log": server.tracebacks()},
        "cells": cells,
        "memory": {"after_startup": after_startup, "start": start, "end": end,
                   "growth_mib": round(end["tree_rss_mib"] - start["tree_rss_mib"], 1),
                   "rss_after_round_mib": after_round,
                   "growth_after_first_round_mib": round(after_round[-1] - after_round[0], 1),
                   "timeline": timeline},
        "work_dir": {"keep_jobs": KEEP_JOBS, "before": {k: start[k] for k in disk},
                     "after": {k: end[k] for k in disk}},
        "faults": faults,
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per cell")
    ap.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds before each cell")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16], help="concurrent clients")
    ap.add_argument("--rounds", type=int, default=2, help="times every cell is run (leak check)")
    ap.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=ENDPOINTS)
    ap.add_argument("--generator", help="default: the first generator with MIDI output")
    ap.add_argument("--recommender", help="default: the first recommender")
    ap.add_argument("--bars", type=float, default=4.0, help="bars per generated piece")
    ap.add_argument("--render", action="store_true", help="generate: also render WAV")
    ap.add_argument("--explain", action=argparse.BooleanOptionalAction, default=True,
                    help="recommend: each pick with its reasons (the API's default)")  # fmt: skip
    ap.add_argument("--workers", type=int, help="the service's workers= (default: its own)")
    ap.add_argument("--faults", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--fault-seconds", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=120.0, help="client timeout per request, s")
    ap.add_argument("--start-timeout", type=float, default=180.0, help="s to wait for /api/health")
    ap.add_argument(
        "--server-arg",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="more cadenza-serve overrides, e.g. log_level=warning",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python benchmarks/service_load.py", *given])
    if not args.checkpoints.exists() or not any(args.checkpoints.rglob("*.ckpt")):
        sys.exit(f"no checkpoints under {args.checkpoints}: {MAKE_THEM}, or pass --checkpoints DIR")
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    # SIGTERM ends the run like Ctrl-C does, so the server is stopped in `finally` either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("service_load: terminated"))
    with tempfile.TemporaryDirectory(prefix="cadenza-load-") as tmp:
        server = Server(args.checkpoints, Path(tmp), args.workers, args.server_arg)
        try:
            results = measure(args, server)
        except KeyboardInterrupt:
            sys.exit("service_load: interrupted; the server is stopped and nothing was written")
        finally:
            server.stop()
    results["provenance"] = provenance(command, time.perf_counter() - started, load_before)
    write_atomically(args.out, json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    print(table(results["cells"], results["memory"], results["faults"]))


if __name__ == "__main__":
    main()
