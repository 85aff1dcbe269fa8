"""The Fréchet distance between sets of pieces: the formula against scipy's matrix square root,
the bootstrap and the outlier scores, and `cadenza-eval mode=frechet` on real MIDI with broken
files among them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from cadenza.errors import BadMidiError
from cadenza.metrics.frechet import fit_gaussian, frechet_distance, frechet_report, mahalanobis
from tests.fixtures.data import NOTTINGHAM, real_midi
from tests.fixtures.midi_factory import write_broken_folder
from tests.fixtures.smoke import SmokeRuns
from tests.helpers import cli


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_the_distance_is_the_frechet_formula_and_zero_between_equal_gaussians() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = _spd(rng, 6), _spd(rng, 6)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    want = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-6)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)
    # One dimension: (m1 - m2)^2 + (sd1 - sd2)^2.
    one = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]]))
    assert one == pytest.approx(4.0 + 1.0)


def test_shrinkage_keeps_a_few_pieces_in_many_dimensions_finite() -> None:
    """20 pieces in 64 dimensions: the sample covariance is singular, Ledoit-Wolf's is not."""
    x = np.random.default_rng(1).normal(size=(20, 64))
    mu, cov = fit_gaussian(x)
    assert np.linalg.eigvalsh(cov).min() > 0
    assert np.isfinite(mahalanobis(x, mu, cov)).all()


def test_bootstrap_interval_and_the_planted_outlier() -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(200, 8))
    generated = rng.normal(0.5, 1.0, size=(100, 8))
    generated[17] += 12.0  # one piece far from everything real
    names = [f"g{i}.mid" for i in range(100)]
    report = frechet_report(generated, reference, names, bootstrap=100, seed=0)
    lo, hi = report["ci95"]
    assert lo < report["frechet"] < hi
    assert report["outliers"][0]["piece"] == "g17.mid"
    assert report["outliers"][0]["reference_percentile"] == 1.0
    same = frechet_report(reference[:100], reference[100:], bootstrap=0)
    assert same["frechet"] < report["frechet"] and same["ci95"] is None


def test_the_bootstrap_runs_on_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each resample fits [D, D] covariances too small to share out: BLAS threads only added
    overhead (a 10-file run took 112 s on a busy 2-core box, 8.5 s on one thread). The caller's
    pool of 2 threads is cut to 1 inside the loop and given back after it."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import cadenza.metrics.frechet as frechet

    seen: list[int] = []
    real_fit = frechet.fit_gaussian

    def fit_and_count_threads(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen.append(max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"))
        return real_fit(x)

    monkeypatch.setattr(frechet, "fit_gaussian", fit_and_count_threads)
    x = np.random.default_rng(3).normal(size=(2, 10, 128))
    with threadpool_limits(limits=2, user_api="blas"):
        frechet_report(x[0], x[1], bootstrap=5)
        after = max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
    assert seen[:2] == [2, 2]  # the point estimate, outside the loop
    assert seen[2:] == [1] * 10  # two fits in each of the 5 resamples
    assert after == 2


def test_eval_frechet_embeds_two_folders_and_reports_skipped_files(
    smoke: SmokeRuns, tmp_path: Path
) -> None:
    generated, reference = tmp_path / "generated", tmp_path / "reference"
    broken = write_broken_folder(generated)
    reference.mkdir()
    for i, name in enumerate(NOTTINGHAM):
        shutil.copy(real_midi(f"nottingham/MIDI/{name}.mid"), (generated, reference)[i % 2])
    encoder = smoke["smoke_classifier"].ckpt
    out = tmp_path / "frechet.json"
    res = cli("cadenza-eval", "mode=frechet", f"generated={generated}",
              f"reference={reference}", f"encoder={encoder}", "bootstrap=20", f"out={out}",
              cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = json.loads(out.read_text())
    assert report["n"] == {"generated": 3, "reference": 3, "dim": 16}
    assert report["frechet"] >= 0 and len(report["ci95"]) == 2
    assert sorted(Path(o["piece"]).name for o in report["outliers"]) == sorted(
        f"{n}.mid" for n in NOTTINGHAM[::2]
    )
    assert sorted(Path(s["path"]).name for s in report["skipped"]) == sorted(broken)
    assert "Fréchet distance" in res.stdout and "95% bootstrap interval" in res.stdout
    # Each skipped file's line names its path once, then the reason's stable key.
    skipped_lines = [line for line in res.stdout.splitlines() if line.startswith("skipped")]
    assert len(skipped_lines) == len(broken)
    for line in skipped_lines:
        path = line.split(": ", 1)[1].split(": ")[0]
        assert line.count(path) == 1 and Path(path).name in broken, line
    assert all(s["reason"].split(":")[0] in BadMidiError.REASONS for s in report["skipped"])
    no_interval = cli("cadenza-eval", "mode=frechet", f"generated={generated}",
                      f"reference={reference}", f"encoder={encoder}", "bootstrap=0",
                      f"out={tmp_path / 'point.json'}", cwd=tmp_path)  # fmt: skip
    assert no_interval.returncode == 0, no_interval.stderr
    assert "interval" not in no_interval.stdout and "nan" not in no_interval.stdout
    assert json.loads((tmp_path / "point.json").read_text())["ci95"] is None
    no_encoder = cli("cadenza-eval", "mode=frechet", f"generated={generated}",
                     f"reference={reference}", cwd=tmp_path)  # fmt: skip
    assert no_encoder.returncode == 2 and "encoder" in no_encoder.stderr
    lonely = tmp_path / "one"
    lonely.mkdir()
    shutil.copy(real_midi("nottingham/MIDI/jigs1.mid"), lonely)
    one = cli("cadenza-eval", "mode=frechet", f"generated={lonely}", f"reference={reference}",
              f"encoder={encoder}", cwd=tmp_path)  # fmt: skip
    assert one.returncode == 2 and "at least 2" in one.stderr
    # 3 pieces in 16 dimensions: the printout says the distance is mostly bias.
    assert "note: 3 pieces in a 16-dimensional embedding" in res.stdout
    # What a user gets wrong, each said under the key typed, before anything is embedded.
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, said in (
        ([f"generated={generated}", f"encoder={encoder}"],
         "reference must be set: mode=frechet compares"),
        ([f"generated={generated}", f"reference={empty}", f"encoder={encoder}"],
         f"reference={empty} holds no .mid/.midi files (searched recursively): give reference="),
        ([f"generated={generated}", f"reference={reference}", f"encoder={tmp_path}/no.ckpt"],
         f"encoder={tmp_path}/no.ckpt: checkpoint not found (pass encoder=/path/to/classifier"),
        ([f"generated={generated}", f"reference={reference}", f"encoder={encoder}",
          f"out={empty}"], f"out={empty} is a folder: give the report's file"),
    ):  # fmt: skip
        bad = cli("cadenza-eval", "mode=frechet", *args, cwd=tmp_path)
        assert bad.returncode == 2 and said in bad.stderr, bad.stderr
