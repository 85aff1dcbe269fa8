"""Every experiment through the real CLI, from an unrelated working directory, on real data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cadenza.paths import config_dir
from tests.fixtures.data import data_root
from tests.helpers import run_cli

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


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


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_fast_dev_run(experiment: str, tmp_path: Path, real_midi_folder: Path):
    data_root()  # fails under CI (skips elsewhere) if the real datasets are missing
    extra = {
        "midi_folder_lstm": [f"data.root={real_midi_folder}"],
        # the demo reads all 433 chorales; the first 24 prove the same path in seconds
        "bach_lstm": ["data.source.limit=24"],
        # rendering all 909 songs takes minutes: 4 songs' first 10 s prove the same path
        "pop909_audio_vae": ["data.source.midi.limit=4", "data.source.max_seconds=10"],
        # parsing 600 pieces costs ~30 s; 10 per style prove the same path
        "styles_recommender": ["data.source.per_style=10", "data.source.n_users=50"],
    }.get(experiment, [])
    proc = run_cli(
        "cadenza-train",
        f"experiment={experiment}",
        "++trainer.fast_dev_run=true",
        "logger=none",
        "sample.n=1",
        "sample.steps=8",
        f"sample.out_dir={tmp_path}/s",
        *extra,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    if "recommender" in experiment:  # ranks tracks, writes no music: its test metrics show
        assert "test/ndcg@10" in proc.stdout + proc.stderr
        return
    # a model of audio features writes audio; every other family MIDI
    suffix = "*.wav" if "audio" in experiment else "*.mid"
    mids = sorted((tmp_path / "s").glob(suffix))
    assert len(mids) == 1 and mids[0].stat().st_size > 20
    if experiment == "bach_lstm":  # the demo renders its samples to hear them
        assert mids[0].with_suffix(".wav").stat().st_size > 1000
    assert (tmp_path / "outputs").is_dir()  # Hydra wrote its run dir under the cwd


@pytest.mark.slow
def test_multirun_sweeps_two_jobs(tmp_path: Path) -> None:
    proc = run_cli(
        "cadenza-train",
        "-m",
        "experiment=smoke",
        "model.hidden_size=16,24",
        "++trainer.fast_dev_run=true",
        "logger=none",
        "sample.n=0",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted((tmp_path / "outputs" / "multirun" / "smoke").glob("*/[0-9]*"))
    assert [j.name for j in jobs] == ["0", "1"]
    overrides = [(j / ".hydra" / "overrides.yaml").read_text() for j in jobs]
    assert "model.hidden_size=16" in overrides[0] and "model.hidden_size=24" in overrides[1]
