"""Requests drawn together in one batched sampling loop (`generate_batch`) write the notes each
would alone: every family's random draws go through `uniform` / `normal`, whose RowGenerators
give each request its own seeded stream, and a row's arithmetic must not depend on the rows
beside it. The service's batching (issue 21) rests on this."""

from __future__ import annotations

import pytest
import torch

from cadenza.generation import generate, generate_batch
from cadenza.models import Ability, GenerativeModule
from cadenza.models.sampling import RowGenerators, normal, uniform
from tests.fixtures.smoke import SmokeRuns, generative_experiments

# (n, seed): requests of 16 rows in all, the most the service batches (serve.batch_rows)
REQUESTS = [(1, 3), (2, 7), (1, 11), (4, 13)] + [(1, seed) for seed in range(20, 28)]


def test_a_request_batched_with_others_writes_the_notes_it_writes_alone(smoke: SmokeRuns):
    """Every smoke run of a family of MIDI that samples from nothing, whichever family: the
    service batches exactly those (serve/jobs.py). Not a mel VAE: its convolutions give
    last-bit differences between batch sizes, so the service draws its requests alone."""
    checked = []
    for run in generative_experiments():  # chosen from configs: nothing else is trained
        model = GenerativeModule.load(smoke[run].ckpt)
        if model.codec.output != "midi":
            continue
        if Ability.PRIOR not in model.abilities:  # e.g. it only accompanies a melody
            continue
        _check_batched_as_alone(model, run)
        checked.append(model.family)
    assert {"lstm", "transformer", "vae", "gan"} <= set(checked), checked


def _check_batched_as_alone(model: GenerativeModule, run: str) -> None:
    batched = generate_batch(model, REQUESTS, bars=2, temperature=1.0)
    assert [len(pieces) for pieces in batched] == [n for n, _ in REQUESTS]
    for (n, seed), pieces in zip(REQUESTS, batched, strict=True):
        alone = generate(model, n, seed=seed, bars=2, temperature=1.0)
        for a, b in zip(alone, pieces, strict=True):
            assert a.name == b.name and a.controls["seed"] == b.controls["seed"] == seed
            assert torch.equal(a.tensor, b.tensor), (run, seed)
    # Different seeds do give different music (the streams are not one stream repeated).
    assert not torch.equal(batched[0][0].tensor, batched[2][0].tensor), run


def test_row_generators_draw_each_group_from_its_own_stream() -> None:
    rows = RowGenerators([(2, torch.Generator().manual_seed(1)),
                          (1, torch.Generator().manual_seed(2))])  # fmt: skip
    u = uniform((3, 5), torch.device("cpu"), rows)
    assert torch.equal(u[:2], torch.rand(2, 5, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(u[2:], torch.rand(1, 5, generator=torch.Generator().manual_seed(2)))
    z = normal((3, 4), "cpu", rows)  # the streams went on from where the uniforms left them
    g1 = torch.Generator().manual_seed(1)
    torch.rand(2, 5, generator=g1)
    assert torch.equal(z[:2], torch.randn(2, 4, generator=g1))
    with pytest.raises(ValueError, match="3 rows first"):
        uniform((4, 5), torch.device("cpu"), rows)
