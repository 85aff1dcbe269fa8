"""Sampling latency of the token families: 16 bars, n=1 and n=8, LSTM against Transformer on the
same codec, and the Transformer with and without its key/value cache.

    python benchmarks/sampling_latency.py [--threads 2] [--repeats 3]

Latency does not depend on training, so the models are freshly initialised at the sizes of the
experiments named below; every run writes exactly 16 bars (the end token is banned, as are PAD
and BOS), the codec's `steps_for_bars(16)` tokens after BOS, with temperature 1 and a fixed seed.
Median of `--repeats` runs (one run without the cache, which is quadratic in length).
Results: benchmarks/results/sampling_latency.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from cadenza.models import LSTMModule, TransformerModule
from cadenza.representations import EventCodec, MidiTokCodec
from cli_runs import provenance, save_entry, use_threads

RESULTS = Path(__file__).parent / "results" / "sampling_latency.json"
BARS = 16
# (codec, the sizes of the experiments that use it)
SETUPS = {
    "events (midi_folder_lstm's codec)": EventCodec(max_note_seconds=5.0),
    "miditok REMI, base vocabulary": MidiTokCodec(),
}
LSTM_SIZE = {"hidden_size": 512, "num_layers": 2, "dropout": 0.1, "embedding_dim": 256}
TRANSFORMER_SIZE = {"d_model": 256, "n_layers": 4, "n_heads": 4, "dropout": 0.1}


def latency(model: torch.nn.Module, n: int, steps: int, repeats: int, **kw: bool) -> float:
    net = model.net
    prefix = torch.full((n, 1), model.bos_id, dtype=torch.long)
    banned = (model.pad_id, model.bos_id, model.eos_id)
    times = []
    for r in range(repeats):
        g = torch.Generator().manual_seed(r)
        started = time.perf_counter()
        tokens, _ = net.generate(prefix, steps, eos_id=model.eos_id, banned=banned,
                                 generator=g, **kw)  # fmt: skip
        times.append(time.perf_counter() - started)
        assert tokens.shape == (n, steps + 1)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    threads = use_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for name, codec in SETUPS.items():
        steps = codec.steps_for_bars(BARS)
        lstm = LSTMModule(codec.to_dict(), **LSTM_SIZE).eval()
        tf = TransformerModule(codec.to_dict(), **TRANSFORMER_SIZE).eval()
        for n in (1, 8):
            reps = args.repeats
            row = {
                "codec": name,
                "tokens": steps,
                "n": n,
                "lstm_s": latency(lstm, n, steps, reps),
                "transformer_cached_s": latency(tf, n, steps, reps, use_cache=True),
                # Quadratic in length: one run is enough to see the cache's worth.
                "transformer_uncached_s": latency(tf, n, steps, 1, use_cache=False),
            }
            row["cache_speedup"] = row["transformer_uncached_s"] / row["transformer_cached_s"]
            row["cached_over_lstm"] = row["transformer_cached_s"] / row["lstm_s"]
            rows.append(row)
            print(row, flush=True)
    entry = {
        "bars": BARS,
        "rows": rows,
        "lstm": LSTM_SIZE,
        "transformer": TRANSFORMER_SIZE,
        "params": {
            "lstm": sum(p.numel() for p in lstm.parameters()),
            "transformer": sum(p.numel() for p in tf.parameters()),
        },  # fmt: skip
        "torch_threads": threads,
        **provenance("python benchmarks/sampling_latency.py " + " ".join(sys.argv[1:]), 0.0),
    }
    entry.pop("train_seconds")
    save_entry(RESULTS, "tokens", entry)
    print(f"\n{'codec':<36} {'tokens':>6} {'n':>2} {'LSTM s':>8} {'TF cached s':>11} "
          f"{'TF no cache s':>13} {'cache x':>7}")  # fmt: skip
    for r in rows:
        print(f"{r['codec']:<36} {r['tokens']:>6} {r['n']:>2} {r['lstm_s']:>8.3f} "
              f"{r['transformer_cached_s']:>11.3f} {r['transformer_uncached_s']:>13.3f} "
              f"{r['cache_speedup']:>7.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
