"""Does one style-conditional model write in the style it is asked for? (issue 19, point 3)

Trains a style-conditional experiment through the real CLI (default `styles_transformer`: one
Transformer on REMI tokens of the four-style catalog, JSB chorales, Nottingham folk tunes, POP909
pop songs and piano-midi.de classical piano), samples `--n` pieces of `--bars` bars in each named
style and `--n` with no style, and asks which style each piece sounds like: the nearest style
centroid of the recommender's 45 note features (symbolic_features.NOTE_FEATURES: pitch-class,
interval, duration, rhythm and texture statistics, blind to key, register, tempo, dynamics,
instrumentation and length), standardised on the style catalog (150 pieces per style).

The same classifier on crops of real pieces of the same length is the reference: how often it
hears the right style when the style is certainly there. They are pieces neither the ear nor the
model has met: outside the 150 a style that the catalog and `data=styles` both draw (seed 0),
so the reference measures the ear on unseen music, as the generated pieces are.

    CADENZA_DATA=../shared/data python benchmarks/style_fidelity.py [--minutes 15] [--n 24] \
        [cadenza-train overrides, e.g. model.d_model=128]

Results: benchmarks/results/style_fidelity.json; runs under benchmarks/runs/style_fidelity/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from cli_runs import provenance, save_entry, train_once

RESULTS = Path(__file__).parent / "results" / "style_fidelity.json"
RUNS = Path(__file__).parent / "runs" / "style_fidelity"


class StyleEar:
    """The nearest style centroid of standardised note features, fitted on the style catalog."""

    def __init__(self, styles: list[str], per_style: int = 150, seed: int = 0) -> None:
        from cadenza.recommend.style_catalog import STYLES, load_style_catalog
        from cadenza.recommend.symbolic_features import NOTE_FEATURES, SYMBOLIC_NAMES

        catalog = load_style_catalog(per_style, seed)
        self.cols = [SYMBOLIC_NAMES.index(n) for n in NOTE_FEATURES]
        x = catalog.features[:, self.cols].astype(np.float64)
        self.mean, self.std = x.mean(0), x.std(0).clip(1e-8)
        self.styles = styles
        z = (x - self.mean) / self.std
        self.centroids = np.stack([z[catalog.styles == STYLES.index(s)].mean(0) for s in styles])
        self.n_catalog = {s: int((catalog.styles == STYLES.index(s)).sum()) for s in styles}

    def hear(self, midis: list[Any]) -> tuple[np.ndarray, int]:
        """Style index of each piece that has notes [N'], and how many had none."""
        from cadenza.errors import BadFileError
        from cadenza.recommend.symbolic_features import symbolic_summary

        rows = []
        for pm in midis:
            try:
                rows.append(symbolic_summary(pm)[self.cols])
            except BadFileError:  # no notes: nothing to hear
                continue
        if not rows:
            return np.zeros(0, np.int64), len(midis)
        z = (np.stack(rows).astype(np.float64) - self.mean) / self.std
        return np.argmin(((z[:, None] - self.centroids[None]) ** 2).sum(-1), 1), len(midis) - len(
            rows
        )

    def shares(self, midis: list[Any]) -> dict[str, Any]:
        heard, empty = self.hear(midis)
        share = {s: float((heard == j).mean()) if len(heard) else 0.0
                 for j, s in enumerate(self.styles)}  # fmt: skip
        return {"heard_as": share, "pieces": len(heard), "empty": empty}


def real_crops(styles: list[str], n: int, bars: float, per_style: int = 150,
               seed: int = 0) -> dict[str, list[Any]]:  # fmt: skip
    """n pieces of each style that neither the ear's catalog nor the model's corpus holds (the
    `per_style` drawn with `seed`, the same draw for both), spread evenly over the rest by key,
    clipped to `bars` 4/4 bars at each piece's own tempo (its first quarter-note duration)."""
    from cadenza.io.midi import as_pretty_midi, clip_midi
    from cadenza.recommend.style_catalog import STYLES, style_source

    def drawn(items: list[Any], position: int) -> set[str]:
        rng = np.random.default_rng([seed, position])
        return {items[i].key for i in rng.choice(len(items), min(per_style, len(items)),
                                                 replace=False)}  # fmt: skip

    out = {}
    for s in styles:
        src = style_source(s)
        listed = src.items()
        items = sorted(listed, key=lambda it: it.key)
        # The catalog draws from the items sorted by key, StyledSource in the source's order
        # (they differ for JSB's Coconet arrays): neither draw is unseen.
        seen = drawn(items, STYLES.index(s)) | drawn(listed, styles.index(s))
        unseen = [it for it in items if it.key not in seen]
        if len(unseen) < n:
            sys.exit(f"{s}: only {len(unseen)} pieces outside the {per_style} drawn; ask for "
                     f"fewer (--n)")  # fmt: skip
        pieces = []
        for it in [unseen[int(i)] for i in np.linspace(0, len(unseen) - 1, n)]:
            pm = as_pretty_midi(src.load(it))
            tempo = pm.get_tempo_changes()[1]
            qpm = float(tempo[0]) if len(tempo) else 120.0
            pieces.append(clip_midi(pm, bars * 4 * 60.0 / qpm))
        out[s] = pieces
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="the JSON written (default: the tracked results file)")  # fmt: skip
    ap.add_argument("--experiment", default="styles_transformer")
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    ap.add_argument("--n", type=int, default=24, help="pieces per style")
    ap.add_argument("--bars", type=float, default=8)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("overrides", nargs="*", help="cadenza-train overrides, e.g. model.d_model=128")
    args = ap.parse_args()
    started = time.perf_counter()

    from cadenza.generation import generate
    from cadenza.models import GenerativeModule

    ckpt = train_once(args.experiment, RUNS / args.experiment, args.minutes, args.seed,
                      args.threads, args.overrides, args.retrain)  # fmt: skip
    model = GenerativeModule.load(ckpt)
    styles = list(model.styles)
    ear = StyleEar(styles)
    rows: dict[str, Any] = {}
    for i, style in enumerate([*styles, None]):
        pieces = generate(model, args.n, seed=args.seed + i, temperature=args.temperature,
                          bars=args.bars, style=style)  # fmt: skip
        rows[style or "(no style)"] = ear.shares([p.music for p in pieces])
    reference = {s: ear.shares(m) for s, m in real_crops(styles, args.n, args.bars).items()}
    accuracy = {
        "generated": float(np.mean([rows[s]["heard_as"][s] for s in styles])),
        "real crops": float(np.mean([reference[s]["heard_as"][s] for s in styles])),
    }
    ck = __import__("torch").load(ckpt, map_location="cpu", weights_only=True)
    command = "python benchmarks/style_fidelity.py " + " ".join(sys.argv[1:])
    entry = {"experiment": args.experiment, "overrides": args.overrides,
             "minutes": args.minutes, "epochs": ck["epoch"],
             "steps": ck["global_step"], "n": args.n, "bars": args.bars,
             "temperature": args.temperature, "catalog_per_style": ear.n_catalog,
             "generated": rows, "real_crops": reference, "mean_accuracy": accuracy,
             **provenance(command, time.perf_counter() - started)}  # fmt: skip
    save_entry(args.results, args.experiment, entry)

    print(f"\n{args.experiment}: {entry['steps']} steps; each row: the share of pieces the "
          "note-feature classifier hears as each style")  # fmt: skip
    print(f"{'asked for':<22}" + "".join(f"{s:>12}" for s in styles) + f"{'pieces':>8}")
    for label, table in (("generated", rows), ("real crops", reference)):
        for name, r in table.items():
            cells = "".join(f"{r['heard_as'][s]:>12.2f}" for s in styles)
            print(f"{label[:4] + ': ' + name:<22}{cells}{r['pieces']:>8}")
    print(
        f"mean accuracy: generated {accuracy['generated']:.3f}, "
        f"real crops {accuracy['real crops']:.3f} (chance {1 / len(styles):.3f})"
    )


if __name__ == "__main__":
    main()
