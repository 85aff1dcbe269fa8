"""The classifier family on real MIDI: the sequence encoder, the labelled corpora it reads, the
confusion matrix it draws, and `cadenza-classify` over a folder with broken files in it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cadenza.data.batch import Batch, Condition
from cadenza.data.datasets import FeatureCollate, collate, piece_features
from cadenza.data.sources import StyledSource, class_folders
from cadenza.errors import CadenzaError, ConfigError
from cadenza.io.midi import read_score
from cadenza.io.render import TAIL_S
from cadenza.models import CadenzaModule, ClassifierModule
from cadenza.models.components.sequence_encoder import SequenceEncoder
from cadenza.recommend.symbolic_features import SYMBOLIC_NAMES, symbolic_summary
from cadenza.representations import EventCodec, MelCodec, PianoRollCodec
from tests.fixtures.data import real_midi
from tests.fixtures.midi_factory import write_broken_folder
from tests.fixtures.smoke import SmokeRuns
from tests.helpers import cli

CODEC = PianoRollCodec(steps_per_beat=2, low_pitch=21, high_pitch=108)
TUNES = ["nottingham/MIDI/jigs1.mid", "nottingham/MIDI/waltzes1.mid"]
PIANO = ["piano-midi-de/midis/Chopin/chpn-p10.mid", "piano-midi-de/midis/Schumann/scn15_3.mid"]


def _encoded(rel: str, codec: PianoRollCodec | EventCodec = CODEC) -> torch.Tensor:
    return codec.encode(read_score(real_midi(rel)))


@pytest.mark.parametrize("tokens", [False, True])
def test_a_piece_encodes_the_same_alone_or_padded_in_a_batch(tokens: bool) -> None:
    """Padding never reaches the pooled vector: the convolutions' strides shorten the lengths,
    the GRU is packed, and mean / max see real steps only."""
    codec = EventCodec(low_pitch=21, high_pitch=108, velocity_bins=4) if tokens else CODEC
    torch.manual_seed(0)
    enc = SequenceEncoder(None if tokens else codec.feature_dim,
                          codec.vocab_size if tokens else None, 16, 8, 0.0).eval()  # fmt: skip
    short, long = _encoded(TUNES[0], codec)[:50], _encoded(TUNES[1], codec)[:203]
    batch = collate([(short, 0), (long, 1)])
    with torch.no_grad():
        both = enc(batch.x, batch.lengths)
        alone = enc(short[None], torch.tensor([len(short)]))
    assert both.shape == (2, 32)
    torch.testing.assert_close(both[0], alone[0], atol=1e-5, rtol=1e-5)


def test_the_features_of_a_batch_are_those_of_the_music_each_item_holds() -> None:
    x = _encoded(PIANO[0])[:64]
    silent = torch.zeros(16, CODEC.feature_dim)
    batch = FeatureCollate(collate, CODEC)([(x, 0), (silent, 1)])
    assert batch.condition.features.shape == (2, len(SYMBOLIC_NAMES))
    want = symbolic_summary(CODEC.decode(x))
    np.testing.assert_array_equal(batch.condition.features[0].numpy(), want)
    assert np.abs(want).sum() > 0
    # Evaluation items are whole pieces, the same every epoch: their features are kept.
    cached = FeatureCollate(collate, CODEC, cache=True)
    cached([(x, 7)])
    again = cached([(silent, 7)]).condition.features[0].numpy()
    np.testing.assert_array_equal(again, want)
    # A crop with no notes has no features: zeros, not an error that stops the epoch.
    np.testing.assert_array_equal(piece_features(CODEC, silent), np.zeros(len(SYMBOLIC_NAMES)))


def _module(**kwargs) -> ClassifierModule:  # noqa: ANN003
    small = {"classes": ["folk", "piano"], "width": 16, "hidden": 16, "dropout": 0.0}
    return ClassifierModule(CODEC.to_dict(), **(small | kwargs))


def _fit(model: ClassifierModule, batch: Batch, steps: int) -> list[float]:
    """Adam on one fixed batch: the loss after each step."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = model.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_learns_to_tell_real_folk_tunes_from_real_piano_pieces() -> None:
    """Crops of two tunes and two piano pieces, labelled: the loss falls to near zero, and the
    gradient reaches every part (encoder, features, head)."""
    torch.manual_seed(0)
    model = _module()
    items = [(_encoded(rel)[i : i + 48], k) for k, rel in enumerate(TUNES + PIANO) for i in (0, 64)]
    batch = FeatureCollate(collate, CODEC)(items)
    batch.condition.style = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    losses = _fit(model, batch, steps=60)
    assert losses[-1] < 0.1 < losses[0]
    # The last training batch of an epoch may hold one piece: no batch statistics, no error.
    one = Batch(x=batch.x[:1], lengths=batch.lengths[:1],
                condition=Condition(style=batch.condition.style[:1],
                                    features=batch.condition.features[:1]))  # fmt: skip
    assert torch.isfinite(model.training_step(one, 0))
    model.eval()
    probs = torch.stack([model.predict_proba(x) for x, _ in items])
    assert (probs.argmax(-1) == batch.condition.style).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(8))


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: _module(classes=["only"]), "model.classes"),
        (lambda: _module(classes="folk"), "model.classes"),
        (lambda: _module(classes=["a", "a"]), "model.classes"),
        (lambda: _module(width=0), "model.width"),
        (lambda: _module(dropout=1.0), "model.dropout"),
        (lambda: _module(use_features="yes"), "model.use_features"),
        (lambda: _module(window=0), "model.window"),
    ],
)
def test_bad_config_values_name_the_key(make, key: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=key):
        make()


