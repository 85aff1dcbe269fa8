"""Every experiment runs on real data: the smoke experiments through the real CLI, as one Hydra
multirun process from an unrelated working directory; the full-size ones in-process with
`++trainer.fast_dev_run=true` on a slice of their data (the composition, the data path, one
step of each loop, a sample written). Both run each experiment exactly as `cadenza-train
experiment=NAME` composes it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cadenza.paths import config_dir
from cadenza.training.loop import train
from tests.fixtures.data import data_root
from tests.fixtures.smoke import SMOKE_EXPERIMENTS
from tests.helpers import compose_train, run_cli

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
FULL_SIZE = [e for e in EXPERIMENTS if e not in SMOKE_EXPERIMENTS]
# A slice of each full dataset proves the same path in seconds (the whole of it is parsed by
# benchmarks/ and by users; caching makes a second run instant either way).
SLICES = {
    "bach_lstm": ["data.source.limit=24"],
    "bach_vae_satb": ["data.source.limit=24"],
    "nottingham_vae_2bar": ["data.source.limit=40"],
    "nottingham_vae_16bar": ["data.source.limit=40"],
    "pop909_gan": ["data.source.limit=8"],
    "pop909_gan_accompaniment": ["data.source.limit=8"],
    "pop909_vae_2bar": ["data.source.limit=8"],
    "pop909_remi_lstm": ["data.source.limit=8"],
    "pop909_transformer": ["data.source.limit=8"],
    "styles_transformer": ["data.source.per_style=12"],
    "jsb_nottingham_transformer": ["data.source.per_style=12"],
    "pop909_audio_vae": ["data.source.midi.limit=4", "data.source.max_seconds=10"],
    "styles_recommender": ["data.source.per_style=10", "data.source.n_users=50"],
    # Last.fm has no slice: its whole matrix is loaded; the text map is fitted on a sample.
    "lastfm_recommender": ["model.text_max_pairs=300"],
    "styles_classifier": ["data.source.per_style=8"],
    "styles_mel_classifier": [
        "data.source.per_style=3",
        "data.train_window=172",
        *(f"data.source.styles.{s}.max_seconds=8" for s in ("jsb", "nottingham", "pop909")),
        "data.source.styles.piano_midi.max_seconds=8",
    ],
    "piano_midi_composer_classifier": ["data.source.per_class=3", "data.source.min_pieces=21"],
}


def test_the_issue_experiments_exist() -> None:
    assert {"bach_lstm", "jsb_lstm", "nottingham_lstm", "midi_folder_lstm", "smoke"} <= set(
        EXPERIMENTS
    )


@pytest.fixture(scope="module")
def real_midi_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 real Nottingham tunes (copied to a temp folder at test time, never committed)."""
    src = sorted((data_root() / "nottingham" / "MIDI").glob("*.mid"))[:20]
    dst = tmp_path_factory.mktemp("nottingham20")
    for p in src:
        shutil.copy(p, dst / p.name)
    return dst


@pytest.mark.parametrize("experiment", FULL_SIZE)
def test_full_size_experiment_runs_one_step_of_everything(
    experiment: str, tmp_path: Path, real_midi_folder: Path
) -> None:
    data_root()  # fails under CI (skips elsewhere) if the real datasets are missing
    extra = SLICES.get(experiment, [])
    if experiment == "midi_folder_lstm":
        extra = [f"data.root={real_midi_folder}"]
    if experiment == "audio_folder_vae":  # four real tunes, rendered: a folder of recordings
        from cadenza.io.render import render_to_file

        for midi in sorted(real_midi_folder.glob("*.mid"))[:4]:
            render_to_file(midi, tmp_path / "audio" / f"{midi.stem}.flac", synth="builtin",
                           sample_rate=22050, max_seconds=6.0)  # fmt: skip
        extra = [f"data.root={tmp_path / 'audio'}"]
    cfg = compose_train(tmp_path, [
        f"experiment={experiment}", "++trainer.fast_dev_run=true", "sample.n=1",
        "sample.steps=8", f"sample.out_dir={tmp_path}/s", *extra,
    ])  # fmt: skip
    result = train(cfg)
    if "recommender" in experiment:  # ranks tracks, writes no music: its test metrics show
        assert "test/ndcg@10" in result["metrics"]
        return
    if "classifier" in experiment:  # labels pieces, writes no music
        assert "test/accuracy" in result["metrics"] and "samples" not in result
        return
    if cfg.sample.get("n", 0) == 0:  # a conditional model has nothing of its own to play
        return
    # a model of audio features writes audio; every other family MIDI
    files = [Path(p) for p in result["samples"]]
    assert len(files) == 1 and files[0].stat().st_size > 20
    assert files[0].suffix == (".wav" if "audio" in experiment else ".mid")
    if experiment == "bach_lstm":  # the demo renders its samples to hear them
        assert files[0].with_suffix(".wav").stat().st_size > 1000


