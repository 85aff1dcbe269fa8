"""cadenza-recommend end to end on a small real catalog (80 pieces of 4 styles, simulated
listeners): a known listener, a new one, generated candidates from a generator checkpoint,
bad input; and the recommender family under DDP on 2 CPU processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cadenza.recommend.module import RecommenderModule
from tests.fixtures.data import data_root
from tests.fixtures.smoke import SmokeRuns
from tests.helpers import CliResult, cli, train_ddp_sim


@pytest.fixture
def recommender_ckpt(smoke: SmokeRuns) -> Path:
    assert smoke["smoke_recommender"].result["metrics"]["test/ndcg@10"] >= 0
    return smoke["smoke_recommender"].ckpt


@pytest.fixture
def generator_ckpt(smoke: SmokeRuns) -> Path:
    return smoke["smoke"].ckpt


def test_known_listener_gets_k_unheard_catalog_tracks(recommender_ckpt: Path, tmp_path) -> None:
    proc = cli("cadenza-recommend", f"ckpt={recommender_ckpt}", "user=listener3", "k=5",
                   f"out_dir={tmp_path}/rec", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    picks = json.loads((tmp_path / "rec" / "recommendations.json").read_text())["picks"]
    model = RecommenderModule.load(recommender_ckpt)
    row = model.hparams.user_keys.index("listener3")
    heard_ids = model.history(torch.tensor([row]))[0].nonzero().flatten()
    heard = {model.hparams.item_keys[i] for i in heard_ids}
    assert [p["rank"] for p in picks] == [1, 2, 3, 4, 5]
    assert all(p["key"] in model.hparams.item_keys and p["key"] not in heard for p in picks)
    scores = [p["score"] for p in picks]
    assert scores == sorted(scores, reverse=True)
    assert picks[0]["key"] in proc.stdout
    # ckpt_path=, as cadenza-train, -sample and -eval name it, is the same checkpoint.
    alias = cli("cadenza-recommend", f"ckpt_path={recommender_ckpt}", "user=listener3", "k=5",
                f"out_dir={tmp_path}/alias", cwd=tmp_path)  # fmt: skip
    assert alias.returncode == 0, alias.stderr[-2000:]
    assert json.loads((tmp_path / "alias" / "recommendations.json").read_text())["picks"] == picks


def test_new_listener_from_history_and_context(recommender_ckpt: Path, tmp_path) -> None:
    model = RecommenderModule.load(recommender_ckpt)
    liked = [k for k in model.hparams.item_keys if k.startswith("jsb/")][:3]
    proc = cli("cadenza-recommend", f"ckpt={recommender_ckpt}", f"history=[{','.join(liked)}]",
                   "context=jsb", "k=4", f"out_dir={tmp_path}/rec", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    picks = json.loads((tmp_path / "rec" / "recommendations.json").read_text())["picks"]
    assert len(picks) == 4 and not {p["key"] for p in picks} & set(liked)


def test_a_listener_who_describes_their_taste_in_words(recommender_ckpt, tmp_path) -> None:
    """text= through the checkpoint's text -> taste map: k catalog tracks, nothing excluded (a
    description has heard nothing), and the words in the JSON; an empty one exits 2."""
    proc = cli("cadenza-recommend", f"ckpt={recommender_ckpt}", "text=calm piano for studying",
               "k=5", f"out_dir={tmp_path}/rec", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = json.loads((tmp_path / "rec" / "recommendations.json").read_text())
    assert written["listener"]["text"] == "calm piano for studying"
    picks = written["picks"]
    model = RecommenderModule.load(recommender_ckpt)
    with torch.no_grad():
        scores = model.score(model.taste_of_text(["calm piano for studying"]),
                             model.catalog_embeddings())[0]  # fmt: skip
    best = [model.hparams.item_keys[i] for i in scores.argsort(descending=True)[:5]]
    assert [p["key"] for p in picks] == best
    assert "the description 'calm piano for studying'" in proc.stdout
    empty = cli("cadenza-recommend", f"ckpt={recommender_ckpt}", "text=' '", cwd=tmp_path)
    assert empty.returncode == 2 and "text is empty" in empty.stderr


def test_generated_candidates_are_scored_and_the_best_kept(
    recommender_ckpt: Path, generator_ckpt: Path, tmp_path: Path
) -> None:
    out = tmp_path / "picks"
    proc = cli("cadenza-recommend", f"ckpt={recommender_ckpt}", "user=listener3",
                   f"generator={generator_ckpt}", "candidates=6", "k=2", "sample.bars=4",
                   f"out_dir={out}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "picks.json").read_text())
    assert summary["candidates"] == 6 and len(sorted(out.glob("candidates/*.mid"))) == 6
    picks = summary["picks"]
    assert [p["rank"] for p in picks] == [1, 2]
    best = max(summary["all_scores"].values())
    assert picks[0]["score"] == pytest.approx(best) and picks[0]["score"] >= picks[1]["score"]
    for p in picks:
        assert Path(p["midi"]).stat().st_size > 20 and Path(p["png"]).is_file()
        assert 0.0 <= p["catalog_percentile"] <= 1.0
    # A second run into the same folder would leave rank01_* of both side by side: refused.
    again = cli("cadenza-recommend", f"ckpt={recommender_ckpt}", "user=listener3",
                f"generator={generator_ckpt}", "candidates=4", "k=1", f"out_dir={out}",
                cwd=tmp_path)  # fmt: skip
    assert again.returncode == 2 and "holds an earlier run's picks (picks.json)" in again.stderr
    (tmp_path / "afile").write_text("x")
    bad = cli("cadenza-recommend", f"ckpt={recommender_ckpt}", "user=listener3",
              f"out_dir={tmp_path}/afile", cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "cannot make the folder" in bad.stderr, bad.stderr[-2000:]


def test_a_style_generator_is_conditioned_on_the_listeners_taste(
    recommender_ckpt: Path, smoke: SmokeRuns, tmp_path: Path
) -> None:
    """Asked for no style, a style-conditional generator writes in the style mix the listener's
    taste implies: p(style | taste), more of a style for a listener who played only it."""
    from cadenza.recommend.workflow import listener_taste, taste_style_mix

    model = RecommenderModule.load(recommender_ckpt)
    styles = ["jsb", "nottingham", "pop909", "piano_midi"]

    def catalog_scores(taste: torch.Tensor) -> torch.Tensor:
        return model.score(taste, model.catalog_embeddings())[0].detach()

    mixes = {}
    for style in ("jsb", "pop909"):
        liked = [k for k in model.hparams.item_keys if k.startswith(f"{style}/")][:8]
        taste, _ = listener_taste(model, history=liked)
        mixes[style] = taste_style_mix(model, catalog_scores(taste), styles)
        assert set(mixes[style]) == set(styles)
        assert sum(mixes[style].values()) == pytest.approx(1.0, abs=1e-3)
    assert mixes["jsb"]["jsb"] > mixes["pop909"]["jsb"]
    assert mixes["pop909"]["pop909"] > mixes["jsb"]["pop909"]
    assert taste_style_mix(model, catalog_scores(taste), ["metal"]) is None  # none in common

    out = tmp_path / "picks"
    proc = cli("cadenza-recommend", f"ckpt={recommender_ckpt}", "user=listener3",
               f"generator={smoke['smoke_styles'].ckpt}", "candidates=4", "k=2",
               "sample.steps=32", f"out_dir={out}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "picks.json").read_text())
    row = model.hparams.user_keys.index("listener3")
    taste = model.user_taste(torch.tensor([row]))
    assert summary["style"] == taste_style_mix(model, catalog_scores(taste), styles)


@pytest.fixture(scope="module")
def lastfm_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.recommend.lastfm_model import save_lastfm_checkpoint

    return save_lastfm_checkpoint(tmp_path_factory.mktemp("lastfm") / "lastfm.ckpt")


def test_last_fm_picks_and_reasons_are_artists_by_name(lastfm_ckpt: Path, tmp_path) -> None:
    """Each pick printed as "Pet Shop Boys [1001]", its reasons in names, the JSON with both
    name and key; history= by artists' names."""
    from cadenza.recommend.interactions import lastfm_artists

    artists = lastfm_artists(data_root())
    for listener in ("user=2", "history=[Duran Duran,depeche mode]"):
        proc = cli("cadenza-recommend", f"ckpt={lastfm_ckpt}", listener, "k=3",
                   f"out_dir={tmp_path}/rec", cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        written = json.loads((tmp_path / "rec" / "recommendations.json").read_text())
        assert len(written["picks"]) == 3
        for p in written["picks"]:
            assert p["name"] == artists[int(p["key"])]
            assert f"{p['rank']:3d}. {p['name']} [{p['key']}]" in proc.stdout
            played = p["reasons"]["played"][0]
            assert played["name"] == artists[int(played["key"])]
            assert f"because you played {played['name']} (" in proc.stdout
    assert {r["name"] for p in written["picks"] for r in p["reasons"]["played"]} == {
        "Duran Duran", "Depeche Mode"}  # fmt: skip


def test_a_missing_checkpoint_names_this_commands_key(lastfm_ckpt: Path, tmp_path) -> None:
    """The error says back the key the command line used (read_checkpoint's own hint names
    `ckpt_path=` whatever was typed); `ckpt_path=` is taken as `ckpt=`, as in cadenza-train."""
    for args, key in ([f"ckpt={tmp_path}/nope.ckpt"], "ckpt"), (
        [f"ckpt={lastfm_ckpt}", f"generator={tmp_path}/nope.ckpt"], "generator"), (
        [f"ckpt_path={tmp_path}/nope.ckpt"], "ckpt_path"):  # fmt: skip
        proc = cli("cadenza-recommend", *args, "user=2", cwd=tmp_path)
        assert proc.returncode == 2
        assert f"{key}={tmp_path}/nope.ckpt: checkpoint not found (pass {key}=/path/to/" in (
            proc.stderr)  # fmt: skip
        assert key == "ckpt_path" or "ckpt_path" not in proc.stderr


def test_a_checkpoint_folder_names_the_file_in_it(lastfm_ckpt: Path, tmp_path) -> None:
    """A run's folder given for a checkpoint is not "not found": the error names the file in it,
    under the key typed, for cadenza-recommend (ckpt=, generator=) and cadenza-classify, as
    cadenza-sample and cadenza-eval say it."""
    empty = tmp_path / "empty"
    empty.mkdir()
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "latest.ckpt").symlink_to(lastfm_ckpt)
    for command, args, said in (
        ("cadenza-recommend", [f"ckpt={folder}", "user=2"],
         f"ckpt={folder} is a folder, not a checkpoint: did you mean {folder}/latest.ckpt?"),
        ("cadenza-recommend", [f"ckpt={lastfm_ckpt}", f"generator={empty}", "user=2"],
         f"generator={empty} is a folder, not a checkpoint: pass generator=/path/to/"),
        ("cadenza-classify", [f"ckpt_path={empty}", f"input={tmp_path}"],
         f"ckpt_path={empty} is a folder, not a checkpoint: pass ckpt_path=/path/to/"),
        ("cadenza-classify", [f"ckpt={tmp_path}/nope.ckpt", f"input={tmp_path}"],
         f"ckpt={tmp_path}/nope.ckpt: checkpoint not found (pass ckpt=/path/to/classifier"),
    ):  # fmt: skip
        proc = cli(command, *args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert said in proc.stderr


def test_forgotten_applies_a_services_forget_list(lastfm_ckpt, tmp_path, monkeypatch) -> None:
    """forgotten=WORK_DIR: the listeners a service with that work_dir forgot have no history
    here either; without it the checkpoint's histories are as trained."""
    from cadenza.serve.privacy import ForgetList, Pseudonyms

    monkeypatch.delenv("CADENZA_PSEUDONYM_KEY", raising=False)
    work = tmp_path / "work"
    work.mkdir()

    def recommend(*args: str) -> CliResult:
        return cli("cadenza-recommend", f"ckpt={lastfm_ckpt}", "k=3", *args,
                   f"out_dir={tmp_path}/rec", cwd=tmp_path)  # fmt: skip

    def picks() -> list[str]:
        written = json.loads((tmp_path / "rec" / "recommendations.json").read_text())
        return [p["key"] for p in written["picks"]]

    none_yet = recommend("user=2", f"forgotten={work}")
    assert none_yet.returncode == 2 and "no forget list there" in none_yet.stderr
    pseudonyms = Pseudonyms.load(None, work)  # the secret as the service makes it
    ForgetList(work / "forgotten.json").add(pseudonyms.of("2"))  # as DELETE /api/listeners/2
    gone = recommend("user=2", f"forgotten={work}")
    assert gone.returncode == 2 and "user=2 has no plays" in gone.stderr
    assert recommend("user=2").returncode == 0  # the checkpoint itself still holds them
    assert recommend("user=3").returncode == 0
    other = picks()
    assert recommend("user=3", f"forgotten={work}").returncode == 0 and picks() == other
    # Another service's secret matches nobody on the list: said, not silently nothing forgotten.
    monkeypatch.setenv("CADENZA_PSEUDONYM_KEY", "another service's secret, 32 characters or more")
    wrong = recommend("user=2", f"forgotten={work}")
    assert wrong.returncode == 0 and "none of the 1 listener(s) on its forget list" in wrong.stderr
    assert "$CADENZA_PSEUDONYM_KEY is not its pseudonym secret" in wrong.stderr
    monkeypatch.delenv("CADENZA_PSEUDONYM_KEY")
    (work / ".pseudonym_key").unlink()
    no_secret = recommend("user=2", f"forgotten={work}")
    assert no_secret.returncode == 2 and "secret is neither in" in no_secret.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history=[no/such.mid]"], "not in the catalog"),
        (["history=[]"], "history is empty, so there is no taste"),
        (["user=listener3", "context=metal"], "context=metal is not one"),
        (["user=listener3", "history=[a]"], "exactly one of user"),
        (["user=listener3", "k=0"], "k must be >= 1"),
        (["user=listener3", "history=pop909/013.mid"], "history must be a list"),
        (["user=listener3", "text=calm piano"], "exactly one of user"),
        (["text=calm piano", "context=jsb"], "say it in the words"),
        (["text=12345"], "a description in words, got int"),
        (["text=' '"], "text is empty"),
        ([f"text={'very ' * 120}calm"], "characters; at most 500"),
        # Settings of the catalog's ranking, with a generator: said, not silently ignored.
        (["user=listener3", "generator=G", "method=userknn"], "scored by the hybrid model"),
        (["user=listener3", "generator=G", "index=hnsw"], "generated pieces are each scored"),
    ],
)
def test_bad_requests_name_the_problem(recommender_ckpt, tmp_path, args, message) -> None:
    # in-process (the exit-code path is the test above): the same function the CLI calls
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from cadenza.cli.recommend import recommend
    from cadenza.errors import ConfigError
    from cadenza.paths import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        cfg = compose("recommend", [f"ckpt={recommender_ckpt}", f"out_dir={tmp_path}", *args])
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        recommend(cfg)


