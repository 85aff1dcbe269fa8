"""The vae family through train(): metrics per epoch, checkpoint, test, samples; DDP on 2 CPU
processes."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from cadenza.models import GenerativeModule, VAEModule
from tests.fixtures.data import data_root
from tests.fixtures.smoke import SmokeRuns
from tests.helpers import train_ddp_sim

EPOCH_METRICS = [
    "val/recon_acc_tf", "val/recon_acc_sampled", "val/kl", "val/elbo", "val/active_units",
    "val/recon_nll", "val/nll",
]  # fmt: skip


def test_smoke_vae_logs_every_metric_per_epoch_and_samples(smoke: SmokeRuns) -> None:
    run = smoke["smoke_vae"]
    result = run.result
    m = result["metrics"]
    for key in EPOCH_METRICS:
        assert math.isfinite(m[key]), key
    assert 0.0 <= m["val/recon_acc_sampled"] <= 1.0 and m["val/kl"] >= 0
    assert m["val/elbo"] < 0 and 0 <= m["val/active_units"] <= 16
    assert "test/recon_acc_sampled" in m
    rows = list(csv.DictReader(run.metrics_csv().open()))
    epochs = {r["epoch"] for r in rows if r.get("val/recon_acc_sampled")}
    assert len(epochs) == 2  # logged once per epoch
    model = GenerativeModule.load(result["latest_ckpt"])
    assert isinstance(model, VAEModule) and model.hparams.bars == 2
    # Each validation epoch refit the attribute vectors, and the checkpoint carries them.
    assert float(model.attribute_gaps.abs().sum()) > 0
    assert len(result["samples"]) == 2


@pytest.mark.slow
def test_vae_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    data_root()
    result, ranks = train_ddp_sim(tmp_path, "smoke_vae", test=True)
    seen0, seen1 = set(ranks[0]["seen"]), set(ranks[1]["seen"])
    assert seen0 and seen1 and len(seen0 & seen1) <= 1
    assert seen0 | seen1 == set(range(ranks[0]["dataset_size"]))  # every training window
    model = GenerativeModule.load(result["latest_ckpt"])
    assert isinstance(model, VAEModule)
    assert math.isfinite(result["metrics"]["val/recon_acc_sampled"])
    # Fit and test, each in processes of their own, log to one version of the run's CSV.
    assert [p.name for p in (tmp_path / "csv").iterdir()] == ["version_0"]
    logged = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "test/nll" in logged and "val/nll" in logged
