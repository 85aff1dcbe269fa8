"""train(cfg) end to end on real data (Bach chorales inside music21): checkpoints, resume,
samples, and DDP on 2 CPU processes."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf, open_dict

from cadenza.io.midi import load_midi, tracks_of
from cadenza.models import GenerativeModule
from cadenza.training.loop import train
from tests.fixtures.smoke import SmokeRuns
from tests.helpers import compose_train, config_dir, train_ddp_sim


def _ckpts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ckpt") if not p.name.startswith("."))


def test_smoke_experiment_trains_checkpoints_and_samples(smoke: SmokeRuns) -> None:
    run = smoke["smoke"]
    result, tmp_path = run.result, run.root

    metrics = result["metrics"]
    assert math.isfinite(metrics["val/nll"]) and metrics["val/nll"] > 0
    assert math.isfinite(metrics["test/nll"]) and metrics["test/nll"] > 0
    # best + last, and the stable link a producer samples from
    names = {p.name for p in _ckpts(tmp_path / "checkpoints" / "run")}
    assert "last.ckpt" in names and len(names) == 2
    latest = tmp_path / "checkpoints" / "smoke" / "latest.ckpt"
    assert latest.is_symlink() and latest.resolve() == Path(result["best_ckpt"]).resolve()

    # the codec travels inside the checkpoint, as plain data (weights_only load)
    ckpt = torch.load(latest, map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["codec"]["name"] == "pianoroll"
    assert ckpt["hyper_parameters"]["codec"]["steps_per_beat"] == 2
    assert ckpt["hyper_parameters"]["family"] == "lstm"
    assert GenerativeModule.load(latest).codec.feature_dim == 49

    # samples parse back as MIDI with notes inside the codec's range, with a PNG each
    assert len(result["samples"]) == 2
    for path in map(Path, result["samples"]):
        pitches = [n[2] for t in tracks_of(load_midi(path)) for n in t.notes]
        assert pitches and min(pitches) >= 36 and max(pitches) <= 84
        assert path.with_suffix(".png").stat().st_size > 1000
    meta = json.loads((Path(result["samples"][0]).parent / "samples.json").read_text())
    assert meta["controls"]["steps"] == 16


def test_resume_restores_optimizer_and_loop_state(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_train(tmp_path / "a", ["experiment=smoke", "trainer.max_epochs=1", "test=false"])
    with open_dict(cfg):  # the first part logs to wandb (offline: not logged in here)
        cfg.logger = OmegaConf.load(config_dir() / "logger" / "wandb.yaml")
        cfg.logger.wandb.save_dir = cfg.paths.output_dir
    first = train(cfg)
    import wandb

    assert wandb.run is None  # ended: the next run in this process (a sweep's job) starts its own
    ckpt1 = torch.load(first["last_ckpt"], map_location="cpu", weights_only=True)
    steps1 = ckpt1["global_step"]
    # The checkpoint names where its run logged, so a resume can go on in the same wandb run.
    logs = ckpt1["cadenza_run"]["logs"]
    assert logs["output_dir"] == cfg.paths.output_dir
    wandb_id = logs["wandb_id"]
    assert wandb_id and list(Path(cfg.paths.output_dir).glob(f"wandb/offline-run-*-{wandb_id}"))
    _resumes_the_wandb_run_online_only(tmp_path, first["last_ckpt"], wandb_id)
    adam_step1 = next(iter(ckpt1["optimizer_states"][0]["state"].values()))["step"]
    assert steps1 > 0 and float(adam_step1) == steps1

    # Resumed with other settings (the learning rate, a batch size): said, and that the
    # optimizer's state, its learning rate with it, comes from the checkpoint.
    with caplog.at_level(logging.WARNING, logger="cadenza"):
        resumed = train(
            compose_train(
                tmp_path / "b",
                [
                    "experiment=smoke",
                    "trainer.max_epochs=2",
                    "test=false",
                    f"ckpt_path={first['last_ckpt']}",
                    "model.optimizer.lr=0.0001",
                    "data.eval_batch_size=2",
                ],
            )
        )
    (said,) = [r.getMessage() for r in caplog.records if "resuming with settings" in r.getMessage()]
    assert "model.optimizer.lr=0.0001 (the run's: 0.001)" in said
    assert "data.eval_batch_size=2 (the run's: None)" in said and "does not take effect" in said
    ckpt2 = torch.load(resumed["last_ckpt"], map_location="cpu", weights_only=True)
    assert ckpt2["epoch"] == 1
    assert ckpt2["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.001)
    # What a sweep is returned: the best epoch's val/nll (over both parts), as the best
    # checkpoint is named, never worse than the last epoch's.
    best = resumed["best"]["val/nll"]
    assert f"nll{best:.4f}" in Path(resumed["best_ckpt"]).name
    assert best <= resumed["metrics"]["val/nll"] + 1e-6
    assert ckpt2["global_step"] == 2 * steps1  # the second epoch continued the first
    adam_step2 = next(iter(ckpt2["optimizer_states"][0]["state"].values()))["step"]
    assert float(adam_step2) == 2 * steps1  # Adam moments continued, not restarted


def _resumes_the_wandb_run_online_only(tmp_path: Path, ckpt: str, wandb_id: str) -> None:
    """What a resume makes of the wandb logger, given the checkpoint's record (training
    online needs the network: the logger's settings are what is checked)."""
    from cadenza.training.loop import continue_logs

    record = torch.load(ckpt, map_location="cpu", weights_only=True)["cadenza_run"]

    def wandb_after(*overrides: str) -> dict:
        cfg = compose_train(tmp_path / "c", ["experiment=smoke", f"ckpt_path={ckpt}"])
        with open_dict(cfg):
            cfg.logger = OmegaConf.load(config_dir() / "logger" / "wandb.yaml")
            for override in overrides:
                key, value = override.split("=")
                OmegaConf.update(cfg, key, yaml.safe_load(value), force_add=True)
        continue_logs(cfg, record)
        return OmegaConf.to_container(cfg.logger.wandb)

    online = wandb_after("logger.wandb.offline=false")
    assert online["id"] == wandb_id and online["resume"] == "allow"
    # Offline wandb never resumes a run (syncing both would keep one): a run of its own.
    assert "id" not in wandb_after("logger.wandb.offline=true")
    # A run id given on the command line wins.
    assert wandb_after("logger.wandb.offline=false", "logger.wandb.id=mine")["id"] == "mine"


