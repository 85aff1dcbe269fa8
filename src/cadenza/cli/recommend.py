"""cadenza-recommend ckpt=RECOMMENDER.ckpt user=ID k=10 [context=STYLE]
cadenza-recommend ckpt=... history=[key,key,...] k=10          (a new listener, no retraining)
cadenza-recommend ckpt=... "history=[Duran Duran,Depeche Mode]"   (tracks by name, where named)
cadenza-recommend ckpt=... text="calm piano for studying" k=10  (a listener's words)
cadenza-recommend ckpt=... user=ID method=itemknn|userknn|content|hybrid
cadenza-recommend ckpt=... user=ID generator=GEN.ckpt candidates=32 k=5 out_dir=...
cadenza-recommend ckpt=... user=ID forgotten=SERVICE_WORK_DIR   (honour the service's forget list)

Without generator=: the k best catalog tracks for the listener (already-heard ones left out),
printed with the reasons for each (the played tracks that pulled it up, the listeners like them,
the tags or note features that matched, with their shares: recommend/explain.py) and written to
<out_dir>/recommendations.json. `method`: the hybrid model (default), its content path alone,
or an item- or user-neighbourhood recommender over the checkpoint's training histories.

With generator=: `candidates` pieces sampled from the generator checkpoint (any family that
writes MIDI), scored with the catalog's own track embedder, and the k best written as MIDI
(+ piano roll, + audio with sample.render=wav) with their scores and reasons in
<out_dir>/picks.json.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from cadenza.atomic import write_atomically
from cadenza.cli import CONFIG_DIR, checkpoint_arg, run_task
from cadenza.cli.typos import names_typos
from cadenza.errors import ConfigError
from cadenza.models.base import check_int, checkpoint_file

log = logging.getLogger("cadenza.recommend")


def recommend(cfg: DictConfig) -> list[dict]:
    from cadenza.recommend.module import RecommenderModule
    from cadenza.recommend.workflow import recommend_catalog, recommend_generated

    ckpt = checkpoint_arg(cfg, "recommender")  # before to_container: ckpt_path= fills ckpt
    c = OmegaConf.to_container(cfg, resolve=True)
    text = c.get("text")
    if text is not None:  # checked before the model loads: a typo costs no seconds
        from cadenza.recommend.text import check_description

        text = check_description(text)
    if c.get("generator"):  # before the recommender loads: a typo costs no seconds
        # As the service says it: settings of the catalog's ranking do nothing here.
        if c.get("method", "hybrid") != "hybrid":
            raise ConfigError(f"method={c['method']} ranks catalog tracks; generated pieces "
                              "are scored by the hybrid model (leave method= out)")  # fmt: skip
        if c.get("index", "exact") != "exact":
            raise ConfigError(f"index={c['index']} searches the catalog; generated pieces are "
                              "each scored (leave index= out)")  # fmt: skip
        checkpoint_file(c["generator"], "generator", "generator")
    k = check_int("k", c["k"])
    _check_out_dir(Path(c["out_dir"]), bool(c.get("generator")))  # before the model loads
    history = c.get("history")
    if history is not None and not isinstance(history, list):
        raise ConfigError("history must be a list of catalog keys or names: "
                          "history=[key1,'Duran Duran']")  # fmt: skip
    model = RecommenderModule.load(ckpt)
    if c.get("forgotten"):
        _forget(model, Path(c["forgotten"]))
    listener = {"user": c.get("user"), "history": history, "context": c.get("context"),
                "text": text}  # fmt: skip
    out = Path(c["out_dir"])
    if c.get("generator"):
        from cadenza.models import GenerativeModule

        generator = GenerativeModule.load(c["generator"])
        picks = recommend_generated(
            model, generator, out, **listener, k=k,
            candidates=check_int("candidates", c["candidates"]), **c["sample"],
        )  # fmt: skip
        print(f"best {len(picks)} of {c['candidates']} samples for {_who(listener)}:")
        for p in picks:
            print(f"{p.rank:3d}. {Path(p.midi).name:32s} score {p.score:7.3f}  above "
                  f"{100 * p.catalog_percentile:5.1f}% of the catalog")  # fmt: skip
            print(f"     {p.reasons['summary']}")
        print(out / "picks.json")
    else:
        picks = recommend_catalog(model, **listener, k=k, index=c.get("index", "exact"),
                                  method=c.get("method", "hybrid"),
                                  explain=bool(c.get("explain", True)))  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        written = {"listener": listener, "method": c.get("method", "hybrid"),
                   "picks": [asdict(p) for p in picks]}  # fmt: skip
        write_atomically(out / "recommendations.json", json.dumps(written, indent=2))
        print(f"top {len(picks)} for {_who(listener)}:")
        for p in picks:
            print(f"{p.rank:3d}. {_shown(p.key, p.name):40s} score {p.score:7.3f}")
            if p.reasons:
                print(f"     {p.reasons['summary']}")
        print(out / "recommendations.json")
    return [asdict(p) for p in picks]


def _check_out_dir(out: Path, generated: bool) -> None:
    """out_dir can be written, and with a generator holds no earlier run's picks: rank01_* of
    two runs side by side (and candidates an earlier, larger run left) would read as one."""
    if generated and (out / "picks.json").exists():
        raise ConfigError(f"out_dir={out} holds an earlier run's picks (picks.json): give each "
                          f"run its own out_dir, or remove that one")  # fmt: skip
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"out_dir={out}: cannot make the folder ({e.strerror})") from None


def _forget(model: Any, work_dir: Path) -> None:
    """Empty the histories of the listeners a service with this work_dir was asked to forget,
    as the service does to what it serves. Its list holds pseudonyms keyed by its secret
    ($CADENZA_PSEUDONYM_KEY, else work_dir/.pseudonym_key): read, never made here, since a new
    secret would match nobody and forget no one."""
    import os

    from cadenza.recommend.workflow import forget_listeners
    from cadenza.serve.privacy import ForgetList, Pseudonyms, check_secret

    listed = work_dir / "forgotten.json"
    if not listed.is_file():
        raise ConfigError(f"forgotten={work_dir}: no forget list there ({listed.name} is "
                          "missing); pass the service's work_dir")  # fmt: skip
    secret, where = os.environ.get("CADENZA_PSEUDONYM_KEY"), "$CADENZA_PSEUDONYM_KEY"
    if not secret:
        key_file = work_dir / ".pseudonym_key"
        if not key_file.is_file():
            raise ConfigError(f"forgotten={work_dir}: the list is of pseudonyms, and their "
                              f"secret is neither in $CADENZA_PSEUDONYM_KEY nor in "
                              f"{key_file}")  # fmt: skip
        secret, where = key_file.read_text().strip(), str(key_file)
    pseudonyms = Pseudonyms(check_secret(secret, where).encode("utf-8"))
    every = ForgetList(listed).read()
    forgotten = forget_listeners(model, {u for u in model.user_rows if pseudonyms.of(u) in every})
    if every and not forgotten:
        # Pseudonyms of another secret match nobody: say so, or the list silently does nothing.
        log.warning("forgotten=%s: none of the %d listener(s) on its forget list is one of this "
                    "model's; if the service forgot listeners of this model, %s is not its "
                    "pseudonym secret", work_dir, len(every), where)  # fmt: skip


def _shown(key: str, name: str | None) -> str:
    """A catalog track as a listener reads it: its name, with the key that names it exactly."""
    return key if name is None or name == key else f"{name} [{key}]"


def _who(listener: dict) -> str:
    if listener["text"] is not None:
        return f"the description {listener['text']!r}"
    who = f"user {listener['user']}" if listener["user"] is not None else "the given history"
    return who + (f", context {listener['context']}" if listener["context"] else "")


@names_typos("recommend")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="recommend")
def main(cfg: DictConfig) -> None:
    run_task(recommend, cfg)


if __name__ == "__main__":
    main()
