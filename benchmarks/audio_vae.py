"""Mel VAE on rendered POP909: held-out reconstruction of 2-second log-mel patches, beside the
baselines a reader would ask for, in the same units.

    python benchmarks/audio_vae.py [--minutes 20] [--root DIR]

Trains `experiment=pop909_audio_vae` through the CLI for `--minutes` (the first minute of each
of POP909's 909 songs, rendered once with FluidSynth and the GM SoundFont), then scores every
test window of the canonical hash split:

- mel VAE: decode(encoder mean), the model as a producer reconstructs;
- PCA: the best linear code of the same size (latent_size components, fit on up to 8,000
  training windows) -- the tuned linear baseline: for squared error no linear code does better;
- mean frame: every frame replaced by the training set's mean frame (a floor).

Errors are mean absolute error in dB and log-spectral distance (RMS over mel bands, per frame,
averaged) in dB. Results: benchmarks/results/audio_vae.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cadenza.atomic import write_atomically
from cli_runs import max_time, provenance, run_train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "audio_vae.json"


def windows(datamodule, split: str, limit: int | None = None) -> torch.Tensor:
    ds = datamodule.dataset(split, training=False)
    idx = (
        range(len(ds))
        if limit is None or limit >= len(ds)
        else np.linspace(0, len(ds) - 1, limit).astype(int)
    )
    return torch.stack([ds[int(i)][0] for i in idx])  # [N, T, M] in [0, 1]


def errors_db(x: torch.Tensor, x_hat: torch.Tensor, top_db: float) -> dict[str, float]:
    err = (x - x_hat).double() * top_db  # [N, T, M] dB
    return {
        "recon_db": round(float(err.abs().mean()), 3),
        "lsd_db": round(float(err.pow(2).mean(-1).sqrt().mean()), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="the JSON written (default: the tracked results file)")  # fmt: skip
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--root", default="benchmarks/runs/audio_vae")
    ap.add_argument("overrides", nargs="*", help="extra cadenza-train overrides")
    args = ap.parse_args()
    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CADENZA_DATA", str(Path("../shared/data").resolve()))
    train_args = [
        "experiment=pop909_audio_vae", f"paths.root_dir={root}", "logger=csv",
        f"trainer.max_time={max_time(args.minutes)}", "trainer.max_epochs=1000", *args.overrides,
    ]  # fmt: skip
    seconds = run_train("pop909_audio_vae", train_args, root / "train.log")

    from hydra import compose, initialize_config_dir

    from cadenza.models import GenerativeModule
    from cadenza.paths import config_dir
    from cadenza.training.config import instantiate, register_resolvers

    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        cfg = compose("train", overrides=[a for a in train_args if not a.startswith("logger")])
    datamodule = instantiate(cfg.data)
    model = GenerativeModule.load(root / "checkpoints" / "pop909_audio_vae" / "latest.ckpt")
    top_db = model.codec.features.top_db
    test = windows(datamodule, "test")
    train = windows(datamodule, "train", limit=8000)
    N, T, M = test.shape

    rows: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    recon = torch.cat([model.reconstruct(test[i : i + 256]) for i in range(0, N, 256)])
    rows["mel VAE"] = {**errors_db(test, recon, top_db), "code": model.hparams.latent_size}
    vae_seconds = time.perf_counter() - started

    k = model.hparams.latent_size
    flat = train.reshape(len(train), -1).double()
    mean = flat.mean(0)
    _, _, V = torch.linalg.svd(flat - mean, full_matrices=False)  # V [min(N, D), D]
    basis = V[:k]  # [k, D]
    codes = (test.reshape(N, -1).double() - mean) @ basis.T
    pca = (codes @ basis + mean).reshape(N, T, M).clamp(0, 1).float()
    rows[f"PCA ({k} components)"] = {**errors_db(test, pca, top_db), "code": k}
    mean_frame = train.mean(dim=(0, 1))  # [M]
    rows["mean frame"] = {**errors_db(test, mean_frame.expand_as(test), top_db), "code": 0}

    metrics = {}
    for line in (root / "train.log").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("test/"):
            metrics[parts[0]] = float(parts[1])
    out = {
        "dataset": "POP909, first 60 s of each song rendered with FluidSynth (FluidR3_GM)",
        "windows": {"test": N, "train_for_pca": len(train), "frames": T, "mel_bands": M},
        "models": rows,
        "cli_test_metrics": metrics,
        "reconstruct_seconds_per_window": round(vae_seconds / N, 5),
        **provenance("python benchmarks/audio_vae.py " + " ".join(sys.argv[1:]), seconds),
    }
    write_atomically(args.results, json.dumps(out, indent=2))
    print(f"\nHeld-out reconstruction, {N} test windows of {T} frames x {M} mel bands")
    print("| model | code size | mean abs error (dB) | log-spectral distance (dB) |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['code']} | {r['recon_db']:.2f} | {r['lsd_db']:.2f} |")


if __name__ == "__main__":
    main()