def test_auto_resume_picks_the_newest_run_of_the_name(tmp_path: Path) -> None:
    """ckpt_path=auto: nothing to resume starts a run; otherwise the newest last.ckpt among
    this name's runs (by when it was written, not by folder name); a path is a path."""
    from cadenza.training.loop import resume_path

    cfg = compose_train(tmp_path, ["experiment=smoke", "ckpt_path=auto"])
    root = Path(cfg.paths.checkpoint_root)
    assert resume_path(cfg) is None
    runs = ["2026-12-07_10-00-00", "2026-12-06_09-00-00", "2026-12-06_08-00-00_1", "other"]
    for i, run in enumerate(runs):
        (root / run).mkdir(parents=True)
        (root / run / ("last.ckpt" if run != "other" else "epoch001.ckpt")).write_bytes(b"x")
        written = root / run / ("last.ckpt" if run != "other" else "epoch001.ckpt")
        os.utime(written, (i, 1000 + i) if run != "other" else (0, 999))  # "other": the oldest
    # The newest written, but not a sweep's job (<date_time>_<job>): that run is the sweep's.
    assert resume_path(cfg) == str(root / "2026-12-06_09-00-00" / "last.ckpt")
    # A run killed while it wrote its first last.ckpt goes on from its best checkpoint (the
    # whole training state too); the killed write's temp file is no checkpoint.
    killed = root / "2026-12-07_11-00-00"
    killed.mkdir()
    (killed / "epoch000-nll3.0000.ckpt").write_bytes(b"x")
    (killed / ".last.ckpt.999.1.0.tmp").write_bytes(b"half")
    assert resume_path(cfg) == str(killed / "epoch000-nll3.0000.ckpt")
    given = compose_train(tmp_path, ["experiment=smoke", "ckpt_path=/x/run/last.ckpt"])
    assert resume_path(given) == "/x/run/last.ckpt"


