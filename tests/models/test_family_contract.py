"""Every registered generative family keeps the declared contract (models/base.py), checked on
the checkpoint of each smoke experiment (trained once per session on real data). A new family
gets these tests by registering and adding its `configs/experiment/smoke_<family>.yaml`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cadenza.generation import generate, write_pieces
from cadenza.models import FAMILIES, Ability, AbilityError, GenerativeModule
from tests.fixtures.abilities import ability_inputs, use_ability
from tests.fixtures.smoke import SmokeRuns, generative_experiments, model_class

GENERATIVE = generative_experiments()


def test_every_registered_family_has_a_smoke_experiment() -> None:
    covered = {model_class(e).family for e in GENERATIVE}
    registered = {f for f, cls in FAMILIES.items() if issubclass(cls, GenerativeModule)}
    assert registered <= covered, (
        f"add configs/experiment/smoke_<family>.yaml for {sorted(registered - covered)}"
    )


@pytest.fixture(params=GENERATIVE)
def model(request: pytest.FixtureRequest, smoke: SmokeRuns) -> GenerativeModule:
    return GenerativeModule.load(smoke[request.param].ckpt)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return ability_inputs(tmp_path_factory.mktemp("inputs"))


def _draw(model: GenerativeModule, seed: int, inputs: dict[str, Path], n: int = 2) -> list:
    """n pieces the way this family makes them: from the prior, or for a family that only
    accompanies, against a melody."""
    if model.can(Ability.PRIOR):
        return generate(model, n, seed=seed, bars=2)
    return generate(model, n, seed=seed, condition=inputs["melody"])


def test_the_declaration_is_consistent(model: GenerativeModule) -> None:
    d = model.declaration()
    assert d.family == model.family and FAMILIES[d.family] is type(model)
    assert d.abilities and d.abilities <= set(Ability)
    assert d.abilities & {Ability.PRIOR, Ability.CONDITION}  # it can make something
    assert d.output == model.codec.output and d.output in ("midi", "audio")
    assert d.window_steps is None or d.window_steps >= 1
    assert json.loads(json.dumps(d.to_dict()))["family"] == d.family


def test_sample_shapes_and_same_seed_same_output(model: GenerativeModule, inputs) -> None:
    a, b = _draw(model, 3, inputs), _draw(model, 3, inputs)
    assert len(a) == 2
    row = model.codec.row_shape
    for piece, again in zip(a, b):
        x = piece.tensor
        assert x.shape[1:] == row and x.dtype in (torch.long, torch.float32) and len(x) >= 1
        if model.declaration().window_steps is not None:
            assert len(x) == model.declaration().window_steps
        assert torch.equal(x, again.tensor)  # the seed decides every draw


def test_weights_only_checkpoint_round_trip_gives_the_same_samples(
    model: GenerativeModule, inputs, tmp_path: Path
) -> None:
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(ckpt)  # plain containers only: loadable with weights_only=True
    torch.save(ckpt, tmp_path / "again.ckpt")
    again = GenerativeModule.load(tmp_path / "again.ckpt")
    assert type(again) is type(model) and again.codec == model.codec
    assert again.declaration() == model.declaration()
    for x, y in zip(_draw(model, 5, inputs), _draw(again, 5, inputs)):
        assert torch.equal(x.tensor, y.tensor)


def test_pieces_written_to_files_parse_back(model: GenerativeModule, inputs, tmp_path) -> None:
    pieces = _draw(model, 0, inputs)
    paths = write_pieces(pieces, tmp_path, png=True)
    report = json.loads((tmp_path / "samples.json").read_text())
    assert report["controls"]["family"] == model.family
    assert [s["file"] for s in report["samples"]] == [p.name for p in paths]
    for piece, path, entry in zip(pieces, paths, report["samples"]):
        assert piece.files["png"].stat().st_size > 1000
        if piece.output == "audio":
            from cadenza.io.audio import load_audio

            wave = load_audio(path)
            assert wave.seconds == pytest.approx(piece.seconds, abs=0.02)
        else:
            from cadenza.io.midi import load_midi_bytes, tracks_of

            notes = sum(len(t.notes) for t in tracks_of(load_midi_bytes(path.read_bytes())))
            assert notes == piece.notes == entry["notes"]


@pytest.mark.parametrize("ability", list(Ability), ids=str)
def test_each_declared_ability_works_and_each_other_says_what_it_can(
    model: GenerativeModule, ability: Ability, inputs
) -> None:
    if model.can(ability):
        pieces = use_ability(ability, model, inputs)
        assert pieces and all(p.tensor.numel() > 0 for p in pieces)
        assert all(p.output == model.codec.output for p in pieces)
        return
    with pytest.raises(AbilityError) as err:
        use_ability(ability, model, inputs)
    message = str(err.value)
    assert f"this {model.family} model cannot" in message and "it can:" in message
    assert "Traceback" not in message
