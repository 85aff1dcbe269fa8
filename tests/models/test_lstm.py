"""LSTM family: falling loss, exact masking, sampling contract, checkpoints, config errors."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from cadenza.data.batch import Batch
from cadenza.errors import ConfigError
from cadenza.models import FAMILIES, GenerativeModule, LSTMModule
from cadenza.representations import EventCodec, PianoRollCodec

FRAMES = PianoRollCodec(low_pitch=60, high_pitch=71)  # D = 12 keeps the tests fast
TOKENS = EventCodec()
SMALL = {"hidden_size": 32, "embedding_dim": 16, "nade_hidden": 16}
KINDS = {
    "nade": dict(codec=FRAMES.to_dict(), output="nade", **SMALL),
    "sigmoid": dict(codec=FRAMES.to_dict(), output="sigmoid", **SMALL),
    "tokens": dict(codec=TOKENS.to_dict(), **SMALL),
}


def frame_batch(lengths: list[int], seed: int = 0, pad_value: float = 0.0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    T, D = max(lengths), FRAMES.feature_dim
    x = (torch.rand(len(lengths), T, D, generator=g) < 0.25).float()  # [B, T, D]
    for i, n in enumerate(lengths):
        x[i, n:] = pad_value
    return Batch(x=x, lengths=torch.tensor(lengths))


def chord_batch(lengths: list[int]) -> Batch:
    """Learnable frames: major triads rising a semitone per step (random frames cannot fall
    much below the entropy of their keys)."""
    T, D = max(lengths), FRAMES.feature_dim
    x = torch.zeros(len(lengths), T, D)
    for i, n in enumerate(lengths):
        for t in range(n):
            x[i, t, [(t + i) % D, (t + i + 4) % D, (t + i + 7) % D]] = 1.0
    return Batch(x=x, lengths=torch.tensor(lengths))


def token_batch(lengths: list[int], seed: int = 0, pad_value: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(3, 40, (len(lengths), max(lengths)), generator=g)  # [B, T]
    x[:, 0] = 1  # BOS
    for i, n in enumerate(lengths):
        x[i, n - 1] = 2  # EOS
        x[i, n:] = pad_value
    return Batch(x=x, lengths=torch.tensor(lengths))


def batch_for(kind: str, lengths: list[int], seed: int = 0) -> Batch:
    return token_batch(lengths, seed) if kind == "tokens" else frame_batch(lengths, seed)


@pytest.mark.parametrize("kind", list(KINDS))
def test_loss_is_finite_and_falls_on_a_fixed_batch(kind: str) -> None:
    torch.manual_seed(0)
    model = LSTMModule(**KINDS[kind])
    lengths = [20, 14, 9, 20]
    batch = token_batch(lengths) if kind == "tokens" else chord_batch(lengths)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        nll_sum, count = model(batch)
        loss = nll_sum / count
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    expected_count = 63 if kind != "tokens" else 59  # tokens: one fewer target per piece
    assert int(count) == expected_count
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("kind", list(KINDS))
def test_padding_does_not_change_the_loss(kind: str) -> None:
    torch.manual_seed(0)
    model = LSTMModule(**KINDS[kind]).eval()
    lengths = [12, 5, 8]
    if kind == "tokens":
        padded, junk = token_batch(lengths), token_batch(lengths, pad_value=7)
    else:
        padded, junk = frame_batch(lengths), frame_batch(lengths, pad_value=1.0)
    with torch.no_grad():
        total, count = model(padded)
        junk_total, _ = model(junk)
        # Each piece alone, unpadded (and a longer all-padding tail on the batch).
        alone = [model(Batch(x=padded.x[i : i + 1, :n], lengths=torch.tensor([n])))[0]
                 for i, n in enumerate(lengths)]  # fmt: skip
        wider = Batch(
            x=torch.cat([padded.x, torch.zeros_like(padded.x)], 1), lengths=padded.lengths
        )
        wider_total, _ = model(wider)
    assert int(count) == (sum(lengths) if kind != "tokens" else sum(lengths) - len(lengths))
    assert torch.allclose(total, sum(alone), rtol=1e-5)
    assert torch.allclose(total, junk_total, rtol=1e-5)
    assert torch.allclose(total, wider_total, rtol=1e-5)


def test_first_frame_is_predicted() -> None:
    model = LSTMModule(**KINDS["nade"]).eval()
    with torch.no_grad():
        nll, count = model(frame_batch([1, 1]))
    assert int(count) == 2 and nll.item() > 0


@pytest.mark.parametrize("kind", list(KINDS))
def test_sample_shapes_and_seed(kind: str) -> None:
    torch.manual_seed(0)
    model = LSTMModule(**KINDS[kind])
    model.train()
    a = model.sample(3, max_len=10, generator=torch.Generator().manual_seed(4))
    b = model.sample(3, max_len=10, generator=torch.Generator().manual_seed(4))
    c = model.sample(3, max_len=10, generator=torch.Generator().manual_seed(5))
    assert model.training  # sample() restores the mode it found
    assert len(a) == 3
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert any(not torch.equal(x, y) for x, y in zip(a, c))
    for x in a:
        if kind == "tokens":
            assert x.dtype == torch.long and 2 <= len(x) <= 10 and x[0] == 1
            body = x[1:-1] if x[-1] == 2 else x[1:]
            assert not ((body == 0) | (body == 1) | (body == 2)).any()  # no PAD/BOS/EOS inside
            assert len(x) == 10 or x[-1] == 2  # stopped at EOS or at max_len
        else:
            assert x.shape == (10, FRAMES.feature_dim) and x.dtype == torch.float32
            assert set(x.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("kind", ["nade", "tokens"])
def test_primer_continuation_keeps_the_primer(kind: str) -> None:
    torch.manual_seed(0)
    model = LSTMModule(**KINDS[kind])
    g = torch.Generator().manual_seed(0)
    if kind == "tokens":
        primer = torch.tensor([1, 10, 11, 12, 2])  # BOS ... EOS: the EOS is dropped
        outs = model.continue_from(primer, n=2, steps=6, generator=g)
        for x in outs:
            assert torch.equal(x[:4], primer[:4]) and 5 <= len(x) <= 10
        no_bos = model.continue_from(torch.tensor([10, 11]), steps=3, generator=g)[0]
        assert no_bos[:3].tolist() == [1, 10, 11]
    else:
        primer = frame_batch([7]).x[0]  # [7, D]
        outs = model.continue_from(primer, n=2, steps=5, generator=g)
        for x in outs:
            assert x.shape == (12, FRAMES.feature_dim) and torch.equal(x[:7], primer)
    with pytest.raises(ConfigError, match="leaves no room"):
        model.sample(1, primer=primer, max_len=2)


def test_frame_models_reject_top_k_and_top_p() -> None:
    model = LSTMModule(**KINDS["nade"])
    with pytest.raises(ConfigError, match=r"cannot filter next tokens \(top_k=, top_p=\)"):
        model.sample(1, max_len=4, top_k=5)
    with pytest.raises(ConfigError, match=r"cannot filter next tokens \(top_k=, top_p=\)"):
        model.sample(1, max_len=4, top_p=0.9)
    tokens = LSTMModule(**KINDS["tokens"])
    assert len(tokens.sample(2, max_len=6, top_k=5, top_p=0.9)) == 2
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        tokens.sample(1, max_len=4, temperature=0)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"hidden_size": "abc"}, "model.hidden_size must be an integer"),
        ({"hidden_size": 0}, "model.hidden_size must be >= 1"),
        ({"num_layers": 1.5}, "model.num_layers must be an integer"),
        ({"dropout": 2}, "model.dropout must be >= 0.0 and <= 1.0"),
        ({"dropout": 1.0}, "model.dropout must be < 1"),
        ({"dropout": "x"}, "model.dropout must be a number"),
        ({"embedding_dim": -1}, "model.embedding_dim must be >= 0"),
        ({"output": "softmax"}, "model.output must be 'nade' or 'sigmoid'"),
        ({"nade_hidden": 0}, "model.nade_hidden must be >= 1"),
        ({"optimizer": "adam"}, "model.optimizer must be a partial"),
        ({"codec": {"name": "nope"}}, "unknown codec 'nope'"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_bad_hyper_parameters_name_the_key(override: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LSTMModule(**{**KINDS["nade"], **override})


def test_optimizer_and_scheduler_partials() -> None:
    model = LSTMModule(
        **KINDS["tokens"],
        optimizer=functools.partial(torch.optim.SGD, lr=0.5),
        scheduler=functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=1),
    )
    conf = model.configure_optimizers()
    assert isinstance(conf["optimizer"], torch.optim.SGD)
    assert conf["optimizer"].param_groups[0]["lr"] == 0.5
    assert conf["lr_scheduler"]["monitor"] == "val/nll"
    default = LSTMModule(**KINDS["tokens"]).configure_optimizers()
    assert isinstance(default, torch.optim.Adam)


def loader(batches: list[Batch]) -> DataLoader:
    return DataLoader(batches, batch_size=None, collate_fn=lambda b: b)


def trainer(**kw: object) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["nade", "tokens"])
def test_val_nll_is_exact_over_uneven_batches(kind: str) -> None:
    torch.manual_seed(0)
    model = LSTMModule(**KINDS[kind])
    batches = [
        batch_for(kind, [16, 4, 9], 1),
        batch_for(kind, [3], 2),
        batch_for(kind, [12, 12], 3),
    ]
    with torch.no_grad():
        parts = [model(b) for b in batches]
    exact = sum(p[0] for p in parts) / sum(p[1] for p in parts)
    (metrics,) = trainer().validate(model, loader(batches), verbose=False)
    assert metrics["val/nll"] == pytest.approx(exact.item(), rel=1e-5)
    mean_of_means = sum(p[0] / p[1] for p in parts) / len(parts)
    assert metrics["val/nll"] != pytest.approx(mean_of_means.item(), rel=1e-3)
    (tested,) = trainer().test(model, loader(batches), verbose=False)
    assert tested["test/nll"] == pytest.approx(exact.item(), rel=1e-5)


@pytest.mark.parametrize("kind", ["nade", "tokens"])
def test_checkpoint_round_trip_reproduces_samples(kind: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LSTMModule(**KINDS[kind])
    t = trainer(max_steps=2)
    t.fit(model, loader([batch_for(kind, [10, 6], s) for s in range(2)]))
    path = tmp_path / "lstm.ckpt"
    t.save_checkpoint(path)

    ckpt = torch.load(path, weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["family"] == "lstm" and FAMILIES["lstm"] is LSTMModule
    assert type(hp["codec"]) is dict and hp["codec"] == KINDS[kind]["codec"]
    assert "optimizer" not in hp and "scheduler" not in hp

    loaded = GenerativeModule.load(path)
    assert isinstance(loaded, LSTMModule) and loaded.codec == model.codec
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    a = model.sample(2, max_len=8, generator=torch.Generator().manual_seed(11))
    b = loaded.sample(2, max_len=8, generator=torch.Generator().manual_seed(11))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_generate_returns_pieces_with_midi() -> None:
    from cadenza.generation import generate

    model = LSTMModule(**KINDS["nade"])
    (piece,) = generate(model, 1, steps=8)
    assert piece.tensor.shape == (8, FRAMES.feature_dim) and hasattr(piece.music, "instruments")
    x = piece.tensor
    onsets = x[0].sum() + (x[1:] > x[:-1]).sum()  # a held key merges frames into one note
    assert piece.output == "midi" and piece.notes == int(onsets)


def test_hydra_config_builds_the_model_with_a_plain_codec_dict() -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(__file__).parents[2] / "configs" / "model" / "lstm.yaml")
    cfg.hidden_size, cfg.nade_hidden = 16, 8
    model = instantiate(cfg, codec=FRAMES.to_dict())  # hydra hands codec over as a DictConfig
    assert type(model.hparams["codec"]) is dict and model.codec == FRAMES
    assert isinstance(model.configure_optimizers(), torch.optim.Adam)
    assert LSTMModule(codec=FRAMES, **SMALL).hparams["codec"] == FRAMES.to_dict()


@pytest.mark.parametrize("layers", [1, 2])
def test_the_sampling_cell_steps_as_nn_lstm_does(layers: int) -> None:
    """LSTM.stepper(): the cell a sampling loop steps instead of oneDNN's RNN primitive gives
    nn.LSTM's outputs and state, step after step, from a state nn.LSTM left."""
    from cadenza.models.components.recurrent import LSTM

    torch.manual_seed(0)
    lstm = LSTM(12, 24, layers, batch_first=True, dropout=0.3).eval()
    x = torch.randn(3, 9, 12)
    with torch.no_grad():
        ref, (h, c) = lstm(x)
        _, state = lstm(x[:, :4])  # the primer through nn.LSTM, then the cell
        cell = lstm.stepper()
        assert cell is not None
        outs = []
        for t in range(4, 9):
            out, state = cell(x[:, t], state)
            outs.append(out)
    torch.testing.assert_close(torch.stack(outs, 1), ref[:, 4:], atol=1e-6, rtol=0)
    torch.testing.assert_close(state[0], h, atol=1e-6, rtol=0)
    torch.testing.assert_close(state[1], c, atol=1e-6, rtol=0)
    assert lstm.train().stepper() is None  # training keeps nn.LSTM and its dropout
    # Under bf16 autocast (trainer.precision=bf16-mixed) both stay float32.
    lstm.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = lstm.stepper()(x[:, 0].bfloat16(), (h * 0, c * 0))
        ref, (h1, c1) = lstm(x[:, :1].bfloat16())
    assert out.dtype == state[0].dtype == torch.float32
    torch.testing.assert_close(out, ref[:, 0], atol=1e-2, rtol=0)