def test_auto_resume_in_a_sweep_goes_on_with_the_jobs_own_run(tmp_path: Path) -> None:
    """The jobs of a sweep share a name: ckpt_path=auto takes this job's own folder (named
    after its output folder, <sweep's time>_<num>, which a SLURM requeue keeps), never the
    newest of the sweep's."""
    from hydra.core.hydra_config import HydraConfig

    from cadenza.training.loop import resume_path

    sweep = [
        "experiment=smoke",
        "ckpt_path=auto",
        "hydra.mode=MULTIRUN",
        "hydra.job.num=3",
        f"hydra.runtime.output_dir={tmp_path}/outputs/multirun/smoke/2026-12-07_10-00-00/3",
    ]
    try:
        cfg = compose_train(tmp_path, sweep)
        with open_dict(cfg):  # as configs/paths has it (compose_train fixes it for the tests)
            paths = OmegaConf.to_container(OmegaConf.load(config_dir() / "paths" / "default.yaml"))
            cfg.paths.checkpoint_dir = paths["checkpoint_dir"]
        own = Path(cfg.paths.checkpoint_dir)
        assert own.name == "2026-12-07_10-00-00_3"
        assert resume_path(cfg) is None  # nothing of its own yet: it starts
        other = own.with_name("2026-12-07_10-00-00_4")
        for run in (own, other):
            run.mkdir(parents=True)
            (run / "last.ckpt").write_bytes(b"x")
        os.utime(own / "last.ckpt", (1, 1))  # the other job's is newer
        assert resume_path(cfg) == str(own / "last.ckpt")
    finally:
        HydraConfig.instance().cfg = None  # no later test sees a sweep's job


def test_a_sweeps_runs_leave_latest_alone(tmp_path: Path) -> None:
    """latest.ckpt is what cadenza-sample's examples read and cadenza-serve serves as <name>:
    each run of a sweep relinking it left it on the sweep's last run, whatever it scored."""
    from hydra.core.hydra_config import HydraConfig

    job = ["experiment=smoke", "hydra.mode=MULTIRUN", "hydra.job.num=1", "trainer.max_epochs=1",
           "test=false", "sample.n=0"]  # fmt: skip
    try:
        result = train(compose_train(tmp_path, job))
    finally:
        HydraConfig.instance().cfg = None  # no later test sees a sweep's job
    assert Path(result["best_ckpt"]).is_file() and "latest_ckpt" not in result
    assert not (tmp_path / "checkpoints" / "smoke" / "latest.ckpt").exists()


def test_missing_resume_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    from cadenza.errors import ConfigError

    cfg = compose_train(tmp_path, ["experiment=smoke", f"ckpt_path={tmp_path}/nope.ckpt"])
    with pytest.raises(ConfigError, match="ckpt_path=.*does not exist"):
        train(cfg)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_splits_data_and_writes_one_checkpoint(tmp_path: Path) -> None:
    _, ranks = train_ddp_sim(tmp_path, "smoke", strategy="ddp_spawn")  # as trainer=ddp_sim has it
    seen0, seen1 = set(ranks[0]["seen"]), set(ranks[1]["seen"])
    # Each rank trained on its own shard; together they cover the split. DistributedSampler
    # repeats at most world_size - 1 items to even out the shards, so allow that overlap.
    assert seen0 and seen1 and len(seen0 & seen1) <= 1
    assert seen0 | seen1 == set(range(ranks[0]["dataset_size"]))
    # rank 0 alone wrote: one best + one last, no duplicates from rank 1
    assert {p.name for p in _ckpts(tmp_path / "checkpoints" / "run")} >= {"last.ckpt"}
    assert len(_ckpts(tmp_path / "checkpoints" / "run")) == 2


def test_folder_too_small_for_a_validation_split_is_a_clear_error(tmp_path: Path) -> None:
    from cadenza.errors import ConfigError
    from tests.fixtures.midi_factory import write_chords, write_scale

    write_scale(tmp_path / "midi" / "a.mid")
    write_chords(tmp_path / "midi" / "b.mid")
    cfg = compose_train(tmp_path, ["experiment=midi_folder_lstm", f"data.root={tmp_path}/midi"])
    with pytest.raises(ConfigError, match="no validation pieces.*data.valid_fraction"):
        train(cfg)


