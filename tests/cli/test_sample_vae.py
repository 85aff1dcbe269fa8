"""cadenza-sample's VAE modes as the CLI runs them: reconstruct, interpolate, attribute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadenza.io.midi import load_midi, tracks_of
from cadenza.representations import MelodyCodec
from tests.fixtures.data import data_root
from tests.helpers import cli
from tests.models.vae_fixtures import save_checkpoint, trained_vae


@pytest.fixture(scope="module")
def vae_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, _ = trained_vae()
    return save_checkpoint(model, tmp_path_factory.mktemp("vae") / "vae.ckpt")


def melody(name: str) -> Path:
    return data_root() / "nottingham" / "MIDI" / "melody" / f"{name}.mid"


def test_reconstruct_writes_the_input_window_and_its_reconstruction(vae_ckpt, tmp_path):
    proc = cli(
        "cadenza-sample", f"ckpt_path={vae_ckpt}", "mode=reconstruct",
        f"input={melody('jigs1')}", f"out_dir={tmp_path}/r", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "r" / "samples.json").read_text())
    assert report["controls"]["mode"] == "reconstruct"
    # What makes it again: with a temperature the seed picks the variations.
    assert {"family": "vae", "n": 1, "seed": 0}.items() <= report["controls"].items()
    files = [s["file"] for s in report["inputs"] + report["samples"]]
    assert files == ["input.mid", "reconstruction_000.mid"]  # greedy: one answer
    for f in files:
        pm = load_midi(tmp_path / "r" / f)
        assert sum(len(t.notes) for t in tracks_of(pm)) > 0
        assert (tmp_path / "r" / f).with_suffix(".png").is_file()
    acc = report["samples"][0]["token_accuracy_vs_input"]
    assert 0.0 <= acc <= 1.0
    # The input window is the tune's first two bars, as the codec cuts them.
    codec = MelodyCodec()
    window = codec.windows(codec.encode(load_midi(melody("jigs1"))).numpy(), 2)[0]
    got = codec.encode(load_midi(tmp_path / "r" / "input.mid")).tolist()
    assert got == window.tolist()[: len(got)]  # decoding drops trailing rests only


def test_a_typed_prefix_names_an_explorations_files(vae_ckpt, tmp_path):
    """prefix= names the files of every mode (a second run into one folder then keeps the
    first's); n without a temperature is said to give one greedy answer."""
    proc = cli(
        "cadenza-sample", f"ckpt_path={vae_ckpt}", "mode=reconstruct", "n=3", "prefix=take",
        f"input={melody('jigs1')}", f"out_dir={tmp_path}/r", "png=false", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "n=3: a reconstruction without temperature= is greedy, one answer" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "r").glob("*.mid")) == ["input.mid", "take_000.mid"]
    proc = cli(
        "cadenza-sample", f"ckpt_path={vae_ckpt}", "mode=interpolate", "steps=3", "prefix=morph",
        f"a={melody('jigs1')}", f"b={melody('waltzes1')}", f"out_dir={tmp_path}/i", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "i").glob("morph_*")) == [
        "morph_000.mid", "morph_000.png", "morph_001.mid", "morph_001.png", "morph_002.mid",
        "morph_002.png", "morph_sheet.png"]  # fmt: skip


def test_interpolate_writes_the_path_and_one_sheet(vae_ckpt, tmp_path):
    proc = cli(
        "cadenza-sample", f"ckpt_path={vae_ckpt}", "mode=interpolate",
        f"a={melody('jigs1')}", f"b={melody('waltzes1')}", "steps=5", "tempo=60",
        f"out_dir={tmp_path}/i", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    mids = sorted((tmp_path / "i").glob("interp_*.mid"))
    assert [m.name for m in mids] == [f"interp_{i:03d}.mid" for i in range(5)]
    assert (tmp_path / "i" / "interp_sheet.png").stat().st_size > 1000
    report = json.loads((tmp_path / "i" / "samples.json").read_text())
    assert report["controls"]["steps"] == 5 and len(report["samples"]) == 5
    assert report["inputs"] == []
    # Written at the tempo asked for: the melody codec's 120 bpm window lasts twice as long.
    assert report["controls"]["tempo"] == 60
    for m in mids:
        pm = load_midi(m)
        assert pm.get_tempo_changes()[1] == pytest.approx([60.0], abs=1e-3)
        assert pm.get_end_time() <= 2 * 4 * 60 / 60 + 1e-3  # two 4/4 bars at 60 bpm: 8 s


def test_prior_with_attribute_reports_the_achieved_change(vae_ckpt, tmp_path):
    proc = cli(
        "cadenza-sample", f"ckpt_path={vae_ckpt}", "attribute=density:+1.5", "n=6",
        "temperature=0.5", f"out_dir={tmp_path}/p", "png=false", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "p" / "samples.json").read_text())
    change = report["attribute_change"]
    assert change["attribute"] == "density" and change["asked"] == 1.5
    assert change["change"] > 0, change
    assert f"density: {change['before']} -> {change['after']}" in proc.stdout
    assert len(list((tmp_path / "p").glob("base_*.mid"))) == 6
    assert len(list((tmp_path / "p").glob("sample_*.mid"))) == 6
    # Each shifted sample names the unshifted draw it came from, listed under inputs.
    assert [s["file"] for s in report["samples"]] == [f"sample_{i:03d}.mid" for i in range(6)]
    assert [s["base"] for s in report["samples"]] == [s["file"] for s in report["inputs"]]
    assert [s["file"] for s in report["inputs"]] == [f"base_{i:03d}.mid" for i in range(6)]


@pytest.mark.parametrize(
    "args,message",
    [
        (["attribute=loudness:+1"], "attribute must be NAME:AMOUNT"),
        (["mode=interpolate", "a=x.mid"], "b=... is required"),
        (["mode=morph"], "mode must be one of"),
    ],
    ids=["unknown-attribute", "missing-b", "unknown-mode"],
)
def test_bad_vae_controls_are_one_clear_line(vae_ckpt, tmp_path, args, message):
    proc = cli("cadenza-sample", f"ckpt_path={vae_ckpt}", *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
