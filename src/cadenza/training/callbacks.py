"""Callbacks of our own. Lightning's ModelCheckpoint etc. are configured in configs/callbacks."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch


class LatestLink(pl.Callback):
    """Keeps `checkpoints/<name>/latest.ckpt` on this run's best checkpoint while it trains,
    not only once it ends: a run killed mid-way (SIGKILL, a lost node, a wall-time limit) still
    leaves the link that cadenza-sample and cadenza-serve read.

    Relinked as each checkpoint is written, from inside the checkpoint IO: ModelCheckpoint
    writes the new best and only then deletes the old one, and no callback hook runs between
    the two, so a link moved any later (e.g. at the next epoch's start) would point at a
    deleted file for a while, and a kill then left it dangling. train() links the final one."""

    def __init__(self, link: Path) -> None:
        self.link = Path(link)
        self.target: str | None = None
        self.trainer: pl.Trainer | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from cadenza.training.checkpoint_io import AtomicCheckpointIO

        io = trainer.strategy.checkpoint_io
        if not isinstance(io, AtomicCheckpointIO):
            raise TypeError(f"LatestLink needs AtomicCheckpointIO, not {type(io).__name__}")
        self.trainer = trainer
        io.after_save = self.relink

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        if getattr(io, "after_save", None) == self.relink:
            io.after_save = None

    def relink(self, saved: Path) -> None:
        """Called after each checkpoint file is in place (rank zero only writes them)."""
        from cadenza.training.checkpoint_io import link_latest

        if self.trainer is None:
            return
        # ModelCheckpoint sets best_model_path before it writes, so the file just saved is
        # already counted; the unmonitored callback's is the newest state.
        callbacks = self.trainer.checkpoint_callbacks
        best = next((c.best_model_path for c in callbacks if c.monitor is not None), "")
        newest = next((c.best_model_path for c in callbacks if c.monitor is None), "")
        target = best or newest
        if target and target != self.target and Path(target).is_file():
            link_latest(Path(target), self.link)
            self.target = target


class MonitoredMetrics(pl.Callback):
    """Every metric a callback selects or stops by (ModelCheckpoint's, EarlyStopping's
    `monitor`) is logged by the family's validation, checked after the sanity check's
    validation batches: Lightning finds a missing one only at the first epoch's end, with a
    traceback. A run without a sanity check is not checked here."""

    def on_sanity_check_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from cadenza.errors import ConfigError

        logged = set(trainer.callback_metrics)
        wanted = {(type(c).__name__, c.monitor) for c in trainer.callbacks
                  if isinstance(getattr(c, "monitor", None), str)}  # fmt: skip
        missing = sorted((name, key) for name, key in wanted if key not in logged)
        if missing:
            family = getattr(pl_module, "family", type(pl_module).__name__)
            said = ", ".join(f"{key} ({name})" for name, key in missing)
            raise ConfigError(
                f"the {family} family's validation logs no {said}; it logs: "
                f"{', '.join(sorted(logged)) or 'nothing'}. Log that key in validation_step, "
                "or point the callback's monitor at one it logs"
            )


class RunRecord(pl.Callback):
    """Writes what a checkpoint's run read into the checkpoint (`cadenza_run`: the `data`
    config, resolved, without its codec, which the model carries; the `model` config, resolved,
    optimizer included, which the model's hyperparameters are not; the command line's
    overrides; and where it logged: its output folder and its wandb run): `cadenza-eval` then
    evaluates on the data the model was trained on without being told, a resume into another
    model names them, and a resume goes on logging into the same wandb run
    (`training.loop.continue_logs`). Plain values only, so weights-only loading reads it."""

    KEY = "cadenza_run"

    def __init__(self, data: dict[str, Any], overrides: list[str] | None = None,
                 output_dir: str | None = None,
                 model: dict[str, Any] | None = None) -> None:  # fmt: skip
        # Relative paths (./data/processed) made absolute: cadenza-eval may run elsewhere.
        self.data = _absolute({k: v for k, v in data.items() if k != "codec"})
        self.model = model
        self.overrides = overrides  # the command line's, to say how to resume it
        self.output_dir = output_dir

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[self.KEY] = {"data": self.data, "model": self.model,
                                "overrides": self.overrides,
                                "logs": {"output_dir": self.output_dir,
                                         "wandb_id": _wandb_run_id(trainer)}}  # fmt: skip


def _absolute(value: Any) -> Any:
    """Strings that are relative paths (./x, ../x) as absolute ones, anywhere in `value`."""
    if isinstance(value, dict):
        return {k: _absolute(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_absolute(v) for v in value]
    if isinstance(value, str) and (value.startswith(("./", "../")) or value in (".", "..")):
        return os.path.abspath(value)
    return value


def _wandb_run_id(trainer: pl.Trainer) -> str | None:
    """The id of the wandb run this trainer logs to, or None without one. `version` reads the
    id without starting a run that has not started (which logging would have by now)."""
    from pytorch_lightning.loggers import WandbLogger

    ids = [str(lg.version) for lg in trainer.loggers if isinstance(lg, WandbLogger) and lg.version]
    return ids[0] if ids else None


class SeenDataRecorder(pl.Callback):
    """Writes which training items each rank saw, and a fingerprint of its weights at the end
    (`seen_rank<R>.json`).

    Used by the DDP tests to prove that the ranks trained on different data and still ended with
    the same weights (their gradients were averaged); cheap enough to leave on when debugging a
    sampler.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.seen: list[int] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # A Batch carries its items' indices; the recommender's dict batches their user ids.
        index = batch.get("users") if isinstance(batch, dict) else getattr(batch, "index", None)
        if index is not None:
            self.seen.extend(int(i) for i in index.tolist())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        rank = trainer.global_rank
        loader = trainer.train_dataloader
        size = len(loader.dataset) if loader is not None and hasattr(loader, "dataset") else None
        digest = hashlib.sha256()
        for name, p in sorted(pl_module.state_dict().items()):
            digest.update(name.encode())
            digest.update(p.detach().float().cpu().contiguous().numpy().tobytes())
        out = {
            "rank": rank,
            "world_size": trainer.world_size,
            "dataset_size": size,
            "seen": self.seen,
            "weights_sha256": digest.hexdigest(),
        }
        (self.out_dir / f"seen_rank{rank}.json").write_text(json.dumps(out))