@pytest.mark.parametrize("kind", ["nade", "tokens"])
def test_sampling_through_the_cell_matches_stepping_nn_lstm(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole sampling loop through the cell draws what stepping nn.LSTM draws (the two
    differ by float rounding, which no draw of this seed lands on)."""
    from cadenza.models.components.recurrent import LSTM

    torch.manual_seed(1)
    model = LSTMModule(**KINDS[kind]).eval()

    def draw() -> list[torch.Tensor]:
        return model.sample(4, max_len=24, generator=torch.Generator().manual_seed(5))

    fast = draw()
    monkeypatch.setattr(LSTM, "stepper", lambda self: None)
    slow = draw()
    assert len(fast) == len(slow) == 4
    for a, b in zip(fast, slow, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_a_token_model_refuses_melody_windows_which_have_no_start_or_end(family: str) -> None:
    """Melody ids 1 and 2 are HOLD and REST: read as BOS and EOS, a model never held a note and
    stopped at the first rest. Refused when the model is built, naming what works."""
    from cadenza.models.transformer import TransformerModule
    from cadenza.representations.melody import MelodyCodec

    melody = {"codec": MelodyCodec().to_dict()}
    build = {"lstm": lambda: LSTMModule(**melody, **SMALL),
             "transformer": lambda: TransformerModule(**melody, d_model=16, n_layers=1,
                                                      n_heads=2)}[family]  # fmt: skip
    with pytest.raises(
        ConfigError,
        match=rf"representation=melody: the {family} family's token "
        r"model needs pieces with start and end tokens \(representation=events",
    ):
        build()
    assert LSTMModule(**KINDS["tokens"]).eos_id == TOKENS.eos_id == 2  # events: its own ids
