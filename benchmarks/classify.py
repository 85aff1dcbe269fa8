"""Classifying pieces by style and by composer (issue 20, point 2): the classifier family against
logistic regression and k nearest neighbours on the 86 symbolic features, and chance.

- styles: which of four styles (data=styles: JSB chorales, Nottingham, POP909, piano-midi.de,
  150 pieces each) a held-out piece is. Everything fits on the data module's train split,
  chooses on its valid split (the classifier: its best val/nll checkpoint; the baselines: their
  C or k and weighting) and is scored once on its test split.
- composers: who wrote a piano-midi.de piece (the composers with at least 8 pieces), in
  `--folds` folds grouped by work, so the movements of one work (schubert_D850_1..4) never sit
  on both sides; inside each fold a grouped sixth of the training works is the valid split.

The classifier trains in this process for `--minutes` per run (`styles_classifier`,
`piano_midi_composer_classifier`). The baselines read the symbolic features of the whole
original MIDI file, velocities and instruments included (more than a piano roll keeps), and
(rows `*_roll`) those of the piece as the classifier's piano roll keeps it, the classifier's own
feature input; each is standardised on its training split.

    CADENZA_DATA=../shared/data python benchmarks/classify.py [--sections styles composers]
        [--minutes 4] [--folds 5] [--threads N]

Results: benchmarks/results/classify.json; runs under benchmarks/runs/classify/.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cli_runs import compose_experiment, max_time, provenance, save_entry, use_threads

RESULTS = Path(__file__).parent / "results" / "classify.json"
RUNS = Path(__file__).parent / "runs" / "classify"
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)
K_GRID = (1, 3, 5, 9, 15, 25)


def work_of(key: str) -> str:
    """A piece's work, from its file name: trailing movement numbers dropped, so
    schubert_D850_1..4, scn15_1..13 and chpn-p1..24 are one work each."""
    stem = Path(key).stem.lower()
    return re.sub(r"[\s_-]*\d+$", "", stem) or stem


# --- the baselines ---------------------------------------------------------------------------
def features_of(source: Any, items: list) -> np.ndarray:
    """The symbolic features of each whole original MIDI file (velocities, instruments)."""
    from cadenza.recommend.symbolic_features import symbolic_summary

    return np.stack([symbolic_summary(source.load_for_render(it), it.key) for it in items])


def roll_features_of(source: Any, items: list, codec: Any) -> np.ndarray:
    """The features the classifier itself reads: those of the whole piece as its codec keeps
    it (a piano roll: no velocities, one instrument), decoded back."""
    from cadenza.data.datasets import piece_features

    return np.stack([piece_features(codec, codec.encode(source.load(it))) for it in items])


def all_baselines(x: np.ndarray, x_roll: np.ndarray, y: np.ndarray, split: np.ndarray
                  ) -> dict[str, dict]:  # fmt: skip
    """`tuned_baselines` on the original files' features, and (suffix `_roll`) on the
    features of what the classifier's codec keeps."""
    rows = tuned_baselines(x, y, split)
    roll = tuned_baselines(x_roll, y, split)
    rows |= {f"{name}_roll": row for name, row in roll.items() if name != "chance"}
    return rows


