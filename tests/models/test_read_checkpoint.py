"""A checkpoint that cannot be read says why, in words, whatever is wrong with the file; one
that holds code is refused without running it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cadenza.errors import CadenzaError
from cadenza.models import GenerativeModule
from cadenza.models.base import read_checkpoint
from tests.fixtures.smoke import SmokeRuns


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (Path.touch, (self.marker,))


def test_each_unreadable_checkpoint_says_what_is_wrong(smoke: SmokeRuns, tmp_path: Path) -> None:
    real = smoke["smoke"].ckpt.read_bytes()
    files = {
        "empty.ckpt": b"",
        "notes.ckpt": b"C D E F G A B c\n",
        "cut.ckpt": real[: len(real) // 2],  # a copy interrupted half-way
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"state_dict": _RunsCode(tmp_path / "ran")}, tmp_path / "code.ckpt")
    expected = {
        "empty.ckpt": "the file is empty",
        "notes.ckpt": "not a PyTorch checkpoint (it starts with b'C D '",
        "cut.ckpt": "a damaged or truncated checkpoint archive",
        "code.ckpt": "refuses to unpickle",
    }
    for name, says in expected.items():
        with pytest.raises(CadenzaError, match="cannot read checkpoint") as err:
            GenerativeModule.load(tmp_path / name)
        assert says in str(err.value), (name, str(err.value))
    assert not (tmp_path / "ran").exists()  # the pickled call never ran
    assert read_checkpoint(smoke["smoke"].ckpt)["state_dict"]  # the whole file still reads


def test_a_model_loads_onto_the_device_asked_or_says_there_is_none(smoke: SmokeRuns) -> None:
    """map_location is where the model ends up; a CUDA device this process lacks is said as
    such, not as a damaged file (torch's message, read as one, said the archive was broken)."""
    model = GenerativeModule.load(smoke["smoke"].ckpt, map_location="cpu")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    if torch.cuda.is_available():
        on_gpu = GenerativeModule.load(smoke["smoke"].ckpt, map_location="cuda")
        assert {p.device.type for p in on_gpu.parameters()} == {"cuda"}
        return
    with pytest.raises(CadenzaError, match="sees no CUDA device") as err:
        GenerativeModule.load(smoke["smoke"].ckpt, map_location="cuda")
    assert "damaged" not in str(err.value) and "map_location='cpu'" in str(err.value)
