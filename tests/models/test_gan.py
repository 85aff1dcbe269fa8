"""The gan family: network shapes, the penalties, a real training run whose losses move,
sampling (phrases, conditional, latent walk), checkpoint resume with both optimizers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cadenza.errors import ConfigError
from cadenza.models import GANModule, GenerativeModule
from cadenza.models.components.gan_nets import (
    MODES,
    Discriminator,
    Generator,
    batch_spread,
    gradient_penalty,
)
from tests.models.gan_fixtures import fit, pop909_codec, pop909_phrases, small_gan

K, N, S, P = 3, 4, 48, 84


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("conditional", [False, True])
def test_generator_and_critic_shapes(mode: str, conditional: bool) -> None:
    g = Generator(K, N, S, P, latent_size=8, mode=mode, hidden=16, conditional=conditional)
    latents = {k: torch.randn(5, *s) for k, s in g.latent_sizes().items()}
    cond = torch.rand(5, N, S, P) if conditional else None
    x = g(latents, cond).detach()
    assert x.shape == (5, K, N, S, P)
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert Discriminator(K, N, S, P, hidden=16)(x).shape == (5,)


def test_minibatch_std_lets_the_critic_see_a_batch_without_variety() -> None:
    """A batch of one phrase repeated has no spread; a varied batch has some, and the critic's
    score of a phrase then depends on the phrases beside it."""
    same = torch.randn(1, 5, N).expand(8, -1, -1)
    assert torch.allclose(batch_spread(same, 4), torch.zeros(8, 1, N), atol=1e-3)
    varied = torch.randn(8, 5, N)
    assert float(batch_spread(varied, 4).min()) > 0.1
    assert torch.equal(batch_spread(varied[:1], 4), torch.zeros(1, 1, N))  # a batch of one
    torch.manual_seed(0)
    critic = Discriminator(K, N, S, P, hidden=16, minibatch_std=4)
    x = torch.rand(4, K, N, S, P)
    copies = x[:1].expand(4, -1, -1, -1, -1)
    assert not torch.allclose(critic(x)[0], critic(copies)[0])
    plain = Discriminator(K, N, S, P, hidden=16)
    assert torch.allclose(plain(x)[0], plain(copies)[0], atol=1e-6)


def test_position_norm_leaves_no_fixed_phrase_at_the_generators_input() -> None:
    """input_norm=position: whatever bias the projection learns, every unit of the first grid
    is zero-mean across the batch, so nothing there is the same for every latent."""
    torch.manual_seed(0)
    g = Generator(K, N, S, P, 8, "hybrid", 16, input_norm="position")
    with torch.no_grad():
        g.project.bias.fill_(5.0)  # a per-position template, as a trained generator learns
    z = {k: torch.randn(32, *s) for k, s in g.latent_sizes().items()}
    first = g.norm0(g.project(g.bar_codes(z).flatten(0, 1)).flatten(1))  # [B N, units]
    assert float(first.mean(0).abs().max()) < 1e-4
    assert float(first.std(0).min()) > 0.5
    assert not any(name.startswith("norm0.") for name, _ in g.named_parameters())
    x = g(z)
    assert x.shape == (32, K, N, S, P) and float(x.std(0).mean()) > 1e-3
    with pytest.raises(ValueError, match="input_norm"):
        Generator(K, N, S, P, 8, input_norm="layer")


def test_modulated_generator_reads_its_latents_in_every_block() -> None:
    torch.manual_seed(0)
    g = Generator(K, N, S, P, 8, "hybrid", 16, modulate=True)
    assert len(g.styles) == len(g.blocks)
    assert all(not b[2].affine for b in g.blocks)  # gains and biases come from the code
    z = {k: torch.randn(4, *s) for k, s in g.latent_sizes().items()}
    x = g(z)
    assert x.shape == (4, K, N, S, P)
    x.sum().backward()
    assert all(s.weight.grad is not None and s.weight.grad.abs().sum() > 0 for s in g.styles)


@pytest.mark.parametrize("conditional", [False, True], ids=["prior", "conditional"])
def test_sixteenth_grid_holds_every_cell_for_a_sixteenth(conditional: bool) -> None:
    """grid=sixteenth: 16 cells per bar, each held S / 16 = 3 steps, so every note the
    generator writes lasts a whole number of sixteenths; the condition is read per cell."""
    torch.manual_seed(0)
    g = Generator(K, N, S, P, 8, "hybrid", 16, conditional, monophonic=(0,), grid="sixteenth")
    assert (g.hold, g.t0) == (3, 1)
    z = {k: torch.randn(4, *s) for k, s in g.latent_sizes().items()}
    cond = (torch.rand(4, N, S, P) > 0.95).float() if conditional else None
    x = g(z, cond)
    assert x.shape == (4, K, N, S, P)
    cells = x.unflatten(3, (16, 3))  # [B, K, N, 16, 3, P]
    torch.testing.assert_close(cells, cells[..., :1, :].expand_as(cells))
    assert float(x[:, 0].sum(-1).max()) <= 1 + 1e-5  # the monophonic track is still one line
    x.sum().backward()
    with pytest.raises(ValueError, match="grid"):
        Generator(K, N, S, P, 8, grid="beat")


def test_latent_kinds_follow_musegan_modes() -> None:
    kinds = {m: set(Generator(K, N, S, P, 8, m, 16).latent_sizes()) for m in MODES}
    assert kinds["composer"] == {"shared", "shared_time"}
    assert kinds["jamming"] == {"private", "private_time"}
    assert kinds["hybrid"] == kinds["composer"] | kinds["jamming"]


def test_jamming_tracks_are_independent_networks() -> None:
    """Jamming: changing track 0's private latents changes track 0 only."""
    torch.manual_seed(0)
    g = Generator(K, N, S, P, 8, "jamming", 16).eval()
    z = {k: torch.randn(2, *s) for k, s in g.latent_sizes().items()}
    z2 = {k: v.clone() for k, v in z.items()}
    z2["private"][:, 0] += 1.0
    a, b = g(z), g(z2)
    assert not torch.allclose(a[:, 0], b[:, 0])
    # Equal up to float noise: the tracks' convolutions run as one batched kernel.
    assert torch.allclose(a[:, 1:], b[:, 1:], atol=1e-6)


