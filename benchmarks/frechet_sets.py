"""The Fréchet distance beside a generative benchmark's music statistics (issue 20, point 3).

`gan_metrics.py` and `vae_reconstruction.py` hand over what they already compare, generated
pieces and held-out real ones as codec tensors. Both sets are written as MIDI files (so they are
read exactly as `cadenza-eval mode=frechet generated=DIR reference=DIR` reads them) and embedded
by the styles classifier `benchmarks/classify.py` trained: its penultimate layer, which has to
tell JSB chorales, Nottingham tunes, POP909 songs and piano-midi.de pieces apart, so it holds
what separates one kind of music from another, and it loads offline from our own checkpoint.

A distance alone has no scale, so the real set is cut in two, by piece order (a song's phrases
stay on one side): A is the reference, B an equally sized set of other real pieces. FD(B, A),
real against real, is the floor a perfect generator would sit at; FD(generated, A) is read
against it, at the same set sizes, since a Fréchet distance grows as sets shrink.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"


def default_encoder() -> str:
    """The styles classifier checkpoint `benchmarks/classify.py` trained (from its results)."""
    classify = RESULTS / "classify.json"
    if not classify.is_file():
        raise SystemExit("no styles classifier: run `python benchmarks/classify.py` first, or pass "
                         "--encoder CKPT")  # fmt: skip
    return json.loads(classify.read_text())["styles"]["rows"]["classifier"]["checkpoint"]


def write_midi_set(folder: Path, pieces: Sequence[Any], codec: Any) -> Path:
    """Codec tensors (or arrays) -> folder/0000.mid, 0001.mid, ... (decoded by `codec`)."""
    from cadenza.io.midi import save_midi

    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(pieces):
        x = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
        save_midi(codec.decode(x), folder / f"{i:04d}.mid")
    return folder


def real_halves(real: Sequence[Any], n: int) -> tuple[list[Any], list[Any]]:
    """Held-out pieces in their dataset's order -> (A: the first half, the reference; B: n
    pieces spread evenly over the second half, the real set a generated one is read against)."""
    half = len(real) // 2
    n = min(n, half)
    if n < 2:
        raise ValueError(f"a Fréchet distance needs at least 2 pieces a set; {len(real)} real")
    return list(real[:half]), [real[i] for i in np.linspace(half, len(real) - 1, n).round()
                                                             .astype(int)]  # fmt: skip


def frechet_beside(
    generated: dict[str, Sequence[Any]],
    a: Sequence[Any],
    b: Sequence[Any],
    codec: Any,
    folder: Path,
    encoder: str | None = None,
    bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Real set B and each named generated set (cut to B's size) against real set A
    (`real_halves`), in the classifier's embedding.
    -> {"encoder", "dim", "pieces": len(B), "reference": len(A), "rows": {"real B": {...},
    name: {...}}}, each row {"frechet", "ci95", "pieces", "median_mahalanobis", "over_floor"}.
    """
    from cadenza.metrics.frechet import embed_folder, frechet_report
    from cadenza.models import ClassifierModule

    encoder = encoder or default_encoder()
    model = ClassifierModule.load(encoder)
    sets = {"A": a, "real B": b} | {name: list(g)[: len(b)] for name, g in generated.items()}
    emb = {}
    for i, (name, pieces) in enumerate(sets.items()):
        path = write_midi_set(folder / f"set{i}", pieces, codec)
        emb[name], _, skipped = embed_folder(model, path)
        if skipped:  # an empty generated piece has no notes to read; it is left out
            print(f"Fréchet: {len(skipped)} piece(s) of {name!r} unreadable, left out")
    reference = emb.pop("A")
    rows = {}
    for name, x in emb.items():
        rep = frechet_report(x, reference, bootstrap=bootstrap, seed=seed)
        outlying = np.median([o["mahalanobis"] for o in rep["outliers"]])
        rows[name] = {"frechet": rep["frechet"], "ci95": rep["ci95"], "pieces": len(x),
                      "median_mahalanobis": float(outlying)}  # fmt: skip
    floor = rows["real B"]["frechet"]
    for r in rows.values():
        r["over_floor"] = r["frechet"] / floor if floor > 0 else None
    return {"encoder": str(encoder), "dim": int(reference.shape[1]), "pieces": len(b),
            "reference": len(reference), "rows": rows}  # fmt: skip


def print_frechet(fd: dict[str, Any] | None, what: str) -> None:
    """The rows of a `frechet_beside` result, under a heading naming the pieces."""
    if not fd:
        return
    print(f"Fréchet distance to {fd['reference']} held-out {what} ({fd['pieces']} pieces a set, "
          f"{fd['dim']}-dim styles-classifier embedding)")  # fmt: skip
    for name, r in fd["rows"].items():
        lo, hi = r["ci95"]
        ratio = "-" if r["over_floor"] is None else f"x{r['over_floor']:.2f}"
        print(f"  {name:<24} {r['frechet']:8.2f}  95% {lo:7.2f}-{hi:<7.2f}  {ratio} of real B")
