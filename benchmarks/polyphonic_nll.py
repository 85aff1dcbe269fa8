"""Polyphonic music NLL on the four Boulanger-Lewandowski (2012) datasets, canonical splits.

Test NLL in nats per time step: -log p(frame) summed over the 88 keys, averaged over all test
frames, with the model chosen on validation (the definition of Boulanger-Lewandowski 2012 and
Bai et al. 2018). Trains our LSTM-NADE (LSTMModule, the same code as `cadenza-train`) and also
measures training throughput of the LightningModule against a bare PyTorch loop running the
same nn.Module on the same batches.

    python benchmarks/polyphonic_nll.py                    # all four datasets
    python benchmarks/polyphonic_nll.py --dataset jsb      # one
    python benchmarks/polyphonic_nll.py --dataset jsb --minutes 2 --threads 2

Writes benchmarks/results/polyphonic_nll.json as
{"<dataset>": {"test_nll", "valid_nll", "params", "train_seconds", ...}} (other datasets' entries
are kept), and prints the table last.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

from cadenza.data import MusicDataModule
from cadenza.data.sources import BoulangerSource
from cadenza.models import LSTMModule
from cadenza.representations import PianoRollCodec
from cadenza.training.checkpoint_io import AtomicCheckpointIO

RESULTS = Path(__file__).parent / "results" / "polyphonic_nll.json"

# Per dataset: steps per beat of the canonical rolls and training settings chosen on validation.
SETTINGS = {
    "jsb": dict(spb=1, window=None, batch=16, minutes=5.0, patience=20, dropout=0.5, lr=3e-3),
    "nottingham": dict(spb=2, window=100, batch=32, minutes=15.0, patience=8, dropout=0.3, lr=3e-3),
    "musedata": dict(spb=2, window=100, batch=32, minutes=15.0, patience=8, dropout=0.3, lr=3e-3),
    "piano_midi": dict(spb=2, window=100, batch=16, minutes=10.0, patience=8, dropout=0.5, lr=3e-3),
}

# Published test NLL (nats per time step). Boulanger-Lewandowski et al. 2012 (RNN-NADE),
# Bai et al. 2018 (LSTM, TCN), Vohra et al. 2015 (DBN-LSTM).
PUBLISHED = {
    "jsb": {"LSTM": 8.45, "TCN": 8.10, "RNN-NADE": 5.56, "DBN-LSTM": 3.47},
    "nottingham": {"LSTM": 3.29, "TCN": 3.07, "RNN-NADE": 2.31, "DBN-LSTM": 1.32},
    "musedata": {"RNN-NADE": 5.60},
    "piano_midi": {"RNN-NADE": 7.05},
}


def build(name: str, args: argparse.Namespace, cache: Path) -> tuple[MusicDataModule, LSTMModule]:
    s = SETTINGS[name]
    codec = PianoRollCodec(steps_per_beat=s["spb"], low_pitch=21, high_pitch=108)
    dm = MusicDataModule(
        BoulangerSource(name),
        codec,
        cache_dir=str(cache),
        batch_size=s["batch"],
        train_window=s["window"],
        transpose=None,
    )
    lr = args.lr or s["lr"]
    dropout = s["dropout"] if args.dropout is None else args.dropout
    model = LSTMModule(
        codec.to_dict(),
        hidden_size=args.hidden,
        nade_hidden=args.nade_hidden,
        dropout=dropout,
        embedding_dim=args.embedding,
        optimizer=partial(torch.optim.Adam, lr=lr),
        # Halve the step size when validation stalls: the last few tenths of a nat come late.
        scheduler=partial(
            torch.optim.lr_scheduler.ReduceLROnPlateau,
            mode="min",
            factor=0.5,
            patience=args.plateau,
        )
        if args.plateau
        else None,
    )
    return dm, model


def train_and_test(name: str, args: argparse.Namespace, cache: Path) -> dict:
    pl.seed_everything(args.seed, workers=True)
    dm, model = build(name, args, cache)
    minutes = args.minutes or SETTINGS[name]["minutes"]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = ModelCheckpoint(dirpath=tmp, monitor="val/nll", mode="min", save_top_k=1)
        stop = EarlyStopping(monitor="val/nll", mode="min", patience=SETTINGS[name]["patience"])
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=args.max_epochs,
            max_time={"minutes": minutes},
            gradient_clip_val=args.clip,
            logger=False,
            callbacks=[ckpt, stop],
            enable_progress_bar=False,
            enable_model_summary=False,
            plugins=[AtomicCheckpointIO()],
        )
        t0 = time.perf_counter()
        trainer.fit(model, datamodule=dm)
        train_seconds = time.perf_counter() - t0
        test = trainer.test(model, datamodule=dm, ckpt_path=ckpt.best_model_path, verbose=False)
    return {
        "test_nll": round(float(test[0]["test/nll"]), 4),
        "valid_nll": round(float(ckpt.best_model_score), 4),
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(train_seconds, 1),
        "epochs": trainer.current_epoch,
        "train_frames": dm.split("train").total_steps,
        "test_frames": dm.split("test").total_steps,
    }


class _StepTimer(Callback):
    """Wall time of training batches after `warmup` batches."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.t1 = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if batch_idx == self.warmup:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.t1 = time.perf_counter()


