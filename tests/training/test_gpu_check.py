"""benchmarks/gpu_check.py, the prepared GPU run of issue 17, runs here on CPU with the same code
paths (bf16-mixed autocast, the checkpoint a CPU-only process loads, seeded sampling), so it
cannot rot between the sessions that have a GPU."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from cadenza.models.base import FAMILIES, GenerativeModule
from tests.fixtures.data import data_root

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _script():
    if "gpu_check" not in sys.modules:  # registered first: its dataclasses look it up there
        sys.path.insert(0, str(SCRIPT.parent))  # for cli_runs, as when run as a script
        spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
        sys.modules["gpu_check"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["gpu_check"])
    return sys.modules["gpu_check"]


def test_every_generative_family_has_a_check() -> None:
    """A new family cannot be left out of the GPU run."""
    import cadenza.models  # noqa: F401 - registers every family

    generative = {f for f, cls in FAMILIES.items() if issubclass(cls, GenerativeModule)}
    assert set(_script().CHECKS) == generative


def test_matmul_weights_counts_a_tied_embedding_once() -> None:
    from torch import nn

    gpu_check = _script()
    embed, head = nn.Embedding(10, 4), nn.Linear(4, 10)
    head.weight = embed.weight  # tied, as TokenTransformer does
    lstm = nn.LSTM(4, 8)
    model = nn.ModuleDict({"embed": embed, "head": head, "lstm": lstm})
    # head 10x4 once; LSTM weight_ih 32x4 and weight_hh 32x8 (biases left out)
    assert gpu_check.matmul_weights(model) == 40 + 128 + 256


@pytest.mark.slow
def test_gpu_check_runs_every_family_on_cpu(tmp_path: Path) -> None:
    data_root()  # fails under CI (skips elsewhere) without the real datasets
    results = tmp_path / "gpu_check.json"
    # In this process (its CPU-only loading process is a real one): the script as CI runs it.
    # 8 steps a family: every path runs (training, checkpoint, CPU-only load, sampling); the
    # minute's budget alone let each family train until its slice ran out (75 s of CI).
    _script().main(["--device", "cpu", "--minutes", "1", "--steps", "8", "--results",
                    str(results), "--work", str(tmp_path / "work")])  # fmt: skip
    report = json.loads(results.read_text())
    assert report["precision"] == "bf16-mixed"
    assert set(report["families"]) == set(_script().CHECKS)
    for family, row in report["families"].items():
        assert "error" not in row, (family, row)
        assert row["steps"] >= 2 and row["loss_finite"], family
        assert all(math.isfinite(v) for v in row["loss_curve"]), family
        assert row["codec_steps_per_s"] > 0 and row["windows_per_s"] > 0, family
        assert row["same_seed_same_notes"], family
        # Every declared ability answered with music on the device (a CPU here).
        assert row["abilities"] and set(row["abilities"].values()) == {"ok"}, (family, row)
        if "prior" in row["abilities"] and family != "mel_vae":  # the service batches MIDI
            assert row["batched_same_as_alone"] is True, family  # on a CPU: exactly
        # The checkpoint this process wrote loads, weights only, in one that sees no GPU.
        assert row["cpu_load"]["loaded"], (family, row["cpu_load"])
    for family in ("lstm", "transformer"):  # model FLOP utilisation needs a FLOP count
        row = report["families"][family]
        assert row["flops_per_codec_step"] > 6 * 1e6 and row["tflops"] > 0, family
