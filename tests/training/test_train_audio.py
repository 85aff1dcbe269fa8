"""The mel_vae family through train() and the CLI on real data: POP909 songs rendered to
audio, log-mel patches, checkpoints, spectrogram sheets, and samples you can listen to."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest

from cadenza.io.audio import load_audio
from cadenza.models import GenerativeModule, MelVAEModule
from tests.fixtures.data import data_root
from tests.fixtures.smoke import SmokeRuns
from tests.helpers import cli

EPOCH_METRICS = ["val/nll", "val/recon_db", "val/lsd_db", "val/kl", "val/active_units"]


@pytest.fixture
def smoke_run(smoke: SmokeRuns) -> tuple[Path, dict]:
    run = smoke["smoke_audio_vae"]
    return run.root, run.result


def test_smoke_audio_vae_trains_logs_and_checkpoints(smoke_run: tuple[Path, dict]) -> None:
    tmp, result = smoke_run
    m = result["metrics"]
    for key in EPOCH_METRICS:
        assert key in m and math.isfinite(m[key]), key
        assert f"test/{key[4:]}" in m
    assert 0 < m["val/recon_db"] < 80 and m["val/lsd_db"] >= m["val/recon_db"] * 0.9
    rows = list(csv.DictReader(next((tmp / "logs").rglob("metrics.csv")).open()))
    assert len({r["epoch"] for r in rows if r.get("val/nll")}) == 2  # once per epoch
    train_loss = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(train_loss) >= 4 and train_loss[-1] < train_loss[0]
    sheets = sorted((tmp / "logs").rglob("spectrograms/epoch*.png"))
    assert [s.name for s in sheets] == ["epoch000.png", "epoch001.png"]
    model = GenerativeModule.load(result["latest_ckpt"])
    assert isinstance(model, MelVAEModule) and model.codec.feature_dim == 64
    # The songs were rendered once into the render cache (FLAC) that later runs read back.
    cache = Path(os.environ["CADENZA_CACHE"])
    assert len(list(cache.glob("rendered/midi-*/*.flac"))) >= 8


def test_smoke_audio_vae_samples_are_audio(smoke_run: tuple[Path, dict]) -> None:
    _, result = smoke_run
    wavs = [Path(p) for p in result["samples"]]
    assert [p.suffix for p in wavs] == [".wav", ".wav"]
    for p in wavs:
        wave = load_audio(p)
        assert wave.sample_rate == 22050 and wave.seconds == pytest.approx(2.0, abs=0.05)
        assert p.with_suffix(".png").stat().st_size > 1000
    meta = json.loads((wavs[0].parent / "samples.json").read_text())
    assert meta["controls"]["family"] == "mel_vae" and len(meta["samples"]) == 2


def test_a_tempo_asked_of_a_model_of_audio_is_refused_before_sampling(
    smoke_run: tuple[Path, dict], tmp_path: Path
) -> None:
    from cadenza.errors import ConfigError
    from cadenza.generation import generate_to_files

    model = GenerativeModule.load(smoke_run[1]["latest_ckpt"])
    with pytest.raises(ConfigError, match="writes audio, which has no notes to put on a tempo"):
        generate_to_files(model, tmp_path / "out", n=1, tempo=90)
    assert not (tmp_path / "out").exists()


def test_cadenza_sample_writes_audio_from_a_mel_vae_checkpoint(
    smoke_run: tuple[Path, dict], tmp_path: Path
) -> None:
    _, result = smoke_run
    out = tmp_path / "s"
    args = [f"ckpt_path={result['latest_ckpt']}", "n=3", f"out_dir={out}", "seed=7"]
    proc = cli("cadenza-sample", *args, "temperature=0.8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wavs = sorted(out.glob("*.wav"))
    assert len(wavs) == 3 and all(load_audio(p).seconds > 1.9 for p in wavs)
    bad = cli("cadenza-sample", *args, "primer=x.mid", cwd=tmp_path)
    assert bad.returncode == 2 and "cannot continue a primer (primer=)" in bad.stderr
    bad = cli("cadenza-sample", *args, "attribute=density:+1", cwd=tmp_path)
    assert bad.returncode == 2 and "cannot shift along attribute vectors" in bad.stderr
    bad = cli("cadenza-sample", *args, "mode=reconstruct", "input=clip.txt", cwd=tmp_path)
    assert bad.returncode == 2 and "clip.txt: no such file" in bad.stderr  # not "MIDI file"


@pytest.mark.slow
def test_smoke_audio_vae_under_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    from tests.helpers import train_ddp_sim

    data_root()
    result, ranks = train_ddp_sim(tmp_path, "smoke_audio_vae")
    seen = [set(r["seen"]) for r in ranks]
    # each rank its own windows (the sampler pads an odd count with one repeat)
    assert seen[0] and seen[1] and len(seen[0] & seen[1]) <= 1
    assert GenerativeModule.load(result["latest_ckpt"]).family == "mel_vae"
