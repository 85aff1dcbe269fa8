"""`trainer.precision` either runs or stops at start-up with one line that names it: every
family trains bf16-mixed on a CPU (every smoke experiment in the multirun of
tests/cli/test_experiments.py, every family at a realistic width in tests/training/
test_gpu_check.py), and whole-model half precision is refused before any data is prepared."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.helpers import cli


def test_a_bf16_lstm_step_matches_float32_closely(tmp_path: Path) -> None:
    """The float32 recurrence inside autocast: the same batch's loss in bf16-mixed is within
    bf16's rounding of the float32 loss (and finite)."""
    import torch

    from cadenza.data.batch import Batch
    from cadenza.models import LSTMModule
    from cadenza.representations import PianoRollCodec

    torch.manual_seed(0)
    codec = PianoRollCodec(low_pitch=60, high_pitch=71)
    model = LSTMModule(codec=codec, hidden_size=32, nade_hidden=16).eval()

    x = (torch.rand(4, 16, codec.feature_dim) < 0.3).float()
    batch = Batch(x=x, lengths=torch.full((4,), 16))
    nll32, n = model(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nll16, _ = model(batch)
    assert math.isfinite(float(nll16)) and float(nll16 / n) == pytest.approx(
        float(nll32 / n), rel=0.02
    )


@pytest.mark.parametrize("precision", ["bf16-true", "16-true", "64-true", "fast"])
def test_an_unsupported_precision_stops_at_start_up(precision: str, tmp_path: Path) -> None:
    proc = cli("cadenza-train", "experiment=smoke", f"trainer.precision={precision}",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert f"trainer.precision={precision} is not supported: use bf16-mixed" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "checkpoints").exists()
