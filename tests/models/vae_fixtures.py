"""Real 2-bar melody windows and a small VAE trained on them, shared by the VAE tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch

from cadenza.io.midi import load_midi
from cadenza.models import VAEModule
from cadenza.representations import MelodyCodec
from tests.fixtures.data import NOTTINGHAM, data_root

CODEC = MelodyCodec()
TUNES = NOTTINGHAM + ["jigs10", "reelsd-g10", "hpps10", "waltzes10", "ashover10", "slip1"]


@cache
def melody_windows(bars: int = 2, limit: int = 64) -> torch.Tensor:
    """LongTensor [N, bars * 16]: non-overlapping windows of real Nottingham melodies."""
    out: list[np.ndarray] = []
    for name in TUNES:
        path = data_root() / "nottingham" / "MIDI" / "melody" / f"{name}.mid"
        tokens = CODEC.encode(load_midi(path)).numpy()
        out += CODEC.windows(tokens, bars, hop_bars=bars)
    # Spread over all tunes (a fixed stride), so the set varies in density and register.
    picked = np.stack(out)[:: max(1, len(out) // limit)][:limit]
    return torch.from_numpy(picked.astype(np.int64))


def small_vae(bars: int = 2, decoder: str = "flat", **kw: object) -> VAEModule:
    args = dict(
        latent_size=32, embedding_dim=16, encoder_hidden=64, decoder_hidden=96,
        decoder_layers=1, conductor_hidden=64, conductor_layers=1, kl_warmup_steps=0,
    )  # fmt: skip
    args.update(kw)
    return VAEModule(CODEC.to_dict(), bars=bars, decoder=decoder, **args)


@cache
def trained_vae() -> tuple[VAEModule, torch.Tensor]:
    """A small flat 2-bar VAE fit to 64 real windows until it reconstructs them, with its
    attribute vectors fit on the same windows. Deterministic: seeded, CPU."""
    torch.manual_seed(0)
    x = melody_windows()
    model = small_vae(beta=0.05, free_bits=16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    from cadenza.data.batch import Batch

    batch = Batch(x=x, lengths=torch.full((len(x),), x.shape[1]))
    model.train()
    for step in range(400):
        model.log = lambda *a, **k: None  # type: ignore[method-assign]  # no trainer attached
        model.log_dict = lambda *a, **k: None  # type: ignore[method-assign]
        loss = model.training_step(batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.fit_attributes(x)
    return model, x


def save_checkpoint(model: VAEModule, path: Path) -> Path:
    """A checkpoint as Lightning writes one (hyper-parameters + weights), for the CLI tests."""
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(ckpt)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path