def test_a_family_without_a_test_step_is_refused_before_it_trains(tmp_path: Path, monkeypatch):
    """A new family that defines training and validation but not test_step (the README's
    family contract) is told at start-up, not by Lightning's traceback after the whole fit."""
    import pytorch_lightning as pl

    from cadenza.errors import ConfigError
    from cadenza.models.lstm import LSTMModule

    monkeypatch.setattr(LSTMModule, "test_step", pl.LightningModule.test_step)
    cfg = compose_train(tmp_path, ["experiment=smoke"])
    with pytest.raises(ConfigError, match="lstm family defines no test_step.*or pass test=false"):
        train(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))  # refused before a step was taken
    cfg = compose_train(tmp_path / "untested", ["experiment=smoke", "test=false"])
    assert "test/nll" not in train(cfg)["metrics"]  # without the test, the run is fine


def test_a_monitor_that_validation_never_logs_is_said_after_the_sanity_check(tmp_path: Path):
    """Checkpoints select by a metric the family must log; a key it does not log is named, with
    what it does log, after the sanity check's two batches rather than at the first epoch's end."""
    from cadenza.errors import ConfigError

    cfg = compose_train(
        tmp_path, ["experiment=smoke", "callbacks.model_checkpoint.monitor=val/nlll"]
    )
    with pytest.raises(
        ConfigError, match=r"logs no val/nlll \(ModelCheckpoint\); it logs: val/nll"
    ):
        train(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path: Path, monkeypatch):
    """claim_dir (a run's checkpoint folder, and where its output folder moves): the first
    process to make a path has it, the next gets path.2, path.3 (mkdir is atomic); asked again,
    a process gets the folder it made; a distributed run's other ranks take it as it is."""
    from cadenza.training import run_folders

    config = run_folders  # the module whose claims are reset between "processes"
    monkeypatch.setattr(config, "_CLAIMED", {})
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    base = tmp_path / "checkpoints" / "smoke" / "2026-12-07_21-41-51"
    assert config.claim_dir(base) == str(base) and base.is_dir()
    assert config.claim_dir(base) == str(base)  # the same process: the same folder
    monkeypatch.setattr(config, "_CLAIMED", {})  # another process, the same second
    assert config.claim_dir(base) == f"{base}.2"
    monkeypatch.setattr(config, "_CLAIMED", {})
    assert config.claim_dir(base) == f"{base}.3"
    monkeypatch.setattr(config, "_CLAIMED", {})
    monkeypatch.setenv("RANK", "1")  # torchrun's second rank: the first's folder
    assert config.claim_dir(base) == str(base)
    # A run's folder of that kind is a single run's to ckpt_path=auto, a sweep's job's is not.
    from cadenza.training.loop import SWEEP_RUN

    assert not SWEEP_RUN.fullmatch(f"{base.name}.2")
    assert SWEEP_RUN.fullmatch(f"{base.name}_3.2") and SWEEP_RUN.fullmatch(f"{base.name}_3")


def test_a_sweeps_summary_lists_each_job_the_best_first(tmp_path: Path) -> None:
    """summary.csv from the jobs' result.json, the best first by the metric; a job that wrote
    no result (it failed) is listed last, as such."""
    from cadenza.training.sweep_summary import summarise, write_result

    for job, nll in ((0, 3.5), (1, 2.5), (3, 4.0)):
        (tmp_path / str(job)).mkdir()
        write_result(tmp_path / str(job), {"metrics": {"val/nll": nll + 0.1, "test/nll": nll},
                                           "best": {"val/nll": nll}, "best_ckpt": f"/c/{job}"},
                     [f"model.dropout=0.{job}"])  # fmt: skip
    (tmp_path / "2").mkdir()  # failed before it wrote a result
    rows = summarise(tmp_path)
    assert [r["job"] for r in rows] == [1, 0, 3, 2]
    assert rows[0]["val/nll"] == 2.5 and rows[0]["overrides"] == "model.dropout=0.1"
    assert rows[-1]["status"].startswith("no result")
    text = (tmp_path / "summary.csv").read_text().splitlines()
    assert text[0] == "job,status,val/nll,overrides,test/nll,best_ckpt" and len(text) == 5


