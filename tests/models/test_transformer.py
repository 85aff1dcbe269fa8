"""The transformer family's network: causal attention, the key/value cache giving exactly the
uncached model's samples, the learning-rate schedule, config errors, and learning on real
tokens. Checkpoints, sampling controls and the CLI run through the family contract tests on
experiment=smoke_transformer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from cadenza.data.batch import Batch, Condition
from cadenza.errors import ConfigError
from cadenza.io.midi import read_score
from cadenza.models import Ability, AbilityError, TransformerModule
from cadenza.models.components.rnn import next_token_loss
from cadenza.models.components.transformer import (
    FrameTransformer,
    TokenTransformer,
    rotate,
    window_bounds,
    windowed_token_loss,
)
from cadenza.models.sampling import GREEDY_TEMPERATURE
from cadenza.representations import EventCodec, MelCodec, PianoRollCodec
from tests.fixtures.data import real_midi


def _net(n_kv_heads: int | None = None) -> TokenTransformer:
    torch.manual_seed(0)
    return TokenTransformer(50, d_model=32, n_layers=2, n_heads=4, dropout=0.0,
                            n_kv_heads=n_kv_heads).eval()  # fmt: skip


def test_a_position_never_sees_the_future() -> None:
    net = _net()
    x = torch.randint(3, 50, (2, 12))
    y = x.clone()
    y[:, 8:] = torch.randint(3, 50, (2, 4))
    a, _ = net(x)
    b, _ = net(y)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("split", [[9, 1], [6, 4], [5, 1, 1, 3]])
def test_cached_steps_equal_the_full_forward(split: list[int], n_kv_heads: int) -> None:
    """One new step, or a block of them (masked within the block), after cached positions,
    with 4 query heads on 4, 2 or 1 key/value heads (one step takes the grouped-rows path)."""
    net = _net(n_kv_heads)
    x = torch.randint(3, 50, (3, 10))
    full, _ = net(x)
    cache, offset, parts = net.decoder.new_cache(10), 0, []
    for n in split:
        out, _ = net(x[:, offset : offset + n], cache, offset=offset)
        parts.append(out)
        offset += n
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.buf.shape == (2, 2, 3, n_kv_heads, 10, 8)  # [L, k|v, N, Hkv, T, Dh]
    with pytest.raises(ValueError, match="holds 10 positions"):
        net(x[:, :1], cache, offset=10)


@pytest.mark.parametrize(("length", "window"), [(2, 2), (9, 4), (10, 4), (11, 5), (1000, 64)])
def test_evaluation_windows_score_every_position_once_with_half_a_window_of_context(
    length: int, window: int
) -> None:
    scored = []
    for start, lo, end in window_bounds(length, window):
        assert end - start == min(length, window) and start < lo < end <= length
        assert start == 0 or lo - start >= window // 2  # context before the first scored token
        scored += range(lo, end)
    assert scored == list(range(1, length))


def test_windowed_loss_is_each_window_scored_alone_and_whole_pieces_when_short() -> None:
    """Batched, masked, chunked and conditioned windows give what scoring each window of each
    row by itself gives; a batch no longer than the window is plain next_token_loss."""
    net = _net()
    torch.manual_seed(1)
    lengths = torch.tensor([23, 7, 16])
    x = torch.randint(3, 50, (3, 23)) * (torch.arange(23) < lengths[:, None])
    batch = Batch(x=x, lengths=lengths)
    cond = torch.randn(3, 32)
    nll, count = windowed_token_loss(net, batch, 8, chunk=3, cond=cond)
    want, n = torch.zeros(()), 0
    for b in range(3):
        for start, lo, end in window_bounds(23, 8):
            hi = min(end, int(lengths[b]))
            if hi <= lo:
                continue
            out, _ = net(x[b : b + 1, start : end - 1], cond=cond[b : b + 1])
            t = torch.arange(lo, hi) - start - 1  # out[:, t] predicts position t + start + 1
            want += torch.nn.functional.cross_entropy(
                net.head(out[0, t]), x[b, lo:hi], reduction="sum"
            )
            n += hi - lo
    assert int(count) == n == int((lengths - 1).sum())
    torch.testing.assert_close(nll, want)
    short = windowed_token_loss(net, batch, 23, cond=cond)
    torch.testing.assert_close(short, next_token_loss(net, batch, cond=cond))


def test_validation_scores_long_token_pieces_in_windows_and_training_does_not() -> None:
    model = _module(eval_window=8, dropout=0.0)
    x = torch.randint(3, 50, (2, 30))
    batch = Batch(x=x, lengths=torch.tensor([30, 30]))
    model.eval()
    torch.testing.assert_close(model(batch), windowed_token_loss(model.net, batch, 8))
    model.train()
    torch.testing.assert_close(model(batch), next_token_loss(model.net, batch))


def _frame_net(output: str = "nade") -> FrameTransformer:
    torch.manual_seed(0)
    return FrameTransformer(12, d_model=32, n_layers=2, n_heads=4, dropout=0.0, output=output,
                            nade_hidden=16).eval()  # fmt: skip


def test_a_frame_never_sees_itself_or_the_future() -> None:
    net = _frame_net()
    x = (torch.rand(2, 10, 12) < 0.3).float()
    y = x.clone()
    y[:, 6:] = 1 - y[:, 6:]
    a, _ = net(x)
    b, _ = net(y)
    torch.testing.assert_close(a[:, :7], b[:, :7])  # out[:, t] sees frames < t only
    assert not torch.allclose(a[:, 7:], b[:, 7:])


@pytest.mark.parametrize("output", ["nade", "sigmoid"])
@pytest.mark.parametrize("primer_len", [0, 3])
def test_cached_frame_sampling_follows_the_full_forward(output: str, primer_len: int) -> None:
    """Greedy frames depend only on the network's output at each step: redrawing them from one
    uncached forward over the sampled piece gives the same piece."""
    net = _frame_net(output)
    primer = (torch.rand(2, primer_len, 12) < 0.3).float()
    new = net.generate(2, 8, primer=primer, temperature=GREEDY_TEMPERATURE)
    piece = torch.cat([primer, new], 1)
    out, _ = net(piece)
    redrawn = torch.stack(
        [
            net.sample_frame(out[:, t], GREEDY_TEMPERATURE)
            for t in range(primer_len, 8 + primer_len)
        ],
        1,
    )
    torch.testing.assert_close(redrawn, new)
    assert new.shape == (2, 8, 12) and set(new.unique().tolist()) <= {0.0, 1.0}
    g = [torch.Generator().manual_seed(4) for _ in range(2)]
    cached, uncached = (net.generate(2, 8, primer=primer, generator=g[i], use_cache=i == 0)
                        for i in range(2))  # fmt: skip
    torch.testing.assert_close(cached, uncached)


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


def _lr_after(model: TransformerModule, steps: int) -> float:
    conf = model.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    for _ in range(steps):
        opt.step()
        sched.step()
    return opt.param_groups[0]["lr"]


def test_the_cosine_spans_the_run_unless_cosine_steps_says_otherwise() -> None:
    """A run bounded by time has no step count of its own (max_epochs may be a large
    placeholder): an explicit cosine_steps must win over the trainer's estimate."""
    from types import SimpleNamespace

    model = _module(warmup_steps=0)
    model._trainer = SimpleNamespace(estimated_stepping_batches=40)  # max_epochs x batches
    lr0 = _lr_after(model, 0)  # no warm-up: the peak rate
    assert _lr_after(model, 40) == pytest.approx(0.1 * lr0)  # null: the run's own 40 steps
    explicit = _module(warmup_steps=0, cosine_steps=10)
    explicit._trainer = SimpleNamespace(estimated_stepping_batches=1e9)
    assert _lr_after(explicit, 10) == pytest.approx(0.1 * lr0)
    model._trainer = SimpleNamespace(estimated_stepping_batches=float("inf"))  # time-bounded
    with pytest.raises(ConfigError, match="model.cosine_steps"):
        model.configure_optimizers()


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
        (lambda: TransformerModule(MelCodec().to_dict()), "token ids or 0/1 frames"),
        (lambda: TransformerModule(PianoRollCodec().to_dict(), output="softmax"), "model.output"),
        (lambda: _module(d_model=30, n_heads=4), "model.d_model"),
        (lambda: _module(n_heads=0), "model.n_heads"),
        (lambda: _module(n_heads=2, n_kv_heads=3), "model.n_kv_heads"),
        (lambda: _module(dropout=1.0), "model.dropout"),
        (lambda: _module(warmup_steps=-1), "model.warmup_steps"),
        (lambda: _module(eval_window=1), "model.eval_window"),
        (lambda: TransformerModule(PianoRollCodec().to_dict(), eval_window=64), "eval_window"),
    ],
)
def test_bad_config_values_name_the_key(make, key: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=key):
        make()


