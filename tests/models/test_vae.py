"""VAEModule: shapes, the decoders' training and sampling paths agree, losses, schedules, a
smoke fit on real windows, interpolation, attribute vectors, checkpoints, config errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cadenza.data.batch import Batch
from cadenza.errors import ConfigError
from cadenza.metrics.attributes import attribute_table
from cadenza.models import GenerativeModule, VAEModule
from cadenza.models.components.vae_nets import (
    BiLSTMEncoder,
    FlatDecoder,
    HierarchicalDecoder,
    shift_right,
)
from cadenza.representations import MultiTrackMelodyCodec, PianoRollCodec
from tests.models.vae_fixtures import (
    CODEC,
    melody_windows,
    save_checkpoint,
    small_vae,
    trained_vae,
)

V = CODEC.vocab_size


def _quiet(model: VAEModule) -> VAEModule:
    """training_step logs; with no Trainer attached, logging is a no-op here."""
    model.log = lambda *a, **k: None  # type: ignore[method-assign]
    model.log_dict = lambda *a, **k: None  # type: ignore[method-assign]
    return model


# --- networks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("tracks", [1, 4], ids=["melody", "four-tracks"])
def test_encoder_and_decoders_shapes(tracks: int) -> None:
    B, bars, S, Z = 3, 4, 16, 8
    x = torch.randint(1, V, (B, bars * S, tracks))
    mu, sigma = BiLSTMEncoder(V, tracks, 8, 16, 2, Z)(x)
    assert mu.shape == sigma.shape == (B, Z)
    assert (sigma > 0).all()
    for dec in (
        FlatDecoder(V, tracks, 8, 16, 2, Z),
        HierarchicalDecoder(V, tracks, 8, 16, 1, Z, bars=bars, conductor_hidden=12),
    ):
        assert dec(mu, shift_right(x)).shape == (B, bars * S, tracks, V)
        out = dec.generate(mu, bars * S, lambda logits: logits.argmax(-1))
        assert out.shape == (B, bars * S, tracks) and out.dtype == torch.long


@pytest.mark.parametrize("kind", ["flat", "hierarchical"])
def test_sampling_path_computes_the_same_logits_as_teacher_forcing(kind: str) -> None:
    """Feeding the generator the true tokens must reproduce the training logits step by step:
    the same inputs (incl. the token before each bar line) and the same initial states."""
    torch.manual_seed(0)
    B, bars, S, Z = 2, 3, 16, 8
    dec = (
        FlatDecoder(V, 1, 8, 16, 2, Z)
        if kind == "flat"
        else HierarchicalDecoder(V, 1, 8, 16, 2, Z, bars=bars, conductor_hidden=12)
    ).eval()
    z = torch.randn(B, Z)
    x = torch.randint(1, V, (B, bars * S, 1))
    seen: list[torch.Tensor] = []

    def teacher(logits: torch.Tensor) -> torch.Tensor:
        seen.append(logits)
        return x[:, len(seen) - 1]

    with torch.no_grad():
        out = dec.generate(z, bars * S, teacher)
        forced = dec(z, shift_right(x))
    assert torch.equal(out, x)
    torch.testing.assert_close(torch.stack(seen, dim=1), forced, atol=1e-5, rtol=1e-4)


# --- module -----------------------------------------------------------------------------------
def test_smoke_training_lowers_the_elbo_on_a_fixed_batch_of_real_windows() -> None:
    torch.manual_seed(0)
    x = melody_windows()[:16]
    model = _quiet(small_vae(decoder="hierarchical"))
    batch = Batch(x=x, lengths=torch.full((16,), x.shape[1]))

    def neg_elbo() -> float:
        with torch.no_grad():
            mu, sigma = model.encode(x)
            _, recon = model._losses(model.as_tracks(x), mu, shift_right(model.as_tracks(x)))
            return float((recon + 0.5 * (mu**2 + sigma**2 - 1 - 2 * sigma.log()).sum(1)).mean())

    before = neg_elbo()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(30):
        loss = model.training_step(batch, step)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = neg_elbo()
    assert after < 0.8 * before, (before, after)


def test_free_bits_and_kl_annealing_shape_the_loss() -> None:
    model = small_vae(beta=0.5, kl_warmup_steps=100, free_bits=10)
    assert model.kl.beta_at(0) == 0.0  # global_step 0: annealing starts from a free KL
    assert model.kl.beta_at(50) == 0.25 and model.kl.beta_at(500) == 0.5
    free_nats = 10 * math.log(2.0)
    kl = torch.tensor([free_nats - 1.0, free_nats + 2.0])  # one window under, one over
    assert model.kl.penalty(kl, 100).item() == pytest.approx(0.5 * 2.0 / 2)
    assert small_vae(kl_warmup_steps=0, beta=0.5).kl.beta_at(0) == 0.5
    assert small_vae(scheduled_sampling_rate=0).sampling_probability() == 0.0
    ss = small_vae(scheduled_sampling_rate=10, scheduled_sampling_max=0.3)
    assert 0 < ss.sampling_probability() < 0.1  # step 0: nearly pure teacher forcing
    # 1 - r / (r + exp(step / r)) at step 0 with r = 10
    assert math.isclose(ss.sampling_probability(), 1 - 10 / 11, rel_tol=1e-9)


@pytest.mark.slow
def test_interpolation_endpoints_decode_close_to_their_inputs() -> None:
    model, x = trained_vae()
    acc = (model.reconstruct(x)[..., 0] == x).float().mean()
    assert acc > 0.75, f"the fixture VAE should reconstruct its training windows, got {acc:.3f}"
    for i, j in [(0, 5), (10, 40), (3, 60)]:
        path = model.interpolate(x[i], x[j], steps=6)[..., 0]
        assert path.shape == (6, x.shape[1])
        start = (path[0] == x[i]).float().mean()
        end = (path[-1] == x[j]).float().mean()
        assert start >= 0.75 and end >= 0.75, (i, j, float(start), float(end))
        # The middle is neither endpoint.
        mid = path[3]
        assert not torch.equal(mid, x[i]) or not torch.equal(mid, x[j])


@pytest.mark.parametrize("name,col", [("density", 0), ("mean_pitch", 2)])
def test_attribute_shift_moves_the_attribute_in_the_asked_direction(name: str, col: int) -> None:
    model, x = trained_vae()
    table = attribute_table(CODEC, [w.numpy() for w in x])
    order = np.argsort(table[:, col])
    for amount, rows in ((+1.0, order[:16]), (-1.0, order[-16:])):
        mu, _ = model.encode(x[rows])
        before = model.decode(mu)[..., 0]
        after = model.decode(mu + model.attribute_shift(name, amount))[..., 0]
        b = np.nanmean(attribute_table(CODEC, [w.numpy() for w in before])[:, col])
        a = np.nanmean(attribute_table(CODEC, [w.numpy() for w in after])[:, col])
        assert np.sign(a - b) == np.sign(amount), (name, amount, b, a)


def test_prior_samples_have_the_window_shape_and_attribute_requires_a_fit() -> None:
    model = small_vae()
    g = torch.Generator().manual_seed(0)
    out = model.sample(3, generator=g)
    assert [tuple(o.shape) for o in out] == [(32,)] * 3
    assert all(int(o.max()) < V for o in out)
    with pytest.raises(ConfigError, match="no 'density' attribute vector"):
        model.sample(1, attribute=("density", 1.0))
    with pytest.raises(ConfigError, match="longer"):
        model.sample(1, max_len=33)


def test_multitrack_vae_reads_and_writes_four_voices() -> None:
    codec = MultiTrackMelodyCodec()
    model = VAEModule(codec.to_dict(), bars=2, latent_size=8, embedding_dim=4,
                      encoder_hidden=16, decoder_hidden=16, decoder_layers=1)  # fmt: skip
    x = torch.randint(1, codec.vocab_size, (2, 32, 4))
    assert model.reconstruct(x).shape == (2, 32, 4)
    (s,) = model.sample(1)
    assert s.shape == (32, 4)
    assert len(codec.decode(s).instruments) == 4


def test_checkpoint_round_trip_keeps_weights_codec_and_attribute_vectors(tmp_path) -> None:
    model, x = trained_vae()
    path = save_checkpoint(model, tmp_path / "vae.ckpt")
    loaded = GenerativeModule.load(path)
    assert isinstance(loaded, VAEModule) and loaded.codec == model.codec
    torch.testing.assert_close(loaded.attribute_vectors, model.attribute_vectors)
    assert torch.equal(loaded.reconstruct(x[:4]), model.reconstruct(x[:4]))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"bars": None}, "data.window_bars"),
        ({"bars": 0}, "model.bars"),
        ({"decoder": "tree"}, "model.decoder"),
        ({"latent_size": "big"}, "model.latent_size"),
        ({"beta": -1}, "model.beta"),
        ({"scheduled_sampling_max": 2}, "model.scheduled_sampling_max"),
        ({"input_dropout": 1.0}, "model.input_dropout"),
        ({"bar_content_weight": -1.0}, "model.bar_content_weight"),
        ({"bar_content_weight": 1.0, "decoder": "flat"}, "model.bar_content_weight"),
    ],
    ids=[
        "no-window",
        "zero-bars",
        "decoder",
        "latent",
        "beta",
        "ss-max",
        "input-dropout",
        "content-weight",
        "content-needs-conductor",
    ],  # fmt: skip
)
def test_bad_config_values_name_the_key(kwargs: dict, match: str) -> None:
    args = {"bars": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        VAEModule(CODEC.to_dict(), **args)


def test_a_frame_codec_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="representation=melody"):
        VAEModule(PianoRollCodec().to_dict(), bars=2)


def test_wrong_window_length_is_a_clear_error() -> None:
    model = small_vae(bars=2)
    with pytest.raises(ConfigError, match="data.window_bars=2"):
        model.encode(torch.randint(1, V, (2, 48)))


def test_event_first_greedy_starts_a_note_when_a_note_surely_starts() -> None:
    from cadenza.models.sampling import event_first_argmax
    from cadenza.representations import MelodyCodec
    from cadenza.representations.melody import FIRST_NOTE, HOLD

    codec = MelodyCodec()
    events = torch.tensor(codec.token_events)
    # HOLD is the likeliest single id (0.4), but a note-on is likelier (0.6, split over three
    # pitches): a plain argmax holds, the event-first pick starts the likeliest pitch.
    probs = torch.full((codec.vocab_size,), 1e-9)
    probs[HOLD], probs[FIRST_NOTE + 5], probs[FIRST_NOTE + 7], probs[FIRST_NOTE + 9] = (
        0.4, 0.25, 0.2, 0.15,
    )  # fmt: skip
    logits = probs.log()[None]
    assert int(logits.argmax(-1)) == HOLD
    assert int(event_first_argmax(logits, events)) == FIRST_NOTE + 5
    # When HOLD outweighs every note-on together, both agree.
    probs[HOLD] = 0.7
    assert int(event_first_argmax(probs.log()[None], events)) == HOLD


def test_vae_greedy_setting_is_checked_and_chooses_the_decoder_pick() -> None:
    from cadenza.representations import MelodyCodec

    codec = MelodyCodec().to_dict()
    with pytest.raises(ConfigError, match="model.greedy"):
        VAEModule(codec=codec, bars=2, greedy="beam")
    small = dict(codec=codec, bars=2, latent_size=4, encoder_hidden=8, decoder_hidden=8,
                 decoder_layers=1, embedding_dim=4)  # fmt: skip
    logits = torch.zeros(1, MelodyCodec().vocab_size)
    logits[0, 1] = 2.0  # HOLD alone is likeliest; the 37 note-ons together outweigh it
    assert int(VAEModule(**small, greedy="token").greedy(logits)) == 1
    assert int(VAEModule(**small, greedy="event").greedy(logits)) >= 3


def test_input_dropout_hides_previous_tokens_in_training_only() -> None:
    """Word dropout: the decoder reads the start symbol (0) in place of a share of the previous
    tokens while training; evaluation always reads the true ones."""
    torch.manual_seed(0)
    x = melody_windows()[:8]
    model = _quiet(small_vae(input_dropout=0.5))
    seen: list[torch.Tensor] = []
    decode = model.decoder.forward
    model.decoder.forward = lambda z, inputs: seen.append(inputs) or decode(z, inputs)
    batch = Batch(x=x, lengths=torch.full((8,), x.shape[1]))
    assert torch.isfinite(model.training_step(batch, 0))
    true_inputs = shift_right(model.as_tracks(x))
    hidden = (seen[-1] == 0) & (true_inputs != 0)
    assert 0.4 < float(hidden.float().mean()) < 0.6
    kept = seen[-1] != 0
    assert torch.equal(seen[-1][kept], true_inputs[kept])
    model.eval()
    with torch.no_grad():
        model._losses(model.as_tracks(x), torch.zeros(8, model.hparams.latent_size), true_inputs)
    assert torch.equal(seen[-1], true_inputs)


def test_bar_content_target_is_the_set_of_ids_in_each_bar_and_trains_the_encoder() -> None:
    """model.bar_content_weight: the conductor's embedding of each bar predicts which ids the bar
    holds. A perfect guess costs nothing, a blank one log 2 per id, and its gradient reaches
    the encoder (the point: pitch information pushed into z)."""
    torch.manual_seed(0)
    model = _quiet(small_vae(decoder="hierarchical", bar_content_weight=1.0))
    x = model.as_tracks(melody_windows()[:4])
    B, T, K = x.shape
    S = T // 2
    expected = torch.zeros(B, 2, K, V)
    for b in range(B):
        for u in range(2):
            expected[b, u, 0, x[b, u * S : (u + 1) * S, 0].unique()] = 1.0
    assert expected.sum(-1).min() >= 2 and expected.sum(-1).max() < V
    z = torch.randn(B, model.hparams.latent_size)
    head = model.decoder.bar_content
    model.decoder.bar_content = lambda z: (expected * 2 - 1) * 40  # type: ignore[method-assign]
    assert float(model._bar_content_nll(x, z).max()) < 1e-6
    model.decoder.bar_content = lambda z: torch.zeros(B, 2, K, V)  # type: ignore[method-assign]
    torch.testing.assert_close(model._bar_content_nll(x, z), torch.full((B,), 2 * V * math.log(2)))
    model.decoder.bar_content = head  # type: ignore[method-assign]
    mu, _ = model.encoder(x)
    model._bar_content_nll(x, mu).mean().backward()
    assert model.encoder.to_mu.weight.grad.abs().sum() > 0
    # The training loss adds it: same draws, with and without the weight.
    batch = Batch(x=x[..., 0], lengths=torch.full((B,), T))
    torch.manual_seed(1)
    with_content = model.training_step(batch, 0)
    torch.manual_seed(1)
    z = model.encoder(x)[0] + model.encoder(x)[1] * torch.randn(B, model.hparams.latent_size)
    content = model._bar_content_nll(x, z).mean()
    model.hparams.bar_content_weight = 0.0
    torch.manual_seed(1)
    torch.testing.assert_close(with_content, model.training_step(batch, 0) + content)


def test_an_interpolation_with_a_temperature_is_its_seeds_alone(smoke) -> None:
    """Its draws come from a generator of its own: the same seed gives the same notes, and
    torch's global generator (shared by a service's request threads) is left as it was."""
    from cadenza.generation.exploration import interpolate
    from tests.fixtures.data import data_root

    model = GenerativeModule.load(smoke["smoke_vae"].ckpt)
    melodies = data_root() / "nottingham" / "MIDI" / "melody"
    a, b = melodies / "jigs1.mid", melodies / "waltzes1.mid"
    before = torch.get_rng_state()
    first = interpolate(model, a, b, steps=3, temperature=1.5, seed=4).pieces
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(99)  # whatever the global state, the notes are the seed's
    again = interpolate(model, a, b, steps=3, temperature=1.5, seed=4).pieces
    other = interpolate(model, a, b, steps=3, temperature=1.5, seed=5).pieces
    assert all(torch.equal(x.tensor, y.tensor) for x, y in zip(first, again))
    assert not all(torch.equal(x.tensor, y.tensor) for x, y in zip(first, other))
