"""One key floods the service; how long does another key wait? (`max_requests_per_key`)

Starts the real `cadenza-serve` (as `service_load.py` does: loopback, a free port, a fresh
work_dir) with a keys file of two generate keys, once for each `--shares` value of
`max_requests_per_key` (`none`: no share, as before it existed). For `--warmup` + `--seconds`:

- the *flood* key runs `--flood-clients` threads, each sending its next POST /api/generate as
  soon as the last is answered; after a 429 it waits the answer's Retry-After (1 s), as HTTP
  client libraries' retry policies do, or with `--ignore-retry-after` 50 ms (a script gone
  wrong: its 429s then take the machine's CPU too);
- the *other* key runs one client, request after request, as a person in the studio would.

Every request is `{"model": GEN, "n": 1, "bars": --bars, "seed": <new>, "render": --render}`;
with `--unbatched` each also gets a temperature of its own (1 + seed x 1e-4), so that no two
share a sampling loop, as requests with other controls (or interpolations, renders) do not.
Figures are of the requests started after the warm-up: the other key's answers (2xx, 503s) and
latency (p50 / p90 / max of its 2xx), the flood's 2xx per second, 429s and 503s, and the
server's CPU over the window (its process tree's user + system seconds, and as cores busy). The
service's `queue_timeout_s` is 30 s: a request that waits longer for a worker is a 503.

    python benchmarks/service_fairness.py --checkpoints checkpoints --generator bach_lstm

Writes benchmarks/results/service_fairness.json ({"parameters", "runs": [{share, other,
flood}], "provenance"}) and prints the table last. The clients share the machine with the
server: on 2 cores the figures say how the workers are shared, not what the server alone does.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from cadenza.atomic import write_atomically
from cadenza.serve.auth import key_entry, new_key
from service_load import Server, descendants, latency_ms, provenance

RESULTS = Path(__file__).parent / "results" / "service_fairness.json"


def run_share(args: argparse.Namespace, share: str, work: Path) -> dict[str, Any]:
    """One service with max_requests_per_key=`share`, flooded by one key while the other asks."""
    keys = {"flood": new_key(), "other": new_key()}
    keys_file = work / "keys.yaml"
    entries = [key_entry(name, secret, ["generate"], None) for name, secret in keys.items()]
    keys_file.write_text(yaml.safe_dump({"keys": entries}))
    most = "null" if share == "none" else share
    extra = [f"keys_file={keys_file}", f"max_requests_per_key={most}", "log_level=warning",
             *args.server_arg]  # fmt: skip
    server = Server(args.checkpoints, work, args.workers, extra)
    try:
        health, startup_s = server.wait_ready(args.start_timeout)
        models = httpx.get(server.url + "/api/models", timeout=30,
                           headers={"Authorization": f"Bearer {keys['other']}"}).json()  # fmt: skip
        gens = [m["name"] for m in models["models"] if m["kind"] == "generator"]
        generator = args.generator or gens[0]
        if generator not in gens:
            sys.exit(f"--generator {generator}: not a generator served from {args.checkpoints}")
        seeds = itertools.count(1)
        records: dict[str, list[tuple[float, float, str]]] = {"flood": [], "other": []}
        window = {"start": time.perf_counter() + args.warmup}
        window["end"] = window["start"] + args.seconds

        def client(who: str) -> None:
            headers = {"Authorization": f"Bearer {keys[who]}"}
            with httpx.Client(base_url=server.url, timeout=args.timeout, headers=headers) as c:
                while (t := time.perf_counter()) < window["end"]:
                    seed = next(seeds)
                    body = {"model": generator, "n": 1, "bars": args.bars, "seed": seed,
                            "render": args.render}  # fmt: skip
                    if args.unbatched:  # controls of its own: a sampling loop of its own
                        body["temperature"] = round(1.0 + seed * 1e-4, 4)
                    try:
                        answer = c.post("/api/generate", json=body)
                        code = str(answer.status_code)
                        retry_after = float(answer.headers.get("retry-after") or 1)
                    except httpx.HTTPError as e:
                        code = type(e).__name__
                    records[who].append((t, time.perf_counter(), code))
                    if code == "429":
                        time.sleep(0.05 if args.ignore_retry_after else retry_after)

        def cpu_seconds() -> float:  # the server's process tree, user + system
            ticks = os.sysconf("SC_CLK_TCK")
            total = 0.0
            for pid in (server.proc.pid, *descendants(server.proc.pid)):
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
            return total

        cpu: dict[str, float] = {}
        timer = threading.Timer(max(0.0, window["start"] - time.perf_counter()),
                                lambda: cpu.setdefault("start", cpu_seconds()))  # fmt: skip
        timer.start()
        threads = [threading.Thread(target=client, args=("flood",), daemon=True)
                   for _ in range(args.flood_clients)]  # fmt: skip
        threads.append(threading.Thread(target=client, args=("other",), daemon=True))
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        # The server's CPU over the window (from its start to the last answer): what 429s cost
        # it, apart from the clients' own CPU on the same machine.
        span_s = max(r[1] for rows in records.values() for r in rows) - window["start"]
        server_cpu = round(cpu_seconds() - cpu.get("start", 0.0), 1)
        out: dict[str, Any] = {"share": share, "generator": generator, "workers": health["workers"],
                               "startup_s": round(startup_s, 1), "server_cpu_s": server_cpu,
                               "server_cores_busy": round(server_cpu / span_s, 2)}  # fmt: skip
        for who, rows in records.items():
            counted = [r for r in rows if r[0] >= window["start"]]
            ok_ms = sorted((end - start) * 1000 for start, end, code in counted
                           if code.startswith("2"))  # fmt: skip
            span = max([window["end"], *(r[1] for r in counted)]) - window["start"]
            out[who] = {"clients": args.flood_clients if who == "flood" else 1,
                        "requests": len(counted), "ok": len(ok_ms),
                        "ok_per_s": round(len(ok_ms) / span, 2),
                        "status_codes": dict(sorted(Counter(r[2] for r in counted).items())),
                        "latency_ms": latency_ms(ok_ms)}  # fmt: skip
        out["server"] = server.tracebacks()
        return out
    finally:
        server.stop()


def table(runs: list[dict[str, Any]]) -> str:
    lines = [f"{'share':>6s} | {'other: ok':>9s} {'503':>4s} {'p50 ms':>8s} {'p90 ms':>8s} "
             f"{'max ms':>8s} | {'flood: ok/s':>11s} {'429':>5s} {'503':>4s} | "
             f"{'server cores':>12s}"]  # fmt: skip
    for r in runs:
        o, f = r["other"], r["flood"]
        lat = o["latency_ms"]

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f}"

        lines.append(
            f"{r['share']:>6s} | {o['ok']:>4d}/{o['requests']:<4d} "
            f"{o['status_codes'].get('503', 0):>4d} {ms(lat['p50']):>8s} {ms(lat['p90']):>8s} "
            f"{ms(lat['max']):>8s} | {f['ok_per_s']:>11.2f} {f['status_codes'].get('429', 0):>5d} "
            f"{f['status_codes'].get('503', 0):>4d} | {r['server_cores_busy']:>12.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    ap.add_argument("--generator", help="default: the first generator served")
    ap.add_argument("--shares", nargs="+", default=["none", "8"],
                    help="max_requests_per_key values to compare (none: no share)")  # fmt: skip
    ap.add_argument("--flood-clients", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--bars", type=float, default=4.0)
    ap.add_argument("--render", action="store_true", help="each piece also rendered to WAV")
    ap.add_argument("--unbatched", action="store_true",
                    help="each request a temperature of its own, so no two share a sampling "
                    "loop (serve/batching.py batches requests with the same controls)")  # fmt: skip
    ap.add_argument("--ignore-retry-after", action="store_true",
                    help="the flood retries a 429 after 50 ms, not its Retry-After")  # fmt: skip
    ap.add_argument("--workers", type=int, default=None, help="the service's workers=")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--start-timeout", type=float, default=180.0)
    ap.add_argument("--server-arg", nargs="+", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    for share in args.shares:
        if share != "none" and (not share.isdigit() or int(share) < 1):
            sys.exit(f"--shares: each a whole number >= 1 or none, got {share!r}")
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python benchmarks/service_fairness.py", *given])
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("service_fairness: terminated"))
    runs = []
    for share in args.shares:
        with tempfile.TemporaryDirectory(prefix="cadenza-fair-") as tmp:
            runs.append(run_share(args, share, Path(tmp)))
        print(table(runs[-1:]).splitlines()[-1], flush=True)
    params = {k: v for k, v in vars(args).items() if k not in ("out", "checkpoints")}
    made = provenance(command, time.perf_counter() - started, load_before)
    results = {"parameters": params | {"queue_timeout_s": 30}, "runs": runs, "provenance": made}
    write_atomically(args.out, json.dumps(results, indent=1, default=str))
    print(f"wrote {args.out}")
    print(table(runs))


if __name__ == "__main__":
    main()
