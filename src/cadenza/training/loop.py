"""train(cfg): build data -> model (sized from the codec) -> trainer, fit, test, link, sample."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from cadenza.errors import ConfigError
from cadenza.models.base import (
    Ability,
    CadenzaModule,
    GenerativeModule,
    check_int,
    read_checkpoint,
)
from cadenza.training.callbacks import LatestLink, MonitoredMetrics, RunRecord
from cadenza.training.checkpoint_io import AtomicCheckpointIO, link_latest
from cadenza.training.checks import (
    check_accelerator,
    check_resumable,
    check_run_config,
    check_same_settings,
    check_sample_abilities,
    check_steps,
    check_val_interval,
)
from cadenza.training.config import instantiate, job_suffix, register_resolvers
from cadenza.training.run_folders import claim_dir, keep_run_record, own_output_dir, remove_empty
from cadenza.training.sweep_summary import write_result

log = logging.getLogger("cadenza")
# paths.checkpoint_dir in a sweep (.N: claim_dir's, for one started in the same second)
SWEEP_RUN = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+(\.\d+)?")
DDP_STRATEGIES = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")
# Lightning's names (and aliases) for the precisions every family trains in.
PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16", "16-mixed", "16")


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    """callbacks/loggers groups are dicts of named configs; null entries switch one off."""
    if not group:
        return []
    return [instantiate(c) for c in group.values() if c is not None and "_target_" in c]


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
    """Everything `train` needs, validated before any data is prepared or any step is taken."""
    register_resolvers()
    check_precision(cfg.trainer.get("precision", "32-true"))
    check_accelerator(cfg.trainer.get("accelerator"), cfg.trainer.get("devices", "auto"))
    check_run_config(cfg)
    datamodule = instantiate(cfg.data)
    # The model is sized from the codec (the recommender: from its catalog), so no dimension is
    # written twice in YAML.
    model = instantiate(cfg.model, **datamodule.model_sizing())
    trainer = instantiate(
        cfg.trainer,
        strategy=strategy_for(model, cfg.trainer.get("strategy", "auto")),
        callbacks=_instantiate_group(cfg.get("callbacks")),
        logger=_instantiate_group(cfg.get("logger")) or False,
        plugins=[AtomicCheckpointIO()],
    )
    return datamodule, model, trainer


def check_precision(precision: Any) -> None:
    """Mixed precision runs for every family on CPU and GPU (recurrent layers keep float32
    inside autocast: models/components/recurrent.py); whole-model half precision does not."""
    if str(precision) not in PRECISIONS:
        raise ConfigError(
            f"trainer.precision={precision} is not supported: use bf16-mixed (mixed precision, "
            f"on a CPU or a GPU; 16-mixed on GPUs without bf16) or 32-true"
        )


def strategy_for(model: CadenzaModule, strategy: Any) -> Any:
    """trainer.strategy as the family needs it: DDP looks for parameters without gradients
    (slower) only for a family that declares it has some in a step."""
    if model.ddp_find_unused_parameters and strategy in DDP_STRATEGIES:
        return f"{strategy}_find_unused_parameters_true"
    return strategy


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train (or resume with cfg.ckpt_path), then test the best checkpoint; returns metrics and
    the paths it wrote."""
    # First: from its first log line on, this run writes in a folder of its own (a run of the
    # same name started in the same second moves out, run_folders.py); a sweep's are numbered.
    output_dir = own_output_dir(cfg) if not job_suffix() else None
    if cfg.get("seed") is not None:
        # Lightning's and NumPy's bound: a larger seed was replaced by 0, with a warning.
        pl.seed_everything(check_int("seed", cfg.seed, minimum=0, maximum=2**32 - 1), workers=True)
    ckpt_path = resume_path(cfg)
    if ckpt_path is not None and not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path} does not exist: give the .ckpt file to resume")
    saved = None
    if ckpt_path is not None:
        resume_in_place(cfg, Path(ckpt_path))
        # Shapes, settings and logs only: memory-mapped, so fit's own load is the one real read.
        saved = read_checkpoint(Path(ckpt_path), mmap=True)
        continue_logs(cfg, saved.get(RunRecord.KEY) or {})
    claimed = None
    if ckpt_path is None and not job_suffix():  # a new run's folder is its own (claim_dir)
        with open_dict(cfg):
            cfg.paths.checkpoint_dir = claimed = claim_dir(cfg.paths.checkpoint_dir)
    handed = {"saved": saved}  # _build_and_run lets go of it (a memory map of the file)
    del saved
    try:
        return _build_and_run(cfg, ckpt_path, handed)
    finally:
        if claimed is not None:  # a run that wrote nothing leaves no folder (nor its parents)
            remove_empty(Path(claimed), Path(cfg.paths.root_dir))
        if output_dir is not None:
            keep_run_record(cfg, output_dir / ".hydra")


