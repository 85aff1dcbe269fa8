"""Sampling latency of the LSTM and the Transformer families: 16 bars, n=1 and n=8, on the same
codec, and the Transformer with and without its key/value cache, with one key/value head shared
by its four query heads (the experiments' n_kv_heads=1) and with four (plain multi-head
attention). Tokens (events, MidiTok REMI) and piano-roll frames (the demo's codec and JSB's, a
NADE over each frame's keys in both families).

    python benchmarks/sampling_latency.py [--threads 2] [--repeats 3] [--kind tokens|frames]

Latency hardly depends on training, so the models are freshly initialised at the sizes of the
experiments named below (frame models with a chorale's note density: `chorale_density`); every
run writes exactly 16 bars (for tokens the end token is banned, as are PAD and BOS: the codec's
`steps_for_bars(16)` tokens after BOS), with temperature 1 and a fixed seed. One untimed short
run first (thread pools, allocator), then the median of `--repeats` runs, the models taking turns
run by run (tokens: one run without the cache, which is quadratic in length and takes minutes).
Results: benchmarks/results/sampling_latency.json, one entry per kind.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from cadenza.models import LSTMModule, TransformerModule
from cadenza.representations import EventCodec, MidiTokCodec, PianoRollCodec
from cli_runs import provenance, save_entry, use_threads

RESULTS = Path(__file__).parent / "results" / "sampling_latency.json"
BARS = 16
# Per kind: name -> (codec, LSTM size, Transformer size), the sizes of the experiments named.
TOKEN_LSTM = {"hidden_size": 512, "num_layers": 2, "dropout": 0.1, "embedding_dim": 256}
TOKEN_TRANSFORMER = {"d_model": 256, "n_layers": 4, "n_heads": 4, "n_kv_heads": 1, "dropout": 0.1}
JSB_LSTM = {"hidden_size": 300, "nade_hidden": 150, "embedding_dim": 0, "dropout": 0.5}
JSB_TRANSFORMER = {"d_model": 128, "n_layers": 3, "n_heads": 4, "n_kv_heads": 1, "dropout": 0.2,
                   "nade_hidden": 150}  # fmt: skip
SETUPS = {
    "tokens": {
        "events (midi_folder_lstm / pop909_transformer sizes)": (
            EventCodec(max_note_seconds=5.0), TOKEN_LSTM, TOKEN_TRANSFORMER,
        ),
        "miditok REMI, base vocabulary (same sizes)": (
            MidiTokCodec(), TOKEN_LSTM, TOKEN_TRANSFORMER,
        ),
    },
    "frames": {
        "pianoroll, the demo's (bach_lstm; jsb_transformer size)": (
            PianoRollCodec(steps_per_beat=2, low_pitch=36, high_pitch=84),
            {"hidden_size": 256, "nade_hidden": 128, "dropout": 0.3},
            JSB_TRANSFORMER | {"nade_hidden": 128},
        ),
        "pianoroll, JSB's (jsb_lstm; jsb_transformer)": (
            PianoRollCodec(steps_per_beat=1, low_pitch=21, high_pitch=108),
            JSB_LSTM, JSB_TRANSFORMER,
        ),
    },
}  # fmt: skip


def chorale_density(model: torch.nn.Module) -> None:
    """Four notes a frame, as in a chorale: a NADE samples note by note, so its cost grows with
    the notes of a frame, and a fresh model's frames hold half the keys. The visible bias is
    set to the log-odds of 4 keys in D, as training would bring it, in both families alike."""
    D = model.codec.feature_dim
    with torch.no_grad():
        model.net.to_bv.bias.fill_(math.log(4 / (D - 4)))


def run_once(model: torch.nn.Module, n: int, steps: int, seed: int, **kw: bool) -> None:
    net, g = model.net, torch.Generator().manual_seed(seed)
    if model.is_frames:
        frames = net.generate(n, steps, generator=g, **kw)
        assert frames.shape == (n, steps, model.codec.feature_dim)
        return
    prefix = torch.full((n, 1), model.bos_id, dtype=torch.long)
    banned = (model.pad_id, model.bos_id, model.eos_id)
    tokens, _ = net.generate(prefix, steps, eos_id=model.eos_id, banned=banned, generator=g, **kw)
    assert tokens.shape == (n, steps + 1)


def latencies(runs: dict[str, tuple], n: int, steps: int, repeats: int) -> dict[str, float]:
    """Median seconds of each run (name -> (model, generate keywords)), the runs interleaved
    repeat by repeat, so a slow spell of this shared VM falls on all of them alike rather than
    on whichever ran then (the ratios between them are the point)."""
    for model, kw in runs.values():
        run_once(model, n, min(steps, 16), seed=99, **kw)  # warm-up, untimed
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(repeats):
        for name, (model, kw) in runs.items():
            started = time.perf_counter()
            run_once(model, n, steps, seed=r, **kw)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def measure(kind: str, repeats: int) -> list[dict]:
    rows = []
    for name, (codec, lstm_size, tf_size) in SETUPS[kind].items():
        steps = codec.steps_for_bars(BARS)
        lstm = LSTMModule(codec.to_dict(), **lstm_size).eval()
        tf = TransformerModule(codec.to_dict(), **tf_size).eval()
        # The same Transformer with one key/value head per query head (plain multi-head).
        mha = TransformerModule(codec.to_dict(), **(tf_size | {"n_kv_heads": None})).eval()
        if kind == "frames":
            for model in (lstm, tf, mha):
                chorale_density(model)
        for n in (1, 8):
            row = {
                "codec": name,
                "lstm": lstm_size,
                "transformer": tf_size,
                "params": {
                    "lstm": sum(p.numel() for p in lstm.parameters()),
                    "transformer": sum(p.numel() for p in tf.parameters()),
                },
                "steps": steps,
                "n": n,
            }
            runs = {
                "lstm_s": (lstm, {}),
                "transformer_cached_s": (tf, {"use_cache": True}),
                "transformer_mha_cached_s": (mha, {"use_cache": True}),
            }
            uncached = {"transformer_uncached_s": (tf, {"use_cache": False})}
            if kind == "frames":  # under a second a run: timed like the others
                row |= latencies(runs | uncached, n, steps, repeats)
            else:  # quadratic in length, minutes at n=8: one run shows the cache's worth
                row |= latencies(runs, n, steps, repeats) | latencies(uncached, n, steps, 1)
            row["cache_speedup"] = row["transformer_uncached_s"] / row["transformer_cached_s"]
            row["cached_over_lstm"] = row["transformer_cached_s"] / row["lstm_s"]
            rows.append(row)
            print(row, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="the JSON written (default: the tracked results file)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kind", choices=[*SETUPS, "all"], default="all")
    args = ap.parse_args()
    threads = use_threads(args.threads)
    for kind in SETUPS if args.kind == "all" else [args.kind]:
        torch.manual_seed(0)
        rows = measure(kind, args.repeats)
        entry = {
            "bars": BARS,
            "rows": rows,
            "torch_threads": threads,
            **provenance("python benchmarks/sampling_latency.py " + " ".join(sys.argv[1:]), 0.0),
        }
        entry.pop("train_seconds")
        save_entry(args.results, kind, entry)
        print(f"\n{'codec':<56} {'steps':>6} {'n':>2} {'LSTM s':>8} {'TF cached s':>11} "
              f"{'TF no cache s':>13} {'cache x':>7} {'TF/LSTM':>7} {'MHA s':>7}")  # fmt: skip
        for r in rows:
            print(f"{r['codec']:<56} {r['steps']:>6} {r['n']:>2} {r['lstm_s']:>8.3f} "
                  f"{r['transformer_cached_s']:>11.3f} {r['transformer_uncached_s']:>13.3f} "
                  f"{r['cache_speedup']:>7.1f} {r['cached_over_lstm']:>7.2f} "
                  f"{r['transformer_mha_cached_s']:>7.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