class PianoRollGrid(pl.Callback):
    """After every validation epoch, a sheet of `n` sampled piano rolls (same seed each epoch,
    so the sheets show how the same latents evolve): `<log dir>/pianorolls/epochNNN.png`, and
    to every logger that takes images (wandb's `log_image`, TensorBoard's `add_image`)."""

    def __init__(self, n: int = 8, seed: int = 0, bars: float = 4) -> None:
        self.n, self.seed, self.bars = int(n), int(seed), float(bars)
        self.written: list[Path] = []

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.n < 1:
            return
        # log_dir is a collective (rank 0 broadcasts it): every rank asks, then only rank 0 draws.
        log_dir = trainer.log_dir or trainer.default_root_dir
        if not trainer.is_global_zero:
            return
        from cadenza.generation import generate
        from cadenza.models import Ability
        from cadenza.viz import save_pianoroll_sheet

        if not pl_module.can(Ability.PRIOR):
            return  # needs a condition track to play against; val samples are in the metrics
        # A family with a fixed window writes that; the others `bars`.
        pieces = generate(pl_module, self.n, seed=self.seed, bars=self.bars)
        pms = [p.music for p in pieces]
        epoch = trainer.current_epoch
        out = Path(log_dir) / "pianorolls"
        path = save_pianoroll_sheet(pms, out / f"epoch{epoch:03d}.png",
                                    [f"epoch {epoch} #{i}" for i in range(len(pms))])  # fmt: skip
        self.written.append(path)
        send_image(trainer, "samples/pianorolls", path)