def _build_and_run(cfg: DictConfig, ckpt_path: str | None,
                   handed: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    saved = handed.pop("saved")
    datamodule, model, trainer = build(cfg)
    log.info("model: %s, %.2fM parameters", type(model).__name__, _params(model) / 1e6)
    check_sample_abilities(model, cfg.get("sample"))
    fits, tests = bool(cfg.get("train", True)), bool(cfg.get("test"))
    check_steps(model, ["training", "validation"] * fits + ["test"] * tests)
    trainer.callbacks.append(MonitoredMetrics())
    if saved is not None:
        check_resumable(model, saved, ckpt_path)  # another shape: an error
        check_same_settings(cfg, saved)  # the same shape, other settings: said
        del saved  # its mapping of the file
    if not job_suffix():  # a sweep's runs leave latest.ckpt (what is served) as it was
        trainer.callbacks.append(LatestLink(Path(cfg.paths.checkpoint_root) / "latest.ckpt"))
    output_dir = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=False)
    trainer.callbacks.append(
        RunRecord(
            OmegaConf.to_container(cfg.data, resolve=True),
            _started_as(),
            output_dir,
            model=OmegaConf.to_container(cfg.model, resolve=True),
        )  # fmt: skip
    )
    ok = False
    try:
        result = _fit_test_sample(cfg, datamodule, model, trainer, ckpt_path)
        ok = True
        return result
    finally:
        end_wandb_run(trainer, ok)