class LinearCritic(nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) * self.w).sum(1)


def test_gradient_penalty_matches_hand_value_and_is_finite() -> None:
    # A linear critic's gradient is w everywhere: GP = (||w|| - 1)^2; ||(3, 4)|| = 5 -> 16.
    critic = LinearCritic(torch.tensor([3.0, 4.0]))
    real, fake = torch.rand(6, 2), torch.rand(6, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(16.0)
    d = Discriminator(K, N, S, P, hidden=16)
    gp = gradient_penalty(d, torch.rand(4, K, N, S, P), torch.rand(4, K, N, S, P))
    assert torch.isfinite(gp) and gp >= 0
    gp.backward()  # differentiable w.r.t. the critic's weights
    assert all(torch.isfinite(p.grad).all() for p in d.parameters() if p.grad is not None)


def test_bad_config_values_name_the_key() -> None:
    codec = pop909_codec()
    with pytest.raises(ConfigError, match="model.mode"):
        small_gan(codec, mode="duet")
    with pytest.raises(ConfigError, match="model.objective"):
        small_gan(codec, objective="hinge")
    with pytest.raises(ConfigError, match="model.input_norm"):
        small_gan(codec, input_norm="layer")
    with pytest.raises(ConfigError, match="model.grid"):
        small_gan(codec, grid="beat")
    with pytest.raises(ConfigError, match="model.minibatch_std"):
        small_gan(codec, minibatch_std=-1)
    with pytest.raises(ConfigError, match="model.bars is null.*set data.window_bars=4"):
        small_gan(codec, bars=None)
    with pytest.raises(ConfigError, match="model.condition_track"):
        small_gan(codec, condition_track="name:DRUMS")
    with pytest.raises(ConfigError, match="steps_per_beat"):
        small_gan(pop909_codec(steps_per_beat=3))
    odd = type(codec)(tracks=["index:0"], steps_per_beat=4, low_pitch=24, high_pitch=100)
    with pytest.raises(ConfigError, match="whole octaves"):
        small_gan(odd)


@pytest.fixture(scope="module")
def phrases() -> np.ndarray:
    return pop909_phrases(pop909_codec(), songs=3)


@pytest.mark.parametrize(
    "objective,extra",
    [
        ("r1", {}),
        ("wgan_gp", {}),
        ("r1", {"minibatch_std": 4, "input_norm": "position"}),
        ("r1", {"modulate": True, "grid": "sixteenth"}),
    ],
    ids=["r1", "wgan_gp", "r1-mbstd-position", "r1-modulated-sixteenths"],
)
def test_training_on_real_phrases_moves_both_networks(
    objective: str, extra: dict, phrases: np.ndarray, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = small_gan(pop909_codec(), objective=objective, n_critic=2, r1_every=2, **extra)
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    d0 = [p.detach().clone() for p in model.critic.parameters()]
    ema0 = [p.detach().clone() for p in model.ema.parameters()]
    losses: list[float] = []

    import pytorch_lightning as pl

    class LossRecorder(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, *_):  # noqa: ANN001
            losses.append(float(trainer.callback_metrics["train/critic_loss"]))

    fit(model, phrases, tmp_path, steps=24, callbacks=[LossRecorder()])
    assert len(losses) >= 8 and all(np.isfinite(losses))
    assert max(losses) - min(losses) > 1e-3  # the critic loss moves
    assert any(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, model.critic.parameters()))
    # The EMA follows the generator slowly: it moved, but is not the generator.
    ema = list(model.ema.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(ema0, ema))
    assert any(not torch.equal(a, b) for a, b in zip(ema, model.generator.parameters()))
    assert not any(p.requires_grad for p in model.ema.parameters())


def test_resume_restores_both_optimizers_and_the_ema(phrases: np.ndarray, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = small_gan(pop909_codec())
    trainer = fit(model, phrases, tmp_path, steps=8)
    ckpt = tmp_path / "run.ckpt"
    trainer.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=True)
    assert len(saved["optimizer_states"]) == 2
    assert any(k.startswith("ema.") for k in saved["state_dict"])

    resumed = small_gan(pop909_codec())
    seen: dict[str, object] = {}

    import pytorch_lightning as pl

    class Peek(pl.Callback):
        def on_train_start(self, trainer, pl_module):  # noqa: ANN001
            opt_g, opt_d = (o.optimizer for o in pl_module.optimizers())
            seen["g_steps"] = [s["step"].item() for s in opt_g.state.values()][:1]
            seen["d_steps"] = [s["step"].item() for s in opt_d.state.values()][:1]
            seen["critic_steps"] = pl_module._critic_steps
            seen["ema"] = [p.detach().clone() for p in pl_module.ema.parameters()]

    fit(resumed, phrases, tmp_path, steps=10, callbacks=[Peek()], ckpt_path=str(ckpt))
    g_state, d_state = (s["state"] for s in saved["optimizer_states"])
    assert seen["d_steps"] == [next(iter(d_state.values()))["step"].item()]
    assert seen["g_steps"] == [next(iter(g_state.values()))["step"].item()]
    assert seen["critic_steps"] == model._critic_steps > 0
    for a, b in zip(seen["ema"], model.ema.parameters()):
        assert torch.equal(a, b)


def test_checkpoint_loads_weights_only_and_samples(phrases: np.ndarray, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = small_gan(pop909_codec())
    trainer = fit(model, phrases, tmp_path, steps=4)
    trainer.save_checkpoint(tmp_path / "g.ckpt")
    loaded = GenerativeModule.load(tmp_path / "g.ckpt")
    assert isinstance(loaded, GANModule)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = model.eval().sample(2, generator=g1), loaded.sample(2, generator=g2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_sampling_lengths_phrases_and_controls() -> None:
    torch.manual_seed(0)
    model = small_gan(pop909_codec()).eval()
    L = model.phrase_steps
    assert L == 4 * 16
    one = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert len(one) == 3 and one[0].shape == (L, 3, 84)
    assert set(torch.unique(one[0]).tolist()) <= {0.0, 1.0}
    # 6 bars: two phrases, cut; the time-independent latents are the piece's, shared.
    long = model.sample(2, max_len=6 * 16, generator=torch.Generator().manual_seed(0))
    assert long[0].shape == (96, 3, 84)
    midi = model.codec.decode(long[0])
    assert len(midi.instruments) == 3  # one instrument per track
    with pytest.raises(ConfigError, match="top_k"):
        model.sample(1, top_k=5)
    with pytest.raises(ConfigError, match="condition"):
        model.sample(1, condition=torch.zeros(L, 84))
    path = model.interpolation_latents(5, torch.Generator().manual_seed(1))
    walk = model.sample(1, latents=path)
    assert len(path) == 5 and walk[0].shape == (5 * L, 3, 84)


def test_conditional_gan_keeps_the_melody(phrases: np.ndarray) -> None:
    torch.manual_seed(0)
    model = small_gan(pop909_codec(), condition_track="name:MELODY").eval()
    assert model.hparams.condition_track == 0 and model.conditional
    melody = torch.from_numpy(phrases[0][:, 0])  # [T, P] the real melody of one phrase
    out = model.sample(2, condition=melody, generator=torch.Generator().manual_seed(0))
    assert out[0].shape == (model.phrase_steps, 3, 84)
    assert torch.equal(out[0][:, 0], melody) and torch.equal(out[1][:, 0], melody)
    with pytest.raises(ConfigError, match="cannot sample new pieces; it can: accompany"):
        model.sample(1)


def test_the_gan_honours_model_optimizer_like_every_family() -> None:
    """model.optimizer builds both networks' optimizers (one each); critic_lr sets the critic's
    own rate; with none configured, MuseGAN's Adam (lr 1e-3, betas 0.5 / 0.9)."""
    from functools import partial

    sgd = partial(torch.optim.SGD, lr=0.05, momentum=0.9)
    opt_g, opt_d = small_gan(pop909_codec(), optimizer=sgd, critic_lr=0.01).configure_optimizers()
    assert isinstance(opt_g, torch.optim.SGD) and isinstance(opt_d, torch.optim.SGD)
    assert opt_g.param_groups[0]["lr"] == 0.05 and opt_d.param_groups[0]["lr"] == 0.01
    model = small_gan(pop909_codec())
    opt_g, opt_d = model.configure_optimizers()
    assert {id(p) for p in opt_g.param_groups[0]["params"]} == {
        id(p) for p in model.generator.parameters()
    }
    assert isinstance(opt_d, torch.optim.Adam) and opt_d.param_groups[0]["betas"] == (0.5, 0.9)
    with pytest.raises(ConfigError, match="model.optimizer must be a partial"):
        small_gan(pop909_codec(), optimizer="adam")


@pytest.mark.parametrize("mode", MODES)
def test_a_monophonic_track_is_one_softmax_over_pitches_and_silence(mode: str) -> None:
    torch.manual_seed(0)
    gen = Generator(3, 2, 16, 24, 8, mode, 16, monophonic=(0,))
    z = {k: torch.randn(5, *s) for k, s in gen.latent_sizes().items()}
    probs = gen(z)  # [B, K, N, S, P]
    mass = probs[:, 0].sum(-1)  # the melody's pitches share one distribution with silence
    assert bool((mass <= 1 + 1e-5).all()) and bool((mass > 0).all())
    assert float(probs[:, 1:].sum(-1).max()) > 1  # polyphonic tracks stay independent sigmoids


@pytest.mark.parametrize("binarize", ["ste", "stochastic"])
def test_monophonic_melody_trains_and_samples_one_note_at_a_time(
    binarize: str, phrases: np.ndarray, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = small_gan(pop909_codec(), monophonic=["name:MELODY"], binarize=binarize)
    fit(model, phrases, tmp_path, steps=6)
    rolls = torch.stack(model.sample(4, generator=torch.Generator().manual_seed(1)))
    assert int(rolls[:, :, 0].sum(-1).max()) <= 1  # the melody: at most one pitch per step
    # The critic's input in training: one-hot or silent per step, drawn or thresholded.
    model.train()
    probs = model._generate(model.generator, model.latents(4), None)
    hard = model.hard_rolls(probs)
    assert int(hard[:, 0].sum(-1).max()) <= 1
    assert set(hard.unique().tolist()) <= {0.0, 1.0}


def test_stochastic_binary_neurons_draw_in_training_and_threshold_when_sampling() -> None:
    model = small_gan(pop909_codec(), binarize="stochastic")
    probs = torch.full((2, 3, 4, 16, 84), 0.3)
    model.train()
    drawn = model.hard_rolls(probs)
    assert 0.2 < float(drawn.mean()) < 0.4  # Bernoulli(0.3) per pitch and step
    model.eval()
    assert float(model.hard_rolls(probs).sum()) == 0  # 0.3 is below the threshold


def test_monophonic_tracks_are_named_like_the_condition_track() -> None:
    with pytest.raises(ConfigError, match="model.monophonic"):
        small_gan(pop909_codec(), monophonic=["name:VOCALS"])
    with pytest.raises(ConfigError, match="model.binarize"):
        small_gan(pop909_codec(), binarize="sometimes")


def test_the_ema_keeps_its_own_batchnorm_statistics(phrases: np.ndarray, tmp_path: Path) -> None:
    """The averaged weights measure their own activations (issue 16: copying the generator's
    statistics switched whole tracks on and off in samples)."""
    torch.manual_seed(0)
    model = small_gan(pop909_codec())
    fit(model, phrases, tmp_path, steps=8)
    ema_var, gen_var = model.ema.norm0.running_var, model.generator.norm0.running_var
    assert not torch.allclose(ema_var, gen_var)
    # The EMA's running statistics are those of its own forward passes: a fresh training-mode
    # forward on new latents moves them only a little.
    before = ema_var.clone()
    model.train()
    with torch.no_grad():
        model._generate(model.ema, model.latents(8), None)
    assert torch.allclose(before, model.ema.norm0.running_var, rtol=0.5)


def test_track_gap_catches_what_pooling_compensates() -> None:
    from cadenza.models.gan import phrase_stats, stat_gap, track_gap

    # Two tracks, 4 one-bar phrases of 16 steps: real tracks each rest in half the bars;
    # generated, track 0 rests in a quarter of them and track 1 in three quarters. Pooled,
    # both rest half the time.
    real = np.zeros((4, 16, 2, 12), dtype=bool)
    real[:2, :, 0, 0] = True  # track 0 plays in phrases 0-1
    real[2:, :, 1, 4] = True  # track 1 in phrases 2-3
    gen = np.zeros_like(real)
    gen[:3, :, 0, 0] = True
    gen[3:, :, 1, 4] = True
    args = (60, 4)
    pooled_real, pooled_gen = phrase_stats(real, *args), phrase_stats(gen, *args)
    assert pooled_real["empty_bar_rate"] == pooled_gen["empty_bar_rate"] == 0.5
    assert stat_gap(pooled_gen, pooled_real) == 0.0
    per = lambda r: [phrase_stats(r[:, :, k : k + 1], *args) for k in range(2)]  # noqa: E731
    # Each track's empty-bar rate is 0.25 off: 0.25 / (20 % of the pooled 0.5) = 2.5.
    assert track_gap(per(gen), per(real), pooled_real) == pytest.approx(2.5)
    assert track_gap(per(real), per(real), pooled_real) == 0.0
    # A generated track that never plays has no qualified-note rate: as far off as can be.
    gen[3:, :, 1] = False
    assert track_gap(per(gen), per(real), pooled_real) == float("inf")
