"""Every smoke experiment's checkpoint served at once, whatever its family: the service reads a
family's declaration (its kind, abilities and codec), never its name, so a family added by the
README's steps is listed and generates here without this test knowing it."""

from __future__ import annotations

import shutil

from fastapi.testclient import TestClient

from cadenza.models import CadenzaModule, GenerativeModule
from cadenza.serve.app import create_app
from cadenza.serve.settings import ServeSettings
from tests.fixtures.smoke import SMOKE_EXPERIMENTS, SmokeRuns


def test_every_smoke_checkpoint_is_listed_and_every_generator_writes_a_piece(
    smoke: SmokeRuns, tmp_path
) -> None:
    families = {}
    for name in SMOKE_EXPERIMENTS:
        (tmp_path / "ckpts" / name).mkdir(parents=True)
        shutil.copyfile(smoke[name].ckpt, tmp_path / "ckpts" / name / "latest.ckpt")
        model = CadenzaModule.load(smoke[name].ckpt)
        families[name] = (model.family, isinstance(model, GenerativeModule))
    settings = ServeSettings.from_dict({"checkpoints": str(tmp_path / "ckpts"),
                                        "work_dir": str(tmp_path / "work"),
                                        "sample": {"n": 1, "sample_rate": 16000}})  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        listed = {m["name"]: m for m in client.get("/api/models").json()["models"]}
        assert sorted(listed) == SMOKE_EXPERIMENTS
        generated = set()
        for name, info in listed.items():
            family, generates = families[name]
            assert info["family"] == family and (info["kind"] == "generator") == generates
            if "generate" not in info["modes"]:  # e.g. a GAN that only accompanies a melody
                continue
            r = client.post("/api/generate", json={"model": name, "n": 1, "seed": 3})
            assert r.status_code == 200, (name, r.text)
            (item,) = r.json()["items"]
            piece = item["midi"] or item["audio"]  # audio for a generator of spectrograms
            assert client.get(piece).status_code == 200 and client.get(piece).content, name
            generated.add(family)
    # Every generative family with a smoke run that samples from nothing was sampled.
    assert generated == {f for n, (f, g) in families.items() if g and "generate" in
                         listed[n]["modes"]}  # fmt: skip