def _fit_test_sample(cfg: DictConfig, datamodule: Any, model: pl.LightningModule,
                     trainer: pl.Trainer, ckpt_path: str | None) -> dict[str, Any]:  # fmt: skip
    """`train`'s work once everything is built and checked."""
    if cfg.get("train", True):
        # Checkpoints and early stopping select on val/nll: fail now, clearly, without one.
        if len(datamodule.dataset("valid")) == 0 and not trainer.fast_dev_run:
            raise ConfigError(
                f"{datamodule.source.describe()} has no validation "
                f"{'windows' if datamodule.window_bars else 'pieces'} after splitting "
                f"({len(datamodule.dataset('train'))} for training): add files or raise "
                "data.valid_fraction"
            )
        check_val_interval(trainer, datamodule)
        pin_logger_versions(trainer)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    result: dict[str, Any] = {"metrics": metrics}
    # The monitored callback keeps the best; the unmonitored one (configs/callbacks) the newest.
    ckpt_cbs = trainer.checkpoint_callbacks
    best = next((c.best_model_path for c in ckpt_cbs if c.monitor is not None), "") or ""
    last = next((c.best_model_path for c in ckpt_cbs if c.monitor is None), "") or ""
    # The score of the best epoch on the metric checkpoints select by: what a sweep compares
    # (the last epoch's would count against a run the epochs it trained past its best).
    result["best"] = {c.monitor: float(c.best_model_score) for c in ckpt_cbs
                      if c.monitor is not None and c.best_model_score is not None}  # fmt: skip
    if trainer.is_global_zero and (best or last):
        result["best_ckpt"], result["last_ckpt"] = best or None, last or None
        latest = Path(cfg.paths.checkpoint_root) / "latest.ckpt"
        if job_suffix():
            # One of a sweep's runs is not what `latest.ckpt` (sampled from, served as <name>)
            # should become: the sweep's next run would replace it, whatever it scored.
            log.info("checkpoint: %s (a sweep's run: %s is left as it was)", best or last, latest)
        else:
            result["latest_ckpt"] = str(link_latest(Path(best or last), latest))
            log.info("checkpoint: %s (-> %s)", latest, best or last)

    if cfg.get("test") and len(datamodule.split("test")) > 0:
        test_ckpt = best if best else None
        test_metrics = trainer.test(model, datamodule=datamodule, ckpt_path=test_ckpt)
        if test_metrics:
            result["metrics"].update({k: float(v) for k, v in test_metrics[0].items()})

    n_samples = int(OmegaConf.select(cfg, "sample.n", default=0) or 0)
    if n_samples > 0 and not isinstance(model, GenerativeModule):
        log.info("sample.n=%d ignored: %s does not generate music", n_samples, type(model).__name__)
    elif n_samples > 0 and trainer.is_global_zero:
        from cadenza.generation import generate_to_files

        # Sample from the best checkpoint as a producer would; with no checkpoint (fast_dev_run)
        # from the weights in memory.
        source = result.get("best_ckpt") or result.get("last_ckpt")
        sampler = GenerativeModule.load(source) if source else model.cpu()
        sample_cfg = OmegaConf.to_container(cfg.sample, resolve=True)
        record = None
        if not sampler.can(Ability.PRIOR) and not sample_cfg.get("condition"):
            # Nothing to accompany was given: accompany the first held-out phrase.
            sampler.require(Ability.CONDITION)
            window, _ = datamodule.dataset("valid", training=False)[0]
            sample_cfg["condition"], record = window, {"condition": "the first validation phrase"}
        pieces = generate_to_files(sampler, sample_cfg.pop("out_dir"), record=record, **sample_cfg)
        result["samples"] = [str(p.files.get("midi") or p.files["audio"]) for p in pieces]
        log.info("wrote %d samples to %s", n_samples, cfg.sample.out_dir)
    if trainer.is_global_zero:  # what a sweep's summary.csv reads (training/sweep_summary.py)
        output_dir = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=False)
        write_result(output_dir, result, _started_as())
    return result


def pin_logger_versions(trainer: pl.Trainer) -> None:
    """One version folder for all of a run's phases (training/csv_log.py says why)."""
    from cadenza.training.csv_log import RunCSVLogger

    for logger in trainer.loggers:
        if isinstance(logger, RunCSVLogger):
            logger.pin_version()


def end_wandb_run(trainer: pl.Trainer, ok: bool) -> None:
    """Each training run ends the wandb run it logged to. Lightning leaves it open, and the
    next WandbLogger in the same process reuses an open run, so every job of a local sweep
    (`-m`, one process) logged into the first job's run. A run that raised is marked failed."""
    import sys

    from pytorch_lightning.loggers import WandbLogger

    wandb = sys.modules.get("wandb")  # imported only where a WandbLogger started a run
    if (
        wandb is not None
        and wandb.run is not None
        and any(isinstance(lg, WandbLogger) for lg in trainer.loggers)
    ):
        wandb.finish(exit_code=0 if ok else 1)