@pytest.mark.slow
def test_recommender_trains_under_ddp_on_two_processes(tmp_path: Path) -> None:
    data_root()
    result, ranks = train_ddp_sim(tmp_path, "smoke_recommender")
    assert "val/ndcg@10" in result["metrics"]
    seen = [set(r["seen"]) for r in ranks]
    assert seen[0] and seen[1] and not seen[0] & seen[1]  # each rank trained its own users


def test_from_python_a_generator_may_be_its_checkpoint_and_bad_arguments_say_so(
    recommender_ckpt: Path, generator_ckpt: Path, tmp_path: Path
) -> None:
    """The Python API as the CLI: a generator given as its checkpoint's path; a history given
    as one string, and k=0, are ConfigErrors naming the argument (a string was read as one
    track per character)."""
    from cadenza.errors import ConfigError
    from cadenza.recommend.workflow import recommend_catalog, recommend_generated

    model = RecommenderModule.load(recommender_ckpt)
    picks = recommend_generated(model, str(generator_ckpt), tmp_path / "picks", user="listener3",
                                candidates=3, k=1, bars=2, png=False)  # fmt: skip
    assert len(picks) == 1 and Path(picks[0].midi).is_file()
    track = model.hparams.item_keys[0]
    with pytest.raises(ConfigError, match=r"history: a list of catalog tracks, got one string"):
        recommend_catalog(model, history=track)
    assert recommend_catalog(model, history=[track], k=2)
    for bad in (0, 1.5):
        with pytest.raises(ConfigError, match="^k must be"):
            recommend_catalog(model, history=[track], k=bad)