class SpectrogramGrid(pl.Callback):
    """After every validation epoch, a sheet for a model of audio features (mel_vae): the first
    `n` validation windows beside their reconstructions, then `n` prior samples (same seed each
    epoch): `<log dir>/spectrograms/epochNNN.png`, and to every logger that takes images."""

    def __init__(self, n: int = 4, seed: int = 0) -> None:
        self.n, self.seed = int(n), int(seed)
        self.written: list[Path] = []

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.n < 1:
            return
        log_dir = trainer.log_dir or trainer.default_root_dir  # a collective: every rank asks
        if not trainer.is_global_zero:
            return
        from cadenza.models import Ability
        from cadenza.viz import save_spectrogram_sheet

        pl_module.require(Ability.RECONSTRUCT)
        codec, epoch = pl_module.codec, trainer.current_epoch
        valid = trainer.datamodule.dataset("valid", training=False)
        real = torch.stack([valid[i][0] for i in range(min(self.n, len(valid)))])  # [n, T, M]
        recon = pl_module.reconstruct(real)
        g = torch.Generator().manual_seed(self.seed)
        samples = pl_module.sample(self.n, generator=g)
        pictures, titles = [], []
        for i in range(len(real)):
            pictures += [codec.to_db(real[i]), codec.to_db(recon[i])]
            titles += [f"valid #{i}", f"reconstruction #{i}"]
        pictures += [codec.to_db(x) for x in samples]
        titles += [f"sample #{i} (epoch {epoch})" for i in range(len(samples))]
        out = Path(log_dir) / "spectrograms" / f"epoch{epoch:03d}.png"
        path = save_spectrogram_sheet(pictures, out, codec.frames_per_second, titles)
        self.written.append(path)
        send_image(trainer, "samples/spectrograms", path)


class ConfusionMatrixPlot(pl.Callback):
    """After every validation epoch (and a test), the classifier's confusion matrix as a PNG:
    `<log dir>/confusion/epochNNN.png` (`test.png`), and to every logger that takes images.
    Reads the counts the module summed over all ranks (`pl_module.confusion`)."""

    def __init__(self) -> None:
        self.written: list[Path] = []

    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule, name: str) -> None:
        log_dir = trainer.log_dir or trainer.default_root_dir  # a collective: every rank asks
        confusion = getattr(pl_module, "confusion", None)
        if not trainer.is_global_zero or not confusion:
            return
        from cadenza.viz import save_confusion_png

        title = name if name == "test" else f"validation, {name}"
        path = save_confusion_png(confusion["counts"], confusion["classes"],
                                  Path(log_dir) / "confusion" / f"{name}.png", title)  # fmt: skip
        self.written.append(path)
        send_image(trainer, f"{confusion['stage']}/confusion", path)

    # The *_end hooks, not *_epoch_end: Lightning runs a callback's epoch-end hook before the
    # module's, which is where the module sums the epoch's counts.
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._draw(trainer, pl_module, f"epoch{trainer.current_epoch:03d}")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draw(trainer, pl_module, "test")


def send_image(trainer: pl.Trainer, key: str, path: Path) -> None:
    """A PNG to every logger that takes images: wandb's `log_image`, TensorBoard's
    `add_image`; others (CSV) keep only the file."""
    for logger in trainer.loggers:
        if hasattr(logger, "log_image"):
            logger.log_image(key=key, images=[str(path)], step=trainer.global_step)
        elif hasattr(getattr(logger, "experiment", None), "add_image"):
            import numpy as np
            from matplotlib.image import imread

            img = (imread(path)[..., :3] * 255).astype(np.uint8)
            logger.experiment.add_image(key, img, trainer.current_epoch, dataformats="HWC")