def test_a_batch_without_labels_or_features_is_refused_clearly() -> None:
    model = _module()
    batch = Batch(x=_encoded(TUNES[0])[None, :32], lengths=torch.tensor([32]))
    with pytest.raises(ConfigError, match="label"):
        model.training_step(batch, 0)
    batch.condition = Condition(style=torch.tensor([0]))
    with pytest.raises(ConfigError, match="features"):
        model.training_step(batch, 0)


def _class_tree(root: Path) -> Path:
    """composers/<name>/ with real piano-midi.de files: Chopin 2, Schumann 1, Carols 1."""
    for name, rels in {
        "Chopin": ["Chopin/chpn-p10", "Chopin/chpn-p7"],
        "Schumann": ["Schumann/scn15_3"],
        "Carols": ["Chopin/chpn-p7"],
    }.items():
        (root / name).mkdir(parents=True)
        for rel in rels:
            shutil.copy(real_midi(f"piano-midi-de/midis/{rel}.mid"), root / name)
    return root  # fmt: skip


def test_a_folder_of_class_folders_is_a_labelled_corpus(tmp_path: Path) -> None:
    source = class_folders(_class_tree(tmp_path / "composers"), exclude=["Carols"])
    assert isinstance(source, StyledSource) and source.style_names == ["Chopin", "Schumann"]
    labels = [source.style_of(it.key) for it in source.items()]
    assert labels == [0, 0, 1]
    assert class_folders(tmp_path / "composers").style_names == ["Carols", "Chopin", "Schumann"]
    with pytest.raises(CadenzaError, match="min_pieces"):
        class_folders(tmp_path / "composers", min_pieces=2)
    with pytest.raises(CadenzaError, match="does not exist"):
        class_folders(tmp_path / "nowhere")


def test_symbolic_features_describe_midi_not_audio() -> None:
    from cadenza.data import MusicDataModule

    source = class_folders(real_midi(PIANO[0]).parents[1], min_pieces=8)
    with pytest.raises(ConfigError, match="data.symbolic_features"):
        MusicDataModule(source, MelCodec(), symbolic_features=True)
    with pytest.raises(ConfigError, match="data.symbolic_features"):
        MusicDataModule(source, CODEC, symbolic_features="yes")