def _bare_run(
    name: str, args: argparse.Namespace, cache: Path, batches: list, warmup: int
) -> float:
    """Seconds for batches[warmup:] in a plain PyTorch loop (Adam + clipping, as Lightning)."""
    torch.manual_seed(args.seed)
    _, model = build(name, args, cache)
    net = model.net.train()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr or SETTINGS[name]["lr"])
    for i, batch in enumerate(batches):
        if i == warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nll, count = net.loss(batch)
        (nll / count).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), args.clip)
        opt.step()
    return time.perf_counter() - t0


def _lightning_run(
    name: str, args: argparse.Namespace, cache: Path, batches: list, warmup: int
) -> float:
    """Seconds for batches[warmup:] through LSTMModule in a Trainer."""
    torch.manual_seed(args.seed)
    _, model = build(name, args, cache)
    timer = _StepTimer(warmup)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        gradient_clip_val=args.clip,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer],
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    trainer.fit(model, train_dataloaders=loader)
    return timer.t1 - timer.t0


def throughput(
    name: str, args: argparse.Namespace, cache: Path, n_batches: int = 60, repeats: int = 3
) -> dict:
    """Training frames per second: LightningModule in a Trainer vs a bare loop, same nn.Module
    and the same batches. The two alternate `repeats` times and the medians are compared, so
    drift on a shared machine hits both alike."""
    warmup = 5
    # Constant step size: a plateau scheduler needs val/nll, and this run has no validation.
    args = argparse.Namespace(**{**vars(args), "plateau": 0})
    dm, _ = build(name, args, cache)
    dm.setup("fit")
    torch.manual_seed(args.seed)
    loader = dm.train_dataloader()
    batches = []
    while len(batches) < n_batches:
        batches.extend(loader)
    batches = batches[:n_batches]
    frames = sum(int(b.lengths.sum()) for b in batches[warmup:])
    bare, lightning = [], []
    for _ in range(repeats):
        bare.append(frames / _bare_run(name, args, cache, batches, warmup))
        lightning.append(frames / _lightning_run(name, args, cache, batches, warmup))
    bare_fps, lightning_fps = statistics.median(bare), statistics.median(lightning)
    return {
        "bare_frames_per_s": round(bare_fps, 1),
        "lightning_frames_per_s": round(lightning_fps, 1),
        "lightning_over_bare": round(lightning_fps / bare_fps, 3),
        "throughput_runs": repeats,
        "throughput_batches_timed": n_batches - warmup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=[*SETTINGS, "all"], default="all")
    parser.add_argument("--minutes", type=float, default=None, help="training budget per dataset")
    parser.add_argument("--max-epochs", type=int, default=500)
    parser.add_argument("--hidden", type=int, default=300)
    parser.add_argument("--nade-hidden", type=int, default=150)
    parser.add_argument("--embedding", type=int, default=0, help="0: raw frames into the LSTM")
    parser.add_argument("--dropout", type=float, default=None, help="default: per dataset")
    parser.add_argument("--lr", type=float, default=None, help="default: per dataset")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--clip", type=float, default=5.0, help="gradient norm clipping")
    parser.add_argument(
        "--plateau",
        type=int,
        default=5,
        help="ReduceLROnPlateau patience in epochs (0: constant lr)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="re-measure throughput, keep the stored NLL figures",
    )
    parser.add_argument("--cache", default=os.environ.get("CADENZA_CACHE", "data/processed"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    names = list(SETTINGS) if args.dataset == "all" else [args.dataset]
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    cache = Path(args.cache)
    for name in names:
        entry = results.get(name, {}) if args.throughput_only else train_and_test(name, args, cache)
        if not args.no_throughput:
            entry.update(throughput(name, args, cache))
        if not args.throughput_only:
            entry.update(
                {
                    "model": f"LSTM({args.hidden})-NADE({args.nade_hidden}), dropout "
                    f"{model_dropout(name, args)}, Adam lr {args.lr or SETTINGS[name]['lr']}, "
                    f"clip {args.clip}, plateau patience {args.plateau}",
                    "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
                    "date": date.today().isoformat(),
                    "command": " ".join(["python benchmarks/polyphonic_nll.py", *sys.argv[1:]]),
                }
            )
        results[name] = entry
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def model_dropout(name: str, args: argparse.Namespace) -> float:
    return SETTINGS[name]["dropout"] if args.dropout is None else args.dropout


def print_table(results: dict) -> None:
    header = f"{'dataset':<11} {'ours test':>9} {'valid':>7} {'params':>8} {'train s':>8} "
    header += f"{'L/bare':>7}  published (test NLL)"
    print(header)
    print("-" * len(header))
    for name in SETTINGS:
        if name not in results:
            continue
        r = results[name]
        pub = ", ".join(f"{k} {v}" for k, v in PUBLISHED[name].items())
        ratio = r.get("lightning_over_bare")
        print(
            f"{name:<11} {r['test_nll']:>9.3f} {r['valid_nll']:>7.3f} {r['params']:>8} "
            f"{r['train_seconds']:>8.0f} {ratio if ratio is not None else '-':>7}  {pub}"
        )


if __name__ == "__main__":
    main()