def tuned_baselines(x: np.ndarray, y: np.ndarray, split: np.ndarray) -> dict[str, dict]:
    """Logistic regression (C) and kNN (k, uniform or distance weights), each chosen by
    accuracy on the valid split after fitting on train, refitted on train, scored on test."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tr, va, te = (split == s for s in ("train", "valid", "test"))
    candidates = {
        "logistic_regression": [({"C": c}, lambda c=c: LogisticRegression(C=c, max_iter=5000))
                                for c in C_GRID],
        "knn": [({"k": k, "weights": w}, lambda k=k, w=w: KNeighborsClassifier(
                    n_neighbors=min(k, int(tr.sum())), weights=w))
                for k in K_GRID for w in ("uniform", "distance")],
    }  # fmt: skip
    out = {}
    for name, grid in candidates.items():
        scored = []
        for params, make in grid:
            model = make_pipeline(StandardScaler(), make()).fit(x[tr], y[tr])
            scored.append((float((model.predict(x[va]) == y[va]).mean()), params, make))
        valid_acc, params, make = max(scored, key=lambda s: s[0])  # first best on ties
        model = make_pipeline(StandardScaler(), make()).fit(x[tr], y[tr])
        pred = model.predict(x[te])
        out[name] = {"accuracy": float((pred == y[te]).mean()),
                     "balanced_accuracy": float(balanced_accuracy_score(y[te], pred)),
                     "valid_accuracy": valid_acc, "chosen": params}  # fmt: skip
    majority = np.bincount(y[tr]).argmax()
    out["chance"] = {"accuracy": float((y[te] == majority).mean()),
                     "balanced_accuracy": 1.0 / len(np.unique(y)),
                     "chosen": "majority class"}  # fmt: skip
    return out


# --- the classifier --------------------------------------------------------------------------
def train_classifier(experiment: str, root: Path, minutes: float, overrides: list[str],
                     source: Any = None) -> dict[str, Any]:  # fmt: skip
    """Train `experiment` in this process for `minutes` (a `source` replaces its corpus),
    then test its best checkpoint -> test metrics, confusion counts, steps, seconds."""
    from omegaconf import open_dict

    from cadenza.training.loop import build

    cfg = compose_experiment(experiment, [
        f"trainer.max_time={max_time(minutes)}", "trainer.max_epochs=100000", "logger=none",
        "trainer.enable_progress_bar=false", "test=false", *overrides,
    ], root)  # fmt: skip
    with open_dict(cfg):
        cfg.paths.cache_dir = str(RUNS / "cache")
    datamodule, model, trainer = build(cfg)
    if source is not None:
        datamodule.source = source
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    seconds = time.perf_counter() - started
    best = trainer.checkpoint_callback.best_model_path
    metrics = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)[0]
    return {"accuracy": float(metrics["test/accuracy"]),
            "balanced_accuracy": float(metrics["test/balanced_accuracy"]),
            "nll": float(metrics["test/nll"]), "confusion": model.confusion["counts"],
            "classes": model.confusion["classes"], "steps": int(trainer.global_step),
            "train_seconds": round(seconds, 1), "checkpoint": best}  # fmt: skip


def folded(source: Any, assignment: dict[str, str], fold: int) -> Any:
    """The StyledSource with each key's split fixed by `assignment` (canonical splits win over
    hash splits), under a name of its own so its prepared cache is its own."""
    from cadenza.data.sources import StyledSource

    class Folded(StyledSource):
        def items(self) -> list:
            return [replace(it, split=assignment[it.key]) for it in super().items()]

        def to_dict(self) -> dict[str, Any]:
            return {**super().to_dict(), "fold": fold, "assignment": sorted(assignment.items())}

    out = Folded(source.styles, per_style=source.per_style, seed=source.seed)
    out.name = f"{source.name}-fold{fold}"
    return out


# --- sections --------------------------------------------------------------------------------
def styles_section(minutes: float, seed: int) -> dict[str, Any]:
    from hydra.utils import instantiate

    root = RUNS / "styles"
    cfg = compose_experiment("styles_classifier", ["logger=none"], root)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    by_key = {it.key: it for it in dm.source.items()}
    keys, split = [], []
    for name in ("train", "valid", "test"):
        keys += list(dm.split(name).keys)
        split += [name] * len(dm.split(name).keys)
    items = [by_key[k] for k in keys]
    y = np.array([dm.source.style_of(k) for k in keys])
    started = time.perf_counter()
    x = features_of(dm.source, items)
    x_roll = roll_features_of(dm.source, items, dm.codec)
    print(f"styles: features of {len(items)} pieces in {time.perf_counter() - started:.0f} s")
    rows = all_baselines(x, x_roll, y, np.array(split))
    rows["classifier"] = train_classifier("styles_classifier", root / "run", minutes,
                                          [f"seed={seed}"])  # fmt: skip
    counts = {s: int((np.array(split) == s).sum()) for s in ("train", "valid", "test")}
    return {"classes": dm.source.style_names, "pieces": counts, "rows": rows}


def composers_section(minutes: float, folds: int, seed: int) -> dict[str, Any]:
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    from cadenza.data.sources import class_folders
    from cadenza.paths import data_root

    source = class_folders(data_root() / "piano-midi-de" / "midis", min_pieces=8,
                           exclude=["Christmas"])  # fmt: skip
    items = source.items()
    keys = [it.key for it in items]
    y = np.array([source.style_of(k) for k in keys])
    groups = np.array([f"{k.split('/', 1)[0]}/{work_of(k)}" for k in keys])
    started = time.perf_counter()
    x = features_of(source, items)
    from hydra.utils import instantiate

    cfg = compose_experiment("piano_midi_composer_classifier", ["logger=none"], RUNS / "composers")
    x_roll = roll_features_of(source, items, instantiate(cfg.representation))
    print(f"composers: features of {len(items)} pieces in {time.perf_counter() - started:.0f} s")
    outer = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    per_fold = []
    for fold, (rest, test) in enumerate(outer.split(x, y, groups)):
        inner = GroupShuffleSplit(n_splits=1, test_size=1 / 6, random_state=seed + fold)
        tr, va = next(inner.split(x[rest], y[rest], groups[rest]))
        split = np.empty(len(keys), dtype=object)
        split[test], split[rest[tr]], split[rest[va]] = "test", "train", "valid"
        assert not set(groups[split == "test"]) & set(groups[split != "test"])
        rows = all_baselines(x, x_roll, y, split)
        assignment = dict(zip(keys, split.tolist(), strict=True))
        rows["classifier"] = train_classifier(
            "piano_midi_composer_classifier", RUNS / "composers" / f"fold{fold}", minutes,
            [f"seed={seed}"], folded(source, assignment, fold),
        )  # fmt: skip
        print(f"fold {fold}: " + ", ".join(f"{n} {r['accuracy']:.3f}" for n, r in rows.items()))
        per_fold.append({"test_pieces": int(len(test)), "rows": rows})
    names = list(per_fold[0]["rows"])
    summary = {}
    for n in names:
        acc = np.array([f["rows"][n]["accuracy"] for f in per_fold])
        bal = np.array([f["rows"][n]["balanced_accuracy"] for f in per_fold])
        summary[n] = {"accuracy": float(acc.mean()), "accuracy_std": float(acc.std()),
                      "balanced_accuracy": float(bal.mean()),
                      "balanced_accuracy_std": float(bal.std())}  # fmt: skip
    return {"classes": source.style_names, "pieces": len(keys), "works": len(set(groups)),
            "folds": per_fold, "rows": summary}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="the JSON written (default: the tracked results file)")  # fmt: skip
    ap.add_argument("--sections", nargs="+", default=["styles", "composers"],
                    choices=["styles", "composers"])  # fmt: skip
    ap.add_argument("--minutes", type=float, default=4.0, help="classifier training per run")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    use_threads(args.threads)
    command = "python benchmarks/classify.py " + " ".join(sys.argv[1:])
    started = time.perf_counter()
    for section in args.sections:
        if section == "styles":
            entry = styles_section(args.minutes, args.seed)
        else:
            entry = composers_section(args.minutes, args.folds, args.seed)
        entry["provenance"] = provenance(command, time.perf_counter() - started)
        save_entry(args.results, section, entry)
        print(f"\n{section}: held-out accuracy (balanced accuracy)")
        for name, row in entry["rows"].items():
            spread = f" +- {row['accuracy_std']:.3f}" if "accuracy_std" in row else ""
            print(f"  {name:22s} {row['accuracy']:.3f}{spread} ({row['balanced_accuracy']:.3f})")


if __name__ == "__main__":
    main()
