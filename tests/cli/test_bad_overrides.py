"""A wrong override fails at start-up with a message that names it, never a deep traceback
(in-process, as the CLI runs it; the exit status of a real process: test_entry_points.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import cli


@pytest.mark.parametrize(
    ("args", "code", "messages"),
    [
        (["data=nonexistent"], 1, ["data/nonexistent", "Available options"]),
        (["experiment=smoke", "model.hidden_size=abc"], 2, ["model.hidden_size", "abc"]),
        (["experiment=smoke", "model.dropout=2"], 2, ["model.dropout"]),
        (["experiment=smoke", "data.batch_size=0"], 2, ["data.batch_size"]),
        (["data=midi_folder"], 2, ["data.root must be set"]),
        (["data=midi_folder", "data.root=/no/such/folder"], 2, ["/no/such/folder"]),
        (["data=boulanger", "data.source.name=bogus"], 2, ["bogus", "jsb", "nottingham"]),
        # Values Lightning and torch check late (a bare assertion, or hours into a run): start-up.
        (["experiment=smoke", "trainer.max_epochs=abc"], 2, ["trainer.max_epochs", "'abc'"]),
        (
            ["experiment=smoke", "trainer.limit_train_batches=1.5"],
            2,
            ["trainer.limit_train_batches", "fraction"],
        ),
        (
            ["experiment=smoke", "callbacks=early_stopping", "callbacks.early_stopping.patience=x"],
            2,
            ["callbacks.early_stopping.patience", "'x'"],
        ),
        (
            ["experiment=smoke", "callbacks.model_checkpoint.mode=up"],
            2,
            ["callbacks.model_checkpoint.mode must be min or max"],
        ),
        (["experiment=smoke", "model.optimizer.lr=-1"], 2, ["model.optimizer.lr must be >= 0"]),
        (
            ["experiment=smoke", "representation.steps_per_beat=abc"],
            2,
            ["representation.steps_per_beat must be an integer"],
        ),
        (
            ["experiment=smoke", "representation.low_pitch=100", "representation.high_pitch=50"],
            2,
            ["pitch range 100..50: low_pitch must be <= high_pitch"],
        ),
        (
            ["experiment=smoke", "sample.n=2", "sample.temperature=0"],
            2,
            ["sample.temperature must be > 0"],
        ),
        (
            ["experiment=smoke", "sample.n=2", "sample.top_k=5"],
            2,
            ["sample: this lstm model cannot filter next tokens"],
        ),
        (["experiment=smoke", "trainer=gpu"], 2, ["no CUDA GPU is visible", "trainer=cpu"]),
        (["experiment=smoke", "trainer.max_time=10min"], 2, ["trainer.max_time must be DD:HH"]),
        # Known once the data is prepared (an epoch's batches), still before any training.
        (
            ["experiment=smoke", "trainer.val_check_interval=100"],
            2,
            ["trainer.val_check_interval=100 is more than an epoch's"],
        ),
        # A typo Hydra's own error advises appending with "+": named, with the nearest setting.
        (
            ["experiment=smoke", "+model.hiden_size=64"],
            2,
            ["model.hiden_size is not a setting of LSTMModule: did you mean model.hidden_size?"],
        ),
        (
            ["experiment=smoke", "+trainer.max_epoch=3"],
            2,
            ["trainer.max_epoch is not a setting of Trainer: did you mean trainer.max_epochs?"],
        ),
        (
            ["experiment=smoke", "+data.source.limt=3"],
            2,
            ["data.source.limt is not a setting of Music21Source: did you mean data.source.limit?"],
        ),
        # A key that is not in the config: the override as it was meant, in place of Hydra's
        # report (which advises appending the typo with "+").
        (
            ["experiment=smoke", "model.hiden_size=64", "trainer.max_epoch=3"],
            2,
            [
                "cadenza: error: model.hiden_size is not in model: did you mean "
                "model.hidden_size=64?",
                "cadenza: error: trainer.max_epoch is not in trainer: did you mean "
                "trainer.max_epochs=3?",
            ],
        ),
        (
            ["experiment=smoke", "modle=vae"],
            2,
            ["cadenza: error: modle is not in the config: did you mean model=vae?"],
        ),
        (
            ["experiment=smoke", "trainer.accumulate_grad_batche=2"],
            2,
            [
                "did you mean +trainer.accumulate_grad_batches=2? (accumulate_grad_batches is a "
                "setting of Trainer the config leaves at its default)"
            ],
        ),  # fmt: skip
        (
            ["experiment=smoke", "model.qqqqq=1"],
            2,
            ["cadenza: error: model.qqqqq is not in model, whose settings are codec, dropout"],
        ),
    ],
    ids=[
        "unknown-dataset",
        "hidden-size-abc",
        "dropout-2",
        "batch-size-0",
        "no-root",
        "missing-root",
        "unknown-boulanger",
        "max-epochs-abc",
        "limit-batches-1.5",
        "patience-x",
        "checkpoint-mode-up",
        "negative-lr",
        "steps-per-beat-abc",
        "pitch-range-reversed",
        "sample-temperature-0",
        "sample-top-k-on-frames",
        "gpu-trainer-without-a-gpu",
        "max-time-10min",
        "val-check-interval-over-an-epoch",
        "appended-model-typo",
        "appended-trainer-typo",
        "appended-nested-typo",
        "two-typos",
        "group-typo",
        "typo-of-a-default-setting",
        "no-near-key",
    ],
)
def test_bad_override(tmp_path: Path, args: list[str], code: int, messages: list[str]) -> None:
    proc = cli("cadenza-train", *args, "logger=none", cwd=tmp_path)
    assert proc.returncode == code, proc.stderr[-2000:]
    for m in messages:
        assert m in proc.stderr
    assert "Traceback" not in proc.stderr
    if "did you mean" in proc.stderr or "whose settings are" in proc.stderr:
        assert "To append to your config use +" not in proc.stderr  # Hydra's advice, dropped
    assert not (tmp_path / "checkpoints").exists()  # nothing trained before the error


def test_resuming_into_another_model_names_what_differs(tmp_path: Path) -> None:
    """Lightning finds a checkpoint of another shape inside fit, after the data is prepared, as
    a page of size mismatches: the run says which settings differ and how it was started."""
    first = cli("cadenza-train", "experiment=smoke", "logger=none", "test=false", "sample.n=0",
                "trainer.max_epochs=1", "model.hidden_size=24", cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt = tmp_path / "checkpoints" / "smoke" / "latest.ckpt"
    (tmp_path / "elsewhere").mkdir()
    resumed = cli("cadenza-train", "experiment=smoke", "logger=none", f"ckpt_path={ckpt}",
                  cwd=tmp_path / "elsewhere")  # fmt: skip
    assert resumed.returncode == 2, resumed.stderr[-2000:]
    assert "model.hidden_size=24 (this run: 32)" in resumed.stderr
    assert "the command that wrote it was: cadenza-train " in resumed.stderr
    assert ("experiment=smoke logger=none test=false sample.n=0 trainer.max_epochs=1 "
            "model.hidden_size=24") in resumed.stderr  # fmt: skip
    assert "Traceback" not in resumed.stderr
    assert not (tmp_path / "elsewhere" / "data").exists()  # no data prepared before the error


def test_a_typo_in_a_sweep_is_named_with_its_values() -> None:
    """`-m` lines compose as their first run; the hint gives the sweep back as it was typed."""
    from cadenza.cli.typos import typo_hints

    sweep = ["experiment=smoke", "model.hidden_size=8,16", "model.dropot=0.1,0.3",
             "model.optimizer.lr=interval(0.0001,0.01)"]  # fmt: skip
    assert typo_hints("train", sweep) == [
        "model.dropot is not in model: did you mean model.dropout=0.1,0.3?"
    ]
    assert typo_hints("train", ["experiment=smoke", "model.dropout=0.1,0.3"]) == []
    assert typo_hints("train", ["data=nonexistent"]) == []  # not a key: Hydra's list says it all


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        # Spelled right, but a constructor setting the config leaves out: append it.
        ("trainer.accumulate_grad_batches=2", "did you mean +trainer.accumulate_grad_batches=2?"),
        # A part in the middle: Hydra names `data.sorce`; the hint keeps the rest of the key.
        ("data.sorce.limit=3", "data.sorce is not in data: did you mean data.source.limit=3?"),
        # A group left out of the defaults (experiment: null) is still a name to suggest.
        ("experment=smoke", "experment is not in the config: did you mean experiment=smoke?"),
    ],
)
def test_typo_hints_for_settings_parts_and_groups(override: str, hint: str) -> None:
    from cadenza.cli.typos import typo_hints

    (line,) = typo_hints("train", ["experiment=smoke", override])
    assert hint in line