def test_a_split_in_windows_holds_every_step_of_every_piece_once(tmp_path: Path) -> None:
    from cadenza.data import MusicDataModule

    dm = MusicDataModule(class_folders(_class_tree(tmp_path / "c")), CODEC,
                         cache_dir=str(tmp_path / "cache"), eval_window=100,
                         valid_fraction=0.25, test_fraction=0.25)  # fmt: skip
    windows = dm.dataset("valid")
    split = dm.split("valid")
    assert len(split) > 0
    for i in range(len(split)):
        rows = np.flatnonzero(windows.pieces == i)
        parts = [windows[int(j)][0] for j in rows]
        assert all(len(p) == 100 for p in parts[:-1]) and 0 < len(parts[-1]) <= 100
        whole = torch.as_tensor(np.array(split.piece(i)), dtype=CODEC.tensor_dtype)
        torch.testing.assert_close(torch.cat(parts), whole)
    batch = next(iter(dm.val_dataloader()))
    assert batch.extras["piece"].tolist() == windows.pieces[batch.index.numpy()].tolist()


def test_validation_scores_a_piece_as_cadenza_classify_does(smoke: SmokeRuns) -> None:
    """test/nll of the smoke run (pieces in windows, averaged in the module) is the mean of
    -log predict_proba(true class) over the same test pieces, read whole."""
    from hydra.utils import instantiate

    from tests.helpers import compose_train

    run = smoke["smoke_classifier"]
    model = ClassifierModule.load(run.ckpt)
    dm = instantiate(compose_train(run.root, ["experiment=smoke_classifier"]).data)
    split = dm.split("test")
    piece = lambda i: torch.as_tensor(np.array(split.piece(i)), dtype=model.codec.tensor_dtype)  # noqa: E731
    nll = [-torch.log(model.predict_proba(piece(i))[
        dm.source.style_of(key)]) for i, key in enumerate(split.keys)]  # fmt: skip
    assert float(torch.stack(nll).mean()) == pytest.approx(run.result["metrics"]["test/nll"],
                                                           rel=1e-4)  # fmt: skip


def test_smoke_run_draws_its_confusion_matrices_and_logs_accuracy(smoke: SmokeRuns) -> None:
    run = smoke["smoke_classifier"]
    model = CadenzaModule.load(run.ckpt)
    assert isinstance(model, ClassifierModule)
    assert model.classes == ["jsb", "nottingham", "pop909", "piano_midi"]
    metrics = run.result["metrics"]
    assert 0.0 <= metrics["test/accuracy"] <= 1.0 and np.isfinite(metrics["test/nll"])
    pictures = sorted(p.name for p in run.root.rglob("confusion/*.png"))
    assert pictures == ["epoch000.png", "epoch001.png", "test.png"]
    assert "val/accuracy" in run.metrics_csv().read_text().splitlines()[0]


