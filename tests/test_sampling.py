"""Shared sampling controls: exact kept sets, temperature, determinism, clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from cadenza.errors import ConfigError
from cadenza.models.sampling import (
    check_controls,
    filter_logits,
    pick_device,
    sample_bernoulli,
    sample_categorical,
)


def kept(logits: torch.Tensor) -> set[int]:
    return set(torch.nonzero(torch.isfinite(logits)).flatten().tolist())


# probs 0.5, 0.25, 0.15, 0.07, 0.03 in a scrambled order: ids by rank are 3, 0, 4, 1, 2.
PROBS = torch.tensor([0.25, 0.07, 0.03, 0.5, 0.15])
LOGITS = PROBS.log()


@pytest.mark.parametrize(
    ("top_k", "expected"),
    [(1, {3}), (2, {3, 0}), (3, {3, 0, 4}), (5, {0, 1, 2, 3, 4}), (50, {0, 1, 2, 3, 4})],
    ids=["k1", "k2", "k3", "k_eq_V", "k_gt_V"],
)
def test_top_k_keeps_the_k_largest(top_k: int, expected: set[int]) -> None:
    assert kept(filter_logits(LOGITS, top_k=top_k)) == expected


@pytest.mark.parametrize(
    ("top_p", "expected"),
    [
        (0.1, {3}),  # the most likely token alone already reaches 0.1
        (0.45, {3}),  # the first token holds 0.5 >= 0.45
        (0.6, {3, 0}),  # 0.5 < 0.6 <= 0.75
        (0.8, {3, 0, 4}),  # 0.75 < 0.8 <= 0.90
        (0.95, {3, 0, 4, 1}),  # 0.90 < 0.95 <= 0.97
        (1.0, {0, 1, 2, 3, 4}),
    ],
    ids=["p0.1", "p0.45", "p0.6", "p0.8", "p0.95", "p1"],
)
def test_top_p_keeps_the_smallest_prefix_reaching_p(top_p: float, expected: set[int]) -> None:
    assert kept(filter_logits(LOGITS, top_p=top_p)) == expected


def test_filters_compose_and_work_on_batches() -> None:
    batch = torch.stack([LOGITS, LOGITS.flip(0)])  # [2, 5]
    out = filter_logits(batch, top_k=3, top_p=0.6)
    assert kept(out[0]) == {3, 0}
    assert kept(out[1]) == {1, 4}  # flipped ids: 3 -> 1, 0 -> 4
    # Kept logits are unchanged, not renormalised.
    assert torch.equal(out[0, 3], LOGITS[3])


def test_filter_keeps_at_least_one_token_with_a_dominant_logit() -> None:
    logits = torch.tensor([100.0, 0.0, -5.0])
    assert kept(filter_logits(logits, top_p=1e-9)) == {0}


def test_sample_categorical_respects_filters_and_frequencies() -> None:
    g = torch.Generator().manual_seed(0)
    ids = sample_categorical(LOGITS.expand(20_000, 5), generator=g)  # [20000]
    assert ids.dtype == torch.long and ids.shape == (20_000,)
    freq = torch.bincount(ids, minlength=5).float() / len(ids)
    assert torch.allclose(freq, PROBS, atol=0.015)
    ids = sample_categorical(LOGITS.expand(2_000, 5), top_k=2, generator=g)
    assert set(ids.tolist()) == {3, 0}


def test_temperature_sharpens_and_flattens() -> None:
    g = torch.Generator().manual_seed(1)
    n = 20_000
    cold = sample_categorical(LOGITS.expand(n, 5), temperature=0.25, generator=g)
    hot = sample_categorical(LOGITS.expand(n, 5), temperature=4.0, generator=g)
    # At temperature t the probabilities are proportional to p^(1/t).
    for ids, t in ((cold, 0.25), (hot, 4.0)):
        expect = torch.softmax(LOGITS / t, -1)
        freq = torch.bincount(ids, minlength=5).float() / n
        assert torch.allclose(freq, expect, atol=0.015), (t, freq, expect)


@pytest.mark.parametrize("t", [1e-3, 1e-6, 1e-12, 1e-300], ids=["1e-3", "1e-6", "1e-12", "1e-300"])
def test_temperature_near_zero_is_greedy_and_never_nan(t: float) -> None:
    logits = torch.tensor([[1.0, 3.0, float("-inf"), 2.9], [80.0, -80.0, 79.0, 0.0]])
    assert sample_categorical(logits, temperature=t).tolist() == [1, 0]
    bits = sample_bernoulli(torch.tensor([-0.01, 0.01, 50.0, -50.0]), temperature=t)
    assert bits.tolist() == [0.0, 1.0, 1.0, 0.0]


def test_same_seed_same_samples() -> None:
    logits = torch.randn(64, 10)

    def draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return (
            sample_categorical(logits, top_p=0.9, generator=g),
            sample_bernoulli(logits, temperature=0.7, generator=g),
        )

    a, b = draw(7), draw(7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(draw(8)[1], a[1])


def test_sample_bernoulli_frequencies() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.tensor([-2.0, 0.0, 1.5]).expand(20_000, 3)
    bits = sample_bernoulli(logits, generator=g)
    assert bits.dtype == torch.float32 and set(bits.unique().tolist()) <= {0.0, 1.0}
    expect = torch.sigmoid(torch.tensor([-2.0, 0.0, 1.5]))
    assert torch.allclose(bits.mean(0), expect, atol=0.015)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"temperature": -1.0}, "temperature must be > 0"),
        ({"temperature": math.nan}, "temperature must be > 0"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"top_k": 0}, "top_k must be an integer >= 1"),
        ({"top_k": 2.5}, "top_k must be an integer >= 1"),
        ({"top_k": True}, "top_k must be an integer >= 1"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"top_p": "x"}, "top_p must be a number"),
    ],
    ids=["t0", "t_neg", "t_nan", "t_str", "k0", "k_float", "k_bool", "p0", "p_gt1", "p_str"],
)
def test_bad_controls_raise_config_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_controls(**kwargs)
    with pytest.raises(ConfigError, match=match):
        sample_categorical(LOGITS, **kwargs)


@pytest.mark.parametrize(
    ("value", "match"),
    [("gpu", "'gpu' is not a device"), ("", "is not a device"), ("mps", "samples on cpu, cuda"),
     ("meta", "samples on cpu, cuda")],
    ids=["gpu", "empty", "mps", "meta"],
)  # fmt: skip
def test_a_device_that_is_not_one_fails_naming_the_key(value: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        pick_device(value, key="sample_device")
    assert str(err.value).startswith("sample_device=")


def test_cpu_and_auto_pick_what_this_process_can_use(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pick_device("cpu") == pick_device(" CPU ") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="device=cuda: no CUDA GPU is visible"):
        pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match=r"sees 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        pick_device("cuda:2")
