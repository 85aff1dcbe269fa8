"""In-process cost of one catalog recommendation, with and without its reasons, as the service
computes it (one exact index built once over the catalog, k=10, the hybrid method), and of the
reasons' integrated gradients in closed form against autograd.

    python benchmarks/recommend_latency.py --checkpoint checkpoints/styles_recommender [--threads 1]

Every listed listener of the checkpoint in turn (at most --users), one untimed pass, then the
median over --repeats passes of the mean milliseconds per recommendation. The service's HTTP
figures are benchmarks/service_load.py's; this isolates the model's share of them. Results:
benchmarks/results/recommend_latency.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from cadenza.recommend.explain import content_gradients
from cadenza.recommend.index import make_index
from cadenza.recommend.module import RecommenderModule
from cadenza.recommend.workflow import listener_history, recommend_catalog
from cli_runs import provenance, save_entry, use_threads

RESULTS = Path(__file__).parent / "results" / "recommend_latency.json"


class Opaque(torch.nn.Module):
    """The same content network, hidden from the closed form (so autograd runs)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def per_call_ms(fn, calls: int, repeats: int) -> float:
    fn()  # untimed: allocator, first-call paths
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - started) / calls * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--checkpoint", type=Path, default=Path("checkpoints/styles_recommender"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the service's: 1)")
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    threads = use_threads(args.threads)
    path = args.checkpoint
    if path.is_dir():
        found = sorted(path.rglob("*.ckpt"))
        if not found:
            sys.exit(f"no .ckpt under {path}: train one with cadenza-train "
                     "experiment=styles_recommender")  # fmt: skip
        path = found[-1]
    model = RecommenderModule.load(path).eval()
    with torch.no_grad():
        index = make_index("exact").build(model.catalog_embeddings().numpy())
    users = [str(u) for u in model.hparams.user_keys or []][: args.users]
    if not users:
        sys.exit(f"{path} lists no listeners")

    def every_user(explain: bool):
        return lambda: [recommend_catalog(model, user=u, k=10, index=index, explain=explain)
                        for u in users]  # fmt: skip

    row = {
        "checkpoint": str(path),
        "catalog_tracks": model.hparams.n_items,
        "users": len(users),
        "with_reasons_ms": per_call_ms(every_user(True), 1, args.repeats) / len(users),
        "without_reasons_ms": per_call_ms(every_user(False), 1, args.repeats) / len(users),
    }
    net = model.tracks.content
    if net is not None:  # the reasons' integrated gradients for 10 picks, both ways
        with torch.no_grad():
            taste = model.taste_of(listener_history(model, user=users[0]))
        t = taste.view(model.hparams.heads, -1)
        x, scale = model.item_features[:10], torch.ones(10, model.hparams.heads)
        with torch.no_grad():
            closed = content_gradients(net, x, t, scale)
            graph = content_gradients(Opaque(net), x, t, scale)
            row["gradients_max_abs_difference"] = float((closed - graph).abs().max())
            row["gradients_closed_form_ms"] = per_call_ms(
                lambda: content_gradients(net, x, t, scale), 200, args.repeats
            )
            row["gradients_autograd_ms"] = per_call_ms(
                lambda: content_gradients(Opaque(net), x, t, scale), 200, args.repeats
            )
    given = sys.argv[1:] if argv is None else argv
    command = "python benchmarks/recommend_latency.py " + " ".join(given)
    entry = {"rows": [row], "torch_threads": threads, **provenance(command, 0.0)}
    entry.pop("train_seconds")
    save_entry(args.out, "catalog", entry)
    print(f"{'what':<44} {'ms':>8}")
    for key, value in row.items():
        if key.endswith("_ms"):
            print(f"{key:<44} {value:>8.3f}")
    if "gradients_max_abs_difference" in row:
        print(f"{'gradients: closed form - autograd, max abs':<44} "
              f"{row['gradients_max_abs_difference']:>8.1e}")  # fmt: skip
    return row


if __name__ == "__main__":
    main()
