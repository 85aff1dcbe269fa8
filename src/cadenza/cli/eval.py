"""cadenza-eval ckpt_path=... data=boulanger data.source.name=jsb split=test: NLL of a checkpoint.

The codec comes from the checkpoint, so the data is encoded exactly as the model was trained.
So does the data, where the checkpoint records it (`cadenza_run`, written since training kept
it): `data=` then evaluates on other data. A checkpoint without a record needs `data=` (no default
dataset to fall back on silently). eval.json records which data and split it read, and whence.

cadenza-eval mode=music generated=DIR reference=DIR [steps_per_beat=12] [out=...]: MuseGAN and
MusPy statistics of both MIDI folders and the overlap / KL of their distributions, as a table
and as JSON (`cadenza.metrics.music_eval`). No checkpoint and no torch needed.

cadenza-eval mode=frechet generated=DIR reference=DIR encoder=CLASSIFIER.ckpt [bootstrap=200]:
the Fréchet distance between the two sets in the classifier's penultimate layer, with a bootstrap
interval and every generated piece's outlier score (`cadenza.metrics.frechet`).
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from cadenza.atomic import write_atomically
from cadenza.cli import CONFIG_DIR, run_task
from cadenza.cli.typos import names_typos
from cadenza.errors import CadenzaError, ConfigError
from cadenza.training.config import instantiate, require

DEFAULT_OUT = {"nll": "outputs/eval/eval.json", "music": "outputs/eval/music.json",
               "frechet": "outputs/eval/frechet.json"}  # fmt: skip


def evaluate(cfg: DictConfig) -> dict:
    mode = cfg.get("mode", "nll")
    if mode not in DEFAULT_OUT:
        raise ConfigError(f"mode must be 'nll', 'music' or 'frechet', got {mode!r}")
    _check_out(cfg.get("out"))  # before the work: a folder there failed only at the end
    if mode == "music":
        return evaluate_music_cli(cfg)
    if mode == "frechet":
        return evaluate_frechet(cfg)
    return evaluate_nll(cfg)


def _check_out(out: object) -> None:
    """`out=` names the report's file: a folder there is refused before anything is computed."""
    if out is not None and Path(str(out)).is_dir():
        raise ConfigError(f"out={out} is a folder: give the report's file, e.g. "
                          f"out={Path(str(out)) / 'eval.json'}")  # fmt: skip


def _tracks(metrics: dict) -> list[str]:
    """The tracks (track0, ...) a set's per-track statistics hold (not pairs: track0-track1)."""
    suffixes = {k.split("/", 1)[1] for k in metrics if "/" in k}
    return sorted(s for s in suffixes if "-" not in s)


def evaluate_music_cli(cfg: DictConfig) -> dict:
    from cadenza.metrics.music_eval import evaluate_music, format_table, write_report

    steps_per_beat = cfg.get("steps_per_beat", 12)
    if (
        not isinstance(steps_per_beat, int)
        or isinstance(steps_per_beat, bool)
        or steps_per_beat < 1
    ):
        raise ConfigError(f"steps_per_beat must be a positive integer, got {steps_per_beat!r}")
    # Each skipped file is printed below under its set, so the reader does not list them too.
    report = evaluate_music(
        cfg.get("generated"), cfg.get("reference"), steps_per_beat=steps_per_beat, warn=False
    )
    print(format_table(report))
    generated, reference = _tracks(report["generated"]), _tracks(report["reference"])
    if generated != reference:  # e.g. one merged piano roll against POP909's three tracks
        print(f"note: tracks are compared by position, and the sets differ: generated "
              f"{', '.join(generated) or 'none'}; reference {', '.join(reference) or 'none'} "
              f"(a track one set lacks is nan)")  # fmt: skip
    for item in report["skipped"]:
        print(f"skipped ({item['set']}): {item['path']}: {item['reason']}")
    out = write_report(report, cfg.get("out") or DEFAULT_OUT["music"])
    print(f"wrote {out}")
    return report


def evaluate_frechet(cfg: DictConfig) -> dict:
    from cadenza.metrics.frechet import embed_folder, frechet_report
    from cadenza.metrics.music_eval import _check_input, write_report
    from cadenza.models import ClassifierModule
    from cadenza.models.base import check_int, checkpoint_file

    if cfg.get("encoder") is None:
        raise ConfigError(
            "encoder must be set: mode=frechet embeds pieces with a trained classifier, add "
            "`encoder=checkpoints/styles_classifier/latest.ckpt` (cadenza-train "
            "experiment=styles_classifier makes one)"
        )
    model = ClassifierModule.load(checkpoint_file(cfg.encoder, "encoder", "classifier"))
    bootstrap = check_int("bootstrap", cfg.get("bootstrap", 200), minimum=0)
    sets, skipped = {}, []
    for key in ("generated", "reference"):
        emb, names, bad = embed_folder(model, _check_input(key, cfg.get(key), "frechet"), key)
        skipped += [{"set": key, **b} for b in bad]
        if len(emb) < 2:
            raise ConfigError(f"{key}: {len(emb)} readable MIDI file(s); a Fréchet distance "
                              "needs at least 2 in each set")  # fmt: skip
        sets[key] = (emb, names)
    report = frechet_report(sets["generated"][0], sets["reference"][0], sets["generated"][1],
                            bootstrap=bootstrap)  # fmt: skip
    report |= {"encoder": str(cfg.encoder), "skipped": skipped}
    # bootstrap=0 draws no resamples, so there is no interval to print (ci95 is null).
    interval = ("" if report["ci95"] is None
                else " (95% bootstrap interval {:.3f}-{:.3f})".format(*report["ci95"]))  # fmt: skip
    print(
        f"Fréchet distance {report['frechet']:.3f}{interval}, "
        f"{report['n']['generated']} generated vs {report['n']['reference']} reference pieces"
    )
    fewest, dim = min(report["n"]["generated"], report["n"]["reference"]), report["n"]["dim"]
    if fewest < dim:
        print(f"note: {fewest} pieces in a {dim}-dimensional embedding: the distance is mostly "
              "small-sample bias; compare only sets of equal sizes, beside two real sets of the "
              "same size (docs/training.md)")  # fmt: skip
    for o in report["outliers"][:5]:
        print(f"  outlier {o['mahalanobis']:7.2f}  beyond {100 * o['reference_percentile']:5.1f}% "
              f"of the reference: {o['piece']}")  # fmt: skip
    for item in skipped:
        print(f"skipped ({item['set']}): {item['path']}: {item['reason']}")
    out = write_report(report, cfg.get("out") or DEFAULT_OUT["frechet"])
    print(f"wrote {out}")
    return report