def resume_path(cfg: DictConfig) -> str | None:
    """cfg.ckpt_path; `auto` is the newest run of this name's last.ckpt, or a fresh start when
    there is none: the same command line both starts a run and goes on with it, as a job that
    SLURM requeues after a preemption or its time limit runs it again. A sweep's job goes on
    with its own run (its folder is named after its output folder, which a requeue keeps):
    the jobs of a sweep share a name, so the newest of them is not this job's."""
    given = cfg.get("ckpt_path")
    if given != "auto":
        return given
    if job_suffix():
        own = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
        if own.is_file():
            log.info("ckpt_path=auto: resuming %s, this sweep job's own run", own)
            return str(own)
        log.info("ckpt_path=auto: this sweep job has no run yet (%s), starting one", own.parent)
        return None
    root = Path(cfg.paths.checkpoint_root)
    # A sweep's runs (<date_time>_<job>) are the sweep's: not what a single run goes on with.
    runs = sorted((p for p in map(_resumable, root.glob("*/"))
                   if p is not None and not SWEEP_RUN.fullmatch(p.parent.name)),
                  key=lambda p: p.stat().st_mtime)  # fmt: skip
    if not runs:
        log.info("ckpt_path=auto: no run of %s yet under %s, starting one", cfg.name, root)
        return None
    log.info("ckpt_path=auto: resuming %s, the newest run of %s", runs[-1], cfg.name)
    return str(runs[-1])


def _resumable(run: Path) -> Path | None:
    """A run folder's checkpoint to go on from: last.ckpt, else (killed while it wrote its
    first last.ckpt) its newest checkpoint, which holds the whole training state too."""
    if (run / "last.ckpt").is_file():
        return run / "last.ckpt"
    found = [p for p in run.glob("*.ckpt") if p.is_file() and not p.name.startswith(".")]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def resume_in_place(cfg: DictConfig, ckpt_path: Path) -> None:
    """A resumed run goes on writing in the folder of the checkpoint it resumes: its checkpoint
    callbacks then find their own files and restore which one is best (in a new folder
    Lightning reloads only the best path, not its score, and the best of the whole run would
    be lost). Temp files a killed write left there are removed."""
    from cadenza.atomic import remove_stale_temps

    run_dir = ckpt_path.resolve().parent  # latest.ckpt is a link into its run's folder
    with open_dict(cfg):
        cfg.paths.checkpoint_dir = str(run_dir)
    # Lightning warns of a checkpoint folder that holds files: here they are the point.
    warnings.filterwarnings("ignore", message=f"Checkpoint directory {re.escape(str(run_dir))} "
                            "exists and is not empty")  # fmt: skip
    for tmp in remove_stale_temps(run_dir):
        log.info("removed %s, left by a write that was killed", tmp.name)


def continue_logs(cfg: DictConfig, record: dict[str, Any]) -> None:
    """A resumed run logs on into the wandb run of the part before it (the one its checkpoint
    names), so a job that SLURM requeues after each preemption draws one curve, not one run per
    requeue. Online only: wandb cannot resume an offline run, and syncing two offline runs of
    one id keeps one of them (wandb/wandb#4624, #3841), so offline the part after a resume is
    a run of its own. `logger.wandb.id`, where given, wins. Either way the log says where the
    part before logged (the CSV and offline wandb logs are in its output folder)."""
    logs = record.get("logs") or {}
    if logs.get("output_dir"):
        log.info("resuming: the part before logged to %s", logs["output_dir"])
    wandb = OmegaConf.select(cfg, "logger.wandb")
    earlier = logs.get("wandb_id")
    if not wandb or not earlier or wandb.get("id"):
        return
    if wandb.get("offline"):
        log.info("wandb is offline, and wandb cannot resume an offline run: this part logs to "
                 "a run of its own (the part before is run %s)", earlier)  # fmt: skip
        return
    with open_dict(cfg):
        wandb.id, wandb.resume = earlier, "allow"
    log.info("wandb: going on with run %s", earlier)


def _started_as() -> list[str] | None:
    """The command line's overrides (Hydra's task overrides; not a resume's ckpt_path), which
    a checkpoint keeps to say how to resume it. None when no Hydra command line ran."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return [o for o in HydraConfig.get().overrides.task if not o.startswith("ckpt_path=")]


def _params(model: pl.LightningModule) -> int:
    return sum(p.numel() for p in model.parameters())
