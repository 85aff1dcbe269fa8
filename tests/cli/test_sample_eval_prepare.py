"""cadenza-sample / cadenza-eval / cadenza-prepare as a producer and a researcher use them, in
this process (each entry point's exit status in a real process: test_entry_points.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cadenza.errors import BadMidiError
from cadenza.io.midi import load_midi, tracks_of
from cadenza.models import GenerativeModule
from cadenza.training.config import instantiate
from tests.fixtures.midi_factory import write_broken_folder, write_chords, write_scale
from tests.fixtures.smoke import SmokeRuns
from tests.helpers import cli, compose_train, run_cli


@pytest.fixture
def smoke_ckpt(smoke: SmokeRuns) -> Path:
    return smoke["smoke"].ckpt


def _notes(path: Path) -> list[tuple[float, float, int]]:
    return sorted(
        (round(n[0], 4), round(n[1], 4), int(n[2]))
        for t in tracks_of(load_midi(path))
        for n in t.notes
    )


def test_same_seed_same_notes_and_files_for_a_daw(smoke_ckpt: Path, tmp_path: Path) -> None:
    runs = {}
    for name, seed, *more in (("a", 7), ("b", 7), ("c", 8), ("slow", 7, "tempo=90")):
        proc = cli(
            "cadenza-sample",
            f"ckpt_path={smoke_ckpt}",
            "n=2",
            f"out_dir={tmp_path / name}",
            f"seed={seed}",
            "bars=2",
            "temperature=1.2",
            *more,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[name] = sorted((tmp_path / name).glob("*.mid"))
        assert len(runs[name]) == 2 and all(p.with_suffix(".png").exists() for p in runs[name])
    assert [_notes(p) for p in runs["a"]] == [_notes(p) for p in runs["b"]]
    assert [_notes(p) for p in runs["a"]] != [_notes(p) for p in runs["c"]]
    # 2 bars of 4/4 at 2 steps per beat = 16 steps of 0.25 s at the codec's 120 bpm
    assert max(end for _, end, _ in _notes(runs["a"][0])) <= 4.0 + 1e-6
    # tempo=90: the same notes on the same beats, each beat 120/90 as long, and the file says so.
    for fast, slow in zip(runs["a"], runs["slow"], strict=True):
        a, b = np.array(_notes(fast)), np.array(_notes(slow))
        np.testing.assert_array_equal(b[:, 2], a[:, 2])
        np.testing.assert_allclose(b[:, :2], a[:, :2] * 120 / 90, atol=2e-3)
        assert load_midi(slow).get_tempo_changes()[1] == pytest.approx([90.0], abs=1e-3)
    assert json.loads((tmp_path / "slow" / "samples.json").read_text())["controls"]["tempo"] == 90


def test_primer_is_continued(smoke_ckpt: Path, tmp_path: Path) -> None:
    primer = write_chords(tmp_path / "primer.mid")
    proc = cli(
        "cadenza-sample",
        f"ckpt_path={smoke_ckpt}",
        "n=1",
        f"out_dir={tmp_path / 'out'}",
        f"primer={primer}",
        "steps=16",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    codec = GenerativeModule.load(smoke_ckpt).codec
    primed = codec.encode(load_midi(primer))
    out = codec.encode(load_midi(tmp_path / "out" / "sample_000.mid"))
    # the piece starts with the primer (up to the primer's final note-offs) and goes on
    assert (out[: len(primed) - 1] == primed[: len(primed) - 1]).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ckpt_path=/no/such.ckpt"], "checkpoint not found"),
        ([], "ckpt_path must be set"),
        (["CKPT", "top_k=5"], "top_k"),
        (["CKPT", "temperature=-1"], "temperature"),
        (["CKPT", "n=abc"], "n must be an integer"),
        (["CKPT", "primer=/no/such.mid"], "such.mid"),
        (["CKPT", "style=jsb"], "generate in a style"),
        (["CKPT", "device=cuda:99"], "device=cuda:99"),  # no GPU here, or not that many
        (["CKPT", "device=gpu"], "device='gpu' is not a device"),
        (["CKPT", "tempo=500"], "tempo must be null or quarter notes a minute in 20..400"),
        (["CKPTDIR"], "is a folder, not a checkpoint: did you mean "),
        (["CKPT", "bars=0"], "bars must be > 0"),
    ],
    ids=[
        "missing-ckpt",
        "no-ckpt",
        "top-k-on-frames",
        "negative-temperature",
        "n-abc",
        "missing-primer",
        "style-on-an-unconditional-model",
        "unusable-device",
        "not-a-device",
        "tempo-out-of-range",
        "a-folder",
        "no-bars",
    ],
)
def test_sample_errors_are_one_clear_line(
    smoke_ckpt: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    named = {"CKPT": f"ckpt_path={smoke_ckpt}", "CKPTDIR": f"ckpt_path={smoke_ckpt.parent}"}
    args = [named.get(a, a) for a in args]
    proc = cli("cadenza-sample", *args, f"out_dir={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cadenza: error:" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_style_model_samples_in_a_named_style_and_a_mix(smoke: SmokeRuns, tmp_path: Path) -> None:
    ckpt = smoke["smoke_styles"].ckpt
    for name, style in (("named", "style=nottingham"), ("mix", "style={jsb:1,pop909:3}")):
        proc = cli("cadenza-sample", f"ckpt_path={ckpt}", "n=1", "steps=24",
                   f"out_dir={tmp_path / name}", style, cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        report = json.loads((tmp_path / name / "samples.json").read_text())
        assert report["controls"]["style"] == ("nottingham" if name == "named"
                                               else {"jsb": 1, "pop909": 3})  # fmt: skip
    proc = cli("cadenza-sample", f"ckpt_path={ckpt}", "style=jazz", f"out_dir={tmp_path}",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2 and "style='jazz' is not one of" in proc.stderr


def test_eval_reports_test_nll_and_the_data_it_read(smoke_ckpt: Path, tmp_path: Path) -> None:
    """The installed script, so that eval.json records the data group Hydra's command line
    chose, beside the source in words and its config."""
    out = tmp_path / "eval.json"
    proc = run_cli(
        "cadenza-eval",
        f"ckpt_path={smoke_ckpt}",
        "data=music21",
        "data.source.limit=12",
        f"out={out}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["split"] == "test" and 0 < report["metrics"]["test/nll"] < 100
    assert report["data"]["group"] == "music21"
    assert report["data"]["source"] == "music21 corpus 'bach'"
    assert report["data"]["source_config"]["limit"] == 12
    assert "evaluated on the test split of music21 corpus 'bach'" in proc.stdout


def test_eval_without_data_reads_the_data_the_checkpoint_was_trained_on(
    smoke: SmokeRuns, tmp_path: Path
) -> None:
    """The checkpoint records its run's data: eval with no `data=` gives the NLL the training
    run's own test gave, and says whence its data came."""
    run = smoke["smoke"]
    out = tmp_path / "eval.json"
    proc = cli("cadenza-eval", f"ckpt_path={run.ckpt}", f"out={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["data"]["from"] == "checkpoint"
    # The file evaluated, not only the path given (latest.ckpt is a link a later run moves).
    assert report["checkpoint"] == str(Path(run.ckpt).resolve())
    assert report["data"]["source"] == "music21 corpus 'bach'"
    assert report["data"]["source_config"]["limit"] == 12  # the smoke experiment's, not the default
    assert report["metrics"]["test/nll"] == pytest.approx(run.result["metrics"]["test/nll"], 1e-4)
    assert "(the data the checkpoint was trained on)" in proc.stdout


def test_eval_of_a_checkpoint_without_a_record_asks_for_data(
    smoke_ckpt: Path, tmp_path: Path
) -> None:
    """A JSB model evaluated with no `data=` once got an NLL on music21's Bach chorales (the
    config's default) without a word. A checkpoint that does not record its data: eval asks."""
    ckpt = torch.load(smoke_ckpt, weights_only=True)
    del ckpt["cadenza_run"]  # as written before checkpoints kept it
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    out = tmp_path / "eval.json"
    proc = cli("cadenza-eval", f"ckpt_path={old}", "split=test", f"out={out}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "data must be set" in proc.stderr and "does not record" in proc.stderr
    assert "data=boulanger data.source.name=jsb" in proc.stderr
    assert not out.exists()


def test_eval_says_when_the_recorded_data_is_not_here(smoke_ckpt: Path, tmp_path: Path) -> None:
    ckpt = torch.load(smoke_ckpt, weights_only=True)
    data = ckpt["cadenza_run"]["data"]  # trained elsewhere, on a folder this machine lacks
    data["source"] = {"_target_": "cadenza.data.sources.MidiFolderSource",
                      "root": "/elsewhere/midi"}  # fmt: skip
    moved = tmp_path / "moved.ckpt"
    torch.save(ckpt, moved)
    proc = cli("cadenza-eval", f"ckpt_path={moved}", f"out={tmp_path / 'e.json'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert (
        "/elsewhere/midi" in proc.stderr and "give data= to read it from elsewhere" in proc.stderr
    )


def test_eval_of_a_learned_vocabulary_checkpoint(smoke: SmokeRuns, tmp_path: Path) -> None:
    """A MidiTok checkpoint (REMI + learned BPE) reads its test split with the codec it carries:
    the codec's nested settings reach the cache's manifest as plain JSON."""
    out = tmp_path / "eval.json"
    proc = cli("cadenza-eval", f"ckpt_path={smoke['smoke_miditok'].ckpt}",
               "data=pop909_multitrack", "data.source.limit=8", "data.window_bars=null",
               "data.transpose=null", f"data.cache_dir={tmp_path / 'cache'}", f"out={out}",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 0 < json.loads(out.read_text())["metrics"]["test/nll"] < 100


def test_prepare_reports_skips_and_caches(tmp_path: Path) -> None:
    folder = tmp_path / "my midi"
    expected = write_broken_folder(folder / "broken")
    write_scale(folder / "Good One.MID")
    write_chords(folder / "sub dir" / "good two.midi")
    write_scale(folder / "sub dir" / "deeper" / "good three.mid", transpose=2)
    args = ("cadenza-prepare", "data=midi_folder", f"data.root={folder}",
            f"data.cache_dir={tmp_path / 'cache'}")  # fmt: skip
    first = cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    out = first.stdout + first.stderr
    for reason in set(expected.values()):
        assert reason in out
    second = cli(*args, cwd=tmp_path)
    assert second.returncode == 0
    assert "cache" in (second.stdout + second.stderr).lower()


def test_prepare_an_experiment_caches_what_its_training_reads(tmp_path: Path) -> None:
    """`cadenza-prepare experiment=X` (say on a cluster's login node, before the job) caches X's
    data with X's representation, so the training run that follows is a cache hit rather than a
    second preparation under another codec."""
    folder = tmp_path / "midi"
    write_scale(folder / "a.mid")
    write_chords(folder / "b.mid")
    write_scale(folder / "c.mid", transpose=3)
    where = [f"data.root={folder}", f"data.cache_dir={tmp_path / 'cache'}"]
    proc = cli("cadenza-prepare", "experiment=midi_folder_lstm", *where, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (cached,) = (tmp_path / "cache").iterdir()
    manifest = json.loads((cached / "manifest.json").read_text())
    assert manifest["codec"]["name"] == "events"  # the experiment's, not the default piano roll

    cfg = compose_train(tmp_path, ["experiment=midi_folder_lstm", *where])
    prepared = instantiate(cfg.data).prepare_cache()
    assert prepared.cache_hit and prepared.folder == cached
    assert not list(tmp_path.glob("outputs"))  # prepare writes no run folder
    # Listening histories have no cache: said in one line, not an AttributeError.
    histories = cli("cadenza-prepare", "experiment=smoke_recommender", cwd=tmp_path)
    assert histories.returncode == 2 and "no cache to prepare" in histories.stderr


def test_sample_render_wav_writes_audio_beside_each_midi(smoke_ckpt: Path, tmp_path: Path) -> None:
    from cadenza.io.audio import AudioFeatures, chroma, load_audio

    out = tmp_path / "r"
    args = [f"ckpt_path={smoke_ckpt}", "n=2", f"out_dir={out}", "bars=2", "seed=1"]
    proc = cli("cadenza-sample", *args, "render=wav", "synth=builtin", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    mids = sorted(out.glob("*.mid"))
    assert len(mids) == 2
    # One file a line, each MIDI followed by its audio: what a producer drags into a DAW.
    assert proc.stdout.split() == [str(f) for m in mids for f in (m, m.with_suffix(".wav"))]
    for mid in mids:
        wave = load_audio(mid.with_suffix(".wav"))
        assert wave.sample_rate == 44100
        # the audio is these notes: as long as the MIDI (+ the release tail), and its loudest
        # pitch classes are the MIDI's most-played ones
        notes = _notes(mid)
        end = max(n[1] for n in notes)
        assert end < wave.seconds <= end + 1.05
        counts = [0.0] * 12
        for start, stop, pitch in notes:
            counts[pitch % 12] += stop - start
        heard = chroma(wave, AudioFeatures()).mean(0)
        assert int(heard.argmax()) in sorted(range(12), key=lambda c: -counts[c])[:3]
    meta = json.loads((out / "samples.json").read_text())
    assert meta["controls"]["render"] == "wav"
    assert [s["audio"] for s in meta["samples"]] == [m.with_suffix(".wav").name for m in mids]
    bad = cli("cadenza-sample", *args, "render=mp4", cwd=tmp_path)
    assert bad.returncode == 2 and "render must be null or one of" in bad.stderr


def test_a_miditok_checkpoint_samples_midi_with_its_learned_vocabulary(
    smoke: SmokeRuns, tmp_path: Path
) -> None:
    ckpt = smoke["smoke_miditok"].ckpt
    model = GenerativeModule.load(ckpt)  # weights only: the vocabulary is in the codec's dict
    assert model.codec.name == "miditok" and model.codec.vocabulary is not None
    assert model.codec.vocab_size == 400
    proc = cli("cadenza-sample", f"ckpt_path={ckpt}", "n=2", f"out_dir={tmp_path / 'o'}",
               "seed=3", "steps=64", "temperature=1.0", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = sorted((tmp_path / "o").glob("*.mid"))
    assert len(files) == 2
    for f in files:  # MIDI a DAW opens: it parses back; the notes it holds are in range
        try:
            tracks = tracks_of(load_midi(f))
        except BadMidiError as e:  # a barely trained model may write a silent sample
            assert e.reason == "no_notes"
            continue
        for t in tracks:
            assert ((t.notes[:, 2] >= 21) & (t.notes[:, 2] <= 108)).all()


def test_a_bad_input_file_is_said_under_its_key(smoke: SmokeRuns, tmp_path: Path) -> None:
    """A primer (or condition, input, a, b) that is not MIDI names the key that gave it; a
    GAN, which has no encoder, refuses a= and b= (its walk would have ignored them)."""
    (tmp_path / "notes.mid").write_text("not a MIDI file")
    proc = cli("cadenza-sample", f"ckpt_path={smoke['smoke'].ckpt}", "primer=notes.mid",
               f"out_dir={tmp_path}/s", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cadenza: error: primer=notes.mid: not midi" in proc.stderr
    proc = cli("cadenza-sample", f"ckpt_path={smoke['smoke_gan'].ckpt}", "mode=interpolate",
               "a=x.mid", f"out_dir={tmp_path}/g", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "a=: the gan model has no encoder; mode=interpolate walks between two random" in (
        proc.stderr)  # fmt: skip
    assert not (tmp_path / "g").exists()


def test_a_typed_length_the_model_will_not_use_is_said(smoke: SmokeRuns) -> None:
    """bars=16 on a 2-bar VAE, or with a melody to accompany, is a warning before sampling;
    the default length (bars=8, not typed) is silent."""
    from cadenza.cli.sample import unused_length

    vae = GenerativeModule.load(smoke["smoke_vae"].ckpt)
    lstm = GenerativeModule.load(smoke["smoke"].ckpt)
    window = vae.declaration().window_steps
    asked = {"bars": 16, "steps": 40, "condition": None}
    assert unused_length(vae, "prior", asked, {"bars"}) == [
        f"bars=16: the vae model writes windows of its own length ({window} steps); length is "
        "ignored"
    ]
    assert unused_length(vae, "prior", asked, set()) == []
    assert unused_length(vae, "interpolate", asked, {"steps"}) == []  # points on the path
    assert unused_length(vae, "reconstruct", asked, {"bars", "steps"}) == [
        "bars=16 and steps=40: mode=reconstruct writes windows as long as its input's; length "
        "is ignored"
    ]
    assert unused_length(lstm, "prior", asked, {"bars", "steps"}) == []
    melody = asked | {"condition": "melody.mid"}
    assert unused_length(lstm, "prior", melody, {"bars"}) == [
        "bars: an accompaniment is as long as its melody; steps= cuts it shorter"
    ]
    assert unused_length(lstm, "prior", melody, {"steps"}) == []
    gan = GenerativeModule.load(smoke["smoke_gan"].ckpt)  # a walk has no input to be as long as
    assert unused_length(gan, "interpolate", asked, {"bars"}) == [
        "bars=16: the gan model's walk writes phrases of its own length; length is ignored"
    ]