def test_a_run_started_in_the_same_second_moves_to_its_own_output_folder(tmp_path: Path):
    """Hydra names output folders to the second: the first process to mark one keeps it, the
    next moves to <time>.2 with its config record (.hydra), and writes everything there."""
    from cadenza.training.run_folders import OWNER_MARK, own_output_dir

    cfg = compose_train(tmp_path, ["experiment=smoke", "model.hidden_size=24"])
    shared = Path(cfg.paths.output_dir)
    shared.mkdir(parents=True)
    (shared / OWNER_MARK).write_text("1\n")  # another process's (pid 1)
    moved = own_output_dir(cfg)
    assert moved == shared.with_name(f"{shared.name}.2") and cfg.paths.output_dir == str(moved)
    assert cfg.sample.out_dir == f"{moved}/samples"  # what follows the output folder, follows
    assert (moved / OWNER_MARK).read_text().strip() == str(os.getpid())
    record = OmegaConf.load(moved / ".hydra" / "config.yaml")
    assert record.model.hidden_size == 24
    assert own_output_dir(cfg) == moved  # this process's own folder, asked again


def test_a_training_seed_lightning_cannot_take_fails_naming_the_key(tmp_path: Path) -> None:
    """Lightning replaced a seed over 32 bits by 0, with a warning only."""
    from cadenza.errors import ConfigError

    cfg = compose_train(tmp_path, ["experiment=smoke", f"seed={2**32}"])
    with pytest.raises(ConfigError, match="seed must be <= 4294967295"):
        train(cfg)


def test_a_csv_version_given_by_hand_is_not_continued(tmp_path: Path) -> None:
    """The CSV logger goes on with a metrics file only in a version it chose itself (fit's and
    test's phases); a version given by hand may be another run's, and is Lightning's to treat
    as it always did (warned of, and started afresh), so two runs' rows never mix."""
    from cadenza.training.csv_log import RunCSVLogger

    chosen = RunCSVLogger(tmp_path, name="csv")
    chosen.pin_version()
    chosen.log_metrics({"val/nll": 3.0}, step=0)
    chosen.save()
    again = RunCSVLogger(tmp_path, name="csv", version=chosen.version)
    again.pin_version()
    with pytest.warns(UserWarning, match="exists and is not empty"):
        again.log_metrics({"val/nll": 2.0}, step=0)
    again.save()
    rows = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    assert rows == ["step,val/nll", "0,2.0"]


def test_a_moved_run_logs_its_first_line_in_its_own_folder(tmp_path: Path):
    """The move comes before anything is logged: the seed's line, the first, is in the moved
    run's train.log and not in the folder it left."""
    import logging

    from cadenza.errors import ConfigError
    from cadenza.training.run_folders import OWNER_MARK

    cfg = compose_train(tmp_path, ["experiment=smoke", "seed=5",
                                   f"ckpt_path={tmp_path}/missing.ckpt"])  # fmt: skip
    shared = Path(cfg.paths.output_dir)
    shared.mkdir(parents=True)
    (shared / OWNER_MARK).write_text("1\n")  # another process's (pid 1)
    root, handler = logging.getLogger(), logging.FileHandler(shared / "train.log")
    level = root.level
    root.addHandler(handler)  # as Hydra's job logging has it
    root.setLevel(logging.INFO)
    try:
        with pytest.raises(ConfigError, match="missing.ckpt does not exist"):
            train(cfg)
    finally:
        for h in [h for h in root.handlers if isinstance(h, logging.FileHandler)
                  and str(tmp_path) in h.baseFilename]:  # fmt: skip
            root.removeHandler(h)
            h.close()
        root.setLevel(level)
    moved = shared.with_name(f"{shared.name}.2")
    assert "Seed set to 5" in (moved / "train.log").read_text()
    assert "Seed set to 5" not in (shared / "train.log").read_text()


def test_a_checkpoint_records_its_data_paths_absolute(tmp_path: Path, monkeypatch) -> None:
    """The default paths are relative to where training ran (./data/processed): recorded as
    they are, cadenza-eval run from another folder would look for the data in the wrong place."""
    from cadenza.training.callbacks import RunRecord

    monkeypatch.chdir(tmp_path)
    record = RunRecord(
        {
            "cache_dir": "./data/processed",
            "root": "/abs",
            "batch_size": 4,
            "source": {"root": "../midi"},
        }
    )
    assert record.data["cache_dir"] == str(tmp_path / "data" / "processed")
    assert record.data["source"]["root"] == str(tmp_path.parent / "midi")
    assert record.data["root"] == "/abs" and record.data["batch_size"] == 4
