"""NADE: a normalised distribution over all 2^D frames, exact vectorised conditionals."""

from __future__ import annotations

import itertools

import pytest
import torch

import cadenza.models.components.nade as nade_mod
from cadenza.models.components.nade import NADE
from cadenza.models.sampling import RowGenerators

D, H = 5, 7


@pytest.fixture
def nade() -> NADE:
    torch.manual_seed(0)
    m = NADE(D, H)
    with torch.no_grad():  # larger weights than the init, so conditionals really differ
        m.W.mul_(4.0)
        m.V.mul_(4.0)
    return m


def all_frames(d: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))  # [2^d, d]


def naive_log_prob(m: NADE, v: torch.Tensor, b_v: torch.Tensor, b_h: torch.Tensor) -> torch.Tensor:
    """The definition, one unit at a time (Larochelle & Murray 2011, eq. 2-3)."""
    out = torch.zeros(v.shape[0])
    for n in range(v.shape[0]):
        for d in range(v.shape[1]):
            h = torch.sigmoid(b_h[n] + m.W[:, :d] @ v[n, :d])
            p = torch.sigmoid(b_v[n, d] + m.V[d] @ h)
            out[n] += torch.log(p if v[n, d] == 1 else 1 - p)
    return out


@pytest.mark.parametrize("method", ["dense", "sparse", "auto"])
def test_probabilities_over_all_frames_sum_to_one(nade: NADE, method: str) -> None:
    v = all_frames(D)  # [32, D]
    for seed in range(3):  # several conditioning contexts (RNN states)
        g = torch.Generator().manual_seed(seed)
        b_v = torch.randn(1, D, generator=g).expand(len(v), D)
        b_h = torch.randn(1, H, generator=g).expand(len(v), H)
        lp = nade.log_prob(v, b_v, b_h, method=method)  # [32]
        assert lp.shape == (32,)
        assert torch.logsumexp(lp, 0).abs().item() < 1e-5


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_vectorised_log_prob_equals_the_naive_loop(nade: NADE, method: str) -> None:
    g = torch.Generator().manual_seed(1)
    v = (torch.rand(40, D, generator=g) < 0.4).float()
    b_v, b_h = torch.randn(40, D, generator=g), torch.randn(40, H, generator=g)
    with torch.no_grad():
        expected = naive_log_prob(nade, v, b_v, b_h)
    assert torch.allclose(nade.log_prob(v, b_v, b_h, method=method), expected, atol=1e-5)


def test_sparse_and_dense_agree_in_value_and_gradient_at_piano_size() -> None:
    torch.manual_seed(2)
    m = NADE(88, 150)
    v = (torch.rand(64, 88) < 0.05).float()
    b_v = torch.randn(64, 88, requires_grad=True)
    b_h = torch.randn(64, 150, requires_grad=True)
    grads = []
    for method in ("dense", "sparse"):
        m.zero_grad()
        b_v.grad = b_h.grad = None
        lp = m.log_prob(v, b_v, b_h, method=method)
        lp.sum().backward()
        grads.append([lp.detach(), m.W.grad.clone(), m.V.grad.clone(), b_v.grad, b_h.grad])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_chunked_no_grad_path_matches(nade: NADE, monkeypatch: pytest.MonkeyPatch) -> None:

    v = all_frames(D)
    b_v, b_h = torch.randn(len(v), D), torch.randn(len(v), H)
    full = nade.log_prob(v, b_v, b_h)
    monkeypatch.setattr(nade_mod, "EVAL_CHUNK_ELEMENTS", 3 * D * H)  # chunks of 3 rows
    with torch.no_grad():
        assert torch.allclose(nade.log_prob(v, b_v, b_h), full, atol=1e-6)


def test_sample_shape_dtype_and_seed(nade: NADE) -> None:
    b_v, b_h = torch.randn(6, D), torch.randn(6, H)
    a = nade.sample(b_v, b_h, generator=torch.Generator().manual_seed(5))
    b = nade.sample(b_v, b_h, generator=torch.Generator().manual_seed(5))
    assert a.shape == (6, D) and a.dtype == torch.float32
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(a, b)


def test_sample_frequencies_match_exp_log_prob(nade: NADE) -> None:
    n = 40_000
    g = torch.Generator().manual_seed(0)
    b_v, b_h = torch.randn(1, D, generator=g), torch.randn(1, H, generator=g)
    samples = nade.sample(b_v.expand(n, D), b_h.expand(n, H), generator=g)  # [n, D]
    codes = (samples * 2 ** torch.arange(D - 1, -1, -1)).sum(-1).long()  # binary -> index
    freq = torch.bincount(codes, minlength=2**D).float() / n
    with torch.no_grad():
        v = all_frames(D)  # itertools order = the same binary code
        p = nade.log_prob(v, b_v.expand(len(v), D), b_h.expand(len(v), H)).exp()
    assert (freq - p).abs().max() < 0.01


def test_near_zero_temperature_gives_the_greedy_frame(nade: NADE) -> None:
    b_v, b_h = torch.randn(3, D), torch.randn(3, H)
    a = nade.sample(b_v, b_h, temperature=1e-9, generator=torch.Generator().manual_seed(0))
    b = nade.sample(b_v, b_h, temperature=1e-9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not a.isnan().any()


def _sequential_sample(nade: NADE, b_v, b_h, temperature, u):  # noqa: ANN001, ANN202
    """The textbook draw, one unit at a time with uniform u_d (the reference for `sample`)."""
    v = torch.zeros_like(b_v)
    a = b_h.clone()
    for d in range(b_v.shape[1]):
        logit = b_v[:, d] + torch.sigmoid(a) @ nade.V[d]
        p = (logit > 0).float() if temperature <= 1e-6 else torch.sigmoid(logit / temperature)
        vd = (logit > 0).float() if temperature <= 1e-6 else (u[:, d] < p).float()
        v[:, d] = vd
        a = a + vd[:, None] * nade.W.t()[d]
    return v


@pytest.mark.parametrize("rows", [64, nade_mod.ROWWISE_MAX_ROWS])  # batched torch; row by row
@pytest.mark.parametrize("temperature", [1.0, 0.5, 1e-9])
@pytest.mark.parametrize("density", [-4.0, 0.0, 3.0])  # sparse, even, dense frames
def test_note_by_note_sampling_equals_the_unit_by_unit_draw(temperature, density, rows) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    nade = NADE(30, 12)
    b_v, b_h = torch.randn(rows, 30) + density, torch.randn(rows, 12)
    fast = nade.sample(b_v, b_h, temperature, generator=torch.Generator().manual_seed(7))
    u = torch.rand(rows, 30, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(fast, _sequential_sample(nade, b_v, b_h, temperature, u))


def test_a_rows_notes_do_not_depend_on_the_rows_drawn_with_it(nade: NADE) -> None:
    """Up to ROWWISE_MAX_ROWS rows are drawn one by one, so a row drawn in a batch (its own
    generator through RowGenerators) equals the same row drawn alone with that seed: what
    batched generation in serve relies on."""
    n = nade_mod.ROWWISE_MAX_ROWS
    g = torch.Generator().manual_seed(3)
    b_v, b_h = torch.randn(n, D, generator=g) - 1, torch.randn(n, H, generator=g)
    rows = RowGenerators([(1, torch.Generator().manual_seed(100 + r)) for r in range(n)])
    together = nade.sample(b_v, b_h, generator=rows)
    for r in range(n):
        alone = nade.sample(
            b_v[r : r + 1], b_h[r : r + 1], generator=torch.Generator().manual_seed(100 + r)
        )
        assert torch.equal(alone, together[r : r + 1])
