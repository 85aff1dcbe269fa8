"""The gan family through train() and cadenza-sample: smoke run on real POP909 with every epoch
metric and the piano-roll sheets, sampling from the checkpoint (prior, latent walk,
accompaniment for a melody), DDP on 2 CPU processes."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from cadenza.io.midi import build_midi, load_midi, save_midi, tracks_of
from cadenza.models import GANModule, GenerativeModule
from tests.fixtures.data import data_root
from tests.fixtures.smoke import SmokeRuns
from tests.helpers import cli, train_ddp_sim
from tests.models.gan_fixtures import pop909_codec, pop909_phrases, small_gan

EPOCH_METRICS = [
    "val/critic_gap", "val/stat_gap", "val/gen/qualified_note_rate", "val/real/qualified_note_rate",
    "val/gen/empty_bar_rate", "val/real/empty_bar_rate", "val/gen/used_pitch_classes",
    "val/real/used_pitch_classes", "val/track_gap", "val/gen/MELODY/empty_bar_rate",
    "val/real/PIANO/used_pitch_classes",
]  # fmt: skip


def test_smoke_gan_trains_logs_checkpoints_and_samples(smoke: SmokeRuns) -> None:
    run = smoke["smoke_gan"]
    result = run.result
    m = result["metrics"]
    for key in EPOCH_METRICS:
        assert key in m, key
    assert math.isfinite(m["val/real/qualified_note_rate"])
    assert 0.0 <= m["val/real/empty_bar_rate"] <= 1.0
    assert "test/stat_gap" in m
    # A track can only be farther from its own real statistics than the pool is from its.
    assert m["val/track_gap"] >= 0.0
    rows = list(csv.DictReader(run.metrics_csv().open()))
    assert len({r["epoch"] for r in rows if r.get("val/stat_gap")}) == 2  # once per epoch
    moved = [float(r["train/critic_loss"]) for r in rows if r.get("train/critic_loss")]
    assert len(moved) >= 8 and max(moved) - min(moved) > 1e-4
    sheets = sorted(run.logs.rglob("pianorolls/epoch*.png"))
    assert [s.name for s in sheets] == ["epoch000.png", "epoch001.png"]
    model = GenerativeModule.load(result["latest_ckpt"])
    assert isinstance(model, GANModule) and model.codec.n_tracks == 3
    # last.ckpt is the newest state (what a killed run resumes from), whichever epoch was best.
    last = torch.load(result["last_ckpt"], map_location="cpu", weights_only=True)
    assert last["epoch"] == 1 and Path(result["last_ckpt"]).name == "last.ckpt"
    assert len(result["samples"]) == 2
    # One named instrument per track (a track a tiny GAN left silent is not in the file).
    names = [i.name for i in load_midi(result["samples"][0]).instruments]
    assert names and [n for n in ["MELODY", "BRIDGE", "PIANO"] if n in names] == names


@pytest.fixture(scope="module")
def gan_ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An unconditional and a melody-conditional GAN, a few steps on real POP909 phrases."""
    from tests.models.gan_fixtures import fit

    root = tmp_path_factory.mktemp("gan")
    phrases = pop909_phrases(pop909_codec(), songs=2)
    out = {}
    for name, kw in (("prior", {}), ("accompany", {"condition_track": "name:MELODY"})):
        torch.manual_seed(0)
        model = small_gan(pop909_codec(), **kw)
        trainer = fit(model, phrases, root / name, steps=4)
        trainer.save_checkpoint(root / f"{name}.ckpt")
        out[name] = root / f"{name}.ckpt"
    return out


def test_cli_samples_multitrack_midi_and_pictures(gan_ckpts, tmp_path):
    proc = cli(
        "cadenza-sample", f"ckpt_path={gan_ckpts['prior']}", "n=2", "bars=8",
        f"out_dir={tmp_path}/s", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for i in range(2):
        names = [t.name for t in load_midi(tmp_path / "s" / f"sample_{i:03d}.mid").instruments]
        # One instrument per track (one a barely trained GAN leaves silent is not in the file).
        assert names and [n for n in ["MELODY", "BRIDGE", "PIANO"] if n in names] == names
        assert (tmp_path / "s" / f"sample_{i:03d}.png").stat().st_size > 1000
    report = json.loads((tmp_path / "s" / "samples.json").read_text())
    assert report["controls"]["family"] == "gan" and report["controls"]["steps"] == 8 * 16


def test_cli_latent_walk(gan_ckpts, tmp_path):
    proc = cli(
        "cadenza-sample", f"ckpt_path={gan_ckpts['prior']}", "mode=interpolate", "steps=4",
        f"out_dir={tmp_path}/w", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((tmp_path / "w").glob("interp_*.mid"))) == 4
    assert (tmp_path / "w" / "interp_sheet.png").is_file()
    assert json.loads((tmp_path / "w" / "samples.json").read_text())["controls"]["steps"] == 4


def test_cli_accompanies_a_bare_melody(gan_ckpts, tmp_path):
    """A one-instrument melody file (no MELODY track name): its notes are the condition."""
    import numpy as np

    from cadenza.io.midi import TrackNotes

    notes = np.array([[i * 0.5, i * 0.5 + 0.5, 60 + (i % 8), 90] for i in range(16)], float)
    melody = save_midi(build_midi([TrackNotes(0, False, "lead", notes)], tempo=120.0),
                       tmp_path / "tune.mid")  # fmt: skip
    proc = cli(
        "cadenza-sample", f"ckpt_path={gan_ckpts['accompany']}", f"condition={melody}", "n=2",
        f"out_dir={tmp_path}/a", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    pm = load_midi(tmp_path / "a" / "sample_000.mid")
    got = sorted((round(n.start, 3), n.pitch) for n in pm.instruments[0].notes)
    assert got == [(round(s, 3), int(p)) for s, _, p, _ in notes]  # the melody, as given
    # Without a condition the conditional model says what it needs.
    bad = cli("cadenza-sample", f"ckpt_path={gan_ckpts['accompany']}",
                  f"out_dir={tmp_path}/b", cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "cannot sample new pieces; it can: accompany" in bad.stderr
    assert sum(len(t.notes) for t in tracks_of(pm)) >= len(notes)


@pytest.mark.slow
def test_gan_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    data_root()
    result, ranks = train_ddp_sim(tmp_path, "smoke_gan")
    seen0, seen1 = set(ranks[0]["seen"]), set(ranks[1]["seen"])
    assert seen0 and seen1 and len(seen0 & seen1) <= 1  # each rank its own phrases
    model = GenerativeModule.load(result["latest_ckpt"])
    assert isinstance(model, GANModule)
    assert math.isfinite(result["metrics"]["val/real/qualified_note_rate"])
