"""MelVAEModule: shapes, a loss that falls, sampling controls, and config errors."""

from __future__ import annotations

import pytest
import torch

from cadenza.data.batch import Batch
from cadenza.errors import ConfigError
from cadenza.models import MelVAEModule
from cadenza.models.components.conv_vae_nets import ConvDecoder, ConvEncoder
from cadenza.representations import MelCodec, PianoRollCodec
from tests.io.test_audio import tone

# hop 1024 at 22.05 kHz: a 2 s bar is 43 frames, small enough for CPU tests
CODEC = MelCodec(n_mels=32, hop_length=1024)


def model(**kw) -> MelVAEModule:
    args = {"latent_size": 8, "channels": 4, "kl_warmup_steps": 0} | kw
    return MelVAEModule(CODEC.to_dict(), bars=1, **args)


def windows(n: int = 4) -> torch.Tensor:
    """n one-bar windows [n, 43, 32] of different chords."""
    out = [CODEC.encode(tone(110.0 * (i + 2), 165.0 * (i + 2), seconds=2.5))[:43] for i in range(n)]
    return torch.stack(out)


@pytest.mark.parametrize(("steps", "bands"), [(43, 32), (172, 80), (16, 16), (5, 7)])
def test_encoder_and_decoder_shapes_for_any_patch(steps: int, bands: int) -> None:
    enc, dec = ConvEncoder(steps, bands, 4, 6), ConvDecoder(steps, bands, 4, 6)
    mu, sigma = enc(torch.rand(3, steps, bands))
    assert mu.shape == sigma.shape == (3, 6) and (sigma > 0).all()
    x = dec(mu)
    assert x.shape == (3, steps, bands) and x.min().item() >= 0 and x.max().item() <= 1


def test_training_steps_lower_the_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    m = model()
    x = windows()
    batch = Batch(x=x, lengths=torch.full((4,), 43))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    m.log = m.log_dict = lambda *a, **k: None  # no trainer attached: logging is a no-op
    before_db = float((m.reconstruct(x) - x).abs().mean()) * 80
    losses = []
    for _ in range(120):
        opt.zero_grad()
        loss = m.training_step(batch, 0)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    # measured: 40 dB mean error at initialisation, 4.8 dB after 120 steps
    after_db = float((m.reconstruct(x) - x).abs().mean()) * 80
    assert after_db < 10.0 and after_db < 0.3 * before_db


def test_sample_shapes_seed_and_temperature() -> None:
    m = model().eval()
    a = m.sample(3, generator=torch.Generator().manual_seed(1))
    b = m.sample(3, generator=torch.Generator().manual_seed(1))
    assert len(a) == 3 and a[0].shape == (43, 32)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[1])
    calm = m.sample(2, temperature=1e-6)  # z ~ 0 for both: the prior's centre
    assert torch.allclose(calm[0], calm[1], atol=1e-4)
    assert m.sample(1, max_len=10)[0].shape == (10, 32)
    with pytest.raises(ConfigError, match="max_len=50 is longer"):
        m.sample(1, max_len=50)


def test_interpolation_runs_between_the_two_reconstructions() -> None:
    m = model().eval()
    x = windows(2)
    path = m.interpolate(x[0], x[1], steps=5)
    rec = m.reconstruct(x)
    assert path.shape == (5, 43, 32)
    assert torch.allclose(path[0], rec[0], atol=1e-5) and torch.allclose(
        path[-1], rec[1], atol=1e-5
    )


def test_samples_decode_to_audio_through_the_codec() -> None:
    m = model().eval()
    wave = CODEC.decode(m.sample(1, generator=torch.Generator().manual_seed(0))[0])
    assert wave.sample_rate == 22050 and wave.seconds == pytest.approx(43 * 1024 / 22050, abs=0.1)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="representation=mel"):
        MelVAEModule(PianoRollCodec().to_dict())
    with pytest.raises(ConfigError, match="data.window_bars"):
        MelVAEModule(CODEC.to_dict(), bars=None)
    with pytest.raises(ConfigError, match="model.recon_scale"):
        model(recon_scale=0)
    with pytest.raises(ConfigError, match=r"\[B, 43, 32\]"):
        model().encode(torch.rand(2, 40, 32))
