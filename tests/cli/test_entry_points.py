"""Each console script as a user runs it, in a real process: a user error ends with exit status
2 and one `cadenza: error:` line, no traceback. (What each one does is tested in-process, as
the script runs it: tests.helpers.cli; cadenza-train's success path by the experiment sweep,
cadenza-eval's and cadenza-render's in their own tests, cadenza-serve's in tests/serve.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.midi_factory import write_broken_folder
from tests.fixtures.smoke import SmokeRuns
from tests.helpers import run_cli


def _one_clear_line(proc, *messages: str) -> None:  # noqa: ANN001 - a CompletedProcess
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cadenza: error:" in proc.stderr and "Traceback" not in proc.stderr
    for m in messages:
        assert m in proc.stderr


def test_cadenza_train(tmp_path: Path) -> None:
    proc = run_cli("cadenza-train", "experiment=smoke", "model.hidden_size=abc", "logger=none",
                   cwd=tmp_path)  # fmt: skip
    _one_clear_line(proc, "model.hidden_size", "abc")


def test_cadenza_sample(tmp_path: Path) -> None:
    proc = run_cli("cadenza-sample", "ckpt_path=/no/such.ckpt", f"out_dir={tmp_path}",
                   cwd=tmp_path)  # fmt: skip
    _one_clear_line(proc, "checkpoint not found")


def test_cadenza_prepare(tmp_path: Path) -> None:
    write_broken_folder(tmp_path / "junk")
    proc = run_cli("cadenza-prepare", "data=midi_folder", f"data.root={tmp_path / 'junk'}",
                   cwd=tmp_path)  # fmt: skip
    _one_clear_line(proc, "junk")


@pytest.mark.usefixtures("smoke")
def test_cadenza_recommend(smoke: SmokeRuns, tmp_path: Path) -> None:
    ckpt = smoke["smoke_recommender"].ckpt
    proc = run_cli("cadenza-recommend", f"ckpt={ckpt}", "user=nobody", cwd=tmp_path)
    _one_clear_line(proc, "is not a listener this model knows")