def evaluate_nll(cfg: DictConfig) -> dict[str, float]:
    if cfg.get("ckpt_path") is None:
        raise ConfigError(
            "ckpt_path must be set: add `ckpt_path=...` to the command line "
            "(mode=nll, the default, evaluates a checkpoint; mode=music compares MIDI folders)"
        )
    split = cfg.get("split", "test")
    if split not in ("valid", "test"):
        raise ConfigError(f"split must be 'valid' or 'test', got {split!r}")
    import pytorch_lightning as pl

    from cadenza.models import GenerativeModule
    from cadenza.models.base import read_checkpoint
    from cadenza.training.callbacks import RunRecord

    path = Path(require(cfg, "ckpt_path"))
    ckpt = read_checkpoint(path)
    model = GenerativeModule.from_checkpoint(ckpt, path)
    recorded = (ckpt.get(RunRecord.KEY) or {}).get("data")
    origin = "command line"
    if cfg.get("data") is None:
        if recorded is None:
            # A default dataset here once gave a JSB model's NLL on music21's Bach chorales
            # without a word: data a checkpoint does not record must be named.
            raise ConfigError(
                "data must be set: mode=nll evaluates the checkpoint on the data it was trained "
                "on, which this checkpoint does not record (it predates the record); add its "
                "data group and source, e.g. `data=boulanger data.source.name=jsb` for a JSB "
                "model (configs/data/ lists them)"
            )
        with open_dict(cfg):
            cfg.data = recorded
        origin = "checkpoint"
    with open_dict(cfg):
        cfg.data.codec = {
            "_target_": "cadenza.representations.base.Codec.from_dict",
            "d": model.codec.to_dict(),
            # Plain containers: a codec keeps its dict (MidiTok's beat_res, a learned vocabulary)
            # and writes it into the cache's JSON manifest, which a DictConfig cannot enter.
            "_convert_": "all",
        }
    trainer = pl.Trainer(
        accelerator=cfg.get("accelerator", "cpu"),
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    run = trainer.test if split == "test" else trainer.validate
    try:
        datamodule = instantiate(cfg.data)
        results = run(model, datamodule=datamodule, verbose=False)[0]
    except CadenzaError as e:
        if origin != "checkpoint":
            raise
        # e.g. a checkpoint trained on another machine, whose data folders are elsewhere here
        raise ConfigError(f"{e} (reading the data this checkpoint's training run recorded; "
                          "give data= to read it from elsewhere)") from e  # fmt: skip
    metrics = {k: float(v) for k, v in results.items()}
    out = Path(cfg.get("out") or DEFAULT_OUT["nll"])
    data = _data_used(cfg, datamodule) | {"from": origin}
    # The file itself as well: latest.ckpt is a link that the next run moves.
    report = {"ckpt_path": str(cfg.ckpt_path), "checkpoint": str(path.resolve()), "split": split,
              "data": data, "metrics": metrics}  # fmt: skip
    write_atomically(out, json.dumps(report, indent=2))
    whence = "" if origin == "command line" else " (the data the checkpoint was trained on)"
    print(f"evaluated on the {split} split of {data['source']}{whence}")
    width = max(len(k) for k in metrics)
    for k, v in metrics.items():
        print(f"{k:<{width}}  {v:.4f}")
    print(f"wrote {out}")
    return metrics


def _data_used(cfg: DictConfig, datamodule: object) -> dict:
    """What eval.json says was read: the data group's name (when Hydra's command line chose it),
    the source in words and its config, so two reports on different data cannot pass as one."""
    from hydra.core.hydra_config import HydraConfig

    group = HydraConfig.get().runtime.choices.get("data") if HydraConfig.initialized() else None
    source = getattr(datamodule, "source", None)
    config = cfg.data.get("source")
    return {
        "group": group,
        "source": source.describe() if source is not None else str(cfg.data.get("_target_")),
        "source_config": OmegaConf.to_container(config, resolve=True) if config else None,
    }


@names_typos("eval")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    run_task(evaluate, cfg)


if __name__ == "__main__":
    main()