def test_classify_cli_labels_a_folder_and_reports_its_broken_files(
    smoke: SmokeRuns, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    broken = write_broken_folder(folder)
    for rel in TUNES + PIANO[:1]:
        shutil.copy(real_midi(rel), folder / Path(rel).name)
    out = tmp_path / "labels.json"
    ckpt = smoke["smoke_classifier"].ckpt
    res = cli("cadenza-classify", f"ckpt={ckpt}", f"input={folder}", f"out={out}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(out.read_text())
    assert report["classes"] == ["jsb", "nottingham", "pop909", "piano_midi"]
    assert sorted(Path(p["file"]).name for p in report["pieces"]) == sorted(
        Path(r).name for r in TUNES + PIANO[:1]
    )
    for piece in report["pieces"]:
        assert sum(piece["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert piece["label"] == max(piece["probabilities"], key=piece["probabilities"].get)
    assert sorted(Path(s["file"]).name for s in report["skipped"]) == sorted(broken)
    assert "3 classified, 6 skipped" in res.stdout
    one = cli("cadenza-classify", f"ckpt={ckpt}", f"input={folder / 'jigs1.mid'}",
              f"out={tmp_path / 'one.json'}", cwd=tmp_path)  # fmt: skip
    assert one.returncode == 0 and "jigs1.mid: " in one.stdout
    # ckpt_path=, as cadenza-train, -sample and -eval name it, is the same checkpoint.
    alias = cli("cadenza-classify", f"ckpt_path={ckpt}", f"input={folder / 'jigs1.mid'}",
                f"out={tmp_path / 'alias.json'}", cwd=tmp_path)  # fmt: skip
    assert alias.returncode == 0
    assert alias.stdout.replace("alias.json", "one.json") == one.stdout
    assert json.loads((tmp_path / "alias.json").read_text())["checkpoint"] == str(ckpt)
    both = cli("cadenza-classify", f"ckpt={ckpt}", f"ckpt_path={tmp_path}/x.ckpt",
               f"input={folder}", cwd=tmp_path)  # fmt: skip
    assert both.returncode == 2 and "give ckpt= or ckpt_path=, not both" in both.stderr
    missing = cli("cadenza-classify", f"ckpt={ckpt}", f"input={tmp_path / 'nothing'}",
                  cwd=tmp_path)  # fmt: skip
    assert missing.returncode == 2 and "input=" in missing.stderr


def test_a_mel_classifier_learns_from_recordings_and_labels_audio_files(tmp_path: Path) -> None:
    """The family over log-mel frames: two folk tunes and two piano pieces heard through the
    built-in synthesizer are learned apart; its checkpoint labels audio files with
    cadenza-classify, and a corrupt WAV beside them is reported and skipped."""
    from cadenza.io.audio import save_audio
    from cadenza.io.render import render_midi

    codec = MelCodec(n_mels=32, synth="builtin")
    folder = tmp_path / "recordings"
    folder.mkdir()
    items = []
    for label, rel in enumerate(TUNES + PIANO):
        pm = read_score(real_midi(rel))
        wave = render_midi(pm, codec.sample_rate, synth="builtin")
        wave.samples = wave.samples[: 12 * codec.sample_rate]  # 12 s is enough to hear
        save_audio(wave, folder / f"{Path(rel).stem}.wav")
        x = codec.encode(wave)
        items += [(x[i : i + 128], label // 2) for i in (0, 256)]
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00not a recording")
    torch.manual_seed(0)
    model = ClassifierModule(codec.to_dict(), classes=["folk", "piano"], width=16, hidden=16,
                             dropout=0.0, use_features=False, window=128)  # fmt: skip
    assert model.hears_audio
    batch = collate(items)
    batch.condition = Condition(style=torch.tensor([label for _, label in items]))
    losses = _fit(model, batch, steps=40)
    assert losses[-1] < 0.1 < losses[0]
    ckpt = tmp_path / "mel.ckpt"
    torch.save({"hyper_parameters": {**model.hparams, "family": model.family},
                "state_dict": model.state_dict()}, ckpt)  # fmt: skip
    out = tmp_path / "labels.json"
    res = cli("cadenza-classify", f"ckpt={ckpt}", f"input={folder}", f"out={out}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(out.read_text())
    labels = {Path(p["file"]).stem: p["label"] for p in report["pieces"]}
    assert labels == {"jigs1": "folk", "waltzes1": "folk", "chpn-p10": "piano", "scn15_3": "piano"}
    assert [Path(s["file"]).name for s in report["skipped"]] == ["broken.wav"]
    # A MIDI upload (cadenza-serve's POST /api/classify) is heard rendered, as training was.
    for rel, label in zip(TUNES + PIANO, ["folk", "folk", "piano", "piano"]):
        ranked = model.ranked(model.read_midi_bytes(real_midi(rel).read_bytes(), rel))
        assert ranked[0][0] == label, (rel, ranked)
    # ... and at most its first max_seconds, when a service caps what it renders.
    data = real_midi(PIANO[0]).read_bytes()
    whole, cut = model.read_midi_bytes(data, "a"), model.read_midi_bytes(data, "a", 4.0)
    seconds = len(cut) * codec.features.hop_length / codec.sample_rate
    assert (
        seconds <= 4.0 + TAIL_S + 0.05 < len(whole) * codec.features.hop_length / codec.sample_rate
    )