def _styled(**kwargs) -> TransformerModule:  # noqa: ANN003
    return _module(styles=["folk", "pop"], **kwargs)


def test_style_requests_name_a_style_a_mix_or_weights() -> None:
    model = _styled()
    assert Ability.STYLE in model.abilities and model.styles == ["folk", "pop"]
    torch.testing.assert_close(model.style_weights("pop"), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(
        model.style_weights({"folk": 3, "pop": 1}), torch.tensor([0.75, 0.25])
    )
    torch.testing.assert_close(model.style_weights([1, 1]), torch.tensor([0.5, 0.5]))
    for bad, match in (("jazz", "not one of"), ({"jazz": 1}, "jazz"), ([1, -1], "non-negative"),
                       ([0, 0], "positive sum"), ([1, 2, 3], "2 non-negative"),
                       ({"folk": "a lot"}, "non-negative")):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            model.style_weights(bad)
    with pytest.raises(AbilityError, match="style"):
        _module().sample(1, style="folk", max_len=8)
    with pytest.raises(ConfigError, match="model.styles"):
        _module(styles=["a", "a"])


def test_a_learned_style_prefix_tells_real_styles_apart_and_steers_sampling() -> None:
    """Nottingham tunes as "folk" and POP909 songs as "pop": after a short training each
    style's tokens are likelier under their own style than under the other, and the prefix
    changes what is sampled from the same seed."""
    torch.manual_seed(0)
    model = _styled(dropout=0.0, style_dropout=0.0, warmup_steps=5, cosine_steps=120)
    codec = model.codec
    files = {0: [f"nottingham/MIDI/{n}.mid" for n in ("jigs1", "hpps1", "morris1", "ashover1")],
             1: [f"pop909/midi/{n}.mid" for n in ("001", "002", "003", "004")]}  # fmt: skip
    seqs, styles = [], []
    for style, paths in files.items():
        for p in paths:
            seqs.append(codec.encode(read_score(real_midi(p)))[:96])
            styles.append(style)
    x = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    lengths = torch.tensor([len(s) for s in seqs])
    batch = Batch(x=x, lengths=lengths, condition=Condition(style=torch.tensor(styles)))
    opt = model.configure_optimizers()["optimizer"]
    for _ in range(120):
        nll, count = model(batch)
        opt.zero_grad()
        (nll / count).backward()
        opt.step()
    model.eval()
    swapped = Batch(x=x, lengths=lengths, condition=Condition(style=1 - torch.tensor(styles)))
    with torch.no_grad():
        own, _ = model(batch)
        other, _ = model(swapped)
    assert float(own) < float(other)  # the prefix carries the style
    draws = {s: model.sample(2, style=s, max_len=40, generator=torch.Generator().manual_seed(1))
             for s in ("folk", "pop")}  # fmt: skip
    assert any(not torch.equal(a, b) for a, b in zip(draws["folk"], draws["pop"], strict=True))
    again = model.sample(2, style="folk", max_len=40, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(again, draws["folk"], strict=True))
    # A service samples from threads at once: each call keeps its own style.
    with ThreadPoolExecutor(4) as pool:
        futures = {s: [pool.submit(model.sample, 2, style=s, max_len=40,
                                   generator=torch.Generator().manual_seed(1)) for _ in range(3)]
                   for s in ("folk", "pop")}  # fmt: skip
        for s, runs in futures.items():
            for f in runs:
                assert all(torch.equal(a, b) for a, b in zip(f.result(), draws[s], strict=True))


def test_style_data_must_match_the_model_styles(tmp_path) -> None:  # noqa: ANN001
    from types import SimpleNamespace

    model = _styled()
    for data_styles, match in ((None, "carry a style"), (["pop", "folk"], "in its order")):
        model._trainer = SimpleNamespace(datamodule=SimpleNamespace(style_names=data_styles))
        with pytest.raises(ConfigError, match=match):
            model.setup("fit")
    model._trainer = SimpleNamespace(datamodule=SimpleNamespace(style_names=["folk", "pop"]))
    model.setup("fit")
