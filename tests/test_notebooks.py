"""Every notebook in notebooks/ runs top to bottom on a smoke checkpoint, so an API change
cannot leave one broken (nbclient, the project's own Python as the kernel)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.smoke import SmokeRuns

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(
    path: Path, smoke: SmokeRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("CADENZA_CKPT", str(smoke["smoke"].ckpt))
    monkeypatch.setenv("CADENZA_RECOMMENDER", str(smoke["smoke_recommender"].ckpt))
    monkeypatch.setenv("CADENZA_CLASSIFIER", str(smoke["smoke_classifier"].ckpt))
    monkeypatch.setenv("CADENZA_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute(env=dict(os.environ))
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type == "display_data" for o in outputs)  # piano rolls, charts
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.mid"))  # and MIDI was written