@pytest.mark.slow
def test_smoke_experiments_through_one_cli_multirun(tmp_path: Path) -> None:
    """`cadenza-train -m` sweeps every smoke experiment in one process (Hydra's basic sweeper,
    one job each), from a working directory with nothing of Cadenza's in it. In bf16-mixed:
    every family trains in mixed precision on a CPU too (the recurrent layers keep float32
    inside autocast, where oneDNN has no bf16 LSTM on some CPUs)."""
    data_root()
    proc = run_cli(
        "cadenza-train", "-m", f"experiment={','.join(SMOKE_EXPERIMENTS)}",
        "++trainer.fast_dev_run=true", "trainer.precision=bf16-mixed", "logger=none",
        "sample.n=1", "sample.steps=8", cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # Each job writes under its experiment's name: outputs/multirun/<name>/<time>/<job number>
    jobs = sorted((tmp_path / "outputs" / "multirun").glob("*/*/[0-9]*"), key=lambda j: int(j.name))
    assert [j.name for j in jobs] == [str(i) for i in range(len(SMOKE_EXPERIMENTS))]
    for job, experiment in zip(jobs, SMOKE_EXPERIMENTS):
        assert f"experiment={experiment}" in (job / ".hydra" / "overrides.yaml").read_text()
        assert job.parent.parent.name == experiment
        if "recommender" in experiment or "classifier" in experiment:
            continue  # ranks tracks or labels pieces: writes no music
        written = list((job / "samples").glob("sample_000.*"))
        assert any(p.suffix in (".mid", ".wav") and p.stat().st_size > 20 for p in written), job


@pytest.mark.slow
def test_an_optuna_search_draws_each_trial_and_keeps_the_best_epoch(tmp_path: Path) -> None:
    """`hparams_search=jsb_lstm_optuna` (Hydra's Optuna sweeper, TPE): each trial's settings are
    drawn from the search space, each run returns its best epoch's val/nll, and the study's best
    is the lowest of them (here on the smoke data: two trials, the second drawn by TPE)."""
    import yaml

    data_root()
    proc = run_cli(
        "cadenza-train", "experiment=smoke", "hparams_search=jsb_lstm_optuna",
        "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=1", "logger=none",
        "trainer.max_epochs=1", "sample.n=0", "test=false", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "alembic" not in proc.stdout + proc.stderr  # the sweeper's imports, not the search
    (results,) = (tmp_path / "outputs" / "multirun" / "smoke").glob("*/optimization_results.yaml")
    jobs = sorted(results.parent.glob("[0-9]*"))
    assert [j.name for j in jobs] == ["0", "1"]
    for job in jobs:
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        drawn = dict(o.split("=", 1) for o in overrides if o.startswith("model."))
        assert int(drawn["model.hidden_size"]) in (150, 200, 300, 400)
        assert int(drawn["model.nade_hidden"]) in (100, 150, 200)
        assert 0.2 <= float(drawn["model.dropout"]) <= 0.6
        assert 0.0005 <= float(drawn["model.optimizer.lr"]) <= 0.01
    best = (tmp_path / "checkpoints" / "smoke").glob("*/epoch*-nll*.ckpt")
    best_epochs = [float(p.stem.rsplit("nll", 1)[1]) for p in best]
    assert len(best_epochs) == 2
    study = yaml.safe_load(results.read_text())
    assert study["best_value"] == pytest.approx(min(best_epochs), abs=1e-4)
    # The sweep's summary: each job's result, the best first, with its overrides and checkpoint.
    import csv

    with (results.parent / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["job"]) for r in rows) == [0, 1] and {r["status"] for r in rows} == {"done"}
    assert float(rows[0]["val/nll"]) == pytest.approx(study["best_value"], abs=1e-4)
    assert float(rows[0]["val/nll"]) <= float(rows[1]["val/nll"])
    assert Path(rows[0]["best_ckpt"]).is_file() and "model.hidden_size=" in rows[0]["overrides"]
