"""The transformer family's network: causal attention, the key/value cache giving exactly the
uncached model's samples, the learning-rate schedule, config errors, and learning on real
tokens. Checkpoints, sampling controls and the CLI run through the family contract tests on
experiment=smoke_transformer."""

from __future__ import annotations

import pytest
import torch

from cadenza.data.batch import Batch
from cadenza.errors import ConfigError
from cadenza.io.midi import read_score
from cadenza.models import TransformerModule
from cadenza.models.components.transformer import TokenTransformer, rotate
from cadenza.representations import EventCodec, PianoRollCodec
from tests.fixtures.data import real_midi


def _net() -> TokenTransformer:
    torch.manual_seed(0)
    return TokenTransformer(50, d_model=32, n_layers=2, n_heads=4, dropout=0.0).eval()


def test_a_position_never_sees_the_future() -> None:
    net = _net()
    x = torch.randint(3, 50, (2, 12))
    y = x.clone()
    y[:, 8:] = torch.randint(3, 50, (2, 4))
    a, _ = net(x)
    b, _ = net(y)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_one_cached_step_equals_the_full_forward() -> None:
    net = _net()
    x = torch.randint(3, 50, (3, 10))
    full, _ = net(x)
    out, cache = net(x[:, :9])
    step, _ = net(x[:, 9:], cache, offset=9)
    torch.testing.assert_close(step[:, 0], full[:, 9], atol=1e-5, rtol=1e-5)


def test_rotary_scores_depend_on_distance_only() -> None:
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    s = [(rotate(q, a + 3) * rotate(k, a)).sum() for a in (0, 5, 40)]
    torch.testing.assert_close(torch.stack(s), s[0].expand(3), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("controls", [{}, {"top_k": 5}, {"top_p": 0.8, "temperature": 0.7}])
def test_cached_sampling_gives_the_uncached_samples(controls: dict) -> None:
    net = _net()
    prefix = torch.tensor([[1, 7, 9], [1, 7, 9]])
    runs = []
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(3)
        runs.append(net.generate(prefix, 20, eos_id=2, banned=(0, 1), generator=g,
                                 use_cache=use_cache, **controls))  # fmt: skip
    torch.testing.assert_close(runs[0][0], runs[1][0])
    torch.testing.assert_close(runs[0][1], runs[1][1])


def _module(**kwargs) -> TransformerModule:  # noqa: ANN003
    codec = EventCodec(low_pitch=36, high_pitch=84, velocity_bins=4)
    return TransformerModule(codec.to_dict(), **({"d_model": 32, "n_layers": 2, "n_heads": 2}
                                                 | kwargs))  # fmt: skip


def test_learns_real_tokens_and_the_schedule_warms_up_then_decays() -> None:
    torch.manual_seed(0)
    model = _module(dropout=0.0, warmup_steps=5, cosine_steps=100)
    codec = model.codec
    seqs = [codec.encode(read_score(real_midi(f"nottingham/MIDI/{n}.mid")))[:128]
            for n in ("jigs1", "hpps1", "morris1", "waltzes1")]  # fmt: skip
    x = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    batch = Batch(x=x, lengths=torch.tensor([len(s) for s in seqs]))
    conf = model.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    lrs, losses = [], []
    for _ in range(100):
        nll, count = model(batch)
        loss = nll / count
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.75 * losses[0]  # 5.4 -> 3.8 nats per token, measured
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert 3 <= peak <= 6 and lrs[-1] == pytest.approx(0.1 * lrs[peak], rel=0.05)
    # Weight decay reaches the matrices only.
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: TransformerModule(PianoRollCodec().to_dict()), "token ids"),
        (lambda: _module(d_model=30, n_heads=4), "model.d_model"),
        (lambda: _module(n_heads=0), "model.n_heads"),
        (lambda: _module(dropout=1.0), "model.dropout"),
        (lambda: _module(warmup_steps=-1), "model.warmup_steps"),
    ],
)
def test_bad_config_values_name_the_key(make, key: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=key):
        make()
